"""Concurrency: four processes append 5,000 distinct events each to one ledger at once.

Two writers go through the command line (one ``lottrace import`` of 5,000
events; ten ``lottrace import`` runs of 500), two through the library
(``Ledger.append`` in 50 batches of 100, and in 5 batches of 1,000). A reader
process queries the ledger the whole time (stats, a lot's events, its lineage,
a full ``verify``), and a ``lottrace history`` loop reads through the CLI.

Writers never fail with "database is locked": ``append`` opens its batch with
``BEGIN IMMEDIATE`` and SQLite's busy handler waits for the other writer, up to
``ledger.BUSY_TIMEOUT_S``. Readers never wait at all (WAL mode).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lottrace.ledger import BUSY_TIMEOUT_S, Ledger

from ._helpers import FIGURES, cli_env, event_ids, lottrace_cmd
from ._season import season, write_jsonl
from factories import batch, chain

pytestmark = pytest.mark.slow

PER_WRITER = 5_000

LIBRARY_WRITER = """
import json, sys, time
from itertools import islice
from lottrace.ledger import Ledger
from lottrace.readers import iter_events
db, path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
waits, added = [], 0
with Ledger(db) as led:
    events = iter_events(path)
    while chunk := list(islice(events, size)):
        t0 = time.perf_counter()
        added += led.append(chunk).added
        waits.append(time.perf_counter() - t0)
print(json.dumps({"added": added, "batches": len(waits), "max_batch_s": max(waits)}))
"""

READER = """
import json, sys, time
from pathlib import Path
from lottrace.ledger import Ledger
db, stop = sys.argv[1], Path(sys.argv[2])
counts, errors, slowest, rounds = [], [], 0.0, 0
while not stop.exists():
    t0 = time.perf_counter()
    try:
        with Ledger(db) as led:
            n = led.stats()["events"]
            assert [e.event.type for e in led.lot_events("M1")][-1] == "export"
            assert len(led.lineage_links("M1", direction="up")) == 3
            assert led.verify().events >= n
        counts.append(n)
        rounds += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    slowest = max(slowest, time.perf_counter() - t0)
    time.sleep(0.05)  # a clerk's pace, not a busy loop stealing the writers' CPU
print(json.dumps({"rounds": rounds, "counts": sorted(set(counts)), "errors": errors,
                  "slowest_round_s": slowest}))
"""


def _popen(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )


def test_four_writers_and_readers_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with Ledger.create(db) as led:
        led.append(batch(*chain()))  # the reader's lot M1 lives here
    base = event_ids(db)
    files, expected = {}, set(base)
    for k in range(4):
        events = list(season(f"W{k}", PER_WRITER))[:PER_WRITER]
        files[k] = tmp_path / f"w{k}.jsonl"
        ids = write_jsonl(files[k], events)
        assert len(set(ids)) == PER_WRITER
        expected |= set(ids)
    assert len(expected) == len(base) + 4 * PER_WRITER
    # writer 1 imports ten files of 500 events, one after another
    parts = []
    lines = files[1].read_text().splitlines(keepends=True)
    for j in range(10):
        parts.append(tmp_path / f"w1-{j}.jsonl")
        parts[-1].write_text("".join(lines[j * 500 : (j + 1) * 500]))

    stop = tmp_path / "stop"
    results: dict[str, Any] = {"cli_history": {"rounds": 0, "errors": []}}

    def cli_many() -> None:
        out = []
        for p in parts:
            r = subprocess.run(
                lottrace_cmd(db, "import", str(p)),
                capture_output=True,
                text=True,
                env=cli_env(),
                check=False,
            )
            out.append((r.returncode, r.stdout, r.stderr))
        results["cli_many"] = out

    def cli_history() -> None:
        while not stop.exists():
            r = subprocess.run(
                lottrace_cmd(db, "history", "M1", "--json"),
                capture_output=True,
                text=True,
                env=cli_env(),
                check=False,
            )
            if r.returncode != 0 or json.loads(r.stdout)["lot"] != "M1":
                results["cli_history"]["errors"].append(r.stderr)
            results["cli_history"]["rounds"] += 1

    t0 = time.perf_counter()
    reader = _popen([sys.executable, "-c", READER, str(db), str(stop)])
    procs = {
        "cli_one": _popen(lottrace_cmd(db, "import", str(files[0]))),
        "lib_100": _popen([sys.executable, "-c", LIBRARY_WRITER, str(db), str(files[2]), "100"]),
        "lib_1000": _popen([sys.executable, "-c", LIBRARY_WRITER, str(db), str(files[3]), "1000"]),
    }
    threads = [threading.Thread(target=cli_many), threading.Thread(target=cli_history)]
    for t in threads:
        t.start()
    outs = {name: p.communicate(timeout=600) for name, p in procs.items()}
    threads[0].join(timeout=600)
    elapsed = time.perf_counter() - t0
    stop.touch()
    threads[1].join(timeout=120)
    reader_out, reader_err = reader.communicate(timeout=120)

    for name, p in procs.items():
        out, err = outs[name]
        assert p.returncode == 0, (name, err)
        assert "locked" not in err and "Traceback" not in err, (name, err)
    assert "added 5000, duplicates skipped 0" in outs["cli_one"][0]
    assert [json.loads(outs[n][0])["added"] for n in ("lib_100", "lib_1000")] == [5000, 5000]
    for code, out, err in results["cli_many"]:
        assert code == 0 and "added 500, duplicates skipped 0" in out, err
        assert "locked" not in err
    with Ledger(db) as led:
        report = led.verify()
    assert report.events == len(expected)
    ids = event_ids(db)
    assert set(ids) == expected and len(ids) == len(set(ids))

    assert reader.returncode == 0, reader_err
    r = json.loads(reader_out)
    assert r["errors"] == [], r["errors"]
    # the reader kept answering while the writers ran: it saw the log at several sizes
    between = [n for n in r["counts"] if len(base) < n < len(expected)]
    assert r["rounds"] >= 3 and len(between) >= 2, r
    assert results["cli_history"]["errors"] == []
    assert results["cli_history"]["rounds"] >= 2
    lib_waits = [json.loads(outs[n][0])["max_batch_s"] for n in ("lib_100", "lib_1000")]
    assert max(lib_waits) < BUSY_TIMEOUT_S
    FIGURES["concurrency"] = {
        "writers": 4,
        "events_appended": report.events - len(base),
        "elapsed_s": round(elapsed, 1),
        "longest_library_batch_s": round(max(lib_waits), 2),
        "busy_timeout_s": BUSY_TIMEOUT_S,
        "reader_rounds": r["rounds"],
        "reader_sizes_seen": len(between),
        "reader_slowest_round_s": round(r["slowest_round_s"], 2),
        "cli_history_rounds": results["cli_history"]["rounds"],
        "locked_errors": 0,
    }


def test_verify_reads_one_snapshot_while_another_process_appends(tmp_path: Path) -> None:
    """A batch committed while ``verify`` runs is not mistaken for a cut tail.

    Found by the suite above: the reader's ``verify`` read the rows, a writer
    committed, then ``verify`` read the newer recorded head and reported rows
    "cut off the tail". The commit is placed exactly in that gap here.
    """
    db = tmp_path / "snap.db"
    with Ledger.create(db) as led:
        led.append(batch(*chain()))
    reader = Ledger(db)
    original = reader.store.recorded_head
    committed = []

    def head_after_a_commit() -> tuple[int, str]:
        if not committed:
            with Ledger(db) as writer:  # another connection, as another process would be
                committed.append(writer.append(batch(*season("GAP", 7))).added)
        return original()

    reader.store.recorded_head = head_after_a_commit  # type: ignore[method-assign]
    try:
        assert reader.verify().events == 7
    finally:
        reader.close()
    assert committed == [7]
    with Ledger(db) as led:
        assert led.verify().events == 14
