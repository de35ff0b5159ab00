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

from .claimlogic import Origin, blend, harvest_state, state_of
from .events import (
    RECORD_TYPES,
    REGISTRY_TYPES,
    STAGE_ORDER,
    DryMill,
    EpcisEvent,
    EventBase,
    Harvest,
)

__all__ = [
    "FOREIGN_STAGE",
    "RULES",
    "SITE_KINDS",
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
    "site-kind": "a checkpoint happens at a site of its kind: harvest at a farm:, drying at a "
    "farm: or a gatherer: station, gatherer_qc at a gatherer:, hq_qc at the hq:, dry_mill at a "
    "mill:, export at a port: (dispatch, arrival and corrections anywhere; foreign EPCIS events, "
    "whose site is a URI, are exempt)",
    "lot-exists": "a lot is created once: by a harvest, as an input-formed lot, or as a mill output",
    "lot-unknown": "an event on, or drawing from, a lot that was never created is rejected",
    "input-invalid": "an event cannot draw from its own lot or list one input lot twice",
    "time-order": "a lot's events do not go backwards in time (events on a foreign id may "
    "arrive in any order, as EPCIS capture allows; not on a coffee lot)",
    "time-future": "no event lies in the future (five minutes of clock skew allowed)",
    "stage-order": "a lot's own events do not go backwards in stage order",
    "weight-consumed": "the kg drawn from a lot by later inputs and exports cannot exceed what it had "
    "(a foreign id's, weighed on other parties' scales, by at most the 2 % scale tolerance)",
    "weight-gain": "transformation outputs cannot weigh more than their inputs, and a lot "
    "restated cannot weigh more than the lowest weight stated for it (2 % scale tolerance)",
    "rejected-lot": "a lot whose last QC result is 'rejected' or 'hold' cannot flow into another lot "
    "or be exported until a later QC accepts it",
    "stage-skip": "the dry mill takes only dried parchment (a lot past drying), and only green "
    "coffee (a lot out of the dry mill) is exported",
    "correction-balance": "a correction cannot leave a lot with more kg drawn from it than it had",
    "correction-target": "a correction names an existing event that is not already void "
    "and is not itself a correction, nor master data or a document header (a newer version "
    "of a vocabulary element replaces it; master data names no lot a void could be kept for)",
    "correction-orphans": "an event that created a lot can only be voided once nothing "
    "else refers to that lot (void the later events first, newest first)",
    "weight-unstated": "a foreign (EPCIS) event that draws from a weighed lot states the kg it "
    "draws (a quantity in KGM)",
    "finding-target": "an eudr_resolution resolves an eudr_finding of the ledger that is not "
    "void, and is not dated before it",
    "lineage-cycle": "no lot flows, through any chain of events, into a lot it came from",
    "epcis-hash": "a foreign (EPCIS) event's hash_id is its CBV 2.0 Event Hash ID, recomputed "
    "on append",
    "epcis-same-hash": "one Event Hash ID, one event (gs1/EPCIS issue 403): a foreign event "
    "captured again with the same eventID, or with none, is a duplicate whatever its "
    "representation (XML or JSON-LD, 200 or 200.0); with another eventID it is refused; an "
    "error declaration is the event's second form",
    "claim-broken": "an event that declares claims (`claims`) forms a lot that holds each of "
    "them: a claim lot refuses a blend that breaks its claim (see Claims below)",
    "record-lot": "a certificate, purchase, payment or premium that names a lot names one that "
    "exists and is not void; a premium or transaction certificate names an exported lot, a "
    "premium is paid on at most its kg, and a purchase pays for the named producer's own "
    "harvest lot",
}

#: Findings that are reported but do not block.
WARNINGS: dict[str, str] = {
    "moisture-range": "moisture outside 9-13 % (the range parchment is bought and stored at)",
    "water-activity": "water activity above 0.70 (mould risk)",
    "yield-drying": "dry parchment outside 15-30 % of the cherry weight",
    "yield-mill": "green coffee outside 65-90 % of the parchment weight at the dry mill",
    "bags-weight": "bags x bag_kg differs from kg by more than 1 %",
}

#: :data:`RULES` and :data:`WARNINGS` in Spanish, as the web app's field pages say them
#: (a test keeps the keys in step).
RULES_ES: dict[str, str] = {
    "site-kind": "cada punto de control ocurre en un lugar de su tipo: cosecha en una finca "
    "(farm:), secado en una finca o un acopio, acopio en un acopio (gatherer:), control en "
    "sede en la sede (hq:), trilla en una planta (mill:), exportación en un puerto (port:)",
    "lot-exists": "un lote se crea una sola vez: por una cosecha, al juntar lotes o como "
    "salida de la trilla; ese código de lote ya existe o no puede usarse",
    "lot-unknown": "el lote nombrado nunca se creó",
    "input-invalid": "un registro no puede tomar de su propio lote ni nombrar dos veces el "
    "mismo lote de entrada",
    "time-order": "los registros de un lote no retroceden en el tiempo",
    "time-future": "ningún registro puede estar en el futuro (se admiten cinco minutos)",
    "stage-order": "los registros de un lote no retroceden en el orden de las etapas",
    "weight-consumed": "no se puede tomar de un lote más kilos de los que tiene",
    "weight-gain": "lo que sale de una transformación no puede pesar más que lo que entró "
    "(2 % de tolerancia de balanza)",
    "rejected-lot": "un lote cuyo último control fue 'rechazado' o 'retenido' no puede pasar "
    "a otro lote ni exportarse hasta que un control posterior lo acepte",
    "stage-skip": "la trilla recibe solo pergamino seco, y solo se exporta café verde "
    "salido de la trilla",
    "correction-balance": "una corrección no puede dejar un lote con más kilos tomados de "
    "los que tenía",
    "correction-target": "una corrección nombra un registro existente que no esté ya anulado "
    "ni sea otra corrección",
    "correction-orphans": "un registro que creó un lote solo puede anularse cuando nada más "
    "nombra ese lote (anule primero los registros posteriores)",
    "weight-unstated": "un registro EPCIS que toma de un lote pesado debe decir cuántos kilos toma",
    "finding-target": "una resolución EUDR resuelve un hallazgo existente y no anulado, y no "
    "tiene fecha anterior a él",
    "lineage-cycle": "ningún lote puede volver a entrar en un lote del que salió",
    "epcis-hash": "el hash_id de un registro EPCIS es su Event Hash ID CBV 2.0",
    "epcis-same-hash": "un Event Hash ID, un registro: el mismo registro EPCIS con otro "
    "eventID se rechaza",
    "claim-broken": "un lote que declara una certificación (claims) no admite una mezcla que "
    "la rompa",
    "record-lot": "un certificado, compra, pago o prima nombra un lote que existe y no está "
    "anulado",
}

WARNINGS_ES: dict[str, str] = {
    "moisture-range": "humedad fuera de 9-13 % (el rango en que se compra y guarda el pergamino)",
    "water-activity": "actividad de agua mayor que 0,70 (riesgo de moho)",
    "yield-drying": "pergamino seco fuera de 15-30 % del peso en cereza",
    "yield-mill": "café verde fuera de 65-90 % del peso en pergamino en la trilla",
    "bags-weight": "sacos x kg por saco difiere de los kilos en más de 1 %",
}

#: The site kinds (the part of ``kind:ID`` before the colon) each event type
#: may happen at; a type not listed may happen anywhere. Drying may also be at
#: a gatherer's station: a wet lot is re-dried there (covered or mechanical).
SITE_KINDS: dict[str, tuple[str, ...]] = {
    "harvest": ("farm",),
    "drying": ("farm", "gatherer"),
    "gatherer_qc": ("gatherer",),
    "hq_qc": ("hq",),
    "dry_mill": ("mill",),
    "export": ("port",),
    "purchase": ("gatherer", "hq"),
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
    #: The lowest weight ever stated for it (0 for a foreign id never weighed):
    #: a restatement may exceed this by the scale tolerance, never the last one,
    #: so small gains cannot creep up restatement after restatement.
    base_kg: float


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

    def path(self, src: str, dst: str) -> list[str] | None:
        """The ids of the events whose links lead from lot ``src`` to lot ``dst``, or None."""
        ...

    def voided(self, code: str) -> bool:
        """Whether an event naming lot ``code`` was voided by a correction."""
        ...

    def holds_coffee(self, code: str) -> bool:
        """Whether lot ``code`` is a coffee lot or came, through any links, from one."""
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
    #: EPCIS events: formed lots it may add to if they exist (an aggregation's parent)
    adds_to: tuple[str, ...] = ()
    #: EPCIS events: input lots it draws without stating their kg
    unstated: tuple[str, ...] = ()
    #: EPCIS events: input lots named as EPC instances (packed whole by an aggregation)
    instances: tuple[str, ...] = ()
    #: EPCIS events: lots named by lottrace's own URI for them (they must exist)
    ours: tuple[str, ...] = ()
    #: Records (certificates, payments ...): (lot, field, stage it must have reached,
    #: the producer whose harvest created it, or "")
    refs: tuple[tuple[str, str, int, str], ...] = ()
    #: A harvest: what its claims rest on (see :mod:`lottrace.claimlogic`)
    origin: Origin | None = None
    #: The claims the event declares the lot it forms holds
    claims: tuple[str, ...] = ()
    #: an eudr_resolution's finding (an event id)
    refers: str | None = None


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
    # A record (a payment ...) names a lot but is none of its events.
    lots = () if ev.type in RECORD_TYPES else _lots_of(drawn, formed, subject, touched)
    stated: tuple[tuple[str, float | None], ...] = ()
    adds_to: tuple[str, ...] = ()
    unstated: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()
    ours: tuple[str, ...] = ()
    if isinstance(ev, EpcisEvent):
        stated = tuple((lot, ev.kg_for(lot)) for lot, role in lots if role == "subject")
        adds_to, unstated, instances, ours = ev.adds_to, ev.unstated, ev.instances, ev.ours
    refs: tuple[tuple[str, str, int, str], ...] = (
        getattr(ev, "refs", ()) if ev.type in RECORD_TYPES else ()
    )
    claims = tuple(get("claims") or ())
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
        adds_to,
        unstated,
        instances,
        ours,
        refs,
        _origin(ev) if isinstance(ev, Harvest) else None,
        claims,
        get("finding") if ev.type == "eudr_resolution" else None,
    )


#: EUDR: a plot over this many hectares needs a polygon, not a point.
_POINT_MAX_HA = 4.0


def _origin(h: Harvest) -> Origin:
    geom, plot = h.plot.geometry, h.plot
    problem = None
    if geom is None:
        problem = f"plot {plot.id} has no geometry (point or polygon)"
    elif geom.type == "Point" and (plot.area_ha or 0) > _POINT_MAX_HA:
        problem = f"plot {plot.id} is {plot.area_ha:g} ha but given only as a Point"
    return Origin(
        h.producer,
        plot.id,
        bool(h.women_producer),
        plot.registered_to,
        tuple(h.certifications or ()),
        problem,
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
    """All rule findings (errors and warnings) for appending ``ev`` to ``view``.

    Every event goes through here, whatever its type or source: a foreign
    EPCIS event obeys the same rules as a coffee event on every lot it names
    (see ``docs/rules.md``); only a first sight of a foreign id creates it.
    """
    if ev.type == "correction":
        return _check_correction(ev, view, now)
    if ev.type in RECORD_TYPES:
        return _check_record(ev, view, now)
    if ev.type in REGISTRY_TYPES:
        return _check_registry(ev, view, now)
    foreign = ev.type == "epcis"
    found: list[Finding] = []
    t = ev.time
    kinds = SITE_KINDS.get(ev.type)
    if kinds is not None and ev.site.partition(":")[0] not in kinds:
        found.append(_site_finding(ev.type, ev.site, kinds))
    if t > _future_key(now):
        found.append(Finding("time-future", f"time {ev.time_iso} is in the future", "time"))
    formed = dict(ev.formed)
    stage = ev.stage
    for code in ev.ours:  # lottrace's URI for a lot names a lot of this ledger, or none
        if view.lot(code) is None:
            found.append(
                Finding(
                    "lot-unknown",
                    f"lot {code} (named by lottrace's URI for it) {_absent(code, view)}",
                    "event",
                )
            )

    for code in formed:
        st = view.lot(code)
        if st is None:
            continue
        if code in ev.adds_to and st.stage == FOREIGN_STAGE:  # more children into a parent
            found.extend(_check_time(st, t, ev, "lot"))
            found.extend(_check_cycle(code, ev, view))
        else:
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
            # A foreign id is a lot from the first event that names it, but not a
            # lot whose creation was voided: that would bring it back.
            if not foreign or view.voided(code):
                found.append(
                    Finding("lot-unknown", f"input lot {code} {_absent(code, view)}", field)
                )
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
        packed_whole = bool(ev.adds_to) and code in ev.instances
        if code in ev.unstated and _weighed(st) and not packed_whole:
            found.append(
                Finding(
                    "weight-unstated",
                    f"input lot {code} weighs {_kg_text(st.kg)} kg; a foreign event drawing "
                    "from it must state the kg it draws (a quantity in KGM)",
                    field,
                )
            )
        elif foreign and code not in ev.unstated and not _weighed(st) and view.holds_coffee(code):
            found.append(
                Finding(
                    "weight-unstated",
                    f"input lot {code} holds coffee but was never weighed; no kg can be "
                    "drawn from it by weight",
                    field,
                )
            )
        elif not foreign and not _weighed(st):
            found.append(
                Finding(
                    "weight-unstated",
                    f"input lot {code} was never weighed; an event stating its kg must come "
                    "before coffee draws from it",
                    field,
                )
            )
        found.extend(_check_draw(st, kg_in, field, f"{field}.kg"))
    if foreign and ev.drawn and not ev.adds_to:  # a transformation, not a packing
        found.extend(_check_foreign_weights(ev, view))

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

    if foreign:  # the other ids it names: observed, packed, shipped ...
        stated = dict(ev.stated)
        for code, role in ev.lots:
            if role != "subject":
                continue
            if (st := view.lot(code)) is None:
                if view.voided(code):
                    found.append(
                        Finding("lot-unknown", f"lot {code} {_absent(code, view)}", "event")
                    )
                continue
            found.extend(_check_time(st, t, ev, "event"))
            if (kg := stated.get(code)) is not None:
                found.extend(_check_restate(st, kg, ev))

    found.extend(_check_mass_balance(ev, formed, view))
    if ev.claims and not any(f.severity == "error" for f in found):
        found.extend(_check_claims(ev, view))
    found.extend(_warnings(ev, view))
    return found


def _check_record(ev: Facts, view: View, now: datetime) -> list[Finding]:
    """A record (certificate, purchase, payment, premium): its time and the lots it names."""
    found: list[Finding] = []
    kinds = SITE_KINDS.get(ev.type)
    if kinds is not None and ev.site.partition(":")[0] not in kinds:
        found.append(_site_finding(ev.type, ev.site, kinds))
    if ev.time > _future_key(now):
        found.append(Finding("time-future", f"time {ev.time_iso} is in the future", "time"))
    for code, field, stage, producer in ev.refs:
        st = view.lot(code)
        if st is None:
            found.append(Finding("record-lot", f"lot {code} {_absent(code, view)}", field))
        elif producer and (origin := _harvest_origin(st, view)) is None:
            found.append(
                Finding(
                    "record-lot",
                    f"lot {code} was not created by a harvest; a purchase pays for a "
                    "producer's own lot",
                    field,
                )
            )
        elif producer and origin is not None and origin.producer != producer:
            found.append(
                Finding(
                    "record-lot",
                    f"lot {code} is producer {origin.producer}'s, not {producer}'s",
                    "producer",
                )
            )
        elif ev.type == "premium" and ev.kg is not None and ev.kg > st.kg * _WEIGHT_TOLERANCE:
            found.append(
                Finding(
                    "record-lot",
                    f"lot {code} weighs {_kg_text(st.kg)} kg; a premium cannot be paid on "
                    f"{_kg_text(ev.kg)} kg",
                    "kg",
                )
            )
        elif st.stage < stage:
            found.append(
                Finding(
                    "record-lot",
                    f"lot {code} is only at {STAGE_NAMES[st.stage]}; a {ev.type} is for "
                    f"an exported lot",
                    field,
                )
            )
    return found


def _harvest_origin(st: LotState, view: View) -> Origin | None:
    """The origin of the harvest that created the lot, or None if no harvest did."""
    found = view.event(st.created_by)
    return found[0].origin if found is not None else None


def _check_claims(ev: Facts, view: View) -> list[Finding]:
    """A claim lot holds every claim its forming event declares (``claim-broken``)."""
    if not ev.formed:
        return [
            Finding(
                "claim-broken",
                f"a {ev.type} that forms no lot cannot declare claims; declare them on "
                "the event that forms the lot (a harvest, a merge, the dry mill)",
                "claims",
            )
        ]

    def creator(code: str) -> Facts | None:
        st = view.lot(code)
        if st is None:
            return None
        found = view.event(st.created_by)
        return found[0] if found is not None else None

    if ev.origin is not None:
        state = harvest_state(ev.formed[0][0], ev.origin)
    else:
        memo: dict[str, Any] = {}
        inputs = [(src, state_of(src, creator, memo)) for src, _kg in ev.drawn]
        state = blend(ev.formed[0][0], inputs)
    for claim in ev.claims:
        if claim not in state.held:
            lots = ", ".join(code for code, _kg in ev.formed)
            return [
                Finding(
                    "claim-broken",
                    f"lot {lots} is declared {claim} but {state.reason(claim)}",
                    "claims",
                )
            ]
    return []


def _site_finding(kind: str, site: str, kinds: tuple[str, ...]) -> Finding:
    wanted = " or ".join(f"a {k}: site" for k in kinds)
    return Finding("site-kind", f"a {kind} happens at {wanted}, not at {site}", "site")


def _absent(code: str, view: View) -> str:
    if view.voided(code):
        return "was voided by a correction; it no longer exists"
    return "was never created"


def _check_foreign_weights(ev: Facts, view: View) -> list[Finding]:
    """A foreign event that takes in coffee weighs everything: no unknown weight joins it.

    Coffee does not gain weight, and material of unknown weight mixed into it
    would let an output claim any kg: so every input and output of such an
    event states its kg (an aggregation's parent holds what is packed), and
    mass balance holds (:func:`_check_mass_balance`).
    """
    if not any(view.holds_coffee(lot) for lot, _kg in ev.drawn):
        return []
    found = []
    for i, (code, _kg) in enumerate(ev.drawn):
        # (an unstated draw from a weighed lot is already refused in check)
        if code in ev.unstated and ((st := view.lot(code)) is None or not _weighed(st)):
            found.append(
                Finding(
                    "weight-unstated",
                    f"input lot {code} has no stated kg; a foreign event that takes in coffee "
                    "must state every input's kg (a quantity in KGM)",
                    f"inputs[{i}]",
                )
            )
    for code, kg in ev.formed:
        if kg is None:
            found.append(
                Finding(
                    "weight-unstated",
                    f"output lot {code} has no stated kg; a foreign event that takes in "
                    "coffee must state every output's kg (a quantity in KGM)",
                    "outputs",
                )
            )
    return found


def _weighed(st: LotState) -> bool:
    """Whether the lot's weight is known: every coffee lot, and a foreign id once stated."""
    return st.stage != FOREIGN_STAGE or st.base_kg > 0


def _check_cycle(code: str, ev: Facts, view: View) -> list[Finding]:
    """Adding inputs to an existing lot: none of them may already come from it."""
    for src, _kg in ev.drawn:
        events = view.path(code, src)
        if events is not None:
            named = ", ".join(e[:12] + "..." for e in events)
            return [
                Finding(
                    "lineage-cycle",
                    f"lot {src} already comes from lot {code} (events {named}); "
                    f"it cannot flow into {code}",
                    "lot",
                )
            ]
    return []


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
    # EPCIS capture allows a partner's events on its own ids to arrive in any order.
    if t < st.last_time and not (st.stage == FOREIGN_STAGE and ev.type == "epcis"):
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
    # A foreign lot's weights come from several parties' scales: the scale
    # tolerance applies to what is left of it. A coffee lot's kg are its own.
    slack = (_WEIGHT_TOLERANCE - 1) * st.kg if st.stage == FOREIGN_STAGE else 1e-6 * max(1.0, st.kg)
    if _weighed(st) and kg > left + slack:
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
    base = st.base_kg
    if base > 0 and kg > base * _WEIGHT_TOLERANCE:
        was = "weighed" if base == st.kg else "has weighed as little as"
        return [
            Finding(
                "weight-gain",
                f"lot {st.lot} {was} {_kg_text(base)} kg; a {ev.type} of {_kg_text(kg)} kg "
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


def _check_mass_balance(ev: Facts, formed: dict[str, float | None], view: View) -> list[Finding]:
    if not ev.drawn:
        return []
    if ev.type == "epcis":
        # Coffee does not gain weight; a partner's fish farm does. So a foreign event
        # is held to it when coffee is in what it takes in (every weight is then stated).
        if ev.unstated or None in formed.values():
            return []
        if not any(view.holds_coffee(lot) for lot, _kg in ev.drawn):
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
    if body.type in ("master_data", "epcis_header"):
        return [
            Finding(
                "correction-target",
                f"event {ev.corrects[:12]}... is {body.type}; master data is not voided: "
                "import a newer version of the element instead",
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


def _check_registry(ev: Facts, view: View, now: datetime) -> list[Finding]:
    """Plots, deforestation findings and statements: not in the future; a resolution
    names a finding of the ledger that is not void."""
    found: list[Finding] = []
    if ev.time > _future_key(now):
        found.append(Finding("time-future", f"time {ev.time_iso} is in the future", "time"))
    if ev.refers is not None:
        got = view.event(ev.refers)
        if got is None or got[0].type != "eudr_finding":
            found.append(
                Finding(
                    "finding-target",
                    f"no eudr_finding {ev.refers[:12]}... in the ledger",
                    "finding",
                )
            )
        elif got[1]:
            found.append(
                Finding("finding-target", f"finding {ev.refers[:12]}... is void", "finding")
            )
        elif ev.time < got[0].time:
            found.append(
                Finding(
                    "finding-target",
                    f"the resolution is dated before the finding it resolves ({got[0].time_iso})",
                    "time",
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
    foreign = ev.type == "epcis"
    if role == "output" and (state is None or not foreign):
        kg = dict(ev.formed)[lot] or 0.0
        shipped = kg if ev.type == "export" else 0.0  # an export lot leaves with the ship
        if stage is None:
            stage = FOREIGN_STAGE if foreign else 0
        return LotState(lot, eid, stage, t, t, kg, shipped, ev.result, ev.site, eid, 1, kg)
    if state is None and foreign:  # a foreign id is a lot from its first event
        state = LotState(lot, eid, FOREIGN_STAGE, t, t, 0.0, 0.0, None, ev.site, eid, 0, 0.0)
    if state is None:  # cannot happen for events that passed check(); tolerate on rebuild
        return None
    if role == "input":
        # A foreign draw of no stated kg (from a foreign id never weighed) links with
        # weight 1, for shares, but takes no kg.
        drawn = 0.0 if lot in ev.unstated else next(kg for code, kg in ev.drawn if code == lot)
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
            state.base_kg,
        )
    new_kg, drawn_kg, base_kg = state.kg, state.drawn_kg, state.base_kg
    stated: float | None = None
    if role == "output":  # an aggregation packs more into an existing parent
        stated = None
        packed = dict(ev.formed)[lot]
        if packed:
            new_kg += packed
            base_kg = base_kg + packed if base_kg > 0 else new_kg
    elif not foreign:
        stated = ev.kg
    elif state.stage == FOREIGN_STAGE:
        # A partner's quantity restates a foreign id; of coffee it is an observation only.
        stated = dict(ev.stated).get(lot)
    if ev.type == "export" and stated is not None:
        drawn_kg += stated
    elif stated is not None:
        new_kg = stated
        base_kg = min(base_kg, stated) if base_kg > 0 else stated
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
        base_kg,
    )
