"""Delay analytics over the whole ledger: legs, delays, bottlenecks, stuck lots.

Each function reads the legs the ledger keeps on append (its ``legs`` table,
see :mod:`lottrace.legwalk`), only those ending in the window asked for, and
returns plain data. Times in answers are ISO-8601: an event's
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
default): the p50 of 24 and 48 hours is 36. Means are exact: of the legs'
durations in whole microseconds (the precision times are kept to), summed as
integers, so no order of reading and no size of window changes them.

How a window is read
--------------------
``delays`` by stage or by month counts a window's legs from ``leg_days``
(each day's legs by stage pair and 4-hour band of hours, with their exact
sums; kept with the legs) and reads only the legs of the bands its
percentiles and maximum fall in, plus the legs of a part-day at either end of
the window: a month of 850,000 legs costs its days' counts (about 1,300
rows) and three or four bands' legs in each stage pair (tens of thousands
of rows), not 850,000 rows.
By site and ``bottlenecks`` read every leg in the window (a route has a
handful of legs; its rows are the answer).
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from math import ceil, floor, fsum
from typing import Any

from .errors import IntegrityViolation, InvalidInput
from .events import STAGE_ORDER
from .gcpause import collector_paused
from .ledger import Ledger
from .masterdata import site_info, sites
from .rules import time_key
from .storage import KEY_SEP, US_PER_HOUR, leg_band, leg_day_deltas

__all__ = [
    "Leg",
    "bottlenecks",
    "delays",
    "excess_by_month",
    "leg_hours",
    "legs",
    "next_stages",
    "stuck",
    "stuck_among",
    "window_bound",
]

JSON = dict[str, Any]

#: The years a window's bound may name: any season, and every offset can still move the
#: time to UTC (year 1 or 9999 with an offset cannot).
WINDOW_YEARS = (1900, 2200)


def window_bound(value: str, name: str = "") -> datetime:
    """A window's bound (``since``, ``until``, ``as-of``) from ISO 8601 text: a date or a
    time, in UTC when it names no offset. What the command line, the server and the web
    app take alike; :class:`InvalidInput` (naming ``name``) for anything else.

    >>> window_bound("2025-06-01").isoformat()
    '2025-06-01T00:00:00+00:00'
    >>> window_bound("0001-01-01T00:00+01:00", "since")
    Traceback (most recent call last):
    ...
    lottrace.errors.InvalidInput: since: '0001-01-01T00:00+01:00' is not a year between 1900 and 2200
    """
    lead = f"{name}: " if name else ""
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{lead}{value!r} is not a date or time like 2025-06-01") from None
    low, high = WINDOW_YEARS
    if not low <= t.year <= high:
        raise InvalidInput(f"{lead}{value!r} is not a year between {low} and {high}")
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


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
    """Stream every leg in the ledger, lot by lot, from the legs the ledger keeps.

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


def _leg_tuples(ledger: Ledger, lo: str | None, hi: str | None) -> Iterator[_LegTuple]:
    """The legs of :func:`legs` as tuples, ending in ``[lo, hi)``, by lot and then in order.

    Read from the ``legs`` table the ledger keeps on append
    (:meth:`Ledger.legs_ending`), with the bounds on its index of the legs'
    ends: a window costs in proportion to the legs in it, not the ledger.
    """
    for lot, _n, frm, fs, start, to, ts, end, hours, transit in ledger.legs_ending(lo, hi):
        yield lot, frm, fs, start, to, ts, end, hours, transit


#: Legs grouped by a key: their hours, and, for groups with trucked legs, the transit
#: hours and the hours of those legs, interleaved (transit, hours, transit, ...).
_Groups = tuple[dict[tuple[str, ...], "array[float]"], dict[tuple[str, ...], "array[float]"]]


def _grouped_legs(ledger: Ledger, by: str, lo: str | None, hi: str | None) -> _Groups:
    """The legs ending in ``[lo, hi)``, grouped as :func:`delays` groups them `by`.

    Each group's hours are a C array of doubles (the same floats), not a
    list: a whole-ledger read makes tens of thousands of groups, and the
    cyclic garbage collector walks every list that lives on, again on each
    of its passes, but never an array. Legs come in no particular order (an
    order would cost a sort of the whole window): every statistic is of
    sorted values or an exact sum (of whole microseconds), so the answer is the same
    whatever the order.
    """
    hours_of: dict[str, array[float]] = {}
    trucks_of: dict[str, array[float]] = {}
    for key, hours, transit in ledger.legs_grouped(by, lo, hi):
        hs = hours_of.get(key)
        if hs is None:
            hours_of[key] = array("d", (hours,))
        else:
            hs.append(hours)
        if transit is not None:
            tw = trucks_of.get(key)
            if tw is None:
                trucks_of[key] = array("d", (transit, hours))
            else:
                tw.append(transit)
                tw.append(hours)
    return (
        {tuple(k.split(KEY_SEP)): v for k, v in hours_of.items()},
        {tuple(k.split(KEY_SEP)): v for k, v in trucks_of.items()},
    )


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
    lo, hi = _bound(since), _bound(until)
    with ledger.snapshot():  # the days' counts and the bands' legs: one state of the ledger
        stats = _day_stats(ledger, by, lo, hi) if by != "site" else None
        if stats is None:
            stats = _leg_stats(ledger, by, lo, hi)
    known = sites(ledger) if by == "site" else {}
    rows = []
    for key in sorted(stats, key=lambda k: _group_order(k, by)):
        if by == "month":
            head: JSON = {"month": key[0], "from": key[1], "to": key[2]}
        else:
            head = {"from": key[0], "to": key[1]}
            if by == "site":
                head.update(from_site=key[2], to_site=key[3])
                for end, site in (("from", key[2]), ("to", key[3])):
                    info = site_info(known, site)
                    head[f"{end}_site_name"] = info.name if info is not None else None
        rows.append(head | stats[key])
    return rows


def _leg_stats(
    ledger: Ledger, by: str, lo: str | None, hi: str | None
) -> dict[tuple[str, ...], JSON]:
    """Each group's :func:`_stats`, from every leg ending in ``[lo, hi)``."""
    groups, trucks = _grouped_legs(ledger, by, lo, hi)
    return {key: _stats(hours, trucks.get(key)) for key, hours in groups.items()}


_MIDNIGHT = "T00:00:00.000000Z"


class _Counted:
    """One group of legs as ``leg_days`` counts it, with the part-day legs at the
    window's ends (``edge``: their hours by band), and the whole days it spans."""

    __slots__ = ("bands", "edge", "hi", "lo", "n", "transit_us", "trucked", "us", "wait_us")

    def __init__(self, lo: str | None, hi: str | None) -> None:
        self.bands: dict[int, int] = {}
        self.edge: dict[int, list[float]] = {}
        self.lo, self.hi = lo, hi
        self.n = self.us = self.trucked = self.transit_us = self.wait_us = 0

    def add(self, band: int, n: int, us: int, trucked: int, transit_us: int, wait_us: int) -> None:
        """Count legs in: a row of ``leg_days``, or its deltas for part-day legs."""
        self.bands[band] = self.bands.get(band, 0) + n
        self.n += n
        self.us += us
        self.trucked += trucked
        self.transit_us += transit_us
        self.wait_us += wait_us


def _counted_groups(
    ledger: Ledger, by: str, lo: str | None, hi: str | None
) -> dict[tuple[str, ...], _Counted] | None:
    """The legs ending in ``[lo, hi)`` counted by group (stage or month) and band: the whole
    days from ``leg_days``, the part-days' legs read; None for a window inside one day."""
    first = None if lo is None else _next_day(lo)
    last = None if hi is None else hi[:10]  # whole days end before hi's day
    if first is not None and last is not None and first > last:
        return None
    if first == _NO_DAY:  # a window opening on the last day time keys can write
        return None
    whole_lo = None if first is None else first + _MIDNIGHT
    whole_hi = None if last is None else last + _MIDNIGHT
    groups: dict[tuple[str, ...], _Counted] = {}

    def group(key: tuple[str, ...]) -> _Counted:
        g = groups.get(key)
        if g is None:
            glo, ghi = whole_lo, whole_hi
            if by == "month":  # the month's whole days in the window
                start, end = key[0] + "-01" + _MIDNIGHT, _next_month(key[0]) + _MIDNIGHT
                glo = start if glo is None else max(glo, start)
                ghi = end if ghi is None else min(ghi, end)
            g = groups[key] = _Counted(glo, ghi)
        return g

    for k, band, n, us, trucked, transit_us, wait_us in ledger.leg_days(by, first, last):
        if n <= 0:
            raise IntegrityViolation(
                f"{ledger.path}: leg_days holds a row of {n} legs ({k.replace(KEY_SEP, ' ')}, "
                f"band {band}): run 'lottrace verify'"
            )
        group(tuple(k.split(KEY_SEP))).add(band, n, us, trucked, transit_us, wait_us)
    edges = []
    if lo is not None and whole_lo is not None and lo < whole_lo:
        edges.append((lo, whole_lo))
    if hi is not None and whole_hi is not None and whole_hi < hi:
        edges.append((whole_hi, hi))
    part_days = [  # (end, from, to, hours, transit): as leg_days counts legs
        (g[7], g[2], g[5], g[8], g[9]) for elo, ehi in edges for g in ledger.legs_ending(elo, ehi)
    ]
    for (day, frm, to, band), deltas in leg_day_deltas((), part_days).items():
        group((day[:7], frm, to) if by == "month" else (frm, to)).add(band, *deltas)
    for end, frm, to, hours, _transit in part_days:
        g = group((end[:7], frm, to) if by == "month" else (frm, to))
        g.edge.setdefault(leg_band(hours), []).append(hours)
    return groups


def _day_stats(
    ledger: Ledger, by: str, lo: str | None, hi: str | None
) -> dict[tuple[str, ...], JSON] | None:
    """Each group's :func:`_stats` (by stage or month) from ``leg_days``, or None for a
    window inside one day (its legs are few: read them all).

    The whole days of the window come from ``leg_days``; the legs ending on a
    part-day at either end are read. A percentile's rank is found in the
    bands' counts, and only that band's legs in the window are read and
    sorted (the maximum's too: the top band).
    """
    groups = _counted_groups(ledger, by, lo, hi)
    if groups is None:
        return None
    return {key: _counted_stats(ledger, key[-2], key[-1], g) for key, g in groups.items()}


def _counted_stats(ledger: Ledger, frm: str, to: str, g: _Counted) -> JSON:
    """:func:`_stats` of a group counted by :func:`_counted_groups`: the values at the ranks
    the percentiles and the maximum need, read band by band."""
    ranked = _Ranked(ledger, frm, to, g)
    per_hour = _PER_HOUR
    return {
        "count": g.n,
        "mean_hours": _h(g.us / g.n / per_hour),
        "p50_hours": _h(ranked.quantile(0.5)),
        "p90_hours": _h(ranked.quantile(0.9)),
        "max_hours": _h(ranked.at(g.n - 1)),
        "wait_hours": _h(g.wait_us / g.trucked / per_hour) if g.trucked else None,
        "transit_hours": _h(g.transit_us / g.trucked / per_hour) if g.trucked else None,
    }


class _Ranked:
    """A counted group's legs by rank, each band read (and sorted) when first needed."""

    def __init__(self, ledger: Ledger, frm: str, to: str, g: _Counted) -> None:
        self.ledger, self.frm, self.to, self.g = ledger, frm, to, g
        self.order = sorted(g.bands)
        self.starts: dict[int, int] = {}  # band -> the rank of its first leg
        rank = 0
        for band in self.order:
            self.starts[band] = rank
            rank += g.bands[band]
        self.read: dict[int, list[float]] = {}

    def at(self, r: int) -> float:
        """The hours of the leg at rank ``r`` (0: the shortest)."""
        g = self.g
        band = self.order[_band_index(self.order, self.starts, r)]
        xs = self.read.get(band)
        if xs is None:
            xs = self.ledger.leg_hours_in_band(self.frm, self.to, band, g.lo, g.hi)
            xs += g.edge.get(band, ())
            xs.sort()
            if len(xs) != g.bands[band]:
                raise IntegrityViolation(
                    f"{self.ledger.path}: leg_days counts {g.bands[band]} {self.frm}-{self.to} "
                    f"legs in hours band {band} where the legs table has {len(xs)}: "
                    "run 'lottrace verify'"
                )
            self.read[band] = xs
        return xs[r - self.starts[band]]

    def quantile(self, q: float) -> float:
        """As :func:`_quantile` of the sorted hours."""
        pos = (self.g.n - 1) * q
        lo, hi = floor(pos), ceil(pos)
        x_lo = self.at(lo)
        return x_lo + (self.at(hi) - x_lo) * (pos - lo)


def _band_index(order: list[int], starts: dict[int, int], rank: int) -> int:
    """The index in ``order`` of the band holding ``rank`` (bands' first ranks ascend)."""
    lo, hi = 0, len(order) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[order[mid]] <= rank:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _next_day(key: str) -> str:
    """The first whole day at or after a time key (``YYYY-MM-DD``), or :data:`_NO_DAY`."""
    if key[10:] == _MIDNIGHT:
        return key[:10]
    if key[:10] == date.max.isoformat():
        return _NO_DAY
    return (date.fromisoformat(key[:10]) + timedelta(days=1)).isoformat()


#: The day after 9999-12-31, which ``date`` cannot hold: no whole day is left.
_NO_DAY = "9999-12-32"


def _next_month(month: str) -> str:
    """The first day of the month after ``YYYY-MM``."""
    y, m = int(month[:4]), int(month[5:7])
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}-01"


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
    lo, hi = _bound(since), _bound(until)
    with collector_paused():
        routes, trucks = _grouped_legs(ledger, "site", lo, hi)
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
    with ledger.snapshot():
        follows = _counted_next_stages(ledger)
        lots = ledger.open_lot_checkpoints(STAGE_ORDER)
    return stuck_among(lots, follows, as_of, min_kg=min_kg)


def _counted_next_stages(ledger: Ledger) -> dict[str, tuple[str, float]]:
    """:func:`next_stages` of every leg, from ``leg_days`` and the p90s' bands only."""
    groups = _counted_groups(ledger, "stage", None, None) or {}  # (None: never, no window)
    follows: dict[str, tuple[str, float]] = {}
    for stage in STAGE_ORDER:
        options = [(g.n, to) for (frm, to), g in groups.items() if frm == stage]
        if options:
            _, to = max(options, key=lambda o: (o[0], -STAGE_ORDER[o[1]]))
            follows[stage] = (to, _Ranked(ledger, stage, to, groups[(stage, to)]).quantile(0.9))
    return follows


def next_stages(found: Iterable[Leg]) -> dict[str, tuple[str, float]]:
    """For each stage some leg leaves, the stage that most often follows it (ties go to the
    earlier stage) and the p90 hours of that leg: what :func:`stuck` judges lots by."""
    pairs: dict[tuple[str, str], list[float]] = {}
    for leg in found:
        pairs.setdefault((leg.from_stage, leg.to_stage), []).append(leg.hours)
    follows: dict[str, tuple[str, float]] = {}
    for stage in STAGE_ORDER:
        options = [(len(h), to) for (frm, to), h in pairs.items() if frm == stage]
        if options:
            _, to = max(options, key=lambda o: (o[0], -STAGE_ORDER[o[1]]))
            follows[stage] = (to, _quantile(sorted(pairs[(stage, to)]), 0.9))
    return follows


def stuck_among(
    checkpoints: Iterable[tuple[str, float, str | None, str, str, str]],
    follows: dict[str, tuple[str, float]],
    as_of: datetime | str,
    *,
    min_kg: float = 0.0,
) -> list[JSON]:
    """:func:`stuck`'s rows from the ledger's open lots (``Ledger.open_lot_checkpoints``) and
    :func:`next_stages`: for a caller that keeps both and asks at many moments."""
    now = _key(as_of)
    rows = []
    for lot, left, last_qc, kind, key, site in checkpoints:
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
    us = sum(map(round, map(_PER_HOUR.__mul__, xs)))
    stats: JSON = {
        "count": len(xs),
        "mean_hours": _h(us / len(xs) / _PER_HOUR),
        "p50_hours": _h(_quantile(xs, 0.5)),
        "p90_hours": _h(_quantile(xs, 0.9)),
        "max_hours": _h(xs[-1]),
    }
    if trucks:
        transit_us = sum(map(round, map(_PER_HOUR.__mul__, trucks[0::2])))
        wait_us = sum(map(round, map(_PER_HOUR.__mul__, trucks[1::2]))) - transit_us
        k = len(trucks) // 2
        stats["wait_hours"] = _h(wait_us / k / _PER_HOUR)
        stats["transit_hours"] = _h(transit_us / k / _PER_HOUR)
    else:
        stats["wait_hours"] = stats["transit_hours"] = None
    return stats


#: Microseconds in an hour, as a float (exact): ``h * _PER_HOUR`` is ``h * US_PER_HOUR``.
_PER_HOUR = float(US_PER_HOUR)


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
