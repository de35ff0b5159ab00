"""The ledger: an append-only, hash-chained SQLite log of events, and its derived tables.

This is the only module that speaks SQL. Its tables:

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
    append and can be rebuilt from the log alone (:meth:`Ledger.rebuild`).

A batch is one ``BEGIN IMMEDIATE`` transaction: all of it lands, or none.
Schema versions are ``sqlite_utils`` migrations recorded in the file itself.
A file that records a migration this lottrace does not know (a newer
lottrace wrote it) is refused before anything runs, and a migration is only
applied to a file whose schema is exactly what its recorded migrations make,
so a record deleted to have a migration run again is refused, not replayed.

:meth:`Ledger.verify` proves everything the queries read: every body, id and
chain link, the recorded head, the schema (``sqlite_master`` must equal what
the migrations make when applied to an empty in-memory database: no trigger,
index, view or table added, dropped or changed), and every derived row (the
verified log is folded again, as :meth:`Ledger.rebuild` folds it, into TEMP
tables, which SQLite keeps outside the ledger file, and each derived table is
compared with them; the first differing row is named by its key). :meth:`Ledger.rebuild`
repairs what it can: it drops what is not lottrace's, restores lottrace's
dropped triggers and indexes, and refolds the derived tables.

Opened with ``read_only=True`` (every command that only reads), a ledger is
opened ``mode=ro``, or ``immutable=1`` where SQLite cannot make the ``-shm``
beside it, and nothing is written to the file: no journal-mode switch, no
migration. ``verify`` never writes to the file either way.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import itertools
import multiprocessing
import os
import re
import sqlite3
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

if TYPE_CHECKING:
    import sqlite_utils

from .errors import (
    IntegrityViolation,
    InvalidEvent,
    LedgerError,
    LottraceError,
    RuleViolation,
    UnknownEvent,
    UnknownLot,
)
from .events import EpcisEvent, EventBase, canonical_json, event_id, parse_event, record_time
from .rules import (
    FOREIGN_STAGE,
    Facts,
    LotState,
    check,
    check_refolded,
    facts_of,
    fold,
    lots_of,
)

__all__ = [
    "BUSY_TIMEOUT_S",
    "EVENTS_TABLE_SQL",
    "AppendReport",
    "Ledger",
    "Prepared",
    "RuleWarning",
    "StoredEvent",
    "StoredIds",
    "VerifyReport",
    "prepare",
]

#: How long a writer waits for another process's batch to finish before giving up.
BUSY_TIMEOUT_S = 60.0
#: Rows buffered before they are written (and lot states flushed) inside a batch.
_CHUNK = 5000
#: SQLite page cache (MB) while a batch is appended: most of the log's id index and
#: the derived tables' keys at a million events, and import memory under 400 MB.
#: ``LOTTRACE_CACHE_MB`` sets it.
CACHE_MB = 192
#: Page cache (KiB) of the scratch tables ``verify`` refolds the log into.
_SCRATCH_CACHE_KIB = 32 * 1024
#: Lot states a batch keeps in memory (about 300 bytes each).
_STATES = 50_000
#: Events read ahead so their duplicates and lot states are looked up in one query each.
_LOOKAHEAD = 1000

#: Schema migrations, in order. ``sqlite_utils`` (which pulls in numpy) is
#: imported only when one is pending, so opening an up-to-date ledger stays cheap.
MIGRATION_NAMES = (
    "001_log_and_derived_tables",
    "002_head_in_meta",
    "003_drop_seq_indexes",
    "004_lot_base_kg",
    "005_epcis_id_indexes",
)
#: Migrations after which the derived tables are folded again from the log
#: (in the same transaction), because what a fold computes changed.
_REFOLD_AFTER = {"004_lot_base_kg"}


def _migrations() -> Any:
    import sqlite_utils

    migrations = sqlite_utils.Migrations("lottrace")
    for name, fn in zip(MIGRATION_NAMES, _MIGRATION_FUNCTIONS, strict=True):
        migrations(name=name)(fn)
    return migrations


def _applied(conn: sqlite3.Connection) -> list[str]:
    """The names of our migrations recorded in ``_sqlite_migrations``, in the order applied."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='_sqlite_migrations'"
    ).fetchone():
        return []
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = 'lottrace' ORDER BY rowid"
        )
    ]


def _pending(conn: sqlite3.Connection) -> bool:
    """Whether a migration of ours is not yet recorded in ``_sqlite_migrations``."""
    return not set(MIGRATION_NAMES) <= set(_applied(conn))


class _Schema(NamedTuple):
    """What the first ``k`` migrations make of an empty file."""

    #: ``name: (type, tbl_name, sql)`` of every object in ``sqlite_master`` (SQLite's own left out)
    objects: dict[str, tuple[str, str, str]]
    #: the ``meta`` keys the migrations write
    meta_keys: frozenset[str]


def _norm_sql(sql: str | None) -> str:
    """SQL text with its layout ignored, so reindented migration code still matches old files."""
    text = re.sub(r"\s+", " ", sql or "").strip()
    return re.sub(r" ?([(),]) ?", r"\1", text)


def _schema_of(conn: sqlite3.Connection, schema: str = "main") -> dict[str, tuple[str, str, str]]:
    return {
        name: (typ, tbl, _norm_sql(sql))
        for typ, name, tbl, sql in conn.execute(
            f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_master "
            "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    }


def _ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _migrated_memory(k: int) -> sqlite3.Connection:
    """An in-memory database that the first ``k`` of our migrations were applied to."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    if k:
        import sqlite_utils

        stop = MIGRATION_NAMES[k] if k < len(MIGRATION_NAMES) else None
        _migrations().apply(sqlite_utils.Database(conn), stop_before=stop)
    return conn


class _Executes:
    """The one method of ``sqlite_utils.Database`` our migrations call."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


@functools.cache
def _objects_made() -> dict[str, tuple[str, str, str]]:
    """The objects every migration makes (not sqlite_utils' ``_sqlite_migrations``),
    made by running them on an in-memory database without sqlite_utils."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for fn in _MIGRATION_FUNCTIONS:
            fn(_Executes(conn))
        return _schema_of(conn)
    finally:
        conn.close()


@functools.cache
def _expected_schema(k: int) -> _Schema:
    """The schema lottrace gives a file once its first ``k`` migrations ran: read from
    the migrations themselves, applied to an empty in-memory database."""
    conn = _migrated_memory(k)
    try:
        keys = frozenset(r[0] for r in conn.execute("SELECT key FROM meta")) if k else frozenset()
        return _Schema(_schema_of(conn), keys)
    finally:
        conn.close()


_KIND_ORDER = {"table": 0, "index": 1, "trigger": 2, "view": 3}
#: Tables that hold the log and its records: a rebuild cannot restore them.
_LOG_TABLES = ("events", "meta", "_sqlite_migrations")


def _schema_differences(
    actual: dict[str, tuple[str, str, str]], expected: dict[str, tuple[str, str, str]]
) -> list[tuple[str, str, str]]:
    """``(kind, name, what)`` for each object that differs, tables first, then by name."""
    found = []
    for name in actual.keys() | expected.keys():
        a, e = actual.get(name), expected.get(name)
        if a == e:
            continue
        kind = (a or e or ("table",))[0]
        if e is None:
            on = f" on {a[1]}" if a and a[0] in ("index", "trigger") else ""
            what = f"{kind} {name}{on} is not lottrace's (added behind its back)"
        elif a is None:
            what = f"lottrace's {kind} {name} is missing (dropped behind its back)"
        else:
            what = f"{kind} {name} is not as lottrace made it (changed behind its back)"
        found.append((kind, name, what))
    return sorted(found, key=lambda f: (_KIND_ORDER.get(f[0], 9), f[1]))


class _NeedsUpgrade(LedgerError):
    """A ledger opened read-only needs a migration first (see :meth:`Ledger.reader`)."""


#: The log's table as the first migration creates it (bench/run.py builds
#: its raw-SQLite baseline from it, so the two cannot drift).
EVENTS_TABLE_SQL = """CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            time TEXT NOT NULL,
            lot TEXT,
            body TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL)"""


def _m001(db: sqlite_utils.Database) -> None:
    for sql in (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        EVENTS_TABLE_SQL,
        """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
           BEGIN SELECT RAISE(ABORT, 'lottrace: the event log is append-only'); END""",
        """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
           BEGIN SELECT RAISE(ABORT, 'lottrace: the event log is append-only'); END""",
        """CREATE TABLE lots (
            lot TEXT PRIMARY KEY,
            created_by TEXT NOT NULL,
            stage INTEGER NOT NULL,
            first_time TEXT NOT NULL,
            last_time TEXT NOT NULL,
            kg REAL NOT NULL,
            drawn_kg REAL NOT NULL,
            last_qc TEXT,
            last_site TEXT NOT NULL,
            last_event TEXT NOT NULL,
            n_events INTEGER NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE event_lots (
            lot TEXT NOT NULL,
            time TEXT NOT NULL,
            type TEXT NOT NULL,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL,
            site TEXT NOT NULL,
            PRIMARY KEY (lot, time, type, seq, role)) WITHOUT ROWID""",
        "CREATE INDEX event_lots_seq ON event_lots (seq)",
        """CREATE TABLE links (
            dst TEXT NOT NULL,
            src TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kg REAL NOT NULL,
            time TEXT NOT NULL,
            PRIMARY KEY (dst, src, seq)) WITHOUT ROWID""",
        "CREATE INDEX links_src ON links (src, dst)",
        "CREATE INDEX links_seq ON links (seq)",
        """CREATE TABLE voided (
            event_id TEXT NOT NULL,
            lot TEXT NOT NULL,
            by_event_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (event_id, lot)) WITHOUT ROWID""",
        "CREATE INDEX voided_lot ON voided (lot)",
    ):
        db.execute(sql)
    db.execute("INSERT INTO meta VALUES ('ledger_id', ?)", [uuid.uuid4().hex])


def _m002(db: sqlite_utils.Database) -> None:
    # The head (seq and hash) is recorded in ``meta`` with every batch, so
    # ``verify`` notices rows cut off the tail or added behind lottrace's back.
    ledger_id = db.execute("SELECT value FROM meta WHERE key='ledger_id'").fetchone()[0]
    row = db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, head = row or (0, hashlib.sha256(f"lottrace:{ledger_id}".encode()).hexdigest())
    db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", [f"{seq} {head}"])


def _m003(db: sqlite_utils.Database) -> None:
    # Only voiding an event looked rows up by seq alone, and it knows the event's
    # lots: the (lot, ...) keys serve it. The two indexes were 12 % of the file
    # and of what an import writes.
    db.execute("DROP INDEX IF EXISTS event_lots_seq")
    db.execute("DROP INDEX IF EXISTS links_seq")


def _m004(db: sqlite_utils.Database) -> None:
    # The lowest weight stated for each lot: restatements are measured against
    # it, not the last one. Filled by the refold that follows (_REFOLD_AFTER),
    # which also applies the rules' new fold of foreign events.
    db.execute("ALTER TABLE lots ADD COLUMN base_kg REAL NOT NULL DEFAULT 0")


#: The expressions the two indexes of migration 005 are on: a foreign event's
#: Event Hash ID and its partner's eventID. Queries must spell them exactly so.
_HASH_ID_SQL = "json_extract(body, '$.hash_id')"
_PARTNER_ID_SQL = "json_extract(body, '$.partner_event_id')"


def _m005(db: sqlite_utils.Database) -> None:
    # Foreign EPCIS events are found by their Event Hash ID (a second capture of
    # the same event) and by their partner's eventID (history/export --event-id,
    # correctiveEventIDs). Partial indexes: only 'epcis' rows are in them.
    for name, expr in (("events_hash_id", _HASH_ID_SQL), ("events_partner_id", _PARTNER_ID_SQL)):
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON events ({expr}) WHERE type = 'epcis'")


#: The migration functions, in the order of :data:`MIGRATION_NAMES`.
_MIGRATION_FUNCTIONS: tuple[Callable[[Any], None], ...] = (_m001, _m002, _m003, _m004, _m005)


DERIVED_TABLES = ("lots", "event_lots", "links", "voided")
_LOT_COLUMNS = (
    "lot, created_by, stage, first_time, last_time, kg, drawn_kg, "
    "last_qc, last_site, last_event, n_events, base_kg"
)


@dataclass(frozen=True)
class RuleWarning:
    """A warning raised on append: where, which rule, what."""

    where: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: warning [{self.rule}] {self.message}"


@dataclass
class AppendReport:
    """What one batch did."""

    added: int = 0
    duplicates: int = 0
    warnings: list[RuleWarning] = field(default_factory=list)
    warning_count: int = 0
    head: str = ""
    #: Events met again that a correction voided: skipped, not counted as duplicates.
    voided_again: int = 0
    #: ``voided_again`` by input file (the part of ``where`` before ``:LINE``).
    voided_again_in: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "duplicates": self.duplicates,
            "voided_again": self.voided_again,
            "warnings": self.warning_count,
            "head": self.head,
        }


@dataclass(frozen=True)
class VerifyReport:
    """A passed verification: how many events, and the head of the chain."""

    events: int
    head: str


@dataclass(frozen=True)
class StoredEvent:
    """An event as the ledger holds it."""

    seq: int
    event_id: str
    event: EventBase
    void: bool = False
    role: str = "subject"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"seq": self.seq, "event_id": self.event_id}
        d.update(self.event.model_dump(mode="json", exclude_none=True))
        if self.void:
            d["void"] = True
        return d


class Prepared(NamedTuple):
    """One event ready for the log: its origin, canonical body, id and facts.

    Everything here follows from the event alone, so it can be computed in
    another process (:mod:`lottrace.pipeline`) while this one checks rules
    against the ledger and writes.
    """

    where: str  #: e.g. ``file.csv:12``, for messages
    body: str  #: canonical JSON
    eid: str  #: sha256 of the body
    facts: Facts
    #: Set by an import's reader process: ``(reader, n, new)``. ``reader`` names
    #: the reader and the ledger head it looked ids up at (:class:`StoredIds`),
    #: ``n`` counts its events, and ``new`` is True if this id was neither in the
    #: ledger then nor earlier in the reader's input, False if it was in the
    #: ledger, None if the reader does not know (it may have been earlier in the
    #: input, or the reader was behind the writer and left the look-up to it).
    #: A batch trusts marks only while all its events so far came from one
    #: reader, in its order, and that reader looked at the head the batch
    #: starts from.
    mark: tuple[str, int, bool | None] | None = None


class WholeInputs(NamedTuple):
    """An event whose ``inputs`` name lots without kilos: each gives all it has left.

    ``record`` is the event as a plain dict, its inputs ``{"lot": ...}`` for
    the ``whole`` lots (and ``{"lot", "kg"}`` for the others). It is resolved
    in the batch that appends it, against the lots' state at that point
    (:meth:`_Batch.resolve`), into an ordinary event; the event's ``kg``, if
    it states one, must match the inputs' sum within the 2 % scale tolerance.
    """

    record: dict[str, Any]
    whole: tuple[str, ...]


#: ``Prepared.eid`` of a :class:`WholeInputs` not yet resolved (its body is the record).
UNRESOLVED = ""


def prepare(where: str, ev: EventBase | WholeInputs) -> Prepared:
    """The :class:`Prepared` form of a validated event, the one door into the log.

    A foreign EPCIS event is checked here as a document's event would be
    (:func:`_check_foreign`): one whose ``hash_id`` is not its CBV 2.0 Event
    Hash ID is refused (rule ``epcis-hash``). A :class:`WholeInputs` is
    carried as it is (``eid`` empty, its facts those of the event with one kg
    per whole lot), for the batch to resolve.
    """
    if isinstance(ev, WholeInputs):
        rec = ev.record
        stand_in = {**rec, "inputs": [{"kg": 1, **i} for i in rec["inputs"]]}
        facts = facts_of(parse_event(stand_in, where=where))
        return Prepared(where, orjson.dumps([rec, list(ev.whole)]).decode(), UNRESOLVED, facts)
    if isinstance(ev, EpcisEvent):
        _check_foreign(where, ev)
    body = canonical_json(ev)
    return Prepared(where, body.decode(), event_id(body), facts_of(ev))


#: The largest quantity in kg a foreign event may state (a million tonnes): a bound
#: that keeps every sum of weights finite.
MAX_FOREIGN_KG = 1e9


def _check_foreign(where: str, ev: EpcisEvent) -> None:
    """A ``type: epcis`` event passes what ``lottrace epcis import`` checks of a document.

    Its ``event`` is a well-formed EPCIS 2.0 event (GS1's JSON Schema rules,
    ids as URIs), its ``time`` is the event's ``eventTime``, its quantities
    are finite, and its ``hash_id`` is its Event Hash ID, recomputed.
    """
    from .epcis_check import EPCIS_CONTEXT, first_problem
    from .epcis_hash import event_hash_id

    context: list[Any] = [EPCIS_CONTEXT]
    if ev.context:
        context.append(ev.context)
    doc = {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2000-01-01T00:00:00Z",
        "epcisBody": {"eventList": [ev.event]},
    }
    problem = first_problem(doc)
    if problem is not None:
        path = problem[0].replace("$.epcisBody.eventList[0]", "event", 1)
        raise InvalidEvent(f"field '{path}': {problem[1]}", where=where, field=path)
    stated = record_time(str(ev.event.get("eventTime", "")))
    try:
        same = datetime.fromisoformat(stated) == ev.time
    except ValueError:
        same = False
    if not same:
        raise InvalidEvent(
            f"field 'time': {ev.time.isoformat()} is not the event's eventTime {stated}",
            where=where,
            field="time",
        )
    for name in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        for i, q in enumerate(ev.event.get(name) or ()):
            quantity = q.get("quantity") if isinstance(q, dict) else None
            if isinstance(quantity, int | float) and not quantity <= MAX_FOREIGN_KG:
                raise InvalidEvent(
                    f"field 'event.{name}[{i}].quantity': {quantity!r} is more than "
                    f"{MAX_FOREIGN_KG:.0e} (a million tonnes)",
                    where=where,
                    field=f"event.{name}[{i}].quantity",
                )
    try:
        computed = event_hash_id(ev.event, ev.context)
    except ValueError as exc:
        raise RuleViolation(
            f"its Event Hash ID cannot be computed: {exc}",
            rule="epcis-hash",
            where=where,
            field="event",
        ) from None
    if computed != ev.hash_id:
        raise RuleViolation(
            f"hash_id {ev.hash_id} is not the event's Event Hash ID {computed}",
            rule="epcis-hash",
            where=where,
            field="hash_id",
        )


#: Ledger files this process has open as a :class:`Ledger`, by (device, inode).
_OPEN_HERE: Counter[tuple[int, int]] = Counter()


def _file_key(path: str | os.PathLike[str]) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def open_here(path: str | os.PathLike[str]) -> bool:
    """Whether this process has the ledger file at ``path`` open as a :class:`Ledger`."""
    try:
        return _OPEN_HERE[_file_key(path)] > 0
    except OSError:
        return False


def _head_text(seq: int, head: str) -> str:
    """A head as ``meta`` records it (``seq hash``), and as the reader's marks name it."""
    return f"{seq} {head}"


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


class StoredIds:
    """Which event ids a ledger holds, as of its recorded head, for another process.

    An import reads its input in a second process (:mod:`lottrace.pipeline`),
    which opens one of these after it forks, in its own read-only connection
    that stays on one snapshot, and marks each event whose id is neither in
    the ledger nor earlier in the input as new (``Prepared.mark``), so the
    writer does not look those ids up again. The writer trusts the marks only
    if its batch starts from this same :attr:`head`: a batch that another
    process added in between makes every mark stale, and every id is looked up.
    A process must not open one for a file it has open as a :class:`Ledger`
    (:func:`open_here`): SQLite's record of its locks on a file is shared by
    the process's connections, and a forked child inherits the parent's.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._conn = sqlite3.connect(_read_only_uri(path), uri=True)
        try:
            # Outside WAL mode this reader's lock would stall the writer's commit.
            wal = self._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            self._conn.execute("BEGIN")  # one snapshot for the head and every look-up
            row = self._conn.execute("SELECT value FROM meta WHERE key='head'").fetchone()
        except sqlite3.Error:
            self._conn.close()
            raise
        why = ""
        if not wal:
            why = "is not in WAL mode"
        elif row is None:
            why = "has no recorded head (an old schema)"
        else:  # a log that is not at its recorded head is for the writer to refuse
            last = self._conn.execute(
                "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            at = _head_text(*last) if last else None
            if row[0] != at and not (at is None and row[0].startswith("0 ")):
                why = "is not at the head lottrace recorded"
        if why:
            self._conn.close()
            raise LedgerError(f"{path} {why}")
        #: The recorded head, ``seq hash``, as :meth:`Ledger.append_prepared` compares it.
        self.head: str = row[0]
        #: Whether the ledger was empty: then :meth:`among` costs nothing.
        self.empty = self.head.startswith("0 ")

    def among(self, eids: list[str]) -> set[str]:
        """Which of ``eids`` the ledger held at :attr:`head`."""
        return set() if self.empty else _stored_among(self._conn, eids)

    def close(self) -> None:
        self._conn.close()


def _stored_facts(body: str | bytes) -> Facts:
    """The facts of an event as the log stores it."""
    return facts_of(parse_event(orjson.loads(body), stored=True))


def _cache_mb() -> int:
    value = os.environ.get("LOTTRACE_CACHE_MB", "").strip()
    if not value:
        return CACHE_MB
    if not value.isdigit() or not 1 <= int(value) <= 1_000_000:
        raise LedgerError(
            f"LOTTRACE_CACHE_MB must be a whole number of megabytes (1 or more), not {value!r}"
        )
    return int(value)


def _chain(prev: str, eid: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev + eid)).hexdigest()


class Ledger:
    """An open ledger file.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "doc.db")
    >>> with Ledger.create(path) as ledger:
    ...     ledger.stats()["events"]
    0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        read_only: bool = False,
        _create: bool = False,
    ):
        self.path = Path(path)
        #: Opened with ``read_only``: nothing is ever written to the file (no
        #: journal-mode switch, no migration), so a file on a read-only mount,
        #: without write permission, in a read-only folder or on a full disk
        #: can be read and verified.
        self.read_only = read_only
        #: What the last :meth:`rebuild` dropped or restored to make the schema lottrace's.
        self.repaired: list[str] = []
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
        self._open(busy_timeout_s, _create)

    @classmethod
    def reader(cls, path: str | os.PathLike[str], *, upgrade: bool = True) -> Ledger:
        """Open the ledger read-only, to read or verify it.

        A ledger written by an older lottrace needs its schema brought up to
        date (a migration) before it can be read. With ``upgrade`` that is
        done first, through a short-lived writable open, if the file can be
        written; ``verify`` passes ``upgrade=False``, since it never writes.
        """
        try:
            return cls(path, read_only=True)
        except _NeedsUpgrade:
            if not upgrade or not os.access(path, os.W_OK):
                raise
        cls(path).close()  # migrates, in one transaction
        return cls(path, read_only=True)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Ledger:
        """Create the ledger at ``path`` (or open it), and bring its schema up to date.

        An existing file is only ever opened if it is empty or already a
        lottrace ledger: another program's SQLite file is left untouched.
        """
        p = Path(path)
        if not p.exists():
            if not p.parent.is_dir():
                raise LedgerError(f"cannot create {p}: folder {p.parent} does not exist")
            try:
                p.touch()
            except OSError as exc:
                raise LedgerError(f"cannot create {p}: {exc.strerror}") from None
        return cls(p, _create=True)

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
            key = _file_key(self.path)
            if self.read_only:
                self.conn = self._connect_read_only(busy_timeout_s)
            else:
                self._uri = _read_only_uri(self.path)
                self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout_s)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open {self.path}: {exc}") from None
        _OPEN_HERE[key] += 1  # see open_here; released by close() or, failing that, by GC
        self._release = weakref.finalize(self, _OPEN_HERE.subtract, [key])
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
                if _pending(self.conn):
                    self._migrate()
            self._ledger_id = self.conn.execute(
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
        applied = _applied(self.conn)
        newer = [n for n in applied if n not in MIGRATION_NAMES]
        if newer:
            raise LedgerError(
                f"{self.path} was written by a newer lottrace (migration {newer[0]}); "
                "upgrade lottrace"
            )
        k = 0
        while k < len(MIGRATION_NAMES) and MIGRATION_NAMES[k] in applied:
            k += 1
        if k == len(MIGRATION_NAMES):
            return
        later = [n for n in MIGRATION_NAMES[k + 1 :] if n in applied]
        if later:
            raise IntegrityViolation(
                f"{self.path}: migration record {MIGRATION_NAMES[k]} is missing from "
                f"_sqlite_migrations, but the later {later[0]} is recorded (deleted behind "
                "lottrace's back, to have the migration run again); nothing was changed. "
                "Restore the file from a backup and check it with 'lottrace verify --expect HASH'"
            )
        self._check_schema(k)
        if self.read_only:
            raise _NeedsUpgrade(
                f"{self.path} was written by an older lottrace (migration "
                f"{MIGRATION_NAMES[k]} not yet applied) and is opened read-only: "
                "run 'lottrace init' on it (or on a writable copy) to upgrade it"
            )

    def _check_schema_quickly(self) -> None:
        """:meth:`_check_schema` for an append: the same objects, compared without
        importing sqlite_utils (what its own ``_sqlite_migrations`` table is made of is
        left to ``verify``), so ``lottrace log`` stays quick."""
        actual = {
            name: obj
            for name, obj in _schema_of(self.conn).items()
            if obj[1] != "_sqlite_migrations"
        }
        differences = _schema_differences(actual, _objects_made())
        if differences:
            kind, name, what = differences[0]
            repair = "" if kind == "table" and name in _LOG_TABLES else "; run 'lottrace rebuild'"
            raise IntegrityViolation(f"{self.path}: schema: {what}{repair}")

    def _check_schema(self, k: int = len(MIGRATION_NAMES)) -> None:
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
        expected = _expected_schema(k)
        actual = _schema_of(self.conn)
        if k == 0:
            actual.pop("_sqlite_migrations", None)
        differences = _schema_differences(actual, expected.objects)
        recorded = f" (migrations up to {MIGRATION_NAMES[k - 1]})" if k else " (no migrations)"
        if differences:
            kind, name, what = differences[0]
            if k < len(MIGRATION_NAMES):
                raise IntegrityViolation(
                    f"{self.path}: schema: {what}; it is not what the migrations recorded "
                    f"in it make{recorded}: a migration record was deleted behind lottrace's back"
                )
            repair = "" if kind == "table" and name in _LOG_TABLES else "; run 'lottrace rebuild'"
            raise IntegrityViolation(f"{self.path}: schema: {what}{repair}")
        if "meta" in actual:
            all_keys = _expected_schema(len(MIGRATION_NAMES)).meta_keys
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

            done = set(_applied(self.conn))
            _migrations().apply(sqlite_utils.Database(self.conn))
            if "001_log_and_derived_tables" in done and _REFOLD_AFTER - done:
                self._ledger_id = self.conn.execute(
                    "SELECT value FROM meta WHERE key='ledger_id'"
                ).fetchone()[0]
                for t in DERIVED_TABLES:
                    self.conn.execute(f"DELETE FROM {t}")
                self._fold_log()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()
        self._release()  # once: a finalizer runs at most once

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ chain

    @property
    def genesis(self) -> str:
        """The hash the chain starts from: sha256 of this ledger's random id."""
        return hashlib.sha256(f"lottrace:{self._ledger_id}".encode()).hexdigest()

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest event, or (0, genesis) for an empty log."""
        row = self.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, self.genesis)

    def verify(self, *, expect: str | None = None, workers: int | None = None) -> VerifyReport:
        """Recompute every event id and the whole chain; raise on the first bad row.

        Then the schema must be exactly what lottrace's migrations make (no
        trigger, index, table or view added, dropped or changed), and the
        derived tables must hold exactly what folding the verified log gives
        (:meth:`_check_derived`): what every query reads is proven, not only
        the log. Nothing is ever written to the file.

        ``expect`` is a head hash published earlier (``verify --anchor``): the
        chain must still pass through it. Each body is hashed on its own, so
        a large log is checked in ``workers`` processes (default: one per
        core, at most 4, from 200,000 events), each over a range of rows; the
        seams between ranges are checked here. The first bad row is named
        either way. It reads one snapshot (a read transaction): a batch
        another process commits meanwhile is neither half-seen nor mistaken
        for a cut tail.
        """
        own = not self.conn.in_transaction
        if own:
            # One read snapshot: row count, recorded head, schema and derived rows agree.
            self.conn.execute("BEGIN")
        try:
            report = self._verify_snapshot(expect, workers)
            self._check_schema()
            self._check_derived()
            return report
        finally:
            if own:
                self.conn.execute("COMMIT")

    def _verify_snapshot(self, expect: str | None, workers: int | None) -> VerifyReport:
        genesis = self.genesis
        first, last, count = self.conn.execute(
            "SELECT MIN(seq), MAX(seq), COUNT(*) FROM events"
        ).fetchone()
        if workers is None:
            workers = min(os.cpu_count() or 1, 4) if count >= _PARALLEL_VERIFY else 1
        if workers < 2 or count < 2 * workers or first != 1 or last != count:
            cur = self.conn.execute(_VERIFY_SQL + " ORDER BY seq")
            part = _check_rows(cur, genesis, 1, expect)
            parts = [part]
        else:
            step = -(-count // workers)
            bounds = [(lo, min(lo + step - 1, count)) for lo in range(1, count + 1, step)]
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(len(bounds)) as pool:
                parts = pool.starmap(
                    _verify_range, [(self._uri, lo, hi, expect) for lo, hi in bounds]
                )
        failures = [p.failure for p in parts if p.failure is not None]
        prev = genesis
        for p in parts:  # the seams: each range starts where the one before ended
            if p.rows and p.first_prev != prev:
                failures.append((p.first_seq, 3, _prev_msg(p.first_seq)))
            prev = p.last_hash
        if failures:
            seq, _stage, message = min(failures)
            raise IntegrityViolation(message, seq=seq)
        n = sum(p.rows for p in parts)
        self._check_recorded_head(n)
        if not (expect is None or expect == genesis or any(p.saw_expect for p in parts)):
            raise IntegrityViolation(
                f"the log never reached the expected head {expect}: "
                "events after it were removed, or this is another ledger"
            )
        return VerifyReport(events=n, head=prev)

    def _check_recorded_head(self, n: int) -> None:
        """Compare a verified chain of ``n`` rows with the head lottrace recorded.

        Called once every row's hash is known to be right, so the stored hash
        at the recorded seq can be trusted.
        """
        recorded_seq, recorded_head = self._recorded_head()
        if recorded_seq > n:
            raise IntegrityViolation(
                f"row seq {n + 1}: missing; the log ends at seq {n} but lottrace recorded "
                f"head seq {recorded_seq} (rows were cut off the tail)",
                seq=n + 1,
            )
        if recorded_seq < n:
            raise IntegrityViolation(
                f"row seq {recorded_seq + 1}: not written by lottrace; it recorded head seq "
                f"{recorded_seq} but the log has {n} rows (rows were added behind its back)",
                seq=recorded_seq + 1,
            )
        found = self.genesis
        if recorded_seq:
            found = self.conn.execute(
                "SELECT hash FROM events WHERE seq = ?", [recorded_seq]
            ).fetchone()[0]
        if found != recorded_head:
            raise IntegrityViolation(
                f"row seq {n}: the chain's head differs from the head lottrace recorded "
                "(the chain was rewritten at or before this row)",
                seq=n,
            )

    def _recorded_head(self) -> tuple[int, str]:
        """The ``(seq, hash)`` that the last batch recorded in ``meta``."""
        value = self.meta("head") or ""
        seq, _, head = value.partition(" ")
        if not seq.isdigit() or len(head) != 64:
            state = "malformed" if value else "missing"
            raise IntegrityViolation(f"the head recorded in {self.path}'s meta table is {state}")
        return int(seq), head

    # ------------------------------------------------------------------ append

    def append(
        self,
        items: Iterable[tuple[str, EventBase]],
        *,
        now: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> AppendReport:
        """Append a batch of ``(where, event)`` pairs atomically.

        ``where`` names the event's origin (``file.csv:12``) for messages. An
        event already in the ledger is skipped and counted as a duplicate. The
        first rule broken raises :class:`RuleViolation` and nothing is written.
        """
        return self.append_prepared(
            (prepare(where, ev) for where, ev in items), now=now, progress=progress
        )

    def append_prepared(
        self,
        items: Iterable[Prepared],
        *,
        now: datetime | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> AppendReport:
        """:meth:`append` for events already :func:`prepare`-d (by another process, say).

        The facts are trusted to be those of the body, as :func:`prepare` makes
        them: the rules and the derived tables read the facts, the log stores the body.
        The cyclic garbage collector is off, for the whole process, until the
        batch ends.
        """
        now = now or datetime.now(UTC)
        report = AppendReport()
        # The indexes of a large log outgrow SQLite's default 2 MB page cache,
        # and every id and lot lookup then reads from disk.
        cache_kib = _cache_mb() * 1024
        self._begin()
        cache = self.conn.execute("PRAGMA cache_size").fetchone()[0]
        self.conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        # Appending makes no reference cycles (tests/test_ledger.py checks), so the
        # cyclic collector would find nothing; its full passes over the cached lot
        # states and buffered rows took a tenth of a large import. (A bad row read
        # in this process leaves its exception's cycle, kept until the batch ends,
        # as the row's report is.)
        collecting = gc.isenabled()
        gc.disable()
        try:
            # Nothing is appended through a trigger or index planted behind our back.
            self._check_schema_quickly()
            batch = _Batch(self, report, now)
            if (batch.seq, batch.prev) != self._recorded_head():
                raise IntegrityViolation(
                    f"{self.path}: the log's head is not the one lottrace recorded; "
                    "nothing added (run 'lottrace verify')"
                )
            chunk: list[Prepared] = []
            try:
                for item in items:
                    chunk.append(item)
                    if len(chunk) == _LOOKAHEAD:
                        batch.add_many(chunk)
                        chunk.clear()
                        if progress is not None:
                            progress(_LOOKAHEAD)
            except LottraceError:
                # The input failed part-way. Check the events read before it
                # first, so an earlier broken rule is the one reported, as it
                # would be without the lookahead. Nothing is written either way.
                batch.add_many(chunk)
                raise
            batch.add_many(chunk)
            batch.flush()
            report.head = batch.prev
            if report.added:
                self.conn.execute(
                    "UPDATE meta SET value=? WHERE key='head'", [_head_text(batch.seq, batch.prev)]
                )
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError):  # a constraint of the log
                raise IntegrityViolation(
                    f"{self.path}: {exc}; nothing added (a bug in lottrace, or the "
                    "ledger's tables were changed outside it: run 'lottrace verify')"
                ) from None
            raise
        finally:
            if collecting:
                gc.enable()
            self.conn.execute(f"PRAGMA cache_size={int(cache)}")
        return report

    def _begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(
                f"{self.path} stayed locked by another writer for more than "
                f"{self.busy_timeout_s:g} s: {exc}"
            ) from None

    # ------------------------------------------------------------------ derived tables

    def rebuild(self) -> int:
        """Put the schema back to lottrace's and fold the whole log again, atomically.

        Every trigger, index, view or table that lottrace's migrations do not
        make is dropped first (a trigger planted on a derived table could
        otherwise rewrite what the rebuild writes), lottrace's own triggers and
        indexes that were dropped are made again, and the derived tables are
        dropped and created anew from the migrations' definitions, then filled
        by folding the log. What was removed or restored is in
        :attr:`repaired`. The log's own tables (``events``, ``meta``,
        ``_sqlite_migrations``) cannot be rebuilt: if one of them is not as
        lottrace made it, nothing is changed and :class:`IntegrityViolation`
        says so.
        """
        if self.read_only:
            raise LedgerError(f"{self.path} is open read-only: rebuild needs to write it")
        self._begin()
        try:
            self.repaired = self._restore_schema()
            n = self._fold_log()
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        return n

    def _restore_schema(self) -> list[str]:
        """Inside a write transaction: make the schema exactly lottrace's, derived tables empty."""
        expected = _expected_schema(len(MIGRATION_NAMES)).objects
        actual = _schema_of(self.conn)
        for name in _LOG_TABLES:
            if actual.get(name) != expected[name]:
                raise IntegrityViolation(
                    f"{self.path}: table {name} is not as lottrace made it, and rebuild "
                    "cannot restore the log; nothing was changed"
                )
        done: list[str] = []
        # Triggers, views and indexes first (a trigger or view may name a table),
        # then tables; an object of lottrace's own that was changed goes too, and
        # is made again below.
        for kind, name, _what in _schema_differences(actual, expected):
            if name in actual and kind in ("trigger", "view", "index"):
                self.conn.execute(f"DROP {kind.upper()} IF EXISTS {_ident(name)}")
                done.append(f"dropped {kind} {name}")
        for kind, name, _what in _schema_differences(_schema_of(self.conn), expected):
            if kind == "table" and name not in expected:
                self.conn.execute(f"DROP TABLE {_ident(name)}")
                done.append(f"dropped table {name}")
        for t in DERIVED_TABLES:  # with their indexes and any trigger on them
            self.conn.execute(f"DROP TABLE IF EXISTS {t}")
        memory = _migrated_memory(len(MIGRATION_NAMES))
        try:
            made = memory.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type = 'table' DESC, rowid"
            ).fetchall()
        finally:
            memory.close()
        present = _schema_of(self.conn)
        for kind, name, tbl, create in made:
            if name not in present:
                self.conn.execute(create)
                if tbl not in DERIVED_TABLES:
                    done.append(f"restored {kind} {name}")
        return done

    def _fold_log(self) -> int:
        """Fold every event of the log into the (empty) derived tables; the count."""
        voided = dict(self._scan_corrections())
        report = AppendReport()
        batch = _Batch(self, report, datetime.now(UTC), rebuilding=True)
        n = 0
        # Streamed: a cursor on the log while the batch writes the derived tables.
        for seq, eid, body in self.conn.execute(
            "SELECT seq, event_id, body FROM events ORDER BY seq"
        ):
            batch.derive(seq, eid, _stored_facts(body), void=eid in voided)
            n += 1
        batch.flush()
        return n

    def _check_derived(self) -> None:
        """Fold the log again into scratch tables and compare every derived table with them.

        Called inside :meth:`verify`'s read snapshot, once the log and the
        schema are verified. The scratch tables are TEMP tables of this
        connection (SQLite keeps them in a private temporary file, never in
        the ledger, so a read-only ledger can be checked and memory stays
        bounded by the page cache); their names shadow the derived tables', so
        the fold :meth:`rebuild` runs writes into them and reads the log from
        the file. Tables are compared in a fixed order (``lots``,
        ``event_lots``, ``links``, ``voided``) by set difference both ways, and
        the first differing row, by key, is named.
        """
        conn = self.conn
        try:
            conn.execute(f"PRAGMA temp.cache_size=-{_SCRATCH_CACHE_KIB}")
            for name in DERIVED_TABLES:
                create = conn.execute(
                    "SELECT sql FROM main.sqlite_master WHERE type = 'table' AND name = ?", [name]
                ).fetchone()[0]
                conn.execute(re.sub(r"^CREATE TABLE", "CREATE TEMP TABLE", create))
            self._fold_log()  # into the TEMP tables, which shadow the file's
            for table in DERIVED_TABLES:
                self._compare_table(conn, table)
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot check {self.path}'s derived tables: {exc}") from None
        finally:
            for name in DERIVED_TABLES:
                conn.execute(f"DROP TABLE IF EXISTS temp.{name}")

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
        first = rows[0]
        key_of = [cols.index(k) + 1 for k in keys]
        key = " ".join(f"{k}={first[i]}" for k, i in zip(keys, key_of, strict=True))
        if len(rows) == 2 and [rows[1][i] for i in key_of] == [first[i] for i in key_of]:
            had, gives = first[1:], rows[1][1:]
            col = next(
                (c for c, a, b in zip(cols, had, gives, strict=True) if repr(a) != repr(b)),
                cols[0],
            )
            how = (
                f"differs from what the log gives ({col} is {had[cols.index(col)]!r}, "
                f"the log gives {gives[cols.index(col)]!r}: edited behind lottrace's back)"
            )
        elif first[0] == 0:
            how = "is not what the log gives (added behind lottrace's back)"
        else:
            how = "is missing (the log gives it: deleted behind lottrace's back)"
        raise IntegrityViolation(
            f"{self.path}: derived table {table}: row {key} {how}; run 'lottrace rebuild'"
        )

    def _scan_corrections(self) -> Iterator[tuple[str, str]]:
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

    # ------------------------------------------------------------------ reads

    def lot(self, code: str) -> LotState | None:
        row = self.conn.execute(f"SELECT {_LOT_COLUMNS} FROM lots WHERE lot=?", [code]).fetchone()
        return LotState(*row) if row else None

    def require_lot(self, code: str) -> LotState:
        st = self.lot(code)
        if st is None:
            raise UnknownLot(f"no lot {code!r} in {self.path}{self._lot_hint(code)}")
        return st

    def _lot_hint(self, code: str) -> str:
        rows = self.conn.execute(
            "SELECT lot FROM lots WHERE lot LIKE ? ORDER BY lot LIMIT 3",
            [f"%{code[-6:].replace('%', '').replace('_', '')}%"],
        ).fetchall()
        return f" (did you mean {', '.join(r[0] for r in rows)}?)" if rows else ""

    def event(self, eid: str) -> StoredEvent:
        row = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e WHERE event_id=?",
            [eid],
        ).fetchone()
        if row is None:
            raise UnknownEvent(f"no event {eid} in {self.path}")
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
            f"OR (type = 'epcis' AND {_HASH_ID_SQL} = ?1) "
            f"OR (type = 'epcis' AND {_PARTNER_ID_SQL} = ?1) ORDER BY seq",
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

    def events_of_types(self, types: Iterable[str]) -> Iterator[StoredEvent]:
        """Every event of these types, in log order, void ones flagged.

        What registries read (plots, certificates, payments...): events that
        describe things rather than move a lot. A scan of the log's ``type``
        column, so keep it to types that are few.
        """
        wanted = sorted(set(types))
        if not wanted:
            return
        marks = ",".join("?" * len(wanted))
        rows = self.conn.execute(
            "SELECT seq, event_id, body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            f"FROM events e WHERE type IN ({marks}) ORDER BY seq",
            wanted,
        )
        for seq, eid, body, void in rows:
            yield StoredEvent(seq, eid, parse_event(orjson.loads(body), stored=True), bool(void))

    def voided_by(self, eid: str) -> str | None:
        """The id of the correction that voided event ``eid``, or None."""
        row = self.conn.execute(
            "SELECT by_event_id FROM voided WHERE event_id=? LIMIT 1", [eid]
        ).fetchone()
        return row[0] if row else None

    def lot_events(self, code: str) -> list[StoredEvent]:
        """The lot's own non-void events (it is subject, input or output), in time order."""
        self.require_lot(code)
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

    def mark_demo(self) -> None:
        """Flag this file as a demo ledger, which ``lottrace demo`` may add to."""
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('demo', '1')")

    def stats(self) -> dict[str, Any]:
        by_type = dict(
            self.conn.execute("SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY type")
        )
        first, last = self.conn.execute("SELECT MIN(time), MAX(time) FROM events").fetchone()
        seq, head = self.head()
        return {
            "events": seq,
            "by_type": by_type,
            "lots": self.conn.execute("SELECT COUNT(*) FROM lots").fetchone()[0],
            "voided": self.conn.execute("SELECT COUNT(DISTINCT event_id) FROM voided").fetchone()[
                0
            ],
            "first_time": first,
            "last_time": last,
            "head": head,
        }

    def sites(self) -> list[str]:
        """Every site an event happened at, most used first (then by name): what ``log`` offers."""
        return [
            site
            for site, _n in self.conn.execute(
                "SELECT site, COUNT(*) AS n FROM event_lots GROUP BY site ORDER BY n DESC, site"
            )
        ]

    # ------------------------------------------------------------------ lineage reads

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

    def link_path(self, src: str, dst: str) -> list[str] | None:
        """The ids of the events whose links lead from lot ``src`` down to ``dst``, or None.

        One path, the first found breadth-first, in the order the coffee flows.
        """
        parent: dict[str, tuple[str, int]] = {}
        for s, d, _kg, seq, _t in self.lineage_links(src, direction="down"):
            parent.setdefault(d, (s, seq))
        if dst not in parent or dst == src:
            return None
        seqs, lot, seen = [], dst, set()
        while lot != src and lot not in seen:
            seen.add(lot)
            lot, seq = parent[lot]
            seqs.append(seq)
        return self.event_ids_at(list(reversed(seqs)))

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
            f"SELECT {_LOT_COLUMNS} FROM json_each(?) j CROSS JOIN lots ON lots.lot = j.value",
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
        return self.conn.execute(
            "SELECT l.lot, l.kg - l.drawn_kg, l.last_qc, el.type, el.time, el.site "
            "FROM lots l JOIN event_lots el ON el.lot = l.lot AND el.seq = ("
            "  SELECT e2.seq FROM event_lots e2 WHERE e2.lot = l.lot AND e2.role != 'input' "
            "  AND e2.type IN (SELECT value FROM json_each(?)) "
            "  ORDER BY e2.time DESC, e2.seq DESC LIMIT 1) "
            "WHERE l.kg - l.drawn_kg > 1e-6 * max(1.0, l.kg) "
            "ORDER BY el.time, l.lot",
            [wanted],
        ).fetchall()


# ---------------------------------------------------------------------- verify, row by row

#: Logs at least this long are verified in one process per core.
_PARALLEL_VERIFY = 200_000
_VERIFY_SQL = (
    "SELECT seq, event_id, CAST(body AS BLOB), prev_hash, hash, type, time, lot FROM events"
)
#: The form of the ``time`` column (rules.time_key): fromisoformat alone accepts more.
_TIME_KEY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_PREV_MSG = (
    "row seq {seq}: prev_hash does not match the hash of the row before "
    "(rows were inserted, removed or moved)"
)


def _prev_msg(seq: int) -> str:
    if seq == 1:  # the chain starts from sha256 of meta's ledger_id
        return (
            "row seq 1: prev_hash is not this ledger's genesis (sha256 of meta's ledger_id): "
            "the ledger_id was edited, or the rows come from another ledger"
        )
    return _PREV_MSG.format(seq=seq)


@dataclass
class _Checked:
    """What checking a run of rows found: the first failure, and the ends of its chain."""

    failure: tuple[int, int, str] | None  #: (seq, which check, message)
    rows: int
    first_seq: int
    first_prev: str
    last_hash: str
    saw_expect: bool


def _verify_range(uri: str, lo: int, hi: int, expect: str | None) -> _Checked:
    """Check rows ``lo``..``hi`` in a worker process; the seam before ``lo`` is checked by the caller."""
    conn = sqlite3.connect(uri, uri=True)
    try:
        cur = conn.execute(_VERIFY_SQL + " WHERE seq BETWEEN ? AND ? ORDER BY seq", [lo, hi])
        return _check_rows(cur, None, lo, expect)
    finally:
        conn.close()


def _check_rows(rows: Iterable[Any], prev: str | None, n: int, expect: str | None) -> _Checked:
    """Check each row's seq, body, columns, id and chain link, stopping at the first bad one.

    ``prev`` is the hash the first row must link to, or None to take its
    ``prev_hash`` as given (a worker's range: the caller checks that seam).
    The body is re-serialised to see whether it is canonical only when it
    does not hash to its id: lottrace wrote the id as the hash of the
    canonical body, so a body that hashes to it is that body.
    """
    sha, fromhex, loads, is_key = hashlib.sha256, bytes.fromhex, orjson.loads, _TIME_KEY.fullmatch
    fromiso = datetime.fromisoformat
    first_seq, first_prev, count, saw = n, "", 0, False
    bad: tuple[int, int, str] | None = None
    for seq, eid, raw, prev_hash, h, typ, t, lot in rows:
        if count == 0:
            first_seq, first_prev = seq, prev_hash
            if prev is None:
                prev = prev_hash
        count += 1
        if seq != n:
            bad = (seq, 0, f"row seq {seq}: expected seq {n}; rows are missing or reordered")
            break
        n += 1
        try:
            d = loads(raw)
            # The time column is the body's time as a UTC key: same instant, same form.
            columns_ok = (
                d["type"] == typ
                and d.get("lot") == lot
                and is_key(t) is not None
                and fromiso(d["time"]) == fromiso(t)
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            columns_ok = False
        if not columns_ok or sha(raw).hexdigest() != eid:
            if not columns_ok or not _canonical(raw):
                bad = (
                    seq,
                    1,
                    f"row seq {seq}: the body is not a canonical event, or its type, time or lot "
                    "column disagrees with it (the row was edited)",
                )
            else:
                bad = (
                    seq,
                    2,
                    f"row seq {seq}: body does not hash to its event_id {eid[:12]}... "
                    "(the event was edited)",
                )
            break
        if prev_hash != prev:
            bad = (seq, 3, _prev_msg(seq))
            break
        prev = sha(fromhex(prev_hash + eid)).hexdigest()
        if h != prev:
            bad = (seq, 4, f"row seq {seq}: stored hash is wrong")
            break
        if prev == expect:
            saw = True
    return _Checked(bad, count, first_seq, first_prev, prev or "", saw)


def _canonical(raw: bytes) -> bool:
    """Whether ``raw`` is a JSON object written the canonical way (sorted keys, no spaces)."""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS) == raw
    except orjson.JSONDecodeError:
        return False


class _Batch:
    """The state of one append or rebuild inside its transaction.

    It buffers rows, caches lot states and flushes both every ``_CHUNK`` events,
    so memory stays flat however long the input is.
    """

    def __init__(
        self, ledger: Ledger, report: AppendReport, now: datetime, *, rebuilding: bool = False
    ):
        self.ledger = ledger
        self.conn = ledger.conn
        self.report = report
        self.now = now
        self.rebuilding = rebuilding
        self.where = ""
        self.seq, self.prev = ledger.head()
        self.start = _head_text(self.seq, self.prev)  #: the head it starts from
        self.trust = True  # see _marked
        self.reader: str | None = None
        self.last_n = -1
        self.states: dict[str, LotState | None] = {}
        self.dirty: set[str] = set()
        self.pending_ids: dict[str, tuple[Facts, bool]] = {}
        self.event_rows: list[tuple[Any, ...]] = []
        self.lot_rows: list[tuple[Any, ...]] = []
        self.link_rows: list[tuple[Any, ...]] = []
        self.void_rows: list[tuple[str, str, str, str]] = []
        #: Foreign events added in this batch: (hash id, declares an error) -> (where, body).
        #: (hash id, declares an error) -> where it was met, its body, its event id
        self.hash_keys: dict[tuple[str, bool], tuple[str, dict[str, Any], str]] = {}

    # View protocol for rules.check
    def lot(self, code: str) -> LotState | None:
        if code in self.states:
            return self.states[code]
        st = self.ledger.lot(code)
        self.states[code] = st
        return st

    def event(self, eid: str) -> tuple[Facts, bool] | None:
        if eid in self.pending_ids:
            return self.pending_ids[eid]
        row = self.conn.execute(
            "SELECT body, EXISTS(SELECT 1 FROM voided v WHERE v.event_id=e.event_id) "
            "FROM events e WHERE event_id=?",
            [eid],
        ).fetchone()
        if row is None:
            return None
        return _stored_facts(row[0]), bool(row[1])

    def voided(self, code: str) -> bool:
        self.flush()
        return (
            self.conn.execute("SELECT 1 FROM voided WHERE lot=? LIMIT 1", [code]).fetchone()
            is not None
        )

    def holds_coffee(self, code: str) -> bool:
        # Rare (a foreign event's inputs): write what is pending, then walk up.
        self.flush()
        lots = {code} | {src for src, *_ in self.ledger.lineage_links(code, direction="up")}
        return any(st.stage != FOREIGN_STAGE for st in self.ledger.lots_states(lots).values())

    def path(self, src: str, dst: str) -> list[str] | None:
        # Rare (an aggregation into an existing parent): write what is pending, then walk.
        self.flush()
        return self.ledger.link_path(src, dst)

    def add_many(self, chunk: list[Prepared]) -> None:
        """Add a few events, looking up their ids and lots in one query each, not one per event."""
        # Ids the reader process marked new or stored need no look-up (Prepared.mark).
        ask, stored = [], set()
        for p in chunk:
            new = self._marked(p.mark)
            if new is None:
                ask.append(p.eid)
            elif not new:
                stored.add(p.eid)
        if ask:
            stored |= _stored_among(self.conn, ask)
        # Not ``set - self.states.keys()``: that walks every cached state.
        states = self.states
        codes = {lot for p in chunk for lot, _role in p.facts.lots if lot not in states}
        if codes:
            found = self.ledger.lots_states(codes)
            for code in codes:
                self.states[code] = found.get(code)
        for p in chunk:
            if p.eid == UNRESOLVED:
                p = self.resolve(p)
                known = p.eid in stored or p.eid in self.pending_ids
                if not known and _stored_among(self.conn, [p.eid]):
                    stored.add(p.eid)
            # A flush inside the chunk may forget pending ids: remember this chunk's own.
            self.add(p, p.eid in stored)
            stored.add(p.eid)

    def resolve(self, p: Prepared) -> Prepared:
        """A :class:`WholeInputs` as an event: each whole lot gives all it has left now.

        The one place input lots written without kilos get their kilos: from
        the lots' state in this batch (the ledger's, and this batch's events
        before it). The event's ``kg`` must match the inputs' sum within the
        2 % scale tolerance.
        """
        rec, whole = orjson.loads(p.body)
        inputs = []
        for item in rec["inputs"]:
            if "kg" in item or item["lot"] not in whole:
                inputs.append(item)
                continue
            st = self.lot(item["lot"])
            if st is None:
                raise RuleViolation(
                    f"input lot {item['lot']} was never created (log its harvest first)",
                    rule="lot-unknown", where=p.where, field="inputs",
                )  # fmt: skip
            left = st.kg - st.drawn_kg
            if left <= 1e-9:
                raise RuleViolation(
                    f"input lot {item['lot']} has nothing left to give "
                    f"(its {st.kg:g} kg went to other lots already)",
                    rule="weight-consumed", where=p.where, field="inputs",
                )  # fmt: skip
            inputs.append({"lot": item["lot"], "kg": round(left, 3)})
        rec = {**rec, "inputs": inputs}
        total = sum(float(i["kg"]) for i in inputs)
        kg = rec.get("kg")
        if kg is not None:
            try:
                stated = float(kg)
            except (TypeError, ValueError):
                stated = None
            if stated is not None and abs(stated - total) > total * 0.02:
                lots = ", ".join(f"{i['lot']} {float(i['kg']):g} kg" for i in inputs)
                raise RuleViolation(
                    f"the inputs give {total:g} kg ({lots}) but the event states "
                    f"{stated:g} kg; more than the 2 % scale tolerance apart",
                    rule="weight-gain" if stated > total else "input-invalid",
                    where=p.where, field="kg",
                )  # fmt: skip
        return prepare(p.where, parse_event(rec, where=p.where))

    def _marked(self, mark: tuple[str, int, bool | None] | None) -> bool | None:
        """What a reader's mark says of an event's id: new (True), stored (False), or None.

        None unless every event of the batch so far came from one reader, in
        the order it read them (some may be left out), and that reader looked
        ids up at the head the batch starts from: a reader's "new" says
        nothing of another reader's events, nor of its own events sent twice.
        """
        if not self.trust or mark is None:
            self.trust = False
            return None
        reader, n, new = mark
        if self.reader is None:  # the batch's first event names its reader
            self.reader = reader
            self.trust = reader.startswith(self.start + " ")
        else:
            self.trust = reader == self.reader and n > self.last_n
        self.last_n = n
        return new if self.trust else None

    def add(self, p: Prepared, stored: bool) -> None:
        """Check one event against the state so far and queue its rows; skip a duplicate."""
        where, body, eid, ev, _mark = p
        if stored or eid in self.pending_ids:
            self._met_again(where, eid)
            return
        self.where = where
        if ev.type == "epcis" and self._same_hash(p):
            return
        findings = check(ev, self, self.now)
        if findings:  # most events have none
            for f in findings:
                if f.severity == "error":
                    raise RuleViolation(f.message, rule=f.rule, where=where, field=f.field)
            for f in findings:
                self.report.warning_count += 1
                if len(self.report.warnings) < 1000:
                    lot = f"lot {ev.subject}: " if ev.subject else ""
                    self.report.warnings.append(RuleWarning(where, f.rule, lot + f.message))
        self.seq += 1
        new = _chain(self.prev, eid)
        self.event_rows.append((self.seq, eid, ev.type, ev.time, ev.subject, body, self.prev, new))
        self.prev = new
        self.report.added += 1
        self.pending_ids[eid] = (ev, False)
        self.derive(self.seq, eid, ev, void=False)
        if len(self.event_rows) >= _CHUNK:
            self.flush()

    def _met_again(self, where: str, eid: str) -> None:
        """Count an event the ledger holds: a duplicate, or void again if a correction voided it."""
        if self._is_void(eid):  # met again, but a correction voided it: it stays void
            self.report.voided_again += 1
            name = where.rpartition(":")[0] or where
            self.report.voided_again_in[name] = self.report.voided_again_in.get(name, 0) + 1
        else:
            self.report.duplicates += 1

    def _same_hash(self, p: Prepared) -> bool:
        """Whether foreign event ``p`` was captured before under its Event Hash ID.

        Same hash, same event (gs1/EPCIS issue 403); an error declaration is
        the event's second form, so the key is the hash and whether it declares
        an error. Met again with the same partner eventID, or with none, it is
        a duplicate (True), whatever its representation (``200`` or
        ``200.0``, XML or JSON-LD, a prefix named otherwise): the hash says it
        is the same event. With another eventID (one the first capture did
        not have included), the batch is refused, naming both: that id would
        point at nothing.
        """
        body = orjson.loads(p.body)
        key = (body["hash_id"], "errorDeclaration" in body["event"])
        before = self.hash_keys.get(key)
        if before is None:
            rows = self.conn.execute(
                f"SELECT event_id, body FROM events WHERE type = 'epcis' AND {_HASH_ID_SQL} = ?",
                [key[0]],
            ).fetchall()
            for eid, stored in rows:
                other = orjson.loads(stored)
                if ("errorDeclaration" in other["event"]) == key[1]:
                    before = (f"event {eid} of the ledger", other, eid)
                    break
        if before is None:
            self.hash_keys[key] = (p.where, body, p.eid)
            return False
        mine = body.get("partner_event_id")
        if mine is None or mine == before[1].get("partner_event_id"):
            self._met_again(p.where, before[2])
            return True
        what = "error declaration of the event" if key[1] else "event"
        theirs = before[1].get("partner_event_id") or "none"
        raise RuleViolation(
            f"the {what} with Event Hash ID {key[0]} is already {before[0]} "
            f"(eventID {theirs}; this one's {mine}) under another eventID: one Event Hash "
            "ID, one event (a correction is an errorDeclaration)",
            rule="epcis-same-hash",
            where=p.where,
            field="event",
        )

    #: The ids in ``voided`` as of ``_voided_at`` (the connection's total_changes).
    _voided: frozenset[str] = frozenset()
    _voided_at = -1

    def _is_void(self, eid: str) -> bool:
        """Whether a correction voided event ``eid``, in this batch or before.

        ``voided`` is small, so it is read once and again only after this
        connection wrote something: a file of duplicates reads it once.
        """
        pending = self.pending_ids.get(eid)
        if pending is not None and pending[1]:
            return True
        if self._voided_at != self.conn.total_changes:
            self._voided = frozenset(
                r[0] for r in self.conn.execute("SELECT DISTINCT event_id FROM voided")
            )
            self._voided_at = self.conn.total_changes
        return eid in self._voided

    def derive(self, seq: int, eid: str, ev: Facts, *, void: bool) -> None:
        """Fold one logged event into the derived tables."""
        if ev.type == "correction" and ev.corrects is not None:
            target = self.pending_ids.get(ev.corrects) or self.event(ev.corrects)
            if target is None:  # cannot happen: rules.check found it
                return
            # A record (a payment ...) names no lot: its void row has lot ''.
            for lot, _role in lots_of(target[0]) or (("", ""),):
                self.void_rows.append((ev.corrects, lot, eid, ev.reason or ""))
            if self.rebuilding:  # the target was skipped as void already
                return
            self.flush()
            self._void(ev.corrects, target[0])
            return
        if void:
            return
        t = ev.time
        for lot, role in lots_of(ev):
            st = fold(self.lot(lot), lot, role, ev, eid)
            self.states.pop(lot, None)  # to the end: the cache forgets the oldest first
            self.states[lot] = st
            self.dirty.add(lot)
            self.lot_rows.append((lot, t, ev.type, seq, role, ev.site))
        for lot, _kg in ev.formed:
            for src, kg in ev.drawn:
                self.link_rows.append((lot, src, seq, kg, t))

    def _void(self, eid: str, ev: Facts) -> None:
        """Remove a voided event's rows and refold the lots it touched."""
        seq = self.conn.execute("SELECT seq FROM events WHERE event_id=?", [eid]).fetchone()[0]
        if eid in self.pending_ids:
            self.pending_ids[eid] = (ev, True)
        lots = lots_of(ev)
        # Through the (lot, ...) keys, as there is no index on seq alone; if the
        # rows found are not the ones the event's facts say were written, every
        # row of the event goes by a scan, so none is ever left behind.
        before = self.conn.total_changes
        self.conn.executemany(
            "DELETE FROM event_lots WHERE lot=? AND seq=?", [(lot, seq) for lot, _role in lots]
        )
        if self.conn.total_changes - before != len(lots):
            self.conn.execute("DELETE FROM event_lots WHERE seq=?", [seq])
        before = self.conn.total_changes
        self.conn.executemany(
            "DELETE FROM links WHERE dst=? AND seq=?", [(lot, seq) for lot, _kg in ev.formed]
        )
        if self.conn.total_changes - before != len(ev.formed) * len(ev.drawn):
            self.conn.execute("DELETE FROM links WHERE seq=?", [seq])
        for lot, _role in lots:
            self._refold(lot)

    def _refold(self, lot: str) -> None:
        rows = self.conn.execute(
            "SELECT e.event_id, e.body, el.role FROM event_lots el JOIN events e ON e.seq=el.seq "
            "WHERE el.lot=? ORDER BY el.seq",
            [lot],
        ).fetchall()
        st: LotState | None = None
        for eid, body, role in rows:
            st = fold(st, lot, role, _stored_facts(body), eid)
        if st is not None and not self.rebuilding and (broken := check_refolded(st)):
            raise RuleViolation(
                broken.message, rule=broken.rule, where=self.where, field=broken.field
            )
        self.states[lot] = st
        self.dirty.add(lot)
        self.flush()

    def flush(self) -> None:
        c = self.conn
        if self.event_rows:
            c.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", self.event_rows)
        if self.lot_rows:
            c.executemany("INSERT INTO event_lots VALUES (?,?,?,?,?,?)", self.lot_rows)
        if self.link_rows:
            c.executemany("INSERT INTO links VALUES (?,?,?,?,?)", self.link_rows)
        if self.void_rows:
            c.executemany("INSERT INTO voided VALUES (?,?,?,?)", self.void_rows)
        if self.dirty:
            gone = [(lot,) for lot in self.dirty if self.states.get(lot) is None]
            live = [st for lot in self.dirty if (st := self.states.get(lot)) is not None]
            if gone:
                c.executemany("DELETE FROM lots WHERE lot=?", gone)
            if live:
                c.executemany(
                    f"INSERT OR REPLACE INTO lots ({_LOT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    live,
                )
        self.event_rows.clear()
        self.lot_rows.clear()
        self.link_rows.clear()
        self.void_rows.clear()
        self.dirty.clear()
        if len(self.states) > _STATES:  # forget the half least recently changed
            for lot in list(itertools.islice(self.states, len(self.states) // 2)):
                del self.states[lot]
        if len(self.pending_ids) > _CHUNK:
            self.pending_ids.clear()
