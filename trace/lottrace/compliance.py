"""Compliance answers: a lot's EUDR geolocation (GeoJSON and its problems) and certification.

Both walk the lot's ancestors (:mod:`lottrace.graph`) to the harvests that
feed it and answer with plain data, as :mod:`lottrace.provenance` does.
"""

from __future__ import annotations

from typing import Any

from .certificates import Registry
from .certificates import registry as read_registry
from .events import Harvest
from .graph import (
    ancestors_graph,
)
from .ledger import Ledger
from .provenance import _plots
from .rules import time_key

__all__ = [
    "certify",
    "eudr",
]

JSON = dict[str, Any]

#: EUDR: a plot over this many hectares needs a polygon, not a point.
POINT_MAX_HA = 4.0


#: Decimal places kept in GeoJSON coordinates (EUDR asks for at least six).
COORD_DECIMALS = 6


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


def certify(ledger: Ledger, lot: str, scheme: str, *, registry: Registry | None = None) -> JSON:
    """Does every harvest in a lot carry a certification? The lots that break it.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.
    scheme : str
        A certification as harvests list it, e.g. ``organic``, ``fairtrade``.
    registry : Registry, optional
        The ledger's certificates, when the caller has read them
        (:func:`lottrace.certificates.registry`, one scan of the log).

    Returns
    -------
    dict
        ``lot``, ``scheme``, ``certified`` (true when nothing breaks it),
        ``harvests`` (how many harvest lots contribute), ``breaking`` (lot,
        producer, plot_id, certifications, reason: ``not certified``, or
        ``unknown origin`` for a source lot not created by a harvest) and
        ``voided``. When the ledger holds certificates of the scheme
        (``certificate`` events), each contributing harvest, and each event at
        a site if a certificate of the scheme names sites, must also fall on a
        day a certificate covering it is valid: a breaking reason then names
        the certificate (``certificate ORG-1 expired on 2025-03-31``). Also
        ``basis`` (``certificates`` or ``harvest certifications``),
        ``events_checked``, ``certificates`` (those covering a contributing
        event) and ``transaction_certificates`` (the lot's NOP import
        certificates, EU COI references ...).

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
    extra = _certificate_check(registry or read_registry(ledger), G, scheme, breaking)
    return {
        "lot": lot,
        "scheme": scheme,
        "certified": not breaking,
        "harvests": len(harvests),
        "breaking": breaking,
        "voided": ledger.voided_for_lots(G.nodes),
        **extra,
    }


def _certificate_check(reg: Registry, G: Any, scheme: str, breaking: list[JSON]) -> JSON:
    """Check contributing events against certificates valid on their dates (adds to breaking)."""
    from . import certificates as certs

    tcs = certs.transaction_certificates(reg, set(G.nodes))
    if not reg.of(scheme):
        return {
            "basis": "harvest certifications",
            "events_checked": 0,
            "certificates": [],
            "transaction_certificates": tcs,
        }
    listed = {b["lot"] for b in breaking}
    used: dict[str, JSON] = {}
    checked = 0
    sites = reg.site_scoped(scheme)
    for code in sorted(G.nodes):
        for e in G.nodes[code].get("timeline", []):
            ev = e.event
            if e.role not in ("output", "subject"):
                continue
            harvest = ev if isinstance(ev, Harvest) and e.role == "output" else None
            if harvest is None and not (sites and certs.site_checked(ev)):
                continue
            checked += 1
            status, cert = certs.coverage(reg, scheme, ev)
            if cert is not None:
                used.setdefault(cert.number, certs.summary(cert))
            if status == "valid" or code in listed:
                continue
            listed.add(code)
            why = certs.reason(status, cert, scheme, ev.time.date())
            breaking.append(
                {
                    "lot": code,
                    "producer": harvest.producer if harvest else None,
                    "plot_id": harvest.plot.id if harvest else None,
                    "certifications": list(harvest.certifications or []) if harvest else [],
                    "reason": why if harvest else f"{ev.type} at {ev.site}: {why}",
                }
            )
    return {
        "basis": "certificates",
        "events_checked": checked,
        "certificates": sorted(used.values(), key=lambda c: c["number"]),
        "transaction_certificates": tcs,
    }


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
