"""Fixtures shared by the reliability suites, and the figures they report.

Every suite records what it actually did in ``_helpers.FIGURES``; pytest
prints them at the end of the run, and writes them as JSON to
``$LOTTRACE_RELIABILITY_FIGURES`` when that is set, so the numbers in
``docs/reliability.md`` can be checked against a real run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lottrace.ledger import Ledger

from ._helpers import FIGURES, copy_ledger, event_ids, run_cli
from ._season import season, write_jsonl
from factories import batch, chain

#: Events in the big import file (the issue asks for at least 50,000).
BIG_EVENTS = 50_000


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.write_sep("-", "lottrace reliability figures")
    for key, value in FIGURES.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value, sort_keys=True)}")
    out = os.environ.get("LOTTRACE_RELIABILITY_FIGURES")
    if out:
        Path(out).write_text(json.dumps(FIGURES, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class BigImport:
    """The 50,000-event file, a small ledger before it, and the ledger after it."""

    file: Path
    ids: list[str]
    before: Path
    before_ids: list[str]
    after: Path
    seconds: float


@pytest.fixture(scope="session")
def big_import(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigImport]:
    """Built once per session: the file, and one uninterrupted import timed as the reference."""
    d = tmp_path_factory.mktemp("big")
    file = d / "season.jsonl"
    ids = write_jsonl(file, season("BIG", BIG_EVENTS))
    before = d / "before.db"
    with Ledger.create(before) as led:
        led.append(batch(*chain()))
    before_ids = event_ids(before)
    after = copy_ledger(before, d / "after.db")
    t0 = time.perf_counter()
    r = run_cli(after, "import", str(file))
    seconds = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert f"added {len(ids)}," in r.stdout
    FIGURES["big_import"] = {"events": len(ids), "uninterrupted_seconds": round(seconds, 1)}
    yield BigImport(file, ids, before, before_ids, after, seconds)
