"""EPCIS master data and document headers: kept as events, read as a current view.

One job: partners' master data. An EPCIS document's
``epcisHeader.epcisMasterData`` lists vocabularies (locations, parties,
product classes ...) whose elements carry attributes (a name, a latitude
...) and children. lottrace keeps each element as a
:class:`~lottrace.events.MasterData` event, one version per event, and the
document's own fields (``id``, ``sender``, ``receiver``,
``instanceIdentifier``, ``epcisHeader`` extension keys) as one
:class:`~lottrace.events.EpcisHeader` event. Both are immutable like every
event: a later version of an element is a later event, and the current view
(:func:`current`) is the latest version of each element by time, void ones
left out.

Identity. A version's ``time`` is the ``creationDate`` of the document that
carried it. An export is a new document with a new ``creationDate``, so it
writes each element's time back as ``lt:time`` (and the header's as
``epcisHeader``'s ``lt:creationDate``): reading an export gives the very
same events (the same lottrace event ids), in this ledger or another one.
A partner sending again the master data lottrace already holds, in a new
document, sends nothing new: :func:`fresh` hands the ledger the stored
version instead, which it counts as a duplicate.

Use. :func:`sites` and :func:`parties` give names and coordinates by id,
for the passport, ``delays --by site`` and ``downstream``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson

from .events import EpcisHeader, EventBase, MasterData, record_time
from .ledger import Ledger
from .rules import time_key

__all__ = [
    "HEADER_KEYS",
    "LT_NS",
    "Element",
    "SiteInfo",
    "current",
    "document_records",
    "export_header",
    "fresh",
    "parties",
    "party_name",
    "site_info",
    "sites",
]

#: The lottrace extension namespace (as ``epcis.LT_NS``).
LT_NS = "https://lottrace.org/epcis/"
#: Lottrace's own site URIs (as ``epcis.SITE_BASE``).
_SITE_BASE = "https://lottrace.org/site/"
#: The document fields an :class:`~lottrace.events.EpcisHeader` keeps.
HEADER_KEYS = ("id", "sender", "receiver", "instanceIdentifier")
_TYPES = ("master_data", "epcis_header")
_MDA = ("urn:epcglobal:cbv:mda#", "urn:epcglobal:cbv:mda:", "cbvmda:", "https://gs1.org/voc/")


@dataclass(frozen=True)
class Element:
    """The current version of one vocabulary element."""

    vocabulary: str
    id: str
    element: dict[str, Any]  #: as JSON-LD: id, attributes, children, extension keys
    time: str  #: the version's time (ISO-8601)
    event_id: str
    context: dict[str, str]

    def attribute(self, *names: str) -> Any:
        """The value of the first attribute whose CBV master-data name is one of ``names``
        (``urn:epcglobal:cbv:mda#name``, ``cbvmda:name``, ``gs1:name`` ...), or None."""
        for attr in self.element.get("attributes") or ():
            if not isinstance(attr, dict) or not isinstance(attr.get("id"), str):
                continue
            key = attr["id"]
            local = next((key[len(p) :] for p in _MDA if key.startswith(p)), None)
            if local is None and key.startswith("gs1:"):
                local = key[4:]
            if local in names:
                return attr.get("attribute")
        return None


# --------------------------------------------------------------------------- import


def _lt_keys(context: dict[str, str]) -> tuple[str, ...]:
    return (LT_NS, *(p + ":" for p, iri in context.items() if iri == LT_NS))


def _lt_value(obj: dict[str, Any], name: str, lt: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in obj:
        if any(key == p + name for p in lt):
            return key, obj[key]
    return None, None


def _used(value: Any, context: dict[str, str]) -> dict[str, str] | None:
    text = orjson.dumps(value).decode()
    used = {p: iri for p, iri in sorted(context.items()) if f'"{p}:' in text}
    return used or None


def document_records(
    doc: dict[str, Any], context: dict[str, str]
) -> list[tuple[str, dict[str, Any]]]:
    """``(JSON path, record)`` of the header and master data of a checked document.

    The header record first (if the document has any of :data:`HEADER_KEYS`
    or an ``epcisHeader`` extension key), then one ``master_data`` record per
    vocabulary element, in document order. ``context`` is the document's
    prefixes.
    """
    lt = _lt_keys(context)
    created = doc.get("creationDate")
    out: list[tuple[str, dict[str, Any]]] = []
    epcis_header = doc.get("epcisHeader")
    epcis_header = epcis_header if isinstance(epcis_header, dict) else {}
    date_key, date = _lt_value(epcis_header, "creationDate", lt)
    header = {k: doc[k] for k in HEADER_KEYS if k in doc}
    rest = {k: v for k, v in epcis_header.items() if k not in ("epcisMasterData", date_key)}
    if rest:
        header["epcisHeader"] = rest
    if header:
        record: dict[str, Any] = {
            "type": "epcis_header",
            "time": record_time(date if isinstance(date, str) else str(created)),
            "header": header,
        }
        if (used := _used(header, context)) is not None:
            record["context"] = used
        out.append(("$", record))
    master = epcis_header.get("epcisMasterData")
    vocabularies = master.get("vocabularyList") if isinstance(master, dict) else None
    for i, vocabulary in enumerate(vocabularies or ()):
        if not isinstance(vocabulary, dict):
            continue
        elements = vocabulary.get("vocabularyElementList") or ()
        for j, element in enumerate(elements):
            where = f"$.epcisHeader.epcisMasterData.vocabularyList[{i}].vocabularyElementList[{j}]"
            if not isinstance(element, dict):
                out.append((where, {"type": "master_data", "element": element}))
                continue
            time_key_, time = _lt_value(element, "time", lt)
            kept = {k: v for k, v in element.items() if k != time_key_}
            record = {
                "type": "master_data",
                "time": record_time(time if isinstance(time, str) else str(created)),
                "vocabulary": vocabulary.get("type"),
                "element": kept,
            }
            if (used := _used(kept, context)) is not None:
                record["context"] = used
            out.append((where, record))
    return out


def fresh(
    ledger: Ledger, items: Iterable[tuple[str, EventBase]]
) -> Iterator[tuple[str, EventBase]]:
    """The events to append, with master data the ledger already holds as its stored event.

    A vocabulary element equal to its current version (the same content,
    whatever the document's date), or a header equal to a stored one, is
    replaced by the stored event, which the ledger counts as a duplicate.
    The view is read once, when the first such event comes, and follows
    the events that pass.
    """
    view: dict[tuple[str, str], tuple[str, EventBase]] | None = None
    headers: dict[bytes, EventBase] = {}
    for where, ev in items:
        if not isinstance(ev, MasterData | EpcisHeader):
            yield where, ev
            continue
        if view is None:
            view, headers = _stored(ledger)
        if isinstance(ev, EpcisHeader):
            key = orjson.dumps(ev.header, option=orjson.OPT_SORT_KEYS)
            same = headers.setdefault(key, ev)
            yield where, same
            continue
        k = (ev.vocabulary, str(ev.element["id"]))
        now = view.get(k)
        if now is not None and _content(now[1]) == _content(ev):
            yield where, now[1]
            continue
        t = time_key(ev.time)
        if now is None or t >= now[0]:
            view[k] = (t, ev)
        yield where, ev


def _content(ev: EventBase) -> tuple[Any, ...]:
    return (orjson.dumps(ev.__dict__.get("element"), option=orjson.OPT_SORT_KEYS),)


def _stored(
    ledger: Ledger,
) -> tuple[dict[tuple[str, str], tuple[str, EventBase]], dict[bytes, EventBase]]:
    view: dict[tuple[str, str], tuple[str, EventBase]] = {}
    headers: dict[bytes, EventBase] = {}
    for stored in ledger.events_of_types(_TYPES):
        ev = stored.event
        if stored.void:
            continue
        if isinstance(ev, EpcisHeader):
            headers[orjson.dumps(ev.header, option=orjson.OPT_SORT_KEYS)] = ev
        elif isinstance(ev, MasterData):
            k = (ev.vocabulary, str(ev.element["id"]))
            t = time_key(ev.time)
            if k not in view or t >= view[k][0]:
                view[k] = (t, ev)
    return view, headers


# --------------------------------------------------------------------------- view


def current(ledger: Ledger) -> dict[tuple[str, str], Element]:
    """The current version of every vocabulary element, by (vocabulary, element id).

    The latest by time, void versions left out; at the same time, the later
    in the log. In the order elements were first met in the log.
    """
    out: dict[tuple[str, str], tuple[str, Element]] = {}
    for stored in ledger.events_of_types(["master_data"]):
        ev = stored.event
        if stored.void or not isinstance(ev, MasterData):
            continue
        k = (ev.vocabulary, str(ev.element["id"]))
        t = time_key(ev.time)
        element = Element(
            ev.vocabulary, k[1], ev.element, ev.time.isoformat(), stored.event_id, ev.context or {}
        )
        if k not in out or t >= out[k][0]:
            out[k] = (t, element)
    return {k: e for k, (_t, e) in out.items()}


def _headers(ledger: Ledger) -> list[EpcisHeader]:
    return [
        s.event
        for s in ledger.events_of_types(["epcis_header"])
        if not s.void and isinstance(s.event, EpcisHeader)
    ]


@dataclass(frozen=True)
class SiteInfo:
    """What master data says about a location."""

    id: str
    name: str | None
    latitude: float | None
    longitude: float | None


def _kind(vocabulary: str) -> str:
    v = vocabulary.rsplit(":", 1)[-1].rsplit("/", 1)[-1].lower()
    if v in ("location", "businesslocation", "readpoint"):
        return "location"
    if v == "party":
        return "party"
    return v


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, dict) and isinstance(value.get("@value"), str):
        return str(value["@value"])
    return None


def sites(ledger: Ledger) -> dict[str, SiteInfo]:
    """Name and coordinates of every location in master data, by its id.

    A location is an element of a BusinessLocation, ReadPoint or Location
    vocabulary; its name is the CBV ``name`` attribute, its coordinates
    ``latitude`` and ``longitude`` (numbers, or text holding numbers).
    """
    out: dict[str, SiteInfo] = {}
    for (vocabulary, ident), e in current(ledger).items():
        if _kind(vocabulary) != "location":
            continue
        name = _text(e.attribute("name"))
        lat = _number(e.attribute("latitude"))
        lon = _number(e.attribute("longitude"))
        if lat is not None and not -90 <= lat <= 90:
            lat = None
        if lon is not None and not -180 <= lon <= 180:
            lon = None
        before = out.get(ident)
        if before is not None:  # one id in two location vocabularies: fill the gaps
            name = name or before.name
            lat = lat if lat is not None else before.latitude
            lon = lon if lon is not None else before.longitude
        out[ident] = SiteInfo(ident, name, lat, lon)
    return out


def site_info(found: dict[str, SiteInfo], site: str) -> SiteInfo | None:
    """What ``sites`` holds about a site: a foreign event's site is its URI; lottrace's own
    ``kind:ID`` is looked up as its EPCIS URI (``https://lottrace.org/site/kind:ID``) too."""
    return found.get(site) or found.get(_SITE_BASE + quote(site, safe=":"))


def parties(ledger: Ledger) -> dict[str, str]:
    """The name of every party in master data that has one, by its id."""
    out: dict[str, str] = {}
    for (vocabulary, ident), e in current(ledger).items():
        name = _text(e.attribute("name"))
        if _kind(vocabulary) == "party" and name is not None:
            out[ident] = name
    return out


def party_name(found: dict[str, str], party: str | None) -> str | None:
    """A party's name by its id (or None)."""
    return found.get(party) if party else None


# --------------------------------------------------------------------------- export


def export_header(ledger: Ledger, *, whole: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The header fields of an export and the prefixes they use.

    ``whole``: the export holds the whole ledger: every current vocabulary
    element, and the document fields of the one document imported (of
    several, none: a sender or an instanceIdentifier is one document's).
    Otherwise nothing: reading master data is a scan of the log, which a
    one-lot export does not make (its cost follows the lineage). Each element
    carries its version's time as ``lt:time``, the header its document's
    ``creationDate`` as ``lt:creationDate``, so that importing the export
    gives the same events.
    """
    if not whole:
        return {}, {}
    context: dict[str, str] = {}
    vocabularies: dict[str, list[dict[str, Any]]] = {}
    for (vocabulary, _ident), e in current(ledger).items():
        vocabularies.setdefault(vocabulary, []).append({**e.element, "lt:time": e.time})
        context.update(e.context)
    out: dict[str, Any] = {}
    epcis_header: dict[str, Any] = {}
    headers = _headers(ledger)
    if len(headers) == 1:
        h = headers[0]
        out.update({k: h.header[k] for k in HEADER_KEYS if k in h.header})
        extra = h.header.get("epcisHeader")
        epcis_header.update(extra if isinstance(extra, dict) else {})
        epcis_header["lt:creationDate"] = h.time.isoformat()
        context.update(h.context or {})
    if vocabularies:
        epcis_header["epcisMasterData"] = {
            "vocabularyList": [
                {"type": v, "vocabularyElementList": elements}
                for v, elements in vocabularies.items()
            ]
        }
    if epcis_header:
        out["epcisHeader"] = epcis_header
    return out, context
