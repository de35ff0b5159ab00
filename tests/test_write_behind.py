"""PostgreSQL writes a large batch's rows behind it, in a thread: the same tables, the same errors.

A batch queues its large writes to a thread (``_Behind`` in
:mod:`lottrace.storage.postgres`) and goes on checking events; every other use
of the connection waits for them. These tests make every write go behind, in
many small flushes, and hold the result to SQLite's; a write that fails
behind is raised, and nothing is written; no thread outlives its batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import lottrace.ledger as ledger_module
import lottrace.storage.postgres as pg
from lottrace.errors import LedgerError
from lottrace.events import event_id, parse_event
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger
from lottrace.readers import iter_events

from factories import batch, correction, harvest


def _writers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "lottrace-writes"]


@pytest.fixture
def everything_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every write of a batch goes behind, every upsert through the staging table, and a
    batch flushes every 40 events: many writes queued between the batch's reads."""
    monkeypatch.setattr(pg, "_BEHIND_FROM", 1)
    monkeypatch.setattr(pg, "_STAGE_FROM", 1)
    monkeypatch.setattr(ledger_module, "_CHUNK", 40)
    yield
    assert _writers() == []  # none outlives its batch


@pytest.mark.usefixtures("everything_behind")
def test_writes_behind_give_sqlites_tables(tmp_path: Path, pg_uri: str) -> None:
    """An empty ledger, then a ledger holding half the season (its ids and lot states read
    between queued writes), then a correction (a void: rows deleted, lots refolded)."""
    season = tmp_path / "s.jsonl"
    write_jsonl(season, 30, seed=11)
    events = list(iter_events(season))
    half = len(events) // 2
    target = event_id(events[half + 5][1])
    fix = ("fix:1", parse_event(correction(target, day=400), where="fix:1"))
    with Ledger.create(tmp_path / "a.db") as a, Ledger.create(pg_uri) as b:
        for led in (a, b):
            led.append(events[:half])
            report = led.append([*events, fix])  # the first half again: duplicates
            assert (report.added, report.duplicates) == (len(events) - half + 1, half)
            assert led.stats()["voided"] == 1
        assert a.derived_snapshot() == b.derived_snapshot()
        assert [e.event_id for e in a.iter_events()] == [e.event_id for e in b.iter_events()]
        b.verify()


def _failing_write(monkeypatch: pytest.MonkeyPatch, last_seq: int | None) -> list[str]:
    """Make a write fail behind, as a full disk would: the second of the batch, or the one
    holding event ``last_seq`` (the batch's last: only the commit, or a dry run's end,
    waits for it). The threads the writes ran in."""
    real = pg.PostgresStorage._write
    calls: list[str] = []

    def write(self: pg.PostgresStorage, rows: Any) -> None:
        calls.append(threading.current_thread().name)
        last = rows.events and rows.events[-1][0] == last_seq
        if last or (last_seq is None and len(calls) == 2):
            raise psycopg.errors.DiskFull("could not extend file: No space left on device")
        real(self, rows)

    monkeypatch.setattr(pg.PostgresStorage, "_write", write)
    return calls


@pytest.mark.usefixtures("everything_behind")
@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("which", ["second", "last"])
@pytest.mark.parametrize("held", [0, 10])
def test_a_write_failing_behind_is_raised_and_nothing_is_written(
    pg_uri: str, monkeypatch: pytest.MonkeyPatch, dry_run: bool, which: str, held: int
) -> None:
    """Into an empty ledger nothing is read mid-batch (the error waits for the end); into
    one holding events, lots are read between writes (the error comes there)."""
    events = batch(*(harvest(f"L{i:03d}", day=1 + i % 20) for i in range(200)))
    with Ledger.create(pg_uri) as led:
        led.append(events[:held])
        before = led.head()
        calls = _failing_write(monkeypatch, 200 if which == "last" else None)
        with pytest.raises(LedgerError, match="No space left on device") as caught:
            led.append(events, dry_run=dry_run)
        assert "postgresql" in str(caught.value) and "Traceback" not in str(caught.value)
        assert set(calls) == {"lottrace-writes"}  # the writes did run behind
        assert led.head() == before
        assert led.stats()["events"] == held
        monkeypatch.undo()
        led.append(events)  # the ledger takes the batch afterwards
        assert led.stats()["events"] == 200
        led.verify()


@pytest.mark.usefixtures("everything_behind")
def test_an_interrupted_batch_stops_its_writes(pg_uri: str) -> None:
    """Ctrl-C mid-batch: the writes queued behind are dropped, the batch rolled back."""
    events = batch(*(harvest(f"L{i:04d}", day=1 + i % 20) for i in range(3000)))

    def interrupt(n: int) -> None:
        if _writers():  # writes are running behind: stop now
            raise KeyboardInterrupt

    with Ledger.create(pg_uri) as led:
        with pytest.raises(KeyboardInterrupt):
            led.append(events, progress=interrupt)
        assert _writers() == []
        assert led.stats()["events"] == 0
        led.append(events[:5])
        led.verify()
