"""Trust at the edges: output never destroys input, and input is what it looks like.

Issue #14's last two classes, each case asserted exactly:

- every option naming a file lottrace writes (``-o``, ``--out``, ``--plot``,
  ``schema --write``, the passport's default name) refuses the ledger and its
  ``-wal``/``-shm``/``-journal``, by name, through a symlink or a hard link:
  exit 2, one line, the ledger's bytes unchanged;
- every OS error on output (``/dev/full``, a missing folder, a file name too
  long, a bad ``--encoding``, a ``--url`` too long for a QR code) is one line
  with exit 1 or 2, never the internal-error exit 3;
- JSON with a key repeated in one object (JSON Lines, JSON arrays, JSON cells
  of a CSV, EPCIS documents) is refused naming the key and its line;
- UTF-16 and UTF-32 files with a BOM are read as their UTF-8 twins are; a
  file with no records says so;
- text with control, C1, separator, bidi or (in ids) invisible characters is
  refused naming file, line and field; ids are NFC; values an old ledger
  holds are printed escaped;
- re-importing an event a correction voided says so.

Every rejection: exit non-zero, one line on stderr, no traceback, the ledger
unchanged. A few cases run in a real subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lottrace.events import parse_event
from lottrace.ledger import Ledger
from lottrace.readers import repeated_key

from ._helpers import FIGURES, invoke, lottrace_cmd, run_cli, state
from factories import batch, chain, correction, drying, harvest

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)

EXPORT_LOT = "M1"  # chain()'s exported green lot


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with Ledger.create(path) as ledger:
        ledger.append(batch(*chain()))
    return path


def _bytes(db: Path) -> str:
    """The ledger file's own bytes (and its -wal's), hashed."""
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        p = Path(str(db) + suffix)
        if p.exists():
            digest.update(p.read_bytes())
    return digest.hexdigest()


def _one_error_line(r: Any, *codes: int) -> str:
    """The rejection's single stderr line; the exit code is one of ``codes`` (never 3)."""
    assert r.returncode in codes, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("Error: "), r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
    return str(lines[0])


def _write_jsonl(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- output

#: Each command that writes a file, with the file as its last argument.
WRITERS: dict[str, list[str]] = {
    "epcis export -o": ["epcis", "export", "-o"],
    "passport -o": ["passport", EXPORT_LOT, "-o"],
    "eudr -o": ["eudr", EXPORT_LOT, "-o"],
    "datasette-metadata -o": ["datasette-metadata", "-o"],
    "generate -o": ["generate", "--producers", "1", "-o"],
    "delays --plot": ["delays", "--plot"],
    "bottlenecks --plot": ["bottlenecks", "--plot"],
}


def _alias(db: Path, how: str) -> Path:
    """A name for the ledger (or its -wal/-shm) that is not the --db argument as written."""
    folder = db.parent
    if how == "same name":
        return db
    if how == "another spelling":
        sub = folder / "sub"
        sub.mkdir(exist_ok=True)
        return sub / ".." / db.name
    if how == "symlink":
        link = folder / "report.svg"
        link.symlink_to(db)
        return link
    if how == "hard link":
        link = folder / "copy.svg"
        os.link(db, link)
        return link
    if how == "symlinked folder":
        (folder / "out").symlink_to(folder, target_is_directory=True)
        return folder / "out" / db.name
    target = Path(str(db) + how)  # "-wal", "-shm": present or not, by name
    if how == "-wal":
        link = folder / "wal.svg"
        link.symlink_to(target)
        return link
    return target


@pytest.mark.parametrize(
    "how",
    ["same name", "another spelling", "symlink", "hard link", "symlinked folder", "-wal", "-shm"],
)
@pytest.mark.parametrize("writer", list(WRITERS))
def test_no_output_option_writes_the_ledger(db: Path, writer: str, how: str) -> None:
    target = _alias(db, how)
    before, raw = state(db), _bytes(db)
    r = invoke(db, *WRITERS[writer], str(target))
    line = _one_error_line(r, 2)
    assert "writing it would destroy the ledger" in line, line
    assert state(db) == before and _bytes(db) == raw
    FIGURES.setdefault("trust_input", {}).setdefault("output_refusals", 0)
    FIGURES["trust_input"]["output_refusals"] += 1


def test_schema_folder_and_passport_default_name_refuse_the_ledger(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    (folder / "harvest.json").symlink_to(db)
    raw = _bytes(db)
    _one_error_line(invoke(db, "schema", "--write", str(folder)), 2)
    assert _bytes(db) == raw
    assert sorted(p.name for p in folder.iterdir()) == ["harvest.json"]  # nothing written
    monkeypatch.chdir(tmp_path)
    Path(f"{EXPORT_LOT}.html").symlink_to(db)
    line = _one_error_line(invoke(db, "passport", EXPORT_LOT), 2)
    assert f"{EXPORT_LOT}.html is the ledger" in line
    assert _bytes(db) == raw


def test_output_beside_the_ledger_is_still_written(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "ledger.db.json"  # a name that merely starts like the ledger's
    r = invoke(db, "epcis", "export", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["type"] == "EPCISDocument"


OS_ERRORS: dict[str, Callable[[Path], list[str]]] = {
    "/dev/full": lambda d: ["datasette-metadata", "-o", "/dev/full"],
    "/dev/full, epcis": lambda d: ["epcis", "export", "-o", "/dev/full"],
    "/dev/full, generate": lambda d: ["generate", "--producers", "1", "-o", "/dev/full"],
    "missing folder, eudr": lambda d: ["eudr", EXPORT_LOT, "-o", str(d / "no" / "x.json")],
    "missing folder, generate": lambda d: [
        "generate",
        "--producers",
        "1",
        "-o",
        str(d / "no" / "x"),
    ],
    "a file as folder": lambda d: ["datasette-metadata", "-o", str(d / "ledger.db" / "m.json")],
    "file name too long": lambda d: ["passport", EXPORT_LOT, "-o", str(d / ("p" * 300 + ".html"))],
    "schema into a file": lambda d: ["schema", "--write", str(d / "ledger.db" / "s")],
    "url too long": lambda d: ["passport", EXPORT_LOT, "--url", "https://x.example/" + "a" * 5000],
    "encoding rot13": lambda d: ["import", "--encoding", "rot13", str(d / "e.csv")],
    "encoding base64": lambda d: ["import", "--encoding", "base64", str(d / "e.csv")],
    "encoding utf-16 without BOM": lambda d: ["import", "--encoding", "utf-16", str(d / "e.csv")],
    "encoding punycode": lambda d: ["import", "--encoding", "punycode", str(d / "e.csv")],
}


@pytest.mark.parametrize("case", list(OS_ERRORS))
def test_os_errors_on_output_are_one_line(db: Path, tmp_path: Path, case: str) -> None:
    (tmp_path / "e.csv").write_text("type,time,site,lot,kg\ndrying,x,farm:X,H1,5\n")
    before = state(db)
    r = invoke(db, *OS_ERRORS[case](tmp_path))
    _one_error_line(r, 1, 2)
    assert state(db) == before


def test_a_full_stdout_is_one_line_in_a_real_process(db: Path) -> None:
    import subprocess

    from ._helpers import cli_env

    for args in (["stats"], ["history", "H1"], ["eudr", EXPORT_LOT]):
        with open("/dev/full", "w") as full:
            r = subprocess.run(
                lottrace_cmd(db, *args),
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                env=cli_env(),
                timeout=120,
                check=False,
            )
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip() == "Error: cannot write the output: No space left on device"


def test_the_ledger_is_refused_as_output_in_a_real_process(db: Path, tmp_path: Path) -> None:
    link = tmp_path / "export.jsonld"
    link.symlink_to(db)
    raw = _bytes(db)
    r = run_cli(db, "epcis", "export", "-o", str(link))
    assert _one_error_line(r, 2).startswith(f"Error: {link} is the ledger {db}")
    assert _bytes(db) == raw


# --------------------------------------------------------------------------- duplicate keys


def _dup_line(event: dict[str, Any], key: str, value: Any) -> str:
    """The event as one JSON line with ``key`` written twice, the second time ``value``."""
    text = json.dumps(event)
    return text[:-1] + f', "{key}": {json.dumps(value)}}}'


DUPLICATES: dict[str, tuple[str, str]] = {
    # name: (file content, the key the error names)
    "top level": (_dup_line(drying("D1", 30, 5.0), "kg", 500.0), "kg"),
    "spaced colon": ('{"type": "drying", "lot" : "H1", "lot": "H2"}', "lot"),
    "escaped key": ('{"type": "drying", "kg": 5, "\\u006bg": 50}', "kg"),
    "nested": (
        json.dumps(harvest("H9", 2)).replace('"area_ha": 2.0', '"area_ha": 2.0, "id": "PLOT-X"'),
        "id",
    ),
    "quote in a value": ('{"type": "drying", "note": "a \\":", "lot": "H1", "lot": "H2"}', "lot"),
}


@pytest.mark.parametrize("case", list(DUPLICATES))
def test_json_lines_with_a_repeated_key_are_refused(db: Path, tmp_path: Path, case: str) -> None:
    content, key = DUPLICATES[case]
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(harvest("D1", 3)) + "\n" + content + "\n", encoding="utf-8")
    before = state(db)
    line = _one_error_line(invoke(db, "import", str(path)), 1)
    assert line.startswith(f"Error: {path}:2: ") and f"key '{key}' appears twice" in line, line
    assert state(db) == before


def test_json_arrays_csv_cells_and_epcis_with_a_repeated_key_are_refused(
    db: Path, tmp_path: Path
) -> None:
    before = state(db)
    array = tmp_path / "in.json"
    array.write_text(
        '[\n  {"type": "drying", "time": "2025-06-01T08:00:00-05:00",\n'
        '   "site": "farm:X",\n   "lot": "H1",\n   "kg": 5,\n   "kg": 500}\n]\n'
    )
    line = _one_error_line(invoke(db, "import", str(array)), 1)
    assert line.startswith(f"Error: {array}:6: key 'kg' appears twice"), line
    csv = tmp_path / "in.csv"
    csv.write_text(
        "type;time;site;lot;producer;kg;plot\n"
        'harvest;2025-05-02T08:00:00-05:00;farm:Z;Z1;P;10;"{""id"": ""A"", ""id"": ""B""}"\n'
    )
    line = _one_error_line(invoke(db, "import", str(csv)), 1)
    assert line.startswith(f"Error: {csv}:2: field 'plot': key 'id' appears twice"), line
    doc = tmp_path / "doc.jsonld"
    event = (
        '{"type": "ObjectEvent", "action": "OBSERVE", "eventTime": "2025-06-02T09:30:00-05:00",\n'
        '  "eventTimeZoneOffset": "-05:00", "epcList": ["urn:epc:id:sgtin:0614141.107346.1"],\n'
        '  "epcList": ["urn:epc:id:sgtin:0614141.107346.2"]}'
    )
    doc.write_text(
        '{"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],\n'
        ' "type": "EPCISDocument", "schemaVersion": "2.0",\n'
        ' "creationDate": "2025-09-30T00:00:00Z",\n'
        ' "epcisBody": {"eventList": [' + event + "]}}\n"
    )
    for args in (["epcis", "import", str(doc)], ["epcis", "hash", str(doc)]):
        line = _one_error_line(invoke(db, *args), 1)
        assert line.startswith(f"Error: {doc}:6: key 'epcList' appears twice"), line
    assert state(db) == before


def _pairs_oracle(text: str) -> set[str]:
    """Every repeated key, by the standard library's parser (slow, obviously right)."""
    found: set[str] = set()

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        found.update(k for i, k in enumerate(keys) if k in keys[:i])
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


_KEYS = st.sampled_from(["a", "b", "kg", 'q"', "a:", "é", "\u0065\u0301"])
_SCALARS = st.one_of(
    st.integers(-5, 5), st.sampled_from(['x":', 'q"', "\\", "é", ":", " "]), st.none()
)


@st.composite
def _json_texts(draw: st.DrawFn) -> str:
    """JSON text written by hand: any spacing, keys maybe repeated, maybe ``\\u``-escaped."""

    def string(s: str) -> str:
        if draw(st.booleans()):
            return '"' + "".join(f"\\u{ord(c):04x}" for c in s) + '"'
        return json.dumps(s, ensure_ascii=draw(st.booleans()))

    def value(depth: int) -> str:
        kind = draw(st.integers(0, 2 if depth < 3 else 0))
        if kind == 0:
            v = draw(_SCALARS)
            return string(v) if isinstance(v, str) else json.dumps(v)
        space = draw(st.sampled_from(["", " ", "\n", "\t "]))
        if kind == 1:
            items = [value(depth + 1) for _ in range(draw(st.integers(0, 3)))]
            return "[" + f",{space}".join(items) + "]"
        keys = draw(st.lists(_KEYS, max_size=4))
        members = [f"{string(k)}{space}:{space}{value(depth + 1)}" for k in keys]
        return "{" + f",{space}".join(members) + "}"

    return value(0)


@SETTINGS
@given(_json_texts())
def test_repeated_key_agrees_with_the_standard_library(text: str) -> None:
    expected = _pairs_oracle(text)
    for raw in (text, text.encode()):
        found = repeated_key(raw, orjson.loads(text))
        if not expected:
            assert found is None, (text, found)
        else:
            assert found is not None and found[0] in expected, (text, found, expected)
            assert 1 <= found[1] <= text.count("\n") + 1


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("kind", ["jsonl", "json", "csv"])
def test_utf16_and_utf32_files_are_read_as_their_utf8_twins(
    db: Path, tmp_path: Path, encoding: str, kind: str
) -> None:
    boms = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}
    boms |= {"utf-32-le": b"\xff\xfe\x00\x00", "utf-32-be": b"\x00\x00\xfe\xff"}
    events = [harvest("N1", 2, producer="Peña"), drying("N1", 12, 300.0)]
    if kind == "jsonl":
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
    elif kind == "json":
        text = json.dumps(events, indent=2, ensure_ascii=False)
    else:
        text = "type,time,site,lot,kg,producer,plot.id\n" + "".join(
            f"{e['type']},{e['time']},{e['site']},{e['lot']},{e['kg']},"
            f"{e.get('producer', '')},{e.get('plot', {}).get('id', '')}\n"
            for e in events
        )
    wide = tmp_path / f"wide.{kind}"
    wide.write_bytes(boms[encoding] + text.encode(encoding))
    r = invoke(db, "import", "--json", str(wide))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == 2
    narrow = tmp_path / f"narrow.{kind}"
    narrow.write_text(text, encoding="utf-8")
    r = invoke(db, "import", "--json", str(narrow))
    assert json.loads(r.stdout)["duplicates"] == 2  # the same events, byte for byte
    with Ledger(db) as ledger:
        assert ledger.lot_events("N1")[0].event.producer == "Peña"  # type: ignore[attr-defined]


def test_broken_wide_files_are_one_line(db: Path, tmp_path: Path) -> None:
    before = state(db)
    broken = tmp_path / "b.jsonl"
    broken.write_bytes(b"\xff\xfe" + '{"type": "drying"}\n'.encode("utf-16-le") + b"\x00\xd8")
    _one_error_line(invoke(db, "import", str(broken)), 1)
    bom_only = tmp_path / "e.json"
    bom_only.write_bytes(b"\xff\xfe\x00\x00")
    assert "the file is empty" in _one_error_line(invoke(db, "import", str(bom_only)), 1)
    assert state(db) == before


@pytest.mark.parametrize(
    "name, content", [("empty.json", "[]\n"), ("header.csv", "type,time,site,lot,kg\n")]
)
def test_a_file_with_no_events_says_so(db: Path, tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    r = invoke(db, "import", str(path))
    assert r.returncode == 0
    assert f"note: no events in {path}" in r.stderr.splitlines()


def test_a_utf16_file_in_a_real_process(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_bytes(b"\xff\xfe" + (json.dumps(harvest("U1", 3)) + "\n").encode("utf-16-le"))
    r = run_cli(db, "import", str(path))
    assert r.returncode == 0 and r.stdout.startswith("added 1,"), (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr


# --------------------------------------------------------------------------- text


BAD_TEXT = {
    "newline": "\n",
    "carriage return": "\r",
    "ESC": "\x1b",
    "DEL": "\x7f",
    "NEL U+0085": "\x85",
    "CSI U+009B": "\x9b",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "RLO U+202E": "\u202e",
    "LRI U+2066": "\u2066",
    "PDI U+2069": "\u2069",
    "RLM U+200F": "\u200f",
    "ALM U+061C": "\u061c",
}
#: (field, character): one-line fields refuse all of BAD_TEXT, free text all but newline.
TEXT_CASES = [
    (field, char)
    for field in ("producer", "actor", "variety", "note")
    for char in BAD_TEXT
    if not (field == "note" and char == "newline")
]


def _with(field: str, value: str) -> dict[str, Any]:
    e = harvest("T1", 2)
    e[field] = value
    return e


@pytest.mark.parametrize("field, char", TEXT_CASES)
def test_text_with_control_separator_or_bidi_characters_is_refused(
    db: Path, tmp_path: Path, field: str, char: str
) -> None:
    path = _write_jsonl(tmp_path / "t.jsonl", _with(field, f"Peña {BAD_TEXT[char]}x"))
    before = state(db)
    line = _one_error_line(invoke(db, "import", str(path)), 1)
    assert line.startswith(f"Error: {path}:1: lot T1: field '{field}': contains "), line
    assert f"U+{ord(BAD_TEXT[char]):04X}" in line
    assert state(db) == before


def test_free_text_keeps_newlines_and_tabs(db: Path, tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "n.jsonl", _with("note", "line one\n\tline two"))
    assert invoke(db, "import", str(path)).returncode == 0
    with Ledger(db) as ledger:
        assert ledger.lot_events("T1")[0].event.note == "line one\n\tline two"


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
@pytest.mark.parametrize("field", ["producer", "plot.id", "container"])
def test_ids_with_invisible_characters_are_refused(
    db: Path, tmp_path: Path, field: str, char: str
) -> None:
    e = harvest("T1", 2)
    if field == "plot.id":
        e["plot"]["id"] = f"PLOT{char}7"
    elif field == "container":
        e = {"type": "export", "time": "2025-07-01T08:00:00-05:00", "site": "port:PAITA"}
        e |= {"lot": EXPORT_LOT, "kg": 1.0, "container": f"MSKU{char}1"}
    else:
        e[field] = f"PRD{char}7"
    path = _write_jsonl(tmp_path / "z.jsonl", e)
    before = state(db)
    line = _one_error_line(invoke(db, "import", str(path)), 1)
    assert f"field '{field}': contains an invisible character (U+{ord(char):04X})" in line, line
    assert state(db) == before


def test_ids_are_nfc_normalised(db: Path, tmp_path: Path) -> None:
    decomposed = unicodedata.normalize("NFD", "Peña")
    assert decomposed != "Peña"
    e = harvest("T1", 2, producer=decomposed)
    e["plot"]["id"] = unicodedata.normalize("NFD", "Cañón-3")
    assert invoke(db, "import", str(_write_jsonl(tmp_path / "d.jsonl", e))).returncode == 0
    with Ledger(db) as ledger:
        stored = ledger.lot_events("T1")[0].event
    assert stored.producer == "Peña"  # type: ignore[attr-defined]
    assert stored.plot.id == "Cañón-3"  # type: ignore[attr-defined]
    e2 = harvest("T1", 2, producer="Peña")
    e2["plot"]["id"] = "Cañón-3"
    r = invoke(db, "import", "--json", str(_write_jsonl(tmp_path / "c.jsonl", e2)))
    assert json.loads(r.stdout)["duplicates"] == 1  # the same event, however it was typed


def _epcis_doc(ids: list[str], site: str = "urn:epc:id:sgln:0614141.00777.0") -> str:
    event = {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": "2025-06-02T09:30:00-05:00",
        "eventTimeZoneOffset": "-05:00",
        "epcList": ids,
        "bizLocation": {"id": site},
    }
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-09-30T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    }
    return json.dumps(doc, ensure_ascii=False)


FOREIGN = {
    "zero-width in an EPC": ["urn:epc:id:sgtin:0614141.107346.2\u200b017"],
    "bidi in an EPC": ["urn:epc:id:sgtin:0614141.107346.\u202e7102"],
    "BOM in an EPC": ["urn:epc:id:sgtin:0614141.107346.\ufeff1"],
    "word joiner in the second EPC": ["urn:x:1", "urn:x:\u20602"],
    "not NFC": ["https://id.example.org/lot/" + unicodedata.normalize("NFD", "Peña")],
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_foreign_epcis_ids_are_visible_and_nfc(db: Path, tmp_path: Path, case: str) -> None:
    path = tmp_path / "f.jsonld"
    path.write_text(_epcis_doc(FOREIGN[case]), encoding="utf-8")
    before = state(db)
    line = _one_error_line(invoke(db, "epcis", "import", str(path)), 1)
    assert f"{path}:" in line and "field 'event': " in line, line
    assert state(db) == before
    site = tmp_path / "s.jsonld"
    site.write_text(_epcis_doc(["urn:epc:id:sgtin:0614141.107346.1"], "urn:x:\u2066loc"))
    assert "field 'site': " in _one_error_line(invoke(db, "epcis", "import", str(site)), 1)
    assert state(db) == before


def test_a_type_epcis_line_meets_the_same_id_rules(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.jsonld"
    path.write_text(_epcis_doc(["urn:epc:id:sgtin:0614141.107346.1"]), encoding="utf-8")
    assert invoke(db, "epcis", "import", str(path)).returncode == 0
    with Ledger(db) as ledger:
        good = next(e.event for e in ledger.iter_events() if e.event.type == "epcis")
    line = good.model_dump(mode="json", exclude_none=True)
    line["event"]["epcList"] = ["urn:epc:id:sgtin:0614141.107346.\u200d1"]
    before = state(db)
    err = _one_error_line(invoke(db, "import", str(_write_jsonl(tmp_path / "e.jsonl", line))), 1)
    assert "field 'event': id " in err and "(U+200D)" in err, err
    assert state(db) == before


def test_values_an_old_ledger_holds_are_printed_escaped(db: Path) -> None:
    # Written before these rules: read back as written, never printed raw.
    hostile = harvest("OLD1", 3, producer="Pe\u202eña", actor="a\nforged line", note="n\x9b2J")
    with Ledger(db) as ledger:
        ledger.append([("old:1", parse_event(hostile, stored=True))])
    for args in (["history", "OLD1"], ["upstream", "OLD1"], ["history", "OLD1", "--json"]):
        r = invoke(db, *args)
        assert r.returncode == 0, r.stderr
        for raw in ("\u202e", "\x9b", "forged line\n", "\nforged"):
            assert raw not in r.stdout, (args, r.stdout)
    assert "Pe\\u202eña" in invoke(db, "history", "OLD1").stdout
    assert json.loads(invoke(db, "history", "OLD1", "--json").stdout)["events"][0]["actor"] == (
        "a\nforged line"
    )  # --json keeps the value, escaped as JSON
    assert invoke(db, "verify").returncode == 0


# --------------------------------------------------------------------------- voided


def test_reimporting_a_voided_event_says_so(db: Path, tmp_path: Path) -> None:
    dried = drying("V1", 29, 5.0)
    with Ledger(db) as ledger:
        ledger.append(batch(harvest("V1", 3), harvest("V2", 3)))
    path = _write_jsonl(tmp_path / "dried.jsonl", dried, drying("V2", 29, 6.0))
    assert invoke(db, "import", str(path)).returncode == 0
    with Ledger(db) as ledger:
        eid = ledger.lot_events("V1")[-1].event_id
        ledger.append(batch(correction(eid, 61)))
    before = state(db)
    r = invoke(db, "import", str(path))
    assert r.returncode == 0
    assert r.stdout.strip() == "added 0, duplicates skipped 1, warnings 0"
    assert r.stderr.strip() == (
        f"note: 1 event in {path} was voided by a correction earlier; it stays void"
    )
    assert json.loads(invoke(db, "import", "--json", str(path)).stdout)["voided_again"] == 1
    assert state(db) == before
    with Ledger(db) as ledger:  # and in the same batch as its correction
        report = ledger.append(batch(dried, dried))
    assert (report.added, report.duplicates, report.voided_again) == (0, 0, 2)


def test_a_voided_event_met_in_its_correction_batch_is_void_too(tmp_path: Path) -> None:
    from lottrace.events import event_id

    with Ledger.create(tmp_path / "l.db") as ledger:
        ledger.append(batch(harvest("H1", 1)))
        dried = drying("H1", 10, 300.0)
        eid = event_id(parse_event(dried))
        report = ledger.append(batch(dried, correction(eid, 20), dried))
    assert (report.added, report.duplicates, report.voided_again) == (2, 0, 1)


def test_no_output_writes_over_another_ledger(tmp_path: Path) -> None:
    """Not only the --db ledger: any SQLite file (another cooperative's ledger) is refused."""
    from lottrace.ledger import Ledger

    db, other = tmp_path / "ledger.db", tmp_path / "other.db"
    Ledger.create(db).close()
    Ledger.create(other).close()
    before = other.read_bytes()
    for args in (
        ["generate", "--producers", "2", "-o", str(other)],
        ["datasette-metadata", "-o", str(other)],
        ["epcis", "export", "-o", str(other)],
    ):
        r = invoke(db, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "SQLite database" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert other.read_bytes() == before
