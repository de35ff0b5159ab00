"""The SQLite backend: a ledger in one SQLite file (the default), and all the SQL it runs.

Its tables:

``events`` (the log, never updated or deleted; triggers abort both)
    ``seq`` (1, 2, 3 ...), ``event_id`` (sha256 of the canonical body),
    ``type``, ``time`` (UTC sort key), ``lot``, ``body`` (canonical JSON),
    ``prev_hash`` and ``hash`` = sha256(prev_hash || event_id).
``meta``
    ``ledger_id``, a random id whose hash starts the chain, so two files'
    chains cannot be swapped unnoticed; ``head``, the ``seq hash`` of the
    newest event, written in the same transaction as each batch, so a tail
    cut off or rows added outside lottrace do not pass ``verify``.
``lots``, ``event_lots``, ``links``, ``voided`` (derived)
    Each lot's folded state, every (lot, event) pair, every kg link from an
    input lot to the lot it formed, and every voided event. They are kept on
    append and can be rebuilt from the log alone.

WAL mode, ``synchronous=FULL``, a busy timeout for a second writer. A batch
is one ``BEGIN IMMEDIATE`` transaction. The schema's migrations are in
:mod:`lottrace.storage.sqlite_schema`: a file that records a migration this
lottrace does not know is refused before anything runs, and a migration is
only applied to a file whose schema is exactly what its recorded migrations
make. Opened read-only (``mode=ro``, or ``immutable=1`` where SQLite cannot
make the ``-shm`` beside it), nothing is written to the file: no
journal-mode switch, no migration.

Every :class:`sqlite3.Error` that leaves this module is mapped into the
:class:`~lottrace.errors.LottraceError` tree, naming the file
(:func:`_mapped`): nothing above it imports :mod:`sqlite3`.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ..chain import Checked, check_rows, genesis
from ..errors import IntegrityViolation, LedgerError
from ..events import EventBase, parse_event
from ..rules import LotState
from . import (
    DERIVED_TABLES,
    NeedsUpgrade,
    Refold,
    Rows,
    Storage,
    StoredEvent,
    leg_day_deltas,
    raise_row_difference,
    window,
)
from .sqlite_schema import (
    COMMON_TYPES,
    HASH_ID_SQL,
    LOG_TABLES,
    LOT_COLUMNS,
    MIGRATION_NAMES,
    PARTNER_ID_SQL,
    RARE_TYPE_SQL,
    REFOLD_AFTER,
    applied,
    expected_schema,
    ident,
    migrated_memory,
    migrations,
    objects_made,
    pending,
    schema_differences,
    schema_of,
)

__all__ = ["BUSY_TIMEOUT_S", "CACHE_MB", "SqliteStorage"]

#: How long a writer waits for another process's batch to finish before giving up.
BUSY_TIMEOUT_S = 60.0


#: SQLite page cache (MB) while a batch is appended: most of the log's id index and
#: the derived tables' keys at a million events, and import memory under 400 MB.
#: ``LOTTRACE_CACHE_MB`` sets it.
CACHE_MB = 192


#: Page cache (KiB) of the scratch tables ``verify`` refolds the log into.
_SCRATCH_CACHE_KIB = 32 * 1024


#: Logs at least this long are verified in one process per core.
_PARALLEL_VERIFY = 200_000


_VERIFY_SQL = (
    "SELECT seq, event_id, CAST(body AS BLOB), prev_hash, hash, type, time, lot FROM events"
)


def _read_only_uri(path: str | os.PathLike[str]) -> str:
    """An SQLite URI that opens ``path`` read-only (``?`` or ``#`` in a folder name included)."""
    return Path(path).absolute().as_uri() + "?mode=ro"


def _stored_among(conn: sqlite3.Connection, eids: list[str]) -> set[str]:
    """Which of ``eids`` the log holds (one indexed look-up each, in one query)."""
    return {
        r[0]
        for r in conn.execute(
            "SELECT event_id FROM json_each(?) j CROSS JOIN events e ON e.event_id = j.value",
            [orjson.dumps(eids).decode()],
        )
    }


def _cache_mb() -> int:
    value = os.environ.get("LOTTRACE_CACHE_MB", "").strip()
    if not value:
        return CACHE_MB
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise LedgerError(
            f"LOTTRACE_CACHE_MB must be a whole number of megabytes (1 or more), not {value!r}"
        )
    return int(value)


def _verify_range(uri: str, lo: int, hi: int, expect: str | None) -> Checked:
    """Check rows ``lo``..``hi`` in a worker process; the seam before ``lo`` is checked by the caller."""
    conn = sqlite3.connect(uri, uri=True)
    try:
        cur = conn.execute(_VERIFY_SQL + " WHERE seq BETWEEN ? AND ? ORDER BY seq", [lo, hi])
        return check_rows(cur, None, lo, expect)
    finally:
        conn.close()


def _head_text(seq: int, head: str) -> str:
    """A head as ``meta`` records it (``seq hash``)."""
    return f"{seq} {head}"


class SqliteStorage(Storage):
    """A ledger in one SQLite file: see the module's docstring.

    ``refold`` folds the whole log into the (empty) derived tables: a
    migration that changes what a fold computes runs it, in the migration's
    transaction.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        refold: Refold,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        read_only: bool = False,
        create: bool = False,
    ):
        self.path = Path(path)
        self._refold = refold
        #: Opened with ``read_only``: nothing is ever written to the file (no
        #: journal-mode switch, no migration), so a file on a read-only mount,
        #: without write permission, in a read-only folder or on a full disk
        #: can be read and verified.
        self.read_only = read_only
        if create and not self.path.exists():
            if not self.path.parent.is_dir():
                raise LedgerError(
                    f"cannot create {self.path}: folder {self.path.parent} does not exist"
                )
            try:
                self.path.touch()
            except OSError as exc:
                raise LedgerError(f"cannot create {self.path}: {exc.strerror}") from None
        if not self.path.exists():
            if not self.path.parent.is_dir():
                raise LedgerError(
                    f"no ledger at {self.path}: folder {self.path.parent} does not exist"
                )
            raise LedgerError(
                f"no ledger at {self.path}: run 'lottrace init' first, or pass --db PATH"
            )
        if self.path.is_dir():
            raise LedgerError(f"{self.path} is a folder, not a ledger file")
        self._open(busy_timeout_s, create)

    def _connect_read_only(self, busy_timeout_s: float) -> sqlite3.Connection:
        """A read-only connection: ``mode=ro``, or ``immutable=1`` where SQLite cannot
        create the ``-shm`` it needs beside a WAL file (a read-only folder or mount)."""
        self._uri = _read_only_uri(self.path)
        conn = sqlite3.connect(self._uri, uri=True, isolation_level=None, timeout=busy_timeout_s)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise LedgerError(
                f"cannot read {self.path} read-only: its -wal file holds changes not yet "
                "in it, and SQLite cannot create the -shm it needs to read them (a read-only "
                "folder?); copy the ledger with its -wal to a writable folder"
            )
        # Nothing waits in a WAL, and no writer can be at work where no -wal can be made.
        self._uri += "&immutable=1"
        return sqlite3.connect(self._uri, uri=True, isolation_level=None, timeout=busy_timeout_s)

    def _open(self, busy_timeout_s: float, create: bool) -> None:
        try:
            if self.read_only:
                self.conn = self._connect_read_only(busy_timeout_s)
            else:
                self._uri = _read_only_uri(self.path)
                self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_s)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open {self.path}: {exc}") from None
        try:
            self.busy_timeout_s = busy_timeout_s
            # Look before touching anything: no PRAGMA that writes (journal
            # mode) runs on a file that is not, or not yet, a lottrace ledger.
            tables = {
                r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "events" not in tables or "meta" not in tables:
                if tables:
                    raise LedgerError(f"{self.path} is an SQLite file, but not a lottrace ledger")
                if not create:
                    raise LedgerError(
                        f"{self.path} is empty, not a lottrace ledger: run 'lottrace init' to make it one"
                    )
            if tables:
                self._check_migrations()
            if not self.read_only:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                if pending(self.conn):
                    self._migrate()
            self.ledger_id = self.conn.execute(
                "SELECT value FROM meta WHERE key='ledger_id'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            self.close()
            text = str(exc)
            if not self.read_only and ("readonly" in text or "unable to open" in text):
                raise LedgerError(
                    f"cannot write {self.path}: the file, its folder or its disk is read-only "
                    f"({text}); read commands such as verify and history work on it"
                ) from None
            raise LedgerError(f"{self.path} is not a usable lottrace ledger: {exc}") from None
        except BaseException:
            self.close()
            raise

    def _check_migrations(self) -> None:
        """Refuse a ledger a newer lottrace wrote, and one whose migration records lie.

        Runs before anything is written. A migration is only ever applied to a
        file whose schema is exactly what the migrations recorded in it make:
        a record deleted to have a migration run again (and rewrite, say, the
        recorded head) is an integrity violation, not an old file. A ledger
        opened read-only is never migrated: an old one must be upgraded first.
        """
        done = applied(self.conn)
        newer = [n for n in done if n not in MIGRATION_NAMES]
        if newer:
            raise LedgerError(
                f"{self.path} was written by a newer lottrace (migration {newer[0]}); "
                "upgrade lottrace"
            )
        k = 0
        while k < len(MIGRATION_NAMES) and MIGRATION_NAMES[k] in done:
            k += 1
        if k == len(MIGRATION_NAMES):
            return
        later = [n for n in MIGRATION_NAMES[k + 1 :] if n in done]
        if later:
            raise IntegrityViolation(
                f"{self.path}: migration record {MIGRATION_NAMES[k]} is missing from "
                f"_sqlite_migrations, but the later {later[0]} is recorded (deleted behind "
                "lottrace's back, to have the migration run again); nothing was changed. "
                "Restore the file from a backup and check it with 'lottrace verify --expect HASH'"
            )
        self.check_schema(k)
        if self.read_only:
            raise NeedsUpgrade(
                f"{self.path} was written by an older lottrace (migration "
                f"{MIGRATION_NAMES[k]} not yet applied) and is opened read-only: "
                "run 'lottrace init' on it (or on a writable copy) to upgrade it"
            )

    def check_schema_quickly(self) -> None:
        """:meth:`check_schema` for an append: the same objects, compared without
        importing sqlite_utils (what its own ``_sqlite_migrations`` table is made of is
        left to ``verify``), so ``lottrace log`` stays quick."""
        actual = {
            name: obj
            for name, obj in schema_of(self.conn).items()
            if obj[1] != "_sqlite_migrations"
        }
        differences = schema_differences(actual, objects_made())
        if differences:
            kind, name, what = differences[0]
            repair = "" if kind == "table" and name in LOG_TABLES else "; run 'lottrace rebuild'"
            raise IntegrityViolation(f"{self.path}: schema: {what}{repair}")

    def check_schema(self, k: int = len(MIGRATION_NAMES)) -> None:
        """Compare ``sqlite_master`` and ``meta``'s keys with what the first ``k``
        migrations make; raise :class:`IntegrityViolation` naming the first difference."""
        if (
            k == 0
            and not self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                "AND name != '_sqlite_migrations'"
            ).fetchone()
        ):
            return  # an empty file (or one whose first migration did not start)
        expected = expected_schema(k)
        actual = schema_of(self.conn)
        if k == 0:
            actual.pop("_sqlite_migrations", None)
        differences = schema_differences(actual, expected.objects)
        recorded = f" (migrations up to {MIGRATION_NAMES[k - 1]})" if k else " (no migrations)"
        if differences:
            kind, name, what = differences[0]
            if k < len(MIGRATION_NAMES):
                raise IntegrityViolation(
                    f"{self.path}: schema: {what}; it is not what the migrations recorded "
                    f"in it make{recorded}: a migration record was deleted behind lottrace's back"
                )
            repair = "" if kind == "table" and name in LOG_TABLES else "; run 'lottrace rebuild'"
            raise IntegrityViolation(f"{self.path}: schema: {what}{repair}")
        if "meta" in actual:
            all_keys = expected_schema(len(MIGRATION_NAMES)).meta_keys
            keys = {r[0] for r in self.conn.execute("SELECT key FROM meta")} & all_keys
            if keys != expected.meta_keys:
                key = sorted(keys ^ expected.meta_keys)[0]
                state = "present" if key in keys else "missing"
                raise IntegrityViolation(
                    f"{self.path}: meta row {key!r} is {state}, which the migrations recorded "
                    f"in it{recorded} do not give: a migration record was deleted behind "
                    "lottrace's back"
                )

    def _migrate(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            import sqlite_utils

            done = set(applied(self.conn))
            migrations().apply(sqlite_utils.Database(self.conn))
            if "001_log_and_derived_tables" in done and REFOLD_AFTER - done:
                self.ledger_id = self.conn.execute(
                    "SELECT value FROM meta WHERE key='ledger_id'"
                ).fetchone()[0]
                for t in DERIVED_TABLES:
                    self.conn.execute(f"DELETE FROM {t}")
                self._refold(self)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest event, or (0, genesis) for an empty log."""
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, genesis(self.ledger_id))

    def check_chain(self, genesis: str, expect: str | None, workers: int | None) -> list[Checked]:
        """Check every row, in ``workers`` processes over ranges of rows for a long log.

        Default: one per core, at most 4, from :data:`_PARALLEL_VERIFY` rows.
        Each worker opens the file read-only on its own; the seams between
        ranges are left to the caller.
        """
        first, last, count = self.conn.execute(
            "SELECT MIN(seq), MAX(seq), COUNT(*) FROM events"
        ).fetchone()
        if workers is None:
            workers = min(os.cpu_count() or 1, 4) if count >= _PARALLEL_VERIFY else 1
        if workers < 2 or count < 2 * workers or first != 1 or last != count:
            cur = self.conn.execute(_VERIFY_SQL + " ORDER BY seq")
            return [check_rows(cur, genesis, 1, expect)]
        step = -(-count // workers)
        bounds = [(lo, min(lo + step - 1, count)) for lo in range(1, count + 1, step)]
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(len(bounds)) as pool:
            return pool.starmap(_verify_range, [(self._uri, lo, hi, expect) for lo, hi in bounds])

    def hash_at(self, seq: int) -> str:
        row = self.conn.execute("SELECT hash FROM events WHERE seq = ?", [seq]).fetchone()
        if row is None:
            raise IntegrityViolation(f"row seq {seq}: missing", seq=seq)
        return str(row[0])

    def recorded_head(self) -> tuple[int, str]:
        """The ``(seq, hash)`` that the last batch recorded in ``meta``."""
        value = self.meta("head") or ""
        seq, _, head = value.partition(" ")
        if not seq.isdigit() or len(head) != 64:
            state = "malformed" if value else "missing"
            raise IntegrityViolation(f"the head recorded in {self.path}'s meta table is {state}")
        return int(seq), head

    def record_head(self, seq: int, head: str) -> None:
        self.conn.execute("UPDATE meta SET value=? WHERE key='head'", [_head_text(seq, head)])

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def begin_write(self) -> None:
        """``BEGIN IMMEDIATE``, and a larger page cache until the batch ends.

        The indexes of a large log outgrow SQLite's default 2 MB page cache,
        and every id and lot lookup then reads from disk. ``LOTTRACE_CACHE_MB``
        sets the batch's cache (:data:`CACHE_MB`).
        """
        if self.read_only:
            raise LedgerError(f"{self.path} is open read-only: this needs to write it")
        cache_kib = _cache_mb() * 1024
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(
                f"{self.path} stayed locked by another writer for more than "
                f"{self.busy_timeout_s:g} s: {exc}"
            ) from None
        self._cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size=-{cache_kib}")

    def _end_write(self) -> None:
        cache = getattr(self, "_cache", None)
        if cache is not None:
            self.conn.execute(f"PRAGMA cache_size={int(cache)}")
            self._cache = None

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        finally:
            self._end_write()

    def rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self._end_write()

    def settle(self) -> None:
        """Nothing runs behind: SQLite writes each row at once."""

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        own = not self.conn.in_transaction
        if own:
            _mapped(_execute)(self, "BEGIN")
        try:
            yield
        finally:
            if own:
                _mapped(_execute)(self, "COMMIT")

    def restore_schema(self) -> list[str]:
        """Inside a write transaction: make the schema exactly lottrace's, derived tables empty."""
        expected = expected_schema(len(MIGRATION_NAMES)).objects
        actual = schema_of(self.conn)
        for name in LOG_TABLES:
            if actual.get(name) != expected[name]:
                raise IntegrityViolation(
                    f"{self.path}: table {name} is not as lottrace made it, and rebuild "
                    "cannot restore the log; nothing was changed"
                )
        done: list[str] = []
        # Triggers, views and indexes first (a trigger or view may name a table),
        # then tables; an object of lottrace's own that was changed goes too, and
        # is made again below.
        for kind, name, _what in schema_differences(actual, expected):
            if name in actual and kind in ("trigger", "view", "index"):
                self.conn.execute(f"DROP {kind.upper()} IF EXISTS {ident(name)}")
                done.append(f"dropped {kind} {name}")
        for kind, name, _what in schema_differences(schema_of(self.conn), expected):
            if kind == "table" and name not in expected:
                self.conn.execute(f"DROP TABLE {ident(name)}")
                done.append(f"dropped table {name}")
        for t in DERIVED_TABLES:  # with their indexes and any trigger on them
            self.conn.execute(f"DROP TABLE IF EXISTS {t}")
        memory = migrated_memory(len(MIGRATION_NAMES))
        try:
            made = memory.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type = 'table' DESC, rowid"
            ).fetchall()
        finally:
            memory.close()
        present = schema_of(self.conn)
        for kind, name, tbl, create in made:
            if name not in present:
                self.conn.execute(create)
                if tbl not in DERIVED_TABLES:
                    done.append(f"restored {kind} {name}")
        return done

    @contextmanager
    def scratch_derived(self) -> Iterator[None]:
        """For the block, the derived tables are TEMP tables of this connection.

        SQLite keeps TEMP tables in a private temporary file, never in the
        ledger, so a read-only ledger can be checked and memory stays bounded
        by the page cache. Their names shadow the derived tables', so a fold
        writes into them while reading the log from the file;
        :meth:`compare_derived` compares the two.
        """
        conn = self.conn
        try:
            conn.execute(f"PRAGMA temp.cache_size=-{_SCRATCH_CACHE_KIB}")
            for name in DERIVED_TABLES:
                create = conn.execute(
                    "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", [name]
                ).fetchone()[0]
                conn.execute(re.sub(r"^CREATE TABLE", "CREATE TEMP TABLE", create))
            yield
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot check {self.path}'s derived tables: {exc}") from None
        finally:
            for name in DERIVED_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS temp.{name}")

    def compare_derived(self) -> None:
        """Compare each derived table with its scratch copy, in the order of
        :data:`~lottrace.storage.DERIVED_TABLES`, by set difference both ways; the
        first differing row, by key, is named."""
        for table in DERIVED_TABLES:
            self._compare_table(self.conn, table)

    def _compare_table(self, conn: sqlite3.Connection, table: str) -> None:
        """Raise :class:`IntegrityViolation` naming the first row of the ledger's ``table``
        that differs from the refolded ``temp.table``."""
        info = conn.execute(f"PRAGMA main.table_info({table})").fetchall()
        cols = [r[1] for r in info]
        keys = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
        listed = ", ".join(cols)
        order = ", ".join(str(cols.index(k) + 2) for k in keys)
        rows = conn.execute(
            f"SELECT 0, * FROM (SELECT {listed} FROM main.{table} EXCEPT "
            f"SELECT {listed} FROM temp.{table}) UNION ALL "
            f"SELECT 1, * FROM (SELECT {listed} FROM temp.{table} EXCEPT "
            f"SELECT {listed} FROM main.{table}) ORDER BY {order}, 1 LIMIT 2"
        ).fetchall()
        if not rows:
            return
        raise_row_difference(self.path, table, cols, keys, rows)

    def log_rows(self) -> Iterator[tuple[int, str, str]]:
        # Streamed: a cursor on the log while a fold writes the derived tables.
        yield from self.conn.execute("SELECT seq, event_id, body FROM events ORDER BY seq")

    def corrections(self) -> Iterator[tuple[str, str]]:
        # From the bodies, not the type column: the body is what the chain protects.
        for (body,) in self.conn.execute(
            "SELECT body FROM events WHERE json_extract(body, '$.type') = 'correction'"
        ):
            yield orjson.loads(body)["corrects"], body

    def derived_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every derived table's rows, sorted: for comparing maintained and rebuilt state."""
        return {
            t: sorted(self.conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in DERIVED_TABLES
        }

    def lot(self, code: str) -> LotState | None:
        row = self.conn.execute(f"SELECT {LOT_COLUMNS} FROM lots WHERE lot=?", [code]).fetchone()
        return LotState(*row) if row else None

    def lot_hint(self, code: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT lot FROM lots WHERE lot LIKE ? ORDER BY lot LIMIT 3",
            [f"%{code[-6:].replace('%', '').replace('_', '')}%"],
        ).fetchall()
        return [r[0] for r in rows]

    def event(self, eid: str) -> StoredEvent | None:
        row = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e WHERE event_id=?",
            [eid],
        ).fetchone()
        if row is None:
            return None
        return StoredEvent(
            row[0], row[1], parse_event(orjson.loads(row[2]), stored=True), bool(row[3])
        )

    def find_events(self, some_id: str) -> list[StoredEvent]:
        """The events an id names, in log order: lottrace's own event id, a
        foreign event's Event Hash ID (the event and any error declaration of it)
        or a partner's eventID."""
        rows = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e WHERE event_id = ?1 "
            f"OR (type = 'epcis' AND {HASH_ID_SQL} = ?1) "
            f"OR (type = 'epcis' AND {PARTNER_ID_SQL} = ?1) ORDER BY seq",
            [some_id],
        ).fetchall()
        return [
            StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))
            for seq, eid, body, void in rows
        ]

    def iter_events(self) -> Iterator[StoredEvent]:
        """Every event in log order, void ones flagged (what an export reads)."""
        rows = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e ORDER BY seq"
        )
        for seq, eid, body, void in rows:
            yield StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))

    def events_of_types(self, types: list[str]) -> Iterator[StoredEvent]:
        wanted = sorted(set(types))
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        # Only rare types: through migration 006's partial index (its condition spelled
        # as it is, for SQLite to see the index applies), not a scan of the log.
        rare = f" AND {RARE_TYPE_SQL}" if not set(wanted) & set(COMMON_TYPES) else ""
        rows = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            f"FROM events e WHERE type IN ({marks}){rare} ORDER BY seq",
            wanted,
        )
        for seq, eid, body, void in rows:
            yield StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))

    def events_after(self, seq: int) -> list[StoredEvent]:
        """Every event after ``seq`` in log order, void ones flagged (the rows since a head)."""
        rows = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e WHERE seq > ? ORDER BY seq",
            [seq],
        )
        return [
            StoredEvent(s, eid, parse_event(orjson.loads(body), stored=True), bool(void))
            for s, eid, body, void in rows
        ]

    def voided_by(self, eid: str) -> str | None:
        """The id of the correction that voided event ``eid``, or None."""
        row = self.conn.execute(
            "SELECT by_event_id FROM voided WHERE event_id=? LIMIT 1", [eid]
        ).fetchone()
        return row[0] if row else None

    def lot_events(self, code: str) -> list[StoredEvent]:
        """The lot's own non-void events (it is subject, input or output), in time order."""
        rows = self.conn.execute(
            "SELECT e.seq, e.event_id, e.body, el.role FROM event_lots el "
            "JOIN events e ON e.seq = el.seq WHERE el.lot=? ORDER BY el.time, el.seq",
            [code],
        ).fetchall()
        return [
            StoredEvent(s, i, parse_event(orjson.loads(b), stored=True), False, r)
            for s, i, b, r in rows
        ]

    def voided_for_lot(self, code: str) -> list[str]:
        """Ids of void events that named this lot (their links are gone)."""
        rows = self.conn.execute(
            "SELECT v.event_id FROM voided v JOIN events e ON e.event_id = v.event_id "
            "WHERE v.lot = ? ORDER BY e.seq",
            [code],
        ).fetchall()
        return [r[0] for r in rows]

    def meta(self, key: str) -> str | None:
        """A value from the ``meta`` table (``ledger_id``, ``demo``), or None."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
        return row[0] if row else None

    def adopt_ledger_id(self, ledger_id: str) -> None:
        if self.conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
            raise LedgerError(f"{self.path} holds events: only an empty ledger takes another's id")
        self.conn.execute("UPDATE meta SET value=? WHERE key='ledger_id'", [ledger_id])
        self.conn.execute(
            "UPDATE meta SET value=? WHERE key='head'", [_head_text(0, genesis(ledger_id))]
        )
        self.ledger_id = ledger_id

    def write_sources(
        self, ledger_id: str, rows: Iterable[tuple[int, str, str]], head: tuple[int, str]
    ) -> None:
        self.conn.executemany(
            "INSERT INTO sources VALUES (?, ?, ?, ?)", ((ledger_id, *r) for r in rows)
        )
        self.conn.execute(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [f"source:{ledger_id}", _head_text(*head)],
        )

    def source_rows(self, ledger_id: str) -> Iterator[tuple[int, str, str, str | None]]:
        cur = self.conn.execute(
            "SELECT s.seq, s.event_id, s.hash, e.body FROM sources s "
            "LEFT JOIN events e ON e.event_id = s.event_id WHERE s.ledger_id = ? ORDER BY s.seq",
            [ledger_id],
        )
        yield from cur

    def source_ids(self) -> list[tuple[str, int]]:
        return [
            (str(i), int(n))
            for i, n in self.conn.execute(
                "SELECT ledger_id, COUNT(*) FROM sources GROUP BY ledger_id ORDER BY ledger_id"
            )
        ]

    def mark_demo(self) -> None:
        """Flag this file as a demo ledger, which ``lottrace demo`` may add to."""
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('demo', '1')")

    def counts(self) -> dict[str, Any]:
        by_type = dict(
            self.conn.execute("SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY type")
        )
        first, last = self.conn.execute("SELECT MIN(time), MAX(time) FROM events").fetchone()
        return {
            "by_type": by_type,
            "lots": self.conn.execute("SELECT COUNT(*) FROM lots").fetchone()[0],
            "voided": self.conn.execute("SELECT COUNT(DISTINCT event_id) FROM voided").fetchone()[
                0
            ],
            "first_time": first,
            "last_time": last,
        }

    def sites(self) -> list[str]:
        """Every site an event happened at, most used first (then by name): what ``log`` offers."""
        return [
            site
            for site, _n in self.conn.execute(
                "SELECT site, COUNT(*) AS n FROM event_lots GROUP BY site ORDER BY n DESC, site"
            )
        ]

    def lineage_links(self, code: str, *, direction: str) -> list[tuple[str, str, float, int, str]]:
        """Every kg link in the lineage of ``code``, as ``(src, dst, kg, seq, time)`` rows.

        ``direction="up"`` follows links into the lot, back to its harvests;
        ``"down"`` follows them out of it, to the lots and exports it went into.
        A recursive query walks only the lots it reaches, through the
        ``links`` indexes, so the cost follows the size of the lineage, not of
        the log. Voided events' links are already gone.
        """
        if direction == "up":
            sql = (
                "WITH RECURSIVE reach(lot) AS (SELECT ? UNION "
                "SELECT l.src FROM reach CROSS JOIN links l ON l.dst = reach.lot) "
                "SELECT l.src, l.dst, l.kg, l.seq, l.time "
                "FROM reach CROSS JOIN links l ON l.dst = reach.lot ORDER BY l.seq, l.src, l.dst"
            )
        elif direction == "down":
            sql = (
                "WITH RECURSIVE reach(lot) AS (SELECT ? UNION "
                "SELECT l.dst FROM reach CROSS JOIN links l ON l.src = reach.lot) "
                "SELECT l.src, l.dst, l.kg, l.seq, l.time "
                "FROM reach CROSS JOIN links l ON l.src = reach.lot ORDER BY l.seq, l.src, l.dst"
            )
        else:
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        return self.conn.execute(sql, [code]).fetchall()

    def event_ids_at(self, seqs: list[int]) -> list[str]:
        """The event ids of the rows ``seqs``, in that order."""
        rows = dict(
            self.conn.execute(
                "SELECT seq, event_id FROM json_each(?) j JOIN events ON seq = j.value",
                [orjson.dumps(seqs).decode()],
            ).fetchall()
        )
        return [rows[q] for q in seqs]

    def ancestor_link_kgs(self, code: str) -> list[tuple[str, str, float]]:
        """``(src, dst, kg)`` for every link into ``code`` or into one of its ancestors.

        The links of :meth:`lineage_links` ``direction="up"``, only the
        columns shares need; rows of one (src, dst) pair come in log order.
        """
        return self.conn.execute(
            "WITH RECURSIVE reach(lot) AS (SELECT ? UNION "
            "SELECT l.src FROM reach CROSS JOIN links l ON l.dst = reach.lot) "
            "SELECT l.src, l.dst, l.kg FROM reach CROSS JOIN links l ON l.dst = reach.lot "
            "ORDER BY l.dst, l.src, l.seq",
            [code],
        ).fetchall()

    def lots_states(self, codes: Iterable[str]) -> dict[str, LotState]:
        """The states of the named lots that exist, by lot code (one indexed lookup each)."""
        rows = self.conn.execute(
            f"SELECT {LOT_COLUMNS} FROM json_each(?) j CROSS JOIN lots ON lots.lot = j.value",
            [orjson.dumps(sorted(set(codes))).decode()],
        ).fetchall()
        return {r[0]: LotState(*r) for r in rows}

    def lots_events(
        self, codes: Iterable[str], *, own_types: Iterable[str] | None = None
    ) -> Iterator[tuple[str, StoredEvent]]:
        """``(lot, event)`` for each named lot's non-void events, by lot, then time order.

        The event's ``role`` says how it involves the lot: ``subject``,
        ``input`` (it drew from the lot) or ``output`` (it formed the lot). An
        event shared by several lots is parsed once. ``own_types`` keeps only
        the lots' own events (not draws, role ``input``) of those types,
        filtered through the index so the others are never read or parsed.
        """
        parsed: dict[int, EventBase] = {}
        where, args = "", [orjson.dumps(sorted(set(codes))).decode()]
        if own_types is not None:
            where = "WHERE el.type IN (SELECT value FROM json_each(?)) AND el.role != 'input' "
            args.append(orjson.dumps(sorted(set(own_types))).decode())
        rows = self.conn.execute(
            "SELECT el.lot, el.role, e.seq, e.event_id, e.body "
            "FROM json_each(?) j CROSS JOIN event_lots el ON el.lot = j.value "
            f"JOIN events e ON e.seq = el.seq {where}ORDER BY el.lot, el.time, el.seq",
            args,
        )
        for lot, role, seq, eid, body in rows:
            ev = parsed.get(seq)
            if ev is None:
                ev = parsed[seq] = parse_event(orjson.loads(body), stored=True)
            yield lot, StoredEvent(seq, eid, ev, False, role)

    def own_event_bodies(
        self, codes: Iterable[str], types: Iterable[str]
    ) -> list[tuple[str, str, str, int, str]]:
        """``(lot, role, time key, seq, body)`` of the named lots' own events of ``types``.

        Own means the lot is the event's subject or output, not an input drawn
        into another lot; void events are left out. Rows come by lot, then time
        and seq. The body is the stored canonical JSON, unparsed: for readers
        that need a few fields of many events (bodies were validated on append).
        """
        return self.conn.execute(
            "SELECT el.lot, el.role, el.time, e.seq, e.body "
            "FROM json_each(?) j CROSS JOIN event_lots el ON el.lot = j.value "
            "JOIN events e ON e.seq = el.seq "
            "WHERE el.type IN (SELECT value FROM json_each(?)) AND el.role != 'input' "
            "ORDER BY el.lot, el.time, el.seq",
            [orjson.dumps(sorted(set(codes))).decode(), orjson.dumps(sorted(set(types))).decode()],
        ).fetchall()

    def voided_for_lots(self, codes: Iterable[str]) -> list[str]:
        """Ids of void events that named any of these lots, in log order, each once."""
        rows = self.conn.execute(
            "SELECT v.event_id FROM json_each(?) j CROSS JOIN voided v ON v.lot = j.value "
            "JOIN events e ON e.event_id = v.event_id GROUP BY v.event_id ORDER BY MIN(e.seq)",
            [orjson.dumps(sorted(set(codes))).decode()],
        ).fetchall()
        return [r[0] for r in rows]

    def link_inflows(self, codes: Iterable[str]) -> dict[str, float]:
        """For each named lot formed from inputs, the total kg on the links into it."""
        rows = self.conn.execute(
            "SELECT l.dst, SUM(l.kg) FROM json_each(?) j CROSS JOIN links l ON l.dst = j.value "
            "GROUP BY l.dst",
            [orjson.dumps(sorted(set(codes))).decode()],
        ).fetchall()
        return dict(rows)

    def leg_rows(self) -> Iterator[tuple[str, str, str, str, str]]:
        """Stream ``(lot, time, type, role, site)`` for every (lot, event) pair, by lot, time.

        One pass over the ``event_lots`` index: what delay statistics scan,
        without loading event bodies or building any graph.
        """
        yield from self.conn.execute(
            "SELECT lot, time, type, role, site FROM event_lots ORDER BY lot, time, seq"
        )

    def leg_scan(
        self, lot: str | None = None, *, marks: bool = True
    ) -> Iterator[tuple[str, str, str, str, str]]:
        """Stream ``(lot, time, type, role, site)`` for every (lot, event) pair.

        :meth:`leg_rows` without its sort: rows come in the order of the
        ``event_lots`` key, by lot, time, type, seq and role, so events of one
        lot at the same time come by type, not seq (sorting the whole scan by
        seq costs a third of it). With ``lot``, only that lot's rows, by
        time and seq. Without ``marks``, the whole scan leaves out dispatch
        and arrival rows (two rows in five: the legs' hours do not need them).
        """
        if not marks and lot is None:
            return iter(
                self.conn.execute(
                    "SELECT lot, time, type, role, site FROM event_lots "
                    "WHERE type NOT IN ('dispatch', 'arrival') "
                    "ORDER BY lot, time, type, seq, role"
                )
            )
        if lot is not None:
            return iter(
                self.conn.execute(
                    "SELECT lot, time, type, role, site FROM event_lots WHERE lot = ? "
                    "ORDER BY time, seq, type, role",
                    [lot],
                )
            )
        return iter(
            self.conn.execute(
                "SELECT lot, time, type, role, site FROM event_lots "
                "ORDER BY lot, time, type, seq, role"
            )
        )

    def open_lot_checkpoints(
        self, types: Iterable[str]
    ) -> list[tuple[str, float, str | None, str, str, str]]:
        """Lots with kg left, each with its latest own event of one of ``types``.

        Rows are ``(lot, kg_left, last_qc, type, time, site)``, oldest first. A
        lot has kg left when less than all of it was drawn by later inputs and
        exports (with the rules' 1e-6 relative tolerance); "own" means the lot
        was the event's subject or output, not an input drawn into another lot.
        """
        wanted = orjson.dumps(sorted(set(types))).decode()
        # CROSS JOIN: the open lots first, then each one's latest row (SQLite otherwise
        # scanned every event_lots row first: 10M events, 14.5 s -> 0.9 s).
        return self.conn.execute(
            "SELECT l.lot, l.kg - l.drawn_kg, l.last_qc, el.type, el.time, el.site "
            "FROM lots l CROSS JOIN event_lots el ON el.lot = l.lot AND el.seq = ("
            "  SELECT e2.seq FROM event_lots e2 WHERE e2.lot = l.lot AND e2.role != 'input' "
            "  AND e2.type IN (SELECT value FROM json_each(?)) "
            "  ORDER BY e2.time DESC, e2.seq DESC LIMIT 1) "
            "WHERE l.kg - l.drawn_kg > 1e-6 * max(1.0, l.kg) "
            "ORDER BY el.time, l.lot",
            [wanted],
        ).fetchall()

    # ------------------------------------------------------------------ what a batch needs

    def stored_among(self, eids: list[str]) -> set[str]:
        return _stored_among(self.conn, eids) if eids else set()

    def event_row(self, eid: str) -> tuple[str, bool] | None:
        row = self.conn.execute(
            "SELECT body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e WHERE event_id=?",
            [eid],
        ).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def seq_of(self, eid: str) -> int:
        return int(
            self.conn.execute("SELECT seq FROM events WHERE event_id=?", [eid]).fetchone()[0]
        )

    def epcis_by_hash(self, hash_id: str) -> list[tuple[str, str]]:
        return self.conn.execute(
            f"SELECT event_id, body FROM events WHERE type = 'epcis' AND {HASH_ID_SQL} = ?",
            [hash_id],
        ).fetchall()

    def voided_ids(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.conn.execute("SELECT DISTINCT event_id FROM voided"))

    def lot_has_void(self, lot: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM voided WHERE lot=? LIMIT 1", [lot]).fetchone()
            is not None
        )

    def delete_event_rows(self, seq: int, lots: list[str], formed: list[str], links: int) -> None:
        # Through the (lot, ...) keys, as there is no index on seq alone; if the
        # rows found are not the ones the event's facts say were written, every
        # row of the event goes by a scan, so none is ever left behind.
        c = self.conn
        before = c.total_changes
        c.executemany("DELETE FROM event_lots WHERE lot=? AND seq=?", [(lot, seq) for lot in lots])
        if c.total_changes - before != len(lots):
            c.execute("DELETE FROM event_lots WHERE seq=?", [seq])
        before = c.total_changes
        c.executemany("DELETE FROM links WHERE dst=? AND seq=?", [(lot, seq) for lot in formed])
        if c.total_changes - before != links:
            c.execute("DELETE FROM links WHERE seq=?", [seq])

    def lots_timelines(self, lots: list[str]) -> Iterator[tuple[str, str, str, str, str, int]]:
        return iter(
            self.conn.execute(
                "SELECT el.lot, el.time, el.type, el.role, el.site, el.seq "
                "FROM json_each(?) j CROSS JOIN event_lots el ON el.lot = j.value "
                "ORDER BY el.lot, el.time, el.seq, el.type, el.role",
                [orjson.dumps(lots).decode()],
            )
        )

    def replace_legs(self, lots: list[str], legs: list[tuple[Any, ...]]) -> None:
        c = self.conn
        removed: list[tuple[Any, ...]] = []
        if lots:
            # read, then deleted: no DELETE ... RETURNING, which SQLite has from 3.35 only
            named = [orjson.dumps(lots).decode()]
            removed = c.execute(
                "SELECT end_time, from_stage, to_stage, hours, transit_hours FROM legs "
                "WHERE lot IN (SELECT value FROM json_each(?))",
                named,
            ).fetchall()
            c.execute("DELETE FROM legs WHERE lot IN (SELECT value FROM json_each(?))", named)
        if legs:
            c.executemany("INSERT INTO legs VALUES (?,?,?,?,?,?,?,?,?,?)", legs)
        deltas = leg_day_deltas(removed, ((g[7], g[2], g[5], g[8], g[9]) for g in legs))
        if deltas:
            c.executemany(
                "INSERT INTO leg_days VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (day, from_stage, to_stage, band) DO UPDATE SET "
                "n = n + excluded.n, us = us + excluded.us, trucked = trucked + excluded.trucked, "
                "transit_us = transit_us + excluded.transit_us, wait_us = wait_us + excluded.wait_us",
                [(*key, *d) for key, d in deltas.items()],
            )
        if removed:
            c.executemany(
                "DELETE FROM leg_days WHERE day = ? AND from_stage = ? AND to_stage = ? "
                "AND band = ? AND n = 0",
                [key for key, d in deltas.items() if d[0] < 0],
            )

    def leg_days(
        self, by: str, lo_day: str | None, hi_day: str | None
    ) -> Iterator[tuple[Any, ...]]:
        conditions, params = window("day", lo_day, hi_day, "?")
        where = " AND ".join(conditions)
        key = {"stage": "", "month": "substr(day, 1, 7) || char(31) || "}[by]
        # The microseconds are summed in two parts (whole seconds, the rest), as a
        # platform's whole ledger can hold more than a 64-bit integer of them.
        rows = self.conn.execute(
            f"SELECT {key}from_stage || char(31) || to_stage, band, sum(n), "
            "sum(us / 1000000), sum(us % 1000000), sum(trucked), "
            "sum(transit_us / 1000000), sum(transit_us % 1000000), "
            "sum(wait_us / 1000000), sum(wait_us % 1000000) "
            f"FROM leg_days {'WHERE ' + where if where else ''} GROUP BY 1, 2",
            params,
        )
        M = 1_000_000
        return (
            (k, band, n, us_s * M + us_r, tr, t_s * M + t_r, w_s * M + w_r)
            for k, band, n, us_s, us_r, tr, t_s, t_r, w_s, w_r in rows
        )

    def leg_hours_in_band(
        self, frm: str, to: str, band: int, lo: str | None, hi: str | None
    ) -> list[float]:
        conditions, params = window("end_time", lo, hi, "?")
        # the expression of the index legs_band, spelled as it is there
        return [
            h
            for (h,) in self.conn.execute(
                "SELECT hours FROM legs INDEXED BY legs_band WHERE "
                + " AND ".join(
                    [
                        "from_stage = ?",
                        "to_stage = ?",
                        "CAST(hours / 4 AS INTEGER) = ?",
                        *conditions,
                    ]
                ),
                [frm, to, band, *params],
            )
        ]

    def legs_ending(self, lo: str | None, hi: str | None) -> Iterator[tuple[Any, ...]]:
        cols = (
            "lot, n, from_stage, from_site, start_time, to_stage, to_site, end_time, "
            "hours, transit_hours"
        )
        if lo is None and hi is None:  # the whole table, in its key's order
            return iter(self.conn.execute(f"SELECT {cols} FROM legs ORDER BY lot, n"))
        conditions, params = window("end_time", lo, hi, "?")
        where = " AND ".join(conditions)
        return iter(
            self.conn.execute(
                f"SELECT {cols} FROM legs INDEXED BY legs_end WHERE {where} ORDER BY lot, n",
                params,
            )
        )

    def legs_grouped(self, by: str, lo: str | None, hi: str | None) -> Iterator[tuple[Any, ...]]:
        conditions, params = window("end_time", lo, hi, "?")
        where = " AND ".join(conditions)
        sql = f"SELECT {_group_key(by, 'char(31)')}, hours, transit_hours FROM legs"
        if where and self.legs_window_is_large(where, params):
            # "+": not by the index
            sql += " WHERE " + " AND ".join(window("+end_time", lo, hi, "?")[0])
        elif where:
            sql += f" INDEXED BY legs_end WHERE {where}"
        # no ORDER BY: a sort of the whole window, for answers that do not depend on it
        return iter(self.conn.execute(sql, params))

    def legs_window_is_large(self, where: str, params: list[str]) -> bool:
        """Whether a window of legs is read faster by a scan of the table than through
        their ends' index.

        Each leg read through the index costs a look-up of its row, many times a
        scanned row (a million events: the whole table scanned in 0.38 s, July's
        28 % of the legs through the index in about 1.4 s, by a scan in 0.12 s;
        10M events: a window of 95 % of the legs took 27 s through the index, a
        month of 265,000 legs 1.8 s). So the index's entries in the window are
        counted, but only up to a 64th of the log's events (about a 32nd of the
        legs, near where the two ways cost the same): a count that costs less
        than the window's own read.
        """
        head = self.conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        enough = max(head // 64, 1000)
        counted = self.conn.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM legs INDEXED BY legs_end WHERE {where} LIMIT ?)",
            [*params, enough],
        ).fetchone()[0]
        return bool(counted >= enough)

    def lot_fold_rows(self, lot: str) -> list[tuple[str, str, str]]:
        return self.conn.execute(
            "SELECT e.event_id, e.body, el.role FROM event_lots el JOIN events e ON e.seq=el.seq "
            "WHERE el.lot=? ORDER BY el.seq",
            [lot],
        ).fetchall()

    def write(self, rows: Rows) -> None:
        c = self.conn
        if rows.events:
            c.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows.events)
        if rows.event_lots:
            c.executemany("INSERT INTO event_lots VALUES (?,?,?,?,?,?)", rows.event_lots)
        if rows.links:
            c.executemany("INSERT INTO links VALUES (?,?,?,?,?)", rows.links)
        if rows.voided:
            c.executemany("INSERT INTO voided VALUES (?,?,?,?)", rows.voided)
        if rows.lots_gone:
            c.executemany("DELETE FROM lots WHERE lot=?", [(lot,) for lot in rows.lots_gone])
        if rows.lots_live:
            c.executemany(
                f"INSERT OR REPLACE INTO lots ({LOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rows.lots_live,
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


def _execute(store: SqliteStorage, sql: str) -> None:
    store.conn.execute(sql)


_F = TypeVar("_F", bound=Callable[..., Any])


def _mapped(fn: _F) -> _F:
    """``fn`` with every :class:`sqlite3.Error` it raises mapped into the LottraceError tree.

    A constraint of the log (``IntegrityError``) is an
    :class:`~lottrace.errors.IntegrityViolation`; anything else (a locked,
    full, read-only or damaged file) a :class:`~lottrace.errors.LedgerError`
    naming the file. Generators are mapped while they are iterated.
    """

    def mapped_error(self: SqliteStorage, exc: sqlite3.Error) -> Exception:
        if isinstance(exc, sqlite3.IntegrityError):
            return IntegrityViolation(
                f"{self.path}: {exc}; nothing added (a bug in lottrace, or the "
                "ledger's tables were changed outside it: run 'lottrace verify')"
            )
        return LedgerError(f"ledger {self.path}: {exc}")

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(self: SqliteStorage, *args: Any, **kw: Any) -> Any:
            try:
                yield from fn(self, *args, **kw)
            except sqlite3.Error as exc:
                raise mapped_error(self, exc) from None

        return gen  # type: ignore[return-value]

    @functools.wraps(fn)
    def call(self: SqliteStorage, *args: Any, **kw: Any) -> Any:
        try:
            result = fn(self, *args, **kw)
        except sqlite3.Error as exc:
            raise mapped_error(self, exc) from None
        if isinstance(result, sqlite3.Cursor):  # a lazy read: map its errors too
            return _rows(self, result, mapped_error)
        return result

    return call  # type: ignore[return-value]


def _rows(
    store: SqliteStorage, cursor: sqlite3.Cursor, mapped_error: Callable[..., Exception]
) -> Iterator[Any]:
    try:
        yield from cursor
    except sqlite3.Error as exc:
        raise mapped_error(store, exc) from None


# Every public method of the backend (the Storage interface) maps its errors.
for _name, _fn in list(vars(SqliteStorage).items()):
    if (
        not _name.startswith("_")
        and inspect.isfunction(_fn)
        and _name
        not in (
            "scratch_derived",
            "read_snapshot",
        )
    ):
        setattr(SqliteStorage, _name, _mapped(_fn))
