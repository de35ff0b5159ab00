"""A producer's season statement: deliveries, purchases, premiums, payments and balance.

:func:`statement` gathers it as plain data from the records
(:mod:`lottrace.money`) and the producer's harvests; :func:`render_html`
writes it in Spanish as one self-contained HTML page that prints on A4
(print CSS, no external file). For analysts the data also hold the
farm-gate price as a share of each export lot's FOB price and the gap
between the producer's coffee income and a living-income benchmark, both
with the assumptions stated.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .errors import LottraceError
from .events import CENT, KG_PER_LB, Harvest, Payment, Purchase
from .ledger import Ledger
from .money import payments, premiums, premiums_of, purchases
from .numfmt import number

__all__ = ["Assumptions", "assumptions", "farm_gate", "render_html", "statement"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Assumptions:
    """What the analysis assumes, all configurable (``producer-statement`` options)."""

    #: Exchange rates to the FOB currency: {"PEN": Decimal("0.27")} means 1 PEN = 0.27 USD.
    fx: dict[str, Decimal] = field(default_factory=dict)
    #: Kilograms of green coffee per kilogram of parchment bought (about 0.8).
    green_per_parchment: Decimal = Decimal("0.8")
    #: A living-income benchmark for the season, and its currency (None: no gap).
    living_income: Decimal | None = None
    living_income_currency: str | None = None


def _season_of(ev: Purchase | Payment) -> str:
    return ev.season or str(ev.time.date().year)


def _money(x: Decimal) -> str:
    return str(x.quantize(CENT))


def statement(
    ledger: Ledger, producer: str, season: str, assume: Assumptions | None = None
) -> JSON:
    """A producer's season: deliveries, purchases, premiums, payments, balance and analysis.

    A purchase or payment belongs to the season its ``season`` field names,
    or else to the year of its date; a harvest to the year of its date.
    Premiums are the producer's shares (:func:`lottrace.money.premiums`) of
    each exported lot with premiums that the season's harvests reached.

    Returns
    -------
    dict
        ``producer``, ``season``, ``deliveries``, ``purchases``,
        ``premiums``, ``payments``, ``balance`` (per currency: ``bought``,
        ``premiums``, ``paid``, ``balance`` = bought + premiums - paid) and
        ``analysis`` (``farm_gate`` per export lot, ``income``, the
        ``assumptions``). Amounts are decimal strings to the cent.

    Raises
    ------
    LottraceError
        If the producer has nothing in the season.
    """
    assume = assume or Assumptions()
    deliveries = []
    mine: set[str] = set()
    for s in ledger.events_of_types(["harvest"]):
        h = s.event
        if s.void or not isinstance(h, Harvest) or h.producer != producer:
            continue
        if str(h.time.date().year) != season:
            continue
        mine.add(h.lot)
        deliveries.append(
            {"lot": h.lot, "date": h.time.date().isoformat(), "plot": h.plot.id, "kg": h.kg}
        )
    bought = [p for p in purchases(ledger) if p.producer == producer and _season_of(p) == season]
    paid = [p for p in payments(ledger) if p.producer == producer and _season_of(p) == season]
    shares = []
    fob: dict[str, tuple[Decimal, str]] = {}
    for lot in sorted({p.lot for p in premiums_of(ledger)}):
        data = premiums(ledger, lot)
        row = next((r for r in data["producers"] if r["producer"] == producer), None)
        if row is None or not set(row["lots"]) & mine:
            continue
        shares.append(
            {
                "lot": lot,
                "contracts": [c["contract"] for c in data["contracts"]],
                "kg": row["kg"],
                "share": row["share"],
                "amount": row["premium"],
                "currency": data["currency"],
            }
        )
        prices = [p.fob_price_per_lb for p in premiums_of(ledger) if p.lot == lot]
        price = next((x for x in prices if x is not None), None)
        if price is not None:
            fob[lot] = (price, data["currency"])
    if not (deliveries or bought or paid or shares):
        raise LottraceError(f"producer {producer} has no harvest, purchase or payment in {season}")
    balance: dict[str, dict[str, Decimal]] = {}

    def add(currency: str, key: str, amount: Decimal) -> None:
        b = balance.setdefault(currency, {k: Decimal(0) for k in ("bought", "premiums", "paid")})
        b[key] += amount

    purchase_rows = []
    for p in bought:
        add(p.currency, "bought", p.amount)
        kinds = dict.fromkeys(("moisture", "defects", "tare", "other"), 0.0)
        for d in p.deductions:
            kinds[d.kind] += d.kg
        purchase_rows.append(
            {
                "date": p.time.date().isoformat(),
                "receipt": p.receipt,
                "lot": p.lot,
                "kg": p.kg,
                "deductions": kinds,
                "net_kg": float(p.net_kg),
                "price_per_kg": str(p.price_per_kg),
                "amount": _money(p.amount),
                "currency": p.currency,
            }
        )
    for sh in shares:
        add(sh["currency"], "premiums", Decimal(sh["amount"]))
    payment_rows = []
    for pay in paid:
        add(pay.currency, "paid", pay.amount)
        payment_rows.append(
            {
                "date": pay.time.date().isoformat(),
                "kind": pay.kind,
                "method": pay.method,
                "collector": pay.collector,
                "reference": pay.reference,
                "lot": pay.lot,
                "contract": pay.contract,
                "amount": _money(pay.amount),
                "currency": pay.currency,
            }
        )
    totals = {
        cur: {
            "bought": _money(b["bought"]),
            "premiums": _money(b["premiums"]),
            "paid": _money(b["paid"]),
            "balance": _money(b["bought"] + b["premiums"] - b["paid"]),
        }
        for cur, b in sorted(balance.items())
    }
    return {
        "producer": producer,
        "season": season,
        "deliveries": deliveries,
        "purchases": purchase_rows,
        "premiums": shares,
        "payments": payment_rows,
        "balance": totals,
        "analysis": _analysis(bought, shares, fob, assume),
    }


def _convert(amount: Decimal, cur: str, to: str, fx: dict[str, Decimal]) -> Decimal | None:
    """``amount`` in ``cur`` as ``to``: ``fx`` maps currencies to their rate in one common
    currency (the FOB's, which has no rate), so PEN=0.27 also turns USD into PEN."""
    if cur == to:
        return amount
    if cur in fx and to in fx:
        return amount * fx[cur] / fx[to]
    if cur in fx:
        return amount * fx[cur]
    if to in fx:
        return amount / fx[to]
    return None


def _analysis(
    bought: list[Purchase], shares: list[JSON], fob: dict[str, tuple[Decimal, str]], a: Assumptions
) -> JSON:
    farm_gate = []
    net = sum((p.net_kg for p in bought), Decimal(0))
    for lot, (price_lb, cur) in sorted(fob.items()):
        fob_kg = price_lb / KG_PER_LB
        paid = [_convert(p.amount, p.currency, cur, a.fx) for p in bought]
        row: JSON = {"lot": lot, "fob_per_kg_green": str(fob_kg.quantize(CENT)), "currency": cur}
        if not bought or any(x is None for x in paid) or net == 0:
            missing = sorted({p.currency for p in bought} - {cur} - set(a.fx))
            row |= {
                "farm_gate_per_kg_green": None,
                "share_pct": None,
                "note": f"no exchange rate for {', '.join(missing)}" if missing else "no purchase",
            }
        else:
            per_kg = sum((x for x in paid if x is not None), Decimal(0)) / net
            green = per_kg / a.green_per_parchment
            row |= {
                "farm_gate_per_kg_green": str(green.quantize(CENT)),
                "share_pct": float((green / fob_kg * 100).quantize(Decimal("0.1"))),
            }
        farm_gate.append(row)
    income: JSON | None = None
    if a.living_income is not None and a.living_income_currency is not None:
        cur = a.living_income_currency
        parts = [_convert(p.amount, p.currency, cur, a.fx) for p in bought]
        parts += [_convert(Decimal(s["amount"]), s["currency"], cur, a.fx) for s in shares]
        if any(x is None for x in parts):
            income = {
                "currency": cur,
                "total": None,
                "benchmark": str(a.living_income),
                "gap": None,
                "note": "an amount has no exchange rate to " + cur,
            }
        else:
            got = sum((x for x in parts if x is not None), Decimal(0))
            income = {
                "currency": cur,
                "total": _money(got),
                "benchmark": _money(a.living_income),
                "gap": _money(a.living_income - got),
            }
    return {
        "farm_gate": farm_gate,
        "income": income,
        "assumptions": {
            "fx": {k: str(v) for k, v in sorted(a.fx.items())},
            "green_per_parchment": str(a.green_per_parchment),
            "living_income": None if a.living_income is None else str(a.living_income),
            "living_income_currency": a.living_income_currency,
            "farm_gate": "the producer's season purchases (amount / net kg of parchment), in "
            "the FOB currency, divided by green_per_parchment, against the contract's FOB "
            "price per kg of green",
        },
    }


# --------------------------------------------------------------------------- HTML

_KIND = {"advance": "adelanto", "final": "pago final", "premium": "prima"}
_METHOD = {"cash": "efectivo", "bank_transfer": "transferencia", "collector": "vía acopiador"}
_DEDUCTION = {"moisture": "humedad", "defects": "defectos", "tare": "tara", "other": "otros"}

_CSS = """
body{font-family:Georgia,'Times New Roman',serif;color:#111;margin:2rem auto;max-width:52rem;
line-height:1.35}
h1{font-size:1.5rem;margin:0 0 .2rem}h2{font-size:1.1rem;margin:1.4rem 0 .4rem;
border-bottom:1px solid #999}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #bbb;padding:.2rem .4rem;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#444}.total td{font-weight:bold}.none{color:#666;font-style:italic}
@page{size:A4;margin:15mm}
@media print{body{margin:0;max-width:none;font-size:10pt}h2{break-after:avoid}
tr{break-inside:avoid}a{color:inherit;text-decoration:none}}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _amount(text: str | None) -> str:
    return "" if text is None else number(float(text), 2, "es", trim=False)


def _table(head: list[tuple[str, bool]], rows: list[list[Any]], empty: str) -> str:
    if not rows:
        return f'<p class="none">{_e(empty)}</p>'
    th = "".join(f'<th class="n">{_e(h)}</th>' if n else f"<th>{_e(h)}</th>" for h, n in head)
    body = []
    for r in rows:
        cells = "".join(
            f'<td class="n">{_e(v)}</td>' if n else f"<td>{_e(v)}</td>"
            for v, (_h, n) in zip(r, head, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(data: JSON) -> str:
    """The statement as a self-contained HTML page in Spanish, for printing."""
    deliveries = _table(
        [("Fecha", False), ("Lote", False), ("Parcela", False), ("Kg (cereza)", True)],
        [[d["date"], d["lot"], d["plot"], number(d["kg"], 1, "es")] for d in data["deliveries"]],
        "Sin entregas registradas.",
    )
    purchases_html = _table(
        [
            ("Fecha", False),
            ("Boleta", False),
            ("Lote", False),
            ("Kg", True),
            ("Humedad", True),
            ("Defectos", True),
            ("Tara", True),
            ("Kg netos", True),
            ("Precio/kg", True),
            ("Importe", True),
        ],
        [
            [
                p["date"],
                p["receipt"],
                p["lot"],
                number(p["kg"], 1, "es"),
                number(p["deductions"]["moisture"], 1, "es"),
                number(p["deductions"]["defects"], 1, "es"),
                number(p["deductions"]["tare"], 1, "es"),
                number(p["net_kg"], 1, "es"),
                f"{_amount(p['price_per_kg'])} {p['currency']}",
                f"{_amount(p['amount'])} {p['currency']}",
            ]
            for p in data["purchases"]
        ],
        "Sin compras registradas.",
    )
    premiums_html = _table(
        [
            ("Lote exportado", False),
            ("Contrato", False),
            ("Kg que llegaron", True),
            ("Participación", True),
            ("Prima", True),
        ],
        [
            [
                s["lot"],
                ", ".join(s["contracts"]),
                number(s["kg"], 1, "es"),
                f"{number(s['share'] * 100, 2, 'es')} %",
                f"{_amount(s['amount'])} {s['currency']}",
            ]
            for s in data["premiums"]
        ],
        "Sin primas en esta campaña.",
    )
    payments_html = _table(
        [
            ("Fecha", False),
            ("Tipo", False),
            ("Forma", False),
            ("Referencia", False),
            ("Importe", True),
        ],
        [
            [
                p["date"],
                _KIND.get(p["kind"], p["kind"]),
                _METHOD.get(p["method"], p["method"])
                + (f" ({p['collector']})" if p["collector"] else ""),
                p["reference"],
                f"{_amount(p['amount'])} {p['currency']}",
            ]
            for p in data["payments"]
        ],
        "Sin pagos registrados.",
    )
    balance_rows = [
        [
            cur,
            _amount(b["bought"]),
            _amount(b["premiums"]),
            _amount(b["paid"]),
            _amount(b["balance"]),
        ]
        for cur, b in data["balance"].items()
    ]
    balance_html = _table(
        [
            ("Moneda", False),
            ("Compras", True),
            ("Primas", True),
            ("Pagado", True),
            ("Saldo a favor", True),
        ],
        balance_rows,
        "Sin movimientos.",
    )
    title = f"Estado de cuenta {data['season']}: productor(a) {data['producer']}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="es"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="meta">Campaña {_e(data["season"])}. Saldo = compras + primas − pagos. '
        "Importes redondeados al céntimo; las primas se reparten según los kilos de cada "
        "productor(a) que llegaron al lote exportado (resto mayor).</p>"
        f"<h2>Entregas</h2>{deliveries}"
        f"<h2>Compras, precios y descuentos</h2>{purchases_html}"
        f"<h2>Primas</h2>{premiums_html}"
        f"<h2>Pagos</h2>{payments_html}"
        f"<h2>Saldo</h2>{balance_html}"
        "</body></html>\n"
    )


def _decimal(text: str, what: str) -> Decimal:
    from decimal import InvalidOperation

    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise LottraceError(f"{what} {text!r} is not a number like 0.27") from None
    if not value.is_finite() or value <= 0:
        raise LottraceError(f"{what} {text!r} must be a number above 0")
    return value


def assumptions(
    fx: tuple[str, ...] | list[str], green_ratio: str, living_income: str | None
) -> Assumptions:
    """The command line's ``--fx PEN=0.27``, ``--green-ratio`` and ``--living-income '12000 PEN'``."""
    rates: dict[str, Decimal] = {}
    for item in fx:
        cur, sep, rate = item.partition("=")
        if not sep or len(cur.strip()) != 3 or not cur.strip().isalpha():
            raise LottraceError(f"--fx {item!r} is not CUR=RATE, e.g. PEN=0.27")
        rates[cur.strip().upper()] = _decimal(rate, "--fx rate")
    ratio = _decimal(green_ratio, "--green-ratio")
    if ratio > 1:
        raise LottraceError(f"--green-ratio {green_ratio!r} is above 1 (green weighs less)")
    amount = currency = None
    if living_income is not None:
        parts = living_income.split()
        if len(parts) != 2 or len(parts[1]) != 3 or not parts[1].isalpha():
            raise LottraceError(
                f"--living-income {living_income!r} is not AMOUNT CUR, e.g. '12000 PEN'"
            )
        amount, currency = _decimal(parts[0], "--living-income"), parts[1].upper()
    return Assumptions(rates, ratio, amount, currency)


def farm_gate(ledger: Ledger, lot: str, assume: Assumptions | None = None) -> JSON:
    """The farm-gate price of an exported lot as a share of its FOB price: one aggregate figure.

    What a cooperative may choose to show on a passport: the purchases of the
    lot's source lots (their amount over their net kg, in the FOB currency),
    per kg of green (``green_per_parchment``), against the contract's
    ``fob_price_per_lb``. No producer, amount or receipt is in the answer.

    Returns
    -------
    dict
        ``lot``, ``share_pct`` (None when it cannot be computed) and ``note``
        (why not, or the basis).
    """
    from .money import source_producers

    a = assume or Assumptions()
    prices = [p for p in premiums_of(ledger) if p.lot == lot and p.fob_price_per_lb is not None]
    if not prices:
        return {"lot": lot, "share_pct": None, "note": "no FOB price (fob_price_per_lb)"}
    fob_price, cur = prices[-1].fob_price_per_lb, prices[-1].currency
    assert fob_price is not None
    _shares, lots = source_producers(ledger, lot)
    sources = {code for codes in lots.values() for code in codes}
    bought = [p for p in purchases(ledger) if p.lot in sources]
    if not bought:
        return {"lot": lot, "share_pct": None, "note": "no purchase of its source lots"}
    converted = [_convert(p.amount, p.currency, cur, a.fx) for p in bought]
    if any(x is None for x in converted):
        missing = sorted({p.currency for p in bought} - {cur} - set(a.fx))
        return {"lot": lot, "share_pct": None, "note": f"no exchange rate for {', '.join(missing)}"}
    per_kg = sum((x for x in converted if x is not None), Decimal(0)) / sum(
        (p.net_kg for p in bought), Decimal(0)
    )
    share = per_kg / a.green_per_parchment / (fob_price / KG_PER_LB) * 100
    return {
        "lot": lot,
        "share_pct": float(share.quantize(Decimal("0.1"))),
        "note": f"{len(bought)} purchases of its source lots against the FOB price",
    }
