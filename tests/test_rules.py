"""Every ledger rule, with a case it accepts and a case it rejects."""

from __future__ import annotations

from typing import Any

import pytest

from lottrace.errors import RuleViolation
from lottrace.events import event_id, parse_event
from lottrace.ledger import Ledger
from lottrace.rules import RULES, WARNINGS

from factories import (
    aggregate,
    batch,
    chain,
    correction,
    drying,
    export,
    foreign,
    harvest,
    mill,
    qc,
    t,
    transformation,
)


@pytest.fixture
def ledger(tmp_path: Any) -> Any:
    with Ledger.create(tmp_path / "l.db") as led:
        yield led


BASE = [harvest("H1", 1, 1000), drying("H1", 10, 200), harvest("H2", 2, 500), drying("H2", 11, 100)]

_PURCHASE = {
    "type": "purchase",
    "time": t(12),
    "site": "gatherer:G1",
    "lot": "H1",
    "producer": "PRD-H1",
    "receipt": "R-1",
    "kg": 200,
    "price_per_kg": "9.50",
    "currency": "PEN",
}
FINDING = {
    "type": "eudr_finding",
    "time": t(20),
    "site": "hq:X",
    "plot_id": "P1",
    "risk": "high",
    "dataset": "whisp",
    "dataset_version": "3.0",
}
RESOLUTION = {"type": "eudr_resolution", "time": t(21), "site": "hq:X", "evidence": "agroforestry"}

# rule -> (events before, good event, bad event, field named in the error)
CASES: dict[str, tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], str]] = {
    "lot-exists": (BASE, harvest("H3", 3), harvest("H1", 3, 10), "lot"),
    "lot-unknown": (BASE, drying("H2", 12, 90), drying("NOPE", 12, 90), "lot"),
    "input-invalid": (
        BASE,
        qc("G1", 15, inputs=[("H1", 100), ("H2", 50)]),
        qc("G1", 15, inputs=[("H1", 100), ("H1", 50)]),
        "inputs[1]",
    ),
    "time-order": (BASE, drying("H1", 12, 190), drying("H1", 9, 190), "time"),
    "time-future": (
        BASE,
        drying("H1", 12, 190),
        {**drying("H1", 12, 190), "time": "2099-01-01T00:00:00-05:00"},
        "time",
    ),
    "stage-order": (
        [*BASE, qc("H1", 12), qc("H1", 13, stage="hq_qc")],
        qc("H1", 14, stage="hq_qc"),
        drying("H1", 14, 190),
        "type",
    ),
    "stage-skip": (
        [*BASE, harvest("H3", 3, 1000)],
        mill(20, [("H1", 200)], [("M1", 150, "Grade 1")]),
        mill(20, [("H3", 100)], [("M1", 80, "Grade 1")]),
        "inputs[0]",
    ),
    "correction-balance": (
        [*BASE, qc("H1", 12, kg=204), qc("G1", 15, inputs=[("H1", 204)])],
        correction(event_id(parse_event(BASE[3])), day=20),
        correction(event_id(parse_event(qc("H1", 12, kg=204))), day=20),
        "corrects",
    ),
    "weight-consumed": (
        BASE,
        qc("G1", 15, inputs=[("H1", 200), ("H2", 100)]),
        qc("G1", 15, inputs=[("H1", 201), ("H2", 100)]),
        "inputs[0].kg",
    ),
    "weight-gain": (
        [*BASE, qc("G1", 15, inputs=[("H1", 200), ("H2", 100)])],
        mill(20, [("G1", 300)], [("M1", 230, "G1")], rejects_kg=60),
        mill(20, [("G1", 300)], [("M1", 250, "G1")], rejects_kg=60),
        "outputs",
    ),
    "rejected-lot": (
        [*BASE, qc("H1", 12, result="rejected", reason="phenol")],
        qc("G1", 15, inputs=[("H2", 100)]),
        qc("G1", 15, inputs=[("H1", 100)]),
        "inputs[0]",
    ),
    "finding-target": (
        [*BASE, FINDING],
        {**RESOLUTION, "finding": event_id(parse_event(FINDING))},
        {**RESOLUTION, "finding": event_id(parse_event(BASE[0]))},  # a harvest, not a finding
        "finding",
    ),
    "correction-target": (
        BASE,
        correction(event_id(parse_event(BASE[1]))),
        correction("0" * 64),
        "corrects",
    ),
    "correction-orphans": (
        BASE,
        correction(event_id(parse_event(BASE[1]))),  # drying created nothing
        correction(event_id(parse_event(BASE[0]))),  # harvest H1 has a drying after it
        "corrects",
    ),
    "weight-unstated": (  # a coffee lot coded as a URI, as a foreign event can name it
        [harvest("urn:coop:lot:U1", 1, 1000, site="farm:U1"), drying("urn:coop:lot:U1", 10, 200)],
        foreign(transformation(20, [("urn:coop:lot:U1", 100.0)], [("urn:x:roasted-1", 99.0)])),
        foreign(transformation(20, [("urn:coop:lot:U1", None)], [("urn:x:roasted-1", 99.0)])),
        "inputs[0]",
    ),
    "epcis-hash": (
        BASE,
        foreign(aggregate(20, "urn:x:pallet", ["urn:x:box"])),
        foreign(
            aggregate(20, "urn:x:pallet", ["urn:x:box"]),
            hash_id="ni:///sha-256;" + "1" * 64 + "?ver=CBV2.0",
        ),
        "hash_id",
    ),
    "site-kind": (BASE, harvest("H3", 3), {**harvest("H3", 3), "site": "port:PAITA"}, "site"),
    "epcis-same-hash": (
        [
            dict(
                foreign(aggregate(20, "urn:x:pallet", ["urn:x:box"])), partner_event_id="urn:uuid:1"
            )
        ],
        dict(  # the same event's error declaration: its second form, not a second capture
            foreign(
                dict(
                    aggregate(20, "urn:x:pallet", ["urn:x:box"]),
                    errorDeclaration={"declarationTime": "2025-06-30T00:00:00Z"},
                )
            ),
            partner_event_id="urn:uuid:1",
        ),
        dict(foreign(aggregate(20, "urn:x:pallet", ["urn:x:box"])), partner_event_id="urn:uuid:2"),
        "event",
    ),
    "lineage-cycle": (
        [foreign(aggregate(20, "urn:x:pallet", ["urn:x:box"]))],
        foreign(aggregate(21, "urn:x:pallet", ["urn:x:box-2"])),
        foreign(aggregate(21, "urn:x:box", ["urn:x:pallet"])),
        "lot",
    ),
    "claim-broken": (  # H1 and H2 are two producers' lots
        BASE,
        qc("G1", 15, inputs=[("H1", 100)], claims=["single_producer"]),
        qc("G1", 15, inputs=[("H1", 100), ("H2", 50)], claims=["single_producer"]),
        "claims",
    ),
    "record-lot": (
        BASE,
        _PURCHASE,
        {**_PURCHASE, "lot": "NOPE"},
        "lot",
    ),
}


@pytest.mark.parametrize(
    ("event", "ok"),
    [
        (drying("H1", 12, 190, site="gatherer:G1"), True),  # re-dried at the gatherer's station
        (drying("H1", 12, 190, site="hq:HQ"), False),
        (qc("H1", 12, site="hq:HQ"), False),  # a gatherer_qc belongs at a gatherer
        (qc("H1", 12, stage="hq_qc", site="gatherer:G1"), False),
        (qc("H1", 12, stage="hq_qc", site="lab:HQ"), False),
        (mill(20, [("H1", 200)], [("M1", 150, "Grade 1")], site="hq:HQ"), False),
        ({"type": "dispatch", "time": t(12), "site": "hq:HQ", "lot": "H1"}, True),  # anywhere
        ({"type": "arrival", "time": t(12), "site": "port:X", "lot": "H1"}, True),
        ({**correction(event_id(parse_event(BASE[1])), day=20), "site": "port:PAITA"}, True),
    ],
)
def test_site_suits_event_type(ledger: Ledger, event: dict[str, Any], ok: bool) -> None:
    ledger.append(batch(*BASE))
    if ok:
        assert ledger.append(batch(event)).added == 1
    else:
        with pytest.raises(RuleViolation, match=r"\[site-kind\].* not at "):
            ledger.append(batch(event))


def test_harvest_at_hq_names_the_kind_it_needs(ledger: Ledger) -> None:
    with pytest.raises(RuleViolation) as info:
        ledger.append(batch({**harvest("H9", 3), "site": "hq:APROCASSI"}))
    assert "a harvest happens at a farm: site, not at hq:APROCASSI" in str(info.value)


def test_every_rule_has_a_case() -> None:
    assert set(CASES) == set(RULES)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_accepts_good_case(ledger: Ledger, rule: str) -> None:
    before, good, _bad, _field = CASES[rule]
    ledger.append(batch(*before))
    report = ledger.append(batch(good))
    assert report.added == 1


@pytest.mark.parametrize("rule", sorted(CASES))
def test_rule_rejects_bad_case(ledger: Ledger, rule: str) -> None:
    before, _good, bad, field = CASES[rule]
    ledger.append(batch(*before))
    n = ledger.stats()["events"]
    with pytest.raises(RuleViolation) as info:
        ledger.append(batch(bad))
    assert info.value.rule == rule
    assert info.value.field == field
    assert f"[{rule}]" in str(info.value)
    assert str(info.value).startswith("test:1: ")
    assert "\n" not in str(info.value)
    assert ledger.stats()["events"] == n


def test_rejected_lot_cannot_be_exported(ledger: Ledger) -> None:
    ledger.append(batch(*chain()[:6], qc("M2", 45, stage="hq_qc", result="rejected")))
    with pytest.raises(RuleViolation, match="rejected-lot"):
        ledger.append(batch(export("M2", 60, 30)))


def test_lot_on_hold_cannot_move_on_until_accepted(ledger: Ledger) -> None:
    ledger.append(batch(*BASE, qc("H1", 12, result="hold", reason="awaiting cupping")))
    with pytest.raises(RuleViolation, match=r"\[rejected-lot\].*put on hold"):
        ledger.append(batch(qc("G1", 15, inputs=[("H1", 100)])))
    ledger.append(batch(qc("H1", 13, result="accepted")))
    assert ledger.append(batch(qc("G1", 15, inputs=[("H1", 100)]))).added == 1


def test_an_export_lot_cannot_ship_twice(ledger: Ledger) -> None:
    ledger.append(batch(*chain()[:6], export("E1", 50, 200, inputs=[{"lot": "M1", "kg": 200}])))
    with pytest.raises(RuleViolation, match="weight-consumed"):
        ledger.append(batch(export("E1", 51, 200)))
    with pytest.raises(RuleViolation, match="weight-consumed"):
        ledger.append(batch(export("E2", 51, 200, inputs=[{"lot": "E1", "kg": 200}])))


def test_wet_lot_may_be_dried_again_at_the_gatherer(ledger: Ledger) -> None:
    ledger.append(batch(*BASE, qc("H1", 12, result="rejected", moisture_pct=15.2)))
    assert ledger.append(batch(drying("H1", 14, 195, moisture_pct=11.5), qc("H1", 15))).added == 2


def test_green_lot_may_get_pre_shipment_qc_at_hq(ledger: Ledger) -> None:
    ledger.append(batch(*chain()[:6]))
    assert ledger.append(batch(qc("M1", 45, stage="hq_qc", cup_score=84.5))).added == 1


def test_correction_is_not_dated_before_its_target_nor_in_the_future(ledger: Ledger) -> None:
    ledger.append(batch(*BASE))
    eid = event_id(parse_event(BASE[3]))
    with pytest.raises(RuleViolation, match=r"\[time-order\].*before the event it voids"):
        ledger.append(batch(correction(eid, day=5)))
    with pytest.raises(RuleViolation, match=r"\[time-future\]"):
        ledger.append(batch({**correction(eid), "time": "2099-01-01T00:00:00-05:00"}))


def test_reinspection_after_rejection_lets_lot_move_on(ledger: Ledger) -> None:
    ledger.append(batch(*BASE, qc("H1", 12, result="rejected"), qc("H1", 14, result="accepted")))
    assert ledger.append(batch(qc("G1", 15, inputs=[("H1", 100)]))).added == 1


def test_exports_draw_down_a_lot(ledger: Ledger) -> None:
    ledger.append(batch(*chain()[:6], export("M1", 50, 150)))
    ledger.append(batch(export("M1", 51, 50, container="B")))
    with pytest.raises(RuleViolation, match="weight-consumed"):
        ledger.append(batch(export("M1", 52, 1, container="C")))


def test_input_from_later_stage_is_stage_order(ledger: Ledger) -> None:
    ledger.append(batch(*BASE, qc("H1", 12, stage="hq_qc")))
    with pytest.raises(RuleViolation, match=r"\[stage-order\]"):
        ledger.append(batch(drying("D1", 13, 50, inputs=[{"lot": "H1", "kg": 60}])))


def test_violation_in_batch_names_its_position(ledger: Ledger) -> None:
    events = [harvest(f"H{i}", 1) for i in range(1, 6)] + [drying("ZZ", 3)]
    with pytest.raises(RuleViolation, match=r"^test:6: \[lot-unknown\]"):
        ledger.append(batch(*events))
    assert ledger.stats()["events"] == 0


WARNING_CASES = {
    "moisture-range": qc("G1", 15, inputs=[("H1", 100)], moisture_pct=14.5),
    "water-activity": qc("G1", 15, inputs=[("H1", 100)], water_activity=0.75),
    "yield-drying": None,
    "yield-mill": None,  # built below: needs a merged lot
    "bags-weight": None,
}


@pytest.mark.parametrize("rule", sorted(WARNINGS))
def test_warnings_are_reported_but_do_not_block(ledger: Ledger, rule: str) -> None:
    ledger.append(batch(*BASE))
    setup: list[dict[str, Any]] = []
    warn = WARNING_CASES[rule]
    if rule == "yield-drying":
        setup = [harvest("H3", 3, 1000)]
        warn = drying("H3", 12, 40)
    if rule == "yield-mill":
        setup = [qc("G1", 15, inputs=[("H1", 200)])]
        warn = mill(20, [("G1", 200)], [("M1", 100, "G1")])
    if rule == "bags-weight":
        setup = [qc("G1", 15, inputs=[("H1", 200)]), mill(20, [("G1", 200)], [("M1", 160, "G1")])]
        warn = export("M1", 30, 138, bags=3, bag_kg=69)
    ledger.append(batch(*setup))
    assert warn is not None
    report = ledger.append(batch(warn))
    assert report.added == 1
    assert [w.rule for w in report.warnings] == [rule]


def test_clean_chain_has_no_warnings(ledger: Ledger) -> None:
    report = ledger.append(batch(*chain()))
    assert report.added == 7
    assert report.warnings == []


def test_same_lot_from_two_paths_is_a_diamond_not_an_error(ledger: Ledger) -> None:
    ledger.append(
        batch(
            *BASE,
            qc("G1", 15, inputs=[("H1", 100)]),
            qc("G2", 15, inputs=[("H1", 100), ("H2", 100)]),
            qc("B1", 20, stage="hq_qc", inputs=[("G1", 100), ("G2", 200)]),
        )
    )
    assert ledger.lot("B1") is not None
    assert ledger.lot("H1").drawn_kg == pytest.approx(200)  # type: ignore[union-attr]


def test_time_key_orders_offsets_correctly(ledger: Ledger) -> None:
    # 08:00-05:00 is 13:00Z; 12:30Z is earlier even though it reads later.
    ledger.append(batch({**harvest("H1"), "time": "2025-05-10T08:00:00-05:00"}))
    with pytest.raises(RuleViolation, match="time-order"):
        ledger.append(batch({**drying("H1", 1, 200), "time": "2025-05-10T12:30:00Z"}))
    assert t(1).endswith("-05:00")
