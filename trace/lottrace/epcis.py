"""Map lottrace events to GS1 EPCIS 2.0 JSON-LD and back.

One job: the mapping. :func:`export_document` turns ledger events into an
``EPCISDocument`` (every event with ``eventID`` = its CBV 2.0 Event Hash ID);
:func:`document_to_events` turns a document back into events to append.

- Each checkpoint type has a row in :data:`MAPPINGS`: its EPCIS event type,
  action, business step and disposition. ``docs/epcis.md`` prints that table.
- Lots are quantity classes (``quantityList`` ... with kg in ``KGM``). Their
  ids are LGTIN class URIs when a GS1 company prefix and item reference are
  configured and the lot code fits GS1 AI (10); otherwise
  ``https://lottrace.org/lot/<code>`` (:class:`Identifiers`). Sites are
  ``https://lottrace.org/site/<kind:ID>``.
- Fields with no EPCIS home are extension elements in the namespace
  :data:`LT_NS` (prefix ``lt``), one per lottrace field and named after it
  (``lt:cup_score``, ``lt:plot``), so an export is lossless field by field:
  importing it gives events with the same lottrace event ids.
- Events of foreign documents (no ``lt:type``) come back as
  :class:`~lottrace.events.EpcisEvent`: the EPCIS event as it came, its hash
  id and the namespace prefixes it uses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from collections.abc import Mapping as AnyMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

import orjson

from .contexts import protected_problem, resolve, unresolved
from .epcis_check import EPCIS_CONTEXT, document_hashes, first_problem
from .epcis_hash import document_context, document_events, event_hash_id
from .epcis_xml import XmlDocument, looks_like_xml, xml_to_document
from .errors import InvalidEvent, InvalidInput, LottraceError, UnknownEvent
from .events import (
    EVENT_MODELS,
    LOT_BASE,
    RECORD_TYPES,
    REGISTRY_TYPES,
    Correction,
    EpcisEvent,
    EpcisHeader,
    EventBase,
    MasterData,
    event_id,
    parse_event,
    record_time,
)
from .ledger import Ledger, StoredEvent
from .masterdata import document_records, export_header
from .readers import repeated_key
from .rules import facts_of, lots_of, time_key

__all__ = [
    "EPCIS_CONTEXT",
    "LOT_BASE",
    "LT_NS",
    "MAPPINGS",
    "SITE_BASE",
    "Identifiers",
    "Mapping",
    "document_to_events",
    "export_document",
    "is_single_event",
    "iter_events",
    "load_document",
    "mapping_table",
    "parse_document",
    "single_event_document",
    "to_epcis",
]

#: The ratified EPCIS 2.0.0 JSON-LD context.
#: The lottrace extension namespace (prefix ``lt``): fields, business steps, dispositions.
LT_NS = "https://lottrace.org/epcis/"
#: Lot ids without a GS1 prefix: this plus the percent-encoded lot code.
#: Site ids: this plus the percent-encoded ``kind:ID``.
SITE_BASE = "https://lottrace.org/site/"

_KG = "KGM"
_HOLD = LT_NS + "Disp-on_hold"
_DISPOSITION = {"accepted": "conformant", "rejected": "non_conformant", "hold": _HOLD}
#: lottrace QC measurements that go into sensorElementList: field -> (CBV type, UN/CEFACT unit).
SENSOR_FIELDS = {
    "moisture_pct": ("Dimensionless", "P1"),
    "water_activity": ("Dimensionless", "C62"),
}


@dataclass(frozen=True)
class Mapping:
    """How one lottrace event type is written in EPCIS."""

    lottrace: str
    epcis: str  #: event type; with inputs (a merge) it is a TransformationEvent
    action: str  #: ObjectEvent action ("" for TransformationEvents)
    biz_step: str
    disposition: str
    fields: str  #: where the rest goes, for the docs


MAPPINGS: dict[str, Mapping] = {
    m.lottrace: m
    for m in (
        Mapping(
            "harvest",
            "ObjectEvent",
            "ADD",
            "commissioning",
            "active",
            "quantityList: the lot, kg; ilmd: lt:producer, lt:plot (geometry as GeoJSON text), "
            "lt:variety, lt:process, lt:certifications, lt:women_producer",
        ),
        Mapping(
            "drying",
            "ObjectEvent",
            "OBSERVE",
            LT_NS + "BizStep-drying",
            "",
            "sensorElementList: moisture; lt:method, lt:started",
        ),
        Mapping(
            "gatherer_qc",
            "ObjectEvent",
            "OBSERVE",
            "inspecting",
            "conformant / non_conformant / " + _HOLD,
            "sensorElementList: moisture, water activity; lt:defects, lt:cup_score, "
            "lt:yield_pct, lt:inspector, lt:reason",
        ),
        Mapping(
            "hq_qc",
            "ObjectEvent",
            "OBSERVE",
            "inspecting",
            "conformant / non_conformant / " + _HOLD,
            "as gatherer_qc",
        ),
        Mapping(
            "dry_mill",
            "TransformationEvent",
            "",
            "creating_class_instance",
            "",
            "inputQuantityList, outputQuantityList (KGM); lt:grades, lt:rejects_kg",
        ),
        Mapping(
            "export",
            "ObjectEvent",
            "OBSERVE",
            "shipping",
            "in_transit",
            "lt:container, lt:ico_mark, lt:bags, lt:bag_kg, lt:vessel, lt:destination, lt:buyer",
        ),
        Mapping(
            "dispatch",
            "ObjectEvent",
            "OBSERVE",
            "departing",
            "in_transit",
            "destinationList: to_site (location); lt:vehicle",
        ),
        Mapping(
            "arrival",
            "ObjectEvent",
            "OBSERVE",
            "arriving",
            "",
            "sourceList: from_site (location)",
        ),
        Mapping(
            "dds",
            "ObjectEvent",
            "OBSERVE",
            LT_NS + "BizStep-due_diligence_statement",
            "",
            "quantityList: the statement's lots (no kg); lt:status, lt:reference, "
            "lt:verification, lt:message",
        ),
        Mapping(
            "correction",
            "(the voided event, repeated)",
            "",
            "",
            "",
            "errorDeclaration: declarationTime, reason; lt:site, lt:actor, lt:note",
        ),
    )
}

#: Fields every mapping handles itself; every other field becomes ``lt:<field>``.
_HOMES = frozenset(("type", "time", "site", "lot", "kg", "inputs", "outputs", "result"))
_ILMD_FIELDS = frozenset(
    ("producer", "plot", "variety", "process", "certifications", "women_producer")
)


def mapping_table() -> str:
    """The mapping as a Markdown table (``docs/epcis.md`` prints it)."""
    rows = [
        "| lottrace | EPCIS event | action | bizStep | disposition | other fields |",
        "|---|---|---|---|---|---|",
    ]
    for m in MAPPINGS.values():
        model = EVENT_MODELS[m.lottrace]
        kind = m.epcis
        if "inputs" in model.model_fields and not model.model_fields["inputs"].is_required():
            kind += " (TransformationEvent when it has inputs)"
        rows.append(
            f"| `{m.lottrace}` | {kind} | {m.action} | {m.biz_step} | {m.disposition} | {m.fields} |"
        )
    for t in sorted(REGISTRY_TYPES - MAPPINGS.keys()):  # records of things, not lots' moves
        rows.append(f"| `{t}` | (not exported: a registry record, not an EPCIS event) | | | | |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------- identifiers

_AI10 = re.compile(r"^[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$")
_LGTIN = re.compile(r"^urn:epc:class:lgtin:(\d+)\.(\d+)\.(.+)$")
_DIGITAL_LINK_LOT = re.compile(r"^https?://[^/]+(?:/[^/]+)*?/01/\d{14}/10/([^/?#]+)$")
_EPC_ESCAPE = {c: f"%{ord(c):02X}" for c in '"%&/<>?#'}
#: Web-URI and URN forms of CBV words, as a repository may hand them back.
_CBV_FORMS = re.compile(
    r"^(?:https://ref\.gs1\.org/cbv/(?:Disp|ER|BizStep)-|urn:epcglobal:cbv:(?:disp|er|bizstep):)"
)


def _bare(value: Any) -> Any:
    """``https://ref.gs1.org/cbv/Disp-conformant`` -> ``conformant`` (CBV words only)."""
    return _CBV_FORMS.sub("", value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Identifiers:
    """How lots and sites are named in EPCIS.

    ``gs1_prefix`` is ``COMPANYPREFIX.ITEMREF`` of the green-coffee GTIN, as
    in an EPC URI (13 digits in all, e.g. ``7751234.012345``). With it, a lot
    code that fits GS1 AI (10) (at most 20 characters of GS1's set 82) is
    ``urn:epc:class:lgtin:7751234.012345.<lot>``.

    >>> Identifiers("7751234.012345").lot("APR-25-HQ-014")
    'urn:epc:class:lgtin:7751234.012345.APR-25-HQ-014'
    >>> Identifiers().lot("APR-25/HQ#1")
    'https://lottrace.org/lot/APR-25%2FHQ%231'
    >>> lot_code('https://lottrace.org/lot/APR-25%2FHQ%231')
    'APR-25/HQ#1'
    """

    gs1_prefix: str | None = None

    def __post_init__(self) -> None:
        p = self.gs1_prefix
        if p is not None and not (
            re.fullmatch(r"\d{6,12}\.\d{1,7}", p) and len(p.replace(".", "")) == 13
        ):
            raise LottraceError(
                f"GS1 prefix {p!r}: write COMPANYPREFIX.ITEMREF with 13 digits in all, "
                "e.g. 7751234.012345"
            )

    def lot(self, code: str) -> str:
        if self.gs1_prefix and _AI10.match(code):
            lot = "".join(_EPC_ESCAPE.get(c, c) for c in code)
            return f"urn:epc:class:lgtin:{self.gs1_prefix}.{lot}"
        return LOT_BASE + quote(code, safe=":+")

    @staticmethod
    def site(site: str) -> str:
        return SITE_BASE + quote(site, safe=":")


def lot_code(uri: str) -> str:
    """The lot code an exported id stands for (either form, or an LGTIN as a Digital Link).

    >>> lot_code("https://id.gs1.org/01/07751234123451/10/APR-25-HQ-014")
    'APR-25-HQ-014'
    """
    m = _LGTIN.match(uri) or _DIGITAL_LINK_LOT.match(uri)
    if m:
        return unquote(m.group(m.lastindex or 1))
    if uri.startswith(LOT_BASE):
        return unquote(uri[len(LOT_BASE) :])
    raise ValueError(f"{uri!r} is not a lottrace lot id")


def site_code(uri: str) -> str:
    if uri.startswith(SITE_BASE):
        return unquote(uri[len(SITE_BASE) :])
    raise ValueError(f"{uri!r} is not a lottrace site id")


# --------------------------------------------------------------------------- export


def _lt(value: Any) -> Any:
    """A lottrace value as extension content: nested objects get ``lt:`` keys."""
    if isinstance(value, dict):
        return {"lt:" + k: _lt(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lt(v) for v in value]
    return value


def _offset(time: str) -> str:
    off = datetime.fromisoformat(time).utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _qty(ids: Identifiers, lot: str, kg: float | None) -> dict[str, Any]:
    q: dict[str, Any] = {"epcClass": ids.lot(lot)}
    if kg is not None:
        q["quantity"] = kg
        q["uom"] = _KG
    return q


def to_epcis(ev: EventBase, ids: Identifiers, target: EventBase | None = None) -> dict[str, Any]:
    """One lottrace event as an EPCIS event (without ``eventID``).

    A correction needs ``target``, the event it voids: it is written as that
    event again, with an ``errorDeclaration``.
    """
    if isinstance(ev, Correction):
        if target is None:
            raise ValueError("a correction needs the event it voids")
        out = to_epcis(target, ids)
        declaration: dict[str, Any] = {
            "declarationTime": ev.model_dump(mode="json")["time"],
            "reason": ev.reason,
            "lt:site": ev.site,
        }
        for name in ("actor", "note"):
            if getattr(ev, name) is not None:
                declaration["lt:" + name] = getattr(ev, name)
        out["errorDeclaration"] = declaration
        return out
    if isinstance(ev, EpcisEvent):
        return dict(ev.event)
    d = ev.model_dump(mode="json", exclude_none=True)
    m = MAPPINGS[ev.type]
    kind = ev.type
    inputs = d.get("inputs") or []
    out = {
        "type": "TransformationEvent" if inputs else m.epcis,
        "eventTime": d["time"],
        "eventTimeZoneOffset": _offset(d["time"]),
    }
    lot, kg = str(d.get("lot")), d.get("kg")
    if out["type"] == "TransformationEvent":
        out["inputQuantityList"] = [_qty(ids, i["lot"], i["kg"]) for i in inputs]
        if kind == "dry_mill":
            out["outputQuantityList"] = [_qty(ids, o["lot"], o["kg"]) for o in d["outputs"]]
        else:
            out["outputQuantityList"] = [_qty(ids, lot, kg)]
    elif kind == "dds":  # a statement about lots: it observes them and moves nothing
        out["action"] = m.action
        out["quantityList"] = [_qty(ids, code, None) for code in d.pop("statement_lots")]
    else:
        out["action"] = m.action
        out["quantityList"] = [_qty(ids, lot, kg)]
    out["bizStep"] = m.biz_step
    if kind in ("gatherer_qc", "hq_qc"):
        out["disposition"] = _DISPOSITION[d["result"]]
    elif m.disposition:
        out["disposition"] = m.disposition
    out["readPoint"] = {"id": ids.site(d["site"])}
    if kind not in ("dispatch", "export"):  # the lot leaves the site
        out["bizLocation"] = {"id": ids.site(d["site"])}
    if "to_site" in d:
        out["destinationList"] = [{"type": "location", "destination": ids.site(d.pop("to_site"))}]
    if "from_site" in d:
        out["sourceList"] = [{"type": "location", "source": ids.site(d.pop("from_site"))}]
    reports = [
        {"type": cbv, "value": d.pop(name), "uom": uom, "lt:field": name}
        for name, (cbv, uom) in SENSOR_FIELDS.items()
        if name in d
    ]
    if reports:
        out["sensorElementList"] = [{"sensorReport": reports}]
    if kind == "dry_mill":
        d["grades"] = [{"lot": o["lot"], "grade": o["grade"]} for o in d["outputs"]]
    if "plot" in d and "geometry" in d["plot"]:
        d["plot"]["geometry"] = orjson.dumps(d["plot"]["geometry"]).decode()
    out["lt:type"] = kind
    ilmd = {}
    for name, value in d.items():
        if name in _HOMES:
            continue
        if kind == "harvest" and name in _ILMD_FIELDS:
            ilmd["lt:" + name] = _lt(value)
        else:
            out["lt:" + name] = _lt(value)
    if ilmd:
        out["ilmd"] = ilmd
    return out


def export_document(
    ledger: Ledger,
    *,
    lot: str | None = None,
    upstream: bool = False,
    since: str | None = None,
    ids: Identifiers | None = None,
    now: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An EPCISDocument of the ledger's events, in log order.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str, optional
        Only the events that involve this lot (and, with ``upstream``, every
        lot it was formed from), with the corrections of any of them.
    since : str, optional
        Only events at or after this date or time (ISO-8601; a date is UTC midnight).
    ids : Identifiers, optional
        How lots are named (LGTIN with a GS1 prefix).
    now : datetime, optional
        The document's ``creationDate`` (default: the current time).
    event_id : str, optional
        Only the events this id names (:meth:`Ledger.find_events`: lottrace's
        event id, an Event Hash ID or a partner's eventID), with their corrections.

    Void events are exported too, each followed by its correction (an
    errorDeclaration), so that an import rebuilds the same ledger.
    """
    ids = ids or Identifiers()
    wanted: set[str] | None = None
    if lot is not None:
        ledger.require_lot(lot)
        wanted = {lot}
        if upstream:
            from .graph import ancestors_graph

            wanted |= set(ancestors_graph(ledger, lot).nodes)
    floor = _since_key(since) if since else None
    context: dict[str, str] = {"lt": LT_NS}
    if event_id is not None:
        source: Iterable[StoredEvent] = _named_events(ledger, event_id)
    elif wanted is None:
        source = ledger.iter_events()
    else:
        source = _lineage_events(ledger, wanted)
    events = list(_exported(ledger, source, wanted, floor, ids, context))
    created = (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    for epcis, partner in events:
        epcis["eventID"] = partner or event_hash_id(epcis, context)
    whole = wanted is None and floor is None and event_id is None
    header, header_context = export_header(ledger, whole=whole)
    for prefix, iri in header_context.items():
        if context.setdefault(prefix, iri) != iri:
            raise LottraceError(
                f"cannot export: prefix {prefix!r} means {context[prefix]} in one "
                f"imported document and {iri} in another"
            )
    return {
        "@context": [EPCIS_CONTEXT, context],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created,
        **header,
        "epcisBody": {"eventList": [_event_order(e) for e, _ in events]},
    }


def _exported(
    ledger: Ledger,
    source: Iterable[StoredEvent],
    wanted: set[str] | None,
    floor: str | None,
    ids: Identifiers,
    context: dict[str, str],
) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Each exported event of ``source`` as EPCIS, with its partner's eventID (or None).

    What :func:`export_document` writes, one event at a time: master data,
    records and registries are left out, a correction comes with the event it
    voids, and ``context`` gathers every foreign prefix (a prefix meaning two
    things is refused).
    """
    kept: dict[str, EventBase] = {}
    for stored in source:
        ev = stored.event
        if isinstance(ev, MasterData | EpcisHeader):  # in the header (export_header)
            continue
        if floor is not None and time_key(ev.time) < floor:
            continue
        if ev.type in RECORD_TYPES:  # certificates, purchases, payments: never exported
            continue
        if ev.type in REGISTRY_TYPES and ev.type not in MAPPINGS:
            continue  # plots and findings: records of things, not EPCIS events
        target = None
        if isinstance(ev, Correction):
            target = kept.get(ev.corrects)
            if target is None:
                if wanted is not None or floor is not None:
                    continue  # it voids an event outside the selection
                target = ledger.event(ev.corrects).event
                if isinstance(target, MasterData | EpcisHeader) or target.type in RECORD_TYPES:
                    continue  # a void version of master data, or a record, is not exported
                if target.type in REGISTRY_TYPES and target.type not in MAPPINGS:
                    continue
        elif wanted is not None and not {code for code, _ in lots_of(facts_of(ev))} & wanted:
            continue
        kept[stored.event_id] = ev
        if isinstance(ev, EpcisEvent):
            for prefix, iri in (ev.context or {}).items():
                if context.setdefault(prefix, iri) != iri:
                    raise LottraceError(
                        f"cannot export: prefix {prefix!r} means {context[prefix]} in one "
                        f"imported document and {iri} in another"
                    )
        partner = ev.partner_event_id if isinstance(ev, EpcisEvent) else None
        yield to_epcis(ev, ids, target), partner


def iter_events(
    ledger: Ledger,
    *,
    lots: set[str] | None = None,
    since: str | None = None,
    context: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The events :func:`export_document` would write, one at a time, in log order.

    What a query pages through without building the whole document: each
    event with its eventID (a partner's, or its Event Hash ID). ``lots``
    keeps the events of those lots only; ``since`` starts at a time.
    ``context`` (a dict) is filled with the prefixes the events use, for the
    document that carries them: ``[EPCIS_CONTEXT, context]``.
    """
    ids = Identifiers()
    floor = _since_key(since) if since else None
    if context is None:
        context = {}
    context.setdefault("lt", LT_NS)
    source = ledger.iter_events() if lots is None else _lineage_events(ledger, lots)
    for epcis, partner in _exported(ledger, source, lots, floor, ids, context):
        epcis["eventID"] = partner or event_hash_id(epcis, context)
        yield _event_order(epcis)


def _named_events(ledger: Ledger, some_id: str) -> list[StoredEvent]:
    """The events an id names, with the corrections of any voided one, in log order."""
    found = {s.seq: s for s in ledger.find_events(some_id)}
    private = [s for s in found.values() if s.event.type in RECORD_TYPES]
    if private:
        raise LottraceError(
            f"event {private[0].event_id[:12]}... is a {private[0].event.type}: certificates, "
            "purchases, payments and premiums are never exported to EPCIS"
        )
    if not found:
        raise UnknownEvent(
            f"no event {some_id!r} in {ledger.path} (neither a lottrace event id, "
            "an Event Hash ID nor a partner's eventID)"
        )
    for stored in list(found.values()):
        by = ledger.voided_by(stored.event_id)
        if by is not None:
            fix = ledger.event(by)
            found[fix.seq] = fix
    return [found[seq] for seq in sorted(found)]


def _lineage_events(ledger: Ledger, lots: set[str]) -> list[StoredEvent]:
    """The events of these lots, void ones and their corrections too, in log order.

    Read through the lot indexes, so the cost follows the lineage, not the log.
    """
    found = {stored.seq: stored for _lot, stored in ledger.lots_events(lots)}
    for eid in ledger.voided_for_lots(lots):
        void = ledger.event(eid)
        found[void.seq] = void
        by = ledger.voided_by(eid)
        if by is not None:
            fix = ledger.event(by)
            found[fix.seq] = fix
    return [found[seq] for seq in sorted(found)]


def _event_order(event: dict[str, Any]) -> dict[str, Any]:
    """``type`` and ``eventID`` first, for people reading the file."""
    head = {k: event[k] for k in ("type", "eventID") if k in event}
    return head | {k: v for k, v in event.items() if k not in head}


def _since_key(since: str) -> str:
    try:
        t = datetime.fromisoformat(since)
    except ValueError:
        raise LottraceError(f"--since {since!r} is not a date like 2025-06-01") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return time_key(t)


# --------------------------------------------------------------------------- import


def load_document(
    path: str, *, check: bool = True, contexts: AnyMapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read one EPCIS JSON-LD file and (``check``) raise naming its first problem's JSON path.

    A file holding one bare event (the single-event capture payload) is read
    as the document of that event (:func:`single_event_document`); problems
    are then named by their path in the file.

    ``contexts`` maps ``@context`` URLs to the contexts they serve (the
    registry, :class:`~lottrace.contexts.ContextRegistry`): each one named
    is put in place of its URL. A document that redefines a term GS1's
    context protects is refused, naming the term.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    return parse_document(raw, path, check=check, contexts=contexts)


def parse_document(
    raw: bytes, path: str, *, check: bool = True, contexts: AnyMapping[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`load_document` for a document already read (an HTTP body, say); ``path`` names it."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM is tolerated
    if looks_like_xml(raw):
        doc: Any = xml_to_document(raw, path)
        repeated = None
    else:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"{path}: not valid JSON: {str(exc).split(': line')[0]}") from None
        repeated = repeated_key(raw, doc)
    if repeated is not None:
        raise InvalidInput(
            f"{path}:{repeated[1]}: key {repeated[0]!r} appears twice in one object "
            "(JSON keys must be unique)"
        )
    single = is_single_event(doc)
    if single:
        doc = single_event_document(doc)
    problem = first_problem(doc) if check else None
    if problem is None and check:
        problem = protected_problem(_context_nodes(doc))
    if problem is not None and isinstance(doc, XmlDocument):  # name the XML line
        line, rest = doc.line(problem[0])
        raise InvalidInput(f"{path}:{line}: {rest + ': ' if rest else ''}{problem[1]}")
    if problem is not None:
        where = problem[0]
        if single:  # name the place in the file, not in the document it was wrapped in
            where = "$" + where.removeprefix(_SINGLE_PATH)
        raise InvalidInput(f"{path}: {where}: {problem[1]}")
    if contexts:
        for _where, node in _context_nodes(doc):
            if "@context" in node:
                node["@context"] = resolve(node["@context"], contexts)
        if check:
            found = protected_problem(_context_nodes(doc))
            if found:
                raise InvalidInput(f"{path}: {found[0]}: {found[1]} (a registered context)")
    return doc  # type: ignore[no-any-return]


def _context_nodes(doc: Any) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a document that may hold ``@context``, with their JSON paths."""
    nodes: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(doc, dict):
        return nodes
    nodes.append(("$", doc))
    body = doc.get("epcisBody")
    if isinstance(body, dict):
        nodes.append(("$.epcisBody", body))
        results = body.get("queryResults")
        if isinstance(results, dict):
            nodes.append(("$.epcisBody.queryResults", results))
            rb = results.get("resultsBody")
            if isinstance(rb, dict):
                nodes.append(("$.epcisBody.queryResults.resultsBody", rb))
    return nodes


_SINGLE_PATH = "$.epcisBody.eventList[0]"


def is_single_event(doc: Any) -> bool:
    """Whether a payload is one bare EPCIS event (``type`` ending in ``Event``), as
    GS1's REST binding captures one (``POST /events``), not a document."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("type"), str)
        and doc["type"].endswith("Event")
        and "epcisBody" not in doc
    )


def single_event_document(event: dict[str, Any]) -> dict[str, Any]:
    """The EPCISDocument one bare event stands for: its ``@context`` moves to the
    document, whose ``creationDate`` is the event's ``recordTime`` or ``eventTime``."""
    body = {k: v for k, v in event.items() if k != "@context"}
    created = event.get("recordTime") or event.get("eventTime")
    doc: dict[str, Any] = {
        "@context": event.get("@context", EPCIS_CONTEXT),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created if isinstance(created, str) else "1970-01-01T00:00:00Z",
        "epcisBody": {"eventList": [body]},
    }
    return doc


def _lt_prefixes(context: dict[str, str]) -> tuple[str, ...]:
    return (LT_NS, *(p + ":" for p, iri in context.items() if iri == LT_NS))


def _lt_fields(obj: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    """The lottrace fields in an object: ``lt:name`` keys, nested ones unwrapped."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        for p in prefixes:
            if key.startswith(p):
                out[key[len(p) :]] = _un_lt(value, prefixes)
                break
    return out


def _un_lt(value: Any, prefixes: tuple[str, ...]) -> Any:
    if isinstance(value, dict):
        return _lt_fields(value, prefixes)
    if isinstance(value, list):
        return [_un_lt(v, prefixes) for v in value]
    return value


def _lot_kg(q: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"lot": lot_code(q["epcClass"])}
    if "quantity" in q:
        if q.get("uom") != _KG:
            raise ValueError(f"quantity of {q['epcClass']} is not in KGM")
        out["kg"] = q["quantity"]
    return out


def from_epcis(event: dict[str, Any], context: dict[str, str]) -> dict[str, Any]:
    """The lottrace record of an EPCIS event that lottrace exported (has ``lt:type``)."""
    prefixes = _lt_prefixes(context)
    ext = _lt_fields(event, prefixes)
    kind = ext.pop("type")
    d: dict[str, Any] = {"type": kind, "time": event["eventTime"]}
    d["site"] = site_code(event["readPoint"]["id"])
    d.update(_lt_fields(event.get("ilmd") or {}, prefixes))
    d.update(ext)
    if event["type"] == "TransformationEvent":
        d["inputs"] = [_lot_kg(q) for q in event["inputQuantityList"]]
        outputs = [_lot_kg(q) for q in event["outputQuantityList"]]
        if kind == "dry_mill":
            grades = {g["lot"]: g["grade"] for g in d.pop("grades", [])}
            d["outputs"] = [dict(o, grade=grades[o["lot"]]) for o in outputs]
        else:
            d.update(outputs[0])
    elif kind == "dds":
        d["statement_lots"] = [_lot_kg(q)["lot"] for q in event["quantityList"]]
    else:
        d.update(_lot_kg(event["quantityList"][0]))
    disposition = event.get("disposition")
    if kind in ("gatherer_qc", "hq_qc"):
        d["result"] = {v: k for k, v in _DISPOSITION.items()}[str(_bare(disposition))]
    for element in event.get("sensorElementList", []):
        for report in element["sensorReport"]:
            field = _lt_fields(report, prefixes).get("field")
            if field in SENSOR_FIELDS:
                d[field] = report["value"]
    for item in event.get("destinationList", []):
        d["to_site"] = site_code(item["destination"])
    for item in event.get("sourceList", []):
        d["from_site"] = site_code(item["source"])
    plot = d.get("plot")
    if isinstance(plot, dict) and isinstance(plot.get("geometry"), str):
        plot["geometry"] = orjson.loads(plot["geometry"])
    return d


def _foreign(event: dict[str, Any], context: dict[str, str], hash_id: str) -> dict[str, Any]:
    kept = {k: v for k, v in event.items() if k != "eventID"}
    text = orjson.dumps(kept).decode()
    used = {p: iri for p, iri in sorted(context.items()) if f'"{p}:' in text}
    site = next(
        (
            event[k]["id"]
            for k in ("bizLocation", "readPoint")
            if isinstance(event.get(k), dict) and isinstance(event[k].get("id"), str)
        ),
        "epcis:unknown",
    )
    record: dict[str, Any] = {
        "type": "epcis",
        "time": record_time(event["eventTime"]),  # the full time stays in "event"
        "site": site,
        "hash_id": hash_id,
        "event": kept,
    }
    if used:
        record["context"] = used
    partner_id = event.get("eventID")
    if isinstance(partner_id, str) and partner_id != hash_id:
        record["partner_event_id"] = (
            partner_id  # the hash id needs no keeping: it is given back anyway
        )
    return record


def document_to_events(doc: dict[str, Any], name: str) -> Iterator[tuple[str, EventBase]]:
    """``(where, event)`` for every event of a checked document, in the order to append them.

    Events lottrace exported (``lt:type``) become coffee events again; an
    event with an errorDeclaration that carries ``lt:site`` becomes a
    correction of the event it repeats. Every other event is an
    :class:`~lottrace.events.EpcisEvent`.

    A partner's document may list its events in any order (EPCIS capture
    does not order them), while the ledger's rules read a lot's events in
    time order: its events are appended in time order (a transformation
    listed after the shipping of what it made still comes first), events at
    the same instant in document order. A document holding lottrace's own
    events is a log exported in log order, which corrections depend on, and
    keeps it.
    """
    events = list(_in_document(doc, name))
    if all(isinstance(ev, EpcisEvent) for _where, ev in events):
        events.sort(key=lambda item: item[1].time)
    context: dict[str, str] = {}
    for _where, node in _context_nodes(doc):
        if "@context" in node:
            context.update(document_context(node))
    header = []  # the header and master data first, before the events they describe
    for path, record in document_records(doc, context):
        where = f"{name}:{doc.line(path)[0]}" if isinstance(doc, XmlDocument) else f"{name}: {path}"
        header.append((where, parse_event(record, where=where)))
    return iter(header + events)


def _in_document(doc: dict[str, Any], name: str) -> Iterator[tuple[str, EventBase]]:
    context: dict[str, str] = {}
    body = doc["epcisBody"]
    results = body.get("queryResults") or {}
    for node in (doc, body, results, results.get("resultsBody") or {}):
        if "@context" in node:
            context.update(document_context(node))
    urls = [u for _w, n in _context_nodes(doc) for u in unresolved(n.get("@context"))]
    hash_ids = document_hashes(doc, where=name, remote=urls)  # as `lottrace epcis hash` prints
    base = (
        "$.epcisBody.eventList"
        if "eventList" in body
        else "$.epcisBody.queryResults.resultsBody.eventList"
    )
    prefixes = _lt_prefixes(context)
    for i, event in enumerate(document_events(doc)):
        # an XML document's events are named by their XML line
        where = (
            f"{name}:{doc.line(f'{base}[{i}]')[0]}"
            if isinstance(doc, XmlDocument)
            else f"{name}: {base}[{i}]"
        )
        hash_id = hash_ids[i]
        declaration = event.get("errorDeclaration")
        ed = _lt_fields(declaration, prefixes) if isinstance(declaration, dict) else {}
        try:
            if "site" in ed:
                original = {k: v for k, v in event.items() if k != "errorDeclaration"}
                target = _one(original, context, prefixes, event_hash_id(original, context))
                record = {
                    "type": "correction",
                    "time": declaration["declarationTime"],  # type: ignore[index]
                    "corrects": event_id(parse_event(target, where=where)),
                    "reason": _bare(declaration.get("reason")),  # type: ignore[union-attr]
                    **ed,
                }
            else:
                record = _one(event, context, prefixes, hash_id)
        except InvalidEvent as exc:
            if exc.where:
                raise
            raise InvalidEvent(str(exc), where=where, field=exc.field) from None
        except KeyError as exc:
            raise InvalidEvent(
                f"a lottrace event (lt:type) lacks {exc.args[0]!r} or names an unknown one",
                where=where,
            ) from None
        except (IndexError, TypeError, ValueError) as exc:
            raise InvalidEvent(
                f"not a lottrace event as lottrace exports them: {exc}", where=where
            ) from None
        yield where, parse_event(record, where=where)


def _one(
    event: dict[str, Any], context: dict[str, str], prefixes: tuple[str, ...], hash_id: str
) -> dict[str, Any]:
    if any(k.startswith(p) and k[len(p) :] == "type" for k in event for p in prefixes):
        return from_epcis(event, context)
    claimed = next((k for k in event for p in prefixes if k == p + "actor"), None)
    if claimed is not None:
        # Who recorded an event is the identity that wrote it, never what its body says; a
        # partner's event is kept as it came, so a claimed actor would be served as is.
        raise InvalidEvent(
            f"field '{claimed}': a partner's event cannot say who recorded it "
            "(lottrace records the identity that wrote it); leave the field out",
            field=claimed,
        )
    return _foreign(event, context, hash_id)
