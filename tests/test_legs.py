"""The legs table kept on append: the same answers as the old whole-ledger scan, on both backends.

``delays_oracle`` is lottrace.delays as it was before the table (it walks
every (lot, event) row through ``Ledger.leg_scan``). Every answer of the
new implementation must be the same JSON, for every window.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path
from typing import Any

import orjson
import pytest

import delays_oracle as old
from lottrace import delays as new
from lottrace.errors import IntegrityViolation
from lottrace.generate import generate
from lottrace.importing import import_files
from lottrace.ledger import Ledger
from lottrace.legwalk import lot_legs
from lottrace.storage import NeedsUpgrade

from factories import batch, correction

SAMPLE = sorted(
    p
    for p in (Path(__file__).parent.parent / "sample_events").iterdir()
    if p.is_file() and p.name[0].isdigit()
)

#: (since, until) windows: the whole ledger, open ends, one month, a day, an empty one;
#: ends inside a day (delays by stage or month count whole days from leg_days and
#: read the part-days' legs), and a window inside one day (no whole day at all).
WINDOWS: list[tuple[str | None, str | None]] = [
    (None, None),
    ("2025-06-01", None),
    (None, "2025-07-01"),
    ("2025-07-01", "2025-08-01"),
    ("2025-08-01T00:00:00-05:00", "2025-09-01T00:00:00-05:00"),
    ("2025-09-15", "2025-09-16"),
    ("2031-01-01", "2031-02-01"),
    ("2025-07-10T13:45:00Z", "2025-08-20T06:00:00Z"),
    ("2025-06-20T18:30:00-05:00", None),
    (None, "2025-09-02T09:15:00Z"),
    ("2025-07-10T06:00:00Z", "2025-07-10T20:00:00Z"),
    ("2025-07-31T12:00:00Z", "2025-08-01T12:00:00Z"),
]


def _json(x: Any) -> bytes:
    return orjson.dumps(x)


def answers(mod: Any, ledger: Ledger, since: str | None, until: str | None) -> dict[str, bytes]:
    """Every answer the module gives over the window, as JSON."""
    w = {"since": since, "until": until}
    return {
        "delays_stage": _json(mod.delays(ledger, "stage", **w)),
        "delays_site": _json(mod.delays(ledger, "site", **w)),
        "delays_month": _json(mod.delays(ledger, "month", **w)),
        "bottlenecks_10": _json(mod.bottlenecks(ledger, 10, **w)),
        "bottlenecks_1": _json(mod.bottlenecks(ledger, 1, **w)),
        "bottlenecks_all": _json(mod.bottlenecks(ledger, 100_000, **w)),
        "leg_hours_site": _json(mod.leg_hours(ledger, "site", **w)),
        "leg_hours_month": _json(mod.leg_hours(ledger, "month", **w)),
        "excess_by_month": _json(mod.excess_by_month(ledger, 5, **w)),
        "legs": _json([astuple(g) for g in mod.legs(ledger, **w)]),
    }


def assert_same(ledger: Ledger, windows: list[tuple[str | None, str | None]]) -> int:
    """The new answers are the oracle's for every window; how many legs the whole ledger has."""
    for since, until in windows:
        was, now = answers(old, ledger, since, until), answers(new, ledger, since, until)
        for key in was:
            assert now[key] == was[key], f"{key} differs for window {since} .. {until}"
    for as_of in ("2025-08-15", "2025-12-31T12:00:00-05:00"):
        assert _json(new.stuck(ledger, as_of)) == _json(old.stuck(ledger, as_of))
        assert _json(new.stuck(ledger, as_of, min_kg=100)) == _json(
            old.stuck(ledger, as_of, min_kg=100)
        )
    return sum(1 for _ in old.legs(ledger))


def assert_legs_as_rebuilt(ledger: Ledger) -> None:
    """The legs kept on append are the legs a rebuild folds from the log."""
    kept = ledger.derived_snapshot()
    ledger.rebuild()
    assert ledger.derived_snapshot() == kept
    assert ledger.verify().events > 0


@pytest.fixture
def ledger(ledger_target: str) -> Iterator[Ledger]:
    with Ledger.create(ledger_target) as led:
        yield led


def test_sample_season_answers_are_the_old_scans(ledger: Ledger) -> None:
    import_files(ledger, SAMPLE)
    n = assert_same(ledger, WINDOWS)
    assert n > 50
    # the sample season's corrections void events of lots with legs
    assert ledger.store.voided_ids()
    assert_legs_as_rebuilt(ledger)


def _generated(producers: int, seed: int) -> list[dict[str, Any]]:
    return list(generate(producers, seed=seed))


def test_generated_ledger_in_batches_with_voids_answers_as_the_old_scan(ledger: Ledger) -> None:
    events = _generated(400, 3)
    assert len(events) > 5000  # more than one flush of a batch
    # three batches: lots met again in later batches have their legs walked again
    third = len(events) // 3
    for part in (events[:third], events[third : 2 * third], events[2 * third :]):
        ledger.append(batch(*part))
    windows = WINDOWS + [(f"2025-{m:02d}-01", f"2025-{m + 1:02d}-01") for m in range(1, 12)]
    before = assert_same(ledger, windows)
    # void some dispatches and arrivals (transit changes) and check again
    r = random.Random(7)
    marks = [
        e.event_id
        for e in ledger.events_of_types(["dispatch", "arrival"])
        if not e.void and r.random() < 0.1
    ]
    assert marks
    late = "2026-06-01T08:00:00-05:00"
    ledger.append(batch(*(correction(eid) | {"time": late} for eid in marks)))
    assert ledger.store.voided_ids() >= set(marks)
    after = assert_same(ledger, windows)
    assert after == before  # voiding marks changes transit, not the legs
    # stuck's p90s from leg_days are every leg's, to the last bit
    assert new._counted_next_stages(ledger) == new.next_stages(new.legs(ledger))
    assert_legs_as_rebuilt(ledger)


def test_the_answers_do_not_depend_on_the_order_legs_are_read_in(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legs of a window are read without ORDER BY (a sort of the whole window):
    the same answers from the rows reversed and shuffled."""
    ledger.append(batch(*_generated(150, 5)))
    windows = [(None, None), ("2025-07-01", "2025-08-01")]
    straight = {w: answers(new, ledger, *w) for w in windows}
    read = ledger.store.legs_grouped
    for reorder in (lambda rows: rows[::-1], lambda rows: random.Random(3).sample(rows, len(rows))):

        def reordered(by: str, lo: str | None, hi: str | None, f: Any = reorder) -> Any:
            return iter(f(list(read(by, lo, hi))))

        monkeypatch.setattr(ledger.store, "legs_grouped", reordered)
        assert {w: answers(new, ledger, *w) for w in windows} == straight


def test_a_window_read_by_a_scan_or_by_the_index_gives_the_same_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite reads a large window by scanning the legs table, a small one through the
    index of their ends (which is cheaper is decided per query): both ways, one answer."""
    with Ledger.create(tmp_path / "w.db") as ledger:
        ledger.append(batch(*_generated(150, 5)))
        store = ledger.store
        decide = store.legs_window_is_large  # type: ignore[attr-defined]
        assert decide("end_time >= ?", ["2025-01-01"])  # every leg: a scan
        assert not decide("end_time >= ? AND end_time < ?", ["2025-09-15", "2025-09-16"])
        windows = [("2025-06-01", None), ("2025-07-01", "2025-08-01"), ("2025-09-15", "2025-09-16")]
        chosen = {w: answers(new, ledger, *w) for w in windows}
        for forced in (True, False):
            monkeypatch.setattr(store, "legs_window_is_large", lambda *_a, f=forced: f)
            assert {w: answers(new, ledger, *w) for w in windows} == chosen


def test_voiding_a_checkpoint_walks_the_lot_again(ledger: Ledger) -> None:
    from factories import drying, harvest, qc

    ledger.append(batch(harvest("H1", 1, 1000), drying("H1", 10, 200)))
    dry = next(ledger.events_of_types(["drying"])).event_id
    ledger.append(batch(harvest("H2", 2, 500), qc("G1", 20, inputs=[("H1", 200)])))
    rows = ledger.conn.execute("SELECT from_stage, to_stage FROM legs ORDER BY lot, n").fetchall()
    assert [tuple(r) for r in rows] == [("harvest", "drying"), ("drying", "gatherer_qc")]
    ledger.append(batch(correction(dry, day=30)))
    rows = ledger.conn.execute("SELECT from_stage, to_stage FROM legs ORDER BY lot, n").fetchall()
    assert [tuple(r) for r in rows] == [("harvest", "gatherer_qc")]
    assert_same(ledger, [(None, None)])
    assert_legs_as_rebuilt(ledger)


def test_verify_names_a_changed_leg_and_rebuild_repairs_it(ledger: Ledger) -> None:
    import_files(ledger, SAMPLE)
    ledger.conn.execute("UPDATE legs SET hours = hours + 1 WHERE n = 0")
    ledger.conn.commit()
    with pytest.raises(IntegrityViolation, match="derived table legs: row lot="):
        ledger.verify()
    ledger.rebuild()
    assert ledger.verify().events > 0
    ledger.conn.execute("DELETE FROM legs WHERE n = 1")
    ledger.conn.commit()
    with pytest.raises(IntegrityViolation, match=r"derived table legs: .*is missing"):
        ledger.verify()
    ledger.rebuild()
    assert_same(ledger, [(None, None), ("2025-07-01", "2025-08-01")])


def test_verify_names_a_changed_leg_day_and_delays_refuses_counts_the_legs_deny(
    ledger: Ledger,
) -> None:
    import_files(ledger, SAMPLE)
    ledger.conn.execute("UPDATE leg_days SET us = us + 1 WHERE n = 1")
    ledger.conn.commit()
    with pytest.raises(IntegrityViolation, match="derived table leg_days: row day="):
        ledger.verify()
    ledger.rebuild()
    assert ledger.verify().events > 0
    ledger.conn.execute("UPDATE leg_days SET n = n + 1")
    ledger.conn.commit()
    with pytest.raises(IntegrityViolation, match=r"leg_days counts .* run 'lottrace verify'"):
        new.delays(ledger)
    ledger.rebuild()
    assert_same(ledger, [(None, None), ("2025-07-01T12:00:00Z", "2025-08-01")])


def test_legs_on_the_bands_edges_and_across_days(ledger: Ledger) -> None:
    """Legs of exactly 4, 8, 24 ... hours sit on the edges of leg_days' 4-hour bands
    (a leg of 24 hours is in band 6, not 5); windows cut inside days."""
    from factories import drying, harvest, qc

    events = []
    for i, hours in enumerate([4, 8, 8, 24, 24, 24, 28, 3, 100, 4, 0]):
        lot = f"B{i}"
        events += [harvest(lot, 1 + i % 3, 100), drying(lot, 1 + i % 3, 90)]
        events[-1]["time"] = _plus_hours(events[-2]["time"], hours)
        events.append(qc(f"G{i}", 10 + i % 5, inputs=[(lot, 90)]))
    ledger.append(batch(*events))
    rows = ledger.conn.execute(
        "SELECT band, sum(n) FROM leg_days WHERE from_stage = 'harvest' GROUP BY band"
    )
    assert {b: int(n) for b, n in rows} == {0: 2, 1: 2, 2: 2, 6: 3, 7: 1, 25: 1}
    windows = [(None, None), ("2025-05-02T04:00:00Z", None), ("2025-05-01T07:00:00Z", "2025-05-12")]
    assert_same(ledger, windows)
    for by in ("stage", "month"):
        for lo, hi in [
            (None, None),
            ("2025-05-02T04:00:00.000000Z", "2025-05-11T20:00:00.000000Z"),
        ]:
            assert new._day_stats(ledger, by, lo, hi) == new._leg_stats(ledger, by, lo, hi)


def test_delays_reads_one_state_while_another_process_commits(ledger_target: str) -> None:
    """The days' counts and the bands' legs are read in one snapshot: a batch committed
    between those reads is not half-seen (it was: "leg_days counts 1 ... the legs table
    has 2" on a sound ledger, or an old mean with new percentiles)."""
    from factories import drying, harvest

    with Ledger.create(ledger_target) as w:
        w.append(batch(harvest("A1", 1, 1000), drying("A1", 10, 200)))
        w.append(batch(harvest("A2", 2, 1000), drying("A2", 12, 200)))
    window = {"since": "2025-05-01", "until": "2025-06-01"}
    with Ledger.reader(ledger_target) as reader:
        before = new.delays(reader, "stage", **window)
        read = reader.store.leg_hours_in_band
        fired = []

        def racing(*args: Any) -> list[float]:
            if not fired:  # another process's import commits now
                fired.append(1)
                with Ledger(ledger_target) as w2:
                    w2.append(batch(harvest("A3", 3, 1000), drying("A3", 12, 200)))
            return read(*args)

        reader.store.leg_hours_in_band = racing  # type: ignore[method-assign]
        assert new.delays(reader, "stage", **window) == before
        assert fired
        reader.store.leg_hours_in_band = read  # type: ignore[method-assign]
        after = new.delays(reader, "stage", **window)
        assert after[0]["count"] == before[0]["count"] + 1
        assert reader.verify().events == 6


def test_windows_at_the_end_of_time_and_a_row_of_no_legs(ledger: Ledger) -> None:
    import_files(ledger, SAMPLE)
    for since in ("9999-12-31T12:00", "9999-12-31"):
        assert new.delays(ledger, "stage", since=since) == []
        assert new.delays(ledger, "month", since=since) == []
    ledger.conn.execute("UPDATE leg_days SET n = 0 WHERE band = (SELECT min(band) FROM leg_days)")
    ledger.conn.commit()
    with pytest.raises(IntegrityViolation, match=r"leg_days holds a row of 0 legs"):
        new.delays(ledger)


def _plus_hours(time: str, hours: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(time) + timedelta(hours=hours)).isoformat()


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX planted ON legs (hours)",
        "DROP INDEX legs_end",
    ],
)
def test_the_schema_check_covers_the_legs_table(ledger: Ledger, sql: str) -> None:
    ledger.conn.execute(sql)
    ledger.conn.commit()
    with pytest.raises(IntegrityViolation, match=r"planted|legs_end"):
        ledger.verify()
    with pytest.raises(IntegrityViolation):
        import_files(ledger, SAMPLE)
    ledger.rebuild()
    assert ledger.verify().events == 0
    import_files(ledger, SAMPLE)
    assert_same(ledger, [(None, None)])


def test_a_ledger_without_the_legs_migration_gets_it_filled(ledger_target: str) -> None:
    with Ledger.create(ledger_target) as led:
        import_files(led, SAMPLE)
        kept = led.derived_snapshot()
        postgres = ledger_target.startswith("postgresql")
        led.conn.execute("DROP TABLE legs")
        led.conn.execute("DROP TABLE leg_days")
        if postgres:
            led.conn.execute(
                "DELETE FROM _lottrace_migrations WHERE name IN ('002_legs', '005_leg_days')"
            )
        else:  # a ledger from before 007 has no later migration either
            led.conn.execute("DROP TABLE sources")
            led.conn.execute(
                "DELETE FROM _sqlite_migrations "
                "WHERE name IN ('007_legs', '008_sources', '009_leg_days')"
            )
        led.conn.commit()
    with pytest.raises(NeedsUpgrade, match="older lottrace"):  # read-only: never migrates
        Ledger(ledger_target, read_only=True)
    with Ledger.reader(ledger_target) as led:  # migrates first, through a writable open
        assert led.derived_snapshot() == kept
        assert led.verify().events > 0
        assert_same(led, [(None, None)])


def test_a_ledger_with_legs_gets_its_leg_days_counted_from_them(ledger_target: str) -> None:
    # The leg_days migration fills the table from the legs (no refold): its
    # SQL (PostgreSQL) or its loop (SQLite) must count as an append does.
    with Ledger.create(ledger_target) as led:
        import_files(led, SAMPLE)
        kept = led.derived_snapshot()
        assert kept["leg_days"], "the sample has legs"
        led.conn.execute("DROP TABLE leg_days")
        if ledger_target.startswith("postgresql"):
            led.conn.execute("DROP INDEX legs_band")
            led.conn.execute("DELETE FROM _lottrace_migrations WHERE name = '005_leg_days'")
        else:
            led.conn.execute("DROP INDEX legs_band")
            led.conn.execute("DELETE FROM _sqlite_migrations WHERE name = '009_leg_days'")
        led.conn.commit()
    with Ledger(ledger_target) as led:
        assert led.derived_snapshot() == kept
        assert led.verify().events > 0


def test_lot_legs_orders_ties_by_log_order() -> None:
    # one lot's rows at the same time: the walk follows the order it is given
    t0, t1 = "2025-06-01T00:00:00+00:00", "2025-06-02T00:00:00+00:00"
    rows = [
        ("L", t0, "harvest", "output", "farm:A"),
        ("L", t1, "hq_qc", "subject", "hq:B"),
        ("L", t1, "drying", "subject", "hq:B"),
    ]
    legs = lot_legs(rows)
    assert [(g[1], g[2], g[5], g[8]) for g in legs] == [
        (0, "harvest", "hq_qc", 24.0),
        (1, "hq_qc", "drying", 0.0),
    ]
    assert list(itertools.chain.from_iterable(lot_legs([]))) == []


def _dispatch(lot: str, day: int, hour: int = 8) -> dict[str, Any]:
    from factories import t

    return {"type": "dispatch", "time": t(day, hour), "site": f"farm:{lot}", "lot": lot,
            "to_site": "hq:B"}  # fmt: skip


@pytest.fixture
def legs_written(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[list[str], list[Any]]]:
    """Every ``replace_legs`` call of the ledger's storage: (lots whose legs were deleted, legs added)."""
    calls: list[tuple[list[str], list[Any]]] = []
    real = ledger.store.replace_legs

    def spy(lots: list[str], legs: list[Any]) -> None:
        calls.append((list(lots), list(legs)))
        real(lots, legs)

    monkeypatch.setattr(ledger.store, "replace_legs", spy)
    return calls


def test_events_after_a_lots_last_add_only_its_new_legs(
    ledger: Ledger, legs_written: list[tuple[list[str], list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from factories import drying, harvest, qc

    ledger.append(batch(harvest("H1", 1, 1000), drying("H1", 10, 200)))
    assert legs_written[-1] == ([], [legs_written[-1][1][0]])  # a new lot: nothing deleted
    # a later batch: the lot's walk comes from its rows as written, its old leg stays
    ledger.append(batch(harvest("H2", 2, 500), qc("G1", 20, inputs=[("H1", 200)])))
    deleted, added = legs_written[-1]
    assert deleted == []
    assert [(g[0], g[1], g[2], g[5]) for g in added] == [("H1", 1, "drying", "gatherer_qc")]
    # one batch of many flushes: each lot's walk goes on from flush to flush
    monkeypatch.setattr("lottrace.ledger._CHUNK", 2)
    before = len(legs_written)
    ledger.append(
        batch(
            harvest("H3", 3, 800), _dispatch("H3", 4), drying("H3", 12, 300),
            harvest("H4", 3, 800), drying("H4", 11, 300), qc("G2", 21, inputs=[("H3", 300)]),
            qc("G3", 22, inputs=[("H4", 300)]),
        )
    )  # fmt: skip
    assert len(legs_written) - before >= 3
    assert all(deleted == [] for deleted, _ in legs_written[before:])
    assert_same(ledger, [(None, None)])
    assert_legs_as_rebuilt(ledger)


def test_an_event_logged_before_a_lots_last_walks_the_lot_again(
    ledger: Ledger, legs_written: list[tuple[list[str], list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from factories import drying, harvest

    ledger.append(batch(harvest("H1", 1, 1000), drying("H1", 10, 200)))
    transit = ledger.conn.execute("SELECT transit_hours FROM legs").fetchall()
    assert [tuple(r) for r in transit] == [(None,)]
    # The rules refuse a coffee lot's event before its last (time-order); the legs do not
    # count on it: with the rules out of the way, a dispatch logged late, between the
    # harvest and the drying, changes the old leg's transit.
    monkeypatch.setattr("lottrace.ledger.check", lambda *_: [])
    ledger.append(batch(_dispatch("H1", 5)))
    assert legs_written[-1][0] == ["H1"]
    rows = ledger.conn.execute("SELECT n, transit_hours FROM legs ORDER BY n").fetchall()
    assert [tuple(r) for r in rows] == [(0, 5 * 24.0)]
    # the same inside one batch, across its flushes: the walk kept is not trusted
    monkeypatch.setattr("lottrace.ledger._CHUNK", 2)
    ledger.append(batch(harvest("H2", 2, 900), drying("H2", 12, 300), _dispatch("H2", 6)))
    assert legs_written[-1][0] == ["H2"]
    rows = ledger.conn.execute("SELECT transit_hours FROM legs WHERE lot = 'H2'").fetchall()
    assert [tuple(r) for r in rows] == [(6 * 24.0,)]
    assert_same(ledger, [(None, None)])
    assert_legs_as_rebuilt(ledger)


def test_a_foreign_lot_observed_out_of_order_is_walked_again(
    ledger: Ledger, legs_written: list[tuple[list[str], list[Any]]]
) -> None:
    # The one order the rules let in: events on a foreign id, as EPCIS capture allows.
    from factories import foreign, observe

    lot = "urn:epc:class:lgtin:4012345.012345.B1"
    ledger.append(batch(foreign(observe(10, lot, 100.0))))
    ledger.append(batch(foreign(observe(5, lot, 100.0))))
    assert legs_written[-1][0] == [lot]
    assert_legs_as_rebuilt(ledger)


def test_a_void_inside_a_batch_walks_the_lot_again(
    ledger: Ledger, legs_written: list[tuple[list[str], list[Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from factories import drying, harvest, qc

    ledger.append(batch(harvest("H1", 1, 1000), drying("H1", 10, 200)))
    dry = next(ledger.events_of_types(["drying"])).event_id
    monkeypatch.setattr("lottrace.ledger._CHUNK", 1)
    # the lot's walk is kept from its first flush in the batch; the void drops it
    ledger.append(
        batch(
            _dispatch("H1", 14), correction(dry, day=15), drying("H1", 16, 250),
            qc("G1", 20, inputs=[("H1", 250)]),
        )
    )  # fmt: skip
    assert any(deleted == ["H1"] for deleted, _ in legs_written)
    rows = ledger.conn.execute(
        "SELECT from_stage, to_stage, hours FROM legs WHERE lot = 'H1' ORDER BY n"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("harvest", "drying", 15 * 24.0),
        ("drying", "gatherer_qc", 4 * 24.0),
    ]
    assert_same(ledger, [(None, None)])
    assert_legs_as_rebuilt(ledger)
