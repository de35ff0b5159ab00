"""The analysts' dashboard draws with data: the sample's numbers in the SVG charts and the
map (sites placed by master data), filters, and every chart's CSV equal to its JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from lottrace.dashboard import CHARTS, CSV_COLUMNS
from lottrace.ledger import Ledger
from sites_peru import master_data

from .webapp import Web

BUDGET = 300_000


@pytest.fixture(scope="module")
def placed(web: Web) -> Web:
    """The served sample with its sites' master data (names, coordinates) appended once."""
    with Ledger(web.db) as ledger:
        ledger.append(master_data())
    return web


def _rows(answer: dict[str, Any], chart: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = answer["map"]["routes"] if chart == "map" else answer[chart]
    return rows


def _same(csv_text: str, rows: list[dict[str, Any]], chart: str) -> None:
    read = list(csv.DictReader(io.StringIO(csv_text)))
    assert list(read[0]) == list(CSV_COLUMNS[chart])
    assert len(read) == len(rows) > 0
    for got, row in zip(read, rows, strict=True):
        for column in CSV_COLUMNS[chart]:
            value = row[column]
            if isinstance(value, float):
                assert float(got[column]) == value, (chart, column)
            else:
                assert got[column] == ("" if value is None else str(value)), (chart, column)


def test_the_dashboard_draws_the_samples_numbers(
    page: Page,
    placed: Web,
    sign_in: Callable[[Page, str], None],
    shot: Callable[[Page, str], None],
) -> None:
    answer = placed.api("analyst").get("/api/dashboard").json()
    sign_in(page, "analyst")
    sizes: list[int] = []
    page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
    page.goto("/dashboard")
    expect(page.locator("h1")).to_have_text("Tablero de demoras")
    page.wait_for_selector("body[data-drawn=yes]")
    assert sum(sizes) < BUDGET, sizes
    expect(page.locator("#legs")).to_have_text(f"{answer['legs']} tramos con estos filtros.")
    points = page.locator("#fig-delays svg circle.point")
    expect(points).to_have_count(len(answer["delays"]))
    drawn = sorted(
        (
            int(p.get_attribute("data-route") or 0),
            p.get_attribute("data-month"),
            float(p.get_attribute("data-p50") or 0),
        )
        for p in points.all()
    )
    assert drawn == sorted((r["route"], r["month"], r["p50_hours"]) for r in answer["delays"])
    bars = page.locator("#fig-bottlenecks svg rect.bar")
    expect(bars).to_have_count(10)
    assert bars.first.get_attribute("data-excess") == "694.667"  # ELPALTO-01 to JUMARP
    expect(page.locator("#fig-bottlenecks svg")).to_contain_text("gatherer:ELPALTO-01 → hq:JUMARP")
    lines = page.locator("#fig-map svg line.route")
    expect(lines).to_have_count(len(answer["map"]["routes"]))
    assert len(answer["map"]["routes"]) > 20
    expect(page.locator("#fig-map svg")).to_contain_text("Puerto de Paita")
    expect(page.locator("#unplaced")).to_have_text("")
    expect(page.locator("#stuck tbody tr")).to_have_count(len(answer["stuck"]))
    assert answer["stuck_total"] > 0
    shot(page, "dashboard")


def test_filters_and_csv_downloads(
    page: Page, placed: Web, sign_in: Callable[[Page, str], None]
) -> None:
    client = placed.api("analyst")
    cec = client.get("/api/dashboard", params={"coop": "hq:CECANOR"}).json()
    sign_in(page, "analyst")
    page.goto("/dashboard")
    page.wait_for_selector("body[data-drawn=yes]")
    page.get_by_label("Cooperativa").select_option("hq:CECANOR")
    page.get_by_role("button", name="Aplicar").click()
    page.wait_for_selector("body[data-drawn=yes]")
    expect(page.locator("#legs")).to_have_text(f"{cec['legs']} tramos con estos filtros.")
    expect(page.locator("#fig-delays svg circle.point")).to_have_count(len(cec["delays"]))
    for chart in ("delays", "bottlenecks", "map"):
        with page.expect_download() as done:
            page.locator(f"button.csv[data-chart={chart}]").click()
        text = Path(done.value.path()).read_text(encoding="utf-8")
        _same(text, _rows(cec, chart), chart)


@pytest.mark.parametrize("chart", CHARTS)
def test_each_csv_matches_the_json_at_the_api(placed: Web, chart: str) -> None:
    client = placed.api("analyst")
    params = {"until": "2025-10-31", "season": "2025"}
    answer = client.get("/api/dashboard", params=params).json()
    r = client.get(f"/api/dashboard/{chart}.csv", params=params)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"lottrace-{chart}.csv" in r.headers["content-disposition"]
    _same(r.text, _rows(answer, chart), chart)


def test_bad_filters_are_one_clear_400(placed: Web) -> None:
    client = placed.api("analyst")
    for params, field in (
        ({"season": "25"}, "season"),
        ({"route": "no-arrow"}, "route"),
        ({"since": "yesterday"}, "since"),
    ):
        r = client.get("/api/dashboard", params=params)
        assert r.status_code == 400, r.text
        assert r.json()["detail"].startswith(field)
    assert client.get("/api/dashboard/pie.csv").status_code == 400
    assert placed.api("buyer").get("/api/dashboard/map.csv").status_code == 403
