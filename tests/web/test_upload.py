"""/upload: a quality manager's sheet, its suggested column map and every problem per row,
the map fixed on the page, then imported all or nothing through the library's import."""

from __future__ import annotations

import json
import zipfile
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
    expect(rows.nth(0)).to_contain_text('no es un número (column "Pesada": "doce" is not a number)')
    expect(rows.nth(0).locator("td").first).to_have_text("2")
    expect(rows.nth(1)).to_contain_text("la fecha nombra un día que su mes no tiene (")
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


def test_api_row_problems_are_said_in_spanish_first_and_in_english_on_lang_en(
    web: Web, tmp_path: Path
) -> None:
    """sheets.ROW_PROBLEMS_ES: the kind of problem in Spanish, the sheet's words after it;
    ``?lang=en`` (or the cookie) gives the words alone, as ``lottrace import`` prints them."""
    from lottrace.sheets import ROW_PROBLEMS_ES

    bad = _sheet(tmp_path, "UPL1", bad=True)
    cmap = _post(web, "qc", "/api/upload/check", bad, None).json()["map"]  # type: ignore[attr-defined]
    cmap["columns"] |= {"Pesada": "kg", "Comentario del jefe": "note"}
    cmap["defaults"] = {
        "harvest": {"site": "farm:APR-P0231"},
        "gatherer_qc": {"site": "gatherer:SIG-03"},
    }
    es = _post(web, "qc", "/api/upload/check?lang=es", bad, cmap).json()["problems"]  # type: ignore[attr-defined]
    en = _post(web, "qc", "/api/upload/check?lang=en", bad, cmap).json()["problems"]  # type: ignore[attr-defined]
    assert [p["code"] for p in es] == [p["code"] for p in en] == ["not-a-number", "no-such-day"]
    assert en[0]["detail"] == 'column "Pesada": "doce" is not a number'
    assert es[0]["detail"] == f"{ROW_PROBLEMS_ES['not-a-number']} ({en[0]['detail']})"
    assert es[1]["detail"] == f"{ROW_PROBLEMS_ES['no-such-day']} ({en[1]['detail']})"
    r = _post(web, "qc", "/api/upload/import?lang=en", bad, cmap)
    assert r.status_code == 422 and r.json()["problems"] == en  # type: ignore[attr-defined]


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


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _bomb(path: Path, strings: int, *, listed: bool = True) -> Path:
    """A workbook of one small sheet whose shared strings, ``strings`` x 1,000 "A", deflate to
    a few hundred KB (issue #19, F5); not ``listed``, a reader does not find them."""
    shared = (
        '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        if listed
        else ""
    )
    xml = '<?xml version="1.0" encoding="UTF-8"?>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            f'{xml}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.sheet.main+xml"/>'
            f"{shared}</Types>",
        )
        z.writestr(
            "_rels/.rels",
            f'{xml}<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
            f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        z.writestr(
            "xl/workbook.xml",
            f'{xml}<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
            '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            f'{xml}<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
            f'Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
            f'Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        )
        z.writestr(
            "xl/worksheets/sheet1.xml",
            f'{xml}<worksheet xmlns="{_MAIN}"><sheetData><row r="1"><c r="A1" t="s"><v>0</v>'
            "</c></row></sheetData></worksheet>",
        )
        with z.open("xl/sharedStrings.xml", "w") as f:
            f.write(f'{xml}<sst xmlns="{_MAIN}">'.encode())
            chunk = (b"<si><t>" + b"A" * 1000 + b"</t></si>") * 1000
            for _ in range(strings // 1000):
                f.write(chunk)
            f.write(b"</sst>")
    return path


def test_api_a_workbook_that_inflates_too_far_is_refused_before_it_is_read(
    web: Web, tmp_path: Path
) -> None:
    bomb = _bomb(tmp_path / "bomb.xlsx", 70_000)  # 70 MB of shared strings
    assert bomb.stat().st_size < 500_000
    for url in ("/api/upload/check", "/api/upload/import"):
        r = _post(web, "qc", url, bomb, None)
        assert r.status_code == 413, r.text  # type: ignore[attr-defined]
        body = r.json()  # type: ignore[attr-defined]
        assert body["field"] == "file", body
        assert body["detail"].startswith(
            "bomb.xlsx: the workbook inflates to 67 MB (at most 64 MB)"
        ), body
    small = _bomb(tmp_path / "small.xlsx", 1_000)  # read as usual: a sheet of one cell
    r = _post(web, "qc", "/api/upload/check", small, None)
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    broken = _bomb(tmp_path / "broken.xlsx", 1_000, listed=False)  # was a 500 (IndexError)
    r = _post(web, "qc", "/api/upload/import", broken, None)
    assert r.status_code == 400, r.text  # type: ignore[attr-defined]
    assert "broken.xlsx: not a readable .xlsx workbook (IndexError)" in r.json()["detail"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("shape", "said"),
    [
        ("wide", "wide.csv: 305 columns (at most 200)"),
        ("long", "long.csv: more than 50000 rows"),
        ("wide-row", "wide-row.csv: row 3 has 201 cells (at most 200)"),
    ],
)
def test_api_a_sheet_with_too_many_rows_or_columns_is_refused(
    web: Web, tmp_path: Path, shape: str, said: str
) -> None:
    """Issue #19, F12: 5,000 columns took 20 s to match, on the event loop."""
    head = "tipo;fecha;lugar;lote;kilos"
    row = "cosecha;01/11/2026;farm:APR-P0231;UPF12-{};10"
    if shape == "wide":
        lines = [head + "".join(f";col{i}" for i in range(300)), row.format(1)]
    elif shape == "long":
        lines = [head] + [row.format(i) for i in range(50_000)]
    else:
        lines = [head, row.format(1), row.format(2) + ";x" * 196]
    sheet = tmp_path / f"{shape}.csv"
    sheet.write_text("\n".join(lines) + "\n")
    before = count_events(web.db)
    for url in ("/api/upload/check", "/api/upload/import"):
        r = _post(web, "qc", url, sheet, None)
        assert r.status_code == 413, r.text  # type: ignore[attr-defined]
        body = r.json()  # type: ignore[attr-defined]
        assert body["field"] == "file" and body["detail"] == said, body
    assert count_events(web.db) == before


@pytest.mark.parametrize(
    ("name", "content", "cmap", "field", "said"),
    [
        ("bad.xlsx", b"PK\x03\x04garbage", None, "file", "bad.xlsx: not an Excel .xlsx workbook"),
        ("e.csv", b"", None, "file", "e.csv: the file is empty"),
        (
            "ok.csv",
            b"tipo;kilos\ncosecha;1\n",
            {"columns": {"tipo": "type"}, "order": "QQQ"},
            "map",
            "the map: [time] order",
        ),
    ],
)
def test_api_a_sheet_or_map_that_cannot_be_read_is_named_without_the_servers_folders(
    web: Web,
    tmp_path: Path,
    name: str,
    content: bytes,
    cmap: dict[str, object] | None,
    field: str,
    said: str,
) -> None:
    """Issue #19, F3: the messages named /tmp/lottrace-sheet-XXXX/, and ``map`` for the file."""
    sheet = tmp_path / name
    sheet.write_bytes(content)
    r = _post(web, "qc", "/api/upload/check", sheet, cmap)
    (problem,) = r.json()["problems"]  # type: ignore[attr-defined]
    assert problem["field"] == field and problem["detail"].startswith(said), problem
    assert "/tmp" not in problem["detail"] and "lottrace-sheet" not in problem["detail"]
    r = _post(web, "qc", "/api/upload/import", sheet, cmap)
    assert r.status_code == 400, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["field"] == field and body["detail"].startswith(said), body
    assert "/tmp" not in body["detail"]


def test_api_a_sheet_named_map_toml_is_read_as_the_sheet(web: Web, tmp_path: Path) -> None:
    """Issue #19, F4: the suggested map was written over it, then read as the sheet."""
    sheet = tmp_path / "map.toml"
    sheet.write_text("tipo;fecha;lugar;lote;kilos\ncosecha;01/11/2026;farm:APR-P0231;UPF4-1;10\n")
    with sheet.open("rb") as f:
        r = web.api("qc").post("/api/upload/check", files={"file": ("map.toml", f, "text/csv")})
    answer = r.json()
    assert answer["file"] == "map.toml" and answer["map"]["columns"]["tipo"] == "type", answer
    assert not any("# lottrace column map" in p["detail"] for p in answer["problems"]), answer
