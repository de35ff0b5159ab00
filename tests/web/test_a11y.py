"""Every page of the web app, W1's and W2's: axe-core (vendored, tests/web/vendor/axe-core,
pinned by scripts/vendor.sh) finds no serious or critical violation at either size, and
a page's first load (a fresh browser: no cache, no service worker yet) transfers < 300 KB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, Request, expect

from .webapp import Web

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
TEMPLATES = Path(__file__).resolve().parents[2] / "trace" / "lottrace" / "web" / "templates"
BUYER_LOT = "MILL-25-0412-G1"  # exported to the buyer Elbkaffee

#: (page, who signs in, what shows when the page has drawn, the template it needs)
PAGES: list[tuple[str, str | None, str, str]] = [
    ("/login", None, "#login", "login.html"),
    ("/", "field", "#can-do > li:visible", "home.html"),
    ("/field", "field", "#form-harvest select[name=site] option >> nth=1", "field.html"),
    ("/upload", "qc", "#sheet", "upload.html"),
    ("/find", "buyer", "main", "find.html"),
    (f"/lots/{BUYER_LOT}", "buyer", "main", "lot.html"),
    ("/dashboard", "analyst", "main", "dashboard.html"),
]
#: Pages that exist: W2's are listed as soon as their template is in the package.
LIVE = [p for p in PAGES if (TEMPLATES / p[3]).exists()]
LIMIT = 300_000


def _axe(page: Page, what: str) -> None:
    """Run axe on the page as it is now; fail naming every serious or critical violation."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(n["target"]) for n in v["nodes"][:5])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{what}: " + "; ".join(bad)


def _open(
    page: Page, path: str, who: str | None, ready: str, sign_in: Callable[[Page, str], None]
) -> None:
    if who:
        sign_in(page, who)
    page.goto(path)
    page.locator(ready).first.wait_for(state="attached")
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize(("path", "who", "ready", "_t"), LIVE, ids=[p[0] for p in LIVE])
def test_axe_finds_no_serious_violation(
    page: Page,
    sign_in: Callable[[Page, str], None],
    path: str,
    who: str | None,
    ready: str,
    _t: str,
) -> None:
    _open(page, path, who, ready, sign_in)
    _axe(page, path)


def test_axe_on_every_checkpoint_form_its_problems_and_its_summary(
    page: Page, sign_in: Callable[[Page, str], None]
) -> None:
    _open(page, "/field", "field", "#form-harvest select[name=site] option >> nth=1", sign_in)
    for tab in page.locator("#types a").all():
        tab.click()
        _axe(page, f"/field {tab.get_attribute('data-type')}")
    page.get_by_role("link", name="Cosecha").click()
    page.get_by_role("button", name="Revisar").click()  # empty: problems shown
    expect(page.locator("#form-harvest .problems li").first).to_be_visible()
    _axe(page, "/field with problems")
    form = page.locator("#form-harvest")
    form.get_by_label("Lugar").select_option("farm:APR-P0231")
    form.get_by_label("Código de lote").fill("WEB-AXE-1")
    form.get_by_label("Kilos").fill("10,5")
    form.get_by_label("Productor").fill("P")
    form.get_by_label("Parcela", exact=True).fill("PL")
    page.get_by_role("button", name="Revisar").click()
    expect(page.locator("#confirm")).to_be_visible()
    _axe(page, "/field summary")


def test_axe_on_the_upload_page_with_its_map_and_problems(
    page: Page, sign_in: Callable[[Page, str], None], tmp_path: Path
) -> None:
    sheet = Path(__file__).resolve().parents[1] / "data" / "acopio_sig.csv"
    copy = tmp_path / "sheet.csv"
    copy.write_bytes(sheet.read_bytes().replace(b"Peso (kg)", b"Pesada"))
    _open(page, "/upload", "qc", "#sheet", sign_in)
    page.get_by_label("Hoja (CSV o Excel)").set_input_files(str(copy))
    page.get_by_role("button", name="Revisar la hoja").click()
    expect(page.locator("#problems")).to_be_visible()
    _axe(page, "/upload with its map and problems")


@pytest.mark.parametrize(("path", "who", "ready", "_t"), LIVE, ids=[p[0] for p in LIVE])
def test_a_first_load_transfers_under_300_kb(
    context: BrowserContext,
    web: Web,
    path: str,
    who: str | None,
    ready: str,
    _t: str,
) -> None:
    if who:  # signed in without loading a page first: the token put where /login puts it
        token = web.tokens[who]
        context.add_init_script(f"localStorage.setItem('lottrace.token', {token!r})")
    sizes: list[tuple[str, int]] = []

    def finished(request: Request) -> None:
        s = request.sizes()
        sizes.append((request.url, s["responseBodySize"] + s["responseHeadersSize"]))

    context.on("requestfinished", finished)
    page = context.new_page()
    page.goto(path)
    page.locator(ready).first.wait_for(state="attached")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)  # the service worker's own first fetches, if any
    page.wait_for_load_state("networkidle")
    total = sum(n for _url, n in sizes)
    assert sizes, "nothing was loaded"
    assert any(url.endswith("/static/app.js") for url, _n in sizes)
    assert total < LIMIT, f"{path}: {total} bytes: " + ", ".join(f"{u} {n}" for u, n in sizes)
