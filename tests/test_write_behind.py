"""PostgreSQL writes a large batch's rows behind it, in a thread: the same tables, the same errors.

A batch queues its large writes to a thread (``_Behind`` in
:mod:`lottrace.storage.postgres`) and goes on checking events; every other use
of the connection waits for them. These tests make every write go behind, in
many small flushes, and hold the result to SQLite's; a write that fails
behind is raised, and nothing is written; no thread outlives its batch.
"""

from __future__ import annotations

import signal
import threading
import time
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


@pytest.mark.usefixtures("everything_behind")
def test_ctrl_c_while_the_batch_waits_for_its_writes_commits_nothing(
    tmp_path: Path, pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C lands while the batch waits for the writes behind it (found by review: the
    rollback then ran under a live writer, whose next statements committed one by one)."""
    season = tmp_path / "s.jsonl"
    write_jsonl(season, 30, seed=11)
    events = list(iter_events(season))
    real_deltas = pg.leg_day_deltas

    def slow_deltas(*args: Any) -> Any:  # Python work of the writer between two statements
        time.sleep(0.3)
        return real_deltas(*args)

    monkeypatch.setattr(pg, "leg_day_deltas", slow_deltas)
    real_settle = pg.PostgresStorage._settle
    armed: list[threading.Timer] = []

    def settle(self: pg.PostgresStorage, *, cancel: bool = False) -> None:
        if self._behind is not None and not cancel and not armed:  # the user presses Ctrl-C
            main = threading.main_thread().ident
            armed.append(threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT)))
            armed[0].start()
        real_settle(self, cancel=cancel)

    monkeypatch.setattr(pg.PostgresStorage, "_settle", settle)
    with Ledger.create(pg_uri) as led, pytest.raises(KeyboardInterrupt):
        led.append(events)
    for t in threading.enumerate():  # the rollback waited for the writer: it is ending
        if t.name == "lottrace-writes":
            t.join(10)
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        found = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()
            for t in ("events", "event_lots", "links", "lots", "legs", "leg_days")
        }
    assert armed and found == dict.fromkeys(found, (0,))
    assert _writers() == []
    monkeypatch.undo()
    with Ledger(pg_uri) as led:
        led.append(events[:50])  # the ledger goes on
        led.verify()


@pytest.mark.usefixtures("everything_behind")
def test_a_rebuild_with_writes_behind_gives_the_same_tables(tmp_path: Path, pg_uri: str) -> None:
    """A rebuild's writes go behind too: its commit must wait for them (found by review)."""
    season = tmp_path / "s.jsonl"
    write_jsonl(season, 30, seed=11)
    with Ledger.create(pg_uri) as led:
        led.append(iter_events(season))
        before = led.derived_snapshot()
        led.rebuild()
        assert led.derived_snapshot() == before
        led.verify()


@pytest.mark.usefixtures("everything_behind")
@pytest.mark.parametrize("held", [0, 10])
def test_a_write_the_server_refuses_is_named_not_what_followed(
    pg_uri: str, monkeypatch: pytest.MonkeyPatch, held: int
) -> None:
    """The server aborts the transaction: the writes queued after it are skipped, so the
    error raised is the first one, not "current transaction is aborted" (found by review)."""
    events = batch(*(harvest(f"L{i:03d}", day=1 + i % 20) for i in range(200)))
    real = pg.PostgresStorage._write
    calls: list[int] = []

    def write(self: pg.PostgresStorage, rows: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            self.conn.execute("SELECT 1/0")
        real(self, rows)

    with Ledger.create(pg_uri) as led:
        led.append(events[:held])
        calls.clear()
        monkeypatch.setattr(pg.PostgresStorage, "_write", write)
        with pytest.raises(LedgerError, match="division by zero"):
            led.append(events)
        monkeypatch.undo()
        assert led.stats()["events"] == held


def test_a_batch_never_begins_inside_a_transaction_left_open(pg_uri: str) -> None:
    """A transaction an interrupted rollback left open is rolled back, not gone on inside."""
    with Ledger.create(pg_uri) as led:
        led.conn.execute("BEGIN")
        led.conn.execute("INSERT INTO meta VALUES ('left', 'over')")
        led.append(batch(harvest("L1")))
        assert led.meta("left") is None
        assert led.stats()["events"] == 1
        led.verify()
