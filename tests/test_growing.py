"""Answers kept from one head to the next and extended with the events appended since
(lottrace.memo.Growing): after random appends, corrections and master data, each equals
the same answer computed from the whole ledger."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import pytest

from lottrace import dashboard, search
from lottrace.errors import LedgerError, RuleViolation
from lottrace.events import parse_event
from lottrace.ledger import Ledger
from lottrace.memo import GROWING, WHOLE, Growing
from sites_peru import MDA, master_data

from factories import correction, export, harvest, mill, qc, t

PARTY = "urn:epcglobal:epcis:vtype:Party"


def _harvest(rng: random.Random, n: int) -> dict[str, Any]:
    lot = f"H{n:03d}"
    kw: dict[str, Any] = {"producer": f"PRD-{rng.randrange(6)}"}
    if rng.random() < 0.3:  # a farm harvested again: its first plot keeps placing it
        kw["site"] = f"farm:F{rng.randrange(4)}"
    if rng.random() < 0.3:
        lon, lat = -79 - rng.random(), -5 - rng.random()
        ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat]]
        kw["plot"] = {"id": f"PLOT-{lot}", "geometry": {"type": "Polygon", "coordinates": [ring]}}
    return harvest(lot, rng.randrange(1, 20), 1000, **kw)


def _step(rng: random.Random, n: int, lots: list[str], ids: list[str]) -> list[dict[str, Any]]:
    """One random batch: harvests, a merge at a gatherer, an export, a correction ..."""
    roll = rng.random()
    if roll < 0.45 or len(lots) < 2:
        return [_harvest(rng, n + i) for i in range(rng.randrange(1, 4))]
    if roll < 0.65:
        a, b = rng.sample(lots, 2)
        return [qc(f"G{n:03d}", 30, inputs=[(a, 10), (b, 10)])]
    merged = [lot for lot in lots if lot.startswith("G")]
    milled = [lot for lot in lots if lot.startswith("M")]
    if roll < 0.72 and merged:
        return [mill(50, [(rng.choice(merged), 5)], [(f"M{n:03d}", 4, "Grade 1")])]
    if roll < 0.8 and milled:
        container = rng.choice(["MSKU1234565", "HLXU8364124", "TGHU0000001"])
        return [export(rng.choice(milled), 70, 1, container=container)]
    if roll < 0.93 and ids:
        return [correction(rng.choice(ids), day=80)]
    return []  # master data, below


def _append(ledger: Ledger, dicts: list[dict[str, Any]], n: int) -> None:
    if not dicts and n % 2:
        site = f"farm:H{n % 7:03d}"
        ledger.append(master_data({site: (f"Finca {n}", -5.5, -79.5)}))
        return
    if not dicts:  # a producer's name: searched by it from now on
        party = {
            "id": f"PRD-{n % 6}",
            "attributes": [{"id": MDA + "name", "attribute": f"Ana {n}"}],
        }
        dicts = [{"type": "master_data", "time": t(n), "vocabulary": PARTY, "element": party}]
    # a random event the rules refuse (a merge of a lot already used up ...) is left out
    with contextlib.suppress(LedgerError, RuleViolation):
        ledger.append([(f"t:{n}:{i}", parse_event(d)) for i, d in enumerate(dicts)])


def _from_scratch(ledger: Ledger) -> tuple[Any, Any, Any]:
    index = search._build(ledger)
    points = dashboard._add_points({}, ledger.events_of_types(["harvest"]))
    return index, points, dashboard._positions(ledger)


@pytest.mark.parametrize("seed", range(4))
def test_kept_answers_extended_equal_answers_from_scratch(ledger_target: str, seed: int) -> None:
    rng = random.Random(seed)
    GROWING.clear()
    WHOLE.clear()
    Ledger.create(ledger_target).close()
    checked = 0
    with Ledger(ledger_target) as ledger:
        for n in range(0, 300, 5):
            lots = [r[0] for r in ledger.leg_scan(marks=False)]
            ids = [s.event_id for s in ledger.events_of_types(["harvest", "gatherer_qc"])]
            _append(ledger, _step(rng, n, sorted(set(lots)), ids), n)
            if ledger.head()[0] == 0:
                continue
            index, points = search.search_index(ledger), dashboard.harvest_points(ledger)
            positions = dashboard._positions(ledger)
            assert (index, points, positions) == _from_scratch(ledger), f"seed {seed}, step {n}"
            checked += 1
    assert checked > 40
    assert GROWING.extended > 40  # mostly extended, not made again
    assert GROWING.made > 2  # corrections and master data made them again


def test_a_correction_or_master_data_makes_the_answer_again(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    GROWING.clear()
    with Ledger.create(db) as ledger:
        ledger.append([("a", parse_event(harvest("H1", 1, producer="P1")))])
        assert dashboard.harvest_points(ledger)
        first = next(iter(ledger.events_of_types(["harvest"]))).event_id
        ledger.append([("b", parse_event(harvest("H2", 2, producer="P1")))])
        assert set(dashboard.harvest_points(ledger)) == {"farm:H1", "farm:H2"}
        assert GROWING.extended == 1
        ledger.append([("c", parse_event(correction(first)))])
        assert set(dashboard.harvest_points(ledger)) == {"farm:H2"}
        assert search.search_index(ledger).producers["p1"][1] == ["H2"]
        assert GROWING.extended == 1 and GROWING.made == 3


def test_a_value_computed_while_the_head_moved_is_not_kept() -> None:
    class Log:
        seq = 1

        def head(self) -> tuple[int, str]:
            return (self.seq, f"h{self.seq}")

        def hash_at(self, seq: int) -> str:
            return f"h{seq}"

        def events_after(self, seq: int) -> list[Any]:
            return []

    log, g = Log(), Growing(2)

    def make() -> int:
        log.seq += 1  # an append while the answer is computed
        return log.seq

    assert g.get(log, "q", make, lambda old, events: old) == 2
    assert g.get(log, "q", lambda: 7, lambda old, events: old) == 7  # made again
    assert g.get(log, "q", lambda: 8, lambda old, events: old) == 7  # now kept


def test_events_after_reads_the_rows_since_a_seq_in_log_order(ledger_target: str) -> None:
    with Ledger.create(ledger_target) as ledger:
        ledger.append([("a", parse_event(harvest("H1", 1))), ("b", parse_event(harvest("H2", 2)))])
        first = next(iter(ledger.events_of_types(["harvest"])))
        ledger.append([("c", parse_event(correction(first.event_id)))])
        assert [s.seq for s in ledger.events_after(0)] == [1, 2, 3]
        after = ledger.events_after(1)
        assert [(s.seq, s.event.type, s.void) for s in after] == [
            (2, "harvest", False),
            (3, "correction", False),
        ]
        assert [s.void for s in ledger.events_after(0)] == [True, False, False]
        assert ledger.events_after(3) == []
