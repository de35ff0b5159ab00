"""Provenance: where a lot came from and where it went (upstream, downstream, tree, ids).

Every function takes an open :class:`~lottrace.ledger.Ledger` and returns
plain data (dicts, lists, strings, numbers, ``None``) that prints as a table
or dumps as JSON. Corrections are honoured: a voided event and its links are
gone from the answer, and each answer lists under ``voided`` the ids of the
voided events that named any of its lots.

share
    The share of an input lot in the lot it formed is the kg on its link
    divided by the kg on all links into the formed lot; a dry mill's outputs
    share the mill's inputs pro rata. Shares multiply along a path and add up
    over paths (a lot reaching another by two routes counts twice). The
    producer shares of a lot sum to 1, and a producer's ``kg`` is its share
    times the lot's current kg. See :func:`lottrace.graph.shares_into`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from fractions import Fraction
from itertools import groupby
from math import gcd
from typing import Any

import orjson

from .graph import (
    ancestor_inputs,
    ancestors_graph,
    descendants_graph,
    shares_from,
    source_shares,
)
from .ledger import Ledger, StoredEvent
from .masterdata import parties, party_name
from .rules import time_key

__all__ = [
    "downstream",
    "find_events",
    "history",
    "tree",
    "upstream",
]

JSON = dict[str, Any]

_QC_TYPES = ("gatherer_qc", "hq_qc")


_QC_FIELDS = (
    "kg",
    "moisture_pct",
    "water_activity",
    "defects",
    "cup_score",
    "yield_pct",
    "reason",
)


def upstream(ledger: Ledger, lot: str) -> JSON:
    """Where a lot came from: producers, plots, harvests, QC on the way, and kg shares.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.

    Returns
    -------
    dict
        ``lot``; ``lots`` (its ancestor lot codes, sorted, without `lot`);
        ``producers`` (sorted); ``plots`` (producer, plot_id, area_ha,
        altitude_m, geometry, lots); ``harvests`` (lot, producer, plot_id,
        time, kg, variety, process, certifications, women_producer); ``qc`` (every QC event of
        the lot and its ancestors in time order: lot, stage, time, site,
        result, kg, moisture_pct, water_activity, defects, cup_score,
        yield_pct, reason); ``shares`` (producer, share, kg, lots; largest
        first, see the module docstring; a source lot of unknown origin has
        producer ``None``); ``voided``.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     up = upstream(ledger, "EXP-25-JUM-01")
    >>> up["producers"]
    ['JUM-0041', 'JUM-0058', 'JUM-0063', 'JUM-0089', 'JUM-0105']
    >>> top = up["shares"][0]  # 197 of the 684 kg blended at HQ, of 414 kg shipped
    >>> top["producer"], round(top["share"], 4), top["kg"], top["lots"]
    ('JUM-0063', 0.288, 119.237, ['JUM-25-H0063-1'])
    >>> round(sum(s["kg"] for s in up["shares"]), 3)
    414.0
    >>> [(q["lot"], q["stage"], q["result"]) for q in up["qc"]][-1]
    ('JUM-25-HQ-006', 'hq_qc', 'accepted')
    """
    # Read straight from the stored bodies, not through pydantic models and a
    # networkx graph: the bodies are canonical JSON of validated events, and
    # this is the hottest query (docs/performance.md).
    lot_kg = ledger.require_lot(lot).kg
    inputs = ancestor_inputs(ledger, lot)
    nodes = {lot}
    for dst, srcs in inputs.items():
        nodes.add(dst)
        nodes.update(srcs)
    harvests: dict[str, JSON] = {}  # lot -> harvest body
    harvest_keys: dict[str, str] = {}
    qc_rows: list[tuple[str, int, str, JSON]] = []
    for code, role, key, seq, body in ledger.own_event_bodies(nodes, ("harvest", *_QC_TYPES)):
        b = orjson.loads(body)
        if b["type"] == "harvest":
            if role == "output":
                harvests[code], harvest_keys[code] = b, key
        else:
            qc_rows.append((key, seq, code, b))
    by_producer: dict[str | None, tuple[int, int, list[str]]] = {}
    for source, (n, d) in source_shares(inputs, lot).items():
        h = harvests.get(source)
        producer = h["producer"] if h is not None else None
        if producer in by_producer:
            n0, d0, lots = by_producer[producer]
            n, d = n0 * d + n * d0, d0 * d
            g = gcd(n, d)
            n, d = n // g, d // g
            lots.append(source)
        else:
            lots = [source]
        by_producer[producer] = (n, d, lots)
    kn, kd = lot_kg.as_integer_ratio()
    shares = [
        {"producer": p, "share": n / d, "kg": round(n * kn / (d * kd), 3), "lots": sorted(lots)}
        for p, (n, d, lots) in _largest_first(by_producer)
    ]
    in_time = sorted(harvests, key=lambda code: (harvest_keys[code], code))
    harvest_rows = []
    for code in in_time:
        h = harvests[code]
        harvest_rows.append(
            {
                "lot": code,
                "producer": h["producer"],
                "plot_id": h["plot"]["id"],
                "time": _body_time(h["time"]),
                "kg": h["kg"],
                "variety": h.get("variety"),
                "process": h.get("process"),
                "certifications": list(h.get("certifications") or []),
                "women_producer": h.get("women_producer"),
            }
        )
    qc_rows.sort(key=lambda r: r[:3])
    qc = [
        {
            "lot": code,
            "stage": b["type"],
            "time": _body_time(b["time"]),
            "site": b["site"],
            "result": b.get("result"),
            **{k: b.get(k) for k in _QC_FIELDS},
        }
        for _, _, code, b in qc_rows
    ]
    return {
        "lot": lot,
        "lots": sorted(n for n in nodes if n != lot),
        "producers": sorted({h["producer"] for h in harvests.values()}),
        "plots": _plots(
            (code, harvests[code]["producer"], harvests[code]["plot"]) for code in in_time
        ),
        "harvests": harvest_rows,
        "qc": qc,
        "shares": shares,
        "voided": ledger.voided_for_lots(nodes),
    }


def downstream(ledger: Ledger, lot: str) -> JSON:
    """Where a lot went: every lot made from it and every export that carried it (recall).

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.

    Returns
    -------
    dict
        ``lot``; ``lots`` (its descendant lot codes, sorted, without `lot`);
        ``exports`` (one per export event of `lot` or a descendant, in time
        order: lot, time, kg, container, ico_mark, vessel, buyer,
        buyer_name (the name partners' master data gives a buyer named by
        its id, a URI such as ``urn:epc:id:pgln:...``; else ``None``),
        destination, bags, share (the fraction of the exported lot that came
        from `lot`), kg_from_lot (share times the exported kg), event_id);
        ``voided``.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     down = downstream(ledger, "APR-25-G-HUA02-03")
    >>> [(x["lot"], x["container"], x["destination"], x["kg_from_lot"]) for x in down["exports"]]
    [('MILL-25-0412-G1', 'HLXU8364124', 'Hamburg', 297.565), ('EXP-25-APR-02', 'HLXU8411777', 'Hamburg', 148.783)]
    """
    G = descendants_graph(ledger, lot, timelines=True)
    share = shares_from(G, lot)
    exports: list[JSON] = []
    events = _own_events(G, ("export",))
    # Master data names parties by URI; reading it is a scan of the log, made only
    # when a buyer is named by one (a buyer written as a name needs none).
    named = any(":" in str(getattr(e.event, "buyer", None) or "") for _c, e in events)
    names = parties(ledger) if named else {}
    for code, e in events:
        ev = e.event
        f = share.get(code, Fraction(0))
        kg = getattr(ev, "kg", None)
        exports.append(
            {
                "lot": code,
                "time": ev.time.isoformat(),
                "kg": kg,
                **{k: getattr(ev, k, None) for k in ("container", "ico_mark", "vessel")},
                "buyer": getattr(ev, "buyer", None),
                "buyer_name": party_name(names, getattr(ev, "buyer", None)),
                **{k: getattr(ev, k, None) for k in ("destination", "bags")},
                "share": float(f),
                "kg_from_lot": round(float(f * Fraction(kg)), 3) if kg is not None else None,
                "event_id": e.event_id,
            }
        )
    return {
        "lot": lot,
        "lots": sorted(n for n in G if n != lot),
        "exports": exports,
        "voided": ledger.voided_for_lots(G.nodes),
    }


def tree(ledger: Ledger, lot: str) -> JSON:
    """The full upstream tree of a lot, as nested data for an indented terminal tree.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.

    Returns
    -------
    dict
        A node: ``lot``, ``kg`` (its current kg), ``stage`` (the highest
        stage it reached), ``link_kg`` (kg it gave to its parent; ``None`` at
        the root), ``checkpoints`` (its own events in time order: stage,
        time, site, result, kg), ``children`` (its input lots, by code) and
        ``repeated`` (true when the lot was already shown earlier in the tree,
        as in a diamond; its children are then left out). The root also
        has ``voided``.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     t = tree(ledger, "MILL-25-0433-G1")
    >>> [c["lot"] for c in t["children"][0]["children"]]
    ['CEC-25-G-INC01-02', 'CEC-25-G-KAN02-05']
    >>> [(c["stage"], c["site"], c["result"]) for c in t["children"][0]["checkpoints"]]
    [('hq_qc', 'hq:CECANOR', 'accepted')]

    See Also
    --------
    format_tree
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    seen: set[str] = set()

    def node(code: str, link_kg: float | None) -> JSON:
        data = G.nodes[code]
        out: JSON = {
            "lot": code,
            "kg": data.get("kg"),
            "stage": data.get("stage_name"),
            "link_kg": link_kg,
            "checkpoints": [
                {
                    "stage": e.event.type,
                    "time": e.event.time.isoformat(),
                    "site": e.event.site,
                    "result": getattr(e.event, "result", None),
                    "kg": e.event.kg_for(code),
                }
                for e in data.get("timeline", [])
                if e.role != "input"
            ],
            "children": [],
            "repeated": code in seen,
        }
        if code not in seen:
            seen.add(code)
            out["children"] = [
                node(src, G.edges[src, code]["kg"]) for src in sorted(G.predecessors(code))
            ]
        return out

    root = node(lot, None)
    root["voided"] = ledger.voided_for_lots(G.nodes)
    return root


def find_events(ledger: Ledger, some_id: str) -> list[JSON]:
    """The events an id names (``history --event-id``), each with all its ids.

    ``some_id`` is lottrace's event id (the content hash of its record), a
    foreign event's EPCIS Event Hash ID or a partner's ``eventID``. One hash
    names an event and any error declaration of it. Raises
    :class:`~lottrace.errors.UnknownEvent` when it names nothing.
    """
    from .errors import UnknownEvent

    found = ledger.find_events(some_id)
    if not found:
        raise UnknownEvent(
            f"no event {some_id!r} in {ledger.path} (neither a lottrace event id, "
            "an Event Hash ID nor a partner's eventID)"
        )
    out = []
    for stored in found:
        d = stored.as_dict()
        d.setdefault("void", False)
        out.append(d)
    return out


def _own_events(G: Any, types: tuple[str, ...]) -> list[tuple[str, StoredEvent]]:
    """Each lot's own events of these types (not draws into other lots), in time order."""
    found = [
        (code, e)
        for code in G
        for e in G.nodes[code].get("timeline", [])
        if e.role != "input" and e.event.type in types
    ]
    found.sort(key=lambda ce: (time_key(ce[1].event.time), ce[1].seq, ce[0]))
    return found


def _plots(harvests: Iterable[tuple[str, str, JSON]]) -> list[JSON]:
    """One row per (producer, plot id); geometry and area from its latest harvest that has them.

    `harvests` are ``(lot, producer, plot)`` in time order, each plot a plain
    dict as the event's JSON holds it (``id``, ``geometry``, ``area_ha``,
    ``altitude_m``; absent or None when unknown).
    """
    plots: dict[tuple[str, str], JSON] = {}
    for code, producer, plot in harvests:
        key = (producer, plot["id"])
        row = plots.get(key)
        if row is None:  # a new row only for a new plot (most harvests are of one)
            row = plots[key] = {
                "producer": producer,
                "plot_id": plot["id"],
                "area_ha": None,
                "altitude_m": None,
                "geometry": None,
                "lots": [],
            }
        row["lots"].append(code)
        for name in ("area_ha", "altitude_m", "geometry"):
            if plot.get(name) is not None:
                row[name] = plot[name]
    return [plots[k] for k in sorted(plots)]


def _largest_first(
    shares: dict[str | None, tuple[int, int, list[str]]],
) -> list[tuple[str | None, tuple[int, int, list[str]]]]:
    """Exact shares ``(n, d, lots)`` by key, largest first, ties by key (None as "").

    Sorted on the floats ``n / d`` (rounding keeps their order, but may make
    two close shares equal), then each run of equal floats again exactly.
    """
    items = sorted(shares.items(), key=lambda kv: (-kv[1][0] / kv[1][1], kv[0] or ""))
    out: list[tuple[str | None, tuple[int, int, list[str]]]] = []
    for _, run in groupby(items, key=lambda kv: kv[1][0] / kv[1][1]):
        tied = list(run)
        if len(tied) > 1:
            tied.sort(key=lambda kv: (-Fraction(kv[1][0], kv[1][1]), kv[0] or ""))
        out.extend(tied)
    return out


def _body_time(value: str) -> str:
    """An event time as stored in its JSON body, as the parsed event's ``isoformat()`` gives it.

    >>> _body_time("2025-06-02T09:30:00-05:00"), _body_time("2025-06-02T14:30:00.5Z")
    ('2025-06-02T09:30:00-05:00', '2025-06-02T14:30:00.500000+00:00')
    """
    if len(value) == 25 and value[19] in "+-":  # whole seconds and an offset: already so
        return value
    return datetime.fromisoformat(value).isoformat()


def history(ledger: Ledger, lot: str, *, with_tree: bool = True) -> JSON:
    """A lot's own events in time order (``history --json``), and its upstream tree.

    ``events`` are the lot's non-void events, each with its ``role``
    (``subject``, ``output`` for the event that formed it, ``input`` for one
    that drew from it); ``voided`` the ids of void events that named it;
    ``tree`` (:func:`tree`), when the lot was formed from other lots and
    ``with_tree`` is on.
    """
    events = ledger.lot_events(lot)
    data: JSON = {
        "lot": lot,
        "events": [dict(e.as_dict(), role=e.role) for e in events],
        "voided": ledger.voided_for_lot(lot),
    }
    if with_tree:
        upstream_tree = tree(ledger, lot)
        if upstream_tree.get("children"):
            data["tree"] = upstream_tree
    return data
