"""/upload: a quality manager's sheet, its suggested column map and every problem per row,
the map fixed on the page, then imported all or nothing through the library's import."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from lottrace.ledger import Ledger

from .webapp import Web, count_events

ACOPIO = Path(__file__).resolve().parents[1] / "data" / "acopio_sig.csv"


def _sheet(tmp_path: Path, prefix: str, *, bad: bool = False) -> Path:
    """The gatherer's sheet (cp1252, `;`, decimal commas), its lots renamed to be new, with two
    columns the suggestions do not know (and, if ``bad``, two bad rows)."""
    data = ACOPIO.read_bytes().replace(b"SIG-25-", prefix.encode() + b"-")
    data = data.replace(b"Peso (kg)", b"Pesada").replace(b"Observaciones", b"Comentario del jefe")
    if bad:
        data = data.replace(b";1.020,5;", b";doce;").replace(b"03/06/2025", b"33/06/2025", 1)
    path = tmp_path / f"{prefix}.csv"
    path.write_bytes(data)
    return path


def _upload(page: Page, path: Path) -> None:
    page.goto("/upload")
    expect(page.locator("h1")).to_have_text("Subir una hoja de cálculo")
    page.get_by_label("Hoja (CSV o Excel)").set_input_files(str(path))
    page.get_by_role("button", name="Revisar la hoja").click()
    expect(page.locator("#map")).to_be_visible()


def _fix_map(page: Page) -> None:
    page.get_by_label("Campo para la columna «Pesada»").select_option("kg")
    page.get_by_label("Campo para la columna «Comentario del jefe»").select_option("note")
    page.get_by_label("Lugar de las filas de Cosecha").select_option("farm:APR-P0231")
    page.get_by_label("Lugar de las filas de Acopio").select_option("gatherer:SIG-03")


def test_upload_a_sheet_fix_its_map_and_import_it(
    page: Page,
    web: Web,
    tmp_path: Path,
    sign_in: Callable[[Page, str], None],
    shot: Callable[[Page, str], None],
) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 0
    prefix = f"UPW{width}"
    sign_in(page, "qc")
    _upload(page, _sheet(tmp_path, prefix))
    # the suggested map: recognised columns chosen, the two unknown ones flagged
    expect(page.get_by_label("Campo para la columna «Fecha»")).to_have_value("time")
    expect(page.get_by_label("Campo para la columna «DNI»")).to_have_value("")
    pesada = page.get_by_label("Campo para la columna «Pesada»")
    expect(pesada).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#problems")).to_contain_text("Pesada")
    shot(page, "upload")
    before = count_events(web.db)
    _fix_map(page)
    page.get_by_role("button", name="Revisar de nuevo con este mapa").click()
    expect(page.locator("#ready")).to_contain_text("se añadirán 30 eventos")
    expect(page.locator("#problems")).to_be_hidden()
    assert count_events(web.db) == before  # the check wrote nothing
    page.get_by_role("button", name="Importar").click()
    expect(page.locator("#state")).to_contain_text("Importado: 30 eventos añadidos")
    shot(page, "upload-done")
    assert count_events(web.db) == before + 30
    with Ledger.reader(web.db) as ledger:
        (first,) = [e for e in ledger.lot_events(f"{prefix}-011") if e.event.type == "harvest"]
        (qc,) = [e for e in ledger.lot_events(f"{prefix}-A02") if e.event.type == "gatherer_qc"]
    assert first.event.model_dump(mode="json")["kg"] == 1020.5
    assert first.event.site == "farm:APR-P0231"
    assert first.event.actor == "qc (APROCASSI, qc)"  # the caller, not the sheet's Responsable
    assert qc.event.site == "gatherer:SIG-03"


def test_every_problem_of_every_row_is_listed_and_nothing_is_imported(
    page: Page,
    web: Web,
    tmp_path: Path,
    sign_in: Callable[[Page, str], None],
    shot: Callable[[Page, str], None],
) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 0
    sign_in(page, "qc")
    _upload(page, _sheet(tmp_path, f"UPB{width}", bad=True))
    _fix_map(page)
    before = count_events(web.db)
    page.get_by_role("button", name="Revisar de nuevo con este mapa").click()
    rows = page.locator("#problem-rows tr")
    expect(page.locator("#problems-h")).to_have_text("Problemas: 2")
    expect(rows.nth(0)).to_contain_text('column "Pesada": "doce" is not a number')
    expect(rows.nth(0).locator("td").first).to_have_text("2")
    expect(rows.nth(1)).to_contain_text("no day 33")
    expect(page.locator("#ready")).to_be_hidden()
    shot(page, "upload-problems")
    assert count_events(web.db) == before


def _post(web: Web, who: str, url: str, path: Path, cmap: dict[str, object] | None) -> object:
    data = {"map": json.dumps(cmap)} if cmap is not None else {}
    with path.open("rb") as f:
        return web.api(who).post(url, files={"file": (path.name, f, "text/csv")}, data=data)


def test_api_import_is_all_or_nothing_and_answers_every_bad_row(web: Web, tmp_path: Path) -> None:
    bad = _sheet(tmp_path, "UPA1", bad=True)
    checked = _post(web, "qc", "/api/upload/check", bad, None).json()  # type: ignore[attr-defined]
    cmap = checked["map"]
    assert set(checked["unresolved"]) == {"Pesada", "Comentario del jefe"}
    cmap["columns"] |= {"Pesada": "kg", "Comentario del jefe": "note"}
    cmap["defaults"] = {
        "harvest": {"site": "farm:APR-P0231"},
        "gatherer_qc": {"site": "gatherer:SIG-03"},
    }
    before = count_events(web.db)
    r = _post(web, "qc", "/api/upload/import", bad, cmap)
    assert r.status_code == 422  # type: ignore[attr-defined]
    problems = r.json()["problems"]  # type: ignore[attr-defined]
    assert [p["line"] for p in problems] == ["2", "5"]
    assert all(str(tmp_path) not in p["detail"] and "/tmp" not in p["detail"] for p in problems)
    assert count_events(web.db) == before
    good = _sheet(tmp_path, "UPA2")
    r = _post(web, "qc", "/api/upload/import", good, cmap)
    assert r.status_code == 201 and r.json()["added"] == 30  # type: ignore[attr-defined]
    assert count_events(web.db) == before + 30


@pytest.mark.parametrize("who", ["buyer", "analyst"])
def test_api_roles_that_do_not_write_cannot_upload(web: Web, tmp_path: Path, who: str) -> None:
    r = _post(web, who, "/api/upload/import", _sheet(tmp_path, "UPR"), None)
    assert r.status_code == 403  # type: ignore[attr-defined]


def test_api_another_org_cannot_import_at_the_owners_sites(web: Web, tmp_path: Path) -> None:
    good = _sheet(tmp_path, "UPO")
    cmap = _post(web, "other_field", "/api/upload/check", good, None).json()["map"]  # type: ignore[attr-defined]
    cmap["columns"] |= {"Pesada": "kg", "Comentario del jefe": "note"}
    cmap["defaults"] = {"harvest": {"site": "farm:APR-P0231"}}
    before = count_events(web.db)
    r = _post(web, "other_field", "/api/upload/import", good, cmap)
    assert r.status_code == 403  # type: ignore[attr-defined]
    assert count_events(web.db) == before


@pytest.mark.parametrize(
    ("cmap", "named"),
    [
        ({"columns": {"tipo": "type"}, "values": {"type": {"cosecha": 5}}}, "values.type.cosecha"),
        ({"columns": {"tipo": 1}}, "columns.tipo"),
        ({"columns": {"tipo": "type"}, "values": {"type": ["cosecha"]}}, "values.type"),
        (
            {"columns": {"tipo": "type"}, "defaults": {"harvest": {"site": {"a": 1}}}},
            "defaults.harvest.site",
        ),
        (
            {"columns": {"tipo": "type"}, "defaults": {"harvest": {"kg": True}}},
            "defaults.harvest.kg",
        ),
        ({"columns": {"tipo": "type"}, "order": 5}, "order"),
    ],
)
def test_api_a_map_with_a_value_not_text_is_a_400_naming_map(
    web: Web, tmp_path: Path, cmap: dict[str, object], named: str
) -> None:
    """Issue #19, F2: a number among the map's values was a 500 (AttributeError)."""
    sheet = tmp_path / "ok.csv"
    sheet.write_text("tipo;fecha;lugar;lote;kilos\ncosecha;01/11/2026;farm:APR-P0231;UPF2-1;10\n")
    before = count_events(web.db)
    for url in ("/api/upload/check", "/api/upload/import"):
        r = _post(web, "qc", url, sheet, cmap)
        assert r.status_code == 400, r.text  # type: ignore[attr-defined]
        body = r.json()  # type: ignore[attr-defined]
        assert body["field"] == "map" and named in body["detail"], body
    assert count_events(web.db) == before
