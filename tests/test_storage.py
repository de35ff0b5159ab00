"""The storage interface, tested through itself: what every backend must do the same way.

Parametrised by backend (``conftest.BACKENDS``): SQLite, and PostgreSQL in a
fresh schema of the ``LOTTRACE_TEST_PG`` database.
"""

from __future__ import annotations

import os
import re
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
from lottrace.storage import Rows, Storage, open_storage
from lottrace.storage.sqlite import SqliteStorage

from factories import batch, chain, harvest


@pytest.fixture
def store(ledger_target: str) -> Iterator[Storage]:
    """An empty ledger's storage, on each backend (``ledger_target`` is parametrised)."""
    Ledger.create(ledger_target).close()
    opened = open_storage(ledger_target, refold=_fold_log, busy_timeout_s=60)
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
    named = rf"ledger {re.escape(str(store.path))}"
    with pytest.raises(LedgerError, match=named):
        store.lot("H1")
    with pytest.raises(LedgerError, match=named):
        list(rows)
    with pytest.raises(LedgerError, match=named):
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


def test_scratch_tables_take_the_derived_tables_place_for_the_block(store: Storage) -> None:
    """Inside ``scratch_derived`` every read and write of a derived table goes to the scratch
    copy (on PostgreSQL, TEMP tables that shadow the schema's), and the comparison sees both."""
    (where, ev) = batch(harvest("H1"))[0]
    rows, h = _rows_of(where, ev, 1, genesis(store.ledger_id))
    store.begin_write()
    store.write(rows)
    store.record_head(1, h)
    store.commit()
    with store.read_snapshot(), store.scratch_derived():
        assert store.lot("H1") is None  # the scratch copy is empty
        assert list(store.leg_scan()) == []
        with pytest.raises(IntegrityViolation, match="derived table lots: row lot=H1 is not what"):
            store.compare_derived()
        _fold_log(store)  # into the scratch copies
        assert store.lot("H1") is not None
        store.compare_derived()
    assert store.lot("H1") is not None
    assert len(list(store.leg_scan())) == 1


# --------------------------------------------------------------------------- PostgreSQL


def test_the_postgres_backend_maps_every_public_method() -> None:
    import inspect

    from lottrace.storage.postgres import PostgresStorage

    for name, fn in vars(PostgresStorage).items():
        if name.startswith("_") or not inspect.isfunction(fn):
            continue
        if name in ("scratch_derived", "read_snapshot"):  # map their own errors
            continue
        assert hasattr(fn, "__wrapped__"), f"PostgresStorage.{name} is not behind the boundary"


def test_a_postgres_ledger_is_named_without_its_password() -> None:
    uri = "postgresql://ana:s3cretpw@127.0.0.1:1/lots?connect_timeout=2&password=other"
    with pytest.raises(LedgerError) as info:
        Ledger(uri)
    text = str(info.value)
    assert text.startswith("cannot open postgresql://ana@127.0.0.1:1/lots?connect_timeout=2:")
    assert "s3cretpw" not in text and "other" not in text
    r = CliRunner().invoke(cli, ["--db", uri, "stats"])
    assert r.exit_code == 1 and r.output.startswith("Error: cannot open postgresql://ana@")
    assert "s3cretpw" not in r.output and "Traceback" not in r.output


def test_a_second_postgres_writer_waits_for_the_lock_then_is_refused(pg_uri: str) -> None:
    from lottrace.storage.postgres import PostgresStorage

    Ledger.create(pg_uri).close()
    first = PostgresStorage(pg_uri, refold=_fold_log)
    second = PostgresStorage(pg_uri, refold=_fold_log, busy_timeout_s=0.2)
    reader = PostgresStorage(pg_uri, refold=_fold_log, read_only=True)
    try:
        first.begin_write()
        (where, ev) = batch(harvest("H1"))[0]
        rows, h = _rows_of(where, ev, 1, genesis(first.ledger_id))
        first.write(rows)
        assert reader.head()[0] == 0  # a reader does not wait, and sees the last commit
        with pytest.raises(LedgerError, match="stayed locked by another writer for more than"):
            second.begin_write()
        assert not second.in_transaction
        first.record_head(1, h)
        first.commit()
        second.begin_write()  # the lock went with the commit
        assert second.head() == (1, h)  # read under the lock: the head the first one wrote
        second.rollback()
        with pytest.raises(LedgerError, match="open read-only"):
            reader.begin_write()
    finally:
        for s in (first, second, reader):
            s.rollback()
            s.close()


def test_a_postgres_schema_with_other_tables_is_left_alone(pg_uri: str) -> None:
    import psycopg

    with pytest.raises(LedgerError, match="is empty\\): run 'lottrace init'"):
        Ledger(pg_uri)
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    for opener in (Ledger, Ledger.create):
        with pytest.raises(LedgerError, match="holds tables, but not a lottrace ledger"):
            opener(pg_uri)


def test_postgres_streams_leave_no_cursor_open(pg_uri: str) -> None:
    """Whole-ledger reads stream through server-side cursors, closed when done or dropped."""
    with Ledger.create(pg_uri) as led:
        led.append(batch(*chain()))
    with Ledger.reader(pg_uri) as led:
        rows = led.leg_scan()
        next(rows)
        assert led.conn.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 1
        assert led.stats()["events"] == 7  # the connection is free between fetches
        rows.close()  # type: ignore[attr-defined]
        assert len(list(led.iter_events())) == 7
        assert led.conn.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0


def test_a_postgres_reader_in_a_snapshot_never_blocks_a_writer(pg_uri: str) -> None:
    """MVCC: ``verify``'s snapshot (REPEATABLE READ, scratch tables made) holds no lock a
    batch waits for, and it keeps seeing the ledger as it was when it began."""
    with Ledger.create(pg_uri) as led:
        led.append(batch(harvest("H1")))
    with (
        Ledger.reader(pg_uri) as reader,
        Ledger(pg_uri, busy_timeout_s=2) as writer,
        reader.store.read_snapshot(),
    ):
        before = reader.head()
        with reader.store.scratch_derived():
            assert writer.append(batch(harvest("H2"))).added == 1  # no wait
            assert reader.head() == before
        assert reader.head() == before
        assert reader.verify().events == 1  # the snapshot it began with
    with Ledger.reader(pg_uri) as after:
        assert after.verify().events == 2


def test_a_postgres_role_that_only_owns_its_schema_can_append_verify_and_rebuild(
    pg_uri: str,
) -> None:
    """What the migrations make is read in the session's temporary schema: no CREATE on
    the database is needed, only the schema the ledger lives in."""
    import uuid

    import psycopg

    role = f"lt_weak_{uuid.uuid4().hex[:8]}"
    schema = pg_uri.rpartition("%3D")[2]
    with psycopg.connect(pg_uri, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} NOLOGIN")
        admin.execute(f"ALTER SCHEMA {schema} OWNER TO {role}")
        admin.execute(f"GRANT {role} TO CURRENT_USER")
        try:
            weak = f"{pg_uri}%20-crole%3D{role}"
            with Ledger.create(weak) as led:
                assert led.conn.execute("SELECT current_user").fetchone()[0] == role
                assert not led.conn.execute(
                    "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
                ).fetchone()[0], "PUBLIC may create schemas in the test database (not the default)"
                led.append(batch(*chain()))
                assert led.verify().events == 7
                led.rebuild()
        finally:
            admin.execute(f"ALTER SCHEMA {schema} OWNER TO CURRENT_USER")
            admin.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
