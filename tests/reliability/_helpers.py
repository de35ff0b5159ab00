"""Helpers shared by the reliability suites: running the CLI, reading a ledger's content.

:data:`FIGURES` collects what each suite actually did (kills, events, cases,
inputs); ``conftest.py`` prints it at the end of the run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from lottrace.cli import cli

FIGURES: dict[str, Any] = {}


def cli_env() -> dict[str, str]:
    """The environment for a ``lottrace`` subprocess: no debug tracebacks, no stray ledger."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTTRACE_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # SQLite's own default page cache (2 MB), not lottrace's 256 MB: a batch then
    # spills into the WAL while it runs, which is where the crash tests aim their kills.
    env["LOTTRACE_CACHE_MB"] = "2"
    return env


def lottrace_cmd(db: Path, *args: str) -> list[str]:
    """The argv that runs this venv's lottrace on ``db``."""
    return [sys.executable, "-m", "lottrace", "--db", str(db), *args]


def run_cli(db: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``lottrace`` in a real subprocess, as a user would."""
    return subprocess.run(
        lottrace_cmd(db, *args),
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )


def invoke(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``lottrace`` in this process (click's runner), for the many quick cases."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LOTTRACE_")}
    r = CliRunner().invoke(cli, ["--db", str(db), *args], env=env, catch_exceptions=True)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception  # a real traceback would reach the user: fail loudly
    return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)


@dataclass(frozen=True)
class LedgerState:
    """What must not change: the number of events, the head, and every row's hash."""

    events: int
    head: str
    rows_digest: str


def state(db: Path) -> LedgerState:
    """Read the ledger's content through a plain SQLite connection (no lottrace code)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        n, head = 0, ""
        for seq, eid, h in con.execute("SELECT seq, event_id, hash FROM events ORDER BY seq"):
            digest.update(f"{seq} {eid} {h}\n".encode())
            n, head = seq, h
        return LedgerState(n, head, digest.hexdigest())
    finally:
        con.close()


def event_ids(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in con.execute("SELECT event_id FROM events ORDER BY seq")]
    finally:
        con.close()


def copy_ledger(src: Path, dst: Path) -> Path:
    """Copy a closed ledger (its -wal and -shm too, if any)."""
    for suffix in ("", "-wal", "-shm"):
        s = Path(str(src) + suffix)
        d = Path(str(dst) + suffix)
        if s.exists():
            shutil.copyfile(s, d)
        elif d.exists():
            d.unlink()
    return dst


def derived_digest(db: Path) -> str:
    """A hash of every derived table's rows, in a fixed order: equal means same state."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        digest = hashlib.sha256()
        for table in ("lots", "event_lots", "links", "voided"):
            cols = len(con.execute(f"SELECT * FROM {table} LIMIT 0").description)
            order = ",".join(str(i) for i in range(1, cols + 1))
            digest.update(f"[{table}]".encode())
            for row in con.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(repr(row).encode())
        return digest.hexdigest()
    finally:
        con.close()
