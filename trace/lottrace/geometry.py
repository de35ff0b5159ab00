"""Plot geometry checks, offline, with shapely (GEOS): what the EU information system rejects.

:func:`plot_problems` checks registered plots (:mod:`lottrace.plot_registry`)
one by one and pairwise; :func:`check_plots` adds every lot each problem
blocks (the plot's harvest lots and every lot formed from them).

Areas are computed on a local equirectangular projection around each
geometry's centre (a plot spans metres to a few kilometres, where its error
is far below the tolerance); countries are checked against a bounding box.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, shape

from .graph import descendants_graph
from .ledger import Ledger
from .plot_registry import PlotState, registry

__all__ = [
    "AREA_TOLERANCE",
    "CODES",
    "MIN_DECIMALS",
    "OVERLAP_MIN_M2",
    "POINT_MAX_HA",
    "SPIKE_DEGREES",
    "check_plots",
    "hectares",
    "plot_problems",
]

JSON = dict[str, Any]

#: Decimal places the regulation's geolocation needs (about 0.1 m).
MIN_DECIMALS = 6
#: A plot over this many hectares needs a polygon, not a point.
POINT_MAX_HA = 4.0
#: A polygon's area may differ from the declared area by this fraction of it.
AREA_TOLERANCE = 0.10
#: A vertex whose interior angle is sharper than this is a spike.
SPIKE_DEGREES = 10.0
#: Plots of different producers overlapping by more than this many square metres.
OVERLAP_MIN_M2 = 1.0
#: Countries' bounding boxes (lon_min, lat_min, lon_max, lat_max), WGS84.
COUNTRY_BOXES: dict[str, tuple[float, float, float, float]] = {
    "PE": (-81.41, -18.36, -68.65, -0.03),
}

#: Every problem code and what it means.
CODES: dict[str, str] = {
    "precision": f"coordinates given with fewer than {MIN_DECIMALS} decimals in the source",
    "lon-lat-swapped": "longitude and latitude swapped: outside the country, but inside it "
    "read the other way round",
    "outside-country": "a position outside the plot's country (its bounding box)",
    "ring-not-closed": "a polygon ring does not end where it starts",
    "self-intersection": "a polygon's boundary crosses itself",
    "invalid-geometry": "a polygon GEOS finds invalid for another reason (too few points, ...)",
    "holes": "a polygon with holes (inner rings)",
    "spike": f"a vertex with an interior angle under {SPIKE_DEGREES:g} degrees",
    "no-geometry": "a plot with no point or polygon",
    "polygon-missing": f"a plot over {POINT_MAX_HA:g} ha given only as a point",
    "area-mismatch": f"polygon area off the declared area by more than {AREA_TOLERANCE:.0%}",
    "overlap": f"plots of different producers overlapping (over {OVERLAP_MIN_M2:g} m²)",
    "duplicate-geometry": "two plots with the same geometry",
    "harvest-mismatch": "a harvest names the plot with another producer, geometry or area",
}

_R = 6_371_008.8  # mean Earth radius, metres


def _local(geom: Any) -> Any:
    """`geom` in metres on a local equirectangular projection around its centre."""
    c = geom.centroid
    lon0, lat0 = c.x, c.y
    k = math.cos(math.radians(lat0))

    def f(xy: Any) -> Any:
        out = xy.copy()
        out[:, 0] = _R * k * (xy[:, 0] - lon0) * math.pi / 180
        out[:, 1] = _R * (xy[:, 1] - lat0) * math.pi / 180
        return out

    return shapely.transform(geom, f)


def hectares(geom: Any) -> float:
    """A WGS84 polygon's area in hectares.

    >>> from shapely.geometry import box
    >>> round(hectares(box(-78.0, -5.0, -77.999, -4.999)), 2)  # 0.001 degree square
    1.23
    """
    return float(_local(geom).area) / 10_000


def _positions(coords: Any) -> list[tuple[float, float]]:
    if coords and isinstance(coords[0], int | float):
        return [(float(coords[0]), float(coords[1]))]
    out: list[tuple[float, float]] = []
    for c in coords:
        out.extend(_positions(c))
    return out


def _rings(geometry: JSON) -> list[list[list[float]]]:
    if geometry["type"] == "Polygon":
        return list(geometry["coordinates"])
    if geometry["type"] == "MultiPolygon":
        return [r for poly in geometry["coordinates"] for r in poly]
    return []


def _closed_shape(geometry: JSON) -> Any:
    """The shapely geometry, rings closed if they were not (that is reported apart)."""

    def close(ring: list[list[float]]) -> list[list[float]]:
        return ring if ring[0] == ring[-1] else [*ring, ring[0]]

    if geometry["type"] == "Polygon":
        return Polygon(
            close(geometry["coordinates"][0]), [close(r) for r in geometry["coordinates"][1:]]
        )
    if geometry["type"] == "MultiPolygon":
        return MultiPolygon(
            [Polygon(close(p[0]), [close(r) for r in p[1:]]) for p in geometry["coordinates"]]
        )
    return shape(geometry)


def _spikes(geom: Any) -> list[tuple[float, float, float]]:
    """Vertices sharper than :data:`SPIKE_DEGREES`: (lon, lat, angle)."""
    found = []
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    for poly in polys:
        for ring in [poly.exterior, *poly.interiors]:
            pts = list(ring.coords)[:-1]
            local = (
                list(_local(shapely.LineString([*pts, pts[0]])).coords)[:-1] if len(pts) > 2 else []
            )
            n = len(local)
            for i in range(n):
                (ax, ay), (bx, by), (cx, cy) = local[i - 1], local[i], local[(i + 1) % n]
                u, v = (ax - bx, ay - by), (cx - bx, cy - by)
                nu, nv = math.hypot(*u), math.hypot(*v)
                if nu == 0 or nv == 0:
                    continue
                cos = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
                angle = math.degrees(math.acos(cos))
                if angle < SPIKE_DEGREES:
                    found.append((pts[i][0], pts[i][1], angle))
    return found


def _inside(box: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return box[0] <= lon <= box[2] and box[1] <= lat <= box[3]


def _one(p: PlotState) -> tuple[list[tuple[str, str]], Any]:
    """The problems of one plot alone, and its shapely geometry (None when unusable)."""
    out: list[tuple[str, str]] = []
    g = p.geometry
    if g is None:
        out.append(("no-geometry", "has no geometry (point or polygon)"))
        return out, None
    if p.decimals is not None and p.decimals < MIN_DECIMALS:
        out.append(
            (
                "precision",
                f"coordinates have at most {p.decimals} decimals in its source "
                f"({p.source}); the regulation needs {MIN_DECIMALS}",
            )
        )
    box = COUNTRY_BOXES.get(p.country)
    if box is not None:
        positions = _positions(g["coordinates"])
        outside = [(x, y) for x, y in positions if not _inside(box, x, y)]
        if outside:
            x, y = outside[0]
            if all(_inside(box, b, a) for a, b in positions):
                out.append(
                    (
                        "lon-lat-swapped",
                        f"[{x}, {y}] is outside {p.country}; read as [lat, lon] it is "
                        "inside: longitude and latitude are swapped",
                    )
                )
            else:
                out.append(
                    (
                        "outside-country",
                        f"{len(outside)} of {len(positions)} positions outside {p.country}, "
                        f"first [{x}, {y}]",
                    )
                )
    if g["type"] == "Point":
        if p.area_ha is not None and p.area_ha > POINT_MAX_HA:
            out.append(
                (
                    "polygon-missing",
                    f"is {p.area_ha:g} ha but given only as a point; over {POINT_MAX_HA:g} ha "
                    "the regulation needs a polygon",
                )
            )
        return out, Point(g["coordinates"])
    for i, ring in enumerate(_rings(g)):
        if ring[0] != ring[-1]:
            out.append(("ring-not-closed", f"ring {i} does not end where it starts"))
    geom = _closed_shape(g)
    polys = list(geom.geoms) if isinstance(geom, MultiPolygon) else [geom]
    holes = sum(len(poly.interiors) for poly in polys)
    if holes:
        out.append(("holes", f"has {holes} hole(s) (inner rings)"))
    if not geom.is_valid:
        reason = shapely.is_valid_reason(geom)
        code = "self-intersection" if "Self-intersection" in reason else "invalid-geometry"
        out.append((code, f"is not a valid polygon: {reason}"))
    for lon, lat, angle in _spikes(geom)[:1]:
        out.append(("spike", f"has a spike at [{lon}, {lat}] ({angle:.1f} degrees)"))
    if p.area_ha is not None and geom.is_valid:
        ha = hectares(geom)
        if abs(ha - p.area_ha) > AREA_TOLERANCE * p.area_ha:
            out.append(
                (
                    "area-mismatch",
                    f"polygon is {ha:.2f} ha, declared {p.area_ha:g} ha "
                    f"(more than {AREA_TOLERANCE:.0%} off)",
                )
            )
    return out, geom if geom.is_valid else shapely.make_valid(geom)


def plot_problems(plots: Iterable[PlotState]) -> list[JSON]:
    """Every problem of these plots, alone and pairwise, sorted by producer, plot and code.

    Each is ``plot_id``, ``producer``, ``code`` (see :data:`CODES`) and ``message``.
    """
    items = sorted(plots, key=lambda p: (p.producer, p.plot_id))
    found: list[JSON] = []

    def add(p: PlotState, code: str, message: str) -> None:
        found.append(
            {
                "plot_id": p.plot_id,
                "producer": p.producer,
                "code": code,
                "message": f"producer {p.producer}: plot {p.plot_id} {message}",
            }
        )

    shapes: list[tuple[PlotState, Any]] = []
    for p in items:
        problems, geom = _one(p)
        for code, message in problems:
            add(p, code, message)
        for m in p.mismatches:
            add(p, "harvest-mismatch", f"is registered otherwise: {m}")
        if geom is not None:
            shapes.append((p, geom))
    tree = shapely.STRtree([g for _, g in shapes])
    for i, (p, g) in enumerate(shapes):
        for j in tree.query(g):
            j = int(j)
            if j == i:
                continue
            q, h = shapes[j]
            if shapely.equals(g, h):
                add(
                    p,
                    "duplicate-geometry",
                    f"has the same geometry as plot {q.plot_id} (producer {q.producer})",
                )
            elif (
                p.producer != q.producer
                and g.geom_type != "Point"
                and h.geom_type != "Point"
                and (m2 := float(_local(g.intersection(h)).area)) > OVERLAP_MIN_M2
            ):
                add(
                    p,
                    "overlap",
                    f"overlaps plot {q.plot_id} of producer {q.producer} by {m2:,.0f} m²",
                )
    found.sort(key=lambda f: (f["producer"], f["plot_id"], f["code"], f["message"]))
    return found


def check_plots(ledger: Ledger, as_of: str | None = None) -> list[JSON]:
    """Every problem of the plot registry as of a time key, each with the lots it blocks.

    ``lots``: the plot's harvest lots and every lot formed from them, sorted.
    """
    plots = registry(ledger, as_of)
    problems = plot_problems(plots.values())
    blocked: dict[str, list[str]] = {}
    for pr in problems:
        pid = pr["plot_id"]
        if pid not in blocked:
            lots: set[str] = set()
            for code in plots[pid].lots:
                if code not in lots:
                    lots |= set(descendants_graph(ledger, code).nodes)
            blocked[pid] = sorted(lots)
        pr["lots"] = blocked[pid]
    return problems
