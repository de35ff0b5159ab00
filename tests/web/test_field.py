"""/field: logging checkpoints from a phone, in Spanish, online and offline, and what the
server lets each user write. Events are counted in the ledger through the library."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count

import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, expect

from lottrace.ledger import Ledger

from .webapp import OTHER_SITE, Web, count_events

_n = count(1)


def _lot(page: Page) -> str:
    width = page.viewport_size["width"] if page.viewport_size else 0
    return f"WEB-H-{width}-{next(_n)}"


def _fill_harvest(page: Page, lot: str, kg: str = "212,5") -> None:
    form = page.locator("#form-harvest")
    form.get_by_label("Lugar").select_option("farm:APR-P0231")
    form.get_by_label("Código de lote").fill(lot)
    form.get_by_label("Kilos").fill(kg)
    form.get_by_label("Productor").fill("APR-0231")
    form.get_by_label("Parcela", exact=True).fill("P0231-A")
    form.get_by_label("Humedad").count()  # harvest has no moisture field
    form.get_by_label("Longitud de la parcela").fill("-78,981")
    form.get_by_label("Latitud de la parcela").fill("-5,149")


def _stored(db: object, lot: str) -> list[dict[str, object]]:
    with Ledger.reader(db) as ledger:  # type: ignore[arg-type]
        return [e.event.model_dump(mode="json") for e in ledger.lot_events(lot)]


def _open_field(page: Page, sign_in: Callable[[Page, str], None], who: str = "field") -> None:
    sign_in(page, who)
    page.goto("/field")
    expect(page.locator("h1")).to_have_text("Registrar un punto de control")
    expect(page.locator("#form-harvest").get_by_label("Lugar")).to_contain_text("farm:")


def test_log_a_harvest_in_spanish(
    page: Page,
    web: Web,
    sign_in: Callable[[Page, str], None],
    shot: Callable[[Page, str], None],
) -> None:
    _open_field(page, sign_in)
    shot(page, "field")
    before = count_events(web.db)
    lot = _lot(page)
    _fill_harvest(page, lot)
    page.get_by_role("button", name="Revisar").click()
    summary = page.locator("#confirm")
    expect(summary.get_by_role("heading")).to_have_text("Se guardará:")
    expect(summary).to_contain_text("212,5")
    expect(summary).to_contain_text(lot)
    shot(page, "field-confirm")
    assert count_events(web.db) == before  # checked, not written
    page.get_by_role("button", name="Guardar").click()
    expect(page.locator("#result")).to_contain_text("Guardado: evento")
    assert count_events(web.db) == before + 1
    (ev,) = _stored(web.db, lot)
    assert ev["type"] == "harvest" and ev["kg"] == 212.5 and ev["site"] == "farm:APR-P0231"
    assert ev["plot"]["geometry"]["coordinates"] == [-78.981, -5.149]  # type: ignore[index]
    assert ev["actor"] == "field (APROCASSI, field)"
    # ready for the next one: the site kept, the lot empty
    expect(page.locator("#form-harvest").get_by_label("Lugar")).to_have_value("farm:APR-P0231")
    expect(page.locator("#form-harvest").get_by_label("Código de lote")).to_have_value("")


def test_problems_are_shown_in_words_before_saving_and_nothing_is_written(
    page: Page, web: Web, sign_in: Callable[[Page, str], None], shot: Callable[[Page, str], None]
) -> None:
    _open_field(page, sign_in)
    before = count_events(web.db)
    _fill_harvest(page, _lot(page), kg="doce")
    page.get_by_role("button", name="Revisar").click()
    kilos = page.locator("#form-harvest").get_by_label("Kilos")
    expect(kilos).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#harvest-kg-problem")).to_have_text("campo 'kg': 'doce' no es un número")
    expect(kilos).to_be_focused()
    # a rule of the ledger, not of the form: drawing from a lot that does not exist
    page.get_by_role("link", name="Acopio").click()
    qc = page.locator("#form-gatherer_qc")
    qc.get_by_label("Lugar").select_option("gatherer:SIG-03")
    qc.get_by_label("Código de lote").fill("WEB-G-NOPE")
    qc.get_by_label("Lotes de origen").fill("NO-SUCH-LOT=10,5")
    qc.get_by_label("Resultado").select_option(label="Aceptado")
    qc.get_by_label("Humedad (%)").fill("11,2")
    page.get_by_role("button", name="Revisar").click()
    inputs = qc.get_by_label("Lotes de origen")
    expect(inputs).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#gatherer_qc-inputs-problem")).to_have_text(
        "el lote nombrado nunca se creó (input lot NO-SUCH-LOT was never created)"
    )
    shot(page, "field-problems")
    assert count_events(web.db) == before


def test_offline_two_more_then_back_online_three_new_events(
    context: BrowserContext, page: Page, web: Web, sign_in: Callable[[Page, str], None]
) -> None:
    _open_field(page, sign_in)
    before = count_events(web.db)
    lots = [_lot(page) for _ in range(3)]
    _fill_harvest(page, lots[0])
    page.get_by_role("button", name="Revisar").click()
    page.get_by_role("button", name="Guardar").click()
    expect(page.locator("#result")).to_contain_text("Guardado")

    context.set_offline(True)
    expect(page.locator("#offline")).to_be_visible()
    for i, lot in enumerate(lots[1:], start=1):
        _fill_harvest(page, lot, kg=f"{100 + i},5")
        page.get_by_role("button", name="Revisar").click()
        expect(page.locator("#confirm")).to_contain_text("no se pudo revisar")
        page.get_by_role("button", name="Guardar").click()
        expect(page.locator("#result")).to_contain_text("guardado en el teléfono")
        expect(page.locator("#outbox")).to_contain_text(f"Por enviar: {i}")
    assert count_events(web.db) == before + 1

    context.set_offline(False)
    expect(page.locator("#outbox")).to_have_attribute("data-waiting", "0")
    assert count_events(web.db) == before + 3
    for i, lot in enumerate(lots):
        (ev,) = _stored(web.db, lot)
        assert ev["kg"] == (212.5 if i == 0 else 100 + i + 0.5)
        assert ev["actor"] == "field (APROCASSI, field)"


def test_a_checkpoint_sent_twice_from_the_outbox_is_stored_once(
    page: Page, web: Web, sign_in: Callable[[Page, str], None]
) -> None:
    _open_field(page, sign_in)
    before = count_events(web.db)
    lot = _lot(page)
    form = {
        "type": "harvest",
        "time": "2025-06-02T07:30:00-05:00",
        "site": "farm:APR-P0231",
        "lot": lot,
        "kg": "80,25",
        "producer": "APR-0231",
        "plot.id": "P0231-A",
    }
    # the same logged checkpoint twice (a send whose answer was lost, then sent again)
    page.evaluate("f => LT.outbox.add(f).then(() => LT.outbox.add(f))", form)
    sent = page.evaluate("() => LT.outbox.flush()")
    assert sent == 2
    assert count_events(web.db) == before + 1
    assert len(_stored(web.db, lot)) == 1


def test_the_service_worker_serves_the_field_page_offline(
    context: BrowserContext, page: Page, web: Web, sign_in: Callable[[Page, str], None]
) -> None:
    _open_field(page, sign_in)
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now under the worker's control, which keeps what it fetches
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    context.set_offline(True)
    page.reload()
    expect(page.locator("h1")).to_have_text("Registrar un punto de control")
    expect(page.locator("#offline")).to_be_visible()
    context.set_offline(False)


def test_english_switch(page: Page, sign_in: Callable[[Page, str], None]) -> None:
    _open_field(page, sign_in)
    page.get_by_role("link", name="English").click()
    expect(page.locator("h1")).to_have_text("Log a checkpoint")
    expect(page.locator("#form-harvest").get_by_label("Kilograms")).to_be_visible()
    page.goto("/field")  # the cookie keeps it
    expect(page.locator("h1")).to_have_text("Log a checkpoint")


def test_another_org_only_sees_its_own_sites(
    page: Page, sign_in: Callable[[Page, str], None]
) -> None:
    sign_in(page, "other_field")
    page.goto("/field")
    site = page.locator("#form-harvest").get_by_label("Lugar")
    expect(site.locator("option")).to_have_count(2)
    expect(site).to_have_value(OTHER_SITE)


# --------------------------------------------------------------------------- the API


def _harvest_form(lot: str, site: str) -> dict[str, str]:
    return {
        "type": "cosecha",
        "time": "2025-06-03T07:30:00-05:00",
        "site": site,
        "lot": lot,
        "kg": "50,5",
        "producer": "P-1",
        "plot.id": "PL-1",
    }


def test_api_another_orgs_field_user_cannot_write_at_the_owners_site(web: Web) -> None:
    before = count_events(web.db)
    r = web.api("other_field").post(
        "/api/field/events", json=_harvest_form("WEB-X-1", "farm:APR-P0231")
    )
    assert r.status_code == 403
    body = r.json()
    assert body["field"] == "site" and "farm:APR-P0231" in body["detail"]
    checked = web.api("other_field").post(
        "/api/field/check", json=_harvest_form("WEB-X-1", "farm:APR-P0231")
    )
    assert checked.status_code == 200 and checked.json()["ok"] is False
    assert checked.json()["problems"][0]["field"] == "site"
    ok = web.api("other_field").post("/api/field/events", json=_harvest_form("WEB-X-2", OTHER_SITE))
    assert ok.status_code == 201, ok.text
    assert count_events(web.db) == before + 1
    # and the owner's field user cannot write at the other organisation's site
    r = web.api("field").post("/api/field/events", json=_harvest_form("WEB-X-3", OTHER_SITE))
    assert r.status_code == 403 and r.json()["field"] == "site"
    assert count_events(web.db) == before + 1


@pytest.mark.parametrize("who", ["buyer", "analyst"])
def test_api_roles_that_do_not_write_cannot_log(web: Web, who: str) -> None:
    r = web.api(who).post("/api/field/events", json=_harvest_form("WEB-R-1", "farm:APR-P0231"))
    assert r.status_code == 403


def test_api_sending_twice_stores_once_and_the_check_writes_nothing(web: Web) -> None:
    before = count_events(web.db)
    form = _harvest_form("WEB-D-1", "farm:APR-P0231")
    check = web.api("field").post("/api/field/check", json=form).json()
    assert check["ok"] is True and check["duplicate"] is False
    assert count_events(web.db) == before
    first = web.api("field").post("/api/field/events", json=form)
    again = web.api("field").post("/api/field/events", json=form)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["event_id"] == again.json()["event_id"] == check["event_id"]
    assert again.json()["duplicate"] is True
    assert count_events(web.db) == before + 1


def test_api_a_problem_names_its_field(web: Web) -> None:
    form = _harvest_form("WEB-P-1", "farm:APR-P0231") | {"moisture_pct": "140"}
    r = web.api("field").post("/api/field/events", json=form)
    assert r.status_code == 400
    assert r.json()["field"] == "moisture_pct"
    form = _harvest_form("WEB-P-1", "gatherer:SIG-03")
    r = web.api("field").post("/api/field/events?lang=es", json=form)
    assert r.status_code == 400 and r.json()["field"] == "site"
    assert "un evento harvest se registra en" in r.json()["detail"]


def test_api_open_lots_with_kg_left(web: Web) -> None:
    lots = web.api("field").get("/api/field/lots", params={"type": "export"}).json()["lots"]
    assert lots and all(row["kg_left"] > 0 for row in lots)
    assert {row["last"] for row in lots} <= {
        "harvest", "drying", "gatherer_qc", "hq_qc", "dry_mill", "export"
    }  # fmt: skip
    early = web.api("field").get("/api/field/lots", params={"type": "drying"}).json()["lots"]
    assert {row["last"] for row in early} <= {"harvest", "drying"}
    # a buyer sees only lots upstream of its own exports
    mine = web.api("buyer").get("/api/field/lots").json()["lots"]
    every = web.api("field").get("/api/field/lots").json()["lots"]
    assert len(mine) < len(every)


def test_lots_to_draw_from_are_picked_from_a_list_with_the_kilos_left(
    page: Page, web: Web, sign_in: Callable[[Page, str], None], shot: Callable[[Page, str], None]
) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 0
    harvest, gathered = f"WEB-PICK-{width}", f"WEB-G-{width}"
    r = web.api("field").post("/api/field/events", json=_harvest_form(harvest, "farm:APR-P0231"))
    assert r.status_code == 201, r.text
    _open_field(page, sign_in)
    page.get_by_role("link", name="Acopio").click()
    qc = page.locator("#form-gatherer_qc")
    qc.get_by_text("Lotes con kilos por sacar").click()
    row = qc.get_by_label(f"{harvest} · farm:APR-P0231 · quedan 50,5 kg")
    row.check()
    expect(qc.get_by_label("Lotes de origen")).to_have_value(f"{harvest}=50,5")
    qc.get_by_label(f"Kilos de {harvest}").fill("40,25")
    expect(qc.get_by_label("Lotes de origen")).to_have_value(f"{harvest}=40,25")
    shot(page, "field-lots")
    qc.get_by_label("Lugar").select_option("gatherer:SIG-03")
    qc.get_by_label("Código de lote").fill(gathered)
    qc.get_by_label("Resultado").select_option(label="Aceptado")
    qc.get_by_label("Humedad (%)").fill("14,5")  # outside 9-13: a warning, not a refusal
    page.get_by_role("button", name="Revisar").click()
    expect(page.locator("#confirm")).to_contain_text("Avisos")
    expect(page.locator("#confirm")).to_contain_text(f"{harvest} 40,25 kg")
    page.get_by_role("button", name="Guardar").click()
    expect(page.locator("#result")).to_contain_text("Guardado")
    (ev,) = _stored(web.db, gathered)
    assert ev["inputs"] == [{"lot": harvest, "kg": 40.25}] and ev["moisture_pct"] == 14.5
    left = web.api("field").get("/api/field/lots", params={"type": "gatherer_qc"}).json()["lots"]
    assert {row["lot"]: row["kg_left"] for row in left}[harvest] == 10.25


def test_a_checkpoint_refused_when_sent_later_stays_on_the_phone_saying_why(
    page: Page, web: Web, sign_in: Callable[[Page, str], None]
) -> None:
    _open_field(page, sign_in)
    before = count_events(web.db)
    refused = _harvest_form("WEB-REFUSED-1", OTHER_SITE) | {"type": "harvest"}
    page.evaluate("f => LT.outbox.add(f)", refused)
    assert page.evaluate("() => LT.outbox.flush()") == 0
    expect(page.locator("#outbox")).to_contain_text("No se pudo guardar WEB-REFUSED-1")
    expect(page.locator("#outbox")).to_have_attribute("data-waiting", "0")
    assert page.evaluate("() => LT.outbox.all().then(items => items.length)") == 1
    assert count_events(web.db) == before


def test_signing_out_asks_then_drops_the_unsent_checkpoints_and_the_kept_lot_pages(
    context: BrowserContext, page: Page, web: Web, sign_in: Callable[[Page, str], None]
) -> None:
    """Issue #19, F6 + F10: the next user's token must never send them as theirs."""
    sign_in(page, "field")
    page.goto("/find?q=APR")  # kept by the service worker under its address
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    page.goto("/field")
    context.set_offline(True)
    lot = _lot(page)
    form = {"type": "harvest", "time": "2025-06-02T07:30:00-05:00", "site": "farm:APR-P0231"}
    form |= {"lot": lot, "kg": "10", "producer": "APR-0231", "plot.id": "P0231-A"}
    page.evaluate("f => LT.outbox.add(f)", form)
    before = count_events(web.db)
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        if len(asked) == 1:
            dialog.dismiss()
        else:
            dialog.accept()

    page.on("dialog", answer)
    page.get_by_role("button", name="Salir").click()
    expect(page.locator("#logout")).to_be_visible()
    assert page.evaluate("() => LT.outbox.all().then(items => items.length)") == 1
    assert page.evaluate("() => LT.token()") is not None  # kept: the user said no
    page.get_by_role("button", name="Salir").click()
    page.wait_for_url(f"{web.url}/login")
    assert (
        asked
        == [
            "Hay 1 registros sin enviar en este teléfono: se perderán si sale. ¿Salir de todos modos?"
        ]
        * 2
    )
    assert page.evaluate("() => LT.outbox.all().then(items => items.length)") == 0
    kept = page.evaluate(
        "async () => { const out = []; for (const k of await caches.keys())"
        " for (const r of await (await caches.open(k)).keys()) out.push(new URL(r.url).pathname);"
        " return out; }"
    )
    assert "/login" in kept and not [p for p in kept if p.startswith(("/find", "/lots"))]
    context.set_offline(False)
    sign_in(page, "qc")
    page.goto("/field")
    assert page.evaluate("() => LT.outbox.flush()") == 0
    assert count_events(web.db) == before


def test_api_rule_problems_are_said_in_spanish_on_spanish_pages(web: Web) -> None:
    """The ledger's rules speak English; the field pages put each rule's Spanish words
    first and its particulars after (rules.RULES_ES, kept in step with rules.RULES)."""
    from lottrace.rules import RULES, RULES_ES, WARNINGS, WARNINGS_ES

    assert RULES_ES.keys() == RULES.keys() and WARNINGS_ES.keys() == WARNINGS.keys()
    form = _harvest_form("APR-25-H0502-1", "farm:APR-P0502")  # the sample's own lot: taken
    es = web.api("field").post("/api/field/check?lang=es", json=form).json()
    assert es["ok"] is False
    problem = es["problems"][0]
    assert problem["rule"] == "lot-exists"
    assert problem["detail"].startswith(RULES_ES["lot-exists"] + " (")
    en = web.api("field").post("/api/field/check?lang=en", json=form).json()
    assert not en["problems"][0]["detail"].startswith(RULES_ES["lot-exists"])
