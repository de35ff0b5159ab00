"""Builders for the record events (certificates, purchases, payments, premiums)."""

from __future__ import annotations

from typing import Any

from factories import t


def certificate(
    number: str = "ORG-1",
    scheme: str = "organic",
    valid: tuple[str, str] = ("2025-01-01", "2025-12-31"),
    day: int = 1,
    **scope: list[str],
) -> dict[str, Any]:
    return {
        "type": "certificate",
        "time": t(day),
        "site": "hq:HQ",
        "holder": "COOP",
        "scheme": scheme,
        "number": number,
        "issued_by": "Control Union Peru",
        "valid_from": valid[0],
        "valid_to": valid[1],
        "scope": scope or {"producers": ["PRD-H1"]},
    }


def transaction_certificate(lot: str, day: int = 60, **kw: Any) -> dict[str, Any]:
    return {
        "type": "transaction_certificate",
        "time": t(day),
        "site": "port:PAITA",
        "lot": lot,
        "scheme": "organic",
        "kind": "eu_coi",
        "reference": "COI.PE.2025.0001",
        **kw,
    }


def purchase(lot: str, producer: str, day: int = 12, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "purchase",
        "time": t(day),
        "site": "gatherer:G1",
        "lot": lot,
        "producer": producer,
        "receipt": f"R-{lot}",
        "kg": 200,
        "price_per_kg": "9.50",
        "currency": "PEN",
    }
    d.update(kw)
    return d


def payment(producer: str, amount: str, day: int = 70, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "payment",
        "time": t(day),
        "site": "hq:HQ",
        "producer": producer,
        "kind": "premium",
        "method": "bank_transfer",
        "amount": amount,
        "currency": "USD",
        "reference": f"TX-{producer}-{day}",
    }
    d.update(kw)
    return d


def premium(lot: str, kg: float, day: int = 65, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": "premium",
        "time": t(day),
        "site": "hq:HQ",
        "lot": lot,
        "contract": f"C-{lot}",
        "kg": kg,
        "currency": "USD",
        "lines": [{"kind": "fairtrade", "rate": "0.20", "per": "lb"}],
    }
    d.update(kw)
    return d


def record_samples() -> list[dict[str, Any]]:
    """One valid event of each record type."""
    return [
        certificate(),
        transaction_certificate("E1"),
        purchase("H1", "PRD-H1"),
        payment("PRD-H1", "10.00"),
        premium("E1", 1000),
    ]
