"""The rules an event must pass before it enters the log, and the lot state they read.

Pure logic, no SQL: the ledger hands each new event and a :class:`View` of the
ledger's current state to :func:`check`, and folds accepted events into each
lot's :class:`LotState` with :func:`fold`. Rebuilding the derived tables folds
the whole log again with the same function, so the two cannot disagree.

Every finding has a rule name (``lot-unknown``, ``weight-consumed`` ...) and a
one-line message naming the lot and the field. ``docs/rules.md`` lists them all;
:data:`RULES` is the list a test keeps that page honest with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol

from .events import STAGE_ORDER, DryMill, EventBase

__all__ = [
    "FOREIGN_STAGE",
    "RULES",
    "WARNINGS",
    "Facts",
    "Finding",
    "LotState",
    "View",
    "check",
    "check_refolded",
    "facts_of",
    "fold",
    "lots_of",
    "time_key",
]

STAGE_NAMES = {v: k for k, v in STAGE_ORDER.items()}
#: The stage of a lot first named by a foreign EPCIS event (before any coffee stage).
FOREIGN_STAGE = -1
STAGE_NAMES[FOREIGN_STAGE] = "epcis"

#: Rules that reject an event (and so its whole batch), with what each checks.
RULES: dict[str, str] = {
    "lot-exists": "a lot is created once: by a harvest, as an input-formed lot, or as a mill output",
    "lot-unknown": "an event on, or drawing from, a lot that was never created is rejected",
    "input-invalid": "an event cannot draw from its own lot or list one input lot twice",
    "time-order": "a lot's events do not go backwards in time",
    "time-future": "no event lies in the future (five minutes of clock skew allowed)",
    "stage-order": "a lot's own events do not go backwards in stage order",
    "weight-consumed": "the kg drawn from a lot by later inputs and exports cannot exceed what it had",
    "weight-gain": "transformation outputs cannot weigh more than their inputs (2 % scale tolerance)",
    "rejected-lot": "a lot whose last QC result is 'rejected' or 'hold' cannot flow into another lot "
    "or be exported until a later QC accepts it",
    "stage-skip": "the dry mill takes only dried parchment (a lot past drying), and only green "
    "coffee (a lot out of the dry mill) is exported",
    "correction-balance": "a correction cannot leave a lot with more kg drawn from it than it had",
    "correction-target": "a correction names an existing event that is not already void "
    "and is not itself a correction",
    "correction-orphans": "an event that created a lot can only be voided once nothing "
    "else refers to that lot (void the later events first, newest first)",
}

#: Findings that are reported but do not block.
WARNINGS: dict[str, str] = {
    "moisture-range": "moisture outside 9-13 % (the range parchment is bought and stored at)",
    "water-activity": "water activity above 0.70 (mould risk)",
    "yield-drying": "dry parchment outside 15-30 % of the cherry weight",
    "yield-mill": "green coffee outside 65-90 % of the parchment weight at the dry mill",
    "bags-weight": "bags x bag_kg differs from kg by more than 1 %",
}

_SKEW = timedelta(minutes=5)
#: Events allowed at a later stage than their own: re-drying a wet lot at the
#: gatherer, and the HQ lab's pre-shipment QC of green coffee out of the mill.
_BACKSTEPS = {("drying", STAGE_ORDER["gatherer_qc"]), ("hq_qc", STAGE_ORDER["dry_mill"])}
#: The stage a lot must have reached before an event of this type may draw it.
_MIN_INPUT_STAGE = {"dry_mill": STAGE_ORDER["drying"], "export": STAGE_ORDER["dry_mill"]}


def _goes_back(kind: str, stage: int | None, lot_stage: int) -> bool:
    return stage is not None and stage < lot_stage and (kind, lot_stage) not in _BACKSTEPS


_WEIGHT_TOLERANCE = 1.02


_last: tuple[datetime | None, str] = (None, "")


def time_key(t: datetime) -> str:
    """A UTC string that sorts in time order: ``2025-06-02T14:30:00.000000Z``.

    >>> from datetime import datetime, timedelta, timezone
    >>> time_key(datetime(2025, 6, 2, 9, 30, tzinfo=timezone(timedelta(hours=-5))))
    '2025-06-02T14:30:00.000000Z'
    """
    global _last
    last = _last
    if last[0] is t:  # check() and fold() ask again for the same event's time
        return last[1]
    # isoformat is C code, faster than formatting the fields here (import, verify);
    # in UTC it ends in "+00:00", which is cut rather than replace(tzinfo=None)'d: half the time.
    key = t.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    _last = (t, key)  # one tuple, so a reader in another thread sees a matching pair
    return key


class LotState(NamedTuple):
    """What the ledger knows about one lot, folded from its non-void events.

    A named tuple, not a frozen dataclass: an import makes one per lot an event
    touches, and a frozen dataclass sets each of its eleven fields through
    ``object.__setattr__`` (1.5 s of a million-event import). It is also the
    ``lots`` table's row as it is.
    """

    lot: str
    created_by: str  #: event id of the event that created it
    stage: int  #: highest stage reached (see STAGE_ORDER)
    first_time: str  #: time_key of its creation
    last_time: str  #: time_key of its latest event
    kg: float  #: its current weight: the latest kg an event stated for it
    drawn_kg: float  #: kg drawn from it by later inputs and exports
    last_qc: str | None  #: result of its latest QC event
    last_site: str
    last_event: str  #: event id of its latest event
    n_events: int  #: non-void events that involve it, including draws


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken (``severity='error'``) or one warning."""

    rule: str
    message: str
    field: str = ""
    severity: str = "error"


class View(Protocol):
    """The ledger state the rules read."""

    def lot(self, code: str) -> LotState | None: ...

    def event(self, event_id: str) -> tuple[Facts, bool] | None:
        """The facts of the event with this id and whether it is void, or None."""
        ...


class Facts(NamedTuple):
    """What the rules and the derived tables read of one event, as plain values.

    :func:`facts_of` takes them from a validated event's own properties
    (``drawn``, ``formed``, ``stage`` ...), so the event classes stay the one
    place that says what an event means. Plain values make the rule checks
    cheap, and a plain tuple crosses a process boundary cheaply, so an import
    can validate in one process and check rules in another.
    """

    type: str
    time: str  #: time_key: a UTC string that sorts in time order
    time_iso: str  #: the time as the event gives it, for messages
    site: str
    subject: str | None
    stage: int | None
    drawn: tuple[tuple[str, float], ...]  #: (lot, kg) drawn from each input lot
    formed: tuple[tuple[str, float | None], ...]  #: (lot, kg) of each lot it creates
    touched: tuple[str, ...]  #: other lots it names (EPCIS events)
    stated: tuple[tuple[str, float | None], ...]  #: EPCIS events: the kg stated per named lot
    kg: Any
    result: str | None  #: a QC's result
    moisture_pct: Any
    water_activity: Any
    bags: Any
    bag_kg: Any
    outputs_kg: float | None  #: a dry mill's graded output, in kg
    rejects_kg: float | None  #: what a dry mill removed, in kg
    corrects: str | None  #: a correction's target
    reason: str | None  #: a correction's reason
    lots: tuple[tuple[str, str], ...]  #: every (lot, role): see :func:`lots_of`


def facts_of(ev: EventBase) -> Facts:
    """The :class:`Facts` of a validated event.

    >>> from lottrace.events import parse_event
    >>> f = facts_of(parse_event({"type": "drying", "time": "2025-06-02T09:30:00-05:00",
    ...                            "site": "farm:X", "lot": "L1", "kg": 200}))
    >>> f.time, f.subject, f.stage, f.kg
    ('2025-06-02T14:30:00.000000Z', 'L1', 1, 200.0)
    """
    get = ev.__dict__.get
    result = get("result")
    outputs = get("outputs") if isinstance(ev, DryMill) else None
    drawn = tuple((i.lot, i.kg) for i in ev.drawn)
    formed, subject, touched = ev.formed, ev.subject, ev.touched
    lots = _lots_of(drawn, formed, subject, touched)
    stated: tuple[tuple[str, float | None], ...] = ()
    if ev.type == "epcis":
        stated = tuple((lot, ev.kg_for(lot)) for lot, role in lots if role == "subject")
    return Facts(
        ev.type,
        time_key(ev.time),
        ev.time.isoformat(),
        ev.site,
        subject,
        ev.stage,
        drawn,
        formed,
        touched,
        stated,
        get("kg"),
        result if isinstance(result, str) else None,
        get("moisture_pct"),
        get("water_activity"),
        get("bags"),
        get("bag_kg"),
        sum(o.kg for o in outputs) if outputs else None,
        get("rejects_kg"),
        get("corrects"),
        get("reason"),
        lots,
    )


def lots_of(ev: Facts) -> tuple[tuple[str, str], ...]:
    """Every (lot, role) an event involves; role is subject, input or output."""
    return ev.lots


def _lots_of(
    drawn: tuple[tuple[str, float], ...],
    formed: tuple[tuple[str, float | None], ...],
    subject: str | None,
    touched: tuple[str, ...],
) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = [(lot, "input") for lot, _kg in drawn]
    made = {lot for lot, _ in formed}
    out.extend((lot, "output") for lot in made)
    if subject is not None and subject not in made:
        out.append((subject, "subject"))
    if touched:  # EPCIS events: every other id they name
        seen = {lot for lot, _ in out}
        out.extend((lot, "subject") for lot in touched if lot not in seen)
    return tuple(out)


def _kg_text(x: float) -> str:
    return f"{x:,.2f}".rstrip("0").rstrip(".")


_future: tuple[datetime | None, str] = (None, "")


def _future_key(now: datetime) -> str:
    """time_key of ``now`` plus the clock skew allowed (one batch asks with one ``now``)."""
    global _future
    last = _future
    if last[0] is now:
        return last[1]
    key = time_key(now + _SKEW)
    _future = (now, key)
    return key


def check(ev: Facts, view: View, now: datetime) -> list[Finding]:
    """All rule findings (errors and warnings) for appending ``ev`` to ``view``."""
    if ev.type == "correction":
        return _check_correction(ev, view, now)
    if ev.type == "epcis":  # foreign EPCIS events: the coffee rules do not apply
        return []
    found: list[Finding] = []
    t = ev.time
    if t > _future_key(now):
        found.append(Finding("time-future", f"time {ev.time_iso} is in the future", "time"))
    formed = dict(ev.formed)
    stage = ev.stage

    for code in formed:
        if view.lot(code) is not None:
            found.append(Finding("lot-exists", f"lot {code} already exists", "lot"))

    seen: set[str] = set()
    for i, (code, kg_in) in enumerate(ev.drawn):
        field = f"inputs[{i}]"
        if code in formed:
            found.append(Finding("input-invalid", f"lot {code} cannot draw from itself", field))
            continue
        if code in seen:
            found.append(Finding("input-invalid", f"input lot {code} is listed twice", field))
            continue
        seen.add(code)
        st = view.lot(code)
        if st is None:
            found.append(Finding("lot-unknown", f"input lot {code} was never created", field))
            continue
        found.extend(_check_time(st, t, ev, field))
        found.extend(_check_skip(st, ev, field))
        if stage is not None and stage < st.stage:
            found.append(
                Finding(
                    "stage-order",
                    f"input lot {code} is already at {STAGE_NAMES[st.stage]}; "
                    f"a {ev.type} cannot draw from it",
                    field,
                )
            )
        found.extend(_check_draw(st, kg_in, field, f"{field}.kg"))

    subject = ev.subject
    if subject is not None and subject not in formed:
        st = view.lot(subject)
        if st is None:
            found.append(
                Finding(
                    "lot-unknown", f"lot {subject} was never created (log its harvest first)", "lot"
                )
            )
        else:
            found.extend(_check_time(st, t, ev, "time"))
            found.extend(_check_skip(st, ev, "lot"))
            if _goes_back(ev.type, stage, st.stage):
                found.append(
                    Finding(
                        "stage-order",
                        f"lot {subject} is already at {STAGE_NAMES[st.stage]}; "
                        f"a {ev.type} would go back",
                        "type",
                    )
                )
            kg = ev.kg
            if ev.type == "export" and kg is not None:
                found.extend(_check_draw(st, kg, "lot", "kg"))
            elif kg is not None:
                found.extend(_check_restate(st, kg, ev))

    found.extend(_check_mass_balance(ev, formed))
    found.extend(_warnings(ev, view))
    return found


def _check_skip(st: LotState, ev: Facts, field: str) -> list[Finding]:
    need = _MIN_INPUT_STAGE.get(ev.type)
    if need is not None and st.stage < need:
        return [
            Finding(
                "stage-skip",
                f"lot {st.lot} is only at {STAGE_NAMES[st.stage]}; a {ev.type} needs it at "
                f"{STAGE_NAMES[need]} or later",
                field,
            )
        ]
    return []


def _check_time(st: LotState, t: str, ev: Facts, field: str) -> list[Finding]:
    if t < st.last_time:
        return [
            Finding(
                "time-order",
                f"lot {st.lot} already has an event at {st.last_time}; "
                f"this {ev.type} at {t} would go back in time",
                field,
            )
        ]
    return []


def _check_draw(st: LotState, kg: float, lot_field: str, field: str) -> list[Finding]:
    found = []
    if st.last_qc in ("rejected", "hold"):
        verdict = "rejected" if st.last_qc == "rejected" else "put on hold"
        found.append(
            Finding(
                "rejected-lot",
                f"lot {st.lot} was {verdict} at its last QC; re-inspect it before it moves on",
                lot_field,
            )
        )
    left = st.kg - st.drawn_kg
    if kg > left + 1e-6 * max(1.0, st.kg):
        found.append(
            Finding(
                "weight-consumed",
                f"lot {st.lot} has {_kg_text(left)} kg left of {_kg_text(st.kg)} kg; "
                f"cannot draw {_kg_text(kg)} kg",
                field,
            )
        )
    return found


def _check_restate(st: LotState, kg: float, ev: Facts) -> list[Finding]:
    if kg > st.kg * _WEIGHT_TOLERANCE:
        return [
            Finding(
                "weight-gain",
                f"lot {st.lot} weighed {_kg_text(st.kg)} kg; a {ev.type} of {_kg_text(kg)} kg "
                "would make coffee out of nothing",
                "kg",
            )
        ]
    if kg + 1e-6 < st.drawn_kg:
        return [
            Finding(
                "weight-consumed",
                f"lot {st.lot} already gave {_kg_text(st.drawn_kg)} kg to other lots; "
                f"it cannot weigh {_kg_text(kg)} kg now",
                "kg",
            )
        ]
    return []


def _check_mass_balance(ev: Facts, formed: dict[str, float | None]) -> list[Finding]:
    if not ev.drawn:
        return []
    total_in = sum(kg for _lot, kg in ev.drawn)
    if ev.outputs_kg is not None:  # a dry mill: graded outputs plus what it removed
        out = ev.outputs_kg + (ev.rejects_kg or 0.0)
        field = "outputs"
    else:
        out = sum(kg or 0.0 for kg in formed.values())
        field = "kg"
    if out > total_in * _WEIGHT_TOLERANCE:
        return [
            Finding(
                "weight-gain",
                f"outputs weigh {_kg_text(out)} kg but the inputs only {_kg_text(total_in)} kg",
                field,
            )
        ]
    return []


def _warnings(ev: Facts, view: View) -> list[Finding]:
    found: list[Finding] = []

    def warn(rule: str, message: str, field: str) -> None:
        found.append(Finding(rule, message, field, "warning"))

    moisture = ev.moisture_pct
    if moisture is not None and not (9 <= moisture <= 13):
        warn("moisture-range", f"moisture {moisture} % is outside 9-13 %", "moisture_pct")
    aw = ev.water_activity
    if aw is not None and aw > 0.70:
        warn("water-activity", f"water activity {aw} is above 0.70", "water_activity")
    if ev.type == "drying" and ev.subject is not None and not ev.drawn:
        st = view.lot(ev.subject)
        kg = ev.kg
        if st is not None and st.stage == 0 and kg is not None:
            ratio = kg / st.kg
            if not (0.15 <= ratio <= 0.30):
                warn("yield-drying", f"parchment is {ratio:.0%} of the cherry weight", "kg")
    if ev.outputs_kg is not None:
        ratio = ev.outputs_kg / sum(kg for _lot, kg in ev.drawn)
        if not (0.65 <= ratio <= 0.90):
            warn("yield-mill", f"green coffee is {ratio:.0%} of the parchment weight", "outputs")
    bags, bag_kg, kg = ev.bags, ev.bag_kg, ev.kg
    if bags and bag_kg and kg and abs(bags * bag_kg - kg) > 0.01 * kg:
        warn("bags-weight", f"{bags} bags x {bag_kg} kg is not {_kg_text(kg)} kg", "bags")
    return found


def _check_correction(ev: Facts, view: View, now: datetime) -> list[Finding]:
    assert ev.corrects is not None
    if ev.time > _future_key(now):
        return [Finding("time-future", f"time {ev.time_iso} is in the future", "time")]
    target = view.event(ev.corrects)
    if target is None:
        return [
            Finding(
                "correction-target", f"no event {ev.corrects[:12]}... in the ledger", "corrects"
            )
        ]
    body, void = target
    if void:
        return [
            Finding("correction-target", f"event {ev.corrects[:12]}... is already void", "corrects")
        ]
    if body.type == "correction":
        return [
            Finding(
                "correction-target",
                f"event {ev.corrects[:12]}... is a correction; corrections cannot be voided",
                "corrects",
            )
        ]
    if ev.time < body.time:
        return [
            Finding(
                "time-order",
                f"the correction is dated before the event it voids ({body.time_iso})",
                "time",
            )
        ]
    found = []
    for code, _kg in body.formed:
        st = view.lot(code)
        if st is not None and st.n_events > 1:
            found.append(
                Finding(
                    "correction-orphans",
                    f"event {ev.corrects[:12]}... created lot {code}, which has "
                    f"{st.n_events - 1} later event(s); void those first",
                    "corrects",
                )
            )
    return found


def check_refolded(st: LotState) -> Finding | None:
    """After a correction refolded ``st``: is the lot still in balance?"""
    if st.drawn_kg > st.kg + 1e-6 * max(1.0, st.kg):
        return Finding(
            "correction-balance",
            f"voiding it would leave lot {st.lot} with {_kg_text(st.drawn_kg)} kg drawn of "
            f"{_kg_text(st.kg)} kg; void the later draws first",
            "corrects",
        )
    return None


def fold(state: LotState | None, lot: str, role: str, ev: Facts, eid: str) -> LotState | None:
    """Apply one accepted, non-void event to one lot's state.

    ``role`` is how the event involves the lot (see :func:`lots_of`). Folding a
    lot's events in log order gives its state; the ledger does this on append
    and on rebuild.
    """
    t = ev.time
    stage = ev.stage
    if role == "output":
        kg = dict(ev.formed)[lot] or 0.0
        shipped = kg if ev.type == "export" else 0.0  # an export lot leaves with the ship
        if stage is None:
            stage = FOREIGN_STAGE if ev.type == "epcis" else 0
        return LotState(lot, eid, stage, t, t, kg, shipped, ev.result, ev.site, eid, 1)
    if state is None and ev.type == "epcis":  # a foreign id is a lot from its first event
        state = LotState(lot, eid, FOREIGN_STAGE, t, t, 0.0, 0.0, None, ev.site, eid, 0)
    if state is None:  # cannot happen for events that passed check(); tolerate on rebuild
        return None
    if role == "input":
        drawn = next(kg for code, kg in ev.drawn if code == lot)
        return LotState(
            state.lot,
            state.created_by,
            state.stage,
            state.first_time,
            max(state.last_time, t),
            state.kg,
            state.drawn_kg + drawn,
            state.last_qc,
            state.last_site,
            eid,
            state.n_events + 1,
        )
    stated: float | None = dict(ev.stated).get(lot) if ev.type == "epcis" else ev.kg
    new_kg, drawn_kg = state.kg, state.drawn_kg
    if ev.type == "export" and stated is not None:
        drawn_kg += stated
    elif stated is not None:
        new_kg = stated
    return LotState(  # dataclasses.replace() is several times slower
        state.lot,
        state.created_by,
        max(state.stage, stage) if stage is not None else state.stage,
        state.first_time,
        max(state.last_time, t),
        new_kg,
        drawn_kg,
        ev.result or state.last_qc,
        ev.site,
        eid,
        state.n_events + 1,
    )
