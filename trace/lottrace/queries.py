"""Answers for buyers and analysts: provenance, recall, EUDR, certification and delays.

Every function takes an open :class:`~lottrace.ledger.Ledger` and returns
plain data (dicts, lists, strings, numbers, ``None``) that prints as a table
or dumps as JSON. Corrections are honoured everywhere: a voided event and
its links are gone from the answer, and the lineage answers list the ids of
the voided events that named any of their lots under ``voided``, so the
answer says it was corrected.

Times in answers are ISO-8601: an event's own time with the offset it was
logged with, or UTC (``+00:00``) where the answer is about a row rather than
an event.

Definitions
-----------
share
    The share of an input lot in the lot it formed is the kg on its link
    divided by the kg on all links into the formed lot; a dry mill's outputs
    share the mill's inputs pro rata. Shares multiply along a path and add up
    over paths (a lot reaching another by two routes counts twice). The
    producer shares of a lot sum to 1, and a producer's ``kg`` is its share
    times the lot's current kg. See :func:`lottrace.graph.shares_into`.
leg
    One step of a lot's journey: from one of its own stage checkpoints
    (harvest, drying, gatherer_qc, hq_qc, dry_mill, export; the event that
    formed it counts) to its next one, or to an event that draws kg from it
    into another lot. A lot drawn in parts has a leg to each draw, all from
    its latest checkpoint before that draw; an export of part of a lot ends
    a leg but starts none, as the rest of the lot stays where it was (so a
    lot has no export-to-export legs). ``dispatch`` and ``arrival``
    events are not legs' ends: they split a leg into transit (dispatch to
    arrival; a dispatch with no arrival runs to the leg's end) and waiting
    (the rest of the leg).
baseline (:func:`bottlenecks`)
    The median (p50) duration of the same stage-to-stage leg over all routes
    in the window; a route's excess is the sum over its legs of the hours
    above that median, in lot-hours.
stuck (:func:`stuck`)
    A lot with kg left (not fully drawn into other lots or exported) whose
    latest stage checkpoint is not an export and is older, at ``as_of``,
    than the p90 of the leg that most often follows that stage in the
    ledger.

Percentiles interpolate linearly between the closest ranks (as numpy's
default): the p50 of 24 and 48 hours is 36.
"""

from __future__ import annotations

import gc
import heapq
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from itertools import groupby
from math import ceil, floor, gcd
from typing import Any

import orjson

from .events import STAGE_ORDER, Harvest
from .graph import (
    ancestor_inputs,
    ancestors_graph,
    descendants_graph,
    shares_from,
    source_shares,
)
from .ledger import Ledger, StoredEvent
from .rules import time_key

__all__ = [
    "Leg",
    "bottlenecks",
    "certify",
    "delays",
    "downstream",
    "eudr",
    "excess_by_month",
    "find_events",
    "format_tree",
    "leg_hours",
    "legs",
    "stuck",
    "timeline",
    "tree",
    "upstream",
]

#: EUDR: a plot over this many hectares needs a polygon, not a point.
POINT_MAX_HA = 4.0
#: Decimal places kept in GeoJSON coordinates (EUDR asks for at least six).
COORD_DECIMALS = 6
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

JSON = dict[str, Any]

# --------------------------------------------------------------------------- provenance


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
    for code, e in _own_events(G, ("export",)):
        ev = e.event
        f = share.get(code, Fraction(0))
        kg = getattr(ev, "kg", None)
        exports.append(
            {
                "lot": code,
                "time": ev.time.isoformat(),
                "kg": kg,
                **{k: getattr(ev, k, None) for k in ("container", "ico_mark", "vessel")},
                **{k: getattr(ev, k, None) for k in ("buyer", "destination", "bags")},
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


def format_tree(node: JSON, indent: str = "    ") -> str:
    """Render :func:`tree`'s answer as indented text, one lot and its checkpoints per block.

    Parameters
    ----------
    node : dict
        The answer of :func:`tree` (or any node of it).
    indent : str, optional
        What each level of inputs is indented by.

    Returns
    -------
    str
        One line per lot (code, kg, stage, kg it gave to its parent), then
        one line per checkpoint; a lot shown before is marked, not repeated.

    Examples
    --------
    >>> leaf = {"lot": "H1", "kg": 200.0, "stage": "drying", "link_kg": 200.0,
    ...         "checkpoints": [{"stage": "harvest", "time": "2025-05-01T08:00:00-05:00",
    ...                          "site": "farm:H1", "result": None, "kg": 1000.0}],
    ...         "children": [], "repeated": False}
    >>> root = {"lot": "G1", "kg": 300.0, "stage": "gatherer_qc", "link_kg": None,
    ...         "checkpoints": [{"stage": "gatherer_qc", "time": "2025-05-15T08:00:00-05:00",
    ...                          "site": "gatherer:G1", "result": "accepted", "kg": 300.0}],
    ...         "children": [leaf], "repeated": False, "voided": []}
    >>> print(format_tree(root))
    G1  300 kg  gatherer_qc
      2025-05-15T08:00:00-05:00  gatherer_qc  gatherer:G1  accepted
        H1  200 kg  drying  (200 kg into G1)
          2025-05-01T08:00:00-05:00  harvest  farm:H1
    """
    lines: list[str] = []

    def walk(n: JSON, depth: int, parent: str | None) -> None:
        pad = indent * depth
        head = f"{pad}{n['lot']}  {_kg_text(n['kg'])} kg  {n['stage']}"
        if parent is not None and n.get("link_kg") is not None:
            head += f"  ({_kg_text(n['link_kg'])} kg into {parent})"
        if n.get("repeated"):
            lines.append(head + "  (shown above)")
            return
        lines.append(head)
        for c in n["checkpoints"]:
            result = f"  {c['result']}" if c.get("result") else ""
            lines.append(f"{pad}  {c['time']}  {c['stage']}  {c['site']}{result}")
        for child in n["children"]:
            walk(child, depth + 1, n["lot"])

    walk(node, 0, None)
    if node.get("voided"):
        lines.append(f"{len(node['voided'])} voided event(s) not shown")
    return "\n".join(lines)


# --------------------------------------------------------------------------- compliance


def eudr(ledger: Ledger, lot: str) -> tuple[JSON, list[JSON]]:
    """The plots behind a lot as an EUDR GeoJSON FeatureCollection, and what is missing.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.

    Returns
    -------
    feature_collection : dict
        An RFC 7946 FeatureCollection with one Feature per contributing plot
        (a producer's plot id), sorted by producer and plot. Geometry is the
        plot's WGS84 Point or Polygon, ``[lon, lat]`` rounded to
        :data:`COORD_DECIMALS` decimals, or ``None`` when the plot has none;
        properties are ``producer``, ``plot_id``, ``area_ha``, ``country``
        (``"PE"``), ``harvest_dates`` (local dates) and ``harvest_lots``.
    problems : list of dict
        ``lot``, ``producer``, ``plot_id``, ``problem`` and a one-line
        ``message``. ``problem`` is ``no-geometry`` (a contributing harvest's
        plot has no geometry), ``point-over-4ha`` (a plot over 4 ha given only
        as a Point) or ``unknown-origin`` (an ancestor lot, or `lot`, that was
        not created by a harvest and has no input lots; producer ``None``).

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
    ...     fc, problems = eudr(ledger, "MILL-25-0412-G1")
    >>> [(f["properties"]["producer"], f["geometry"]["type"]) for f in fc["features"]][:3]
    [('APR-0187', 'Polygon'), ('APR-0231', 'Point'), ('APR-0342', 'Point')]
    >>> fc["features"][1]["geometry"]["coordinates"], fc["features"][1]["properties"]["area_ha"]
    ([-79.012437, -5.138842], 2.8)
    >>> fc["features"][1]["properties"]["harvest_dates"]
    ['2025-05-06']
    >>> problems
    []
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    harvests = _harvests(G)
    problems: list[JSON] = []
    features: list[JSON] = []
    in_time = sorted(harvests.items(), key=lambda kv: (time_key(kv[1].time), kv[0]))
    for plot in _plots((code, h.producer, h.plot.model_dump()) for code, h in in_time):
        geometry = plot["geometry"]
        features.append(
            {
                "type": "Feature",
                "geometry": _round_geometry(geometry) if geometry is not None else None,
                "properties": {
                    "producer": plot["producer"],
                    "plot_id": plot["plot_id"],
                    "area_ha": plot["area_ha"],
                    "country": "PE",
                    "harvest_dates": sorted(
                        {harvests[h].time.date().isoformat() for h in plot["lots"]}
                    ),
                    "harvest_lots": plot["lots"],
                },
            }
        )
    for code, h in sorted(harvests.items()):
        who = f"lot {code}: producer {h.producer}: plot {h.plot.id}"
        geom = h.plot.geometry
        if geom is None:
            problems.append(
                _problem(code, h, "no-geometry", f"{who} has no geometry (point or polygon)")
            )
        elif geom.type == "Point" and (h.plot.area_ha or 0) > POINT_MAX_HA:
            problems.append(
                _problem(
                    code,
                    h,
                    "point-over-4ha",
                    f"{who} is {h.plot.area_ha:g} ha but given only as a Point; "
                    f"EUDR needs a polygon over {POINT_MAX_HA:g} ha",
                )
            )
    for code in _unknown_origins(G, harvests):
        problems.append(
            {
                "lot": code,
                "producer": None,
                "plot_id": None,
                "problem": "unknown-origin",
                "message": f"lot {code}: producer unknown: the lot was not created by a "
                "harvest and has no input lots, so its origin is unknown",
            }
        )
    return {"type": "FeatureCollection", "features": features}, problems


def certify(ledger: Ledger, lot: str, scheme: str) -> JSON:
    """Does every harvest in a lot carry a certification? The lots that break it.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.
    scheme : str
        A certification as harvests list it, e.g. ``organic``, ``fairtrade``.

    Returns
    -------
    dict
        ``lot``, ``scheme``, ``certified`` (true when nothing breaks it),
        ``harvests`` (how many harvest lots contribute), ``breaking`` (lot,
        producer, plot_id, certifications, reason: ``not certified``, or
        ``unknown origin`` for a source lot not created by a harvest) and
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
    ...     ok = certify(ledger, "EXP-25-JUM-01", "cafe_femenino")
    ...     bad = certify(ledger, "EXP-25-CEC-01", "organic")
    >>> ok["certified"], ok["harvests"]
    (True, 5)
    >>> bad["certified"], [(b["lot"], b["certifications"]) for b in bad["breaking"]]
    (False, [('CEC-25-H0112-1', ['fairtrade']), ('CEC-25-H0145-1', ['fairtrade']), ('CEC-25-H0203-1', ['fairtrade'])])
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    harvests = _harvests(G)
    breaking: list[JSON] = []
    for code, h in sorted(harvests.items()):
        certs = list(h.certifications or [])
        if scheme not in certs:
            breaking.append(
                {
                    "lot": code,
                    "producer": h.producer,
                    "plot_id": h.plot.id,
                    "certifications": certs,
                    "reason": "not certified",
                }
            )
    for code in _unknown_origins(G, harvests):
        breaking.append(
            {
                "lot": code,
                "producer": None,
                "plot_id": None,
                "certifications": [],
                "reason": "unknown origin",
            }
        )
    return {
        "lot": lot,
        "scheme": scheme,
        "certified": not breaking,
        "harvests": len(harvests),
        "breaking": breaking,
        "voided": ledger.voided_for_lots(G.nodes),
    }


# --------------------------------------------------------------------------- delays


@dataclass(frozen=True, slots=True)
class Leg:
    """One leg of a lot's journey (see the module docstring); times are UTC sort keys."""

    lot: str
    from_stage: str
    from_site: str
    start: str
    to_stage: str
    to_site: str
    end: str
    hours: float
    transit_hours: float | None  #: dispatch-to-arrival hours, None without a dispatch

    @property
    def wait_hours(self) -> float | None:
        """The hours of the leg not on the road, None without a dispatch."""
        return None if self.transit_hours is None else self.hours - self.transit_hours


def legs(
    ledger: Ledger, since: datetime | str | None = None, until: datetime | str | None = None
) -> Iterator[Leg]:
    """Stream every leg in the ledger, lot by lot, in one pass over the lots' timelines.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    since, until : datetime or ISO-8601 str, optional
        Keep the legs that end at or after `since` and before `until`. A
        date or time without an offset is read as UTC.

    Yields
    ------
    Leg

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     hq = [g for g in legs(ledger) if g.lot == "APR-25-HQ-014"]
    >>> [(g.from_stage, g.to_stage, g.to_site, g.hours, g.transit_hours) for g in hq]
    [('hq_qc', 'dry_mill', 'mill:CHICLAYO-1', 335.0, 14.666666666666666)]
    """
    for t in _leg_tuples(ledger, _bound(since), _bound(until)):
        yield Leg(*t)


#: One leg as a plain tuple, in the order of :class:`Leg`'s fields.
_LegTuple = tuple[str, str, str, str, str, str, str, float, float | None]


def _leg_tuples(
    ledger: Ledger, lo: str | None, hi: str | None, *, marks: bool = True
) -> Iterator[_LegTuple]:
    """The legs of :func:`legs` as tuples, ending in ``[lo, hi)``: the whole-ledger hot loop.

    One pass over the ``event_lots`` key (:meth:`Ledger.leg_scan`), which
    gives a lot's events at one time by type, not in log order. A lot's legs
    are held until its last row; if two of its rows share a time, they are
    thrown away and the lot is walked again in log order (rare: one query
    for that lot). Each time key is parsed once, when a leg needs it. Without
    `marks` the scan skips dispatches and arrivals: the same legs with the
    same hours, but transit ``None`` (except in lots walked again).
    """
    return _walk(ledger.leg_scan(marks=marks), lo, hi, ledger)


def _walk(
    rows: Iterator[tuple[str, str, str, str, str]],
    lo: str | None,
    hi: str | None,
    ledger: Ledger | None,
) -> Iterator[_LegTuple]:
    """Legs from rows by lot then time; with `ledger`, lots with ties are walked again."""
    fromiso = datetime.fromisoformat
    current: str | None = None
    start: tuple[str, str, str] | None = None  # (time, stage, site) of the latest checkpoint
    start_dt: datetime | None = None
    marks: list[tuple[str, str]] = []  # the lot's dispatches and arrivals since then
    found: list[_LegTuple] = []  # the current lot's legs
    prev_key: str | None = None
    tie = False
    for lot, key, kind, role, site in rows:
        if lot != current:
            if tie and ledger is not None and current is not None:
                yield from _walk(ledger.leg_scan(current), lo, hi, None)
            elif found:
                yield from found
            if found:
                found = []
            current, start, tie = lot, None, False
            if marks:
                marks = []
        elif key == prev_key:
            tie = True
        prev_key = key
        if kind not in STAGE_ORDER:
            if start is not None and role == "subject" and kind in _MARKS:
                marks.append((kind, key))
            continue
        end_dt = None
        if start is not None and role != "output":
            if start_dt is None:
                start_dt = fromiso(start[0])
            end_dt = fromiso(key)
            transit = None
            if marks:
                if len(marks) == 2 and marks[0][0] == "dispatch" and marks[1][0] == "arrival":
                    # the usual truck, as _transit would sum it
                    transit = (fromiso(marks[1][1]) - fromiso(marks[0][1])).total_seconds() / 3600
                else:
                    transit = _transit(marks, key)
                marks = []
            if (lo is None or key >= lo) and (hi is None or key < hi):
                found.append(
                    (
                        lot,
                        start[1],
                        start[2],
                        start[0],
                        kind,
                        site,
                        key,
                        (end_dt - start_dt).total_seconds() / 3600,
                        transit,
                    )
                )
        if role == "output" or (role == "subject" and kind != "export"):
            start, start_dt = (key, kind, site), end_dt
            if marks:
                marks = []
    if tie and ledger is not None and current is not None:
        yield from _walk(ledger.leg_scan(current), lo, hi, None)
    else:
        yield from found


_MARKS = frozenset(("dispatch", "arrival"))


#: Legs grouped by a key: their hours, and, for groups with trucked legs, the transit
#: and wait hours of those legs, interleaved (transit, wait, transit, ...).
_Groups = tuple[dict[tuple[str, ...], "array[float]"], dict[tuple[str, ...], "array[float]"]]


def _grouped_legs(ledger: Ledger, by: str, lo: str | None, hi: str | None) -> _Groups:
    """The legs ending in ``[lo, hi)``, grouped as :func:`delays` groups them `by`.

    Each group's hours are a C array of doubles (the same floats), not a
    list: a whole-ledger scan makes tens of thousands of groups, and the
    cyclic garbage collector walks every list that lives on, again on each
    of its passes, but never an array.
    """
    hours_of: dict[tuple[str, ...], array[float]] = {}
    trucks_of: dict[tuple[str, ...], array[float]] = {}
    found = _leg_tuples(ledger, lo, hi)
    keyed: Iterator[tuple[tuple[str, ...], float, float | None]]
    if by == "stage":
        keyed = (((frm, to), h, tr) for _, frm, _, _, to, _, _, h, tr in found)
    elif by == "site":
        keyed = (((frm, to, fs, ts), h, tr) for _, frm, fs, _, to, ts, _, h, tr in found)
    else:
        keyed = (((end[:7], frm, to), h, tr) for _, frm, _, _, to, _, end, h, tr in found)
    for key, hours, transit in keyed:
        hs = hours_of.get(key)
        if hs is None:
            hours_of[key] = array("d", (hours,))
        else:
            hs.append(hours)
        if transit is not None:
            tw = trucks_of.get(key)
            if tw is None:
                trucks_of[key] = array("d", (transit, hours - transit))
            else:
                tw.append(transit)
                tw.append(hours - transit)
    return hours_of, trucks_of


def _route_legs(
    ledger: Ledger, lo: str | None, hi: str | None
) -> tuple[dict[tuple[str, ...], int], list[array[float]], list[str], array[int]]:
    """The hours of the legs ending in ``[lo, hi)`` by route, from a scan without marks.

    Routes are numbered in the order they are met: ``(number by route, hours
    by number, each leg's lot, each leg's route number)``, the last two in
    scan order, so that the trucks of a few routes can be found afterwards
    (:func:`_route_trucks`). Numbers, not route tuples, per leg: half a
    million tuples that live on would make the garbage collector walk them
    again and again (a seventh of the whole query).
    """
    ids: dict[tuple[str, ...], int] = {}
    hours_by: list[array[float]] = []
    leg_lots: list[str] = []
    leg_ids: array[int] = array("l")
    add_lot, add_id = leg_lots.append, leg_ids.append
    for lot, frm, fs, _, to, ts, _, hours, _ in _leg_tuples(ledger, lo, hi, marks=False):
        key = (frm, to, fs, ts)
        i = ids.get(key)
        if i is None:
            i = ids[key] = len(hours_by)
            hours_by.append(array("d", (hours,)))
        else:
            hours_by[i].append(hours)
        add_lot(lot)
        add_id(i)
    return ids, hours_by, leg_lots, leg_ids


def _route_trucks(
    ledger: Ledger,
    lots: Iterable[str],
    wanted: set[tuple[str, ...]],
    lo: str | None,
    hi: str | None,
) -> dict[tuple[str, ...], array[float]]:
    """The trucks of the `wanted` routes, as :func:`_grouped_legs` gives them.

    The named lots are walked again, one by one in code order as the whole
    scan walks them, so each route's legs come in the same order and their
    sums round the same way.
    """
    trucks_of: dict[tuple[str, ...], array[float]] = {}
    for lot in sorted(set(lots)):
        for _, frm, fs, _, to, ts, _, hours, transit in _walk(ledger.leg_scan(lot), lo, hi, None):
            key = (frm, to, fs, ts)
            if transit is not None and key in wanted:
                tw = trucks_of.get(key)
                if tw is None:
                    trucks_of[key] = array("d", (transit, hours - transit))
                else:
                    tw.append(transit)
                    tw.append(hours - transit)
    return trucks_of


def _transit(marks: list[tuple[str, str]], end: str) -> float | None:
    """Hours on the road: each first dispatch to the next arrival, an open one to `end`."""
    transit: float | None = None
    dispatched: str | None = None
    for kind, key in marks:
        if kind == "dispatch" and dispatched is None:
            dispatched = key
        elif kind == "arrival" and dispatched is not None:
            transit = (transit or 0.0) + _hours(dispatched, key)
            dispatched = None
    if dispatched is not None:  # no arrival logged: on the road until the leg ends
        transit = (transit or 0.0) + _hours(dispatched, end)
    return transit


def delays(
    ledger: Ledger,
    by: str = "stage",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> list[JSON]:
    """How long legs take, grouped by stage pair, by route (sites) or by month.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    by : {"stage", "site", "month"}
        Group legs by ``from``/``to`` stage; also by ``from_site``/``to_site``;
        or also by ``month`` (``YYYY-MM`` of the leg's end, UTC).
    since, until : datetime or ISO-8601 str, optional
        Keep the legs that end in ``[since, until)``.

    Returns
    -------
    list of dict
        One row per group: ``from``, ``to`` (+ ``from_site``, ``to_site`` or
        ``month``), ``count``, ``mean_hours``, ``p50_hours``, ``p90_hours``,
        ``max_hours``, and ``wait_hours``, ``transit_hours``: their averages
        over the legs that had a dispatch (``None`` if none did). Sorted by
        month, then stage order, then sites.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     rows = delays(ledger)
    >>> [(r["from"], r["to"], r["count"], r["p50_hours"]) for r in rows][:3]
    [('harvest', 'drying', 26, 330.25), ('drying', 'gatherer_qc', 26, 144.375), ('gatherer_qc', 'hq_qc', 11, 384.667)]
    >>> row = next(r for r in rows if r["to"] == "dry_mill")  # three of four were trucked
    >>> row["count"], row["mean_hours"], row["wait_hours"], row["transit_hours"]
    (4, 304.312, 277.861, 24.306)
    """
    if by not in ("stage", "site", "month"):
        raise ValueError(f"by must be 'stage', 'site' or 'month', not {by!r}")
    groups, trucks = _grouped_legs(ledger, by, _bound(since), _bound(until))
    rows = []
    for key in sorted(groups, key=lambda k: _group_order(k, by)):
        if by == "month":
            head: JSON = {"month": key[0], "from": key[1], "to": key[2]}
        else:
            head = {"from": key[0], "to": key[1]}
            if by == "site":
                head.update(from_site=key[2], to_site=key[3])
        rows.append(head | _stats(groups[key], trucks.get(key)))
    return rows


def bottlenecks(
    ledger: Ledger,
    top: int = 10,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> list[JSON]:
    """The routes that lose the most lot-hours above what is typical for their leg.

    A route is a (from stage, to stage, from site, to site) group of legs.
    Its baseline is the p50 of the same stage-to-stage leg over all routes,
    so a route is penalised only for exceeding what is typical for that
    step; its excess is the sum over its legs of the hours above the baseline.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    top : int, optional (default 10)
        How many routes to return.
    since, until : datetime or ISO-8601 str, optional
        Keep the legs that end in ``[since, until)``; baselines come from the
        same legs.

    Returns
    -------
    list of dict
        The keys of :func:`delays` ``by="site"``, plus ``baseline_hours``,
        ``excess_hours`` and ``rank`` (1 = worst). Only routes with some
        excess are listed, worst first.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     worst = bottlenecks(ledger, top=1)[0]
    >>> worst["from_site"], worst["to_site"], worst["baseline_hours"], worst["excess_hours"]
    ('gatherer:ELPALTO-01', 'hq:JUMARP', 384.667, 694.667)
    """
    # Hours come from a scan without dispatches and arrivals (they only split
    # a leg into transit and waiting); the returned routes' lots are walked
    # again with them for their transit and wait hours.
    lo, hi = _bound(since), _bound(until)
    with _collector_paused():
        ids, hours_by, leg_lots, leg_ids = _route_legs(ledger, lo, hi)
    routes = dict(zip(ids, hours_by, strict=True))
    pooled: dict[tuple[str, ...], list[float]] = {}
    for key, hs in routes.items():
        pooled.setdefault(key[:2], []).extend(hs)
    baseline = {pair: _quantile(sorted(hours), 0.5) for pair, hours in pooled.items()}
    negs: list[float] = []  # minus the rounded excess, the first sort key
    excesses: list[float] = []
    keys: list[tuple[str, ...]] = []
    for key, hs in routes.items():
        base = baseline[key[:2]]
        if len(hs) == 1:  # most routes: the sum below, without a generator
            excess = hs[0] - base if hs[0] > base else 0.0
        else:
            excess = sum(h - base for h in hs if h > base)
        if excess > 1e-9:
            negs.append(-_h(excess))
            excesses.append(excess)
            keys.append(key)
    cut = heapq.nsmallest(top, negs)[-1] if 0 < top < len(negs) else None
    ranked = [  # only the routes that can make the top are ordered
        (neg, *_group_order(key, "site"), excess, key)
        for neg, excess, key in zip(negs, excesses, keys, strict=True)
        if cut is None or neg <= cut
    ]
    ranked.sort(key=lambda r: r[:-2])
    wanted = {key for *_, key in ranked[:top]}
    wanted_ids = {ids[key] for key in wanted}
    lots = (lot for lot, i in zip(leg_lots, leg_ids, strict=True) if i in wanted_ids)
    trucks = _route_trucks(ledger, lots, wanted, lo, hi)
    rows = [  # statistics only for the routes returned
        {
            "from": key[0],
            "to": key[1],
            "from_site": key[2],
            "to_site": key[3],
            **_stats(routes[key], trucks.get(key)),
            "baseline_hours": _h(baseline[key[:2]]),
            "excess_hours": _h(excess),
        }
        for *_, excess, key in ranked[:top]
    ]
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def leg_hours(
    ledger: Ledger,
    by: str = "stage",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> list[JSON]:
    """Every leg's hours, grouped as :func:`delays` groups them, worst median first.

    The same groups as :func:`delays`, each with ``hours``: the durations of
    its legs, sorted, for drawing their distribution. Groups are ordered by
    p50, then p90, longest first.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     groups = leg_hours(ledger)
    >>> [(g["from"], g["to"], len(g["hours"])) for g in groups][:2]
    [('dry_mill', 'export', 5), ('gatherer_qc', 'hq_qc', 11)]
    """
    if by not in ("stage", "site", "month"):
        raise ValueError(f"by must be 'stage', 'site' or 'month', not {by!r}")
    groups: dict[tuple[str, ...], list[float]] = {}
    for leg in legs(ledger, since, until):
        key: tuple[str, ...] = (leg.from_stage, leg.to_stage)
        if by == "site":
            key += (leg.from_site, leg.to_site)
        elif by == "month":
            key += (leg.end[:7],)
        groups.setdefault(key, []).append(leg.hours)
    rows = []
    for key, hours in sorted(groups.items(), key=lambda kv: _group_order(kv[0], "site")):
        xs = sorted(hours)
        row: JSON = {"from": key[0], "to": key[1]}
        if by == "site":
            row.update(from_site=key[2], to_site=key[3])
        elif by == "month":
            row["month"] = key[2]
        row["hours"] = xs
        row["p50_hours"] = _h(_quantile(xs, 0.5))
        row["p90_hours"] = _h(_quantile(xs, 0.9))
        rows.append(row)
    rows.sort(key=lambda r: (-r["p50_hours"], -r["p90_hours"]))  # stable: ties keep stage order
    return rows


def excess_by_month(
    ledger: Ledger,
    top: int = 10,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> list[JSON]:
    """The excess lot-hours of the :func:`bottlenecks` routes, month by month.

    Same baselines and routes as :func:`bottlenecks` (with the same `top`,
    `since` and `until`); each leg's hours above its baseline are counted in
    the month (``YYYY-MM``, UTC) the leg ended, so a route's months add up to
    its ``excess_hours``.

    Returns
    -------
    list of dict
        ``rank``, ``from``, ``to``, ``from_site``, ``to_site``, ``month`` and
        ``excess_hours``, by rank and then month; months without excess are
        left out.
    """
    ranked = bottlenecks(ledger, top=top, since=since, until=until)
    wanted = {_route_key(r): r["rank"] for r in ranked}
    if not wanted:
        return []
    pooled: dict[tuple[str, str], list[float]] = {}
    kept: list[Leg] = []
    for leg in legs(ledger, since, until):
        pooled.setdefault((leg.from_stage, leg.to_stage), []).append(leg.hours)
        if (leg.from_stage, leg.to_stage, leg.from_site, leg.to_site) in wanted:
            kept.append(leg)
    baseline = {pair: _quantile(sorted(hours), 0.5) for pair, hours in pooled.items()}
    cells: dict[tuple[tuple[str, str, str, str], str], float] = {}
    for leg in kept:
        excess = leg.hours - baseline[(leg.from_stage, leg.to_stage)]
        if excess > 0:
            route = (leg.from_stage, leg.to_stage, leg.from_site, leg.to_site)
            cells[(route, leg.end[:7])] = cells.get((route, leg.end[:7]), 0.0) + excess
    rows = [
        {
            "rank": wanted[route],
            "from": route[0],
            "to": route[1],
            "from_site": route[2],
            "to_site": route[3],
            "month": month,
            "excess_hours": _h(hours),
        }
        for (route, month), hours in cells.items()
    ]
    rows.sort(key=lambda r: (r["rank"], r["month"]))
    return rows


def stuck(ledger: Ledger, as_of: datetime | str, *, min_kg: float = 0.0) -> list[JSON]:
    """Lots overdue for their next step: older than the p90 of the leg that usually follows.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    as_of : datetime or ISO-8601 str
        The moment to measure ages at (without an offset: UTC). Lots are
        judged on the ledger as it is now.
    min_kg : float, optional (default 0)
        Ignore lots with less than this many kg left.

    Returns
    -------
    list of dict
        Oldest first: ``lot``, ``stage``, ``site`` and ``time`` of its
        latest stage checkpoint, ``age_hours`` at `as_of`, ``next`` (the stage
        that most often follows; ties go to the earlier stage), ``p90_hours``
        of that leg, ``over_hours`` (age minus p90), ``kg_left`` and
        ``last_qc``. A stage no leg has ever left has no p90, so its lots are
        not listed.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     rows = stuck(ledger, "2025-10-31", min_kg=100)
    >>> [(r["lot"], r["stage"], r["next"], r["last_qc"]) for r in rows]
    [('APR-25-H0519-1', 'gatherer_qc', 'hq_qc', 'rejected'), ('MILL-25-0412-G2', 'dry_mill', 'export', None), ('MILL-25-0433-G2', 'dry_mill', 'export', None), ('MILL-25-0455-G2', 'dry_mill', 'export', None), ('JUM-25-HQ-009', 'hq_qc', 'dry_mill', 'accepted')]
    >>> rows[-1]["age_hours"], rows[-1]["p90_hours"]
    (1064.667, 334.625)
    """
    now = _key(as_of)
    pairs: dict[tuple[str, str], list[float]] = {}
    for leg in legs(ledger):
        pairs.setdefault((leg.from_stage, leg.to_stage), []).append(leg.hours)
    follows: dict[str, tuple[str, float]] = {}
    for stage in STAGE_ORDER:
        options = [(len(h), to) for (frm, to), h in pairs.items() if frm == stage]
        if options:
            _, to = max(options, key=lambda o: (o[0], -STAGE_ORDER[o[1]]))
            follows[stage] = (to, _quantile(sorted(pairs[(stage, to)]), 0.9))
    rows = []
    for lot, left, last_qc, kind, key, site in ledger.open_lot_checkpoints(STAGE_ORDER):
        if kind == "export" or left < min_kg or kind not in follows:
            continue
        nxt, p90 = follows[kind]
        age = _hours(key, now)
        if age > p90:
            rows.append(
                {
                    "lot": lot,
                    "stage": kind,
                    "site": site,
                    "time": _key_iso(key),
                    "age_hours": _h(age),
                    "next": nxt,
                    "p90_hours": _h(p90),
                    "over_hours": _h(age - p90),
                    "kg_left": round(left, 3),
                    "last_qc": last_qc,
                }
            )
    return rows


def timeline(ledger: Ledger, lot: str) -> JSON:
    """The critical path of a lot: at each merge, the input that arrived last.

    Walking back from `lot`, at the event that formed each lot the input
    whose latest checkpoint before that event is the latest is critical:
    it held the formed lot (and so the container) back. The path follows
    critical inputs back to a harvest. An export of part of an input lot is
    not a checkpoint of the rest of it, so it does not count as "ready".

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger, typically an export lot.

    Returns
    -------
    dict
        ``lot``; ``steps``: the checkpoints along the critical path in time
        order (lot, stage, time, site, hours since the step before);
        ``merges``: for each forming event on the path, latest first: lot
        (formed), stage, time, site, ``critical`` (the input lot that
        arrived last) and ``inputs`` (lot, kg, ready (the time of its latest
        checkpoint before the merge), ready_stage, ready_site,
        waited_hours, slack_hours (how much later it could have been without
        delaying the merge)); ``total_hours`` (first step to last);
        ``slowest`` (the longest step: lot, from, to, from_site, to_site,
        hours); ``voided``.

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
    ...     tl = timeline(ledger, "EXP-25-APR-02")
    >>> [(m["lot"], m["critical"]) for m in tl["merges"]][:2]
    [('EXP-25-APR-02', 'MILL-25-0455-G1'), ('MILL-25-0455-G1', 'APR-25-HQ-019')]
    >>> [(i["lot"], i["ready_stage"], i["slack_hours"]) for i in tl["merges"][0]["inputs"]]
    [('MILL-25-0455-G1', 'dry_mill', 0.0), ('MILL-25-0412-G1', 'dry_mill', 816.25)]
    >>> tl["slowest"]["from"], tl["slowest"]["to"], tl["slowest"]["hours"]
    ('dry_mill', 'export', 799.417)
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    path: list[tuple[str, StoredEvent]] = []  # latest first
    merges: list[JSON] = []
    code, cutoff = lot, None
    while True:
        own = [e for e in G.nodes[code].get("timeline", []) if e.role != "input"]
        if cutoff is not None:  # an input lot: its checkpoints up to the merge that used it
            own = [e for e in own if time_key(e.event.time) <= cutoff and _moves_lot(e)]
        path.extend((code, e) for e in reversed(own))
        preds = list(G.predecessors(code))
        if not preds:
            break
        merge_key = G.edges[preds[0], code]["time"]
        formed = next((e for e in own if e.role == "output"), None)
        ready: list[tuple[str, float, str, StoredEvent | None]] = []
        for src in preds:
            before = [
                e
                for e in G.nodes[src].get("timeline", [])
                if e.role != "input" and _moves_lot(e) and time_key(e.event.time) <= merge_key
            ]
            last = before[-1] if before else None
            key = time_key(last.event.time) if last else G.nodes[src].get("first_time", "")
            ready.append((key, G.edges[src, code]["kg"], src, last))
        ready.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
        crit_key = ready[0][0]
        merges.append(
            {
                "lot": code,
                "stage": formed.event.type if formed else None,
                "time": formed.event.time.isoformat() if formed else _key_iso(merge_key),
                "site": formed.event.site if formed else None,
                "critical": ready[0][2],
                "inputs": [
                    {
                        "lot": src,
                        "kg": kg,
                        "ready": last.event.time.isoformat() if last else _key_iso(key),
                        "ready_stage": last.event.type if last else None,
                        "ready_site": last.event.site if last else None,
                        "waited_hours": _h(_hours(key, merge_key)),
                        "slack_hours": _h(_hours(key, crit_key)),
                    }
                    for key, kg, src, last in ready
                ],
            }
        )
        code, cutoff = ready[0][2], merge_key
    path.reverse()
    steps: list[JSON] = []
    slowest: JSON | None = None
    for i, (code, e) in enumerate(path):
        hours = _hours(time_key(path[i - 1][1].event.time), time_key(e.event.time)) if i else None
        steps.append(
            {
                "lot": code,
                "stage": e.event.type,
                "time": e.event.time.isoformat(),
                "site": e.event.site,
                "hours": _h(hours) if hours is not None else None,
            }
        )
        if hours is not None and (slowest is None or hours > slowest["hours"]):
            prev = path[i - 1][1].event
            slowest = {
                "lot": code,
                "from": prev.type,
                "to": e.event.type,
                "from_site": prev.site,
                "to_site": e.event.site,
                "hours": _h(hours),
            }
    total = (
        _hours(time_key(path[0][1].event.time), time_key(path[-1][1].event.time)) if path else 0.0
    )
    return {
        "lot": lot,
        "steps": steps,
        "merges": merges,
        "total_hours": _h(total),
        "slowest": slowest,
        "voided": ledger.voided_for_lots(G.nodes),
    }


# --------------------------------------------------------------------------- helpers


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for one scan, and restore it as it was.

    The scan makes no reference cycles (reference counting frees all it
    drops), but each full collection on the way walks every container that
    lives on: with the collector on, ``bottlenecks`` at 1M events runs two or
    three of them, for nothing.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _stats(hours: Sequence[float], trucks: Sequence[float] | None) -> JSON:
    """Statistics of one group of legs (see :func:`_grouped_legs` for `trucks`)."""
    xs = sorted(hours)
    transits, waits = (trucks[0::2], trucks[1::2]) if trucks else ([], [])
    return {
        "count": len(xs),
        "mean_hours": _h(sum(xs) / len(xs)),
        "p50_hours": _h(_quantile(xs, 0.5)),
        "p90_hours": _h(_quantile(xs, 0.9)),
        "max_hours": _h(xs[-1]),
        "wait_hours": _h(sum(waits) / len(waits)) if waits else None,
        "transit_hours": _h(sum(transits) / len(transits)) if transits else None,
    }


def _quantile(xs: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolating linearly between closest ranks."""
    pos = (len(xs) - 1) * q
    lo, hi = floor(pos), ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _group_order(key: tuple[str, ...], by: str) -> tuple[Any, ...]:
    if by == "month":
        return (key[0], STAGE_ORDER[key[1]], STAGE_ORDER[key[2]])
    return (STAGE_ORDER[key[0]], STAGE_ORDER[key[1]], *key[2:])


def _route_key(row: JSON) -> tuple[str, ...]:
    return (row["from"], row["to"], row["from_site"], row["to_site"])


def _bound(value: datetime | str | None) -> str | None:
    return None if value is None else _key(value)


def _key(value: datetime | str) -> str:
    """A time as a ledger time key; naive dates and times are UTC."""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    return time_key(t if t.tzinfo is not None else t.replace(tzinfo=UTC))


def _hours(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 3600


def _h(x: float) -> float:
    return round(x, 3)


def _key_iso(key: str) -> str:
    return datetime.fromisoformat(key).isoformat()


def _kg_text(x: float | None) -> str:
    return "?" if x is None else f"{x:,.3f}".rstrip("0").rstrip(".")


def _moves_lot(e: StoredEvent) -> bool:
    """Whether an own event is a checkpoint of the whole lot: not an export of part of it."""
    return not (e.role == "subject" and e.event.type == "export")


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


def _harvests(G: Any) -> dict[str, Harvest]:
    """The harvest that created each lot of `G` created by one."""
    out: dict[str, Harvest] = {}
    for code in G:
        for e in G.nodes[code].get("timeline", []):
            if e.role == "output" and isinstance(e.event, Harvest):
                out[code] = e.event
    return out


def _unknown_origins(G: Any, harvests: dict[str, Harvest]) -> list[str]:
    """Lots of `G` not created by a harvest and with no input lots, sorted."""
    return sorted(n for n in G if G.in_degree(n) == 0 and n not in harvests)


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


def _round_geometry(geometry: JSON) -> JSON:
    def pos(p: list[float]) -> list[float]:
        return [round(p[0], COORD_DECIMALS), round(p[1], COORD_DECIMALS)]

    coords = geometry["coordinates"]
    if geometry["type"] == "Point":
        return {"type": "Point", "coordinates": pos(coords)}
    return {"type": geometry["type"], "coordinates": [[pos(p) for p in ring] for ring in coords]}


def _problem(lot: str, h: Harvest, problem: str, message: str) -> JSON:
    return {
        "lot": lot,
        "producer": h.producer,
        "plot_id": h.plot.id,
        "problem": problem,
        "message": message,
    }


# --------------------------------------------------------------------------- event ids


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
