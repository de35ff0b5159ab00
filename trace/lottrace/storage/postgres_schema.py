"""The PostgreSQL ledger's schema: its migrations, each named once, and how a schema is compared with them.

A ledger lives in one PostgreSQL schema (the first of the connection's
``search_path``, ``public`` unless the URI says otherwise). Its migrations
are recorded in its own table ``_lottrace_migrations`` (name, in order).
:data:`MIGRATIONS` lists them: each is a name and the statements it runs,
every statement named by the object it makes, so ``rebuild`` can make a
dropped trigger or index again from the very statement that made it.

What a schema should be is read from the migrations themselves: they are
applied to the session's temporary schema inside a savepoint that is rolled back
(:func:`expected_schema`), and the objects PostgreSQL's catalog then shows
(tables with their columns and constraints, indexes, triggers with their
enabled state, rules, row security policies, views, sequences and
functions) are compared by name with the ledger's (:func:`schema_of`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple

from .sqlite_schema import RARE_TYPE_SQL

if TYPE_CHECKING:
    import psycopg

__all__ = ["LOG_TABLES", "MIGRATIONS", "MIGRATION_NAMES", "Statement"]


class Statement(NamedTuple):
    """One statement of a migration, and the object it makes."""

    kind: str  #: table, index, trigger, function (an object), or data (rows it fills)
    name: str
    table: str
    sql: str


#: Every text column sorts by code point (``COLLATE "C"``), as SQLite's do, so
#: the queries give rows in the same order on both backends.
_T = 'TEXT COLLATE "C"'

#: The function the append-only triggers run: any UPDATE, DELETE or TRUNCATE of
#: the log raises (an integrity violation, as SQLite's ``RAISE(ABORT)``).
_APPEND_ONLY = """CREATE FUNCTION lottrace_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'lottrace: the event log is append-only'
        USING ERRCODE = 'integrity_constraint_violation';
END
$$"""


_M001 = (
    Statement(
        "table", "meta", "meta", f"CREATE TABLE meta (key {_T} PRIMARY KEY, value TEXT NOT NULL)"
    ),
    Statement(
        "table",
        "events",
        "events",
        f"""CREATE TABLE events (
            seq BIGINT PRIMARY KEY,
            event_id {_T} NOT NULL UNIQUE,
            type {_T} NOT NULL,
            time {_T} NOT NULL,
            lot {_T},
            body TEXT NOT NULL,
            prev_hash {_T} NOT NULL,
            hash {_T} NOT NULL)""",
    ),
    Statement("function", "lottrace_append_only", "", _APPEND_ONLY),
    Statement(
        "trigger",
        "events_no_update",
        "events",
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "FOR EACH ROW EXECUTE FUNCTION lottrace_append_only()",
    ),
    Statement(
        "trigger",
        "events_no_delete",
        "events",
        "CREATE TRIGGER events_no_delete BEFORE DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION lottrace_append_only()",
    ),
    Statement(
        "trigger",
        "events_no_truncate",
        "events",
        "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION lottrace_append_only()",
    ),
    Statement(
        "index",
        "events_hash_id",
        "events",
        "CREATE INDEX events_hash_id ON events (((body::jsonb) ->> 'hash_id')) "
        "WHERE type = 'epcis'",
    ),
    Statement(
        "index",
        "events_partner_id",
        "events",
        "CREATE INDEX events_partner_id ON events (((body::jsonb) ->> 'partner_event_id')) "
        "WHERE type = 'epcis'",
    ),
    Statement(
        "table",
        "lots",
        "lots",
        f"""CREATE TABLE lots (
            lot {_T} PRIMARY KEY,
            created_by {_T} NOT NULL,
            stage INTEGER NOT NULL,
            first_time {_T} NOT NULL,
            last_time {_T} NOT NULL,
            kg DOUBLE PRECISION NOT NULL,
            drawn_kg DOUBLE PRECISION NOT NULL,
            last_qc {_T},
            last_site {_T} NOT NULL,
            last_event {_T} NOT NULL,
            n_events INTEGER NOT NULL,
            base_kg DOUBLE PRECISION NOT NULL DEFAULT 0)""",
    ),
    Statement(
        "table",
        "event_lots",
        "event_lots",
        f"""CREATE TABLE event_lots (
            lot {_T} NOT NULL,
            time {_T} NOT NULL,
            type {_T} NOT NULL,
            seq BIGINT NOT NULL,
            role {_T} NOT NULL,
            site {_T} NOT NULL,
            PRIMARY KEY (lot, time, type, seq, role))""",
    ),
    Statement(
        "table",
        "links",
        "links",
        f"""CREATE TABLE links (
            dst {_T} NOT NULL,
            src {_T} NOT NULL,
            seq BIGINT NOT NULL,
            kg DOUBLE PRECISION NOT NULL,
            time {_T} NOT NULL,
            PRIMARY KEY (dst, src, seq))""",
    ),
    Statement("index", "links_src", "links", "CREATE INDEX links_src ON links (src, dst)"),
    Statement(
        "table",
        "voided",
        "voided",
        f"""CREATE TABLE voided (
            event_id {_T} NOT NULL,
            lot {_T} NOT NULL,
            by_event_id {_T} NOT NULL,
            reason TEXT NOT NULL,
            PRIMARY KEY (event_id, lot))""",
    ),
    Statement("index", "voided_lot", "voided", "CREATE INDEX voided_lot ON voided (lot)"),
)


#: Registries (plots, certificates, payments, master data ...), exports and
#: corrections are read by type (``events_of_types``); the checkpoints and
#: partners' events are the many. As SQLite's migration 006: a partial index
#: holds only the rare types, so reading a registry does not scan the log and an
#: import of checkpoints pays nothing for it. The condition is SQLite's, spelled
#: the same, and queries that want the index repeat it.
_M003 = (
    Statement(
        "index",
        "events_by_rare_type",
        "events",
        f"CREATE INDEX events_by_rare_type ON events (type, seq) WHERE {RARE_TYPE_SQL}",
    ),
)


#: A platform's ledger merged from other ledgers keeps each source's chain (see
#: SQLite's migration 008): part of the log, append-only like ``events``.
_M004 = (
    Statement(
        "table",
        "sources",
        "sources",
        f"""CREATE TABLE sources (
            ledger_id {_T} NOT NULL,
            seq BIGINT NOT NULL,
            event_id {_T} NOT NULL,
            hash {_T} NOT NULL,
            PRIMARY KEY (ledger_id, seq))""",
    ),
    Statement(
        "index", "sources_event", "sources", "CREATE INDEX sources_event ON sources (event_id)"
    ),
    *(
        Statement(
            "trigger",
            f"sources_no_{what}",
            "sources",
            f"CREATE TRIGGER sources_no_{what} BEFORE {what.upper()} ON sources "
            f"FOR EACH {each} EXECUTE FUNCTION lottrace_append_only()",
        )
        for what, each in (("update", "ROW"), ("delete", "ROW"), ("truncate", "STATEMENT"))
    ),
)


#: The migrations, in order: a name and its statements. A new one is appended,
#: never edited in place (ledgers record the names they ran). A name's number
#: is its row in ``_lottrace_migrations`` (not its place here), so migrations
#: made on separate branches (002 and 003) do not collide when both land: a
#: ledger that ran 001 and 003 runs 002 next.
#: Every lot's legs (see lottrace.legwalk), kept on append, so delays and bottlenecks
#: read the legs ending in a window through the index on their end. A ledger that had
#: 001 only is folded again after this one (the storage's migrate), which fills it.
_M002 = (
    Statement(
        "table",
        "legs",
        "legs",
        f"""CREATE TABLE legs (
            lot {_T} NOT NULL,
            n INTEGER NOT NULL,
            from_stage {_T} NOT NULL,
            from_site {_T} NOT NULL,
            start_time {_T} NOT NULL,
            to_stage {_T} NOT NULL,
            to_site {_T} NOT NULL,
            end_time {_T} NOT NULL,
            hours DOUBLE PRECISION NOT NULL,
            transit_hours DOUBLE PRECISION,
            PRIMARY KEY (lot, n))""",
    ),
    Statement("index", "legs_end", "legs", "CREATE INDEX legs_end ON legs (end_time)"),
)


#: Each day's legs by stage pair and band of hours (see
#: :func:`lottrace.storage.leg_day_deltas`), kept with ``legs``, so ``delays`` counts
#: a window's legs from its days and reads only the bands its percentiles fall in;
#: the index on a pair's bands and ends finds those legs in a window. Filled here from ``legs`` with the
#: same arithmetic as ``leg_day_deltas`` (IEEE doubles: ``hours / 4`` and
#: ``hours * 3600000000`` round alike; no duration is near half a microsecond).
_US = "round({0} * 3600000000::float8)::bigint"
_M005 = (
    Statement(
        "table",
        "leg_days",
        "leg_days",
        f"""CREATE TABLE leg_days (
            day {_T} NOT NULL,
            from_stage {_T} NOT NULL,
            to_stage {_T} NOT NULL,
            band BIGINT NOT NULL,
            n BIGINT NOT NULL,
            us BIGINT NOT NULL,
            trucked BIGINT NOT NULL,
            transit_us BIGINT NOT NULL,
            wait_us BIGINT NOT NULL,
            PRIMARY KEY (day, from_stage, to_stage, band))""",
    ),
    Statement(
        "index",
        "legs_band",
        "legs",
        "CREATE INDEX legs_band ON legs "
        "(from_stage, to_stage, floor(hours / 4::float8), end_time) INCLUDE (hours)",
    ),
    Statement(
        "data",
        "leg_days_filled",
        "leg_days",
        "INSERT INTO leg_days SELECT substr(end_time, 1, 10), from_stage, to_stage, "
        f"floor(hours / 4::float8)::bigint, count(*), sum({_US.format('hours')}), "
        f"count(transit_hours), coalesce(sum({_US.format('transit_hours')}), 0), "
        f"coalesce(sum({_US.format('hours')} - {_US.format('transit_hours')}), 0) "
        "FROM legs GROUP BY 1, 2, 3, 4",
    ),
)


#: Migrations after which the derived tables are folded again from the log.
REFOLD_AFTER = {"002_legs"}


MIGRATIONS: tuple[tuple[str, tuple[Statement, ...]], ...] = (
    ("001_ledger", _M001),
    ("002_legs", _M002),
    ("003_events_by_rare_type", _M003),
    ("004_sources", _M004),
    ("005_leg_days", _M005),
)


MIGRATION_NAMES = tuple(name for name, _ in MIGRATIONS)


def number(name: str) -> int:
    """A migration's number, from its name (``003_events_by_rare_type``: 3)."""
    return int(name.partition("_")[0])


#: The table that records the migrations applied, made before the first.
MIGRATIONS_TABLE = "_lottrace_migrations"


_MIGRATIONS_TABLE_SQL = (
    f"CREATE TABLE {MIGRATIONS_TABLE} (n INTEGER PRIMARY KEY, name {_T} NOT NULL UNIQUE)"
)


#: Tables that hold the log and its records: a rebuild cannot restore them.
LOG_TABLES = ("events", "meta", "sources", MIGRATIONS_TABLE)


#: The SQL each derived table and its indexes are made by, in order (what a rebuild runs).
def statements() -> list[Statement]:
    """Every statement of every migration, in order: the latest one making each name wins."""
    latest: dict[str, Statement] = {}
    for _name, stmts in MIGRATIONS:
        for s in stmts:
            latest.pop(s.name, None)
            latest[s.name] = s
    return list(latest.values())


def applied(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> list[str]:
    """The migrations recorded in ``schema``, in the order applied ([] if none)."""
    found = conn.execute(
        "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s",
        [schema, MIGRATIONS_TABLE],
    ).fetchone()
    if not found:
        return []
    return [str(r[0]) for r in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY n")]


def apply_migrations(
    conn: psycopg.Connection[tuple[object, ...]],
    schema: str,
    ledger_id: str,
    genesis: str,
    *,
    functions_in: str = "",
) -> list[str]:
    """Apply the pending migrations to ``schema`` (the current one); their names.

    The caller holds the transaction (and the writers' lock). ``functions_in``
    names the schema functions are made in and called from (``pg_temp``, which
    PostgreSQL never searches for functions, must be named).
    """
    done = applied(conn, schema)
    if not done:
        conn.execute(_MIGRATIONS_TABLE_SQL)
    ran = []
    for name, stmts in MIGRATIONS:
        n = number(name)
        if name in done:
            continue
        for s in stmts:
            sql = s.sql
            if functions_in:
                sql = sql.replace(
                    "lottrace_append_only()", f"{functions_in}.lottrace_append_only()"
                )
            conn.execute(sql)
        if name == "001_ledger":
            conn.execute(
                "INSERT INTO meta VALUES ('ledger_id', %s), ('head', %s)",
                [ledger_id, f"0 {genesis}"],
            )
        conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} VALUES (%s, %s)", [n, name])
        ran.append(name)
    return ran


#: ``name: (kind, table, definition)`` of every object in a schema.
Objects = dict[str, tuple[str, str, str]]


_CATALOG = """
SELECT 'table', c.relname, c.relname,
       'rls=' || c.relrowsecurity::text || ' ' || COALESCE((
         SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                || COALESCE(' COLLATE ' || co.collname, '')
                || COALESCE(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''), ', '
                ORDER BY a.attnum)
         FROM pg_attribute a
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
       || COALESCE((SELECT '; ' || string_agg(pg_get_constraintdef(k.oid), '; '
                    ORDER BY pg_get_constraintdef(k.oid))
                    FROM pg_constraint k WHERE k.conrelid = c.oid), '')
FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind IN ('r', 'p', 'f')
UNION ALL
SELECT CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'view' END, c.relname, c.relname,
       CASE c.relkind WHEN 'S' THEN '' ELSE pg_get_viewdef(c.oid) END
FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relkind IN ('v', 'm', 'S')
UNION ALL
SELECT 'index', i.relname, t.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
WHERE i.relnamespace = %(ns)s
UNION ALL
SELECT 'trigger', g.tgname, t.relname, pg_get_triggerdef(g.oid) || ' enabled=' || g.tgenabled::text
FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid
WHERE t.relnamespace = %(ns)s AND NOT g.tgisinternal
UNION ALL
SELECT 'rule', r.rulename, t.relname, pg_get_ruledef(r.oid)
FROM pg_rewrite r JOIN pg_class t ON t.oid = r.ev_class
WHERE t.relnamespace = %(ns)s AND t.relkind NOT IN ('v', 'm')
UNION ALL
SELECT 'policy', p.polname, t.relname, p.polcmd::text || ' ' || COALESCE(pg_get_expr(p.polqual, p.polrelid), '')
FROM pg_policy p JOIN pg_class t ON t.oid = p.polrelid WHERE t.relnamespace = %(ns)s
UNION ALL
SELECT 'function', p.proname, '', pg_get_functiondef(p.oid)
FROM pg_proc p WHERE p.pronamespace = %(ns)s
"""


def schema_of(
    conn: psycopg.Connection[tuple[object, ...]], schema: str, alias: str = ""
) -> Objects:
    """Every object of ``schema`` in the catalog, its definition with the schema's name
    (and ``alias``, another name it is printed by) left out."""
    ns = conn.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [schema]).fetchone()
    if ns is None:
        return {}
    names = "|".join(re.escape(_quoted(n)) for n in (schema, alias) if n)
    prefix = re.compile(r"(?<![\w\"])(?:" + names + r")\.")
    found: Objects = {}
    for kind, name, table, sql in conn.execute(_CATALOG, {"ns": ns[0]}):
        text = re.sub(r"\s+", " ", prefix.sub("", str(sql))).strip()
        key = str(name)
        if key in found:  # a trigger, rule or policy named like another object
            key = f"{name} on {table}"
        found[key] = (str(kind), str(table), text)
    return found


def _quoted(name: str) -> str:
    """``name`` as PostgreSQL prints it in a definition (quoted only when it must be)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return ident(name)


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


_EXPECTED: dict[str, Objects] = {}


def expected_schema(conn: psycopg.Connection[tuple[object, ...]]) -> Objects:
    """What lottrace's migrations make, as the catalog shows it on this server.

    The migrations are applied to the session's own temporary schema
    (``pg_temp``: no privilege beyond the TEMP one ``verify`` needs anyway)
    inside a savepoint that is rolled back, so nothing stays; once per
    process and server version.
    """
    version = str(conn.info.server_version)
    cached = _EXPECTED.get(version)
    if cached is not None:
        return cached
    own = conn.info.transaction_status == 0  # idle: make one for the savepoint
    if own:
        conn.execute("BEGIN")
    try:
        conn.execute("SAVEPOINT lottrace_expected")
        try:
            conn.execute("SET LOCAL search_path TO pg_temp")
            apply_migrations(conn, "pg_temp", "0" * 32, "0" * 64, functions_in="pg_temp")
            temp = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE oid = pg_my_temp_schema()"
            ).fetchone()
            made = schema_of(conn, str(temp[0]), alias="pg_temp") if temp else {}
        finally:
            conn.execute("ROLLBACK TO SAVEPOINT lottrace_expected")
            conn.execute("RELEASE SAVEPOINT lottrace_expected")  # search_path as it was
    finally:
        if own:
            conn.execute("ROLLBACK")
    _EXPECTED[version] = made
    return made
