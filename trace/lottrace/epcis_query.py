"""EPCIS 2.0 queries: the ledger's events as EPCIS, filtered by the standard query parameters, in pages.

What ``GET /events`` answers (GS1's REST bindings, SimpleEventQuery). The
events are those :func:`lottrace.epcis.export_document` writes (lottrace's
own events mapped to EPCIS, partners' events as they came, each with its
eventID), in log order, then filtered:

``eventType``
    ``ObjectEvent``, ``AggregationEvent``, ``TransformationEvent`` ...
``GE_eventTime``, ``LT_eventTime``
    eventTime at or after, before (ISO-8601; without an offset, UTC)
``EQ_bizStep``, ``EQ_disposition``
    the CBV value, bare (``shipping``) or as a URI
``EQ_bizLocation``, ``EQ_readPoint``
    the location's id
``MATCH_epc``, ``MATCH_anyEPC``
    an EPC in ``epcList``, ``childEPCs``, ``inputEPCList``, ``outputEPCList``
    (``anyEPC``: also ``parentID``)
``MATCH_epcClass``, ``MATCH_anyEPCClass``
    a class in ``quantityList`` (``anyEPCClass``: also the child, input and
    output quantity lists): lottrace's coffee lots are classes with kilograms
``EQ_eventID``
    the eventID

Several values of one parameter are separated by ``|`` and any of them
matches; identifiers match exactly (no ``idpat`` wildcards). Only the
events of ``lots`` (when given: what the caller may see) are searched, and
an event that also names a lot beyond them is left out. Events stream from
the ledger (:func:`lottrace.epcis.iter_events`) and a page stops when it is
full: a late page of a broad query reads the events before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from .epcis import EPCIS_CONTEXT, LT_NS, export_document, iter_events
from .errors import InvalidEvent, UnknownEvent
from .ledger import Ledger

__all__ = ["PARAMETERS", "query_events"]

PARAMETERS = (
    "eventType",
    "GE_eventTime",
    "LT_eventTime",
    "EQ_bizStep",
    "EQ_disposition",
    "EQ_bizLocation",
    "EQ_readPoint",
    "MATCH_epc",
    "MATCH_anyEPC",
    "MATCH_epcClass",
    "MATCH_anyEPCClass",
    "EQ_eventID",
)
_EPC_LISTS = ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
_CLASS_LISTS = ("childQuantityList", "inputQuantityList", "outputQuantityList")


def query_events(
    ledger: Ledger,
    params: Mapping[str, str],
    *,
    lots: set[str] | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[dict[str, Any], bool]:
    """An EPCISQueryDocument of the matching events from ``offset``, and whether more follow.

    The events stream from the ledger in log order and the query stops once
    its page is full, so a page costs what the events before it and on it
    cost, never the whole ledger at once. Raises
    :class:`~lottrace.errors.InvalidEvent` naming a parameter that is unknown
    or malformed.
    """
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise InvalidEvent(
            f"{unknown[0]}: not a query parameter this server knows", field=unknown[0]
        )
    test = _matcher(params)
    context: dict[str, str] = {}
    page: list[dict[str, Any]] = []
    more = False
    matched = 0
    for event in _candidates(ledger, lots, params, context):
        if not test(event):
            continue
        if lots is not None and not _names_only(ledger, event, lots):
            continue  # not an event that also names a lot the caller may not see
        if matched >= offset:
            if len(page) == limit:
                more = True
                break
            page.append(event)
        matched += 1
    created = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {
        "@context": [EPCIS_CONTEXT, context or {"lt": LT_NS}],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": created,
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": page}}
        },
    }, more


def _candidates(
    ledger: Ledger, lots: set[str] | None, params: Mapping[str, str], context: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """The events a query looks at, narrowed where a parameter allows it.

    One ``EQ_eventID`` that is a partner's eventID, an Event Hash ID of a
    partner's event or lottrace's own id is found through the ledger's
    indexes; ``GE_eventTime`` starts the stream at that time.
    """
    one = params.get("EQ_eventID", "")
    if one and "|" not in one:
        try:
            found = export_document(ledger, event_id=one)
        except UnknownEvent:
            found = None  # perhaps the Event Hash ID of one of lottrace's own: look on
        if found is not None:
            events = found["epcisBody"]["eventList"]
            if any(e["eventID"] == one for e in events):
                context.update(found["@context"][1])
                yield from events
                return
    since = params.get("GE_eventTime")
    start = _when("GE_eventTime", since).isoformat() if since else None
    yield from iter_events(ledger, lots=lots, since=start, context=context)


_LOT_URI = re.compile(r"https://lottrace\.org/lot/([^\"\s]+)")


def _names_only(ledger: Ledger, event: dict[str, Any], lots: set[str]) -> bool:
    """Whether every lot of the ledger that ``event`` names is one of ``lots``.

    lottrace's own lots appear as ``https://lottrace.org/lot/CODE``; a
    partner's lots as their own identifiers (EPCs, classes, parent ids).
    """
    named = set(_LOT_URI.findall(orjson.dumps(event).decode()))
    named |= _ids(event, _EPC_LISTS) | _classes(event, ("quantityList", *_CLASS_LISTS))
    if event.get("parentID"):
        named.add(str(event["parentID"]))
    return all(code in lots or ledger.lot(code) is None for code in named)


def _values(value: str) -> set[str]:
    return {v.strip() for v in value.split("|") if v.strip()}


def _cbv(value: str) -> str:
    """A CBV value bare: ``shipping`` for ``https://ref.gs1.org/cbv/BizStep-shipping`` too."""
    tail = value.rsplit("/", 1)[-1]
    return tail.split("-", 1)[1] if "-" in tail and tail.split("-", 1)[0][:1].isupper() else tail


def _when(name: str, value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent(f"{name}: {value!r} is not an ISO-8601 time", field=name) from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _ids(event: dict[str, Any], lists: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for name in lists:
        for item in event.get(name) or ():
            out.add(item if isinstance(item, str) else str(item))
    return out


def _classes(event: dict[str, Any], lists: Iterable[str]) -> set[str]:
    return {
        str(q.get("epcClass"))
        for name in lists
        for q in event.get(name) or ()
        if isinstance(q, dict) and q.get("epcClass")
    }


def _matcher(params: Mapping[str, str]) -> Callable[[dict[str, Any]], bool]:
    """A test of one event against every parameter (values parsed once, here)."""
    checks: list[tuple[str, Any]] = []
    for name, value in params.items():
        if name in ("GE_eventTime", "LT_eventTime"):
            checks.append((name, _when(name, value)))
        elif name in ("EQ_bizStep", "EQ_disposition"):
            checks.append((name, {_cbv(v) for v in _values(value)}))
        else:
            checks.append((name, _values(value)))

    def test(event: dict[str, Any]) -> bool:
        return all(_matches(name, want, event) for name, want in checks)

    return test


def _matches(name: str, want: Any, e: dict[str, Any]) -> bool:
    if name == "eventType":
        return e.get("type") in want
    if name in ("GE_eventTime", "LT_eventTime"):
        if "eventTime" not in e:
            return False
        return bool((_when("eventTime", e["eventTime"]) >= want) == name.startswith("GE"))
    if name in ("EQ_bizStep", "EQ_disposition"):
        field = "bizStep" if name == "EQ_bizStep" else "disposition"
        return _cbv(str(e.get(field, ""))) in want
    if name in ("EQ_bizLocation", "EQ_readPoint"):
        field = "bizLocation" if name == "EQ_bizLocation" else "readPoint"
        place = e.get(field)
        return isinstance(place, dict) and place.get("id") in want
    if name in ("MATCH_epc", "MATCH_anyEPC"):
        ids = _ids(e, _EPC_LISTS)
        if name == "MATCH_anyEPC" and e.get("parentID"):
            ids.add(str(e["parentID"]))
        return bool(ids & want)
    if name in ("MATCH_epcClass", "MATCH_anyEPCClass"):
        lists = ("quantityList",) + (_CLASS_LISTS if name == "MATCH_anyEPCClass" else ())
        return bool(_classes(e, lists) & want)
    return e.get("eventID") in want  # EQ_eventID
