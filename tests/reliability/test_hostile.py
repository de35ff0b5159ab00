"""Hostile and broken input: generated garbage thrown at ``import`` and ``log``.

Hypothesis builds each input from a valid event and one fault: truncated JSON,
wrong types, missing fields, huge numbers, NaN and Infinity, negative kg,
times without offsets or in year 9999, unicode lot codes, control characters,
1 MB strings, SQL and shell fragments in every string field, CSV with the
wrong delimiter or encoding, empty and binary files. Each input runs against a
fresh copy of a ledger seeded with seven valid events, in its own directory.

For every input the outcome is one of two, asserted exactly:

- rejected: exit code 1 or 2, one line on stderr naming the file and line (for
  ``log``, the field), no traceback, and the ledger's content unchanged (same
  count, same head, same rows);
- accepted, because the value is legal (an SQL fragment in a free-text field,
  a lot code such as ``A/../../x``): exit code 0, exactly the expected events
  added, stored verbatim, and the chain verifies.

Either way nothing appears in the directory but the ledger and the input, so
no input makes lottrace write elsewhere or run a command. A few cases also run
in a real subprocess, to prove no traceback reaches stderr there either.
Deterministic: ``derandomize=True`` and bounded ``max_examples``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lottrace.ledger import Ledger

from ._helpers import FIGURES, LedgerState, event_ids, invoke, run_cli, state
from factories import batch, chain, export, harvest

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: What every suite in this file tried, by case; printed at the end of the run.
TRIED: Counter[str] = Counter()
OUTCOME: Counter[str] = Counter()

SEED_EVENTS = 7

# String fields of a harvest, and which of them are free text (anything printable).
CODE_FIELDS = ("lot", "site", "type", "time")
TEXT_FIELDS = ("producer", "plot.id", "variety", "actor", "note")
REQUIRED = ("type", "time", "site", "lot", "producer", "plot", "kg")

SQL_AND_SHELL = (
    "'; DROP TABLE events;--",
    "; DROP TABLE events;--",
    '" OR 1=1 --',
    "Robert'); DELETE FROM events WHERE 1=1; --",
    "1; UPDATE meta SET value='x' WHERE key='head'",
    "x' UNION SELECT body FROM events --",
    "$(touch pwned)",
    "`touch pwned`",
    "| touch pwned",
    "../../x",
    "../../../../tmp/pwned",
    "/etc/passwd",
    "A/../../x",
    "%s%s%s%n",
    "{0.__class__}",
)

CONTROL = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + ["\x7f", "\x85", "\u2028"]
MB = 1_000_000


@dataclass
class Case:
    """One generated input: the files to write, the expected outcome."""

    label: str
    files: dict[str, bytes]
    args: list[str]
    reject: bool | None  # True: must be rejected; False: must be accepted; None: either
    line: int | None = None  # the line the error must name (None: a whole-file error)
    bad_file: str | None = None
    added: int = 0  # events added if accepted
    stored: list[str] = field(default_factory=list)  # strings the stored bodies must contain


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile-seed") / "ledger.db"
    with Ledger.create(path) as led:
        led.append(batch(*chain()))
    assert len(event_ids(path)) == SEED_EVENTS
    return path


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    FIGURES["hostile"] = {
        "inputs": sum(TRIED.values()),
        "by_case": dict(sorted(TRIED.items())),
        "outcome": dict(sorted(OUTCOME.items())),
    }


def _listing(root: Path) -> set[str]:
    """Every path under ``root``, except SQLite's own -wal and -shm beside the ledger."""
    companions = {"work/ledger.db-wal", "work/ledger.db-shm"}
    return {str(p.relative_to(root)) for p in root.rglob("*")} - companions


@contextlib.contextmanager
def _workdir(seeded: Path) -> Iterator[Path]:
    """A fresh directory holding a copy of the seeded ledger; cwd while inside."""
    base = Path(tempfile.mkdtemp(prefix="hostile-"))
    try:
        d = base / "work"
        (d / "sub").mkdir(parents=True)
        shutil.copyfile(seeded, d / "ledger.db")
        with contextlib.chdir(d / "sub"):
            yield d
    finally:
        shutil.rmtree(base)


def _bodies(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        con.close()


def run_case(seeded: Path, case: Case, *, subprocess: bool = False) -> None:
    """Run one input and assert its outcome (see the module docstring)."""
    with _workdir(seeded) as d:
        db = d / "ledger.db"
        for name, data in case.files.items():
            (d / name).write_bytes(data)
        args = [str(d / a) if a in case.files else a for a in case.args]
        base = d.parent
        before_files = _listing(base)
        before = state(db)
        before_ids = event_ids(db)
        r = run_cli(db, *args) if subprocess else invoke(db, *args)
        after = state(db)
        assert _listing(base) == before_files, f"{case.label}: files appeared or vanished"
        out = r.stdout + r.stderr
        assert "Traceback" not in out, f"{case.label}: {out[-2000:]}"
        TRIED[case.label] += 1
        if r.returncode == 0:
            assert case.reject is not True, f"{case.label}: accepted:\n{r.stdout[-500:]}"
            _accepted(db, case, before, after, before_ids)
            OUTCOME["accepted as valid"] += 1
        else:
            assert case.reject is not False, f"{case.label}: rejected: {r.stderr[-500:]}"
            _rejected(r.returncode, r.stderr, case, before, after)
            OUTCOME["rejected"] += 1


def _rejected(code: int, stderr: str, case: Case, before: LedgerState, after: LedgerState) -> None:
    assert code in (1, 2), f"{case.label}: exit {code}: {stderr[-500:]}"
    lines = stderr.strip().splitlines()
    if len(lines) > 1 and re.fullmatch(
        r"Error: \d+ bad rows \(listed above\); nothing was written", lines[-1]
    ):
        # several bad rows (a wrong delimiter breaks them all): one line each, then a summary
        assert case.bad_file is not None
        assert all(re.match(rf".*{re.escape(case.bad_file)}:\d+: ", x) for x in lines[:-1]), lines
        assert f"{case.bad_file}:{case.line}:" in lines[0], lines[0]
        assert after == before, f"{case.label}: the ledger changed"
        return
    if code == 2:  # click's usage error: "Usage: ...", "Try ... --help", then the one Error line
        lines = [x for x in lines if x and not x.startswith(("Usage: ", "Try "))]
    assert len(lines) == 1, f"{case.label}: {len(lines)} lines: {stderr[:1000]!r}"
    msg = lines[0]
    assert msg.startswith("Error: "), msg[:300]
    assert len(msg) < 600, f"{case.label}: message too long ({len(msg)} chars)"
    if case.bad_file is not None:
        where = case.bad_file + (f":{case.line}:" if case.line is not None else ":")
        assert where in msg, f"{case.label}: {where!r} not in {msg[:300]!r}"
    else:
        # a usage error (2) names the option; a bad value (1) names the field
        assert ("--" in msg) if code == 2 else ("lottrace log:" in msg and "field '" in msg), msg
    assert after == before, f"{case.label}: the ledger changed"


def _accepted(
    db: Path, case: Case, before: LedgerState, after: LedgerState, before_ids: list[str]
) -> None:
    assert after.events == before.events + case.added, case.label
    assert event_ids(db)[: before.events] == before_ids
    bodies = _bodies(db)[before.events :]
    for s in case.stored:
        encoded = json.dumps(s, ensure_ascii=False)[1:-1]
        assert any(encoded in b for b in bodies), f"{case.label}: {s!r} not stored verbatim"
    with Ledger(db) as led:
        assert led.verify().events == after.events


# ---------------------------------------------------------------- generators


def _valid(i: int) -> dict[str, Any]:
    """A valid harvest of a lot not in the seeded ledger."""
    return harvest(f"NEW{i}", 3, 100.0 + i)


def _set(rec: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = rec
    for p in parents:
        node = node[p]
    node[last] = value


def _del(rec: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node = rec
    for p in parents:
        node = node[p]
    del node[last]


NAIVE_TIMES = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2199, 1, 1),
).map(lambda t: t.isoformat())
YEAR_9999 = st.sampled_from(
    [
        "9999-12-31T23:59:59-05:00",
        "9999-01-01T00:00:00Z",
        "9999-06-01T08:00:00+14:00",
        "0001-01-01T00:00:00+00:00",
        "1900-05-01T08:00:00-05:00",
        "2200-01-01T00:00:00-05:00",
    ]
)
NON_STRINGS = st.sampled_from([[], {}, [1, 2], {"a": 1}, True, False, None, ""])
WRONG_TYPES = NON_STRINGS | st.sampled_from(["many", "12 kg"])
HUGE = st.sampled_from(["1e308", "1.7976931348623157e308", "10000000.5", "1e16", "2e7"]) | (
    st.integers(min_value=10**7 + 1, max_value=10**40).map(str)
)
NAN_INF = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "nan", "inf"])
NEGATIVE = st.sampled_from(["0", "-0", "0.0", "-1", "-0.0001", "-1e308"]) | st.floats(
    max_value=0, allow_nan=False, allow_infinity=False
).map(repr)
UNICODE_LOT = st.text(min_size=1, max_size=24).filter(lambda s: not s.isascii())


@st.composite
def record_fault(draw: st.DrawFn) -> tuple[str, str, bool | None, list[str]]:
    """One faulty harvest record as a JSON text: (label, text, must_reject, stored)."""
    rec = _valid(99)
    raw: dict[str, str] = {}  # dotted field -> raw JSON text replacing a placeholder
    label = draw(
        st.sampled_from(
            [
                "truncated JSON",
                "wrong type",
                "missing field",
                "huge number",
                "NaN or Infinity",
                "negative kg",
                "time without offset",
                "implausible year",
                "unicode lot code",
                "control character",
                "1 MB string",
                "SQL or shell fragment",
            ]
        )
    )
    reject: bool | None = True
    stored: list[str] = []
    if label == "truncated JSON":
        text = json.dumps(rec)
        return label, text[: draw(st.integers(1, len(text) - 1))], True, []
    if label == "wrong type":
        name = draw(st.sampled_from((*REQUIRED, "plot.id", "plot.area_ha")))
        # "many" is a fine lot code, producer or plot id: only non-strings are wrong there
        wrong = NON_STRINGS if name in ("lot", "producer", "plot.id") else WRONG_TYPES
        _set(rec, name, draw(wrong))
    elif label == "missing field":
        _del(rec, draw(st.sampled_from((*REQUIRED, "plot.id"))))
    elif label == "huge number":
        raw[draw(st.sampled_from(["kg", "plot.area_ha", "plot.altitude_m"]))] = draw(HUGE)
    elif label == "NaN or Infinity":
        raw[draw(st.sampled_from(["kg", "plot.area_ha", "plot.geometry.coordinates"]))] = draw(
            NAN_INF
        )
    elif label == "negative kg":
        raw["kg"] = draw(NEGATIVE)
    elif label == "time without offset":
        rec["time"] = draw(NAIVE_TIMES)
    elif label == "implausible year":
        rec["time"] = draw(YEAR_9999)
    elif label == "unicode lot code":
        rec["lot"] = draw(UNICODE_LOT)
    elif label == "control character":
        f = draw(st.sampled_from(CODE_FIELDS[:2] + TEXT_FIELDS))
        s = draw(st.sampled_from(["NEW99", "farm:NEW99", "abc"]))
        at = draw(st.integers(0, len(s)))
        _set(rec, f, s[:at] + draw(st.sampled_from(CONTROL)) + s[at:])
    elif label == "1 MB string":
        _set(rec, draw(st.sampled_from(CODE_FIELDS + TEXT_FIELDS)), "A" * MB)
    else:
        f = draw(st.sampled_from(CODE_FIELDS + TEXT_FIELDS))
        s = draw(st.sampled_from(SQL_AND_SHELL))
        _set(rec, f, s)
        if f in TEXT_FIELDS or (f == "lot" and s == "A/../../x"):
            reject, stored = False, [s]
    text = json.dumps(rec)
    for i, (f, value) in enumerate(raw.items()):
        marker = f"__RAW{i}__"
        _set(rec, f, marker)
        text = json.dumps(rec).replace(json.dumps(marker), value)
    return label, text, reject, stored


def _around(draw: st.DrawFn) -> tuple[int, int]:
    return draw(st.integers(0, 3)), draw(st.integers(0, 2))


# ---------------------------------------------------------------- import: JSON Lines


@SETTINGS
@given(data=st.data())
def test_jsonl_garbage(seeded: Path, data: st.DataObject) -> None:
    label, text, reject, stored = data.draw(record_fault())
    before_n, after_n = _around(data.draw)
    if label == "truncated JSON":
        after_n = 0  # a cut line is the end of the file
    lines = [json.dumps(_valid(i)) for i in range(before_n)] + [text]
    lines += [json.dumps(_valid(i)) for i in range(before_n, before_n + after_n)]
    body = "\n".join(lines) + ("" if label == "truncated JSON" else "\n")
    run_case(
        seeded,
        Case(
            f"jsonl: {label}",
            {"in.jsonl": body.encode()},
            ["import", "in.jsonl"],
            reject,
            line=before_n + 1,
            bad_file="in.jsonl",
            added=before_n + after_n + 1,
            stored=stored,
        ),
    )


# ---------------------------------------------------------------- import: a JSON array


@SETTINGS
@given(data=st.data())
def test_json_array_garbage(seeded: Path, data: st.DataObject) -> None:
    label, text, reject, stored = data.draw(record_fault())
    before_n, after_n = _around(data.draw)
    recs = [json.dumps(_valid(i)) for i in range(before_n)] + [text]
    if label == "truncated JSON":
        body = "[\n" + ",\n".join(recs)  # the document ends inside the record
        line = before_n + 2
    else:
        recs += [json.dumps(_valid(i)) for i in range(before_n, before_n + after_n)]
        body = "[\n" + ",\n".join(recs) + "\n]\n"
        line = before_n + 2
    run_case(
        seeded,
        Case(
            f"json: {label}",
            {"in.json": body.encode()},
            ["import", "in.json"],
            reject,
            line=line,
            bad_file="in.json",
            added=before_n + after_n + 1,
            stored=stored,
        ),
    )


# ---------------------------------------------------------------- import: CSV

CSV_HEADER = ["type", "time", "site", "lot", "producer", "plot.id", "plot.lon", "plot.lat", "kg"]


def _csv_row(i: int) -> list[str]:
    r = _valid(i)
    lon, lat = r["plot"]["geometry"]["coordinates"]
    return [
        "harvest", r["time"], r["site"], r["lot"], r["producer"], r["plot"]["id"],
        str(lon), str(lat), str(r["kg"]),
    ]  # fmt: skip


def _csv_cell(value: str, delim: str) -> str:
    if any(c in value for c in (delim, '"', "\n", "\r")):
        return '"' + value.replace('"', '""') + '"'
    return value


CSV_BAD_CELL: dict[str, st.SearchStrategy[str]] = {
    "kg": st.sampled_from(["NaN", "inf", "-1", "0", "1e999", "2e7", "lots", "[1]", "{}", "true"]),
    "time": NAIVE_TIMES | YEAR_9999 | st.sampled_from(["yesterday", "2025-13-01T00:00:00Z"]),
    "lot": UNICODE_LOT | st.sampled_from(["../../x", "; DROP TABLE events;--", "$(touch x)"]),
    "site": st.sampled_from(["farm", "FARM:A", "farm:", "$(touch pwned)", "'; DROP TABLE x"]),
    "plot.lon": st.sampled_from(["200", "-181", "nan", "east", "1e999"]),
    "producer": st.sampled_from(["A" * MB, "a\x00b", "x\x1by"]),
    "type": st.sampled_from(["harvestt", "DROP TABLE events", "cosecha; rm -rf /", "🌱"]),
}


@SETTINGS
@given(data=st.data())
def test_csv_garbage(seeded: Path, data: st.DataObject) -> None:
    before_n, after_n = _around(data.draw)
    label = data.draw(
        st.sampled_from(
            ["bad cell", "SQL in free text", "wrong delimiter", "wrong encoding", "ragged row"]
        )
    )
    delim = data.draw(st.sampled_from([",", ";", "\t"]))
    rows = [_csv_row(i) for i in range(before_n + 1 + after_n)]
    bad = rows[before_n]
    reject: bool | None = True
    stored: list[str] = []
    args = ["import"]
    encoding = "utf-8"
    line: int | None = before_n + 2
    if label == "bad cell":
        col = data.draw(st.sampled_from(sorted(CSV_BAD_CELL)))
        bad[CSV_HEADER.index(col)] = value = data.draw(CSV_BAD_CELL[col])
        if "\x00" in value:
            line = None  # a NUL byte makes it a binary file, rejected as a whole
    elif label == "SQL in free text":
        s = data.draw(st.sampled_from(SQL_AND_SHELL))
        bad[CSV_HEADER.index(data.draw(st.sampled_from(["producer", "plot.id"])))] = s
        reject, stored = False, [s]
    elif label == "wrong delimiter":
        # written with one delimiter, imported as another: the header is one column
        args += ["--delimiter", data.draw(st.sampled_from([d for d in (",", ";") if d != delim]))]
        line = None  # the header reads as one unknown column: refused once, for the file
    elif label == "wrong encoding":
        # Latin-1 letters, declared UTF-8; or UTF-16 without a BOM (reads as binary)
        bad[CSV_HEADER.index("producer")] = "Peña Ñañez"
        if data.draw(st.booleans()):
            encoding = "latin-1"
            args += ["--encoding", "utf-8"]
            line = None  # a decode error is about the file (and names its byte offset)
        else:
            encoding = "utf-16-le"
            line = None
    else:
        extra = data.draw(st.sampled_from(["extra", "", "1;2;3"]))
        bad.append(extra)
        if extra == "":
            reject = False  # trailing empty cells are dropped, as spreadsheets write them
    text = delim.join(CSV_HEADER) + "\n"
    text += "".join(delim.join(_csv_cell(c, delim) for c in r) + "\n" for r in rows)
    run_case(
        seeded,
        Case(
            f"csv: {label}",
            {"in.csv": text.encode(encoding)},
            [*args, "in.csv"],
            reject,
            line=line,
            bad_file="in.csv",
            added=len(rows),
            stored=stored,
        ),
    )


# ---------------------------------------------------------------- import: whole files


@SETTINGS
@given(
    suffix=st.sampled_from(["jsonl", "json", "csv", "txt", "db"]),
    kind=st.sampled_from(["empty", "binary", "whitespace", "BOM only", "NUL bytes"]),
    data=st.data(),
)
def test_whole_file_garbage(seeded: Path, suffix: str, kind: str, data: st.DataObject) -> None:
    if kind == "empty":
        blob = b""
    elif kind == "binary":
        blob = data.draw(st.binary(min_size=1, max_size=4096).filter(lambda b: b"\0" in b))
    elif kind == "whitespace":
        blob = data.draw(st.sampled_from([b"\n", b"  \n\n", b"\r\n\t\r\n"]))
    elif kind == "BOM only":
        blob = data.draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xef\xbb\xbf\n"]))
    else:
        blob = b"\0" * data.draw(st.integers(1, 5000))
    name = f"in.{suffix}"
    run_case(
        seeded,
        Case(f"file: {kind}", {name: blob}, ["import", name], True, line=None, bad_file=name),
    )


def test_a_real_sqlite_file_is_not_imported(seeded: Path) -> None:
    """Pointing import at a ledger (a binary file) is rejected as such."""
    run_case(
        seeded,
        Case(
            "file: a SQLite database",
            {"other.db": seeded.read_bytes()},
            ["import", "other.db"],
            True,
            line=None,
            bad_file="other.db",
        ),
    )


# ---------------------------------------------------------------- log: command-line arguments

LOG_BASE = {"--lot": "LOG1", "--site": "farm:X", "--kg": "5", "--producer": "P1", "--plot": "PL1"}
LOG_TIME = "2025-05-12T08:00:00-05:00"

LOG_BAD: dict[str, st.SearchStrategy[str]] = {
    "--kg": NAN_INF | NEGATIVE | HUGE | st.sampled_from(["", "five", "0x10", "1_0", "[1]"]),
    "--time": NAIVE_TIMES | YEAR_9999 | st.sampled_from(["now-ish", "2025-02-30T00:00Z", "T"]),
    "--lot": UNICODE_LOT
    | st.sampled_from(["", "../../x", "; DROP TABLE events;--", "$(touch pwned)", "A" * MB]),
    "--site": st.sampled_from(["", "farm", "../../x", "farm:$(touch pwned)", "farm:; DROP"])
    | UNICODE_LOT,
    "--producer": st.sampled_from(["", "A" * MB, "x\x00y", "tab\x0bbed", "\x1b[2J"]),
    "--area-ha": st.sampled_from(["-1", "0", "1e5", "NaN", "Infinity", "wide", "1e999"]),
    "--lon": st.sampled_from(["-181", "181", "NaN", "-Infinity", "west", "1e999"]),
    "--method": st.sampled_from(["covered", "sun'; DROP TABLE events;--"]),  # not a harvest field
    "--note": st.sampled_from(["A" * MB, "a\x00b", "bell\x07"]),
    "--actor": st.sampled_from(["A" * MB, "x\x1b[31m"]),
    "--set": st.sampled_from(
        ["kg", "=5", "kg=NaN", "a.b.c.d=1", "__class__=x", "type=export", " =5"]
    ),
    "--input": st.sampled_from(["H1", "H1=", "=5", "H1=-1", "H1=NaN", "H1=5=x", "H1=1"]),
}


@SETTINGS
@given(data=st.data())
def test_log_garbage(seeded: Path, data: st.DataObject) -> None:
    opt = data.draw(st.sampled_from(sorted(LOG_BAD)))
    value = data.draw(LOG_BAD[opt])
    opts = dict(LOG_BASE, **{"--time": LOG_TIME})
    opts[opt] = value
    if opt == "--lon":
        opts["--lat"] = "-5"
    args = ["log", "harvest"] + [x for kv in opts.items() for x in kv]
    run_case(seeded, Case(f"log {opt}", {}, args, True))


@SETTINGS
@given(
    opt=st.sampled_from(["--note", "--actor"]),
    value=st.sampled_from(SQL_AND_SHELL),
)
def test_log_sql_and_shell_in_free_text_is_stored_verbatim(
    seeded: Path, opt: str, value: str
) -> None:
    opts = dict(LOG_BASE, **{"--time": LOG_TIME, opt: value})
    args = ["log", "harvest"] + [x for kv in opts.items() for x in kv]
    run_case(seeded, Case(f"log {opt}: SQL or shell", {}, args, False, added=1, stored=[value]))


def test_log_lot_code_with_dots_and_slashes_is_a_legal_code(seeded: Path) -> None:
    """``A/../../x`` is a legal lot code: stored as text, never used as a path."""
    args = ["log", "harvest", "--lot", "A/../../x", "--site", "farm:$HOME", "--kg", "5"]
    run_case(seeded, Case("log: path-like lot", {}, args, True))  # '$' is not legal in a site
    args = [
        "log", "harvest", "--lot", "A/../../x", "--site", "farm:X", "--kg", "5",
        "--time", LOG_TIME, "--producer", "$(touch pwned)", "--plot", "../../pwned",
        "--lon", "-79", "--lat", "-5",
    ]  # fmt: skip
    run_case(
        seeded,
        Case("log: path-like lot", {}, args, False, added=1, stored=["A/../../x", "../../pwned"]),
    )


# ---------------------------------------------------------------- a real subprocess

SUBPROCESS_CASES = [
    Case("subprocess: binary", {"in.jsonl": bytes(range(256)) * 8}, ["import", "in.jsonl"],
         True, None, "in.jsonl"),
    Case("subprocess: truncated JSON", {"in.json": b'[\n{"type": "harvest", "ti'},
         ["import", "in.json"], True, 2, "in.json"),
    Case("subprocess: NaN", {"in.jsonl": json.dumps(_valid(1)).replace("101.0", "NaN").encode()},
         ["import", "in.jsonl"], True, 1, "in.jsonl"),
    Case("subprocess: 1 MB string",
         {"in.jsonl": json.dumps(dict(_valid(1), producer="A" * MB)).encode()},
         ["import", "in.jsonl"], True, 1, "in.jsonl"),
    Case("subprocess: latin-1 declared utf-8",
         {"in.csv": "type,lot\ndrying,Peña\n".encode("latin-1")},
         ["import", "--encoding", "utf-8", "in.csv"], True, None, "in.csv"),
    Case("subprocess: log shell fragment", {},
         ["log", "drying", "--lot", "H1", "--site", "farm:$(touch pwned)", "--kg", "5",
          "--method", "covered", "--time", LOG_TIME], True),
    Case("subprocess: log NaN kg", {},
         ["log", "drying", "--lot", "H1", "--site", "farm:X", "--kg", "NaN",
          "--method", "covered", "--time", LOG_TIME], True),
]  # fmt: skip


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c.label for c in SUBPROCESS_CASES])
def test_subprocess_no_traceback(seeded: Path, case: Case) -> None:
    run_case(seeded, case, subprocess=True)


def test_valid_rows_still_import(seeded: Path) -> None:
    """The oracle can tell accepted from rejected: the generators' valid rows import."""
    body = "".join(json.dumps(_valid(i)) + "\n" for i in range(3))
    run_case(
        seeded, Case("control: valid", {"in.jsonl": body.encode()}, ["import", "in.jsonl"], False,
                     added=3, stored=["NEW0", "NEW2"]),
    )  # fmt: skip
    row = export("M2", 61, 10.0)
    run_case(
        seeded, Case("control: valid", {"d.jsonl": json.dumps(row).encode()},
                     ["import", "d.jsonl"], False, added=1),
    )  # fmt: skip
