"""The analysts' dashboard: where coffee waits, as data, plain SVG charts and CSV.

:func:`dashboard` answers, for the legs a :class:`Filters` keeps (a season, a
cooperative's sites, one route, a time window):

``delays``
    leg delays by route over time: for the routes drawn (the worst
    bottlenecks first, then the busiest), each month's ``count``, ``p50_hours``
    and ``p90_hours`` of the legs that ended in it;
``bottlenecks``
    the routes that lose the most lot-hours above the median of their
    stage-to-stage leg (the definition of :func:`lottrace.delays.bottlenecks`,
    over the kept legs: with no filter the two answers are the same);
``stuck``
    :func:`lottrace.delays.stuck` at ``as_of`` (the window's end, else now;
    from the legs and open lots kept for the head, so a new moment costs a
    loop over the open lots, not a scan),
    cut to the cooperative's lots and the route's ends;
``map``
    every site with a position (master data's coordinates; a farm without
    any is placed at its plot, as harvests give it) and the busiest routes
    between placed sites, each coloured by how its median leg compares with
    the median of the same stage-to-stage leg everywhere (``ratio``).

A *route* is a (from stage, to stage, from site, to site) group of legs (see
:mod:`lottrace.delays` for legs); on the map, the stage pairs between two
sites are drawn as one line. A *season* is a calendar year of legs' ends (a
Peruvian harvest, April to October, falls in one year).

Every leg of the ledger is read once per ledger head and kept
(:mod:`lottrace.memo`); filtering and grouping them is what a request costs
when nothing was appended. :func:`svg` draws each chart with presentation
attributes only (no ``style``: pages forbid inline styles), every text
escaped; :func:`to_csv` writes each chart's rows, the same values as the JSON.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .delays import Leg, legs, next_stages, stuck_among
from .events import STAGE_ORDER
from .ledger import Ledger, StoredEvent
from .masterdata import site_info, sites
from .memo import ANSWERS, GROWING, WHOLE, Memo

__all__ = [
    "CHARTS",
    "CSV_COLUMNS",
    "Filters",
    "all_legs",
    "dashboard",
    "harvest_points",
    "site_positions",
    "svg",
    "to_csv",
]

JSON = dict[str, Any]

#: The charts a dashboard answer holds, each with its CSV.
CHARTS = ("delays", "bottlenecks", "stuck", "map")
#: How many routes the delay chart draws, the ranking lists, the map draws, stuck lots listed.
DRAWN_ROUTES, TOP, MAP_ROUTES, STUCK_ROWS, ROUTE_CHOICES = 6, 10, 60, 100, 200
#: A route's ``ratio`` up to the first bound is ``ok``, up to the second ``slow``, else ``late``.
LEVELS = ((1.25, "ok"), (2.0, "slow"), (math.inf, "late"))
COLOURS = {"ok": "#1b7837", "slow": "#d98e04", "late": "#b2182b"}
#: Okabe and Ito's colour-blind-safe palette, for the delay chart's lines.
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")

CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "delays": (
        "route",
        "from",
        "to",
        "from_site",
        "to_site",
        "month",
        "count",
        "p50_hours",
        "p90_hours",
    ),
    "bottlenecks": (
        "rank",
        "from",
        "to",
        "from_site",
        "to_site",
        "count",
        "mean_hours",
        "p50_hours",
        "p90_hours",
        "max_hours",
        "baseline_hours",
        "excess_hours",
    ),
    "stuck": (
        "lot",
        "stage",
        "site",
        "time",
        "age_hours",
        "next",
        "p90_hours",
        "over_hours",
        "kg_left",
        "last_qc",
    ),
    "map": (
        "from_site",
        "to_site",
        "from_name",
        "to_name",
        "count",
        "p50_hours",
        "ratio",
        "level",
        "from_latitude",
        "from_longitude",
        "to_latitude",
        "to_longitude",
    ),
}

STRINGS: dict[str, dict[str, str]] = {
    "es": {
        "delays": "Demora de los tramos por ruta y mes (mediana, horas)",
        "bottlenecks": "Cuellos de botella: horas-lote sobre la mediana del tramo",
        "map": "Sitios y rutas, coloreados por demora",
        "hours": "horas",
        "month": "mes",
        "none": "Sin tramos para estos filtros.",
        "ok": "a tiempo (≤ 1,25 × mediana)",
        "slow": "lenta (≤ 2 × mediana)",
        "late": "muy lenta (> 2 × mediana)",
        "legs": "tramos",
        "harvest": "cosecha",
        "drying": "secado",
        "gatherer_qc": "acopio",
        "hq_qc": "CC en sede",
        "dry_mill": "trilla",
        "export": "exportación",
    },
    "en": {
        "delays": "Leg delays by route and month (median, hours)",
        "bottlenecks": "Bottlenecks: lot-hours above the leg's median",
        "map": "Sites and routes, coloured by delay",
        "hours": "hours",
        "month": "month",
        "none": "No legs for these filters.",
        "ok": "on time (≤ 1.25 × median)",
        "slow": "slow (≤ 2 × median)",
        "late": "very slow (> 2 × median)",
        "legs": "legs",
        "harvest": "harvest",
        "drying": "drying",
        "gatherer_qc": "gatherer QC",
        "hq_qc": "HQ QC",
        "dry_mill": "dry mill",
        "export": "export",
    },
}


@dataclass(frozen=True)
class Filters:
    """Which legs the dashboard looks at (every field optional: None keeps all)."""

    season: str | None = None  #: a year, ``2025``: legs that ended in it (UTC)
    coop: str | None = None  #: a cooperative's HQ site: legs of the lots that went through it
    route: tuple[str, str] | None = None  #: (from site, to site)
    since: str | None = None  #: legs that ended at or after (a time key)
    until: str | None = None  #: legs that ended before (a time key)
    as_of: datetime | None = None  #: when stuck lots are judged (default: until, else now)

    def key(self) -> tuple[Any, ...]:
        return (self.season, self.coop, self.route, self.since, self.until, self.as_of)


#: Whole-ledger leg lists are big: only the newest two heads' are kept.
_LEGS = Memo(2)


def all_legs(ledger: Ledger) -> list[Leg]:
    """Every leg of the ledger as it is now, kept until its head moves."""
    return _LEGS.get_or_make(ledger.head(), lambda: list(legs(ledger)))


def ledger_sites(ledger: Ledger) -> list[str]:
    """:meth:`Ledger.sites` (a scan of the log), kept per head: the dashboard asks twice and
    every page's ``/api/me`` once."""
    return ANSWERS.get_or_make((ledger.head(), "sites"), ledger.sites)


def open_lot_rows(ledger: Ledger) -> list[tuple[str, float, str | None, str, str, str]]:
    """:meth:`Ledger.open_lot_checkpoints` (every lot with kg left, its last checkpoint), kept
    per head: the dashboard's stuck lots and the field form's lots to draw from read it."""
    return WHOLE.get_or_make(
        (ledger.head(), "open-lots"), lambda: ledger.open_lot_checkpoints(STAGE_ORDER)
    )


def site_positions(ledger: Ledger) -> dict[str, tuple[float, float, str | None]]:
    """``{site: (longitude, latitude, name)}`` for every site with a position.

    Master data's coordinates first; a farm without them is placed where its
    first harvest's plot is (a point, or the mean of a polygon's outer ring).
    The harvests' places are kept from one head to the next and extended
    with the harvests appended since (:func:`harvest_points`); master data
    is read again for each head.
    """
    return ANSWERS.get_or_make((ledger.head(), "site-positions"), lambda: _positions(ledger))


def _positions(ledger: Ledger) -> dict[str, tuple[float, float, str | None]]:
    found: dict[str, tuple[float, float, str | None]] = {
        site: (lon, lat, None) for site, (lon, lat) in harvest_points(ledger).items()
    }
    known = sites(ledger)
    for site in list(found) + [s for s in ledger_sites(ledger) if s not in found]:
        info = site_info(known, site)
        if info is not None and info.latitude is not None and info.longitude is not None:
            found[site] = (info.longitude, info.latitude, info.name)
        elif info is not None and site in found:
            lon, lat, _ = found[site]
            found[site] = (lon, lat, info.name)
    return found


def harvest_points(ledger: Ledger) -> dict[str, tuple[float, float]]:
    """``{site: (longitude, latitude)}`` of each site's first non-void harvest with a plot
    that can be placed, in log order.

    Kept per ledger and extended on a new head with only the events appended
    since (:class:`lottrace.memo.Growing`): a later harvest never moves a site
    already placed, so appends add sites and change none. Made again from
    every harvest when a ``correction`` is among them (it may void the
    harvest that placed a site; no other event type voids one) or one of them
    is already void. Master data is not read here (see :func:`site_positions`).
    """
    return GROWING.get(
        ledger,
        (ledger.genesis, "harvest-points"),
        lambda: _add_points({}, ledger.events_of_types(["harvest"])),
        _extend_points,
    )


def _extend_points(
    old: dict[str, tuple[float, float]], events: list[StoredEvent]
) -> dict[str, tuple[float, float]] | None:
    if any(s.void or s.event.type == "correction" for s in events):
        return None
    harvests = [s for s in events if s.event.type == "harvest"]
    return _add_points(dict(old), harvests) if harvests else old


def _add_points(
    found: dict[str, tuple[float, float]], harvests: Iterable[StoredEvent]
) -> dict[str, tuple[float, float]]:
    for stored in harvests:
        ev = stored.event
        if stored.void or ev.site in found:
            continue
        plot = ev.field("plot")
        geometry = getattr(plot, "geometry", None)
        point = _centre(geometry.model_dump()) if geometry is not None else None
        if point is not None:
            found[ev.site] = point
    return found


def _centre(geometry: JSON) -> tuple[float, float] | None:
    try:
        if geometry.get("type") == "Point":
            lon, lat = geometry["coordinates"][:2]
            return float(lon), float(lat)
        if geometry.get("type") == "Polygon":
            ring = geometry["coordinates"][0][:-1] or geometry["coordinates"][0]
            return (
                sum(float(p[0]) for p in ring) / len(ring),
                sum(float(p[1]) for p in ring) / len(ring),
            )
    except (TypeError, ValueError, IndexError, KeyError, ZeroDivisionError):
        return None
    return None


def cooperatives(ledger: Ledger) -> list[JSON]:
    """The cooperatives the dashboard filters by: each ``hq:`` site (a cooperative's
    headquarters, as lottrace names sites) with its master-data name, if any."""

    def make() -> list[JSON]:
        where = site_positions(ledger)
        hqs = sorted(s for s in ledger_sites(ledger) if s.startswith("hq:"))
        return [{"site": s, "name": where[s][2] if s in where else None} for s in hqs]

    return ANSWERS.get_or_make((ledger.head(), "coops"), make)


def coop_lots_of(ledger: Ledger, hq: str) -> frozenset[str]:
    """The lots that went through the cooperative's HQ ``hq``, with their upstream (back to
    the harvests) and downstream (to the exports): whose legs its filter keeps."""

    def make() -> frozenset[str]:
        there = {g.lot for g in all_legs(ledger) if hq in (g.from_site, g.to_site)}
        found = set(there)
        for lot in there:
            for direction in ("up", "down"):
                for src, dst, *_ in ledger.lineage_links(lot, direction=direction):
                    found.update((src, dst))
        return frozenset(found)

    return ANSWERS.get_or_make((ledger.head(), "coop-lots", hq), make)


# --------------------------------------------------------------------------- the answer


def dashboard(ledger: Ledger, filters: Filters | None = None) -> JSON:
    """The dashboard's data for the legs ``filters`` keeps (see the module docstring).

    Returns ``legs`` (how many were kept), ``seasons`` and ``routes`` (the
    choices the filters offer: every season, the busiest routes of the
    season, most legs first), ``delays``, ``bottlenecks``, ``stuck``,
    ``stuck_total`` and ``map``. Kept per ledger head and filters (the stuck
    lots also per ``as_of``, to the minute: a dashboard without a window is
    judged now, and a minute later the legs' part is reused).

    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     d = dashboard(ledger)
    >>> d["seasons"], d["bottlenecks"][0]["from_site"], d["bottlenecks"][0]["excess_hours"]
    (['2025'], 'gatherer:ELPALTO-01', 694.667)
    """
    f = filters or Filters()
    if f.as_of is None:  # stuck lots are judged at the window's end, else now (to the minute)
        when = _parse_key(f.until) if f.until else datetime.now(UTC)
        f = replace(f, as_of=when.replace(second=0, microsecond=0))
    head = ledger.head()
    by_legs = ANSWERS.get_or_make(
        (head, "dashboard", replace(f, as_of=None).key()), lambda: _answer(ledger, f)
    )

    def with_stuck() -> JSON:
        coop_lots = coop_lots_of(ledger, f.coop) if f.coop is not None else None
        rows = _stuck(ledger, f, coop_lots)
        return by_legs | {"stuck": rows[:STUCK_ROWS], "stuck_total": len(rows)}

    return ANSWERS.get_or_make((head, "dashboard-stuck", f.key()), with_stuck)


@dataclass
class _Table:
    """Every leg of one head as parallel columns, routes and site pairs numbered: grouping by
    an int is what makes a new filter cheap (a tuple's hash is computed again each time)."""

    lot: list[str]
    end: list[str]
    hours: list[float]
    year: list[str]
    month: list[str]
    rid: list[int]  #: each leg's route number
    sp: list[int]  #: each leg's site-pair number
    routes: list[tuple[str, str, str, str]]  #: by number
    route_sp: list[int]  #: each route's site pair
    sitepairs: list[tuple[str, str]]  #: by number


def _table(ledger: Ledger) -> _Table:
    def make() -> _Table:
        t = _Table([], [], [], [], [], [], [], [], [], [])
        route_ids: dict[tuple[str, str, str, str], int] = {}
        sp_ids: dict[tuple[str, str], int] = {}
        texts: dict[str, str] = {}
        for g in all_legs(ledger):
            key = (g.from_stage, g.to_stage, g.from_site, g.to_site)
            r = route_ids.get(key)
            if r is None:
                pair = (g.from_site, g.to_site)
                sp = sp_ids.get(pair)
                if sp is None:
                    sp = sp_ids[pair] = len(t.sitepairs)
                    t.sitepairs.append(pair)
                r = route_ids[key] = len(t.routes)
                t.routes.append(key)
                t.route_sp.append(sp)
            t.lot.append(g.lot)
            t.end.append(g.end)
            t.hours.append(g.hours)
            t.year.append(texts.setdefault(g.end[:4], g.end[:4]))
            t.month.append(texts.setdefault(g.end[:7], g.end[:7]))
            t.rid.append(r)
            t.sp.append(t.route_sp[r])
        return t

    return WHOLE.get_or_make((ledger.head(), "leg-table"), make)


def _answer(ledger: Ledger, f: Filters) -> JSON:
    t = _table(ledger)
    seasons = sorted(set(t.year))
    idx: list[int] = list(range(len(t.lot)))
    if f.season is not None:
        idx = [i for i in idx if t.year[i] == f.season]
    if f.coop is not None:
        coop_lots = coop_lots_of(ledger, f.coop)
        idx = [i for i in idx if t.lot[i] in coop_lots]
    busiest = Counter(t.sp[i] for i in idx)
    choices = sorted(busiest, key=lambda p: (-busiest[p], t.sitepairs[p]))[:ROUTE_CHOICES]
    if f.route is not None:
        wanted = {p for p, pair in enumerate(t.sitepairs) if pair == f.route}
        idx = [i for i in idx if t.sp[i] in wanted]
    if f.since is not None:
        since = f.since
        idx = [i for i in idx if t.end[i] >= since]
    if f.until is not None:
        until = f.until
        idx = [i for i in idx if t.end[i] < until]
    hours_by: dict[int, list[float]] = {}
    for i in idx:
        hs = hours_by.get(t.rid[i])
        if hs is None:
            hours_by[t.rid[i]] = [t.hours[i]]
        else:
            hs.append(t.hours[i])
    baseline = _baselines(t, hours_by)
    ranked = _bottlenecks(t, hours_by, baseline)
    return {
        "legs": len(idx),
        "seasons": seasons,
        "coops": cooperatives(ledger),
        "routes": [
            {"from_site": t.sitepairs[p][0], "to_site": t.sitepairs[p][1], "count": busiest[p]}
            for p in choices
        ],
        "delays": _by_month(t, idx, hours_by, ranked),
        "bottlenecks": ranked[:TOP],
        "map": _map(ledger, t, idx, baseline),
    }


def _baselines(t: _Table, hours_by: dict[int, list[float]]) -> dict[tuple[str, str], float]:
    """The p50 of each stage-to-stage leg over the kept legs."""
    pooled: dict[tuple[str, str], list[float]] = {}
    for r, hs in hours_by.items():
        frm, to = t.routes[r][:2]
        pooled.setdefault((frm, to), []).extend(hs)
    return {pair: _quantile(sorted(hs), 0.5) for pair, hs in pooled.items()}


def _bottlenecks(
    t: _Table, hours_by: dict[int, list[float]], baseline: dict[tuple[str, str], float]
) -> list[JSON]:
    excesses: list[tuple[float, int]] = []
    for r, hs in hours_by.items():
        frm, to = t.routes[r][:2]
        base = baseline[(frm, to)]
        excess = sum(h - base for h in hs if h > base)
        if excess > 1e-9:
            excesses.append((excess, r))
    # statistics only for the routes that can make the top (ties at the cut kept)
    if len(excesses) > TOP:
        cut = sorted((_h(x) for x, _ in excesses), reverse=True)[TOP - 1]
        excesses = [(x, r) for x, r in excesses if _h(x) >= cut]
    rows: list[JSON] = []
    for excess, r in excesses:
        key = t.routes[r]
        base = baseline[(key[0], key[1])]
        xs = sorted(hours_by[r])
        rows.append(
            {
                "from": key[0],
                "to": key[1],
                "from_site": key[2],
                "to_site": key[3],
                "count": len(xs),
                "mean_hours": _h(sum(xs) / len(xs)),
                "p50_hours": _h(_quantile(xs, 0.5)),
                "p90_hours": _h(_quantile(xs, 0.9)),
                "max_hours": _h(xs[-1]),
                "baseline_hours": _h(base),
                "excess_hours": _h(excess),
            }
        )
    rows.sort(
        key=lambda r: (
            -r["excess_hours"],
            STAGE_ORDER[r["from"]],
            STAGE_ORDER[r["to"]],
            r["from_site"],
            r["to_site"],
        )
    )
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _by_month(
    t: _Table, idx: list[int], hours_by: dict[int, list[float]], ranked: list[JSON]
) -> list[JSON]:
    number = {t.routes.index(_key_of(r)): n for n, r in enumerate(ranked[:DRAWN_ROUTES], 1)}
    if len(number) < DRAWN_ROUTES:
        by_count = sorted(hours_by, key=lambda r: (-len(hours_by[r]), t.routes[r]))
        for r in by_count:
            if len(number) == DRAWN_ROUTES:
                break
            number.setdefault(r, len(number) + 1)
    cells: dict[tuple[int, str], list[float]] = {}
    for i in idx:
        n = number.get(t.rid[i])
        if n is not None:
            cells.setdefault((n, t.month[i]), []).append(t.hours[i])
    drawn = {n: t.routes[r] for r, n in number.items()}
    rows = []
    for (n, month), hs in sorted(cells.items()):
        xs = sorted(hs)
        key = drawn[n]
        rows.append(
            {
                "route": n,
                "from": key[0],
                "to": key[1],
                "from_site": key[2],
                "to_site": key[3],
                "month": month,
                "count": len(xs),
                "p50_hours": _h(_quantile(xs, 0.5)),
                "p90_hours": _h(_quantile(xs, 0.9)),
            }
        )
    return rows


def _key_of(row: JSON) -> tuple[str, str, str, str]:
    return (row["from"], row["to"], row["from_site"], row["to_site"])


def _stuck(ledger: Ledger, f: Filters, lots: frozenset[str] | None) -> list[JSON]:
    when = f.as_of or datetime.now(UTC)
    head = ledger.head()
    follows = ANSWERS.get_or_make((head, "next-stages"), lambda: next_stages(all_legs(ledger)))
    rows = stuck_among(open_lot_rows(ledger), follows, when)
    out = []
    for row in rows:
        if lots is not None and row["site"] != f.coop and row["lot"] not in lots:
            continue
        if f.route is not None and row["site"] not in f.route:
            continue
        out.append(row)
    return out


def _map(ledger: Ledger, t: _Table, idx: list[int], baseline: dict[tuple[str, str], float]) -> JSON:
    where = site_positions(ledger)
    by_sp: dict[int, list[int]] = {}
    for i in idx:
        legs_of = by_sp.get(t.sp[i])
        if legs_of is None:
            by_sp[t.sp[i]] = [i]
        else:
            legs_of.append(i)
    drawable = [
        sp
        for sp, (a, b) in ((sp, t.sitepairs[sp]) for sp in by_sp)
        if a in where and b in where and a != b
    ]
    drawable.sort(key=lambda sp: (-len(by_sp[sp]), t.sitepairs[sp]))
    pairs: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for sp in drawable[:MAP_ROUTES]:
        legs_of = by_sp[sp]
        hours = [t.hours[i] for i in legs_of]
        ratios = []
        for i in legs_of:
            frm, to = t.routes[t.rid[i]][:2]
            base = baseline[(frm, to)]
            ratios.append(t.hours[i] / base if base > 0 else 1.0)
        pairs[t.sitepairs[sp]] = (hours, ratios)
    routes: list[JSON] = []
    for a, b in pairs:
        hours, ratios = pairs[(a, b)]
        ratio = _h(_quantile(sorted(ratios), 0.5))
        routes.append(
            {
                "from_site": a,
                "to_site": b,
                "from_name": where[a][2],
                "to_name": where[b][2],
                "count": len(hours),
                "p50_hours": _h(_quantile(sorted(hours), 0.5)),
                "ratio": ratio,
                "level": next(name for bound, name in LEVELS if ratio <= bound),
                "from_latitude": where[a][1],
                "from_longitude": where[a][0],
                "to_latitude": where[b][1],
                "to_longitude": where[b][0],
            }
        )
    shown = sorted({r["from_site"] for r in routes} | {r["to_site"] for r in routes})
    ends = {site for sp in by_sp for site in t.sitepairs[sp]}
    unplaced = sorted(site for site in ends if site not in where)
    return {
        "sites": [
            {"site": s, "name": where[s][2], "longitude": where[s][0], "latitude": where[s][1]}
            for s in shown
        ],
        "routes": routes,
        "routes_total": sum(1 for sp in by_sp if len(set(t.sitepairs[sp])) == 2),  # not a dot
        "unplaced": unplaced[:20],
        "unplaced_total": len(unplaced),
    }


# --------------------------------------------------------------------------- CSV


def to_csv(answer: JSON, chart: str) -> str:
    """One chart's rows of a :func:`dashboard` answer as CSV (a header, then each row).

    Values are written as the JSON has them (a point for decimals, an empty
    cell for null), so a program reads the same numbers from either; a text
    that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``
    first) gets a leading ``'``.
    """
    if chart not in CHARTS:
        raise ValueError(f"chart must be one of {', '.join(CHARTS)}, not {chart!r}")
    rows = answer["map"]["routes"] if chart == "map" else answer[chart]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = CSV_COLUMNS[chart]
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _numeric(text) else text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- SVG


def svg(answer: JSON, chart: str, lang: str = "es") -> str:
    """One chart of a :func:`dashboard` answer as an SVG element (``delays``, ``bottlenecks``
    or ``map``), in Spanish or English."""
    t = STRINGS.get(lang, STRINGS["es"])
    if chart == "delays":
        return _delays_svg(answer["delays"], t)
    if chart == "bottlenecks":
        return _bottlenecks_svg(answer["bottlenecks"], t)
    if chart == "map":
        return _map_svg(answer["map"], t)
    raise ValueError(f"chart must be delays, bottlenecks or map, not {chart!r}")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _open(chart: str, width: int, height: int, title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="chart-{chart}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-{chart}-title" '
        f'font-family="system-ui,sans-serif" font-size="13">'
        f'<title id="chart-{chart}-title">{_e(title)}</title>'
    )


def _empty(chart: str, title: str, t: dict[str, str]) -> str:
    return (
        _open(chart, 560, 60, title)
        + f'<text x="8" y="34" fill="#3b332d">{_e(t["none"])}</text></svg>'
    )


def _nice(top: float) -> float:
    """A round number at or above ``top`` for an axis's end."""
    if top <= 0:
        return 1.0
    step = 10.0 ** math.floor(math.log10(top))
    for k in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if k * step >= top:
            return k * step
    return 10 * step


def _route_label(row: JSON) -> str:
    return f"{row['from_site']} → {row['to_site']}"


def _stages(row: JSON, t: dict[str, str]) -> str:
    """A route's stage pair in the chart's language (``acopio → CC en sede``)."""
    return f"{t.get(row['from'], row['from'])} → {t.get(row['to'], row['to'])}"


def _delays_svg(rows: list[JSON], t: dict[str, str]) -> str:
    if not rows:
        return _empty("delays", t["delays"], t)
    months = sorted({r["month"] for r in rows})
    routes = sorted({r["route"] for r in rows})
    labels = {r["route"]: r for r in rows}
    w, left, right, top = 560, 56, 32, 16
    plot_h = 220
    legend_y = top + plot_h + 44
    h = legend_y + 18 * len(routes) + 8
    ymax = _nice(max(r["p50_hours"] for r in rows))
    step = (w - left - right) / max(len(months) - 1, 1)

    def x(month: str) -> float:
        return left + (months.index(month) * step if len(months) > 1 else (w - left - right) / 2)

    def y(hours: float) -> float:
        return top + plot_h - hours / ymax * plot_h

    out = [_open("delays", w, h, t["delays"])]
    for k in range(5):
        v = ymax * k / 4
        out.append(
            f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#d9d2cb" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#3b332d">'
            f"{v:g}</text>"
        )
    out.append(
        f'<text x="12" y="{top + plot_h / 2:.0f}" fill="#3b332d" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.0f})" text-anchor="middle">'
        f"{_e(t['hours'])}</text>"
    )
    every = max(1, math.ceil(len(months) / 8))
    for i, month in enumerate(months):
        if i % every == 0:
            out.append(
                f'<text x="{x(month):.1f}" y="{top + plot_h + 18}" text-anchor="middle" '
                f'fill="#3b332d">{_e(month)}</text>'
            )
    for route in routes:
        colour = PALETTE[(route - 1) % len(PALETTE)]
        points = [r for r in rows if r["route"] == route]
        path = " ".join(f"{x(r['month']):.1f},{y(r['p50_hours']):.1f}" for r in points)
        out.append(
            f'<polyline class="route" data-route="{route}" points="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        for r in points:
            out.append(
                f'<circle class="point" cx="{x(r["month"]):.1f}" cy="{y(r["p50_hours"]):.1f}" '
                f'r="4" fill="{colour}" data-route="{route}" data-month="{_e(r["month"])}" '
                f'data-p50="{r["p50_hours"]}"><title>{_e(_route_label(r))}, {_e(r["month"])}: '
                f"{r['p50_hours']:g} h ({r['count']} {_e(t['legs'])})</title></circle>"
            )
        ly = legend_y + 18 * (route - 1)
        row = labels[route]
        out.append(
            f'<rect x="{left}" y="{ly - 10}" width="14" height="4" fill="{colour}"/>'
            f'<text x="{left + 20}" y="{ly}" fill="#1f1a17">{route}. '
            f"{_e(_route_label(row))} ({_e(_stages(row, t))})</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _bottlenecks_svg(rows: list[JSON], t: dict[str, str]) -> str:
    if not rows:
        return _empty("bottlenecks", t["bottlenecks"], t)
    w, left, right, bar, gap = 560, 8, 80, 14, 30
    h = 12 + len(rows) * (bar + gap)
    xmax = max(r["excess_hours"] for r in rows)
    out = [_open("bottlenecks", w, h, t["bottlenecks"])]
    for i, r in enumerate(rows):
        top = 8 + i * (bar + gap)
        width = max(1.0, r["excess_hours"] / xmax * (w - left - right))
        out.append(
            f'<text x="{left}" y="{top + 11}" fill="#1f1a17">{r["rank"]}. '
            f"{_e(_route_label(r))} ({_e(_stages(r, t))})</text>"
            f'<rect class="bar" x="{left}" y="{top + 16}" width="{width:.1f}" height="{bar}" '
            f'fill="#b2182b" data-rank="{r["rank"]}" data-excess="{r["excess_hours"]}">'
            f"<title>{_e(_route_label(r))}: {r['excess_hours']:g} h</title></rect>"
            f'<text x="{left + width + 6:.1f}" y="{top + 27}" fill="#1f1a17">'
            f"{r['excess_hours']:g} h</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _map_svg(data: JSON, t: dict[str, str]) -> str:
    if not data["routes"]:
        return _empty("map", t["map"], t)
    w, h, pad = 560, 440, 36
    points = [(s["longitude"], s["latitude"]) for s in data["sites"]]
    lat0 = sum(p[1] for p in points) / len(points)
    k = math.cos(math.radians(lat0))
    xs = [p[0] * k for p in points]
    ys = [-p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 0.01)
    scale = min((w - 2 * pad) / max(max(xs) - min(xs), 0.01), (h - 70 - 2 * pad) / span)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return w / 2 + (lon * k - cx) * scale, (h - 70) / 2 + (-lat - cy) * scale

    out = [_open("map", w, h, t["map"])]
    out.append(f'<rect x="0" y="0" width="{w}" height="{h - 70}" fill="#f4efe9"/>')
    most = max(r["count"] for r in data["routes"])
    for r in sorted(data["routes"], key=lambda r: r["count"]):
        x1, y1 = xy(r["from_longitude"], r["from_latitude"])
        x2, y2 = xy(r["to_longitude"], r["to_latitude"])
        width = 1.5 + 4.5 * math.log1p(r["count"]) / math.log1p(most)
        out.append(
            f'<line class="route {r["level"]}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" '
            f'y2="{y2:.1f}" stroke="{COLOURS[r["level"]]}" stroke-width="{width:.1f}" '
            f'stroke-linecap="round" data-from="{_e(r["from_site"])}" '
            f'data-to="{_e(r["to_site"])}" data-ratio="{r["ratio"]}">'
            f"<title>{_e(_route_label(r))}: {r['count']} {_e(t['legs'])}, p50 "
            f"{r['p50_hours']:g} h, × {r['ratio']:g}</title></line>"
        )
    boxes: list[tuple[float, float, float, float]] = []
    for s in sorted(data["sites"], key=lambda s: (s["site"].startswith("farm:"), s["site"])):
        x, y = xy(s["longitude"], s["latitude"])
        farm = s["site"].startswith("farm:")
        label = s["name"] or s["site"]
        out.append(
            f'<circle class="site" cx="{x:.1f}" cy="{y:.1f}" r="{2.5 if farm else 5}" '
            f'fill="{"#6f4e37" if farm else "#1f1a17"}" data-site="{_e(s["site"])}">'
            f"<title>{_e(label)}</title></circle>"
        )
        spot = None if farm else _label_spot(x, y, 6.4 * len(label), boxes, w)
        if spot is not None:
            tx, ty, anchor = spot
            out.append(
                f'<text x="{tx:.1f}" y="{ty:.1f}" text-anchor="{anchor}" fill="#1f1a17" '
                f'font-size="11">{_e(label)}</text>'
            )
    for i, level in enumerate(("ok", "slow", "late")):
        ly = h - 56 + 18 * i
        out.append(
            f'<line x1="12" x2="40" y1="{ly}" y2="{ly}" stroke="{COLOURS[level]}" '
            f'stroke-width="4"/><text x="48" y="{ly + 4}" fill="#1f1a17">{_e(t[level])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- helpers


def _label_spot(
    x: float, y: float, width: float, boxes: list[tuple[float, float, float, float]], w: float
) -> tuple[float, float, str] | None:
    """Where a site's label goes: beside its dot, the first place that overlaps no label
    already placed (or None: the dot keeps only its tooltip)."""
    for dy in (-6.0, 14.0, -20.0, 28.0):
        for anchor in ("start", "end"):
            left = x + 7 if anchor == "start" else x - 7 - width
            if left < 2 or left + width > w - 2:
                continue
            box = (left, y + dy - 11, left + width, y + dy + 2)
            if all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in boxes):
                boxes.append(box)
                return (x + 7 if anchor == "start" else x - 7), y + dy, anchor
    return None


def _quantile(xs: list[float], q: float) -> float:
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _h(x: float) -> float:
    return round(x, 3)


def _parse_key(key: str) -> datetime:
    t = datetime.fromisoformat(key)
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)
