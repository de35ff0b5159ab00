"""Sheets as cooperatives keep them: column maps, suggested maps, dates and zones, whole input lots, xlsx, templates."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.errors import InvalidInput
from lottrace.sheets import ColumnMap, _recognise, _when, load_map, suggest_map

DATA = Path(__file__).parent / "data"
SITES = (
    '\n[defaults.harvest]\nsite = "farm:SIG"\n\n[defaults.gatherer_qc]\nsite = "gatherer:SIG-01"\n'
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    CliRunner().invoke(cli, ["--db", str(path), "init"])
    return path


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def count(db: Path) -> int:
    return int(json.loads(run(db, "stats", "--json").output)["events"])


def write(tmp_path: Path, name: str, text: str, encoding: str = "cp1252") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Fecha", "time"), ("FECHA", "time"), ("Date", "time"), ("Etapa", "type"),
        ("Lote", "lot"), ("Productor", "producer"), ("DNI", ""), ("Parcela", "plot.id"),
        ("Latitud", "plot.lat"), ("Longitud", "plot.lon"), ("Área (ha)", "plot.area_ha"),
        ("area", "plot.area_ha"), ("Peso (kg)", "kg"), ("Peso neto", "kg"), ("Weight", "kg"),
        ("Humedad (%)", "moisture_pct"), ("Resultado", "result"), ("Lotes de origen", "inputs"),
        ("Responsable", "actor"), ("Observaciones", "note"), ("moisture_pct", "moisture_pct"),
        ("plot.id", "plot.id"), ("  lote  ", "lot"),
        ("Cód. Lote", "lot"), ("Cod. Lote", "lot"), ("Código de lote", "lot"), ("N° Lote", "lot"),
        ("Nº Lote", "lot"), ("No. Lote", "lot"), ("Nro. Lote", "lot"), ("Etapa / Proceso", "type"),
        ("Resultado QC", "result"), ("Lote(s) origen", "inputs"), ("Lote origen", "inputs"),
        ("Hum. %", "moisture_pct"), ("% Humedad", "moisture_pct"), ("HUMEDAD %", "moisture_pct"),
        ("Fecha de acopio", "time"), ("Obs.", "note"), ("Obs", "note"), ("Peso Neto (Kg)", "kg"),
        ("Centro de acopio", "site"), ("Fecha/Hora", "time"),
    ],
)  # fmt: skip
def test_headers_as_cooperatives_write_them(header: str, field: str) -> None:
    assert _recognise(header) == field


def test_unknown_header_is_none() -> None:
    assert _recognise("Hmdad") is None


@pytest.mark.parametrize(
    ("text", "order", "zone", "iso"),
    [
        ("02/06/2025", "DMY", "America/Lima", "2025-06-02T00:00:00-05:00"),
        ("02/06/2025", "MDY", "America/Lima", "2025-02-06T00:00:00-05:00"),
        ("2025-06-14 14:30", "DMY", "America/Lima", "2025-06-14T14:30:00-05:00"),
        ("14/06/2025 2:30 pm", "DMY", "America/Lima", "2025-06-14T14:30:00-05:00"),
        ("2025/06/14", "MDY", "Europe/Madrid", "2025-06-14T00:00:00+02:00"),
        ("2025-01-14 09:00", "YMD", "Europe/Madrid", "2025-01-14T09:00:00+01:00"),
        ("2025-06-14T14:30:00-05:00", "DMY", None, "2025-06-14T14:30:00-05:00"),
    ],
)
def test_dates_day_first_month_first_and_zones(
    text: str, order: str, zone: str | None, iso: str
) -> None:
    assert _when(text, ColumnMap(zone=zone, order=order)) == iso


def test_a_time_without_offset_and_no_zone_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r'has no UTC offset; add \[time\] zone = "America/Lima"'):
        _when("2025-06-14 14:30", ColumnMap(source="m.toml"))
    with pytest.raises(ValueError, match="14 is not a month: dates here are read day/month/year"):
        _when("06/14/2025", ColumnMap(zone="America/Lima"))


def test_the_acopio_sheet_imports_in_one_try(db: Path, tmp_path: Path) -> None:
    sheet = DATA / "acopio_sig.csv"
    r = run(db, "import", str(sheet), "--suggest-map")
    assert r.exit_code == 0, r.output
    suggested = r.stdout
    cm_path = tmp_path / "map.toml"
    cm_path.write_text(suggested + SITES, encoding="utf-8")
    cm = load_map(cm_path)  # the suggested map is valid TOML and a valid map
    assert cm.columns["Peso (kg)"] == "kg" and cm.columns["DNI"] == ""
    assert cm.values["result"] == {"aceptado": "accepted", "rechazado": "rejected"}
    assert (cm.zone, cm.order) == ("America/Lima", "DMY")
    assert count(db) == 0
    r = run(db, "import", str(sheet), "--map", str(cm_path))
    assert r.exit_code == 0, r.output
    assert r.stdout == "added 30, duplicates skipped 0, warnings 0\n"
    h = json.loads(run(db, "history", "SIG-25-A02", "--json").output)
    ev = next(e for e in h["events"] if e["lot"] == "SIG-25-A02")
    assert ev["inputs"] == [
        {"lot": "SIG-25-013", "kg": 541.5},
        {"lot": "SIG-25-014", "kg": 476.5},
        {"lot": "SIG-25-015", "kg": 834.0},
    ]
    assert ev["time"] == "2025-06-14T09:30:00-05:00"
    first = json.loads(run(db, "history", "SIG-25-011", "--json").output)["events"][0]
    assert first["kg"] == 1020.5 and first["time"] == "2025-06-02T00:00:00-05:00"
    assert first["producer"] == "Peña Córdova, María" and "DNI" not in json.dumps(first)


def test_a_clean_header_without_a_map_goes_ahead_and_says_which_map(
    db: Path, tmp_path: Path
) -> None:
    text = (
        "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg)\n"
        "02/06/2025 08:00;Cosecha;farm:SIG;L1;Ana;P1;1.020,5\n"
    )
    r = run(db, "import", str(write(tmp_path, "c.csv", text)))
    # No [time] zone is needed to go ahead: the suggested map assumes Lima.
    assert r.exit_code == 0, r.output
    assert "every column recognised; read with this map:" in r.stderr
    assert '"Peso (kg)" = "kg"' in r.stderr
    assert count(db) == 1


def test_unknown_columns_fail_once_with_the_nearest_field(db: Path, tmp_path: Path) -> None:
    rows = "".join(f"02/06/2025;Cosecha;L{i};12\n" for i in range(20))
    p = write(tmp_path, "u.csv", "Fecha;Etapa;Lote;moisture_pc\n" + rows)
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1
    assert 'unknown columns "moisture_pc" (did you mean moisture_pct?)' in r.stderr
    out = run(db, "import", str(p), "--suggest-map").stdout
    assert '# "moisture_pc" = "moisture_pct"    # not recognised; nearest field moisture_pct' in out
    load_map(write(tmp_path, "m.toml", out, "utf-8"))  # still a valid map


def test_every_problem_of_every_row_in_plain_words(db: Path, tmp_path: Path) -> None:
    text = "\n".join([
        "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Latitud;Longitud;Peso (kg);Resultado",
        "02/06/2025;Cosecha;farm:SIG;L1;Ana;P1;-5,1;-79,0;doce;",
        "31/02/2025;Cosecha;farm:SIG;L2;Luz;P2;-5,1;-79,0;-3;",
        "14/06/2025;Acopio;gatherer:G;L3;;;;;100;Quizás",
        "14/06/2025;Cosecha;farm:SIG;L4;Eva;P4;-95,1;-79,0;100;",
        "14/06/2025;Molienda;farm:SIG;L5;;;;;100;",
    ]) + "\n"  # fmt: skip
    p = write(tmp_path, "e.csv", text, "utf-8")
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert [ln for ln in r.stderr.splitlines() if ln.startswith((str(p), "Error"))] == [
        f'{p}:2: column "Peso (kg)": "doce" is not a number',
        f'{p}:3: column "Fecha": "31/02/2025": month 2 of 2025 has no day 31 (dates here are read day/month/year)',
        f'{p}:3: column "Peso (kg)": -3 is too small: it must be more than 0',
        f'{p}:4: column "Resultado": "Quizás" is not one of: accepted, rejected, hold',
        f'{p}:5: column "Latitud": latitude -95.1 is outside -90..90 (positions are [lon, lat])',
        f'{p}:6: column "Etapa": "Molienda" is not a stage lottrace knows (harvest, drying, '
        "gatherer_qc, hq_qc, dry_mill, export, dispatch, arrival, correction, epcis, "
        "master_data, epcis_header, certificate, transaction_certificate, purchase, payment, "
        "premium; or cosecha, secado, acopio ...); add it under [values.type] in the suggested map",
        "Error: 6 problems in 5 rows (listed above); nothing was written",
    ]
    assert "Input should" not in r.stderr and "instance of" not in r.stderr
    assert count(db) == 0


def test_problems_are_capped_with_a_count(db: Path, tmp_path: Path) -> None:
    rows = "".join(f"02/06/2025;Cosecha;farm:S;L{i};Ana;P;doce;x\n" for i in range(40))
    p = write(tmp_path, "c.csv", "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso;Humedad\n" + rows)
    r = run(db, "import", str(p))
    lines = r.stderr.splitlines()
    assert lines[-2] == "... and 30 more problems"
    assert lines[-1] == "Error: 80 problems in 40 rows (listed above); nothing was written"


def test_no_pydantic_words_for_a_plot_given_as_text(db: Path, tmp_path: Path) -> None:
    text = "type,time,site,lot,producer,plot,kg\nharvest,2025-06-02T09:00:00-05:00,farm:X,L1,Ana,P1,12\n"
    r = run(db, "import", str(write(tmp_path, "p.csv", text, "utf-8")))
    assert r.exit_code == 1
    assert "Input should" not in r.stderr and "instance of Plot" not in r.stderr
    assert "is not a group of fields" in r.stderr


def harvests(tmp_path: Path, extra: str) -> Path:
    text = (
        "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg);Lotes de origen;Resultado\n"
        "02/06/2025;Cosecha;farm:SIG;H1;Ana;P1;300;;\n"
        "02/06/2025;Cosecha;farm:SIG;H2;Luz;P2;200,5;;\n" + extra
    )
    return write(tmp_path, "w.csv", text)


@pytest.mark.parametrize("lots", ["H1, H2", "H1;H2", "H1 H2", "H1|H2"])
def test_inputs_without_kilos_give_all_they_have_left(db: Path, tmp_path: Path, lots: str) -> None:
    p = harvests(tmp_path, f'14/06/2025;Acopio;gatherer:G;A1;;;500;"{lots}";Aceptado\n')
    r = run(db, "import", str(p))
    assert r.exit_code == 0, r.output
    body = json.loads(run(db, "history", "A1", "--json").output)["events"][-1]
    assert body["inputs"] == [{"lot": "H1", "kg": 300.0}, {"lot": "H2", "kg": 200.5}]


def test_inputs_without_kilos_after_a_partial_draw(db: Path, tmp_path: Path) -> None:
    p = harvests(
        tmp_path,
        "14/06/2025;Acopio;gatherer:G;A1;;;100;H1=100;Aceptado\n"
        "15/06/2025;Acopio;gatherer:G;A2;;;400;H1 H2;Aceptado\n",
    )
    r = run(db, "import", str(p))
    assert r.exit_code == 0, r.output
    body = json.loads(run(db, "history", "A2", "--json").output)["events"][-1]
    assert body["inputs"] == [{"lot": "H1", "kg": 200.0}, {"lot": "H2", "kg": 200.5}]


def test_inputs_without_kilos_must_match_the_kg(db: Path, tmp_path: Path) -> None:
    p = harvests(tmp_path, "14/06/2025;Acopio;gatherer:G;A1;;;450;H1, H2;Aceptado\n")
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == (
        f"Error: {p}:4: [input-invalid] field 'kg': the inputs give 500.5 kg (H1 300 kg, "
        "H2 200.5 kg) but the event states 450 kg; more than the 2 % scale tolerance apart"
    )
    assert count(db) == 0
    p = harvests(tmp_path, "14/06/2025;Acopio;gatherer:G;A1;;;495;H1, H2;Aceptado\n")
    assert run(db, "import", str(p)).exit_code == 0  # within 2 %


def test_xlsx_first_sheet_or_named_with_real_cells(db: Path, tmp_path: Path) -> None:
    from datetime import datetime

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "notas"
    ws.append(["nada"])
    ws2 = wb.create_sheet("acopio")
    ws2.append(["Fecha", "Etapa", "Sitio", "Lote", "Productor", "Parcela", "Peso (kg)"])
    ws2.append([datetime(2025, 6, 2, 8, 0), "Cosecha", "farm:SIG", "L1", "Ana", "P1", 1020.5])
    ws2.append([datetime(2025, 6, 3, 8, 0), "Cosecha", "farm:SIG", "L2", "Luz", "P2", "doce"])
    p = tmp_path / "b.xlsx"
    wb.save(p)
    r = run(db, "import", str(p), "--sheet", "acopio")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == (
        f'Error: {p}:3: column "Peso (kg)" (cell G3): "doce" is not a number'
    )
    ws2.delete_rows(3)
    wb.save(p)
    r = run(db, "import", str(p), "--sheet", "acopio")
    assert r.exit_code == 0, r.output
    body = json.loads(run(db, "history", "L1", "--json").output)["events"][0]
    assert body["time"] == "2025-06-02T08:00:00-05:00" and body["kg"] == 1020.5
    r = run(db, "import", str(p), "--sheet", "nope")
    assert "no sheet 'nope' (sheets: notas, acopio)" in r.stderr
    r = run(db, "import", str(p))  # the first sheet: one unknown column
    assert r.exit_code == 1 and 'unknown columns "nada"' in r.stderr


def test_xlsx_naive_dates_without_a_zone_are_refused_naming_the_cell(
    db: Path, tmp_path: Path
) -> None:
    from datetime import datetime

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["Fecha", "Etapa", "Sitio", "Lote", "Productor", "Parcela", "Peso (kg)"])
    ws.append([datetime(2025, 6, 2, 8, 0), "Cosecha", "farm:SIG", "L1", "Ana", "P1", 10])
    p = tmp_path / "n.xlsx"
    wb.save(p)
    m = write(tmp_path, "m.toml", '[columns]\n"Fecha" = "time"\n"Etapa" = "type"\n"Sitio" = "site"\n'
              '"Lote" = "lot"\n"Productor" = "producer"\n"Parcela" = "plot.id"\n"Peso (kg)" = "kg"\n', "utf-8")  # fmt: skip
    r = run(db, "import", str(p), "--map", str(m))
    assert r.exit_code == 1
    assert f'{p}:2: column "Fecha" (cell A2): "2025-06-02 08:00:00" has no UTC offset' in r.stderr


@pytest.mark.parametrize("lang", ["es", "en"])
@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_templates_round_trip(db: Path, tmp_path: Path, lang: str, suffix: str) -> None:
    out = tmp_path / f"cosecha{suffix}"
    r = run(db, "template", "cosecha", "--lang", lang, "-o", str(out))
    assert r.exit_code == 0, r.output
    r = run(db, "import", str(out), "--suggest-map")
    assert r.exit_code == 0 and "not recognised" not in r.stdout
    m = write(tmp_path, "m.toml", r.stdout, "utf-8")
    r = run(db, "import", str(out), "--map", str(m))  # the example row is a harvest
    assert r.exit_code == 0, r.output
    body = json.loads(run(db, "history", "SIG-25-001", "--json").output)["events"][0]
    assert body["kg"] == 1020.5 and body["plot"]["geometry"]["coordinates"] == [
        -78.993518,
        -5.160921,
    ]


def test_template_to_stdout_and_unknown_type(db: Path) -> None:
    r = run(db, "template", "acopio")
    assert r.stdout.splitlines()[0].startswith("Etapa;Fecha;Sitio;Lote;Peso (kg);Humedad (%)")
    r = run(db, "template", "acopio", "--lang", "en")
    assert r.stdout.splitlines()[0].startswith("Stage,Date,Site,Lot,Weight (kg),Moisture (%)")
    r = run(db, "template", "molienda")
    assert r.exit_code == 1 and r.stderr.startswith("Error: no template for 'molienda'")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[columns\n", "m.toml: not valid TOML"),
        ('[columns]\n"Peso" = "kgs"\n', "m.toml: [columns] \"Peso\": 'kgs' is not a lottrace field (did you mean kg?)"),
        ('[columns]\n"Peso" = "kg"\n[time]\nzone = "Lima"\n', "m.toml: [time] zone: 'Lima' is not a time zone"),
        ('[columns]\n"Peso" = "kg"\n[time]\norder = "DDMM"\n', "m.toml: [time] order: 'DDMM': use DMY, MDY or YMD"),
        ('[columns]\n"Peso" = "kg"\n[defaults.molienda]\nsite = "x:y"\n', "m.toml: [defaults.molienda]: 'molienda' is not an event type"),
        ('[colums]\n"Peso" = "kg"\n', "m.toml: colums: not a part of a map"),
    ],
)  # fmt: skip
def test_a_bad_map_is_one_line_naming_file_and_key(
    db: Path, tmp_path: Path, toml: str, message: str
) -> None:
    m = write(tmp_path, "m.toml", toml, "utf-8")
    with pytest.raises(InvalidInput) as exc:
        load_map(m)
    assert str(exc.value).startswith(
        str(tmp_path / message.split(":")[0]) + message[len("m.toml") :].split("(")[0][:0]
    )
    assert message.replace("m.toml", str(m)) in str(exc.value)
    p = write(tmp_path, "c.csv", "Peso\n12\n")
    r = run(db, "import", str(p), "--map", str(m))
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1


def test_suggest_map_month_first_when_the_dates_say_so(tmp_path: Path) -> None:
    p = write(tmp_path, "m.csv", "Date,Stage,Lot\n06/14/2025,harvest,L1\n")
    cm, unknown, _ = suggest_map(p)
    assert (cm.order, unknown) == ("MDY", [])
    p = write(tmp_path, "d.csv", "Fecha;Etapa;Lote;Resultado\n14/06/2025;Acopio;L1;En espera\n")
    cm, _, _ = suggest_map(p)
    assert cm.order == "DMY" and cm.values["result"] == {"En espera": "hold"}


def test_one_month_first_date_never_flips_a_spanish_sheet(db: Path, tmp_path: Path) -> None:
    text = (
        "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg)\n"
        "02/06/2025;Cosecha;farm:X;M-1;P;PL;100\n"
        "03/06/2025;Cosecha;farm:X;M-2;P;PL;100\n"
        "06/13/2025;Cosecha;farm:X;M-3;P;PL;100\n"
    )
    p = write(tmp_path, "one_us_date.csv", text)
    cm, _, comments = suggest_map(p)
    assert cm.order == "DMY"
    assert any("the sheet is in Spanish" in c for c in comments)
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert (
        f'{p}:4: column "Fecha": "06/13/2025": 13 is not a month: dates here are read '
        "day/month/year; set [time] order in the map if the sheet writes month first"
    ) in r.stderr
    assert r.stderr.count("is not a month") == 1 and count(db) == 0
    # Without the odd row, 02/06/2025 is 2 June, as before.
    p2 = write(tmp_path, "ok.csv", text.rsplit("06/13", 1)[0])
    assert run(db, "import", str(p2)).exit_code == 0
    ev = json.loads(run(db, "history", "M-1", "--json").output)["events"][0]
    assert ev["time"] == "2025-06-02T00:00:00-05:00"


def test_an_explicit_month_first_order_is_kept(db: Path, tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "us.csv",
        "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg)\n06/13/2025;Cosecha;farm:X;U-1;P;PL;100\n",
    )
    m = write(
        tmp_path,
        "m.toml",
        '[columns]\n"Fecha" = "time"\n"Etapa" = "type"\n"Sitio" = "site"\n"Lote" = "lot"\n'
        '"Productor" = "producer"\n"Parcela" = "plot.id"\n"Peso (kg)" = "kg"\n'
        '[time]\nzone = "America/Lima"\norder = "MDY"\n',
        "utf-8",
    )
    r = run(db, "import", str(p), "--map", str(m))
    assert r.exit_code == 0, r.output
    ev = json.loads(run(db, "history", "U-1", "--json").output)["events"][0]
    assert ev["time"] == "2025-06-13T00:00:00-05:00"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("31/02/2025", '"31/02/2025": month 2 of 2025 has no day 31 (dates here are read day/month/year)'),
        ("2025-06-15 25:10", '"2025-06-15 25:10": 25:10 is not a time of day'),
    ],
)  # fmt: skip
def test_an_impossible_date_says_why_in_words(text: str, words: str) -> None:
    with pytest.raises(ValueError) as exc:
        _when(text, ColumnMap(zone="America/Lima"))
    assert str(exc.value) == words and "DMY" not in words


def test_suggest_map_never_drops_a_column_it_does_not_know(db: Path, tmp_path: Path) -> None:
    text = (
        "Fecha;Etapa / Proceso;Cód. Lote;Productor;Parcela;Peso (kg);Peso bruto (kg);Código socio\n"
        "02/06/2025;Cosecha;L-1;Ana;P1;100;104;S-7\n"
    )
    p = write(tmp_path, "s.csv", text)
    r = run(db, "import", str(p), "--suggest-map")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert '"Etapa / Proceso" = "type"' in out and '"Cód. Lote" = "lot"' in out
    # Not recognised: a commented line with the nearest field, never "" (dropped).
    assert '# "Peso bruto (kg)" = "kg"    # not recognised; nearest field kg' in out
    assert '# "Código socio" = "producer"    # not recognised; nearest field producer' in out
    assert '= ""' not in out
    assert 'left for you to map (commented out in the map): "Peso bruto (kg)"' in r.stderr
    assert '"Código socio"' in r.stderr
    m = write(tmp_path, "m.toml", out + '\n[defaults.harvest]\nsite = "farm:X"\n', "utf-8")
    cm = load_map(m)
    assert "Peso bruto (kg)" not in cm.columns
    # The import through that map refuses the open columns once, as without a map.
    for args in (["--map", str(m)], []):
        r = run(db, "import", str(p), *args)
        assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1, r.stderr
        assert '"Peso bruto (kg)"' in r.stderr and '"Código socio"' in r.stderr
    assert count(db) == 0


def test_suggest_map_keeps_one_column_per_field(db: Path, tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "dup2.csv",
        "Etapa;Fecha;Sitio;Lote;Kilos;Peso neto;Productor;Parcela\n"
        "Cosecha;02/06/2025;farm:X;DUP-1;1.050;1.020,5;P1;PL1\n",
    )
    cm, unknown, _ = suggest_map(p)
    assert cm.columns["Kilos"] == "kg" and "Peso neto" not in cm.columns
    assert unknown == ["Peso neto"]
    r = run(db, "import", str(p))
    assert r.exit_code == 1 and count(db) == 0
    assert '"Peso neto" also kg, like "Kilos"' in r.stderr
    assert len(r.stderr.splitlines()) == 1


HEAD = "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg);Resultado\n"
ROWS = "".join(f"0{d}/06/2025;Cosecha;farm:X;L-{d};Ana;P1;100;\n" for d in range(1, 8))
MAP = (
    '[columns]\n"Fecha" = "time"\n"Etapa" = "type"\n"Sitio" = "site"\n"Lote" = "lot"\n'
    '"Productor" = "producer"\n"Parcela" = "plot.id"\n"Peso (kg)" = "kg"\n"Resultado" = "result"\n'
    '[time]\nzone = "America/Lima"\n'
)


def test_every_wrong_name_and_value_of_a_map_at_once(db: Path, tmp_path: Path) -> None:
    toml = (
        MAP.replace('"kg"', '"kgs"').replace('"producer"', '"productor"')
        + '[values.result]\n"Aceptado" = "acepted"\n"Observado" = "hold"\n'
        + '[defaults.harvest]\nsitio = "farm:X"\n'
    )
    m = write(tmp_path, "m.toml", toml, "utf-8")
    r = run(db, "import", str(write(tmp_path, "s.csv", HEAD + ROWS)), "--map", str(m))
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr == (
        f"Error: {m}: [columns] \"Productor\": 'productor' is not a lottrace field (did you mean producer?); "
        "[columns] \"Peso (kg)\": 'kgs' is not a lottrace field (did you mean kg?); "
        "[values.result] \"Aceptado\": 'acepted' is not a result lottrace knows "
        "(accepted, rejected, hold; did you mean accepted?); "
        "[defaults.harvest] sitio: 'sitio' is not a lottrace field (did you mean site?)\n"
    )


def test_two_columns_mapped_to_one_field_are_refused_naming_both(db: Path, tmp_path: Path) -> None:
    m = write(tmp_path, "m.toml", MAP.replace('"Sitio" = "site"', '"Sitio" = "kg"'), "utf-8")
    r = run(db, "import", str(write(tmp_path, "s.csv", HEAD + ROWS)), "--map", str(m))
    assert r.exit_code == 1 and count(db) == 0
    assert r.stderr == (
        f'Error: {m}: [columns] "Sitio" and "Peso (kg)" both give kg: map one of them, '
        '"" drops the other\n'
    )


def test_a_column_the_map_needs_and_the_file_lacks_is_said_once(db: Path, tmp_path: Path) -> None:
    m = write(tmp_path, "m.toml", MAP, "utf-8")
    p = write(tmp_path, "s.csv", (HEAD + ROWS).replace(";Peso (kg)", "").replace(";100;", ";"))
    r = run(db, "import", str(p), "--map", str(m))
    assert r.exit_code == 1 and count(db) == 0
    said = [ln for ln in r.stderr.splitlines() if '"kg" is required' in ln]
    assert said == [
        f'Error: {p}:2: "kg" is required for harvest: {m} maps the column "Peso (kg)" to kg, '
        "and the file has no such column (said once for all the rows like this)"
    ]


def test_no_stage_column_is_said_once_naming_the_map(db: Path, tmp_path: Path) -> None:
    m = write(tmp_path, "m.toml", MAP.replace('"Etapa" = "type"', '"Etapa" = ""'), "utf-8")
    m.write_text(m.read_text() + '[defaults.harvest]\nsite = "farm:X"\n')
    r = run(db, "import", str(write(tmp_path, "s.csv", HEAD + ROWS)), "--map", str(m))
    assert r.exit_code == 1 and count(db) == 0
    assert r.stderr.count("no stage") == 1
    assert f'no stage: {m} maps no column of the file to "type"' in r.stderr


@pytest.mark.parametrize(
    ("cell", "kg"),
    [("1 020,5", 1020.5), ("1\u00a0020,5", 1020.5), ("1\u202f020,5", 1020.5), ("12 345", 12345.0),
     ("1.020,5", 1020.5), ("1020,5", 1020.5)],
)  # fmt: skip
def test_spaced_thousands_read_as_numbers(db: Path, tmp_path: Path, cell: str, kg: float) -> None:
    text = f"Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg)\n02/06/2025;Cosecha;farm:X;N-1;P;PL;{cell}\n"
    r = run(db, "import", str(write(tmp_path, "n.csv", text, "utf-8")))
    assert r.exit_code == 0, r.output
    assert json.loads(run(db, "history", "N-1", "--json").output)["events"][0]["kg"] == kg


def test_a_percent_sign_in_a_percent_column_and_units_named(db: Path, tmp_path: Path) -> None:
    head = "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Peso (kg)\n02/06/2025;Cosecha;farm:X;N-1;P;PL;100\n"
    qc = "Fecha;Etapa;Sitio;Lote;Peso (kg);Humedad (%);Resultado\n"
    p = write(tmp_path, "h.csv", head)
    assert run(db, "import", str(p)).exit_code == 0
    q = write(tmp_path, "q.csv", qc + "03/06/2025;Acopio;gatherer:X;N-1;100;11,5 %;Aceptado\n")
    r = run(db, "import", str(q))
    assert r.exit_code == 0, r.output
    ev = json.loads(run(db, "history", "N-1", "--json").output)["events"][-1]
    assert ev["moisture_pct"] == 11.5
    bad = write(tmp_path, "b.csv", qc + "04/06/2025;Acopio;gatherer:X;N-1;530 kg;1.1,5;Aceptado\n")
    r = run(db, "import", str(bad))
    assert r.exit_code == 1
    assert '"530 kg" is not a number; write the number alone, without its unit' in r.stderr
    assert '"1.1,5" is not a number; write decimals with a comma or a dot, not both' in r.stderr
    assert r.stderr.count("not both") == 1


def test_a_malformed_header_is_one_line_not_an_internal_error(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    CliRunner().invoke(cli, ["--db", str(db), "init"])
    sheet = tmp_path / "h.csv"
    sheet.write_text('"Fecha"x,Peso\n1,2\n')
    for args in (["import", str(sheet)], ["import", str(sheet), "--suggest-map"]):
        r = run(db, *args)
        assert r.exit_code == 1 and "h.csv:1: not valid CSV" in r.output, r.output


#: One problem of each kind, as the import says it (after FILE:LINE:), by its code.
ROW_PROBLEM_EXAMPLES = {
    "not-a-date": 'column "Fecha": "ayer" is not a date (e.g. 02/06/2025 or 2025-06-02 14:30)',
    "not-a-month": 'column "Fecha": "02/13/2025": 13 is not a month: dates here are read '
    "day/month/year; set [time] order in the map if the sheet writes month first",
    "no-such-day": 'column "Fecha": "31/02/2025": month 2 of 2025 has no day 31 (dates here '
    "are read day/month/year)",
    "not-a-time": 'column "Fecha" (cell A3): "02/06/2025 25:00": 25:00 is not a time of day',
    "no-offset": '"02/06/2025" has no UTC offset; add [time] zone = "America/Lima" to m.toml',
    "not-a-stage": 'column "Etapa": "Molienda" is not a stage lottrace knows (harvest ...)',
    "not-a-number": 'column "Peso (kg)": "doce" is not a number',
    "not-whole": 'column "Sacos": 2.5 is not a whole number',
    "not-lot-kg": 'column "Lotes de origen": "A=" is not LOT=KG',
    "not-lot-kg-grade": 'column "Salidas": "A=10" is not LOT=KG=GRADE',
    "extra-cells": "the row has 9 cells but the header 8 columns",
    "lat-lon": 'column "Latitud": give both latitude and longitude, or neither',
    "no-stage": 'no stage: the "Etapa" cell is empty',
    "required": '"producer" is required for harvest: no column gives it (add a column, or '
    "producer = ... under [defaults.harvest] in m.toml) (said once for all the rows like this)",
    "too-small": 'column "Peso (kg)": -3 is too small: it must be more than 0',
    "too-large": 'column "Humedad": 120 is too large: it must be at most 100',
    "out-of-range": 'column "Latitud": latitude -95.1 is outside -90..90 (positions are [lon, lat])',
    "not-one-of": 'column "Resultado": "Quizás" is not one of: accepted, rejected, hold',
    "not-a-field": 'column "Resultado": is not a field of a harvest event',
    "empty": 'column "Lote": is empty',
    "too-long": 'column "Nota": is too long (at most 2000 characters)',
    "bad-format": "column \"Lote\": 'L 1' is not valid: a lot code is letters, digits, - . _ /",
    "other": 'column "Lotes de origen": the lot L1 is named twice',
}


def test_every_kind_of_row_problem_has_its_spanish_and_is_told_from_its_words() -> None:
    """A kind of row problem without Spanish, or without an example read back to it, fails."""
    from lottrace.sheets import ROW_PROBLEMS, ROW_PROBLEMS_ES, row_problem_code

    assert ROW_PROBLEMS_ES.keys() == ROW_PROBLEMS.keys() == ROW_PROBLEM_EXAMPLES.keys()
    assert all(ROW_PROBLEMS_ES.values()) and all(ROW_PROBLEMS.values())
    told = {code: row_problem_code(words) for code, words in ROW_PROBLEM_EXAMPLES.items()}
    assert told == {code: code for code in ROW_PROBLEM_EXAMPLES}


def test_the_import_s_own_row_problems_are_told_by_kind(tmp_path: Path) -> None:
    """The kinds read from the problems a real import reports (not only from examples)."""
    from lottrace.errors import InvalidEvent
    from lottrace.sheets import iter_import, row_problem_code

    text = "\n".join([
        "Fecha;Etapa;Sitio;Lote;Productor;Parcela;Latitud;Longitud;Peso (kg);Resultado",
        "02/06/2025;Cosecha;farm:SIG;L1;Ana;P1;-5,1;-79,0;doce;",
        "31/02/2025;Cosecha;farm:SIG;L2;Luz;P2;-5,1;-79,0;-3;",
        "14/06/2025;Acopio;gatherer:G;L3;;;;;100;Quizás",
        "14/06/2025;Cosecha;farm:SIG;L4;Eva;P4;-95,1;-79,0;100;",
        "14/06/2025;Molienda;farm:SIG;L5;;;;;100;",
        "ayer;Cosecha;farm:SIG;L6;Eva;P6;-5,1;;100;",
        "14/06/2025;;farm:SIG;L7;Eva;P7;-5,1;-79,0;100;",
    ]) + "\n"  # fmt: skip
    p = write(tmp_path, "e.csv", text, "utf-8")
    said: list[InvalidEvent] = []
    list(iter_import([p], on_error=said.append))
    codes = [row_problem_code(str(e).removeprefix(f"{e.where}: ")) for e in said]
    assert codes == [
        "not-a-number",
        "no-such-day",
        "too-small",
        "not-one-of",
        "out-of-range",
        "not-a-stage",
        "not-a-date",
        "lat-lon",
        "no-stage",
    ]
