"""Finding lots by what a buyer knows: a lot code, a producer, or a container number.

:func:`find_lots` looks a text up in an index of the whole ledger (every lot
code; each harvest's producer, by id and by its master-data name; each
export's container) and answers the lots it matches, cut to the lots the
caller may see. A producer's match is the producer's harvest lots and every
lot downstream of them; a container's, the lots exported in it and what they
were formed from. The index is built by one pass over the lots' timelines and
one over harvests and exports, and kept per ledger head (:mod:`lottrace.memo`),
so a search on a served ledger that has not changed reads no event. After an
append, the previous head's index is extended with the events appended since
(:func:`extend_index`) rather than built again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from .ledger import Ledger, StoredEvent
from .masterdata import parties
from .memo import GROWING, WHOLE
from .rules import STAGE_NAMES, facts_of, lots_of

__all__ = ["MAX_RESULTS", "SearchIndex", "find_lots", "search_index"]

#: At most this many lots are answered.
MAX_RESULTS = 50
#: Shorter texts match codes, producers and containers only whole.
_MIN_PART = 3


@dataclass
class SearchIndex:
    """What a search looks at, for one head of one ledger."""

    lots: list[str] = field(default_factory=list)
    #: lower-cased producer id or name -> (producer id, its harvest lots)
    producers: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    #: lower-cased container -> (container, the lots exported in it)
    containers: dict[str, tuple[str, list[str]]] = field(default_factory=dict)


def search_index(ledger: Ledger) -> SearchIndex:
    """The index of the ledger as it is now (kept until its head moves; then the previous
    head's is extended, see :func:`extend_index`)."""

    def make() -> SearchIndex:
        return GROWING.get(
            ledger,
            (ledger.genesis, "search-index"),
            lambda: _build(ledger),
            lambda old, events: extend_index(ledger, old, events),
        )

    return WHOLE.get_or_make((ledger.head(), "search-index"), make)


#: Events after which the index is built again, not extended: a correction voids earlier
#: events (their lots, producers, containers may go), master data renames producers.
REBUILD_TYPES = frozenset({"correction", "master_data", "epcis_header"})


def extend_index(ledger: Ledger, old: SearchIndex, events: list[StoredEvent]) -> SearchIndex | None:
    """``old`` (an index of the ledger before ``events``) with ``events`` added, the same
    as :func:`_build` on the ledger after them; or None when they may change what ``old``
    says: a correction, master data or a header (see :data:`REBUILD_TYPES`), or an event
    already void. New lots go in code order (as the scan of ``event_lots`` gives them),
    new producers' and containers' lots at the end (log order). ``old`` is not changed.
    """
    if any(s.void or s.event.type in REBUILD_TYPES for s in events):
        return None
    lots = old.lots
    known = set(lots)
    new_lots: set[str] = set()
    producers = dict(old.producers)
    containers = dict(old.containers)
    copied: set[int] = set()  # the lists already copied, by id: old's are never changed
    names: dict[str, str] | None = None
    for stored in events:
        ev = stored.event
        if ev.type not in ("dispatch", "arrival"):
            new_lots.update(lot for lot, _role in lots_of(facts_of(ev)) if lot not in known)
        if ev.subject is None or ev.type not in ("harvest", "export"):
            continue
        if ev.type == "harvest":
            producer = ev.field("producer")
            if isinstance(producer, str) and producer:
                if names is None:
                    names = parties(ledger)
                for key in {producer.lower(), (names.get(producer) or producer).lower()}:
                    _append(producers, key, producer, ev.subject, copied)
        else:
            container = ev.field("container")
            if isinstance(container, str) and container:
                _append(containers, container.lower(), container, ev.subject, copied)
    if new_lots:
        lots = list(lots)
        for lot in sorted(new_lots):
            bisect.insort(lots, lot)
    return SearchIndex(lots, producers, containers)


def _append(
    into: dict[str, tuple[str, list[str]]], key: str, by: str, lot: str, copied: set[int]
) -> None:
    entry = into.get(key)
    if entry is None:
        fresh: list[str] = [lot]
        copied.add(id(fresh))
        into[key] = (by, fresh)
    elif id(entry[1]) in copied:
        entry[1].append(lot)
    else:
        grown = [*entry[1], lot]
        copied.add(id(grown))
        into[key] = (entry[0], grown)


def _build(ledger: Ledger) -> SearchIndex:
    index = SearchIndex()
    seen: set[str] = set()
    for lot, *_ in ledger.leg_scan(marks=False):
        if lot not in seen:
            seen.add(lot)
            index.lots.append(lot)
    names = parties(ledger)
    for stored in ledger.events_of_types(["harvest", "export"]):
        if stored.void:
            continue
        ev = stored.event
        if ev.subject is None:
            continue
        if ev.type == "harvest":
            producer = ev.field("producer")
            if isinstance(producer, str) and producer:
                for key in {producer.lower(), (names.get(producer) or producer).lower()}:
                    index.producers.setdefault(key, (producer, []))[1].append(ev.subject)
        else:
            container = ev.field("container")
            if isinstance(container, str) and container:
                index.containers.setdefault(container.lower(), (container, []))[1].append(
                    ev.subject
                )
    return index


def _matches(text: str, key: str) -> bool:
    return key == text or (len(text) >= _MIN_PART and text in key)


def find_lots(
    ledger: Ledger, text: str, *, visible: set[str] | None = None, limit: int = MAX_RESULTS
) -> dict[str, Any]:
    """The lots ``text`` names, among those ``visible`` (None: all).

    Returns ``{"query", "results", "more"}``: each result is ``lot``,
    ``matched`` (``lot``, ``producer`` or ``container``), ``by`` (the code,
    producer or container matched), ``stage``, ``kg`` and ``last_time``; lot
    codes first, then producers', then containers'; ``more`` is true when
    over ``limit`` lots matched. Case does not matter; a text of three
    characters or more also matches part of a code, producer or container.
    A lot the caller may not see is never answered nor counted.

    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     found = find_lots(ledger, "msku5930284")
    >>> [(r["lot"], r["matched"]) for r in found["results"]][:1]
    [('EXP-25-JUM-01', 'container')]
    """
    query = " ".join(text.split())
    needle = query.lower()
    if not needle:
        return {"query": query, "results": [], "more": False}
    index = search_index(ledger)
    found: dict[str, tuple[str, str]] = {}

    def add(lot: str, how: str, by: str) -> None:
        if lot not in found and (visible is None or lot in visible):
            found[lot] = (how, by)

    for lot in index.lots:
        if _matches(needle, lot.lower()):
            add(lot, "lot", lot)
    for key, (producer, harvests) in sorted(index.producers.items()):
        if _matches(needle, key):
            for lot in harvests:
                add(lot, "producer", producer)
                for _src, dst, *_ in ledger.lineage_links(lot, direction="down"):
                    add(dst, "producer", producer)
    for key, (container, exported) in sorted(index.containers.items()):
        if _matches(needle, key):
            for lot in exported:
                add(lot, "container", container)
    lots = list(found)[:limit]
    states = ledger.lots_states(lots)
    results = []
    for lot in lots:
        how, by = found[lot]
        state = states.get(lot)
        results.append(
            {
                "lot": lot,
                "matched": how,
                "by": by,
                "stage": STAGE_NAMES.get(state.stage, str(state.stage)) if state else None,
                "kg": state.kg if state else None,
                "last_time": state.last_time if state else None,
            }
        )
    return {"query": query, "results": results, "more": len(found) > limit}
