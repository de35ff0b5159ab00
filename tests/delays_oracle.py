"""The test oracle: lottrace.delays as it was before the legs table (session 8), verbatim
but for its means, now of whole microseconds, exact (as lottrace.delays defines them).

It scans every (lot, event) row through ``Ledger.leg_scan``; tests compare the
legs-table implementation with it, JSON for JSON. Kept in tests/, not the library.

Delay analytics over the whole ledger: legs, delays, bottlenecks, stuck lots.

Each function streams one scan of the ledger's lot timelines (ordered by lot
and time) and returns plain data. Times in answers are ISO-8601: an event's
own time with the offset it was logged with, or UTC (``+00:00``) where the
answer is about a row rather than an event.

Definitions
-----------
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

import heapq
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import ceil, floor, fsum
from typing import Any

from lottrace.events import STAGE_ORDER
from lottrace.gcpause import collector_paused
from lottrace.ledger import Ledger
from lottrace.masterdata import site_info, sites
from lottrace.rules import time_key

__all__ = [
    "Leg",
    "bottlenecks",
    "delays",
    "excess_by_month",
    "leg_hours",
    "legs",
    "stuck",
]

JSON = dict[str, Any]


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
        One row per group: ``from``, ``to`` (+ ``from_site``, ``to_site``,
        ``from_site_name``, ``to_site_name`` (the sites' names in partners'
        master data, or ``None``; see ``masterdata.py``) or ``month``), ``count``, ``mean_hours``, ``p50_hours``, ``p90_hours``,
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
    known = sites(ledger) if by == "site" else {}
    rows = []
    for key in sorted(groups, key=lambda k: _group_order(k, by)):
        if by == "month":
            head: JSON = {"month": key[0], "from": key[1], "to": key[2]}
        else:
            head = {"from": key[0], "to": key[1]}
            if by == "site":
                head.update(from_site=key[2], to_site=key[3])
                for end, site in (("from", key[2]), ("to", key[3])):
                    info = site_info(known, site)
                    head[f"{end}_site_name"] = info.name if info is not None else None
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
        The keys of :func:`delays` ``by="site"`` (less the site names),
        plus ``baseline_hours``,
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
    with collector_paused():
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
            excess = fsum(h - base for h in hs if h > base)
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


def _stats(hours: Sequence[float], trucks: Sequence[float] | None) -> JSON:
    """Statistics of one group of legs (see :func:`_grouped_legs` for `trucks`)."""
    xs = sorted(hours)
    transits, waits = (trucks[0::2], trucks[1::2]) if trucks else ([], [])
    return {  # means of whole microseconds, exact (as lottrace.delays defines them now)
        "count": len(xs),
        "mean_hours": _h(_us_sum(xs) / len(xs) / _US),
        "p50_hours": _h(_quantile(xs, 0.5)),
        "p90_hours": _h(_quantile(xs, 0.9)),
        "max_hours": _h(xs[-1]),
        "wait_hours": _h(_us_sum(waits) / len(waits) / _US) if waits else None,
        "transit_hours": _h(_us_sum(transits) / len(transits) / _US) if transits else None,
    }


_US = 3_600_000_000


def _us_sum(hours: Sequence[float]) -> int:
    return sum(round(h * _US) for h in hours)


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
