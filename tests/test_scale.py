"""Large-ledger paths on a generated season: parallel verify, streamed rebuild, bulk lookups."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest

from lottrace.errors import IntegrityViolation
from lottrace.events import parse_event
from lottrace.generate import generate_lines
from lottrace.ledger import Ledger


@pytest.fixture(scope="module")
def season_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scale") / "season.db"
    lines = list(generate_lines(60, seed=11, coop_size=(60, 60)))
    with Ledger.create(path) as ledger:
        report = ledger.append(
            (f"gen:{i}", parse_event(orjson.loads(x))) for i, x in enumerate(lines)
        )
        assert report.added == len(lines) > 1000
    return path


def _copy(src: Path, dst: Path, *sql: str) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    con = sqlite3.connect(dst)
    guards = con.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
    ).fetchall()
    con.execute("DROP TRIGGER events_no_update")
    con.execute("DROP TRIGGER events_no_delete")
    for s in sql:
        con.execute(s)
    for (guard,) in guards:  # put back, as verify checks the schema too
        con.execute(guard)
    con.commit()
    con.close()
    return dst


def test_parallel_verify_agrees_on_a_clean_log(season_db: Path) -> None:
    with Ledger(season_db) as ledger:
        serial = ledger.verify(workers=1)
        for workers in (2, 3):
            assert ledger.verify(workers=workers) == serial
        middle = ledger.conn.execute("SELECT hash FROM events WHERE seq = 700").fetchone()[0]
        assert ledger.verify(expect=middle, workers=2) == serial
        with pytest.raises(IntegrityViolation, match="never reached"):
            ledger.verify(expect="0" * 64, workers=2)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE events SET body = replace(body, '{', '{ ') WHERE seq = 900",
        "UPDATE events SET lot = 'X' WHERE seq = 611",
        "UPDATE events SET hash = prev_hash WHERE seq = 1200",
        "DELETE FROM events WHERE seq = 640",
        "UPDATE events SET prev_hash = (SELECT hash FROM events WHERE seq = 3) WHERE seq = 5",
    ],
    ids=["body", "column", "hash", "deleted", "relinked"],
)
def test_parallel_verify_names_the_same_first_bad_row(
    season_db: Path, tmp_path: Path, sql: str
) -> None:
    path = _copy(season_db, tmp_path / "t.db", sql)
    found = []
    with Ledger(path) as ledger:
        n = ledger.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        for workers in (1, 2, 3):
            with pytest.raises(IntegrityViolation) as info:
                ledger.verify(workers=workers)
            found.append((info.value.seq, str(info.value)))
    assert found[0] == found[1] == found[2], (n, found)


@pytest.mark.parametrize("seam", [True, False])
def test_a_bad_link_at_a_seam_is_found(season_db: Path, tmp_path: Path, seam: bool) -> None:
    with Ledger(season_db) as ledger:
        n = ledger.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    second = -(-n // 2) + 1  # with two workers, the second range starts here
    row = second if seam else second + 5
    path = _copy(
        season_db,
        tmp_path / "s.db",
        f"UPDATE events SET prev_hash = (SELECT hash FROM events WHERE seq = 1) WHERE seq = {row}",
    )
    with Ledger(path) as ledger, pytest.raises(IntegrityViolation, match="prev_hash") as info:
        ledger.verify(workers=2)
    assert info.value.seq == row


def test_rebuild_of_a_generated_season_equals_the_maintained_tables(
    season_db: Path, tmp_path: Path
) -> None:
    path = _copy(season_db, tmp_path / "r.db")
    with Ledger(path) as ledger:
        before = ledger.derived_snapshot()
        assert ledger.rebuild() == ledger.stats()["events"]
        assert ledger.derived_snapshot() == before


def test_reimporting_a_generated_season_skips_every_event(season_db: Path, tmp_path: Path) -> None:
    path = _copy(season_db, tmp_path / "d.db")
    lines = list(generate_lines(60, seed=11, coop_size=(60, 60)))
    # Half new ledger, half repeats, inside one batch: the repeats are counted, not inserted.
    with Ledger(path) as ledger:
        report = ledger.append(
            (f"gen:{i}", parse_event(orjson.loads(x))) for i, x in enumerate(lines + lines[:10])
        )
        assert (report.added, report.duplicates) == (0, len(lines) + 10)
        ledger.verify()
