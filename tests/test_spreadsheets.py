"""Cooperatives' spreadsheet exports: ';' delimiters, decimal commas, Windows text, every bad row listed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.errors import InvalidEvent, InvalidInput
from lottrace.readers import iter_events, iter_records

ROOT = Path(__file__).resolve().parents[1]
HEADER = "type;time;site;lot;producer;plot.id;plot.lon;plot.lat;kg;note"
PEÑA = "cosecha;2025-07-29T16:05:00-05:00;farm:P1;L1;Peña Córdova;P1;-78,993518;-5,160921;1.020,5;3,5 sacos"


def write(tmp_path: Path, name: str, text: str, encoding: str = "cp1252") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.fixture(autouse=True, params=["serial", "parallel"])
def reader_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every import here runs twice: read in this process, and in a forked one (lottrace.pipeline)."""
    if request.param == "parallel":
        monkeypatch.setattr("lottrace.importing.PARALLEL_BYTES", 0)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "s.db"
    CliRunner().invoke(cli, ["--db", str(path), "init"])
    return path


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def count(db: Path) -> int:
    return int(json.loads(run(db, "stats", "--json").output)["events"])


def test_windows_semicolon_file_with_decimal_commas_and_spanish_types(tmp_path: Path) -> None:
    p = write(tmp_path, "c.csv", f"{HEADER}\r\n{PEÑA}\r\n")
    notes: list[str] = []
    [(where, ev)] = list(iter_events(p, on_note=notes.append))
    assert where == f"{p}:2"
    assert ev.type == "harvest"
    assert ev.producer == "Peña Córdova"  # type: ignore[attr-defined]
    assert ev.kg == 1020.5  # type: ignore[attr-defined]
    assert ev.plot.geometry.coordinates == [-78.993518, -5.160921]  # type: ignore[attr-defined]
    assert ev.note == "3,5 sacos"  # text is never read as a number
    assert notes == [
        f"{p}: not UTF-8 (line 2), read as cp1252 (Windows Latin-1); --encoding chooses"
    ]


def test_a_chosen_encoding_gives_no_note_and_utf8_needs_none(tmp_path: Path) -> None:
    p = write(tmp_path, "c.csv", f"{HEADER}\n{PEÑA}\n")
    notes: list[str] = []
    [(_, ev)] = list(iter_events(p, encoding="latin-1", on_note=notes.append))
    assert ev.producer == "Peña Córdova" and notes == []  # type: ignore[attr-defined]
    u = write(tmp_path, "u.csv", f"{HEADER}\n{PEÑA}\n", encoding="utf-8")
    [(_, ev)] = list(iter_events(u, on_note=notes.append))
    assert ev.producer == "Peña Córdova" and notes == []  # type: ignore[attr-defined]


def test_mixed_encodings_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    second = PEÑA.replace("L1", "L2").replace("P1", "P2")
    p.write_bytes(f"{HEADER}\n{PEÑA}\n".encode() + f"{second}\n".encode("cp1252"))
    with pytest.raises(
        InvalidInput, match=r"m.csv:3: not utf-8 text \(the lines before it were UTF-8"
    ):
        list(iter_events(p))


def test_bytes_no_windows_encoding_has_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_bytes(f"{HEADER}\n".encode() + b"cosecha;\x81\x8d\n")
    with pytest.raises(
        InvalidInput, match=r"x.csv:2: neither UTF-8 nor cp1252 text; give --encoding"
    ):
        list(iter_events(p))


def test_decimal_commas_in_inputs_and_only_in_number_fields(tmp_path: Path) -> None:
    text = (
        "type;time;site;lot;result;moisture_pct;inputs;inspector\n"
        "acopio;2025-08-18T10:20:00-05:00;gatherer:G;G1;accepted;11,4;H1=124,5|H2=171;Pérez, J.\n"
    )
    [(_, rec)] = list(iter_records(write(tmp_path, "a.csv", text)))
    assert rec["moisture_pct"] == "11.4"
    assert rec["inputs"] == [{"lot": "H1", "kg": "124.5"}, {"lot": "H2", "kg": "171"}]
    assert rec["inspector"] == "Pérez, J."
    assert rec["type"] == "gatherer_qc"


def test_in_a_comma_file_a_decimal_comma_is_an_error_with_a_hint(tmp_path: Path) -> None:
    text = 'type,time,site,lot,kg\ndrying,2025-05-20T10:00:00-05:00,farm:X,L1,"12,5"\n'
    with pytest.raises(
        InvalidEvent, match=r'field .kg.: "12,5" is not a number; write decimals with a dot'
    ):
        list(iter_events(write(tmp_path, "d.csv", text)))


def test_delimiter_can_be_chosen(tmp_path: Path) -> None:
    semi = write(tmp_path, "s.csv", f"{HEADER}\n{PEÑA}\n")
    with pytest.raises(
        InvalidEvent, match=r"s.csv:2: row has 5 cells but the header has 1 columns"
    ):
        list(iter_events(semi, delimiter=","))  # chosen, so not detected: one wide column
    assert len(list(iter_events(semi, delimiter=";"))) == 1
    tab = write(tmp_path, "t.tsv", f"{HEADER}\n{PEÑA}\n".replace(";", "\t"))
    [(_, ev)] = list(iter_events(tab, delimiter="tab"))
    assert ev.kg == 1020.5  # type: ignore[attr-defined]
    with pytest.raises(
        InvalidInput, match=re.escape("unknown delimiter '|': use ',', ';' or 'tab'")
    ):
        list(iter_events(tab, delimiter="|"))


def test_import_lists_every_bad_row_and_writes_nothing(db: Path, tmp_path: Path) -> None:
    text = "\n".join([
        "type;time;site;lot;producer;plot.id;kg;result",
        "cosecha;2025-08-02T15:00:00-05:00;farm:P1;L1;Ana;P1;900;",  # good
        "cosecha;2025-08-02T15:00:00-05:00;farm:P2;L2;Luz;P2;doce;",
        "acopio;2025-08-20T09:00:00-05:00;gatherer:G;L1;;;;aceptado",
        "secado;2025-08-14T09:45:00-05:00;farm:P1;L9;;;120;",  # valid, but L9 does not exist
        "secado;2025-08-14T09:45:00-05:00;farm:P1;;;;;",
    ]) + "\n"  # fmt: skip
    p = write(tmp_path, "bad.csv", text, encoding="utf-8")
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"{p}:3: lot L2: field 'kg': \"doce\" is not a number",
        f"{p}:4: lot L1: field 'result': \"aceptado\" is not one of: accepted, rejected, hold",
        f"{p}:6: fields 'lot', 'kg' are required",
        "Error: 3 bad rows (listed above); nothing was written",
    ]  # row 5 is not checked against the ledger once the batch is known to be bad
    assert count(db) == 0


def test_import_one_bad_row_is_still_one_line(db: Path, tmp_path: Path) -> None:
    p = write(tmp_path, "b.csv", f"{HEADER}\n{PEÑA.replace('1.020,5', '-3')}\n")
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert (
        r.stderr.splitlines()[-1]
        == f"Error: {p}:2: lot L1: field 'kg': -3 is too small: it must be more than 0"
    )
    assert count(db) == 0


def test_many_bad_rows_are_capped(db: Path, tmp_path: Path) -> None:
    rows = [f"secado;2025-08-14T09:45:00-05:00;farm:P1;L{i};;;;;;" for i in range(80)]
    p = write(tmp_path, "many.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    r = run(db, "import", str(p))
    lines = r.stderr.splitlines()
    assert len(lines) == 52 and lines[-2] == "... and 30 more bad rows"
    assert lines[-1] == "Error: 80 bad rows (listed above); nothing was written"


def test_bad_rows_across_files_reject_the_whole_batch(db: Path, tmp_path: Path) -> None:
    good = write(tmp_path, "good.csv", f"{HEADER}\n{PEÑA}\n")
    bad = write(tmp_path, "bad.jsonl", '{"type": "drying"}\nnot json\n', encoding="utf-8")
    r = run(db, "import", str(good), str(bad))
    assert r.exit_code == 1
    assert f"{bad}:1: field 'time'" in r.stderr or f"{bad}:1: fields" in r.stderr
    assert f"{bad}:2: not valid JSON" in r.stderr
    assert count(db) == 0


def test_import_cli_options_and_note(db: Path, tmp_path: Path) -> None:
    p = write(tmp_path, "c.csv", f"{HEADER}\r\n{PEÑA}\r\n")
    r = run(db, "import", str(p))
    assert r.exit_code == 0, r.output
    assert r.stdout == "added 1, duplicates skipped 0, warnings 0\n"
    assert r.stderr.startswith(f"note: {p}: not UTF-8")
    r = run(db, "import", "--encoding", "cp1252", "--delimiter", ";", str(p))
    assert (r.exit_code, r.stderr) == (0, "")
    assert r.stdout == "added 0, duplicates skipped 1, warnings 0\n"
    r = run(db, "import", "--encoding", "utf-8", str(p))
    assert r.exit_code == 1 and "try --encoding cp1252" in r.stderr


def test_a_broken_rule_is_listed_with_the_bad_rows_after_it(db: Path, tmp_path: Path) -> None:
    text = "\n".join([
        "type;time;site;lot;producer;plot.id;kg",
        "secado;2025-08-14T09:45:00-05:00;farm:P1;L9;;;120",  # well formed; L9 was never harvested
        "cosecha;2025-08-02T15:00:00-05:00;farm:P1;L1;Ana;P1;900",
        "cosecha;2025-08-02T15:00:00-05:00;farm:P2;L2;Luz;P2;-5",
    ]) + "\n"  # fmt: skip
    p = write(tmp_path, "r.csv", text, encoding="utf-8")
    r = run(db, "import", str(p))
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"{p}:2: [lot-unknown] field 'lot': lot L9 was never created (log its harvest first)",
        f"{p}:4: lot L2: field 'kg': -5 is too small: it must be more than 0",
        "Error: 2 bad rows (listed above); nothing was written",
    ]
    assert count(db) == 0
    only_rule = write(tmp_path, "o.csv", "\n".join(text.splitlines()[:3]) + "\n", encoding="utf-8")
    r = run(db, "import", str(only_rule))
    assert (
        r.stderr
        == f"Error: {only_rule}:2: [lot-unknown] field 'lot': lot L9 was never created (log its harvest first)\n"
    )
