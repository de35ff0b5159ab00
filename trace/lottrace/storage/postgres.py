"""The PostgreSQL backend: a ledger in one schema of a PostgreSQL database, and all the SQL it runs.

Selected by a ``postgresql://`` (or ``postgres://``) libpq URI where a
ledger path goes (``--db``, ``LOTTRACE_DB``, ``Ledger(...)``), e.g.
``postgresql:///lottrace?host=/var/run/postgresql``. The ledger lives in
the first schema of the connection's ``search_path`` (``public``, or the one
``options=-csearch_path%3DNAME`` names), with the tables of the SQLite
backend (:mod:`lottrace.storage.sqlite`) and their meaning: ``events`` (the
log; triggers raise on every UPDATE, DELETE and TRUNCATE), ``meta``
(``ledger_id``, ``head``), the derived ``lots``, ``event_lots``, ``links``
and ``voided``, and ``_lottrace_migrations`` (the migrations applied, see
:mod:`lottrace.storage.postgres_schema`). Every text column sorts by code
point (``COLLATE "C"``), so queries give rows in SQLite's order.

**Writers.** A batch is one ``READ COMMITTED`` transaction that first takes a
transaction-scoped advisory lock on the ledger's schema
(``pg_advisory_xact_lock``): batches from any number of processes and hosts
run one at a time, each reading the head only once it holds the lock, so no
event is chained twice or lost. The lock is released by the commit or
rollback, or by the server when a writer's connection dies. A writer waits
for it up to the busy timeout (``lock_timeout``), then is refused naming the
ledger. Readers take no lock and never wait for a writer (MVCC):
``verify`` reads one ``REPEATABLE READ`` snapshot.

**Scratch tables.** ``verify`` folds the log into TEMP tables named like the
derived tables: PostgreSQL searches the session's ``pg_temp`` schema first
for tables, so every statement of a fold writes and reads them, while the
comparison names both schemas. No statement is prepared on the server
(``prepare_threshold=None``): a prepared plan would keep pointing at the
table it was planned against.

Every :class:`psycopg.Error` that leaves this module is mapped into the
:class:`~lottrace.errors.LottraceError` tree naming the ledger by its URI
without its password (:func:`display_uri`, :func:`_mapped`): nothing above
it imports :mod:`psycopg`.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import queue
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg.pq import TransactionStatus

from ..chain import Checked, check_rows, genesis
from ..errors import IntegrityViolation, LedgerError
from ..events import EventBase, parse_event
from ..rules import LotState
from . import (
    DERIVED_TABLES,
    NeedsUpgrade,
    Pool,
    Refold,
    Rows,
    Storage,
    StoredEvent,
    display_uri,
    leg_day_deltas,
    raise_row_difference,
    window,
)
from .postgres_schema import (
    LOG_TABLES,
    MIGRATION_NAMES,
    MIGRATIONS_TABLE,
    REFOLD_AFTER,
    applied,
    apply_migrations,
    expected_schema,
    ident,
    number,
    schema_of,
    statements,
)
from .sqlite_schema import LOT_COLUMNS, schema_differences

__all__ = ["PostgresStorage"]

#: The advisory lock's first key (``lottrace`` in ASCII, truncated to 31 bits);
#: the second is a hash of the ledger's schema name.
LOCK_CLASS = 0x6C6F7474

#: The Event Hash ID and partner eventID of a foreign event, as the indexes spell them.
HASH_ID_SQL = "((body::jsonb) ->> 'hash_id')"
PARTNER_ID_SQL = "((body::jsonb) ->> 'partner_event_id')"

#: Rows fetched per round trip from a server-side cursor.
_ITERSIZE = 5000


#: From this many rows written in one batch, the tables are analyzed after its commit.
_ANALYZE_AFTER = 20_000

#: From this many rows, an upsert goes through a staging table filled by ``COPY``
#: (:meth:`PostgresStorage._upsert`); below it, one statement per row.
_STAGE_FROM = 64

#: From this many rows, a write of a batch's transaction runs behind (:class:`_Behind`).
_BEHIND_FROM = 1000

#: Writes queued behind before the batch waits for them (a flush queues two).
_BEHIND_QUEUE = 4

_LEG_DAY_KEY = "day, from_stage, to_stage, band"
_LEG_DAY_SUMS = ("n", "us", "trucked", "transit_us", "wait_us")
_LEG_DAY_COLUMNS = ", ".join([_LEG_DAY_KEY, *_LEG_DAY_SUMS])
#: A row of deltas added to the row it meets: ``leg_days`` keeps sums.
_LEG_DAY_ADD = ", ".join(f"{c} = leg_days.{c} + excluded.{c}" for c in _LEG_DAY_SUMS)
_LOT_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in LOT_COLUMNS.replace(" ", "").split(",")[1:])

_VERIFY_SQL = (
    "SELECT seq, event_id, convert_to(body, 'UTF8'), prev_hash, hash, type, time, lot "
    "FROM events ORDER BY seq"
)

_EVENT_SQL = (
    "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id = e.event_id) "
    "FROM events e "
)

_cursor_ids = itertools.count(1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _head_text(seq: int, head: str) -> str:
    return f"{seq} {head}"


#: How every connection is made: statements in autocommit unless a transaction is
#: begun, and never prepared (the scratch TEMP tables must shadow the derived ones).
_CONNECTION = {"autocommit": True, "prepare_threshold": None}


def _conninfo(uri: str) -> str:
    """``uri`` with a connect timeout: libpq waits forever for a silent server otherwise."""
    if "connect_timeout" in uri:
        return uri
    return psycopg.conninfo.make_conninfo(uri, connect_timeout=10)


def _reset(conn: psycopg.Connection[Any]) -> None:
    """A connection given back to the pool forgets its session: TEMP tables, settings, locks."""
    conn.execute("DISCARD ALL")


class PostgresPool(Pool):
    """At most ``size`` open connections to one PostgreSQL ledger (``psycopg_pool``).

    A server's requests borrow a connection for their ledger and give it back
    when done; a request finding all of them busy waits up to ``timeout_s``,
    then is refused (:class:`LedgerError`: 503 from the server). A connection
    is checked before it is lent (one the server dropped is replaced) and
    reset when given back (:func:`_reset`).
    """

    def __init__(self, uri: str, *, size: int, timeout_s: float = 30.0) -> None:
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.path = display_uri(uri)
        self.size = size
        self.timeout_s = timeout_s
        self._timeout = PoolTimeout
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            _conninfo(uri),
            min_size=1,
            max_size=size,
            kwargs=_CONNECTION,
            check=ConnectionPool.check_connection,
            reset=_reset,
            timeout=timeout_s,
            name="lottrace",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise LedgerError(
                f"cannot open {self.path}: no connection within {timeout_s:g} s"
            ) from None

    def getconn(self) -> psycopg.Connection[Any]:
        try:
            return self._pool.getconn()
        except self._timeout:
            raise LedgerError(
                f"{self.path}: all {self.size} connections stayed busy for more than "
                f"{self.timeout_s:g} s"
            ) from None

    def putconn(self, conn: psycopg.Connection[Any]) -> None:
        self._pool.putconn(conn)

    def close(self) -> None:
        self._pool.close()


class _Behind:
    """A thread that runs a batch's large writes while the batch goes on checking events.

    Without it, the process appending and the server take turns: the batch
    checks events while the server idles, then waits while the server writes
    them. Here each large write (:meth:`PostgresStorage.write`,
    :meth:`~PostgresStorage.replace_legs`) is queued, in order, to this
    thread, which holds the connection alone until the queue is empty: the
    batch waits for it (:meth:`PostgresStorage.settle`) before any other use
    of the connection, so every read sees every write before it, and the
    first error of a write is raised there. After an error the writes queued
    behind it are skipped (the transaction is lost anyway). The thread ends
    whenever the batch waits for it, and never outlives the transaction: none
    is left running when a reader process is forked, and the transaction is
    never ended while it may still run a statement (:meth:`PostgresStorage.rollback`).
    """

    def __init__(self) -> None:
        self._todo: queue.Queue[tuple[Callable[[Any], None], Any] | None] = queue.Queue(
            maxsize=_BEHIND_QUEUE
        )
        self.error: BaseException | None = None
        self.cancelled = False
        self._stopping = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lottrace-writes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (job := self._todo.get()) is not None:
                if self.error is None and not self.cancelled:
                    try:
                        job[0](job[1])
                    except BaseException as exc:  # raised in the batch's thread by finish()
                        self.error = exc
        finally:
            self._done.set()

    def submit(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Queue ``fn(arg)``; wait while the queue is full."""
        self._todo.put((fn, arg))

    def finish(self, *, cancel: bool = False) -> BaseException | None:
        """Wait for the writes queued (with ``cancel``, only the one running), let the
        thread end, and give the first write's error, if any.

        A Ctrl-C may interrupt the wait: then call it again (with ``cancel``).
        It waits on an event the thread sets as it ends, not ``Thread.join``: a
        ``KeyboardInterrupt`` inside ``join`` marks a thread still running as
        stopped (CPython 3.11), so a second ``join`` would not wait.
        """
        if cancel:
            self.cancelled = True
        if not self._stopping:
            self._todo.put(None)
            self._stopping = True
        self._done.wait()
        return self.error


class PostgresStorage(Storage):
    """A ledger in one schema of a PostgreSQL database: see the module's docstring."""

    def __init__(
        self,
        uri: str,
        *,
        refold: Refold,
        busy_timeout_s: float = 60.0,
        read_only: bool = False,
        create: bool = False,
        pool: PostgresPool | None = None,
    ):
        self.uri = uri
        #: The URI without its password: what messages name.
        self.path = display_uri(uri)
        self._refold = refold
        #: Opened with ``read_only``: lottrace writes nothing (PostgreSQL would
        #: refuse the TEMP tables ``verify`` needs in a read-only transaction, so
        #: this is lottrace's promise, not the server's).
        self.read_only = read_only
        self.busy_timeout_s = busy_timeout_s
        #: Rows the open write transaction wrote (:meth:`commit` analyzes after many).
        self._written = 0
        #: In a batch's write transaction (:meth:`begin_write`): large writes may run behind.
        self._writing = False
        #: The thread running this transaction's writes behind, once one was queued.
        self._behind: _Behind | None = None
        #: The pool the connection is borrowed from (given back on close), or None.
        self._pool = pool
        self._given_back = False
        if pool is not None:
            self.conn: psycopg.Connection[Any] = pool.getconn()
        else:
            try:
                self.conn = psycopg.connect(_conninfo(uri), **_CONNECTION)  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise LedgerError(f"cannot open {self.path}: {_first_line(exc)}") from None
        try:
            self._open(create)
        except psycopg.Error as exc:
            self.close()
            raise LedgerError(
                f"{self.path} is not a usable lottrace ledger: {_first_line(exc)}"
            ) from None
        except BaseException:
            self.close()
            raise

    def _open(self, create: bool) -> None:
        row = self.conn.execute("SELECT current_schema()").fetchone()
        if row is None or row[0] is None:
            raise LedgerError(
                f"{self.path}: no schema of the connection's search_path exists "
                "(create it, or name one with options=-csearch_path%3DNAME)"
            )
        self.schema = str(row[0])
        tables = {
            str(r[0])
            for r in self.conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                [self.schema],
            )
        }
        if "events" not in tables or "meta" not in tables:
            if tables:
                raise LedgerError(
                    f"{self.path}: schema {self.schema} holds tables, but not a lottrace "
                    "ledger; use an empty database or schema"
                )
            if not create:
                raise LedgerError(
                    f"no ledger at {self.path} (schema {self.schema} is empty): "
                    "run 'lottrace init' first, or pass --db"
                )
            if self.read_only:
                raise LedgerError(f"no ledger at {self.path}: it is opened read-only")
            self._migrate()
        else:
            self._check_migrations()
            pending = [m for m in MIGRATION_NAMES if m not in applied(self.conn, self.schema)]
            if pending and self.read_only:
                raise NeedsUpgrade(
                    f"{self.path} was written by an older lottrace (migration {pending[0]} "
                    "not yet applied) and is opened read-only: run 'lottrace init' on it "
                    "to upgrade it"
                )
            if pending:
                self._migrate()
        self.ledger_id = str(
            self.conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()[0]  # type: ignore[index]
        )

    def _check_migrations(self) -> None:
        """Refuse a ledger a newer lottrace wrote, and one whose migration records lie."""
        done = applied(self.conn, self.schema)
        newer = [n for n in done if n not in MIGRATION_NAMES]
        if newer:
            raise LedgerError(
                f"{self.path} was written by a newer lottrace (migration {newer[0]}); "
                "upgrade lottrace"
            )
        numbered = self.conn.execute(f"SELECT n, name FROM {MIGRATIONS_TABLE} ORDER BY n")
        in_order = [m for m in MIGRATION_NAMES if m in done]
        if (
            not done
            or done[0] != MIGRATION_NAMES[0]
            or done != in_order
            or any(n != number(str(name)) for n, name in numbered)
        ):
            raise IntegrityViolation(
                f"{self.path}: the migration records in {MIGRATIONS_TABLE} are not lottrace's "
                f"({', '.join(done) or 'none'}): changed behind lottrace's back; "
                "nothing was changed"
            )

    def _migrate(self) -> None:
        """Apply the pending migrations in one transaction, holding the writers' lock."""
        self._begin_locked()
        try:
            ledger_id = uuid.uuid4().hex
            before = applied(self.conn, self.schema)
            ran = apply_migrations(self.conn, self.schema, ledger_id, genesis(ledger_id))
            if before and REFOLD_AFTER & set(ran):  # what a fold computes changed
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'ledger_id'").fetchone()
                self.ledger_id = str(row[0]) if row else ledger_id
                for t in DERIVED_TABLES:
                    self.conn.execute(f"DELETE FROM {t}")
                self._refold(self)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _begin_locked(self) -> None:
        """``BEGIN``, then wait up to the busy timeout for the ledger's writer lock."""
        self.conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        ms = max(1, int(self.busy_timeout_s * 1000))
        self.conn.execute(f"SET LOCAL lock_timeout = {ms}")
        try:
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [LOCK_CLASS, self.schema]
            )
        except psycopg.errors.LockNotAvailable:
            self.conn.execute("ROLLBACK")
            raise LedgerError(
                f"{self.path} stayed locked by another writer for more than "
                f"{self.busy_timeout_s:g} s"
            ) from None

    # ------------------------------------------------------------------ life

    def close(self) -> None:
        self._settle(cancel=True)
        if self._pool is None:
            self.conn.close()
        elif not self._given_back:
            self._given_back = True
            self._pool.putconn(self.conn)

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def begin_write(self) -> None:
        """A ``READ COMMITTED`` transaction holding the ledger's advisory writer lock."""
        if self.read_only:
            raise LedgerError(f"{self.path} is open read-only: this needs to write it")
        if self.in_transaction:  # one an interrupted batch left: BEGIN would go on inside it
            self.conn.execute("ROLLBACK")
        self._begin_locked()
        self._written = 0
        self._writing = True

    def commit(self) -> None:
        self._writing = False
        self.conn.execute("COMMIT")
        if self._written >= _ANALYZE_AFTER:
            self._written = 0
            self._analyze()

    def _analyze(self) -> None:
        """Refresh the planner's statistics of the ledger's tables, after a large batch.

        Autovacuum would, within about a minute; until then a ledger just
        imported has none, and the planner scans whole tables for one lot's
        events (an ``upstream`` of 1,175 events: 280 ms without, a few ms with,
        at 100,000 events). A role that does not own the tables gets a
        warning from PostgreSQL, not an error. The batch is committed already, so
        a failure here is not the batch's: the next statement meets a lost
        connection anyway.
        """
        tables = ", ".join(f"{ident(self.schema)}.{t}" for t in ("events", *DERIVED_TABLES))
        with suppress(psycopg.Error):
            self.conn.execute(f"ANALYZE {tables}")

    def rollback(self) -> None:
        try:
            self._settle(cancel=True)
        except BaseException:
            # Interrupted again while a write runs behind: the transaction must not end
            # under it (the connection is in autocommit mode, so its next statements would
            # commit one by one). Its statement is cancelled, so it stops soon; the next
            # call (a rollback, closing) waits for it first.
            with suppress(psycopg.Error):
                self.conn.cancel_safe(timeout=5.0)
            raise
        self._writing = False
        if not self.conn.closed and self.in_transaction:
            self.conn.execute("ROLLBACK")

    def settle(self) -> None:
        """Wait for the writes running behind (:class:`_Behind`); raise the first one's error.

        Every other method calls it first (:func:`_mapped`), so only a caller
        that would otherwise not touch the ledger again before judging the
        batch (a dry run, before its rollback) needs to call it.
        """
        self._settle()

    def _settle(self, *, cancel: bool = False) -> None:
        behind = self._behind
        if behind is None:
            return
        try:
            error = behind.finish(cancel=cancel)
        except BaseException:  # a Ctrl-C in the wait: kept, so the rollback waits for it
            behind.cancelled = True
            raise
        self._behind = None
        if error is not None and not cancel:
            raise error

    def _in_order(self, fn: Callable[[Any], None], arg: Any, rows: int) -> None:
        """``fn(arg)``: behind, if it is large and in a batch's transaction (or if writes
        are running behind already: they stay in order); else now."""
        if self._behind is None and (rows < _BEHIND_FROM or not self._writing):
            fn(arg)
            return
        if self._behind is None:
            self._behind = _Behind()
        self._behind.submit(fn, arg)

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """One ``REPEATABLE READ`` transaction for the block (rolled back: it writes nothing)."""
        own = not self.in_transaction
        if own:
            _mapped(_execute)(self, "BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            yield
        finally:
            if own and not self.conn.closed:
                _mapped(_execute)(self, "ROLLBACK")

    # ------------------------------------------------------------------ schema

    def _differences(self) -> list[tuple[str, str, str]]:
        return schema_differences(schema_of(self.conn, self.schema), expected_schema(self.conn))

    def check_schema(self) -> None:
        """Compare the schema's objects in the catalog with what the migrations make."""
        differences = self._differences()
        if differences:
            kind, name, what = differences[0]
            repair = "" if kind == "table" and name in LOG_TABLES else "; run 'lottrace rebuild'"
            raise IntegrityViolation(f"{self.path}: schema: {what}{repair}")

    def check_schema_quickly(self) -> None:
        """:meth:`check_schema`: one catalog query (what the migrations make is cached)."""
        self.check_schema()

    def restore_schema(self) -> list[str]:
        """Inside a write transaction: make the schema exactly lottrace's, derived tables empty."""
        expected = expected_schema(self.conn)
        actual = schema_of(self.conn, self.schema)
        for name in LOG_TABLES:
            if actual.get(name) != expected[name]:
                raise IntegrityViolation(
                    f"{self.path}: table {name} is not as lottrace made it, and rebuild "
                    "cannot restore the log; nothing was changed"
                )
        s = ident(self.schema)
        done: list[str] = []
        for kind, name, _what in schema_differences(actual, expected):
            obj = actual.get(name)
            if obj is None or kind == "table":
                continue
            table = f"{s}.{ident(obj[1])}"
            base = name.split(" on ")[0]
            if kind in ("trigger", "rule", "policy"):
                self.conn.execute(f"DROP {kind.upper()} IF EXISTS {ident(base)} ON {table}")
            elif kind == "function":
                for (sig,) in self.conn.execute(
                    "SELECT p.oid::regprocedure::text FROM pg_proc p "
                    "JOIN pg_namespace n ON n.oid = p.pronamespace "
                    "WHERE n.nspname = %s AND p.proname = %s",
                    [self.schema, base],
                ).fetchall():
                    self.conn.execute(f"DROP FUNCTION IF EXISTS {sig} CASCADE")
            elif kind == "index":
                if obj[1] not in DERIVED_TABLES:  # else it goes with its table, below
                    self.conn.execute(f"DROP INDEX IF EXISTS {s}.{ident(base)}")
            else:  # view, materialized view, sequence
                self.conn.execute(f"DROP {kind.upper()} IF EXISTS {s}.{ident(base)} CASCADE")
            done.append(f"dropped {kind} {name}")
        for kind, name, _what in schema_differences(schema_of(self.conn, self.schema), expected):
            if kind == "table" and name not in expected:
                self.conn.execute(f"DROP TABLE {s}.{ident(name)} CASCADE")
                done.append(f"dropped table {name}")
        for t in DERIVED_TABLES:  # with their indexes and anything on them
            self.conn.execute(f"DROP TABLE IF EXISTS {s}.{t} CASCADE")
        present = schema_of(self.conn, self.schema)
        for st in statements():
            if st.kind == "data":  # a migration's rows: the refold that follows makes them
                continue
            if st.name not in present:
                self.conn.execute(st.sql)
                if st.table not in DERIVED_TABLES:
                    done.append(f"restored {st.kind} {st.name}")
        return done

    # ------------------------------------------------------------------ streams

    def _stream(self, sql: str, params: Any = None) -> Iterator[Any]:
        """Run ``sql`` now and iterate its rows through a server-side cursor, fetched
        :data:`_ITERSIZE` at a time, so memory stays flat however long the answer.

        Outside a transaction the cursor is ``WITH HOLD``: the server keeps the whole
        answer (spilling to its temporary files) and the connection stays free for
        other statements between fetches. It is closed when the rows are done.
        """
        cur = self.conn.cursor(
            name=f"lottrace_{next(_cursor_ids)}", withhold=not self.in_transaction
        )
        cur.itersize = _ITERSIZE
        cur.execute(sql, params)
        return _rows(self, cur)

    def log_rows(self) -> Iterator[tuple[int, str, str]]:
        return self._stream("SELECT seq, event_id, body FROM events ORDER BY seq")

    def corrections(self) -> Iterator[tuple[str, str]]:
        # From the bodies, not the type column: the body is what the chain protects.
        for (body,) in self._stream(
            "SELECT body FROM events WHERE (body::jsonb) ->> 'type' = 'correction' ORDER BY seq"
        ):
            yield orjson.loads(body)["corrects"], body

    def check_chain(self, genesis: str, expect: str | None, workers: int | None) -> list[Checked]:
        """Every row, streamed through a server-side cursor in one snapshot (``workers`` unused)."""
        with self.read_snapshot():
            return [check_rows(self._stream(_VERIFY_SQL), genesis, 1, expect)]

    # ------------------------------------------------------------------ the log

    def head(self) -> tuple[int, str]:
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, genesis(self.ledger_id))

    def hash_at(self, seq: int) -> str:
        row = self.conn.execute("SELECT hash FROM events WHERE seq = %s", [seq]).fetchone()
        if row is None:
            raise IntegrityViolation(f"row seq {seq}: missing", seq=seq)
        return str(row[0])

    def recorded_head(self) -> tuple[int, str]:
        value = self.meta("head") or ""
        seq, _, head = value.partition(" ")
        if not seq.isdigit() or len(head) != 64:
            state = "malformed" if value else "missing"
            raise IntegrityViolation(f"the head recorded in {self.path}'s meta table is {state}")
        return int(seq), head

    def record_head(self, seq: int, head: str) -> None:
        self.conn.execute("UPDATE meta SET value = %s WHERE key = 'head'", [_head_text(seq, head)])

    def stored_among(self, eids: list[str]) -> set[str]:
        if not eids:
            return set()
        return {
            str(r[0])
            for r in self.conn.execute(
                "SELECT event_id FROM events WHERE event_id = ANY(%s)", [eids]
            )
        }

    def event_row(self, eid: str) -> tuple[str, bool] | None:
        row = self.conn.execute(
            "SELECT body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id = e.event_id) "
            "FROM events e WHERE event_id = %s",
            [eid],
        ).fetchone()
        return None if row is None else (str(row[0]), bool(row[1]))

    def seq_of(self, eid: str) -> int:
        row = self.conn.execute("SELECT seq FROM events WHERE event_id = %s", [eid]).fetchone()
        return int(row[0])  # type: ignore[index]

    def epcis_by_hash(self, hash_id: str) -> list[tuple[str, str]]:
        return self.conn.execute(
            f"SELECT event_id, body FROM events WHERE type = 'epcis' AND {HASH_ID_SQL} = %s "
            "ORDER BY seq",
            [hash_id],
        ).fetchall()

    def event_ids_at(self, seqs: list[int]) -> list[str]:
        rows = dict(
            self.conn.execute(
                "SELECT seq, event_id FROM events WHERE seq = ANY(%s)", [seqs]
            ).fetchall()
        )
        return [rows[q] for q in seqs]

    # ------------------------------------------------------------------ derived tables

    def write(self, rows: Rows) -> None:
        self._written += len(rows.events) + len(rows.event_lots)
        self._in_order(self._write, rows, len(rows.events) + len(rows.event_lots))

    def _write(self, rows: Rows) -> None:
        with self.conn.cursor() as cur:
            for table, cols, data in (
                ("events", "seq, event_id, type, time, lot, body, prev_hash, hash", rows.events),
                ("event_lots", "lot, time, type, seq, role, site", rows.event_lots),
                ("links", "dst, src, seq, kg, time", rows.links),
                ("voided", "event_id, lot, by_event_id, reason", rows.voided),
            ):
                if data:
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for row in data:
                            copy.write_row(row)
            if rows.lots_gone:
                cur.execute("DELETE FROM lots WHERE lot = ANY(%s)", [list(rows.lots_gone)])
            self._upsert(cur, "lots", LOT_COLUMNS, "lot", _LOT_SET, rows.lots_live)

    def _upsert(
        self,
        cur: psycopg.Cursor[Any],
        table: str,
        columns: str,
        key: str,
        update: str,
        rows: list[Any],
    ) -> None:
        """``INSERT ... ON CONFLICT (key) DO UPDATE SET update`` of ``rows`` into ``table``.

        Many rows go by ``COPY`` into a TEMP staging table (made for the upsert,
        dropped after it), then one ``INSERT ... SELECT``:
        psycopg formats ``COPY`` rows in C, while array parameters (``unnest``)
        were dumped element by element in Python, the largest cost of an
        import's writes. ``table`` is found through the search path, so a fold
        into scratch copies (:meth:`scratch_derived`) upserts into them.
        """
        if not rows:
            return
        upsert = f"INSERT INTO {table} ({columns}) %s ON CONFLICT ({key}) DO UPDATE SET {update}"
        if len(rows) < _STAGE_FROM:
            marks = ", ".join(["%s"] * (columns.count(",") + 1))
            cur.executemany(upsert % f"VALUES ({marks})", [tuple(r) for r in rows])
            return
        stage = f"lottrace_{table}_in"
        cur.execute(f"CREATE TEMP TABLE {stage} (LIKE {ident(self.schema)}.{table}) ON COMMIT DROP")
        with cur.copy(f"COPY pg_temp.{stage} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(upsert % f"SELECT {columns} FROM pg_temp.{stage}")
        # Dropped at once: no TEMP table of lottrace's outlives the statement that needs it
        # (the schema check reads what the migrations make from pg_temp).
        cur.execute(f"DROP TABLE pg_temp.{stage}")

    def voided_ids(self) -> frozenset[str]:
        return frozenset(
            str(r[0]) for r in self.conn.execute("SELECT DISTINCT event_id FROM voided")
        )

    def lot_has_void(self, lot: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM voided WHERE lot = %s LIMIT 1", [lot]).fetchone()
            is not None
        )

    def delete_event_rows(self, seq: int, lots: list[str], formed: list[str], links: int) -> None:
        # Through the (lot, ...) keys; if the rows found are not the ones the
        # event's facts say were written, every row of the event goes by a scan.
        c = self.conn
        if c.execute(
            "DELETE FROM event_lots WHERE lot = ANY(%s) AND seq = %s", [lots, seq]
        ).rowcount != len(lots):
            c.execute("DELETE FROM event_lots WHERE seq = %s", [seq])
        if (
            c.execute("DELETE FROM links WHERE dst = ANY(%s) AND seq = %s", [formed, seq]).rowcount
            != links
        ):
            c.execute("DELETE FROM links WHERE seq = %s", [seq])

    def lots_timelines(self, lots: list[str]) -> Iterator[tuple[str, str, str, str, str, int]]:
        return iter(
            self.conn.execute(
                "SELECT lot, time, type, role, site, seq FROM event_lots WHERE lot = ANY(%s) "
                "ORDER BY lot, time, seq, type, role",
                [lots],
            ).fetchall()
        )

    def replace_legs(self, lots: list[str], legs: list[tuple[Any, ...]]) -> None:
        self._in_order(self._replace_legs, (lots, legs), len(lots) + len(legs))

    def _replace_legs(self, lots_legs: tuple[list[str], list[tuple[Any, ...]]]) -> None:
        lots, legs = lots_legs
        removed: list[tuple[Any, ...]] = []
        with self.conn.cursor() as cur:
            if lots:
                removed = cur.execute(
                    "DELETE FROM legs WHERE lot = ANY(%s) "
                    "RETURNING end_time, from_stage, to_stage, hours, transit_hours",
                    [lots],
                ).fetchall()
            if legs:
                with cur.copy(f"COPY legs ({_LEG_COLUMNS}) FROM STDIN") as copy:
                    for row in legs:
                        copy.write_row(row)
            deltas = leg_day_deltas(removed, ((g[7], g[2], g[5], g[8], g[9]) for g in legs))
            if not deltas:
                return
            self._upsert(
                cur, "leg_days", _LEG_DAY_COLUMNS, _LEG_DAY_KEY, _LEG_DAY_ADD,
                [(*k, *d) for k, d in deltas.items()],
            )  # fmt: skip
            if removed:
                gone = [k for k, d in deltas.items() if d[0] < 0]
                cur.execute(
                    f"DELETE FROM leg_days WHERE n = 0 AND ({_LEG_DAY_KEY}) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]))",
                    [[k[i] for k in gone] for i in range(4)],
                )

    def leg_days(
        self, by: str, lo_day: str | None, hi_day: str | None
    ) -> Iterator[tuple[Any, ...]]:
        conditions, params = window("day", lo_day, hi_day, "%s")
        where = " AND ".join(conditions)
        key = {"stage": "", "month": "substr(day, 1, 7) || chr(31) || "}[by]
        rows = self.conn.execute(
            f"SELECT {key}from_stage || chr(31) || to_stage, band, sum(n), sum(us), "
            "sum(trucked), sum(transit_us), sum(wait_us) "
            f"FROM leg_days {'WHERE ' + where if where else ''} GROUP BY 1, 2",
            params,
        ).fetchall()
        # sum(bigint) is numeric (a Decimal here): exact, made int
        return ((k, band, *map(int, sums)) for k, band, *sums in rows)

    def leg_hours_in_band(
        self, frm: str, to: str, band: int, lo: str | None, hi: str | None
    ) -> list[float]:
        conditions, params = window("end_time", lo, hi, "%s")
        # the expression of the index legs_band, spelled as it is there
        return [
            h
            for (h,) in self.conn.execute(
                "SELECT hours FROM legs WHERE "
                + " AND ".join(
                    [
                        "from_stage = %s",
                        "to_stage = %s",
                        "floor(hours / 4::float8) = %s::float8",
                        *conditions,
                    ]
                ),
                [frm, to, band, *params],
            )
        ]

    def legs_ending(self, lo: str | None, hi: str | None) -> Iterator[tuple[Any, ...]]:
        conditions, params = window("end_time", lo, hi, "%s")
        where = " AND ".join(conditions)
        return self._stream(
            f"SELECT {_LEG_COLUMNS} FROM legs {'WHERE ' + where if where else ''} ORDER BY lot, n",
            params,
        )

    def legs_grouped(self, by: str, lo: str | None, hi: str | None) -> Iterator[tuple[Any, ...]]:
        conditions, params = window("end_time", lo, hi, "%s")
        where = " AND ".join(conditions)
        return self._stream(
            f"SELECT {_group_key(by, 'chr(31)')}, hours, transit_hours FROM legs"
            f"{' WHERE ' + where if where else ''}",  # no ORDER BY, as on SQLite
            params,
        )

    def lot_fold_rows(self, lot: str) -> list[tuple[str, str, str]]:
        return self.conn.execute(
            "SELECT e.event_id, e.body, el.role FROM event_lots el JOIN events e ON e.seq = el.seq "
            "WHERE el.lot = %s ORDER BY el.seq, el.time, el.type, el.role",
            [lot],
        ).fetchall()

    @contextmanager
    def scratch_derived(self) -> Iterator[None]:
        """For the block, the derived tables are TEMP tables of this session.

        ``pg_temp`` is searched first for tables, so their names shadow the
        derived tables' for every statement of a fold (none is prepared);
        :meth:`compare_derived` names both schemas.
        """
        conn = self.conn
        s = ident(self.schema)
        try:
            try:
                for name in DERIVED_TABLES:
                    conn.execute(
                        f"CREATE TEMP TABLE {name} (LIKE {s}.{name} INCLUDING DEFAULTS "
                        "INCLUDING CONSTRAINTS INCLUDING INDEXES)"
                    )
            except psycopg.Error as exc:
                raise LedgerError(
                    f"cannot check {self.path}'s derived tables: {_first_line(exc)}"
                ) from None
            yield
        finally:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.INERROR:
                for name in DERIVED_TABLES:
                    _mapped(_execute)(self, f"DROP TABLE IF EXISTS pg_temp.{name}")

    def compare_derived(self) -> None:
        for table in DERIVED_TABLES:
            self._compare_table(table)

    def _compare_table(self, table: str) -> None:
        """Raise :class:`IntegrityViolation` naming the first row of the ledger's ``table``
        that differs from the refolded ``pg_temp.table``."""
        real = f"{ident(self.schema)}.{table}"
        cols = [
            str(r[0])
            for r in self.conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                "AND NOT attisdropped ORDER BY attnum",
                [real],
            )
        ]
        keys = [
            str(r[0])
            for r in self.conn.execute(
                "SELECT a.attname FROM pg_constraint k, unnest(k.conkey) WITH ORDINALITY u(n, i) "
                "JOIN pg_attribute a ON a.attnum = u.n "
                "WHERE k.conrelid = %s::regclass AND k.contype = 'p' AND a.attrelid = k.conrelid "
                "ORDER BY u.i",
                [real],
            )
        ]
        listed = ", ".join(cols)
        order = ", ".join(str(cols.index(k) + 2) for k in keys)
        rows = self.conn.execute(
            f"SELECT 0 AS side, * FROM (SELECT {listed} FROM {real} EXCEPT "
            f"SELECT {listed} FROM pg_temp.{table}) a UNION ALL "
            f"SELECT 1, * FROM (SELECT {listed} FROM pg_temp.{table} EXCEPT "
            f"SELECT {listed} FROM {real}) b ORDER BY {order}, 1 LIMIT 2"
        ).fetchall()
        if not rows:
            return
        raise_row_difference(self.path, table, cols, keys, rows)

    def derived_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t: sorted(self.conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in DERIVED_TABLES
        }

    # ------------------------------------------------------------------ reads

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = %s", [key]).fetchone()
        return str(row[0]) if row else None

    def adopt_ledger_id(self, ledger_id: str) -> None:
        if self.conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            raise LedgerError(f"{self.path} holds events: only an empty ledger takes another's id")
        self.conn.execute("UPDATE meta SET value = %s WHERE key = 'ledger_id'", [ledger_id])
        self.conn.execute(
            "UPDATE meta SET value = %s WHERE key = 'head'", [_head_text(0, genesis(ledger_id))]
        )
        self.ledger_id = ledger_id

    def write_sources(
        self, ledger_id: str, rows: Iterable[tuple[int, str, str]], head: tuple[int, str]
    ) -> None:
        with (
            self.conn.cursor() as cur,
            cur.copy("COPY sources (ledger_id, seq, event_id, hash) FROM STDIN") as copy,
        ):
            for r in rows:
                copy.write_row((ledger_id, *r))
        self.conn.execute(
            "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            [f"source:{ledger_id}", _head_text(*head)],
        )

    def source_rows(self, ledger_id: str) -> Iterator[tuple[int, str, str, str | None]]:
        return self._stream(
            "SELECT s.seq, s.event_id, s.hash, e.body FROM sources s "
            "LEFT JOIN events e ON e.event_id = s.event_id WHERE s.ledger_id = %s ORDER BY s.seq",
            [ledger_id],
        )

    def source_ids(self) -> list[tuple[str, int]]:
        return [
            (str(i), int(n))
            for i, n in self.conn.execute(
                "SELECT ledger_id, COUNT(*) FROM sources GROUP BY ledger_id ORDER BY ledger_id"
            )
        ]

    def mark_demo(self) -> None:
        self.conn.execute("INSERT INTO meta VALUES ('demo', '1') ON CONFLICT (key) DO NOTHING")

    def lot(self, code: str) -> LotState | None:
        row = self.conn.execute(f"SELECT {LOT_COLUMNS} FROM lots WHERE lot = %s", [code]).fetchone()
        return LotState(*row) if row else None

    def lots_states(self, codes: Iterable[str]) -> dict[str, LotState]:
        rows = self.conn.execute(
            f"SELECT {LOT_COLUMNS} FROM lots WHERE lot = ANY(%s)", [sorted(set(codes))]
        ).fetchall()
        return {r[0]: LotState(*r) for r in rows}

    def lot_hint(self, code: str) -> list[str]:
        # ILIKE: SQLite's LIKE ignores ASCII case.
        rows = self.conn.execute(
            "SELECT lot FROM lots WHERE lot ILIKE %s ORDER BY lot LIMIT 3",
            [f"%{code[-6:].replace('%', '').replace('_', '').replace(chr(92), '')}%"],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def event(self, eid: str) -> StoredEvent | None:
        row = self.conn.execute(_EVENT_SQL + "WHERE event_id = %s", [eid]).fetchone()
        if row is None:
            return None
        return StoredEvent(
            row[0], row[1], parse_event(orjson.loads(row[2]), stored=True), bool(row[3])
        )

    def find_events(self, some_id: str) -> list[StoredEvent]:
        rows = self.conn.execute(
            _EVENT_SQL + "WHERE event_id = %(id)s "
            f"OR (type = 'epcis' AND {HASH_ID_SQL} = %(id)s) "
            f"OR (type = 'epcis' AND {PARTNER_ID_SQL} = %(id)s) ORDER BY seq",
            {"id": some_id},
        ).fetchall()
        return [
            StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))
            for seq, eid, body, void in rows
        ]

    def iter_events(self) -> Iterator[StoredEvent]:
        for seq, eid, body, void in self._stream(_EVENT_SQL + "ORDER BY seq"):
            yield StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))

    def events_of_types(self, types: list[str]) -> Iterator[StoredEvent]:
        wanted = sorted(set(types))
        if not wanted:
            return
        # Only rare types: through migration 003's partial index. PostgreSQL proves
        # that ``type = ANY(rare ones)`` implies the index's condition (the values are
        # sent with the query), so it need not be repeated here as SQLite needs it.
        for seq, eid, body, void in self._stream(
            _EVENT_SQL + "WHERE type = ANY(%s) ORDER BY seq", [wanted]
        ):
            yield StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))

    def events_after(self, seq: int) -> list[StoredEvent]:
        rows = self.conn.execute(_EVENT_SQL + "WHERE seq > %s ORDER BY seq", [seq]).fetchall()
        return [
            StoredEvent(s, eid, parse_event(orjson.loads(body), stored=True), bool(void))
            for s, eid, body, void in rows
        ]

    def voided_by(self, eid: str) -> str | None:
        row = self.conn.execute(
            "SELECT by_event_id FROM voided WHERE event_id = %s LIMIT 1", [eid]
        ).fetchone()
        return str(row[0]) if row else None

    def lot_events(self, code: str) -> list[StoredEvent]:
        rows = self.conn.execute(
            "SELECT e.seq, e.event_id, e.body, el.role FROM event_lots el "
            "JOIN events e ON e.seq = el.seq WHERE el.lot = %s ORDER BY el.time, el.seq",
            [code],
        ).fetchall()
        return [
            StoredEvent(s, i, parse_event(orjson.loads(b), stored=True), False, r)
            for s, i, b, r in rows
        ]

    def voided_for_lot(self, code: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT v.event_id FROM voided v JOIN events e ON e.event_id = v.event_id "
            "WHERE v.lot = %s ORDER BY e.seq",
            [code],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def counts(self) -> dict[str, Any]:
        by_type = {
            str(t): int(n)
            for t, n in self.conn.execute(
                "SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY type"
            )
        }
        first, last = self.conn.execute("SELECT MIN(time), MAX(time) FROM events").fetchone()  # type: ignore[misc]
        lots = self.conn.execute("SELECT COUNT(*) FROM lots").fetchone()
        voided = self.conn.execute("SELECT COUNT(DISTINCT event_id) FROM voided").fetchone()
        return {
            "by_type": by_type,
            "lots": int(lots[0]) if lots else 0,
            "voided": int(voided[0]) if voided else 0,
            "first_time": first,
            "last_time": last,
        }

    def sites(self) -> list[str]:
        return [
            str(site)
            for site, _n in self.conn.execute(
                "SELECT site, COUNT(*) AS n FROM event_lots GROUP BY site ORDER BY n DESC, site"
            )
        ]

    # The lineage's links are read by ``= ANY(ARRAY(SELECT lot FROM reach))``, not by a
    # join with the recursive CTE: PostgreSQL cannot estimate a recursive CTE's size
    # (it guesses about a thousand rows) and scanned all of ``links`` for the join, which
    # made one lot's upstream 146 ms at 1M events; an array is looked up in links' index.
    def lineage_links(self, code: str, *, direction: str) -> list[tuple[str, str, float, int, str]]:
        if direction == "up":
            near, far = "dst", "src"
        elif direction == "down":
            near, far = "src", "dst"
        else:
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        return self.conn.execute(
            'WITH RECURSIVE reach(lot) AS (SELECT %s::text COLLATE "C" UNION '
            f"SELECT l.{far} FROM reach JOIN links l ON l.{near} = reach.lot) "
            "SELECT l.src, l.dst, l.kg, l.seq, l.time "
            f"FROM links l WHERE l.{near} = ANY(ARRAY(SELECT lot FROM reach)) "
            "ORDER BY l.seq, l.src, l.dst",
            [code],
        ).fetchall()

    def ancestor_link_kgs(self, code: str) -> list[tuple[str, str, float]]:
        return self.conn.execute(
            'WITH RECURSIVE reach(lot) AS (SELECT %s::text COLLATE "C" UNION '
            "SELECT l.src FROM reach JOIN links l ON l.dst = reach.lot) "
            "SELECT l.src, l.dst, l.kg FROM links l WHERE l.dst = ANY(ARRAY(SELECT lot FROM reach)) "
            "ORDER BY l.dst, l.src, l.seq",
            [code],
        ).fetchall()

    def lots_events(
        self, codes: Iterable[str], *, own_types: Iterable[str] | None = None
    ) -> Iterator[tuple[str, StoredEvent]]:
        parsed: dict[int, EventBase] = {}
        where, args = "", [sorted(set(codes))]
        if own_types is not None:
            where = "AND el.type = ANY(%s) AND el.role <> 'input' "
            args.append(sorted(set(own_types)))
        for lot, role, seq, eid, body in self._stream(
            "SELECT el.lot, el.role, e.seq, e.event_id, e.body FROM event_lots el "
            f"JOIN events e ON e.seq = el.seq WHERE el.lot = ANY(%s) {where}"
            "ORDER BY el.lot, el.time, el.seq",
            args,
        ):
            ev = parsed.get(seq)
            if ev is None:
                ev = parsed[seq] = parse_event(orjson.loads(body), stored=True)
            yield lot, StoredEvent(seq, eid, ev, False, role)

    def own_event_bodies(
        self, codes: Iterable[str], types: Iterable[str]
    ) -> list[tuple[str, str, str, int, str]]:
        return self.conn.execute(
            "SELECT el.lot, el.role, el.time, e.seq, e.body FROM event_lots el "
            "JOIN events e ON e.seq = el.seq "
            "WHERE el.lot = ANY(%s) AND el.type = ANY(%s) AND el.role <> 'input' "
            "ORDER BY el.lot, el.time, el.seq",
            [sorted(set(codes)), sorted(set(types))],
        ).fetchall()

    def voided_for_lots(self, codes: Iterable[str]) -> list[str]:
        rows = self.conn.execute(
            "SELECT v.event_id FROM voided v JOIN events e ON e.event_id = v.event_id "
            "WHERE v.lot = ANY(%s) GROUP BY v.event_id ORDER BY MIN(e.seq)",
            [sorted(set(codes))],
        ).fetchall()
        return [str(r[0]) for r in rows]

    def link_inflows(self, codes: Iterable[str]) -> dict[str, float]:
        rows = self.conn.execute(
            "SELECT dst, SUM(kg) FROM links WHERE dst = ANY(%s) GROUP BY dst",
            [sorted(set(codes))],
        ).fetchall()
        return {str(d): float(kg) for d, kg in rows}

    def leg_rows(self) -> Iterator[tuple[str, str, str, str, str]]:
        return self._stream(
            "SELECT lot, time, type, role, site FROM event_lots ORDER BY lot, time, seq"
        )

    def leg_scan(
        self, lot: str | None = None, *, marks: bool = True
    ) -> Iterator[tuple[str, str, str, str, str]]:
        """See :meth:`lottrace.storage.sqlite.SqliteStorage.leg_scan`: the same rows, in the same order."""
        if lot is not None:
            return self._stream(
                "SELECT lot, time, type, role, site FROM event_lots WHERE lot = %s "
                "ORDER BY time, seq, type, role",
                [lot],
            )
        where = "" if marks else "WHERE type NOT IN ('dispatch', 'arrival') "
        return self._stream(
            f"SELECT lot, time, type, role, site FROM event_lots {where}"
            "ORDER BY lot, time, type, seq, role"
        )

    def open_lot_checkpoints(
        self, types: Iterable[str]
    ) -> list[tuple[str, float, str | None, str, str, str]]:
        # From the open lots, each one's latest row (LATERAL): joined on a subquery
        # instead, the planner hashed every event_lots row and ran the subquery for each
        # (10M events: 86 s -> 6.5 s).
        return self.conn.execute(
            "SELECT l.lot, l.kg - l.drawn_kg, l.last_qc, el.type, el.time, el.site "
            "FROM lots l CROSS JOIN LATERAL ("
            "  SELECT e2.seq FROM event_lots e2 WHERE e2.lot = l.lot AND e2.role <> 'input' "
            "  AND e2.type = ANY(%s) ORDER BY e2.time DESC, e2.seq DESC LIMIT 1) latest "
            "CROSS JOIN LATERAL (SELECT e3.type, e3.time, e3.site FROM event_lots e3 "
            "  WHERE e3.lot = l.lot AND e3.seq = latest.seq) el "
            "WHERE l.kg - l.drawn_kg > 1e-6 * GREATEST(1.0, l.kg) "
            "ORDER BY el.time, l.lot",
            [sorted(set(types))],
        ).fetchall()


_LEG_COLUMNS = (
    "lot, n, from_stage, from_site, start_time, to_stage, to_site, end_time, hours, transit_hours"
)


def _group_key(by: str, sep: str) -> str:
    """The SQL of :meth:`Storage.legs_grouped`'s key: the group's fields joined by ``sep``."""
    fields = {
        "stage": ["from_stage", "to_stage"],
        "site": ["from_stage", "to_stage", "from_site", "to_site"],
        "month": ["substr(end_time, 1, 7)", "from_stage", "to_stage"],
    }[by]
    return f" || {sep} || ".join(fields)


# ---------------------------------------------------------------------- the error boundary


def _execute(store: PostgresStorage, sql: str) -> None:
    store.conn.execute(sql)


def _mapped_error(store: PostgresStorage, exc: psycopg.Error) -> Exception:
    """A constraint of the log is an :class:`IntegrityViolation`; anything else a
    :class:`LedgerError` naming the ledger (without its password)."""
    if isinstance(exc, psycopg.IntegrityError):
        return IntegrityViolation(
            f"{store.path}: {_first_line(exc)}; nothing added (a bug in lottrace, or the "
            "ledger's tables were changed outside it: run 'lottrace verify')"
        )
    return LedgerError(f"ledger {store.path}: {_first_line(exc)}")


def _rows(store: PostgresStorage, cursor: psycopg.ServerCursor[Any]) -> Iterator[Any]:
    """A cursor's rows with its errors mapped; closed when done (or abandoned). Each fetch
    first waits for writes running behind (a caller may have queued one between fetches)."""
    try:
        while True:
            store._settle()
            rows = cursor.fetchmany(_ITERSIZE)
            if not rows:
                return
            yield from rows
    except psycopg.Error as exc:
        raise _mapped_error(store, exc) from None
    finally:
        if (
            not store.conn.closed
            and store.conn.info.transaction_status != TransactionStatus.INERROR
        ):
            with suppress(psycopg.Error):
                cursor.close()


_F = TypeVar("_F", bound=Callable[..., Any])


def _mapped(fn: _F, *, settle: bool = True) -> _F:
    """``fn`` with every :class:`psycopg.Error` it raises mapped (generators while iterated);
    with ``settle``, it first waits for the writes running behind (:class:`_Behind`)."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(self: PostgresStorage, *args: Any, **kw: Any) -> Any:
            try:
                if settle:
                    self._settle()
                yield from fn(self, *args, **kw)
            except psycopg.Error as exc:
                raise _mapped_error(self, exc) from None

        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(self: PostgresStorage, *args: Any, **kw: Any) -> Any:
        try:
            if settle:
                self._settle()
            return fn(self, *args, **kw)
        except psycopg.Error as exc:
            raise _mapped_error(self, exc) from None

    return call  # type: ignore[return-value]


# Every public method of the backend (the Storage interface) maps its errors.
for _name, _fn in list(vars(PostgresStorage).items()):
    if (
        not _name.startswith("_")
        and inspect.isfunction(_fn)
        and _name not in ("scratch_derived", "read_snapshot")
    ):
        # These queue behind the writes running, or wait for them themselves.
        own = _name in ("write", "replace_legs", "close", "rollback", "settle")
        setattr(PostgresStorage, _name, _mapped(_fn, settle=not own))
