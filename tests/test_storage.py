"""The storage interface, tested through itself: what every backend must do the same way.

Parametrised by backend: a second backend (PostgreSQL) joins by adding a
parameter to the ``store`` fixture, and runs the same tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.chain import genesis, link
from lottrace.cli import cli
from lottrace.errors import IntegrityViolation, LedgerError, LottraceError
from lottrace.ledger import Ledger, _fold_log, prepare
from lottrace.rules import fold, lots_of
from lottrace.storage import Rows, Storage
from lottrace.storage.sqlite import SqliteStorage

from factories import batch, chain, harvest

BACKENDS = ["sqlite"]


def _open_sqlite(tmp_path: Path) -> Storage:
    Ledger.create(tmp_path / "s.db").close()
    return SqliteStorage(tmp_path / "s.db", refold=_fold_log)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    opened = {"sqlite": _open_sqlite}[request.param](tmp_path)
    yield opened
    opened.close()


def _rows_of(where: str, ev: Any, seq: int, prev: str) -> tuple[Rows, str]:
    p = prepare(where, ev)
    h = link(prev, p.eid)
    lots = []
    for lot, role in lots_of(p.facts):
        lots.append((lot, p.facts.time, p.facts.type, seq, role, p.facts.site))
    states = [fold(None, lot, role, p.facts, p.eid) for lot, role in lots_of(p.facts)]
    event_row = (seq, p.eid, p.facts.type, p.facts.time, p.facts.subject, p.body, prev, h)
    return Rows([event_row], lots, [], [], [], states), h


def test_an_empty_store_starts_its_chain_at_its_genesis(store: Storage) -> None:
    assert store.head() == (0, genesis(store.ledger_id))
    assert store.recorded_head() == (0, genesis(store.ledger_id))
    assert list(store.log_rows()) == []


def test_a_rolled_back_write_leaves_nothing(store: Storage) -> None:
    (where, ev) = batch(harvest("H1"))[0]
    rows, _h = _rows_of(where, ev, 1, genesis(store.ledger_id))
    store.begin_write()
    store.write(rows)
    assert store.lot("H1") is not None  # seen inside the transaction
    store.rollback()
    assert not store.in_transaction
    assert store.lot("H1") is None
    assert store.head() == (0, genesis(store.ledger_id))


def test_a_committed_write_is_read_back_through_every_read(store: Storage) -> None:
    (where, ev) = batch(harvest("H1"))[0]
    rows, h = _rows_of(where, ev, 1, genesis(store.ledger_id))
    store.begin_write()
    store.write(rows)
    store.record_head(1, h)
    store.commit()
    eid = rows.events[0][1]
    assert store.head() == (1, h) == store.recorded_head()
    assert store.hash_at(1) == h
    assert store.stored_among([eid, "0" * 64]) == {eid}
    assert store.event_row(eid) is not None
    assert store.seq_of(eid) == 1
    assert store.event_ids_at([1]) == [eid]
    found = store.event(eid)
    assert found is not None and found.event.type == "harvest"
    assert [s.event_id for s in store.iter_events()] == [eid]
    assert [s.event_id for s in store.events_of_types(["harvest"])] == [eid]
    assert [s.event_id for s in store.lot_events("H1")] == [eid]
    assert store.lots_states(["H1", "nope"]).keys() == {"H1"}
    assert store.counts()["by_type"] == {"harvest": 1}
    parts = store.check_chain(genesis(store.ledger_id), None, 1)
    assert sum(p.rows for p in parts) == 1 and all(p.failure is None for p in parts)


def test_the_log_refuses_a_row_twice(store: Storage) -> None:
    (where, ev) = batch(harvest("H1"))[0]
    rows, _h = _rows_of(where, ev, 1, genesis(store.ledger_id))
    store.begin_write()
    store.write(rows)
    with pytest.raises(IntegrityViolation):
        store.write(Rows(rows.events, [], [], [], [], []))
    store.rollback()
    assert store.head()[0] == 0


def test_a_second_writer_waits_then_is_refused_with_the_ledger_named(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    Ledger.create(db).close()
    first = SqliteStorage(db, refold=_fold_log)
    second = SqliteStorage(db, refold=_fold_log, busy_timeout_s=0.05)
    try:
        first.begin_write()
        with pytest.raises(LedgerError, match=r"w\.db stayed locked by another writer"):
            second.begin_write()
    finally:
        first.rollback()
        first.close()
        second.close()


# --------------------------------------------------------------------------- driver errors


def _damage(db: Path) -> None:
    """Overwrite the pages after the first two with garbage (the tables' pages)."""
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.seek(8192)
        f.write(os.urandom(size - 8192))


def test_a_damaged_file_is_a_ledger_error_naming_it_never_a_driver_error(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    with Ledger.create(db) as ledger:
        ledger.append(batch(*chain() * 1))
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage(db)
    try:
        with Ledger.reader(db) as ledger:
            ledger.stats()
            list(ledger.iter_events())
    except LottraceError as exc:
        assert "d.db" in str(exc)
        assert type(exc).__module__ == "lottrace.errors"
    else:  # pragma: no cover - the damage always reaches a page that is read
        pytest.fail("a damaged ledger was read without an error")
    r = CliRunner().invoke(cli, ["--db", str(db), "history", "H1"])
    assert r.exit_code == 1, r.output
    assert r.output.startswith("Error: ") and "d.db" in r.output
    assert "internal error" not in r.output and "Traceback" not in r.output


def test_every_public_method_of_the_sqlite_backend_maps_driver_errors() -> None:
    import inspect

    for name, fn in vars(SqliteStorage).items():
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        if name in ("scratch_derived", "read_snapshot"):  # map their own errors
            continue
        assert hasattr(fn, "__wrapped__"), f"SqliteStorage.{name} is not behind the error boundary"


def test_a_driver_error_in_a_read_and_in_a_streamed_read_is_mapped(store: Storage) -> None:
    rows = store.iter_events()  # a generator: mapped while iterated
    store.close()  # every next statement fails in the driver
    with pytest.raises(LedgerError, match=r"ledger .*s\.db"):
        store.lot("H1")
    with pytest.raises(LedgerError, match=r"ledger .*s\.db"):
        list(rows)
    with pytest.raises(LedgerError, match=r"ledger .*s\.db"):
        store.leg_scan()


def test_registries_are_read_through_an_index_not_a_scan_of_the_log(tmp_path: Path) -> None:
    """Plots, certificates, payments, exports ... are found by type without reading the log."""
    db = tmp_path / "i.db"
    with Ledger.create(db) as ledger:
        ledger.append(batch(*chain()))

        def plan(types: list[str]) -> str:
            captured: list[str] = []
            ledger.conn.set_trace_callback(captured.append)
            list(ledger.events_of_types(types))
            ledger.conn.set_trace_callback(None)
            sql = next(q for q in captured if "FROM events e WHERE type IN" in q)
            return " ".join(str(r) for r in ledger.conn.execute("EXPLAIN QUERY PLAN " + sql))

        for rare in (["certificate"], ["export"], ["plot", "dds", "master_data"]):
            assert "events_by_rare_type" in plan(rare), rare
        assert "SCAN" in plan(["harvest"])  # the many: a scan, as the index leaves them out
        assert [s.event.type for s in ledger.events_of_types(["export"])] == ["export"]
