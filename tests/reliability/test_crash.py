"""Crash safety: ``lottrace import``, ``log`` and ``rebuild`` killed with SIGKILL.

Each suite starts the real command in a subprocess (this venv's Python) and
kills it at a moment drawn from a seeded generator: uniformly over the time an
uninterrupted run took, or, for a few kills, the moment the test sees the
batch commit. After every kill:

- the ledger opens (lottrace itself opens it first, recovering the WAL);
- ``verify`` passes;
- the event count is the count before the batch or after it, never between;
- running the same command again completes, with exactly the expected events
  and no duplicates (for ``rebuild``: derived tables equal to a clean rebuild).

Each kill is classified by what it hit: ``before_writing`` (the process had
not yet written a page of the batch: the WAL was empty), ``mid_batch`` (pages
of the uncommitted batch were already in the WAL) or ``after_commit`` (the
count had moved: the batch was durable when the process died).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lottrace.ledger import Ledger

from ._helpers import (
    FIGURES,
    cli_env,
    copy_ledger,
    derived_digest,
    event_ids,
    lottrace_cmd,
    run_cli,
)
from .conftest import BigImport

pytestmark = pytest.mark.slow

SEED = 6_2025
IMPORT_KILLS = 12
LOG_KILLS = 12
REBUILD_KILLS = 6
ON_COMMIT_KILLS = 1  # of the import and log kills, this many wait for the commit
#: rebuild takes about this share of an import's time (the final, uninterrupted run is timed)
REBUILD_SHARE = 0.6


def _count(db: Path) -> int:
    con = sqlite3.connect(db, timeout=60)
    try:
        return int(con.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        con.close()


def _head_seq(db: Path) -> int:
    con = sqlite3.connect(db, timeout=60)
    try:
        return int(con.execute("SELECT coalesce(MAX(seq), 0) FROM events").fetchone()[0])
    finally:
        con.close()


def _wal_bytes(db: Path) -> int:
    wal = Path(str(db) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def kill_during(
    cmd: list[str],
    db: Path,
    *,
    delay: float | None,
    on_commit_from: int | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """Run ``cmd``; SIGKILL it after ``delay`` s, or as soon as the event count leaves
    ``on_commit_from``. Return what the kill hit, or None if the process finished first."""
    start = time.perf_counter()
    p = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or cli_env(), text=True
    )
    try:
        if on_commit_from is None:
            assert delay is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=delay)
        else:
            while p.poll() is None and _head_seq(db) == on_commit_from:
                time.sleep(0.01)
        wal = _wal_bytes(db)
        at = time.perf_counter() - start
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:  # the test itself failed: leave nothing running
            p.kill()
            p.wait()
        try:  # an orphaned reader process would hold stderr open: fail, don't hang
            _, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "a process of the killed command still holds its stderr open"
            ) from None
    if p.returncode != -signal.SIGKILL:
        assert p.returncode == 0, err
        return None
    return {"at_s": round(at, 2), "wal_bytes": wal}


def _classify(kill: dict[str, Any], count: int, before: int, after: int) -> str:
    assert count in (before, after), f"{count} events: neither {before} nor {after}"
    if count == after and after != before:
        return "after_commit"
    return "mid_batch" if kill["wal_bytes"] > 0 else "before_writing"


def _check_opens_and_verifies(db: Path) -> int:
    with Ledger(db) as led:  # lottrace opens the crashed file first
        return led.verify().events


def test_import_killed_at_random_moments(big_import: BigImport, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    before_n = len(big_import.before_ids)
    expected = big_import.before_ids + big_import.ids
    reference = derived_digest(big_import.after)
    db = copy_ledger(big_import.before, tmp_path / "crash.db")
    cmd = lottrace_cmd(db, "import", str(big_import.file))
    outcomes: Counter[str] = Counter()
    kills: list[dict[str, Any]] = []
    on_commit_slots = set(rng.sample(range(IMPORT_KILLS), ON_COMMIT_KILLS))
    attempts = 0
    # Kill until at least half the kills landed mid-batch: how many land before
    # the first write depends on the machine's speed and load (3 or 4 of 12 here).
    while len(kills) < IMPORT_KILLS or outcomes["mid_batch"] < IMPORT_KILLS // 2:
        attempts += 1
        assert attempts < 4 * IMPORT_KILLS, f"too few kills landed mid-batch: {outcomes}"
        wait_commit = len(kills) in on_commit_slots
        kill = kill_during(
            cmd,
            db,
            delay=None if wait_commit else rng.uniform(0.05, 1.0) * big_import.seconds,
            on_commit_from=before_n if wait_commit else None,
        )
        n = _check_opens_and_verifies(db)
        if kill is None:  # finished before the kill: start again from the small ledger
            assert event_ids(db) == expected
            copy_ledger(big_import.before, db)
            continue
        kill["hit"] = _classify(kill, n, before_n, len(expected))
        kill["on_commit"] = wait_commit
        kills.append(kill)
        outcomes[kill["hit"]] += 1
        if n == before_n:
            assert event_ids(db) == big_import.before_ids
            continue  # the next attempt is the re-run
        # landed after the commit: the re-run finds everything already there
        r = run_cli(db, "import", str(big_import.file))
        assert r.returncode == 0, r.stderr
        assert f"added 0, duplicates skipped {len(big_import.ids)}," in r.stdout
        assert event_ids(db) == expected
        copy_ledger(big_import.before, db)  # give the next kill a batch to interrupt
    # the last interrupted batch, re-run to the end
    r = run_cli(db, "import", str(big_import.file))
    assert r.returncode == 0, r.stderr
    assert f"added {len(big_import.ids)}, duplicates skipped 0," in r.stdout
    ids = event_ids(db)
    assert ids == expected and len(set(ids)) == len(ids)
    assert _check_opens_and_verifies(db) == len(expected)
    assert derived_digest(db) == reference
    FIGURES["crash_import"] = {
        "kills": len(kills),
        "outcomes": dict(outcomes),
        "finished_before_kill": attempts - len(kills),
        "kill_times_s": [k["at_s"] for k in kills],
        "events_in_file": len(big_import.ids),
    }
    assert outcomes["mid_batch"] >= IMPORT_KILLS // 2, outcomes
    assert outcomes["after_commit"] >= 1, outcomes


def _processes_naming(path: Path) -> list[int]:
    """Pids of live processes whose command line names ``path`` (the import and its reader)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().split(") ", 1)[1][:1]
            except (OSError, IndexError):
                continue
            if str(path).encode() in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


def test_import_killed_with_the_default_page_cache(big_import: BigImport, tmp_path: Path) -> None:
    """The other kills use SQLite's 2 MB cache; lottrace's own keeps a batch in memory
    until the commit, so a kill then either loses the whole batch or none of it."""
    rng = random.Random(SEED + 1)
    before_n, after_n = len(big_import.before_ids), len(big_import.before_ids) + len(big_import.ids)
    db = copy_ledger(big_import.before, tmp_path / "crash.db")
    cmd = lottrace_cmd(db, "import", str(big_import.file))
    env = {k: v for k, v in cli_env().items() if k != "LOTTRACE_CACHE_MB"}
    seen = Counter()
    for i in range(4):
        commit = i == 0
        kill = kill_during(
            cmd,
            db,
            delay=None if commit else rng.uniform(0.1, 1.0) * big_import.seconds,
            on_commit_from=before_n if commit else None,
            env=env,
        )
        deadline = time.monotonic() + 10
        while _processes_naming(db) and time.monotonic() < deadline:
            time.sleep(0.05)  # the reader process exits at its next send
        assert not _processes_naming(db), "a process of the killed import is still running"
        n = _check_opens_and_verifies(db)
        assert n in (before_n, after_n)
        seen["after" if n == after_n else "before"] += 1
        if kill is None or n == after_n:
            copy_ledger(big_import.before, db)
    r = run_cli(db, "import", str(big_import.file))
    assert r.returncode == 0, r.stderr
    assert _check_opens_and_verifies(db) == after_n
    assert derived_digest(db) == derived_digest(big_import.after)
    FIGURES["crash_import_default_cache"] = dict(seen)


def test_log_killed_at_random_moments(big_import: BigImport, tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    db = copy_ledger(big_import.before, tmp_path / "log.db")

    def log_cmd(i: int) -> list[str]:
        return lottrace_cmd(
            db, "log", "harvest", "--lot", f"CRASH-{i}", "--site", "farm:CRASH",
            "--producer", "PRD-C", "--plot", f"PLOT-{i}", "--kg", "120",
            "--time", f"2025-05-{1 + i % 28:02d}T08:00:00-05:00",
        )  # fmt: skip

    t0 = time.perf_counter()
    r = subprocess.run(log_cmd(999), capture_output=True, text=True, env=cli_env(), check=False)
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    outcomes: Counter[str] = Counter()
    kills: list[dict[str, Any]] = []
    on_commit_slots = set(rng.sample(range(LOG_KILLS), ON_COMMIT_KILLS))
    i = 0
    while len(kills) < LOG_KILLS:
        i += 1
        assert i < 4 * LOG_KILLS, "log kept finishing before the kill"
        before = _count(db)
        wait_commit = len(kills) in on_commit_slots
        kill = kill_during(
            log_cmd(i),
            db,
            delay=None if wait_commit else rng.uniform(0.05, 1.0) * seconds,
            on_commit_from=before if wait_commit else None,
        )
        n = _check_opens_and_verifies(db)
        assert n in (before, before + 1)
        if kill is not None:
            kill["hit"] = _classify(kill, n, before, before + 1)
            kills.append(kill)
            outcomes[kill["hit"]] += 1
        r = subprocess.run(log_cmd(i), capture_output=True, text=True, env=cli_env(), check=False)
        assert r.returncode == 0, r.stderr
        landed = n == before + 1
        assert ("already in the ledger" in r.stdout) == landed, r.stdout
        con = sqlite3.connect(db)
        assert con.execute(
            "SELECT COUNT(*) FROM events WHERE lot=?", [f"CRASH-{i}"]
        ).fetchone() == (1,)
        con.close()
        assert _count(db) == before + 1
    ids = event_ids(db)
    assert len(set(ids)) == len(ids) == len(big_import.before_ids) + 1 + i
    FIGURES["crash_log"] = {
        "kills": len(kills),
        "outcomes": dict(outcomes),
        "finished_before_kill": i - len(kills),
        "uninterrupted_seconds": round(seconds, 2),
    }
    assert outcomes["after_commit"] >= 1, outcomes


def test_rebuild_killed_at_random_moments(big_import: BigImport, tmp_path: Path) -> None:
    rng = random.Random(SEED + 2)
    db = copy_ledger(big_import.after, tmp_path / "rebuild.db")
    maintained = derived_digest(db)
    content = event_ids(db)
    estimate = REBUILD_SHARE * big_import.seconds
    outcomes: Counter[str] = Counter()
    kills: list[dict[str, Any]] = []
    attempts = 0
    while len(kills) < REBUILD_KILLS or outcomes["mid_batch"] < REBUILD_KILLS // 2:
        attempts += 1
        assert attempts < 4 * REBUILD_KILLS, f"too few kills landed mid-batch: {outcomes}"
        kill = kill_during(lottrace_cmd(db, "rebuild"), db, delay=rng.uniform(0.05, 1.0) * estimate)
        n = _check_opens_and_verifies(db)
        assert n == len(content)
        assert event_ids(db) == content
        assert derived_digest(db) == maintained  # old tables, or the complete new ones
        if kill is not None:
            kill["hit"] = "mid_batch" if kill["wal_bytes"] > 0 else "before_writing"
            kills.append(kill)
            outcomes[kill["hit"]] += 1
    t0 = time.perf_counter()
    r = run_cli(db, "rebuild")
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert derived_digest(db) == maintained  # a clean rebuild equals the maintained tables
    FIGURES["crash_rebuild"] = {
        "kills": len(kills),
        "outcomes": dict(outcomes),
        "finished_before_kill": attempts - len(kills),
        "uninterrupted_seconds": round(seconds, 1),
        "events": len(content),
    }
    assert outcomes["mid_batch"] >= REBUILD_KILLS // 2, outcomes
