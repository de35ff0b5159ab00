"""The analysts' dashboard as data (lottrace.dashboard): the same numbers as the delay
queries, the filters, the map placed from master data, CSV equal to the JSON, SVG drawn
from the rows, and answers kept per ledger head."""

from __future__ import annotations

import csv
import io
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lottrace.dashboard import CHARTS, CSV_COLUMNS, Filters, dashboard, svg, to_csv
from lottrace.delays import bottlenecks, legs, stuck
from lottrace.demo import build_demo
from lottrace.ledger import Ledger
from lottrace.rules import time_key
from sites_peru import SITES, master_data


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("dash") / "season.db"
    build_demo(db)
    with Ledger(db) as ledger:
        ledger.append(master_data())
    return db


def _median(xs: list[float]) -> float:
    return round(statistics.median(xs), 3)


def test_the_ranking_is_the_bottlenecks_query_when_nothing_is_filtered(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        mine = dashboard(ledger)["bottlenecks"]
        theirs = bottlenecks(ledger, top=10)
    keys = ("rank", "from", "to", "from_site", "to_site", "count", "p50_hours", "p90_hours")
    keys += ("mean_hours", "max_hours", "baseline_hours", "excess_hours")
    assert len(mine) == len(theirs) == 10
    assert [{k: r[k] for k in keys} for r in mine] == [{k: r[k] for k in keys} for r in theirs]


def test_delays_by_route_and_month_are_the_legs_medians(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        answer = dashboard(ledger)
        every = list(legs(ledger))
    rows = answer["delays"]
    assert {r["route"] for r in rows} == set(range(1, 7))
    first = answer["bottlenecks"][0]
    one = next(r for r in rows if r["route"] == 1)
    assert (one["from_site"], one["to_site"]) == (first["from_site"], first["to_site"])
    for r in rows:
        hours = [
            g.hours
            for g in every
            if (g.from_stage, g.to_stage, g.from_site, g.to_site)
            == (r["from"], r["to"], r["from_site"], r["to_site"])
            and g.end[:7] == r["month"]
        ]
        assert r["count"] == len(hours) > 0
        assert r["p50_hours"] == _median(hours)


def test_filters_cut_the_legs(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        everything = dashboard(ledger)
        cec = dashboard(ledger, Filters(coop="hq:CECANOR"))
        apr = dashboard(ledger, Filters(coop="hq:APROCASSI"))
        route = dashboard(ledger, Filters(route=("mill:CHICLAYO-1", "port:PAITA")))
        july = dashboard(
            ledger, Filters(since=time_key_of("2025-07-01"), until=time_key_of("2025-08-01"))
        )
        none = dashboard(ledger, Filters(season="2024"))
        every = list(legs(ledger))
    assert everything["seasons"] == ["2025"]
    assert [c["site"] for c in everything["coops"]] == ["hq:APROCASSI", "hq:CECANOR", "hq:JUMARP"]
    assert 0 < cec["legs"] < apr["legs"] < everything["legs"] == len(every)
    sites = {s for r in cec["map"]["routes"] for s in (r["from_site"], r["to_site"])}
    assert "hq:CECANOR" in sites and "hq:APROCASSI" not in sites
    assert route["legs"] == sum(
        1 for g in every if (g.from_site, g.to_site) == ("mill:CHICLAYO-1", "port:PAITA")
    )
    assert {(r["from_site"], r["to_site"]) for r in route["delays"]} == {
        ("mill:CHICLAYO-1", "port:PAITA")
    }
    assert july["legs"] == sum(1 for g in every if "2025-07" <= g.end[:7] < "2025-08")
    assert {r["month"] for r in july["delays"]} == {"2025-07"}
    assert none["legs"] == 0 and none["delays"] == [] and none["bottlenecks"] == []
    assert "Sin tramos" in svg(none, "delays")


def time_key_of(day: str) -> str:
    return time_key(datetime.fromisoformat(day).replace(tzinfo=UTC))


def test_stuck_lots_are_the_stuck_query_at_the_windows_end(season: Path) -> None:
    until = time_key_of("2025-10-31")
    with Ledger.reader(season) as ledger:
        mine = dashboard(ledger, Filters(until=until))
        theirs = stuck(ledger, "2025-10-31")
        jum = dashboard(ledger, Filters(until=until, coop="hq:JUMARP"))
    assert mine["stuck"] == theirs and mine["stuck_total"] == len(theirs) > 0
    assert 0 < len(jum["stuck"]) < len(theirs)
    assert "JUM-25-HQ-009" in {r["lot"] for r in jum["stuck"]}
    assert "APR-25-H0519-1" not in {r["lot"] for r in jum["stuck"]}


def test_the_map_places_sites_from_master_data_and_farms_at_their_plots(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        answer = dashboard(ledger)
    m = answer["map"]
    assert m["unplaced"] == [] and m["routes_total"] == len(m["routes"]) > 20
    by = {s["site"]: s for s in m["sites"]}
    name, lat, _ = SITES["port:PAITA"]
    assert (by["port:PAITA"]["name"], by["port:PAITA"]["latitude"]) == (name, lat)
    assert by["farm:APR-P0502"]["longitude"] == -78.846211  # its plot's point
    paita = next(r for r in m["routes"] if r["to_site"] == "port:PAITA")
    assert paita["count"] == 5 and paita["level"] in ("ok", "slow", "late")
    drawn = svg(answer, "map")
    assert drawn.count('class="route ') == len(m["routes"])
    assert drawn.count('class="site"') == len(m["sites"])
    assert "Puerto de Paita" in drawn


def test_without_master_data_sites_are_listed_not_guessed(tmp_path: Path) -> None:
    db = tmp_path / "bare.db"
    build_demo(db)
    with Ledger.reader(db) as ledger:
        m = dashboard(ledger)["map"]
    assert m["routes"] == [] and "port:PAITA" in m["unplaced"] and m["unplaced_total"] == 11


@pytest.mark.parametrize("chart", CHARTS)
def test_each_charts_csv_holds_the_jsons_rows(season: Path, chart: str) -> None:
    with Ledger.reader(season) as ledger:
        answer = dashboard(ledger, Filters(until=time_key_of("2025-10-31")))
    rows: list[dict[str, Any]] = answer["map"]["routes"] if chart == "map" else answer[chart]
    assert rows
    read = list(csv.DictReader(io.StringIO(to_csv(answer, chart))))
    assert list(read[0]) == list(CSV_COLUMNS[chart])
    assert len(read) == len(rows)
    for got, row in zip(read, rows, strict=True):
        for column in CSV_COLUMNS[chart]:
            value = row[column]
            if isinstance(value, float):
                assert float(got[column]) == value
            else:
                assert got[column] == ("" if value is None else str(value))


def test_the_svg_charts_draw_the_rows_numbers(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        answer = dashboard(ledger)
    delays = svg(answer, "delays", "en")
    drawn = re.findall(r'data-route="(\d+)" data-month="([\d-]+)" data-p50="([\d.]+)"', delays)
    assert sorted((int(r), m, float(p)) for r, m, p in drawn) == sorted(
        (r["route"], r["month"], r["p50_hours"]) for r in answer["delays"]
    )
    assert "Leg delays by route" in delays and "style=" not in delays
    assert "1. gatherer:ELPALTO-01 → hq:JUMARP (gatherer QC → HQ QC)" in delays
    assert "(acopio → CC en sede)" in svg(answer, "delays", "es")
    ranking = svg(answer, "bottlenecks", "es")
    bars = re.findall(r'data-rank="(\d+)" data-excess="([\d.]+)"', ranking)
    assert [(int(r), float(x)) for r, x in bars] == [
        (r["rank"], r["excess_hours"]) for r in answer["bottlenecks"]
    ]


def test_text_in_svg_and_csv_is_escaped(tmp_path: Path) -> None:
    db = tmp_path / "odd.db"
    build_demo(db)
    with Ledger(db) as ledger:
        ledger.append(master_data({"port:PAITA": ('=HYPERLINK("x")<script>', -5.08, -81.1)}))
        ledger.append(master_data({"mill:CHICLAYO-1": ("Planta", -6.8, -79.87)}))
    with Ledger.reader(db) as ledger:
        answer = dashboard(ledger)
    drawn = svg(answer, "map")
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    row = next(csv.DictReader(io.StringIO(to_csv(answer, "map"))))
    assert row["to_name"] == '\'=HYPERLINK("x")<script>'  # not run as a formula


def test_answers_are_kept_until_the_head_moves(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    build_demo(db)
    at = Filters(as_of=datetime(2025, 10, 31, tzinfo=UTC))
    with Ledger.reader(db) as ledger:
        first = dashboard(ledger, at)
        assert dashboard(ledger, at) is first
        later = dashboard(ledger, Filters(as_of=datetime(2025, 11, 30, tzinfo=UTC)))
        assert later["map"] is first["map"]  # the legs' part is kept; only stuck lots change
        assert later["stuck"] != first["stuck"]  # older by a month
    with Ledger(db) as ledger:
        ledger.append(master_data())
    with Ledger.reader(db) as ledger:
        second = dashboard(ledger, at)
    assert second is not first
    assert first["map"]["routes"] == [] and second["map"]["routes"]
