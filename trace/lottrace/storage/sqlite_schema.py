"""The SQLite ledger's schema: its migrations, each named once, and how a file's schema is compared with them.

Schema versions are ``sqlite_utils`` migrations recorded in the file itself
(``_sqlite_migrations``). :data:`MIGRATION_NAMES` lists them in order, and
:data:`MIGRATION_FUNCTIONS` holds the function of each, in the same order.
What a file's schema should be after its first ``k`` migrations is read from
the migrations themselves, applied to an empty in-memory database
(:func:`expected_schema`), so ``verify`` and ``rebuild`` can never drift
from them.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["EVENTS_TABLE_SQL", "MIGRATION_NAMES"]

#: Schema migrations, in order. ``sqlite_utils`` (which pulls in numpy) is
#: imported only when one is pending, so opening an up-to-date ledger stays cheap.
MIGRATION_NAMES = (
    "001_log_and_derived_tables",
    "002_head_in_meta",
    "003_drop_seq_indexes",
    "004_lot_base_kg",
    "005_epcis_id_indexes",
    "006_events_by_rare_type",
    "007_legs",
    "008_sources",
    "009_leg_days",
)


#: Migrations after which the derived tables are folded again from the log
#: (in the same transaction), because what a fold computes changed.
REFOLD_AFTER = {"004_lot_base_kg", "007_legs"}


def migrations() -> Any:
    import sqlite_utils

    migrations = sqlite_utils.Migrations("lottrace")
    for name, fn in zip(MIGRATION_NAMES, MIGRATION_FUNCTIONS, strict=True):
        migrations(name=name)(fn)
    return migrations


def applied(conn: sqlite3.Connection) -> list[str]:
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


def pending(conn: sqlite3.Connection) -> bool:
    """Whether a migration of ours is not yet recorded in ``_sqlite_migrations``."""
    return not set(MIGRATION_NAMES) <= set(applied(conn))


class Schema(NamedTuple):
    """What the first ``k`` migrations make of an empty file."""

    #: ``name: (type, tbl_name, sql)`` of every object in ``sqlite_master`` (SQLite's own left out)
    objects: dict[str, tuple[str, str, str]]
    #: the ``meta`` keys the migrations write
    meta_keys: frozenset[str]


def norm_sql(sql: str | None) -> str:
    """SQL text with its layout ignored, so reindented migration code still matches old files."""
    text = re.sub(r"\s+", " ", sql or "").strip()
    return re.sub(r" ?([(),]) ?", r"\1", text)


def schema_of(conn: sqlite3.Connection, schema: str = "main") -> dict[str, tuple[str, str, str]]:
    return {
        name: (typ, tbl, norm_sql(sql))
        for typ, name, tbl, sql in conn.execute(
            f"SELECT type, name, tbl_name, sql FROM {schema}.sqlite_master "
            "WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    }


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def migrated_memory(k: int) -> sqlite3.Connection:
    """An in-memory database that the first ``k`` of our migrations were applied to."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    if k:
        import sqlite_utils

        stop = MIGRATION_NAMES[k] if k < len(MIGRATION_NAMES) else None
        migrations().apply(sqlite_utils.Database(conn), stop_before=stop)
    return conn


class _Executes:
    """The one method of ``sqlite_utils.Database`` our migrations call."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)


@functools.cache
def objects_made() -> dict[str, tuple[str, str, str]]:
    """The objects every migration makes (not sqlite_utils' ``_sqlite_migrations``),
    made by running them on an in-memory database without sqlite_utils."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for fn in MIGRATION_FUNCTIONS:
            fn(_Executes(conn))
        return schema_of(conn)
    finally:
        conn.close()


@functools.cache
def expected_schema(k: int) -> Schema:
    """The schema lottrace gives a file once its first ``k`` migrations ran: read from
    the migrations themselves, applied to an empty in-memory database."""
    conn = migrated_memory(k)
    try:
        keys = frozenset(r[0] for r in conn.execute("SELECT key FROM meta")) if k else frozenset()
        return Schema(schema_of(conn), keys)
    finally:
        conn.close()


KIND_ORDER = {"table": 0, "index": 1, "trigger": 2, "view": 3}


#: Tables that hold the log and its records: a rebuild cannot restore them.
LOG_TABLES = ("events", "meta", "sources", "_sqlite_migrations")


def schema_differences(
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
    return sorted(found, key=lambda f: (KIND_ORDER.get(f[0], 9), f[1]))


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
    # it, not the last one. Filled by the refold that follows (REFOLD_AFTER),
    # which also applies the rules' new fold of foreign events.
    db.execute("ALTER TABLE lots ADD COLUMN base_kg REAL NOT NULL DEFAULT 0")


#: The expressions the two indexes of migration 005 are on: a foreign event's
#: Event Hash ID and its partner's eventID. Queries must spell them exactly so.
HASH_ID_SQL = "json_extract(body, '$.hash_id')"


PARTNER_ID_SQL = "json_extract(body, '$.partner_event_id')"


def _m005(db: sqlite_utils.Database) -> None:
    # Foreign EPCIS events are found by their Event Hash ID (a second capture of
    # the same event) and by their partner's eventID (history/export --event-id,
    # correctiveEventIDs). Partial indexes: only 'epcis' rows are in them.
    for name, expr in (("events_hash_id", HASH_ID_SQL), ("events_partner_id", PARTNER_ID_SQL)):
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON events ({expr}) WHERE type = 'epcis'")


#: The migration functions, in the order of :data:`MIGRATION_NAMES`.
#: The types of the many (a season's checkpoints and partners' events): the index of
#: migration 006 leaves them out, so it holds only the few (exports, corrections,
#: registries: plots, certificates, payments, master data ...) and costs an import
#: of checkpoints nothing. Queries must spell the condition exactly so.
COMMON_TYPES = (
    "harvest",
    "drying",
    "gatherer_qc",
    "hq_qc",
    "dry_mill",
    "dispatch",
    "arrival",
    "epcis",
)
RARE_TYPE_SQL = "type NOT IN (" + ", ".join(f"'{t}'" for t in COMMON_TYPES) + ")"


def _m006(db: sqlite_utils.Database) -> None:
    # Registries (plots, certificates, payments, master data ...) and exports are
    # read by type; a partial index finds them without scanning the log.
    db.execute(
        f"CREATE INDEX IF NOT EXISTS events_by_rare_type ON events (type, seq) WHERE {RARE_TYPE_SQL}"
    )


def _m007(db: sqlite_utils.Database) -> None:
    # Every lot's legs (see lottrace.legwalk), kept on append, so delays and
    # bottlenecks read the legs ending in a window through the index on their
    # end, not the whole ledger. Filled by the refold that follows (REFOLD_AFTER).
    db.execute(
        """CREATE TABLE IF NOT EXISTS legs (
            lot TEXT NOT NULL,
            n INTEGER NOT NULL,
            from_stage TEXT NOT NULL,
            from_site TEXT NOT NULL,
            start_time TEXT NOT NULL,
            to_stage TEXT NOT NULL,
            to_site TEXT NOT NULL,
            end_time TEXT NOT NULL,
            hours REAL NOT NULL,
            transit_hours REAL,
            PRIMARY KEY (lot, n)) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX IF NOT EXISTS legs_end ON legs (end_time)")


#: A platform's ledger merged from other ledgers (``lottrace merge``) keeps each
#: source's chain beside its own log: for every row of a source, the source's
#: ledger id, its seq there, the event's id and the source's hash at that row.
#: An event two sources hold is stored once in ``events`` and has a row here for
#: each. Part of the log (nothing can rebuild it), so append-only like ``events``.
SOURCES_STATEMENTS = (
    """CREATE TABLE sources (
            ledger_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (ledger_id, seq))""",
    "CREATE INDEX sources_event ON sources (event_id)",
)


def _m008(db: sqlite_utils.Database) -> None:
    for sql in SOURCES_STATEMENTS:
        db.execute(sql)
    for what in ("update", "delete"):
        db.execute(
            f"""CREATE TRIGGER sources_no_{what} BEFORE {what.upper()} ON sources
           BEGIN SELECT RAISE(ABORT, 'lottrace: the event log is append-only'); END"""
        )


#: Each day's legs by stage pair and band of hours (see
#: :func:`lottrace.storage.leg_day_deltas`), kept with ``legs``, so ``delays``
#: counts a window's legs from its days and reads only the bands its
#: percentiles fall in; the index on a pair's bands finds those legs.
LEG_DAYS_STATEMENTS = (
    """CREATE TABLE IF NOT EXISTS leg_days (
            day TEXT NOT NULL,
            from_stage TEXT NOT NULL,
            to_stage TEXT NOT NULL,
            band INTEGER NOT NULL,
            n INTEGER NOT NULL,
            us INTEGER NOT NULL,
            trucked INTEGER NOT NULL,
            transit_us INTEGER NOT NULL,
            wait_us INTEGER NOT NULL,
            PRIMARY KEY (day, from_stage, to_stage, band)) WITHOUT ROWID""",
    # A band's legs in a window: the pair, the band, then the end (and the hours, to be
    # read from the index alone). Hours are never negative (a lot's rows are walked in
    # time order), so the cast, which truncates, is storage.leg_band's floor.
    "CREATE INDEX IF NOT EXISTS legs_band ON legs "
    "(from_stage, to_stage, CAST(hours / 4 AS INTEGER), end_time, hours)",
)


def _m009(db: sqlite_utils.Database) -> None:
    from . import leg_day_deltas

    for sql in LEG_DAYS_STATEMENTS:
        db.execute(sql)
    rows = db.execute("SELECT end_time, from_stage, to_stage, hours, transit_hours FROM legs")
    db.conn.executemany(
        "INSERT INTO leg_days VALUES (?,?,?,?,?,?,?,?,?)",
        (key + tuple(d) for key, d in leg_day_deltas((), rows).items()),
    )


MIGRATION_FUNCTIONS: tuple[Callable[[Any], None], ...] = (
    _m001,
    _m002,
    _m003,
    _m004,
    _m005,
    _m006,
    _m007,
    _m008,
    _m009,
)


LOT_COLUMNS = (
    "lot, created_by, stage, first_time, last_time, kg, drawn_kg, "
    "last_qc, last_site, last_event, n_events, base_kg"
)
