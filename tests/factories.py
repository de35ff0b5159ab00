"""Builders for valid events and small lineages, shared by the tests."""

from __future__ import annotations

from typing import Any

from lottrace.events import EventBase, parse_event

T0 = "2025-05-10T08:00:00-05:00"


def t(day: int, hour: int = 8) -> str:
    """A time in May-September 2025, Peru offset: day 1 is 2025-05-01."""
    from datetime import datetime, timedelta, timezone

    base = datetime(2025, 5, 1, tzinfo=timezone(timedelta(hours=-5)))
    return (base + timedelta(days=day - 1, hours=hour)).isoformat()


def _point(lot: str) -> list[float]:
    """A plot's point with six decimals, a different one for each lot (EUDR checks both)."""
    k = sum((i + 1) * ord(c) for i, c in enumerate(lot)) % 9973
    lon, lat = round(-79.012345 - k * 0.000731, 6), round(-5.123456 - k * 0.000419, 6)
    if repr(lat).endswith("0"):  # six decimals written, as the checks want
        lat = round(lat - 0.000001, 6)
    return [lon, lat]


def harvest(lot: str = "H1", day: int = 1, kg: float = 1000.0, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "harvest",
        "time": t(day),
        "site": f"farm:{lot}",
        "lot": lot,
        "producer": f"PRD-{lot}",
        "plot": {
            "id": f"PLOT-{lot}",
            "geometry": {"type": "Point", "coordinates": _point(lot)},
            "area_ha": 2.0,
        },
        "kg": kg,
    }
    d.update(kw)
    return d


def drying(lot: str = "H1", day: int = 10, kg: float = 200.0, **kw: Any) -> dict[str, Any]:
    return {"type": "drying", "time": t(day), "site": "farm:X", "lot": lot, "kg": kg, **kw}


def qc(
    lot: str,
    day: int,
    result: str = "accepted",
    stage: str = "gatherer_qc",
    inputs: list[tuple[str, float]] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": stage,
        "time": t(day),
        "site": "gatherer:G1" if stage == "gatherer_qc" else "hq:HQ",
        "lot": lot,
        "result": result,
        **kw,
    }
    if inputs:
        d["inputs"] = [{"lot": a, "kg": b} for a, b in inputs]
    return d


def mill(
    day: int, inputs: list[tuple[str, float]], outputs: list[tuple[str, float, str]], **kw: Any
) -> dict[str, Any]:
    return {
        "type": "dry_mill",
        "time": t(day),
        "site": "mill:M1",
        "inputs": [{"lot": a, "kg": b} for a, b in inputs],
        "outputs": [{"lot": a, "kg": b, "grade": g} for a, b, g in outputs],
        **kw,
    }


def export(lot: str, day: int, kg: float, **kw: Any) -> dict[str, Any]:
    return {"type": "export", "time": t(day), "site": "port:PAITA", "lot": lot, "kg": kg, **kw}


def correction(target: str, day: int = 60, reason: str = "incorrect_data") -> dict[str, Any]:
    return {
        "type": "correction",
        "time": t(day),
        "site": "hq:HQ",
        "corrects": target,
        "reason": reason,
    }


def ev(d: dict[str, Any]) -> EventBase:
    return parse_event(d)


def batch(*dicts: dict[str, Any]) -> list[tuple[str, EventBase]]:
    """``(where, event)`` pairs for Ledger.append, where = ``test:N``."""
    return [(f"test:{i}", parse_event(d)) for i, d in enumerate(dicts, 1)]


def chain() -> list[dict[str, Any]]:
    """Two harvests, dried, merged at a gatherer, milled into two grades, one exported."""
    return [
        harvest("H1", 1, 1000),
        harvest("H2", 2, 500),
        drying("H1", 10, 200),
        drying("H2", 11, 100),
        qc("G1", 15, inputs=[("H1", 200), ("H2", 100)], moisture_pct=11.0),
        mill(40, [("G1", 300)], [("M1", 200, "Grade 1"), ("M2", 30, "Grade 2")], rejects_kg=10),
        export("M1", 60, 200),
    ]


# --------------------------------------------------------------------------- foreign (EPCIS) events


def foreign(event: dict[str, Any], *, hash_id: str | None = None) -> dict[str, Any]:
    """A ``type: epcis`` record as ``lottrace epcis import`` stores one (its real hash id)."""
    from lottrace.epcis_hash import event_hash_id

    return {
        "type": "epcis",
        "time": event["eventTime"],
        "site": event.get("bizLocation", {}).get("id", "epcis:unknown"),
        "hash_id": hash_id or event_hash_id(event, {}),
        "event": event,
    }


def transformation(
    day: int, ins: list[tuple[str, float | None]], outs: list[str | tuple[str, float]]
) -> dict[str, Any]:
    """An EPCIS TransformationEvent: input classes (kg in KGM, or None for unstated) to
    output classes (a bare id, or ``(id, kg)``)."""

    def qty(lot: str, kg: float | None) -> dict[str, Any]:
        return {"epcClass": lot, "quantity": kg, "uom": "KGM"} if kg else {"epcClass": lot}

    return {
        "type": "TransformationEvent",
        "eventTime": t(day),
        "eventTimeZoneOffset": "-05:00",
        "inputQuantityList": [qty(lot, kg) for lot, kg in ins],
        "outputQuantityList": [qty(o, None) if isinstance(o, str) else qty(*o) for o in outs],
        "bizLocation": {"id": "urn:epc:id:sgln:0000000.00000.1"},
    }


def observe(day: int, lot: str, kg: float) -> dict[str, Any]:
    """An EPCIS ObjectEvent OBSERVE stating ``kg`` of class ``lot``."""
    return {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": t(day),
        "eventTimeZoneOffset": "-05:00",
        "quantityList": [{"epcClass": lot, "quantity": kg, "uom": "KGM"}],
    }


def aggregate(
    day: int, parent: str, children: list[str], packed: tuple[tuple[str, float], ...] = ()
) -> dict[str, Any]:
    """An EPCIS AggregationEvent ADD of ``children`` (EPCs) and ``packed`` (class, kg) into
    ``parent``."""
    event: dict[str, Any] = {
        "type": "AggregationEvent",
        "action": "ADD",
        "eventTime": t(day),
        "eventTimeZoneOffset": "-05:00",
        "parentID": parent,
        "childEPCs": children,
    }
    if packed:
        event["childQuantityList"] = [
            {"epcClass": lot, "quantity": kg, "uom": "KGM"} for lot, kg in packed
        ]
    return event
