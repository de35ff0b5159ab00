"""The shell: sign in with a token, the home page by role, the language switch, ``/`` still
JSON for programs, the pages' own CSP, the service worker."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from .webapp import Web


def test_sign_in_and_the_home_page_shows_what_the_role_can_do(
    page: Page, sign_in: Callable[[Page, str], None], shot: Callable[[Page, str], None]
) -> None:
    page.goto("/login")
    expect(page.locator("h1")).to_have_text("Entrar")
    shot(page, "login")
    page.get_by_label("Clave (token)").fill("lt_not-a-token")
    page.get_by_role("button", name="Entrar").click()
    expect(page.get_by_role("alert")).to_have_text("Esa clave no es de un usuario activo.")
    sign_in(page, "field")
    expect(page.locator("#hello")).to_have_text("Hola, field (APROCASSI, field).")
    cards = page.locator("#can-do > li:visible a")
    expect(cards).to_have_text(["Registrar", "Subir hoja"])
    shot(page, "home")
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Home")
    expect(page.locator("#can-do > li:visible a")).to_have_text(["Log", "Upload sheet"])


def test_a_buyer_is_offered_find_not_field_logging(
    page: Page, sign_in: Callable[[Page, str], None]
) -> None:
    sign_in(page, "buyer")
    expect(page.locator("#can-do > li:visible a")).to_have_text(["Buscar lote"])


def test_a_page_without_a_token_goes_to_login(page: Page, web: Web) -> None:
    page.goto("/field")
    page.wait_for_url(f"{web.url}/login?next=%2Ffield")


def test_root_is_json_for_programs_and_html_for_browsers(web: Web) -> None:
    as_program = httpx.get(web.url + "/", headers={"Accept": "application/json"})
    assert as_program.json()["name"] == "lottrace"
    assert httpx.get(web.url + "/").json()["name"] == "lottrace"
    as_browser = httpx.get(web.url + "/", headers={"Accept": "text/html,*/*;q=0.8"})
    assert as_browser.headers["content-type"].startswith("text/html")
    csp = as_browser.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


def test_me_answers_who_the_token_is_and_its_sites(web: Web) -> None:
    me = web.api("other_field").get("/api/me").json()
    assert me == {
        "name": "other_field",
        "org": "Cooperativa Vecina",
        "role": "field",
        "owner": False,
        "sites": ["farm:VECINA-01"],
    }
    mine = web.api("field").get("/api/me").json()["sites"]
    assert "farm:VECINA-01" not in mine and "gatherer:SIG-03" in mine
    assert web.api("buyer").get("/api/me").json()["sites"] == []
    assert httpx.get(web.url + "/api/me").status_code == 401


def test_the_service_worker_is_served_at_the_root_with_the_page_policy(web: Web) -> None:
    r = httpx.get(web.url + "/sw.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert "connect-src 'self'" in r.headers["content-security-policy"]
    assert "@VERSION@" not in r.text


def test_sign_in_follows_next_only_to_a_path_of_this_server(page: Page, web: Web) -> None:
    """Issue #19, F7: ``/\\host`` and ``/<TAB>/host`` are ``//host`` to a browser."""
    for evil in (
        "/%5Cevil.example/x",
        "/%09/evil.example/x",
        "//evil.example/x",
        "https://evil.example/",
    ):
        page.goto(f"/login?next={evil}")
        page.get_by_label("Clave (token)").fill(web.tokens["field"])
        page.get_by_role("button", name="Entrar").click()
        page.wait_for_url(f"{web.url}/")
    page.goto("/login?next=%2Ffield%3Ftype%3Ddrying")
    page.get_by_label("Clave (token)").fill(web.tokens["field"])
    page.get_by_role("button", name="Entrar").click()
    page.wait_for_url(f"{web.url}/field?type=drying")


def test_me_is_kept_per_head_and_a_new_site_shows_at_once(web: Web) -> None:
    """/api/me's sites (a scan of the ledger) are kept per ledger head: the next append,
    here a harvest at a farm the ledger never saw, shows its site in the very next answer."""
    field = web.api("field")
    before = field.get("/api/me").json()["sites"]
    assert field.get("/api/me").json()["sites"] == before  # kept
    assert "farm:ME-NEW-1" not in before
    form = {
        "type": "cosecha",
        "time": "2025-06-03T07:30:00-05:00",
        "site": "farm:ME-NEW-1",
        "lot": "ME-NEW-LOT-1",
        "kg": "10",
        "producer": "P-ME",
        "plot.id": "PL-ME",
    }
    assert field.post("/api/field/events", json=form).status_code == 201
    assert "farm:ME-NEW-1" in field.get("/api/me").json()["sites"]
