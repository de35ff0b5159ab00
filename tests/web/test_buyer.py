"""Buyers: find a lot by code, producer or container; its live passport; and never another
buyer's lot, in the page or in the API (404, the same as a lot that does not exist)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from .webapp import ELB, Web

MINE = "MILL-25-0412-G1"  # exported to Elbkaffee (the "buyer" user)
THEIRS = "EXP-25-CEC-01"  # exported to Flandria ("buyer2")
MY_CONTAINER, THEIR_CONTAINER = "HLXU8364124", "MSCU7249054"
#: What a page may transfer on its first load, in bytes (the issue's budget).
BUDGET = 300_000


def _count_bytes(page: Page) -> list[int]:
    sizes: list[int] = []
    page.on("requestfinished", lambda r: sizes.append(r.sizes()["responseBodySize"]))
    return sizes


def _csp_errors(page: Page) -> list[str]:
    found: list[str] = []
    page.on(
        "console",
        lambda m: found.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return found


def test_a_buyer_finds_its_lot_by_container_and_reads_its_passport(
    page: Page,
    sign_in: Callable[[Page, str], None],
    shot: Callable[[Page, str], None],
) -> None:
    csp = _csp_errors(page)
    sign_in(page, "buyer")
    sizes = _count_bytes(page)
    page.goto("/find")
    expect(page.locator("h1")).to_have_text("Buscar un lote")
    page.get_by_label("Código de lote, productor o contenedor").fill(MY_CONTAINER.lower())
    page.get_by_role("button", name="Buscar").click()
    expect(page.locator("#found")).to_have_text("1 lote(s) encontrados.")
    row = page.locator("#results tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text(f"contenedor {MY_CONTAINER}")
    assert sum(sizes) < BUDGET
    shot(page, "find")
    sizes.clear()
    row.get_by_role("link", name=MINE).click()
    page.wait_for_url(f"**/lots/{MINE}")
    expect(page.locator("#lot-code")).to_have_text(MINE)
    expect(page.locator("#exports tbody tr td").first).to_have_text(MY_CONTAINER)
    assert page.locator("#producers tbody tr").count() == 7
    assert page.locator("#plot-map svg circle").count() >= 7
    # the whole map is in view (no sideways scroll on a phone) and every label inside it
    holder = page.locator("div#plot-map")
    assert holder.evaluate("e => e.scrollWidth <= e.clientWidth"), "the map scrolls sideways"
    outside = holder.evaluate(
        """e => { const s = e.querySelector('svg'), v = s.viewBox.baseVal, r = s.getBoundingClientRect();
           const box = e.getBoundingClientRect();
           const bad = [...s.querySelectorAll('text')].map(t => [t.textContent, t.getBBox()])
             .filter(([_, b]) => b.x < 0 || b.y < 0 || b.x + b.width > v.width || b.y + b.height > v.height)
             .map(([n]) => n);
           if (r.left < box.left - 0.5 || r.right > box.right + 0.5) bad.push('svg');
           return bad; }"""
    )
    assert outside == [], outside
    expect(page.locator("#harvests tbody tr").first).to_contain_text("Catimor")
    assert page.locator("#qc tbody tr").count() > 0
    expect(page.locator("#certs tbody")).to_contain_text("organic")
    expect(page.locator("#certs tbody")).to_contain_text(
        "el certificado que la cubría estaba vencido ese día (certificate CU-PE-ORG-24-0342 expired"
    )
    expect(page.locator("#route li").first).to_contain_text("Cosecha · farm:")
    expect(page.locator("#route li").last).to_contain_text("port:PAITA")
    expect(page.locator("#eudr-check")).to_have_text(
        "Las 7 parcelas tienen geolocalización válida para TRACES."
    )
    assert page.locator("#qr svg").count() == 1
    expect(page.locator("#qr-url")).to_have_text(f"{page.url.split('/lots/')[0]}/lot/{MINE}")
    assert sum(sizes) < BUDGET, sizes
    shot(page, "lot")
    with page.expect_download() as done:
        page.get_by_role("button", name="Descargar el GeoJSON (EUDR)").click()
    text = Path(done.value.path()).read_text(encoding="utf-8")
    assert '"FeatureCollection"' in text and text.count('"Feature"') == 7
    assert csp == []


def test_a_buyer_finds_by_producer_with_the_keyboard(
    page: Page, sign_in: Callable[[Page, str], None]
) -> None:
    sign_in(page, "buyer")
    page.goto("/find")
    page.locator("#main").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("APR-0502")
    page.keyboard.press("Enter")
    expect(page.locator("#found")).to_have_text("5 lote(s) encontrados.")
    lots = page.locator("#results tbody tr td:first-child")
    expect(lots).to_contain_text(["APR-25-H0502-1", MINE])
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "APR-25-H0502-1"
    page.keyboard.press("Enter")
    page.wait_for_url("**/lots/APR-25-H0502-1")
    expect(page.locator("#lot-code")).to_have_text("APR-25-H0502-1")


def test_a_buyer_does_not_see_another_buyers_lot(
    page: Page, sign_in: Callable[[Page, str], None], shot: Callable[[Page, str], None]
) -> None:
    sign_in(page, "buyer")
    page.goto(f"/lots/{THEIRS}")
    expect(page.locator("#state")).to_have_text(f"No hay un lote {THEIRS} que usted pueda ver.")
    expect(page.locator("#passport")).to_be_hidden()
    assert THEIRS not in page.locator("#passport").inner_text()
    page.goto(f"/find?q={THEIR_CONTAINER}")
    expect(page.locator("#found")).to_have_text(
        f"Ningún lote que usted pueda ver coincide con «{THEIR_CONTAINER}»."
    )
    page.goto(f"/find?q={THEIRS}")
    expect(page.locator("#found")).to_contain_text("Ningún lote")
    shot(page, "find-none")
    page.goto(f"/lots/{MINE}?lang=en")
    expect(page.locator("h1")).to_have_text("Lot passport")
    expect(page.locator("#lot-code")).to_have_text(MINE)


def test_at_the_api_another_buyers_lot_is_a_missing_lot(web: Web) -> None:
    buyer = web.api("buyer")
    theirs = buyer.get(f"/api/lots/{THEIRS}/card")
    missing = buyer.get("/api/lots/NO-SUCH-LOT/card")
    assert theirs.status_code == missing.status_code == 404
    assert {k: v for k, v in theirs.json().items() if k != "detail"} == {
        k: v for k, v in missing.json().items() if k != "detail"
    }
    assert theirs.json()["detail"] == f"no lot {THEIRS!r}"
    card = buyer.get(f"/api/lots/{MINE}/card").json()
    assert card["lot"] == MINE and card["exports"][0]["buyer"] == ELB
    assert card["map_svg"].startswith("<svg") and "<svg" in card["qr_svg"]
    assert web.api("buyer2").get(f"/api/lots/{MINE}/card").status_code == 404
    assert web.api("buyer2").get(f"/api/lots/{THEIRS}/card").status_code == 200
    assert web.api("analyst").get(f"/api/lots/{THEIRS}/card").status_code == 200


def test_at_the_api_a_search_lists_only_what_the_caller_may_see(web: Web) -> None:
    def lots(who: str, q: str) -> list[str]:
        r = web.api(who).get("/api/find", params={"q": q})
        assert r.status_code == 200, r.text
        return [x["lot"] for x in r.json()["results"]]

    assert lots("buyer", "HLXU") == [MINE, "EXP-25-APR-02"]  # both exported to Elbkaffee
    assert lots("buyer", THEIR_CONTAINER) == []
    assert lots("buyer2", THEIR_CONTAINER) == [THEIRS]
    assert MINE not in lots("buyer2", "APR-0502")
    assert lots("buyer2", MINE) == []
    assert lots("other_field", "EXP-25") == []  # another organisation with no lot of its own
    assert THEIRS in lots("analyst", THEIR_CONTAINER)
    assert web.api("buyer").get("/api/find", params={"q": "x" * 201}).status_code == 400


def test_a_site_given_in_the_access_file_is_seen_at_once(tmp_path: Path) -> None:
    """Who sees what is kept per ledger head, and an organisation's sites (the access file)
    are part of that key: giving it a site shows that site's lots without any append."""
    from lottrace.demo import build_demo
    from test_server import lottrace, start

    db = tmp_path / "s.db"
    build_demo(db)
    assert lottrace(db, "users", "add", "o", "--org", "APROCASSI", "--role", "admin", "--owner")
    token = lottrace(db, "users", "add", "v", "--org", "Vecina", "--role", "field").stdout
    proc, url = start(db, tmp_path / "log")
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token.strip()}"}, timeout=60
        ) as client:

            def found() -> list[str]:
                r = client.get("/api/find", params={"q": "APR-25-H0502-1"})
                assert r.status_code == 200, r.text
                return [x["lot"] for x in r.json()["results"]]

            assert found() == []
            given = lottrace(db, "users", "site", "farm:APR-P0502", "--org", "Vecina")
            assert given.returncode == 0, given.stderr
            assert found() == ["APR-25-H0502-1"]
            assert client.get("/api/lots/APR-25-H0502-1/card").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_at_the_api_a_certification_reason_is_said_in_the_page_s_language(web: Web) -> None:
    """Spanish first, the certificate and its date after (compliance.REASONS_ES); English with
    ?lang=en, as the library says it."""
    from lottrace.compliance import REASONS_ES

    def reasons(lang: str) -> list[dict[str, str]]:
        card = web.api("buyer").get(f"/api/lots/{MINE}/card?lang={lang}").json()
        return [b for c in card["certifications"] for b in c["breaking"]]

    es, en = reasons("es"), reasons("en")
    expired = [b for b in es if b["reason_code"] == "expired"]
    assert expired and expired[0]["reason"].startswith(REASONS_ES["expired"] + " (certificate ")
    assert [b["reason_code"] for b in es] == [b["reason_code"] for b in en]
    assert all(b["reason_code"] in REASONS_ES for b in es)
    english = next(b["reason"] for b in en if b["reason_code"] == "expired")
    assert english.startswith("certificate CU-PE-ORG-24-0342 expired on ")
    assert expired[0]["reason"] == f"{REASONS_ES['expired']} ({english})"
