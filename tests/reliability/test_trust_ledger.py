"""What ``verify`` proves beyond the log, and a ledger that may not be written.

Issue #14, "verify proves everything that queries read". Each case edits a
real ledger with plain ``sqlite3`` behind lottrace's back: a derived row added,
edited or deleted, a trigger, index, view or table planted or dropped, a
migration record deleted (to have a migration run again) or one from a newer
lottrace. ``lottrace verify`` must exit 1 with one line naming the table and
the first differing key or object, and ``lottrace rebuild`` must put the file
back (derived rows and schema equal to the untouched ledger's).

Then the read-only ledger: every read command works on a file and folder that
cannot be written (``chattr +i``, which binds root too), and never changes the
file it reads.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lottrace.errors import IntegrityViolation, LedgerError
from lottrace.events import event_id, parse_event
from lottrace.ledger import Ledger
from lottrace.storage.sqlite_schema import MIGRATION_NAMES

from ._helpers import FIGURES, derived_digest, invoke, run_cli, state
from ._season import season
from factories import batch, chain, correction, drying, harvest

N = 21 + 3  # chain(), a season of 14, and a drying voided by a correction


def _schema(db: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    dried = drying("V1", 12, 80)
    with Ledger.create(path) as led:
        led.append(batch(*chain()))
        led.append(batch(*season("T", 14)))
        led.append(batch(harvest("V1", 3, 400), dried))
        led.append(batch(correction(event_id(parse_event(dried)))))
        assert led.verify().events == N
        assert led.conn.execute("SELECT COUNT(*) FROM voided").fetchone()[0] == 1
    return path


def _sql(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db)
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()


def _refused(db: Path, says: str) -> str:
    r = invoke(db, "verify")
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert says in lines[0], lines[0]
    return lines[0]


def _repaired(db: Path, digest: str, schema: list[tuple[str, str, str]]) -> None:
    r = invoke(db, "rebuild")
    assert r.returncode == 0, r.stderr
    r = invoke(db, "verify")
    assert r.returncode == 0, r.stderr
    assert derived_digest(db) == digest
    assert _schema(db) == schema


DERIVED_CASES = {
    "link_added": (
        ["INSERT INTO links VALUES ('M1', 'LAUNDERED', 12, 50.0, '2025-05-01T08:00:00.000000Z')"],
        "derived table links: row dst=M1 src=LAUNDERED seq=12 is not what the log gives "
        "(added behind lottrace's back); run 'lottrace rebuild'",
    ),
    "link_kg_edited": (
        ["UPDATE links SET kg = kg * 10 WHERE dst = 'G1'"],
        "derived table links: row dst=G1 src=H1 seq=5 differs from what the log gives "
        "(kg is 2000.0, the log gives 200.0",
    ),
    "link_deleted": (
        ["DELETE FROM links WHERE dst = 'M2'"],
        "derived table links: row dst=M2 src=G1 seq=6 is missing",
    ),
    "lot_weight_edited": (
        ["UPDATE lots SET kg = 2000.0 WHERE lot = 'M1'"],
        "derived table lots: row lot=M1 differs from what the log gives (kg is 2000.0, "
        "the log gives 200.0",
    ),
    "lot_qc_edited": (
        ["UPDATE lots SET last_qc = 'pass' WHERE lot = 'T-1-G'"],
        "derived table lots: row lot=T-1-G differs",
    ),
    "lot_deleted": (
        ["DELETE FROM lots WHERE lot = 'H2'"],
        "derived table lots: row lot=H2 is missing",
    ),
    "lot_added": (
        [
            "INSERT INTO lots SELECT 'GHOST', created_by, stage, first_time, last_time, kg, "
            "drawn_kg, last_qc, last_site, last_event, n_events, base_kg FROM lots WHERE lot = 'H1'"
        ],
        "derived table lots: row lot=GHOST is not what the log gives (added",
    ),
    "event_lots_deleted": (
        ["DELETE FROM event_lots WHERE lot = 'M1' AND type = 'export'"],
        "derived table event_lots: row lot=M1 ",
    ),
    "event_lots_site_edited": (
        ["UPDATE event_lots SET site = 'farm:ELSEWHERE' WHERE lot = 'H1' AND seq = 1"],
        "derived table event_lots: row lot=H1 time=",
    ),
    "voided_deleted": (
        ["DELETE FROM voided"],
        "derived table voided: row event_id=",
    ),
    "voided_reason_edited": (
        ["UPDATE voided SET reason = 'other'"],
        "(reason is 'other', the log gives 'incorrect_data'",
    ),
    "voided_added": (
        [
            "INSERT INTO voided SELECT event_id, 'M1', event_id, 'x' FROM events "
            "WHERE type = 'export' LIMIT 1"
        ],
        "derived table voided: row event_id=",
    ),
}


@pytest.mark.parametrize("case", list(DERIVED_CASES))
def test_verify_names_a_derived_row_changed_behind_its_back(db: Path, case: str) -> None:
    digest, schema = derived_digest(db), _schema(db)
    statements, says = DERIVED_CASES[case]
    _sql(db, *statements)
    before = state(db)
    line = _refused(db, says)
    assert state(db) == before  # verify read, and only read
    FIGURES.setdefault("derived_cases", {})[case] = line.split(": derived table ", 1)[-1]
    _repaired(db, digest, schema)


SCHEMA_CASES = {
    "trigger_planted_on_lots": (
        [
            "CREATE TRIGGER lots_pass AFTER UPDATE ON lots "
            "BEGIN UPDATE lots SET last_qc = 'pass' WHERE lot = NEW.lot; END"
        ],
        "schema: trigger lots_pass on lots is not lottrace's (added behind its back); "
        "run 'lottrace rebuild'",
    ),
    "append_only_trigger_dropped": (
        ["DROP TRIGGER events_no_update"],
        "schema: lottrace's trigger events_no_update is missing (dropped behind its back)",
    ),
    "append_only_trigger_replaced": (
        [
            "DROP TRIGGER events_no_delete",
            "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT 1; END",
        ],
        "schema: trigger events_no_delete is not as lottrace made it",
    ),
    "index_planted": (
        ["CREATE INDEX links_kg ON links (kg)"],
        "schema: index links_kg on links is not lottrace's",
    ),
    "index_dropped": (
        ["DROP INDEX links_src"],
        "schema: lottrace's index links_src is missing",
    ),
    "view_planted": (
        ["CREATE VIEW lots_view AS SELECT * FROM lots"],
        "schema: view lots_view is not lottrace's",
    ),
    "table_planted": (
        ["CREATE TABLE notes (x)"],
        "schema: table notes is not lottrace's",
    ),
}


@pytest.mark.parametrize("case", list(SCHEMA_CASES))
def test_verify_names_a_schema_change(db: Path, case: str) -> None:
    digest, schema = derived_digest(db), _schema(db)
    statements, says = SCHEMA_CASES[case]
    _sql(db, *statements)
    line = _refused(db, says)
    FIGURES.setdefault("schema_cases", {})[case] = line.split(": schema: ", 1)[-1]
    _repaired(db, digest, schema)


def test_a_planted_trigger_cannot_sabotage_a_rebuild(db: Path) -> None:
    """A trigger on a derived table would rewrite what a rebuild writes: rebuild drops it first."""
    digest, schema = derived_digest(db), _schema(db)
    _sql(
        db,
        "CREATE TRIGGER launder AFTER INSERT ON lots BEGIN "
        "INSERT OR IGNORE INTO links VALUES (NEW.lot, 'LAUNDERED', 0, 999.0, NEW.first_time); END",
        "CREATE TRIGGER launder_events AFTER INSERT ON event_lots BEGIN "
        "UPDATE lots SET kg = 1e9 WHERE lot = NEW.lot; END",
    )
    r = invoke(db, "rebuild")
    assert r.returncode == 0, r.stderr
    assert derived_digest(db) == digest
    assert _schema(db) == schema
    assert "schema: dropped trigger launder" in r.stdout
    assert invoke(db, "verify").returncode == 0


def test_a_rebuild_refuses_a_changed_log_table(db: Path) -> None:
    _sql(db, "ALTER TABLE events ADD COLUMN note TEXT")
    before = _schema(db)
    _refused(db, "schema: table events is not as lottrace made it")
    r = invoke(db, "rebuild")
    assert r.returncode == 1 and "rebuild cannot restore the log" in r.stderr
    assert _schema(db) == before


def test_a_deleted_migration_record_is_refused_not_replayed(db: Path) -> None:
    """Deleting 002's record (and the head) would have 002 run again and record the head
    of rows added behind lottrace's back; every command refuses instead, changing nothing."""
    _sql(
        db,
        "DELETE FROM _sqlite_migrations WHERE name = '002_head_in_meta'",
        "DELETE FROM meta WHERE key = 'head'",
    )
    before = db.read_bytes()
    _refused(db, "migration record 002_head_in_meta is missing from _sqlite_migrations")
    for args in (["stats"], ["init"], ["rebuild"]):
        r = invoke(db, *args)
        assert r.returncode == 1 and "002_head_in_meta is missing" in r.stderr, (args, r.stderr)
    assert db.read_bytes() == before


def test_the_last_migration_record_deleted_is_refused(db: Path) -> None:
    """With the last record gone the records look like an old file's, but the schema is not."""
    last = MIGRATION_NAMES[-1]
    _sql(db, f"DELETE FROM _sqlite_migrations WHERE name = '{last}'")
    before = db.read_bytes()
    line = _refused(db, "a migration record was deleted behind lottrace's back")
    assert "schema: " in line
    assert invoke(db, "init").returncode == 1
    assert db.read_bytes() == before


def test_a_head_row_with_its_migration_unrecorded_is_refused(db: Path) -> None:
    """Records of an honest file from before 002, but a head row that 002 writes."""
    _sql(
        db,
        "DELETE FROM _sqlite_migrations WHERE name != '001_log_and_derived_tables'",
        "ALTER TABLE lots DROP COLUMN base_kg",
        "CREATE INDEX event_lots_seq ON event_lots (seq)",
        "CREATE INDEX links_seq ON links (seq)",
        "DROP INDEX events_by_rare_type",
        "DROP TABLE sources",
        "DROP INDEX events_hash_id",
        "DROP INDEX events_partner_id",
        "DROP TABLE legs",
        "DROP TABLE leg_days",
    )
    _refused(db, "meta row 'head' is present")


def test_a_ledger_from_a_newer_lottrace_is_refused_before_anything_runs(db: Path) -> None:
    _sql(
        db,
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
        "VALUES ('lottrace', '009_x', '2030-01-01')",
    )
    _sql(db, "PRAGMA journal_mode=DELETE")
    before = db.read_bytes()
    for args in (["verify"], ["stats"], ["init"], ["rebuild"], ["history", "H1"]):
        r = run_cli(db, *args) if args == ["verify"] else invoke(db, *args)
        assert r.returncode == 1, (args, r.stderr)
        assert r.stderr.strip() == (
            f"Error: {db} was written by a newer lottrace (migration 009_x); upgrade lottrace"
        ), r.stderr
    assert db.read_bytes() == before
    assert not Path(f"{db}-wal").exists()


def test_read_commands_never_change_the_file(db: Path, tmp_path: Path) -> None:
    """Read commands open read-only: no journal-mode switch, no migration, nothing written.

    The ledger is switched to rollback-journal mode first; a read that opened it
    for writing (as before) would switch it back to WAL, which changes the file.
    """
    _sql(db, "PRAGMA journal_mode=DELETE")
    before, mtime = db.read_bytes(), db.stat().st_mtime_ns
    for args in _read_commands(tmp_path):
        r = invoke(db, *args)
        assert _answered(r), (args, r.stderr)
        assert db.read_bytes() == before and db.stat().st_mtime_ns == mtime, args
    assert not Path(f"{db}-wal").exists()


def test_a_foreign_sqlite_file_is_left_untouched_by_read_commands(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (id)")
    con.commit()
    con.close()
    before = other.read_bytes()
    for args in (["verify"], ["stats"], ["history", "H1"]):
        r = invoke(other, *args)
        assert r.returncode == 1 and "not a lottrace ledger" in r.stderr, r.stderr
    with pytest.raises(LedgerError, match="not a lottrace ledger"):
        Ledger(other, read_only=True)
    assert other.read_bytes() == before
    assert not Path(f"{other}-wal").exists()


def _answered(r: subprocess.CompletedProcess[str]) -> bool:
    """The command gave its answer (certify's "no" is an answer, exit 1), not an error."""
    if r.returncode == 0:
        return "Error" not in r.stderr
    return r.returncode == 1 and "not physically traceable as organic" in r.stderr


def _read_commands(out: Path) -> list[list[str]]:
    return [
        ["verify"],
        ["verify", "--json"],
        ["stats"],
        ["history", "M1"],
        ["upstream", "M1"],
        ["downstream", "H1"],
        ["timeline", "M1"],
        ["certify", "M1", "--scheme", "organic"],
        ["eudr", "M1", "--check"],
        ["passport", "M1", "-o", str(out / "m1.html")],
        ["delays"],
        ["bottlenecks"],
        ["stuck"],
        ["epcis", "export", "-o", str(out / "e.jsonld")],
        ["datasette-metadata"],
    ]


def _chattr(flag: str, *paths: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    r = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return r.returncode == 0


@pytest.fixture
def frozen(db: Path, tmp_path: Path) -> Iterator[Path]:
    """The ledger in a folder that nobody can write, root included (``chattr +i``)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    path = folder / "ledger.db"
    shutil.copyfile(db, path)
    if not _chattr("+i", path, folder):
        pytest.skip("chattr +i is not available here (needs root and a file system with it)")
    try:
        with pytest.raises(OSError):  # the condition is real: root cannot write either
            (folder / "probe").write_text("x")
        yield path
    finally:
        _chattr("-i", path, folder)


def test_every_read_command_works_on_a_ledger_nobody_can_write(
    frozen: Path, tmp_path: Path
) -> None:
    before = frozen.read_bytes()
    for args in _read_commands(tmp_path):
        r = invoke(frozen, *args)
        assert _answered(r), (args, r.stderr)
    r = run_cli(frozen, "verify")  # a real process, as a buyer would run it
    assert r.returncode == 0 and f"ok: {N} events" in r.stdout, r.stderr
    assert frozen.read_bytes() == before
    assert sorted(os.listdir(frozen.parent)) == ["ledger.db"]
    with Ledger(frozen, read_only=True) as led:
        assert led.verify(workers=2).events == N  # the worker processes open it read-only too
    FIGURES["read_only_commands"] = len(_read_commands(tmp_path)) + 1


def test_tampering_is_still_caught_on_a_ledger_nobody_can_write(db: Path, tmp_path: Path) -> None:
    _sql(db, "INSERT INTO links VALUES ('M1', 'LAUNDERED', 12, 50.0, 'x')")
    folder = tmp_path / "frozen"
    folder.mkdir()
    path = folder / "ledger.db"
    shutil.copyfile(db, path)
    if not _chattr("+i", path, folder):
        pytest.skip("chattr +i is not available here (needs root and a file system with it)")
    try:
        with (
            Ledger(path, read_only=True) as led,
            pytest.raises(
                IntegrityViolation, match="derived table links: row dst=M1 src=LAUNDERED seq=12"
            ),
        ):
            led.verify()
        r = invoke(path, "rebuild")
        assert r.returncode == 1 and r.stderr.startswith("Error: "), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        _chattr("-i", path, folder)


def test_a_wal_that_cannot_be_read_read_only_is_one_clear_error(db: Path, tmp_path: Path) -> None:
    """Changes waiting in a -wal need a -shm, which a read-only folder cannot hold."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    path = folder / "ledger.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("INSERT INTO meta VALUES ('note', 'waiting in the WAL')")
    con.commit()
    shutil.copyfile(db, path)
    shutil.copyfile(f"{db}-wal", f"{path}-wal")
    con.close()
    assert Path(f"{path}-wal").stat().st_size > 0
    if not _chattr("+i", path, Path(f"{path}-wal"), folder):
        pytest.skip("chattr +i is not available here (needs root and a file system with it)")
    try:
        r = invoke(path, "stats")
        assert r.returncode == 1, r.stderr
        assert "its -wal file holds changes not yet in it" in r.stderr, r.stderr
    finally:
        _chattr("-i", path, Path(f"{path}-wal"), folder)


def test_an_append_refuses_a_ledger_with_a_planted_trigger(db: Path, tmp_path: Path) -> None:
    """A trigger planted on a derived table would fire inside every append: none runs."""
    _sql(
        db,
        "CREATE TRIGGER launder AFTER INSERT ON links BEGIN "
        "UPDATE lots SET last_qc = 'accepted' WHERE lot = NEW.src; END",
    )
    before = db.read_bytes()
    f = tmp_path / "more.jsonl"
    f.write_text(
        '{"type":"harvest","time":"2025-05-01T08:00:00-05:00","site":"farm:Z",'
        '"lot":"Z1","producer":"P","plot":{"id":"p"},"kg":10}\n'
    )
    r = invoke(db, "import", str(f))
    assert r.returncode == 1, r.stdout
    assert r.stderr.count("\n") == 1 and "trigger launder on links is not lottrace's" in r.stderr
    assert db.read_bytes() == before


def test_writing_to_a_ledger_nobody_can_write_says_read_only(frozen: Path, tmp_path: Path) -> None:
    f = tmp_path / "more.jsonl"
    f.write_text(
        '{"type":"harvest","time":"2025-05-01T08:00:00-05:00","site":"farm:Z",'
        '"lot":"Z1","producer":"P","plot":{"id":"p"},"kg":10}\n'
    )
    for args in (["import", str(f)], ["rebuild"]):
        r = invoke(frozen, *args)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "read-only" in r.stderr and "not a usable" not in r.stderr, r.stderr
