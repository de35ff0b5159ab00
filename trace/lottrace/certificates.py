"""Certificates: the registry read from ``certificate`` events, and which one covers an event.

A certificate (organic EU/NOP, Fairtrade, Rainforest Alliance, Café
Femenino ...) covers producers, plots and sites for a span of dates. This
module answers, from the log (``Ledger.events_of_types``, void ones left
out): which certificate of a scheme covers a contributing event on its date
(:func:`coverage`, used by :func:`lottrace.compliance.certify`), and which
certificates run out soon (:func:`expiring`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .errors import LottraceError
from .events import Certificate, EventBase, Harvest, TransactionCertificate
from .ledger import Ledger

__all__ = ["Registry", "coverage", "expiring", "registry", "transaction_certificates"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Registry:
    """The ledger's non-void certificates and transaction certificates, in log order.

    Read by one scan of the log's ``type`` column (:meth:`Ledger.events_of_types`),
    whose cost grows with the log: a caller asking about many lots reads it once.
    """

    certificates: tuple[Certificate, ...] = ()
    transactions: tuple[TransactionCertificate, ...] = ()

    def of(self, scheme: str) -> list[Certificate]:
        return [c for c in self.certificates if c.scheme == scheme]

    def site_scoped(self, scheme: str) -> bool:
        """Whether any certificate of the scheme names sites: then sites are checked too."""
        return any(c.scope.sites for c in self.of(scheme))


def registry(ledger: Ledger) -> Registry:
    """Every certificate and transaction certificate in the ledger that no correction voided."""
    certs: list[Certificate] = []
    tcs: list[TransactionCertificate] = []
    for s in ledger.events_of_types(["certificate", "transaction_certificate"]):
        if s.void:
            continue
        if isinstance(s.event, Certificate):
            certs.append(s.event)
        elif isinstance(s.event, TransactionCertificate):
            tcs.append(s.event)
    return Registry(tuple(certs), tuple(tcs))


def _covers(c: Certificate, ev: EventBase) -> bool:
    if isinstance(ev, Harvest):
        return (
            ev.producer in c.scope.producers
            or ev.plot.id in c.scope.plots
            or ev.site in c.scope.sites
        )
    return ev.site in c.scope.sites


def coverage(reg: Registry, scheme: str, ev: EventBase) -> tuple[str, Certificate | None]:
    """Whether a certificate of ``scheme`` covers event ``ev`` on its (local) date.

    Returns ``("valid", cert)``, ``("expired", the one that ran out last)``,
    ``("not-yet-valid", the one that starts first)`` or ``("none", None)``
    when no certificate of the scheme names the event's producer, plot or site.
    """
    day = ev.time.date()
    mine = [c for c in reg.of(scheme) if _covers(c, ev)]
    for c in mine:
        if c.valid_from <= day <= c.valid_to:
            return "valid", c
    past = [c for c in mine if c.valid_to < day]
    if past:
        return "expired", max(past, key=lambda c: c.valid_to)
    if mine:
        return "not-yet-valid", min(mine, key=lambda c: c.valid_from)
    return "none", None


def reason(status: str, cert: Certificate | None, scheme: str, day: date) -> str:
    """The words for a coverage that fails."""
    if status == "expired" and cert is not None:
        return f"certificate {cert.number} expired on {cert.valid_to.isoformat()}"
    if status == "not-yet-valid" and cert is not None:
        return f"certificate {cert.number} is valid only from {cert.valid_from.isoformat()}"
    return f"no {scheme} certificate valid on {day.isoformat()}"


def summary(c: Certificate) -> JSON:
    """A certificate as plain data."""
    return {
        "number": c.number,
        "scheme": c.scheme,
        "standard": c.standard,
        "holder": c.holder,
        "issued_by": c.issued_by,
        "valid_from": c.valid_from.isoformat(),
        "valid_to": c.valid_to.isoformat(),
        "scope": c.scope.model_dump(mode="json"),
    }


def parse_within(text: str) -> int:
    """``60d``, ``8w`` or ``60`` as a number of days."""
    t = text.strip().lower()
    unit = 1
    if t.endswith("d"):
        t = t[:-1]
    elif t.endswith("w"):
        t, unit = t[:-1], 7
    if not t.isdigit() or int(t) > 36500:
        raise LottraceError(f"--within {text!r} is not a number of days like 60d")
    return int(t) * unit


def expiring(ledger: Ledger, within_days: int, today: date | None = None) -> JSON:
    """Certificates whose last valid day falls within ``within_days`` of ``today``.

    Returns ``today``, ``within_days`` and ``certificates`` (each
    :func:`summary` with ``days_left``), soonest first. Certificates already
    expired are listed separately under ``expired`` (those that ran out in
    the last ``within_days``), so a lapse is not missed either.
    """
    today = today or date.today()
    end = today + timedelta(days=within_days)
    soon, gone = [], []
    for c in registry(ledger).certificates:
        row = summary(c) | {"days_left": (c.valid_to - today).days}
        if today <= c.valid_to <= end:
            soon.append(row)
        elif today - timedelta(days=within_days) <= c.valid_to < today:
            gone.append(row)
    key = lambda r: (r["valid_to"], r["scheme"], r["number"])  # noqa: E731
    return {
        "today": today.isoformat(),
        "within_days": within_days,
        "certificates": sorted(soon, key=key),
        "expired": sorted(gone, key=key),
    }


def transaction_certificates(reg: Registry, lots: set[str]) -> list[JSON]:
    """The transaction certificates (NOP import, EU COI ...) recorded for these lots."""
    out = []
    for ev in reg.transactions:
        if ev.lot in lots:
            out.append(
                {
                    "lot": ev.lot,
                    "scheme": ev.scheme,
                    "kind": ev.kind,
                    "reference": ev.reference,
                    "issued_by": ev.issued_by,
                    "issued": ev.issued.isoformat() if ev.issued else None,
                }
            )
    return out


#: Events checked against a site's certificate: the handlers' own, not the road's.
_SITE_TYPES = ("drying", "gatherer_qc", "hq_qc", "dry_mill", "export")


def site_checked(ev: EventBase) -> bool:
    """Whether an event is checked against its site's certificate (when a scheme names sites).

    A drying on the farm falls under the harvest's producer certificate;
    trucks (dispatch, arrival) and foreign events are no handler's.
    """
    return ev.type in _SITE_TYPES and not ev.site.startswith("farm:")


def parse_day(text: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` option as a date (None stays None); one clear line if it is not."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise LottraceError(f"{name} {text!r} is not a date like 2025-06-01") from None
