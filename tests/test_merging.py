"""Merging cooperatives' ledgers into one platform ledger (``lottrace merge``), on both backends:
each event stored once by content id, every source remembered, each source's chain proven
inside the platform (``verify --source``), the same rules for every event.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.demo import sample_files
from lottrace.ledger import Ledger

from factories import batch, drying, harvest


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _shared() -> dict[str, Any]:
    """The sample season's first harvest: an event both cooperatives hold."""
    first = (Path(str(sample_files()[0]))).read_text().splitlines()[0]
    d: dict[str, Any] = json.loads(first)
    return d


@pytest.fixture
def coops(tmp_path: Path) -> tuple[str, str]:
    """Two cooperatives' ledgers: the sample season (105 events), and a small one of 4 that
    holds one of the season's events too."""
    a, b = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    assert run("--db", a, "init").exit_code == 0
    r = run("--db", a, "import", *map(str, sample_files()))
    assert "added 105" in r.output, r.output
    with Ledger.create(b) as led:
        led.append(batch(harvest("VEC-1"), harvest("VEC-2", day=2), _shared()))
        led.append(batch(drying("VEC-1", day=12)))
    return a, b


def _id_and_head(db: str) -> tuple[str, str]:
    with Ledger.reader(db) as led:
        return led.store.ledger_id, led.verify().head


def _tamper_body(db: str, eid: str) -> None:
    """Edit one event's body as a knowing tamperer would (the append-only guard lifted)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as pg:
            pg.execute("ALTER TABLE events DISABLE TRIGGER USER")
            pg.execute(
                "UPDATE events SET body = replace(body, '\"kg\":1000.0', '\"kg\":1500.0') "
                "WHERE event_id = %s",
                [eid],
            )
            pg.execute("ALTER TABLE events ENABLE TRIGGER USER")
        return
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER events_no_update")
    con.execute(
        "UPDATE events SET body = replace(body, '\"kg\":1000.0', '\"kg\":1500.0') "
        "WHERE event_id = ?",
        [eid],
    )
    con.execute(
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events "
        "BEGIN SELECT RAISE(ABORT, 'lottrace: the event log is append-only'); END"
    )
    con.commit()
    con.close()


def test_two_ledgers_merged_each_source_proven_inside_the_platform(
    coops: tuple[str, str], ledger_target: str
) -> None:
    a, b = coops
    (a_id, a_head), (b_id, b_head) = _id_and_head(a), _id_and_head(b)
    r = run("merge", a, b, "--into", ledger_target, "--json")
    assert r.exit_code == 0, r.output
    merged = json.loads(r.stdout)
    assert [(m["ledger_id"], m["events"], m["added"], m["duplicates"]) for m in merged] == [
        (a_id, 105, 105, 0),
        (b_id, 4, 3, 1),  # the shared event is stored once
    ]
    for sid, head, n in ((a_id, a_head, 105), (b_id, b_head, 4)):
        r = run("--db", ledger_target, "verify", "--source", sid)
        assert r.exit_code == 0, r.output
        # the head the source's own verify prints
        assert r.output.strip() == f"ok: source {sid}: {n} events, chain intact, head {head}"
    r = run("--db", ledger_target, "verify")
    assert r.exit_code == 0 and r.output.startswith("ok: 108 events"), r.output
    with Ledger.reader(ledger_target) as platform:
        assert platform.sources() == sorted([(a_id, 105), (b_id, 4)])
        held_by = {
            sid
            for sid in (a_id, b_id)
            for _seq, eid, _h, _body in platform.store.source_rows(sid)
            if eid == _shared_id(b)
        }
        assert held_by == {a_id, b_id}  # a duplicate remembers every source that had it
        assert platform.store.stored_among([_shared_id(b)]) == {_shared_id(b)}
    # Merging again adds nothing and records nothing twice.
    r = run("merge", a, b, "--into", ledger_target, "--json")
    assert r.exit_code == 0, r.output
    assert [m["added"] for m in json.loads(r.stdout)] == [0, 0]
    assert run("--db", ledger_target, "verify", "--source", b_id).exit_code == 0


def _shared_id(b: str) -> str:
    with Ledger.reader(b) as led:
        return next(s.event_id for s in led.iter_events() if s.event.lot == _shared()["lot"])


def test_a_source_that_grew_is_merged_again_with_only_its_new_rows(
    coops: tuple[str, str], ledger_target: str
) -> None:
    _a, b = coops
    assert run("merge", b, "--into", ledger_target).exit_code == 0
    with Ledger(b) as led:
        led.append(batch(drying("VEC-2", day=13)))
    b_id, b_head = _id_and_head(b)
    r = run("merge", b, "--into", ledger_target, "--json")
    assert r.exit_code == 0, r.output
    assert [(m["events"], m["added"]) for m in json.loads(r.stdout)] == [(5, 1)]
    r = run("--db", ledger_target, "verify", "--source", b_id)
    assert r.exit_code == 0 and r.output.endswith(f"5 events, chain intact, head {b_head}\n")


def test_a_tampered_source_event_fails_verify_source_naming_it(
    coops: tuple[str, str], ledger_target: str
) -> None:
    a, b = coops
    assert run("merge", a, b, "--into", ledger_target).exit_code == 0
    a_id, b_id = _id_and_head(a)[0], _id_and_head(b)[0]
    with Ledger.reader(b) as led:
        victim = next(s for s in led.iter_events() if s.event.lot == "VEC-1")
    _tamper_body(ledger_target, victim.event_id)
    r = run("--db", ledger_target, "verify", "--source", b_id)
    assert r.exit_code == 1
    assert f"source {b_id} row seq {victim.seq}: event {victim.event_id}'s body" in r.output
    assert "does not hash to its id" in r.output
    assert run("--db", ledger_target, "verify", "--source", a_id).exit_code == 0  # not A's
    assert run("--db", ledger_target, "verify").exit_code == 1  # nor the platform's chain


def test_every_source_event_passes_the_same_rules(
    coops: tuple[str, str], ledger_target: str, tmp_path: Path
) -> None:
    """A source whose lot collides with one the platform holds is refused, all of it."""
    a, _b = coops
    c = str(tmp_path / "c.db")
    with Ledger.create(c) as led:  # fine on its own: its own lot APR-25-H0502-1
        led.append(batch(harvest("NEW-1"), harvest(_shared()["lot"], kg=555.0)))
    assert run("merge", a, "--into", ledger_target).exit_code == 0
    r = run("merge", c, "--into", ledger_target)
    assert r.exit_code == 1 and "APR-25-H0502-1" in r.output, r.output
    with Ledger.reader(ledger_target) as platform:
        assert platform.verify().events == 105  # nothing of c
        assert [sid for sid, _n in platform.sources()] == [_id_and_head(a)[0]]
    r = run("--db", ledger_target, "verify", "--source", _id_and_head(c)[0])
    assert r.exit_code == 1 and "holds no events merged from ledger" in r.output
