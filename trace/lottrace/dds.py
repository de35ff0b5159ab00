"""EUDR due diligence for a lot: the proof, the statement, and the statement's life.

:func:`proof` is :func:`lottrace.compliance.eudr` with the registry and the
open deforestation findings as of a date, so a statement can be proved
again as of its date. Unlike the one-lot queries it reads every ``plot``,
``harvest``, ``eudr_finding`` and ``eudr_resolution`` event (a scan of the
log's ``type`` column), as overlaps and duplicates are between any two plots.
"""

from __future__ import annotations

from typing import Any

from .compliance import eudr
from .errors import LottraceError
from .events import Harvest, StatementStatus, parse_event
from .findings import open_findings
from .graph import ancestors_graph
from .ledger import Ledger
from .plot_registry import registry

__all__ = [
    "API_MODEL",
    "HS_CODES",
    "active_statements",
    "carry_statements",
    "proof",
    "record_status",
    "request_body",
    "statement",
    "statement_list",
    "statements",
]

JSON = dict[str, Any]


def proof(ledger: Ledger, lot: str, as_of: str | None = None) -> tuple[JSON, list[JSON]]:
    """The lot's TRACES GeoJSON and its problems, as of a time key (default: now).

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     fc, problems = proof(ledger, "EXP-25-JUM-01")
    >>> len(fc["features"]), problems
    (5, [])
    """
    return eudr(ledger, lot, plots=registry(ledger, as_of), findings=open_findings(ledger, as_of))


def lot_proof(ledger: Ledger, lot: str) -> tuple[JSON, list[JSON]]:
    """The lot's TRACES GeoJSON and its problems as a lot's readers are told them (the
    server's ``/eudr``, the lot card, the passport): the plots its own lineage's harvests
    carry, checked among themselves, and their open deforestation findings. Not the whole
    ledger's plot register (:func:`proof`), which holds other organisations' harvests."""
    return eudr(ledger, lot, findings=open_findings(ledger))


# --------------------------------------------------------------------------- the statement

#: HS subheadings of heading 0901 (coffee) the regulation's Annex I lists.
HS_CODES = {
    "090111": "Coffee, not roasted, not decaffeinated",
    "090112": "Coffee, not roasted, decaffeinated",
    "090121": "Coffee, roasted, not decaffeinated",
    "090122": "Coffee, roasted, decaffeinated",
    "090190": "Coffee husks and skins; coffee substitutes containing coffee",
}
ACTIVITIES = ("export", "import", "domestic")
#: The EU information system API modelled by :func:`request_body` (see docs/guide-buyer.md).
API_MODEL = "EUDR TRACES submission service (SOAP), submitDds request, API specification 1.4"


def statement_list(ledger: Ledger, lot: str | None = None, as_of: str | None = None) -> list[JSON]:
    """``lottrace statement list``: the statements (:func:`statements`) as of a date or time,
    only those naming ``lot`` or a lot downstream of it when it is given."""
    from .graph import descendants_graph
    from .plot_registry import as_of_key

    rows = list(statements(ledger, as_of_key(as_of)).values())
    if lot is not None:
        near = set(descendants_graph(ledger, lot).nodes)
        rows = [r for r in rows if near & set(r["lots"])]
    return rows


def statements(ledger: Ledger, as_of: str | None = None) -> dict[str, JSON]:
    """Every statement by reference number (or, before it has one, by its event id): its
    latest status, numbers, lots and history, from the ``dds`` events up to a time key."""
    from .plot_registry import void_ids
    from .rules import time_key

    void = void_ids(ledger)
    out: dict[str, JSON] = {}
    for s in ledger.events_of_types(["dds"]):
        ev = s.event
        if s.void or s.event_id in void or not isinstance(ev, StatementStatus):
            continue
        if as_of is not None and time_key(ev.time) > as_of:
            continue
        key = ev.reference or s.event_id
        st = out.setdefault(
            key,
            {
                "reference": ev.reference,
                "verification": None,
                "operator": None,
                "lots": [],
                "history": [],
            },
        )
        st["status"] = ev.status
        if ev.operator:
            st["operator"] = ev.operator
        if ev.verification:
            st["verification"] = ev.verification
        st["lots"] = sorted(set(ev.statement_lots))
        st["history"].append(
            {
                "status": ev.status,
                "time": ev.time.isoformat(),
                "verification": ev.verification,
                "message": ev.message,
                "event_id": s.event_id,
            }
        )
    return out


def active_statements(ledger: Ledger, lots: set[str], as_of: str | None = None) -> list[JSON]:
    """The statements in force (submitted or amended) covering any of these lots, by reference."""
    return sorted(
        (
            st
            for st in statements(ledger, as_of).values()
            if st["status"] in ("submitted", "amended") and lots & set(st["lots"])
        ),
        key=lambda st: st["reference"] or "",
    )


def statement(
    ledger: Ledger,
    lot: str,
    *,
    operator: str,
    operator_id: str | None = None,
    operator_country: str = "PE",
    activity: str = "export",
    hs_code: str = "090111",
    description: str | None = None,
    as_of: str | None = None,
) -> JSON:
    """The content of a due diligence statement for a lot, built from the ledger.

    Refuses (:class:`~lottrace.errors.LottraceError`) a lot whose proof has
    any problem (see :func:`proof`). Returns ``operator``, ``activity``,
    ``commodity`` (``hs_code``, ``description``, ``net_mass_kg`` (the lot's
    weight), ``countries_of_production``, ``production_period`` (first and
    last harvest date, local), ``producers``, ``plots``, ``area_ha`` (sum of
    the plots' areas) and ``geolocation``: the TRACES FeatureCollection),
    ``upstream_statements`` (reference and verification numbers of the
    statements in force, filed by other operators, on the lot or the lots it
    came from), ``lot`` and ``ledger_head``.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     s = statement(ledger, "EXP-25-JUM-01", operator="JUMARP")
    >>> c = s["commodity"]
    >>> c["net_mass_kg"], c["production_period"], c["plots"], c["area_ha"]
    (414.0, {'start': '2025-06-30', 'end': '2025-07-21'}, 5, 7.8)
    """
    if hs_code not in HS_CODES:
        raise LottraceError(f"--hs-code: {hs_code} is not one of {', '.join(HS_CODES)}")
    if activity not in ACTIVITIES:
        raise LottraceError(f"--activity: {activity} is not one of {', '.join(ACTIVITIES)}")
    collection, problems = proof(ledger, lot, as_of)
    if problems:
        raise LottraceError(
            f"lot {lot} cannot be proven EUDR-compliant ({len(problems)} problem(s), "
            f"first: {problems[0]['message']}); run 'lottrace eudr {lot} --check'"
        )
    st = ledger.require_lot(lot)
    G = ancestors_graph(ledger, lot, timelines=True)
    dates = sorted(
        e.event.time.date().isoformat()
        for code in G
        for e in G.nodes[code].get("timeline", [])
        if e.role == "output" and isinstance(e.event, Harvest)
    )
    props = [f["properties"] for f in collection["features"]]
    producers: dict[str, JSON] = {}
    for p in props:
        row = producers.setdefault(
            p["ProducerName"],
            {"name": p["ProducerName"], "country": p["ProducerCountry"], "plots": 0},
        )
        row["plots"] += 1
    # statements of other operators on this lot or any lot it came from (an operator's own
    # statement on the lot is the one being amended, not an upstream one)
    upstream = [
        u for u in active_statements(ledger, set(G.nodes), as_of) if u["operator"] != operator
    ]
    seq, head = ledger.head()
    return {
        "lot": lot,
        "operator": {
            "name": operator,
            "identifier": operator_id,
            "country": operator_country,
        },
        "activity": activity,
        "commodity": {
            "hs_code": hs_code,
            "description": description or f"{HS_CODES[hs_code]}, lot {lot}",
            "net_mass_kg": st.kg,
            "countries_of_production": sorted({p["ProducerCountry"] for p in props}),
            "production_period": {"start": dates[0], "end": dates[-1]} if dates else None,
            "producers": [producers[k] for k in sorted(producers)],
            "plots": len(props),
            "area_ha": round(sum(p["Area"] or 0 for p in props), 4),
            "geolocation": collection,
        },
        "upstream_statements": [
            {"reference": u["reference"], "verification": u["verification"]} for u in upstream
        ],
        "ledger_head": {"seq": seq, "hash": head},
    }


def request_body(stmt: JSON, *, internal_reference: str | None = None) -> JSON:
    """The statement as the body of a ``submitDds`` request (a dry run: lottrace never sends it).

    Modelled on :data:`API_MODEL`, whose SOAP elements are given here as JSON
    keys; the geolocation goes as base64-encoded GeoJSON, as that API asks.
    Check the names against the specification in force before sending.
    """
    import base64

    from .compliance import geojson_text

    c = stmt["commodity"]
    geo = base64.b64encode(geojson_text(c["geolocation"]).encode()).decode()
    return {
        "model": API_MODEL,
        "dry_run": True,
        "submitDds": {
            "operatorType": "OPERATOR",
            "statement": {
                "internalReferenceNumber": internal_reference or stmt["lot"],
                "activityType": stmt["activity"].upper(),
                "operator": {
                    "referenceNumber": (
                        {
                            "identifierType": "eori",
                            "identifierValue": stmt["operator"]["identifier"],
                        }
                        if stmt["operator"]["identifier"]
                        else None
                    ),
                    "nameAndAddress": {
                        "name": stmt["operator"]["name"],
                        "country": stmt["operator"]["country"],
                    },
                },
                "countryOfActivity": stmt["operator"]["country"],
                "commodities": [
                    {
                        "descriptors": {
                            "descriptionOfGoods": c["description"],
                            "goodsMeasure": {"netWeight": c["net_mass_kg"]},
                        },
                        "hsHeading": c["hs_code"],
                        "producers": [
                            {
                                "country": country,
                                "name": ", ".join(
                                    p["name"] for p in c["producers"] if p["country"] == country
                                ),
                                "geometryGeojson": geo,
                            }
                            for country in c["countries_of_production"]
                        ],
                    }
                ],
                "geoLocationConfidential": False,
                "associatedStatements": [
                    {"referenceNumber": u["reference"], "verificationNumber": u["verification"]}
                    for u in stmt["upstream_statements"]
                ],
            },
        },
    }


def record_status(
    ledger: Ledger,
    status: str,
    lots: list[str],
    *,
    operator: str | None = None,
    reference: str | None = None,
    verification: str | None = None,
    message: str | None = None,
    site: str = "hq:registry",
    time: str | None = None,
) -> JSON:
    """Append a ``dds`` event: a statement submitted, amended, withdrawn or rejected."""
    from datetime import UTC, datetime

    for code in lots:
        ledger.require_lot(code)
    body: JSON = {
        "type": "dds",
        "time": time or datetime.now(UTC).replace(microsecond=0).isoformat(),
        "site": site,
        "status": status,
        "statement_lots": lots,
    }
    named = (
        ("operator", operator),
        ("reference", reference),
        ("verification", verification),
        ("message", message),
    )
    for k, v in named:
        if v is not None:
            body[k] = v
    ev = parse_event(body, where="statement")
    report = ledger.append([("statement", ev)])
    return {"added": report.added, "status": status, "reference": reference}


def carry_statements(ledger: Ledger, down: JSON) -> JSON:
    """A :func:`lottrace.provenance.downstream` answer with the statements in force on each
    export lot (``statements``: ``reference/verification`` strings), and on every lot
    downstream (top-level ``statements``: reference, verification, status, lots)."""
    lots = {down["lot"], *down["lots"]}
    active = active_statements(ledger, lots)
    for x in down["exports"]:
        x["statements"] = [
            f"{s['reference']}/{s['verification']}" for s in active if x["lot"] in s["lots"]
        ]
    down["statements"] = [
        {k: s[k] for k in ("reference", "verification", "status", "operator", "lots")}
        for s in active
    ]
    return down
