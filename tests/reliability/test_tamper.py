"""Tamper evidence: every way of editing the SQLite file behind lottrace's back.

Each case edits a real ledger with plain ``sqlite3`` (dropping the append-only
triggers first, as a tamperer would), then runs ``lottrace verify`` in a
subprocess: it must exit 1 with one line naming the first row it can prove
wrong. The cases the chain alone cannot catch (a whole file replaced, or a tail
cut off by someone who also rewrote ``meta``) are caught by ``verify --expect``
with a head published earlier by ``verify --anchor``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from lottrace.ledger import Ledger

from ._helpers import FIGURES, invoke, run_cli, state
from ._season import season
from factories import batch, chain

N = 21  # events in the ledger each case tampers with: 7 from chain(), 14 in a second batch


def _sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    with Ledger.create(path) as led:
        led.append(batch(*chain()))
        led.append(batch(*season("T", 14)))
        assert led.verify().events == N
    return path


def _sql(db: Path, *statements: str, params: list[tuple[object, ...]] | None = None) -> None:
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    con.execute("DROP TRIGGER IF EXISTS events_no_delete")
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()


def _rechain(db: Path, from_seq: int, *, meta: bool) -> None:
    """What a knowing tamperer does: recompute ids and the chain from ``from_seq`` on."""
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    rows = con.execute("SELECT seq, body FROM events WHERE seq >= ? ORDER BY seq", [from_seq])
    prev = con.execute("SELECT hash FROM events WHERE seq = ?", [from_seq - 1]).fetchone()[0]
    for seq, body in rows.fetchall():
        eid = hashlib.sha256(body.encode()).hexdigest()
        h = hashlib.sha256(bytes.fromhex(prev) + bytes.fromhex(eid)).hexdigest()
        con.execute(
            "UPDATE events SET event_id=?, prev_hash=?, hash=? WHERE seq=?", [eid, prev, h, seq]
        )
        prev = h
    if meta:
        last = con.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        con.execute("UPDATE meta SET value=? WHERE key='head'", [f"{last} {prev}"])
    con.commit()
    con.close()


def edit_body(db: Path) -> None:
    _sql(db, "UPDATE events SET body=replace(body, '\"kg\":200.0', '\"kg\":900.0') WHERE seq=3")


def edit_body_and_its_id(db: Path) -> None:
    _sql(
        db,
        "UPDATE events SET body=replace(body, '\"kg\":200.0', '\"kg\":900.0') WHERE seq=3",
    )
    con = sqlite3.connect(db)
    body = con.execute("SELECT body FROM events WHERE seq=3").fetchone()[0]
    con.execute(
        "UPDATE events SET event_id=? WHERE seq=3", [hashlib.sha256(body.encode()).hexdigest()]
    )
    con.commit()
    con.close()


def edit_body_and_rechain(db: Path) -> None:
    _sql(db, "UPDATE events SET body=replace(body, '\"kg\":200.0', '\"kg\":900.0') WHERE seq=3")
    _rechain(db, 3, meta=False)


def edit_type_column(db: Path) -> None:
    _sql(db, "UPDATE events SET type='export' WHERE seq=4")


def edit_lot_column(db: Path) -> None:
    _sql(db, "UPDATE events SET lot='H9' WHERE seq=5")


def delete_middle_row(db: Path) -> None:
    _sql(db, "DELETE FROM events WHERE seq=9")


def delete_first_row(db: Path) -> None:
    _sql(db, "DELETE FROM events WHERE seq=1")


def delete_row_and_renumber(db: Path) -> None:
    _sql(db, "DELETE FROM events WHERE seq=9")
    for s in range(10, N + 1):
        _sql(db, f"UPDATE events SET seq={s - 1} WHERE seq={s}")
    _sql(
        db,
        f"UPDATE meta SET value='{N - 1} ' || (SELECT hash FROM events WHERE seq={N - 1}) WHERE key='head'",
    )


def forged_row_at_tail(db: Path) -> None:
    _sql(
        db,
        f"INSERT INTO events SELECT {N + 1}, 'ab'||substr(event_id,3), type, time, lot, "
        f"replace(body, '200.0', '250.0'), hash, hash FROM events WHERE seq={N}",
    )


def forged_row_at_tail_chained(db: Path) -> None:
    """A forged event with a correct id and chain link: only the recorded head knows."""
    con = sqlite3.connect(db)
    seq, typ, t, lot, body, prev = con.execute(
        "SELECT seq, type, time, lot, body, hash FROM events WHERE seq=?", [N]
    ).fetchone()
    body = body.replace('"kg":200.0', '"kg":250.0')
    eid = hashlib.sha256(body.encode()).hexdigest()
    h = hashlib.sha256(bytes.fromhex(prev) + bytes.fromhex(eid)).hexdigest()
    con.execute(
        "INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", [seq + 1, eid, typ, t, lot, body, prev, h]
    )
    con.commit()
    con.close()


def forged_row_in_middle(db: Path) -> None:
    """Rows 10.. moved up one, a forged (but self-consistent) row put at 10."""
    for s in range(N, 9, -1):
        _sql(db, f"UPDATE events SET seq={s + 1} WHERE seq={s}")
    con = sqlite3.connect(db)
    typ, t, lot, body, prev = con.execute(
        "SELECT type, time, lot, body, hash FROM events WHERE seq=9"
    ).fetchone()
    body = body.replace("T-", "F-")
    eid = hashlib.sha256(body.encode()).hexdigest()
    h = hashlib.sha256(bytes.fromhex(prev) + bytes.fromhex(eid)).hexdigest()
    con.execute(
        "INSERT INTO events VALUES (10,?,?,?,?,?,?,?)",
        [eid, typ, t, (lot or "").replace("T-", "F-") or None, body, prev, h],
    )
    con.commit()
    con.close()


def reorder_rows(db: Path) -> None:
    _sql(
        db,
        "UPDATE events SET seq=-1 WHERE seq=12",
        "UPDATE events SET seq=12 WHERE seq=15",
        "UPDATE events SET seq=15 WHERE seq=-1",
    )


def truncate_tail(db: Path) -> None:
    _sql(db, f"DELETE FROM events WHERE seq > {N - 3}")


def drop_recorded_head(db: Path) -> None:
    _sql(db, "DELETE FROM meta WHERE key='head'")


def swap_chains(db: Path) -> None:
    """Another ledger's events (same events, its own chain) copied into this file."""
    other = db.with_name("other.db")
    with Ledger.create(other) as led:
        led.append(batch(*chain()))
        led.append(batch(*season("T", 14)))
        rows = led.conn.execute("SELECT * FROM events").fetchall()
        head = led.meta("head")
    _sql(db, "DELETE FROM events")
    con = sqlite3.connect(db)
    con.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", rows)
    con.execute("UPDATE meta SET value=? WHERE key='head'", [head])
    con.commit()
    con.close()


def swap_ledger_id(db: Path) -> None:
    """The other half of a swap: this file's chain under another file's ledger id."""
    _sql(db, "UPDATE meta SET value='0123456789abcdef0123456789abcdef' WHERE key='ledger_id'")


#: (tamper, the row verify must name, what the message says)
CASES: list[tuple[Callable[[Path], None], int | None, str]] = [
    (edit_body, 3, "body does not hash to its event_id"),
    (edit_body_and_its_id, 3, "stored hash is wrong"),
    (edit_body_and_rechain, N, "the chain was rewritten"),
    (edit_type_column, 4, "type, time or lot column disagrees"),
    (edit_lot_column, 5, "type, time or lot column disagrees"),
    (delete_middle_row, 10, "expected seq 9"),
    (delete_first_row, 2, "expected seq 1"),
    (delete_row_and_renumber, 9, "prev_hash does not match"),
    (forged_row_at_tail, N + 1, "body does not hash to its event_id"),
    (forged_row_at_tail_chained, N + 1, "not written by lottrace"),
    (forged_row_in_middle, 11, "prev_hash does not match"),
    (reorder_rows, 12, "prev_hash does not match"),
    (truncate_tail, N - 2, "cut off the tail"),
    (drop_recorded_head, None, "head recorded in"),
    (swap_chains, 1, "the rows come from another ledger"),
    (swap_ledger_id, 1, "the ledger_id was edited"),
]


@pytest.mark.parametrize(("tamper", "seq", "says"), CASES, ids=[c[0].__name__ for c in CASES])
def test_verify_names_the_first_affected_row(
    db: Path, tamper: Callable[[Path], None], seq: int | None, says: str
) -> None:
    assert invoke(db, "verify").returncode == 0
    tamper(db)
    r = invoke(db, "verify")
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert says in lines[0], lines[0]
    if seq is not None:
        named = re.match(r"Error: row seq (\d+):", lines[0])
        assert named, lines[0]
        assert int(named.group(1)) == seq
    FIGURES.setdefault("tamper_cases_detected", []).append(tamper.__name__)


@pytest.mark.parametrize("tamper", [truncate_tail, forged_row_at_tail_chained, drop_recorded_head])
def test_append_refuses_a_ledger_whose_head_was_tampered(
    db: Path, tmp_path: Path, tamper: Callable[[Path], None]
) -> None:
    """Appending would record a new head and bless the edit: lottrace refuses instead."""
    tamper(db)
    before = state(db)
    f = tmp_path / "more.jsonl"
    f.write_text(
        '{"type":"harvest","time":"2025-05-01T08:00:00-05:00","site":"farm:Z",'
        '"lot":"Z1","producer":"P","plot":{"id":"p"},"kg":10}\n'
    )
    r = invoke(db, "import", str(f))
    assert r.returncode == 1
    # refused for the head, or first for the trigger the tamperer dropped to cut the tail
    assert any(w in r.stderr for w in ("nothing added", "head recorded in", "schema: ")), r.stderr
    assert state(db) == before


def test_anchor_and_expect_catch_what_the_file_alone_cannot(db: Path, tmp_path: Path) -> None:
    """A tail cut off with ``meta`` rewritten, and a whole file replaced, pass a plain
    ``verify``: the file is self-consistent. Only a head published earlier catches them."""
    anchor = run_cli(db, "verify", "--anchor").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", anchor)
    # the log grows: the anchor is still in it
    with Ledger(db) as led:
        led.append(batch(*season("LATER", 7)))
    r = invoke(db, "verify", "--expect", anchor)
    assert r.returncode == 0 and f"contains {anchor[:12]}" in r.stdout, r.stderr
    assert invoke(db, "verify", "--anchor").stdout.strip() != anchor

    # 1. the tail cut back past the anchor, by someone who also rewrote meta
    cut = tmp_path / "cut.db"
    cut.write_bytes(db.read_bytes())
    _sql(
        cut,
        f"DELETE FROM events WHERE seq >= {N}",
        f"UPDATE meta SET value='{N - 1} ' || (SELECT hash FROM events WHERE seq={N - 1}) "
        "WHERE key='head'",
    )
    r = invoke(cut, "verify")  # the triggers are gone and the derived tables hold the rows cut ...
    assert r.returncode == 1 and "run 'lottrace rebuild'" in r.stderr, r.stderr
    assert invoke(cut, "rebuild").returncode == 0  # ... unless the tamperer rebuilds too
    assert invoke(cut, "verify").returncode == 0  # self-consistent ...
    r = invoke(cut, "verify", "--expect", anchor)
    assert r.returncode == 1 and "never reached the expected head" in r.stderr  # ... but caught

    # 2. an edit deep in the log with the whole chain and meta recomputed
    edited = tmp_path / "edited.db"
    edited.write_bytes(db.read_bytes())
    edit_body(edited)
    _rechain(edited, 3, meta=True)
    r = invoke(edited, "verify")
    assert r.returncode == 1 and "run 'lottrace rebuild'" in r.stderr, r.stderr
    assert invoke(edited, "rebuild").returncode == 0
    assert invoke(edited, "verify").returncode == 0
    r = invoke(edited, "verify", "--expect", anchor)
    assert r.returncode == 1 and "never reached the expected head" in r.stderr

    # 3. the whole file replaced by another, self-consistent ledger with the same events
    other = tmp_path / "other.db"
    with Ledger.create(other) as led:
        led.append(batch(*chain()))
        led.append(batch(*season("T", 14)))
        led.append(batch(*season("LATER", 7)))
    assert invoke(other, "verify").returncode == 0
    r = invoke(other, "verify", "--expect", anchor)
    assert r.returncode == 1 and "never reached the expected head" in r.stderr
    FIGURES["anchor_cases_detected"] = ["cut_tail_and_meta", "rechained_edit", "replaced_file"]


def test_a_ledger_from_before_the_recorded_head_is_migrated(tmp_path: Path) -> None:
    """Files made before migration 002 gain the head on first open and still verify."""
    path = tmp_path / "old.db"
    with Ledger.create(path) as led:
        led.append(batch(*chain()))
        head = led.head()
    con = sqlite3.connect(path)  # as a file made before migration 002 was
    con.execute("DELETE FROM meta WHERE key='head'")
    con.execute("DELETE FROM _sqlite_migrations WHERE name != '001_log_and_derived_tables'")
    con.execute("ALTER TABLE lots DROP COLUMN base_kg")  # and before 004
    con.execute("DROP TABLE legs")  # and before 007
    con.execute("DROP TABLE leg_days")  # and before 009
    con.execute("DROP INDEX events_by_rare_type")
    con.execute("DROP TABLE sources")  # and before 008
    con.execute("DROP INDEX events_hash_id")  # and before 005
    con.execute("DROP INDEX events_partner_id")
    con.execute("CREATE INDEX event_lots_seq ON event_lots (seq)")
    con.execute("CREATE INDEX links_seq ON links (seq)")
    con.commit()
    con.close()
    with Ledger(path) as led:
        assert led.meta("head") == f"{head[0]} {head[1]}"
        assert led.verify().events == 7
