"""Compliance answers: a lot's EUDR geolocation (GeoJSON and its problems) and certification.

Both walk the lot's ancestors (:mod:`lottrace.graph`) to the harvests that
feed it and answer with plain data, as :mod:`lottrace.provenance` does.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .certificates import Registry
from .certificates import registry as read_registry
from .events import Harvest
from .geometry import plot_problems
from .graph import (
    ancestors_graph,
)
from .ledger import Ledger, StoredEvent
from .plot_registry import PlotState, fold
from .rules import time_key

__all__ = [
    "REASONS",
    "REASONS_ES",
    "certify",
    "eudr",
    "geojson_text",
    "reason_code",
]

JSON = dict[str, Any]

#: EUDR: a plot over this many hectares needs a polygon, not a point.
POINT_MAX_HA = 4.0


#: Decimal places kept in GeoJSON coordinates (EUDR asks for at least six).
COORD_DECIMALS = 6


def eudr(
    ledger: Ledger,
    lot: str,
    *,
    plots: dict[str, PlotState] | None = None,
    findings: dict[str, list[JSON]] | None = None,
) -> tuple[JSON, list[JSON]]:
    """The plots behind a lot as TRACES GeoJSON, and everything that stops its proof.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.
    plots : dict, optional
        The plot registry (:func:`lottrace.plot_registry.registry`) to read
        plots from and check them against (overlaps, duplicates). By default
        the plots the lineage's harvests carry, checked among themselves: this
        query then reads only the lot's sub-graph.
    findings : dict, optional
        Open deforestation findings by plot
        (:func:`lottrace.findings.open_findings`); by default none.

    Returns
    -------
    feature_collection : dict
        The FeatureCollection the EU information system (TRACES) takes: one
        Feature per contributing plot, sorted by producer and plot, WGS84
        ``[lon, lat]`` rounded to :data:`COORD_DECIMALS` decimals (write it with
        :func:`geojson_text` to keep all six), the plot's registered geometry
        (a Point up to 4 ha, a Polygon or MultiPolygon), and the Commission's
        property names: ``ProducerName``, ``ProducerCountry``,
        ``ProductionPlace`` (the plot id) and ``Area`` (hectares).
    problems : list of dict
        ``lot``, ``producer``, ``plot_id``, ``problem`` and a one-line
        ``message``. ``problem`` is ``no-geometry`` (a contributing plot has no
        geometry), ``point-over-4ha`` (a plot over 4 ha given only as a
        Point), ``unknown-origin`` (an ancestor lot, or `lot`, that was not
        created by a harvest and has no input lots; producer ``None``), a code
        of :data:`lottrace.geometry.CODES` for a geometry TRACES would reject,
        or ``deforestation-risk`` (an open high-risk finding on the plot).

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
    >>> [(f["properties"]["ProducerName"], f["geometry"]["type"]) for f in fc["features"]][:3]
    [('APR-0187', 'Polygon'), ('APR-0231', 'Point'), ('APR-0342', 'Point')]
    >>> fc["features"][1]["geometry"]["coordinates"], fc["features"][1]["properties"]
    ([-79.012437, -5.138842], {'ProducerName': 'APR-0231', 'ProducerCountry': 'PE', 'ProductionPlace': 'APR-P0231', 'Area': 2.8})
    >>> problems
    []
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    harvests = _harvests(G)
    lineage = fold(_harvest_events(G))
    if plots is None:
        plots = lineage
    elif lineage.keys() - plots.keys():  # harvested after the registry's date
        plots = {**lineage, **plots}
    problems: list[JSON] = []
    features: list[JSON] = []
    by_plot: dict[str, list[str]] = {}
    for code, h in sorted(harvests.items()):
        by_plot.setdefault(h.plot.id, []).append(code)
    for pid in sorted(by_plot, key=lambda p: (plots[p].producer, p)):
        st = plots[pid]
        features.append(
            {
                "type": "Feature",
                "geometry": _round_geometry(st.geometry) if st.geometry is not None else None,
                "properties": {
                    "ProducerName": st.producer,
                    "ProducerCountry": st.country,
                    "ProductionPlace": pid,
                    "Area": st.area_ha,
                },
            }
        )
    for code, h in sorted(harvests.items()):
        st = plots[h.plot.id]
        who = f"lot {code}: producer {st.producer}: plot {st.plot_id}"
        geom = st.geometry
        if geom is None:
            problems.append(
                _problem(code, h, "no-geometry", f"{who} has no geometry (point or polygon)")
            )
        elif geom["type"] == "Point" and (st.area_ha or 0) > POINT_MAX_HA:
            problems.append(
                _problem(
                    code,
                    h,
                    "point-over-4ha",
                    f"{who} is {st.area_ha:g} ha but given only as a Point; "
                    f"EUDR needs a polygon over {POINT_MAX_HA:g} ha",
                )
            )
    for pr in plot_problems(plots.values()):
        lots = by_plot.get(pr["plot_id"])
        if lots and pr["code"] not in ("no-geometry", "polygon-missing"):
            problems.append(
                {
                    "lot": lots[0],
                    "producer": pr["producer"],
                    "plot_id": pr["plot_id"],
                    "problem": pr["code"],
                    "message": f"lot {lots[0]}: {pr['message']}",
                }
            )
    for pid, lots in sorted(by_plot.items()):
        for f in (findings or {}).get(pid, []):
            if f["risk"] == "high":
                problems.append(
                    {
                        "lot": lots[0],
                        "producer": plots[pid].producer,
                        "plot_id": pid,
                        "problem": "deforestation-risk",
                        "message": f"lot {lots[0]}: producer {plots[pid].producer}: plot {pid} "
                        f"has an open high-risk finding ({f['dataset']} {f['dataset_version']}, "
                        f"{f['date']}, event {f['event_id'][:12]})",
                    }
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


_COORD = re.compile(r'"@@(-?[0-9]+\.[0-9]+)@@"')


def geojson_text(collection: JSON) -> str:
    """A FeatureCollection as indented JSON, every coordinate with exactly six decimals.

    >>> fc = {"type": "Point", "coordinates": [-78.1964, -5.9]}
    >>> print(geojson_text(fc))
    {
      "type": "Point",
      "coordinates": [
        -78.196400,
        -5.900000
      ]
    }
    """

    def mark(c: Any) -> Any:
        if isinstance(c, list):
            return [mark(x) for x in c]
        return f"@@{c:.{COORD_DECIMALS}f}@@"

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: mark(v) if k == "coordinates" else walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(x) for x in node]
        return node

    text = json.dumps(walk(collection), indent=2, ensure_ascii=False)
    return _COORD.sub(lambda m: m.group(1), text)


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


#: Why a lot breaks a certification (:func:`certify`'s ``breaking`` ``reason``), by a stable
#: code, in English; :func:`reason_code` names a reason's code, :data:`REASONS_ES` says each in
#: Spanish (the web app's lot page; a test keeps the keys in step).
REASONS: dict[str, str] = {
    "not-certified": "the harvest does not list the certification",
    "unknown-origin": "a source lot not created by a harvest",
    "expired": "the certificate that covered it had expired on the day",
    "not-yet-valid": "the certificate that covers it was not yet valid on the day",
    "no-certificate": "no certificate of the scheme covered it on the day",
}

#: :data:`REASONS` in Spanish, as the web app's lot page says them.
REASONS_ES: dict[str, str] = {
    "not-certified": "la cosecha no tiene esta certificación",
    "unknown-origin": "origen desconocido: el lote no lo creó una cosecha",
    "expired": "el certificado que la cubría estaba vencido ese día",
    "not-yet-valid": "el certificado que la cubre aún no era válido ese día",
    "no-certificate": "ningún certificado de este sello la cubría ese día",
}

#: How each reason reads (after ``TYPE at SITE: `` for an event at a site), by its code.
_REASON_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("not-certified", re.compile(r"^not certified$")),
    ("unknown-origin", re.compile(r"^unknown origin$")),
    ("expired", re.compile(r"(^|: )certificate .+ expired on \d{4}-\d\d-\d\d$")),
    ("not-yet-valid", re.compile(r"(^|: )certificate .+ is valid only from \d{4}-\d\d-\d\d$")),
    ("no-certificate", re.compile(r"(^|: )no .+ certificate valid on \d{4}-\d\d-\d\d$")),
)


def reason_code(reason: str) -> str | None:
    """The code (a key of :data:`REASONS`) of a ``breaking`` reason, or None if none reads so.

    >>> reason_code("drying at farm:X: certificate ORG-1 expired on 2025-03-31")
    'expired'
    """
    for code, pattern in _REASON_WORDS:
        if pattern.search(reason):
            return code
    return None


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


def _harvest_events(G: Any) -> list[StoredEvent]:
    """The harvests that created lots of `G`, in time order."""
    found = [
        e
        for code in G
        for e in G.nodes[code].get("timeline", [])
        if e.role == "output" and isinstance(e.event, Harvest)
    ]
    found.sort(key=lambda e: (time_key(e.event.time), e.seq))
    return found


def _unknown_origins(G: Any, harvests: dict[str, Harvest]) -> list[str]:
    """Lots of `G` not created by a harvest and with no input lots, sorted."""
    return sorted(n for n in G if G.in_degree(n) == 0 and n not in harvests)


def _round_geometry(geometry: JSON) -> JSON:
    def walk(c: Any) -> Any:
        if c and isinstance(c[0], int | float):
            return [round(float(c[0]), COORD_DECIMALS), round(float(c[1]), COORD_DECIMALS)]
        return [walk(x) for x in c]

    return {"type": geometry["type"], "coordinates": walk(geometry["coordinates"])}


def _problem(lot: str, h: Harvest, problem: str, message: str) -> JSON:
    return {
        "lot": lot,
        "producer": h.producer,
        "plot_id": h.plot.id,
        "problem": problem,
        "message": message,
    }
