"""The ledger's guarantees: append-only, content-addressed, chained, atomic, rebuildable.

The tests that take the ``ledger`` fixture run on every backend (SQLite and
PostgreSQL, see ``conftest.BACKENDS``); those that look at SQLite's own
files and migrations take ``sqlite_ledger`` or a file path.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from lottrace.errors import IntegrityViolation, InvalidEvent, LedgerError, RuleViolation, UnknownLot
from lottrace.events import event_id, parse_event
from lottrace.ledger import Ledger
from lottrace.readers import iter_events

from factories import batch, chain, correction, drying, harvest


@pytest.fixture
def ledger(ledger_target: str) -> Any:
    """A fresh ledger on each backend."""
    with Ledger.create(ledger_target) as led:
        yield led


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Any:
    with Ledger.create(tmp_path / "l.db") as led:
        yield led


def _on_postgres(ledger: Ledger) -> bool:
    return type(ledger.store).__name__ == "PostgresStorage"


def test_events_table_rejects_update_and_delete(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    statements = ["UPDATE events SET body='{}' WHERE seq=1", "DELETE FROM events WHERE seq=1"]
    refused: type[Exception] = sqlite3.IntegrityError
    if _on_postgres(ledger):
        import psycopg

        refused = psycopg.IntegrityError
        statements.append("TRUNCATE events")
    for sql in statements:
        with pytest.raises(refused, match="append-only"):
            ledger.conn.execute(sql)
    assert ledger.verify().events == 7


def _tamper(where: Ledger | Path, *sql: str) -> None:
    """Edit the ledger as a knowing tamperer would: the append-only triggers dropped (on
    PostgreSQL, disabled), then put back."""
    if isinstance(where, Ledger) and _on_postgres(where):
        import psycopg

        with psycopg.connect(where.store.uri) as pg:  # type: ignore[attr-defined]
            pg.execute("ALTER TABLE events DISABLE TRIGGER USER")
            for s in sql:
                pg.execute(s)  # type: ignore[arg-type]
            pg.execute("ALTER TABLE events ENABLE TRIGGER USER")
        return
    path = where.path if isinstance(where, Ledger) else where
    con = sqlite3.connect(path)
    guards = con.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
    ).fetchall()
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    con.execute("DROP TRIGGER IF EXISTS events_no_delete")
    for s in sql:
        con.execute(s)
    for (guard,) in guards:
        con.execute(guard)
    con.commit()
    con.close()


def test_verify_names_an_edited_row(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    ledger.verify()
    _tamper(ledger, "UPDATE events SET body=replace(body, '1000.0', '1500.0') WHERE seq=1")
    with pytest.raises(IntegrityViolation, match=r"row seq 1: body does not hash") as info:
        ledger.verify()
    assert info.value.seq == 1


@pytest.mark.parametrize(
    ("sql", "seq"),
    [
        ("DELETE FROM events WHERE seq=3", 4),
        ("UPDATE events SET seq = 100 WHERE seq = 2", 3),
        (
            "INSERT INTO events SELECT 8, 'ab'||substr(event_id,3), type, time, lot, body, prev_hash, hash FROM events WHERE seq=7",
            8,
        ),
    ],
    ids=["deleted-row", "moved-row", "forged-row"],
)
def test_verify_names_first_bad_row(ledger: Ledger, sql: str, seq: int) -> None:
    ledger.append(batch(*chain()))
    _tamper(ledger, sql)
    with pytest.raises(IntegrityViolation) as info:
        ledger.verify()
    assert info.value.seq == seq


def test_verify_expect_detects_truncated_tail(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    anchor = ledger.verify().head
    assert ledger.verify(expect=anchor).head == anchor
    _tamper(ledger, "DELETE FROM events WHERE seq=7")
    with pytest.raises(IntegrityViolation, match="row seq 7: missing"):
        ledger.verify()  # the head recorded in meta says the log went on ...
    _tamper(
        ledger,
        "UPDATE meta SET value = '6 ' || (SELECT hash FROM events WHERE seq=6) WHERE key='head'",
    )
    with pytest.raises(IntegrityViolation, match="derived table lots: row lot=M1 differs"):
        ledger.verify()  # ... and the derived tables still hold the row cut off ...
    ledger.rebuild()
    ledger.verify()  # ... but one who also rewrites meta and rebuilds leaves a valid chain ...
    with pytest.raises(IntegrityViolation, match="never reached the expected head"):
        ledger.verify(expect=anchor)  # ... but not one that reaches the anchor


def test_chains_of_two_ledgers_differ_and_cannot_be_swapped(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "a.db") as a, Ledger.create(tmp_path / "b.db") as b:
        a.append(batch(*chain()))
        b.append(batch(*chain()))
        assert a.head()[1] != b.head()[1]
        rows = a.conn.execute("SELECT * FROM events").fetchall()
    _tamper(tmp_path / "b.db", "DELETE FROM events")
    con = sqlite3.connect(tmp_path / "b.db")
    con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()
    with (
        Ledger(tmp_path / "b.db") as b,
        pytest.raises(IntegrityViolation, match="row seq 1: prev_hash"),
    ):
        b.verify()


def test_reimport_is_a_counted_noop(ledger: Ledger) -> None:
    first = ledger.append(batch(*chain()))
    head = ledger.head()
    again = ledger.append(batch(*chain()))
    assert (first.added, first.duplicates) == (7, 0)
    assert (again.added, again.duplicates) == (0, 7)
    assert ledger.head() == head


def test_duplicate_inside_one_batch_is_counted(ledger: Ledger) -> None:
    h = harvest("H1")
    report = ledger.append(batch(h, dict(h)))
    assert (report.added, report.duplicates) == (1, 1)


def test_two_sites_merge_by_event_id(tmp_path: Path) -> None:
    events = chain()
    with Ledger.create(tmp_path / "a.db") as a, Ledger.create(tmp_path / "b.db") as b:
        a.append(batch(*events[:5]))
        b.append(batch(*events[:3]))
        # b receives a's log: the three it has are skipped, two are new
        report = b.append(batch(*events[:5]))
        assert (report.added, report.duplicates) == (2, 3)
        ids = lambda led: {r[0] for r in led.conn.execute("SELECT event_id FROM events")}  # noqa: E731
        assert ids(a) == ids(b)


def test_bad_line_500_of_1000_leaves_ledger_unchanged(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append(batch(harvest("SEED")))
    before = (ledger.stats()["events"], ledger.head())
    path = tmp_path / "big.jsonl"
    lines = [json.dumps(harvest(f"L{i:04d}", 1 + i % 20, 500)) for i in range(1, 1001)]
    bad = json.loads(lines[499])
    bad["kg"] = -5
    lines[499] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidEvent, match=rf"^{path}:500: lot L0500: field 'kg'"):
        ledger.append(iter_events(path))
    assert (ledger.stats()["events"], ledger.head()) == before
    ledger.verify()


def test_rule_violation_late_in_batch_writes_nothing(ledger: Ledger) -> None:
    events = [harvest(f"L{i:04d}", 1) for i in range(6000)]  # crosses the flush chunk
    events.append(drying("NOPE", 5))
    with pytest.raises(RuleViolation):
        ledger.append(batch(*events))
    assert ledger.stats() == {**ledger.stats(), "events": 0, "lots": 0}
    assert ledger.conn.execute("SELECT COUNT(*) FROM event_lots").fetchone()[0] == 0


def _append_worker(args: tuple[str, int]) -> int:
    path, k = args
    with Ledger(path) as led:
        n = 0
        for j in range(20):  # many small batches, so the two writers interleave
            events = [harvest(f"P{k}-{j}-{i}", 1 + i % 20, 100 + i) for i in range(25)]
            n += led.append(batch(*events)).added
        return n


def test_two_processes_append_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    Ledger.create(path).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        added = pool.map(_append_worker, [(str(path), 1), (str(path), 2)])
    assert added == [500, 500]
    with Ledger(path) as led:
        assert led.verify().events == 1000


def test_rebuild_equals_maintained_tables(ledger: Ledger) -> None:
    events = chain()
    extra = drying("H1", 12, 190)  # logged, then voided
    ledger.append(batch(*events[:4]))
    ledger.append(batch(extra, correction(event_id(parse_event(extra)), day=13)))
    ledger.append(batch(*events[4:], harvest("H9", 30)))
    maintained = ledger.derived_snapshot()
    assert maintained["voided"]
    assert ledger.rebuild() == 10
    assert ledger.derived_snapshot() == maintained


def test_correction_voids_a_merge_and_returns_its_kg(ledger: Ledger) -> None:
    events = chain()
    ledger.append(batch(*events[:5]))
    merge_id = event_id(parse_event(events[4]))
    assert ledger.lot("H1").drawn_kg == 200  # type: ignore[union-attr]
    report = ledger.append(batch(correction(merge_id, day=16, reason="did_not_occur")))
    assert report.added == 1
    assert ledger.lot("G1") is None
    assert ledger.lot("H1").drawn_kg == 0  # type: ignore[union-attr]
    assert ledger.conn.execute("SELECT COUNT(*) FROM links").fetchone()[0] == 0
    assert ledger.event(merge_id).void
    with pytest.raises(UnknownLot):
        ledger.lot_events("G1")
    # the corrected event is still in the log, untouched
    assert ledger.verify().events == 6
    snapshot = ledger.derived_snapshot()
    ledger.rebuild()
    assert ledger.derived_snapshot() == snapshot


def test_correction_in_same_batch_as_its_target(ledger: Ledger) -> None:
    wrong = drying("H1", 10, 250)
    right = drying("H1", 10, 200, note="re-weighed")
    ledger.append(
        batch(harvest("H1"), wrong, correction(event_id(parse_event(wrong)), day=10), right)
    )
    assert ledger.lot("H1").kg == 200  # type: ignore[union-attr]
    assert [e.event.kg for e in ledger.lot_events("H1")] == [1000, 200]  # type: ignore[attr-defined]


def test_void_event_cannot_be_voided_again(ledger: Ledger) -> None:
    d = drying("H1")
    eid = event_id(parse_event(d))
    ledger.append(batch(harvest("H1"), d, correction(eid)))
    with pytest.raises(RuleViolation, match="already void"):
        ledger.append(batch(correction(eid, day=61)))


def test_migrations_are_recorded(sqlite_ledger: Ledger) -> None:
    rows = sqlite_ledger.conn.execute(
        "SELECT migration_set, name FROM _sqlite_migrations"
    ).fetchall()
    assert rows == [
        ("lottrace", "001_log_and_derived_tables"),
        ("lottrace", "002_head_in_meta"),
        ("lottrace", "003_drop_seq_indexes"),
        ("lottrace", "004_lot_base_kg"),
        ("lottrace", "005_epcis_id_indexes"),
        ("lottrace", "006_events_by_rare_type"),
        ("lottrace", "007_legs"),
        ("lottrace", "008_sources"),
        ("lottrace", "009_leg_days"),
    ]


def test_a_pending_migration_is_applied_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Ledger.create(path).close()
    con = sqlite3.connect(path)  # as a ledger made before migration 002 was
    con.execute("DELETE FROM _sqlite_migrations WHERE name != '001_log_and_derived_tables'")
    con.execute("DROP TABLE legs")  # and before 007
    con.execute("DROP TABLE leg_days")  # and before 009
    con.execute("DROP INDEX events_by_rare_type")  # and before 006
    con.execute("DROP TABLE sources")  # and before 008
    con.execute("DROP INDEX events_hash_id")  # and before 005
    con.execute("DROP INDEX events_partner_id")
    con.execute("ALTER TABLE lots DROP COLUMN base_kg")  # and before 004
    con.execute("DELETE FROM meta WHERE key = 'head'")
    con.execute("CREATE INDEX event_lots_seq ON event_lots (seq)")
    con.execute("CREATE INDEX links_seq ON links (seq)")
    con.commit()
    con.close()
    with Ledger(path) as led:
        names = [r[0] for r in led.conn.execute("SELECT name FROM _sqlite_migrations")]
        assert names == [
            "001_log_and_derived_tables",
            "002_head_in_meta",
            "003_drop_seq_indexes",
            "004_lot_base_kg",
            "005_epcis_id_indexes",
            "006_events_by_rare_type",
            "007_legs",
            "008_sources",
            "009_leg_days",
        ]
        assert (
            led.conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()[0][:2] == "0 "
        )


def test_missing_file_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="run 'lottrace init'"):
        Ledger(tmp_path / "nope.db")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a usable lottrace ledger"):
        Ledger(junk)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (id)")
    con.close()
    with pytest.raises(LedgerError, match="not a lottrace ledger"):
        Ledger(other)


def test_unknown_lot_suggests_near_codes(ledger: Ledger) -> None:
    ledger.append(batch(harvest("APR-25-H0231-1")))
    with pytest.raises(UnknownLot, match="did you mean APR-25-H0231-1"):
        ledger.require_lot("H0231-1")


def test_foreign_and_empty_files_are_left_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (id)")
    con.commit()
    con.close()
    before = other.read_bytes()
    for opener in (Ledger, Ledger.create):
        with pytest.raises(LedgerError, match="not a lottrace ledger"):
            opener(other)
    assert other.read_bytes() == before
    assert not (tmp_path / "other.sqlite-wal").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(LedgerError, match="is empty, not a lottrace ledger"):
        Ledger(empty)
    assert empty.read_bytes() == b""
    with pytest.raises(LedgerError, match=r"folder .* does not exist"):
        Ledger(tmp_path / "nope" / "x.db")
    with pytest.raises(LedgerError, match="is a folder"):
        Ledger(tmp_path)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET type = 'drying' WHERE seq = 1",
        "UPDATE events SET lot = 'OTHER' WHERE seq = 1",
        "UPDATE events SET time = '2025-01-01T00:00:00.000000Z' WHERE seq = 1",
        # the same instant, in forms fromisoformat reads but that sort differently
        "UPDATE events SET time = replace(time, 'T', ' ') WHERE seq = 1",
        "UPDATE events SET time = replace(time, 'T', 'X') WHERE seq = 1",
        "UPDATE events SET time = '2025-W18-4T' || substr(time, 12) WHERE seq = 1",
        "UPDATE events SET body = replace(body, '{', '{ ') WHERE seq = 1",
    ],
    ids=[
        "type-column",
        "lot-column",
        "time-column",
        "time-with-space",
        "time-with-x",
        "time-as-iso-week",
        "non-canonical-body",
    ],
)
def test_verify_checks_columns_against_the_body(ledger: Ledger, sql: str) -> None:
    ledger.append(batch(*chain()))
    _tamper(ledger, sql)
    with pytest.raises(
        IntegrityViolation, match="row seq 1: the body is not a canonical event"
    ) as info:
        ledger.verify()
    assert info.value.seq == 1


def test_an_old_ledger_drops_its_seq_indexes_and_still_voids(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    dry = drying("H1")
    with Ledger.create(path) as led:
        led.append(batch(harvest("H1"), dry))
    con = sqlite3.connect(path)  # as a ledger made before migration 003 was
    con.execute("CREATE INDEX event_lots_seq ON event_lots (seq)")
    con.execute("CREATE INDEX links_seq ON links (seq)")
    con.execute(
        "DELETE FROM _sqlite_migrations WHERE name IN "
        "('003_drop_seq_indexes', '004_lot_base_kg', '005_epcis_id_indexes', '006_events_by_rare_type', '007_legs', '008_sources', '009_leg_days')"
    )
    con.execute("ALTER TABLE lots DROP COLUMN base_kg")  # and before 004
    con.execute("DROP TABLE legs")  # and before 007
    con.execute("DROP TABLE leg_days")  # and before 009
    con.execute("DROP INDEX events_by_rare_type")  # and before 006
    con.execute("DROP TABLE sources")  # and before 008
    con.execute("DROP INDEX events_hash_id")  # and before 005
    con.execute("DROP INDEX events_partner_id")
    con.commit()
    con.close()
    with Ledger(path) as led:
        indexes = {
            r[0] for r in led.conn.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert not {"event_lots_seq", "links_seq"} & indexes
        led.append(batch(correction(event_id(parse_event(dry)))))
        assert led.lot("H1").stage == 0  # type: ignore[union-attr]
        maintained = led.derived_snapshot()
        led.rebuild()
        assert led.derived_snapshot() == maintained


def test_an_old_ledger_gets_base_kg_and_is_refolded(tmp_path: Path) -> None:
    """Migration 004 adds lots.base_kg and folds the log again, in one transaction."""
    path = tmp_path / "old.db"
    with Ledger.create(path) as led:
        led.append(batch(harvest("H1"), drying("H1", 10, 200), drying("H1", 11, 196)))
        led.append(batch(drying("H1", 12, 199)))
        expected = led.derived_snapshot()
    con = sqlite3.connect(path)  # as a ledger made before migration 004 was
    con.execute("ALTER TABLE lots DROP COLUMN base_kg")
    con.execute("UPDATE lots SET kg = 9999")  # the refold must not keep this
    con.execute(
        "DELETE FROM _sqlite_migrations WHERE name IN ('004_lot_base_kg', '005_epcis_id_indexes', '006_events_by_rare_type', '007_legs', '008_sources', '009_leg_days')"
    )
    con.execute("DROP TABLE legs")  # and before 007
    con.execute("DROP TABLE leg_days")  # and before 009
    con.execute("DROP INDEX events_by_rare_type")  # and before 006
    con.execute("DROP TABLE sources")  # and before 008
    con.execute("DROP INDEX events_hash_id")  # and before 005
    con.execute("DROP INDEX events_partner_id")
    con.commit()
    con.close()
    with Ledger(path) as led:
        st = led.lot("H1")
        assert st is not None and st.base_kg == 196 and st.kg == 199
        assert led.derived_snapshot() == expected
        with pytest.raises(RuleViolation, match="weight-gain"):
            led.append(batch(drying("H1", 13, 201)))  # 2.6 % over the lowest, 196 kg


def test_a_batch_makes_no_reference_cycles(tmp_path: Path) -> None:
    """append turns the cyclic garbage collector off for its batch: only safe while this holds."""
    import gc

    from lottrace.generate import write_jsonl
    from lottrace.pipeline import Hooks, prepared_events

    season = tmp_path / "s.jsonl"
    write_jsonl(season, 40, seed=4)
    events = list(iter_events(season))
    hooks = Hooks(print, print, lambda n: None)
    with (
        Ledger.create(tmp_path / "a.db") as a,
        Ledger.create(tmp_path / "b.db") as b,
        Ledger.create(tmp_path / "c.db") as c,
        Ledger.create(tmp_path / "d.db") as d,
    ):
        stream = prepared_events(lambda h: events, hooks, parallel=True)
        c.append(batch(*chain()))
        export_id = c.lot_events("M1")[-1].event_id
        gc.collect()
        gc.disable()
        try:
            a.append(events[: len(events) // 2])
            a.append(events)  # half of them duplicates
            b.append_prepared(stream)  # through the reader process
            c.append(batch(correction(export_id, day=61)))  # a void and a refold
            d.append(iter_events(season))  # read and validated inside the batch
            assert gc.collect() == 0
        finally:
            gc.enable()
            stream.close()
        assert c.lot("M1") is not None and c.lot("M1").drawn_kg == 0  # the refold happened


def test_the_collector_is_as_it_was_after_a_batch(ledger: Ledger) -> None:
    import gc

    ledger.append(batch(*chain()))
    assert gc.isenabled()
    with pytest.raises(RuleViolation, match="already exists"):
        ledger.append(batch(harvest("H1", 3)))
    assert gc.isenabled()
    gc.disable()
    try:
        ledger.append(batch(harvest("H7", 70)))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_read_commands_upgrade_an_older_ledger_and_verify_does_not(tmp_path: Path) -> None:
    """A ledger from before 004: `stats` upgrades it first (it is writable); `verify` never writes."""
    from click.testing import CliRunner

    from lottrace.cli import cli

    path = tmp_path / "old.db"
    with Ledger.create(path) as led:
        led.append(batch(harvest("H1"), drying("H1", 10, 200)))
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE lots DROP COLUMN base_kg")
    con.execute(
        "DELETE FROM _sqlite_migrations WHERE name IN ('004_lot_base_kg', '005_epcis_id_indexes', '006_events_by_rare_type', '007_legs', '008_sources', '009_leg_days')"
    )
    con.execute("DROP TABLE legs")  # and before 007
    con.execute("DROP TABLE leg_days")  # and before 009
    con.execute("DROP INDEX events_by_rare_type")  # and before 006
    con.execute("DROP TABLE sources")  # and before 008
    con.execute("DROP INDEX events_hash_id")  # and before 005
    con.execute("DROP INDEX events_partner_id")
    con.commit()
    con.close()
    before = path.read_bytes()
    r = CliRunner().invoke(cli, ["--db", str(path), "verify"])
    assert r.exit_code == 1 and "older lottrace" in r.stderr and "lottrace init" in r.stderr
    assert path.read_bytes() == before
    r = CliRunner().invoke(cli, ["--db", str(path), "stats", "--json"])
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(cli, ["--db", str(path), "verify"])
    assert r.exit_code == 0, r.stderr
    with Ledger(path) as led:
        assert led.lot("H1").base_kg == 200  # type: ignore[union-attr]


def test_foreign_events_are_found_by_hash_through_an_index(sqlite_ledger: Ledger) -> None:
    """Migration 005: a second capture and ``--event-id`` look foreign events up by index."""
    for expr in ("$.hash_id", "$.partner_event_id"):
        plan = " ".join(
            str(r[-1])
            for r in sqlite_ledger.conn.execute(
                "EXPLAIN QUERY PLAN SELECT event_id FROM events "
                f"WHERE type = 'epcis' AND json_extract(body, '{expr}') = 'x'"
            )
        )
        assert "USING INDEX events_" in plan, plan


def test_events_of_types_reads_only_those_types_in_log_order(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    first = ledger.append(batch(harvest("H9", day=2)))
    assert first.added == 1
    h9 = event_id(parse_event(harvest("H9", day=2)))
    ledger.append(batch(correction(h9)))
    harvests = list(ledger.events_of_types(["harvest"]))
    assert [s.event.type for s in harvests] == ["harvest"] * len(harvests)
    all_harvests = [s for s in ledger.iter_events() if s.event.type == "harvest"]
    assert [(s.seq, s.event_id, s.void) for s in harvests] == [
        (s.seq, s.event_id, s.void) for s in all_harvests
    ]
    assert [s.void for s in harvests if s.event_id == h9] == [True]
    both = {s.event.type for s in ledger.events_of_types(["drying", "correction"])}
    assert both == {"drying", "correction"}
    assert list(ledger.events_of_types([])) == []


# --------------------------------------------------------------------------- PostgreSQL's own


@pytest.fixture
def pg_ledger(pg_uri: str) -> Any:
    with Ledger.create(pg_uri) as led:
        yield led


def test_postgres_migrations_are_recorded(pg_ledger: Ledger) -> None:
    rows = pg_ledger.conn.execute("SELECT n, name FROM _lottrace_migrations").fetchall()
    assert rows == [
        (1, "001_ledger"),
        (2, "002_legs"),
        (3, "003_events_by_rare_type"),
        (4, "004_sources"),
        (5, "005_leg_days"),
    ]


def test_postgres_migration_003_reaches_a_ledger_made_before_it(pg_uri: str) -> None:
    """A ledger that ran only 001 gets the rare-type index on open; its schema checks."""
    with Ledger.create(pg_uri) as led:
        led.append(batch(*chain()))
        led.conn.execute("DROP INDEX events_by_rare_type")
        led.conn.execute("DELETE FROM _lottrace_migrations WHERE n = 3")
        with pytest.raises(IntegrityViolation, match="index events_by_rare_type is missing"):
            led.verify()
    with Ledger(pg_uri) as led:
        names = [r[0] for r in led.conn.execute("SELECT name FROM _lottrace_migrations ORDER BY n")]
        assert names == [
            "001_ledger",
            "002_legs",
            "003_events_by_rare_type",
            "004_sources",
            "005_leg_days",
        ]
        assert led.verify().events == 7
        assert [s.event.type for s in led.events_of_types(["export"])] == ["export"]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE _lottrace_migrations SET n = 9 WHERE n = 3",  # numbered unlike lottrace
        "DELETE FROM _lottrace_migrations WHERE n = 1",  # the first one gone
    ],
    ids=["renumbered", "first-gone"],
)
def test_postgres_refuses_migration_records_that_lie(pg_uri: str, sql: str) -> None:
    with Ledger.create(pg_uri) as led:
        led.conn.execute(sql)
    with pytest.raises(IntegrityViolation, match="migration records"):
        Ledger(pg_uri)


def test_postgres_reads_registries_through_the_rare_type_index(
    pg_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on SQLite (migration 006): the rare types are found through the partial index."""
    pg_ledger.append(batch(*chain()))
    store = pg_ledger.store
    asked: list[tuple[str, Any]] = []
    stream = store._stream  # type: ignore[attr-defined]

    def spy(sql: str, params: Any = None) -> Any:
        asked.append((sql, params))
        return stream(sql, params)

    monkeypatch.setattr(store, "_stream", spy)

    def plan(types: list[str]) -> str:
        asked.clear()
        list(pg_ledger.events_of_types(types))
        sql, params = asked[-1]
        rows = pg_ledger.conn.execute("EXPLAIN " + sql, params).fetchall()
        return " ".join(str(r[0]) for r in rows)

    pg_ledger.conn.execute("SET enable_seqscan = off")
    for rare in (["certificate"], ["export"], ["plot", "dds", "master_data"]):
        assert "events_by_rare_type" in plan(rare), rare
    assert "events_by_rare_type" not in plan(["harvest"])  # the many are not in it
    assert [s.event.type for s in pg_ledger.events_of_types(["export"])] == ["export"]


def test_postgres_finds_foreign_events_by_hash_through_an_index(pg_ledger: Ledger) -> None:
    pg_ledger.conn.execute("SET enable_seqscan = off")
    for key, index in (("hash_id", "events_hash_id"), ("partner_event_id", "events_partner_id")):
        plan = " ".join(
            str(r[0])
            for r in pg_ledger.conn.execute(
                "EXPLAIN SELECT event_id FROM events "
                f"WHERE type = 'epcis' AND ((body::jsonb) ->> '{key}') = 'x'"
            )
        )
        assert index in plan, plan


@pytest.mark.parametrize(
    ("sql", "named", "repaired"),
    [
        (
            "ALTER TABLE events DISABLE TRIGGER events_no_update",
            "trigger events_no_update is not as lottrace made it",
            "dropped trigger events_no_update",
        ),
        (
            "CREATE TRIGGER lots_pass BEFORE INSERT ON lots FOR EACH ROW "
            "EXECUTE FUNCTION lottrace_append_only()",
            "trigger lots_pass on lots is not lottrace's",
            "dropped trigger lots_pass",
        ),
        (
            "CREATE RULE events_nothing AS ON INSERT TO events DO INSTEAD NOTHING",
            "rule events_nothing is not lottrace's",
            "dropped rule events_nothing",
        ),
        (
            "DROP INDEX links_src",
            "lottrace's index links_src is missing",
            None,
        ),
        (
            "CREATE VIEW lots_view AS SELECT * FROM lots",
            "view lots_view is not lottrace's",
            "dropped view lots_view",
        ),
        (
            "DROP INDEX events_by_rare_type",
            "lottrace's index events_by_rare_type is missing",
            None,
        ),
        (
            "DROP INDEX events_by_rare_type; "
            "CREATE INDEX events_by_rare_type ON events (type, seq) WHERE type <> 'harvest'",
            "index events_by_rare_type is not as lottrace made it",
            None,
        ),
    ],
    ids=[
        "disabled-trigger",
        "planted-trigger",
        "planted-rule",
        "dropped-index",
        "added-view",
        "dropped-rare-index",
        "changed-rare-index",
    ],
)
def test_postgres_verify_names_a_changed_schema_and_rebuild_restores_it(
    pg_ledger: Ledger, sql: str, named: str, repaired: str | None
) -> None:
    pg_ledger.append(batch(*chain()))
    pg_ledger.conn.execute(sql)
    with pytest.raises(IntegrityViolation, match=named):
        pg_ledger.verify()
    with pytest.raises(IntegrityViolation, match=named):
        pg_ledger.append(batch(harvest("H7", 70)))  # nothing appended through it
    pg_ledger.rebuild()
    if repaired is not None:
        assert repaired in pg_ledger.repaired
    assert pg_ledger.verify().events == 7
