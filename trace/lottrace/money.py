"""Purchases, payments and premiums, read from the log, and a lot's premium reconciliation.

The records (``purchase``, ``payment``, ``premium`` events) are read with
:meth:`Ledger.events_of_types`, void ones left out. :func:`premiums` shares
the premiums an exported lot earned among the producers whose coffee reached
it, by the kilos that did: the share of each source lot is the one
:func:`lottrace.graph.source_shares` gives ``lottrace upstream`` (exact
fractions), summed per producer. Money is :class:`~decimal.Decimal` (never
float), rounded to the cent by the **largest-remainder rule**: every
producer gets the cents of their exact share rounded down, and the cents
left over go one each to the largest fractional remainders (ties: producer
id order), so the shares sum to the premium exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from .errors import LottraceError
from .events import CENT, Harvest, Payment, Premium, Purchase
from .graph import ancestor_inputs, source_shares
from .ledger import Ledger

__all__ = [
    "ROUNDING_RULE",
    "allocate",
    "payments",
    "premiums",
    "premiums_of",
    "purchases",
    "source_producers",
]

JSON = dict[str, Any]

ROUNDING_RULE = (
    "each share rounded down to the cent, then the cents left over one each to the "
    "largest remainders (ties by producer id): the shares sum to the premium exactly"
)


def purchases(ledger: Ledger) -> list[Purchase]:
    """Every purchase receipt no correction voided, in log order."""
    return [
        s.event
        for s in ledger.events_of_types(["purchase"])
        if not s.void and isinstance(s.event, Purchase)
    ]


def payments(ledger: Ledger) -> list[Payment]:
    """Every payment to a producer no correction voided, in log order."""
    return [
        s.event
        for s in ledger.events_of_types(["payment"])
        if not s.void and isinstance(s.event, Payment)
    ]


def premiums_of(ledger: Ledger) -> list[Premium]:
    """Every premium received no correction voided, in log order."""
    return [
        s.event
        for s in ledger.events_of_types(["premium"])
        if not s.void and isinstance(s.event, Premium)
    ]


def allocate(total: Decimal, shares: dict[str, Fraction]) -> dict[str, Decimal]:
    """``total`` split by ``shares`` (summing to 1) to the cent, by largest remainder.

    >>> from fractions import Fraction as F
    >>> allocate(Decimal("100.00"), {"A": F(1, 3), "B": F(1, 3), "C": F(1, 3)})
    {'A': Decimal('33.34'), 'B': Decimal('33.33'), 'C': Decimal('33.33')}
    """
    cents = int((total / CENT).to_integral_value())
    if Decimal(cents) * CENT != total:
        raise ValueError(f"{total} is not a whole number of cents")
    exact = {k: cents * s for k, s in shares.items()}
    floors = {k: v.numerator // v.denominator for k, v in exact.items()}
    left = cents - sum(floors.values())
    order = sorted(exact, key=lambda k: (-(exact[k] - floors[k]), k))
    for k in order[:left]:
        floors[k] += 1
    return {k: Decimal(v) * CENT for k, v in floors.items()}


def source_producers(
    ledger: Ledger, lot: str
) -> tuple[dict[str | None, Fraction], dict[str | None, list[str]]]:
    """Each producer's exact share of ``lot`` (None: sources of unknown origin), and their lots.

    The shares are :func:`lottrace.graph.source_shares` of the lot's lineage,
    summed per producer (as ``lottrace upstream`` does).
    """
    shares = source_shares(ancestor_inputs(ledger, lot), lot)
    out: dict[str | None, Fraction] = {}
    lots: dict[str | None, list[str]] = {}
    states = ledger.lots_states(shares)
    for source, (n, d) in shares.items():
        st = states.get(source)
        producer = None
        if st is not None:
            creator = ledger.event(st.created_by).event
            if isinstance(creator, Harvest) and creator.lot == source:
                producer = creator.producer
        out[producer] = out.get(producer, Fraction(0)) + Fraction(n, d)
        lots.setdefault(producer, []).append(source)
    return out, {p: sorted(v) for p, v in lots.items()}


def _money(x: Decimal) -> str:
    return str(x.quantize(CENT))


def premiums(ledger: Ledger, lot: str) -> JSON:
    """The premiums an exported lot earned, each producer's share, what was paid, what is owed.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        An exported lot with ``premium`` events.

    Returns
    -------
    dict
        ``lot``, ``kg`` (the lot's weight), ``currency``, ``received`` (the
        premiums' sum), ``contracts`` (contract, kg, lines with their
        ``amount``, amount), ``rounding`` (:data:`ROUNDING_RULE`),
        ``producers`` (producer, ``share`` and its exact ``share_fraction``,
        ``kg`` that reached the lot, ``premium``, ``paid``, ``owed``, lots),
        ``unallocated`` (the share of sources of unknown origin, kept by the
        cooperative) and ``totals`` (premium, paid, owed). Amounts are decimal
        strings to the cent; ``paid`` counts ``payment`` events of kind
        ``premium`` naming one of the lot's contracts or the lot itself.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.
    LottraceError
        If the lot has no premium, or premiums in two currencies.
    """
    st = ledger.require_lot(lot)
    mine = [p for p in premiums_of(ledger) if p.lot == lot]
    if not mine:
        raise LottraceError(f"lot {lot} has no premium recorded (a 'premium' event)")
    currencies = sorted({p.currency for p in mine})
    if len(currencies) > 1:
        raise LottraceError(f"lot {lot} has premiums in {' and '.join(currencies)}; one currency")
    currency = currencies[0]
    received = sum((p.amount for p in mine), Decimal(0))
    contracts = {p.contract for p in mine}
    shares, lots = source_producers(ledger, lot)
    keys = {("" if p is None else p): s for p, s in shares.items()}
    alloc = allocate(received, keys)
    paid: dict[str, Decimal] = {}
    for pay in payments(ledger):
        if pay.kind != "premium" or pay.currency != currency:
            continue
        if pay.contract in contracts or (pay.contract is None and pay.lot == lot):
            paid[pay.producer] = paid.get(pay.producer, Decimal(0)) + pay.amount
    kn, kd = st.kg.as_integer_ratio()
    rows: list[JSON] = []
    for producer, share in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0] or "")):
        if producer is None:
            continue
        got = paid.pop(producer, Decimal(0))
        rows.append(
            {
                "producer": producer,
                "share": float(share),
                "share_fraction": f"{share.numerator}/{share.denominator}",
                "kg": round(float(share * Fraction(kn, kd)), 3),
                "premium": _money(alloc[producer]),
                "paid": _money(got),
                "owed": _money(alloc[producer] - got),
                "lots": lots[producer],
            }
        )
    for producer, got in sorted(paid.items()):  # paid a share of a lot they are not in
        rows.append(
            {
                "producer": producer,
                "share": 0.0,
                "share_fraction": "0/1",
                "kg": 0.0,
                "premium": "0.00",
                "paid": _money(got),
                "owed": _money(-got),
                "lots": [],
            }
        )
    unallocated = alloc.get("", Decimal(0))
    total_paid = sum((Decimal(r["paid"]) for r in rows), Decimal(0))
    allocated = sum((Decimal(r["premium"]) for r in rows), Decimal(0))
    return {
        "lot": lot,
        "kg": st.kg,
        "currency": currency,
        "received": _money(received),
        "contracts": [_contract(p) for p in mine],
        "rounding": ROUNDING_RULE,
        "producers": rows,
        "unallocated": {
            "premium": _money(unallocated),
            "lots": lots.get(None, []),
        },
        "totals": {
            "premium": _money(allocated),
            "paid": _money(total_paid),
            "owed": _money(allocated - total_paid),
        },
    }


def _contract(p: Premium) -> JSON:
    return {
        "contract": p.contract,
        "kg": p.kg,
        "buyer": p.buyer,
        "lines": [
            {"kind": x.kind, "rate": str(x.rate), "per": x.per, "amount": _money(p.line_amount(x))}
            for x in p.lines
        ],
        "amount": _money(p.amount),
    }


def total(amounts: Iterable[Decimal]) -> Decimal:
    """A sum of amounts that starts from Decimal 0 (``sum`` starts from int 0)."""
    return sum(amounts, Decimal(0))
