"""A producer's season statement: the numbers, the Spanish HTML, the analyst's view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.errors import LottraceError
from lottrace.ledger import Ledger
from lottrace.statement import Assumptions, assumptions, render_html, statement
from records import payment, premium, purchase

from factories import batch, chain


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.create(tmp_path / "s.db") as led:
        led.append(
            batch(
                *chain(),
                purchase(
                    "H1",
                    "PRD-H1",
                    kg=204,
                    deductions=[{"kind": "moisture", "kg": 2.5}, {"kind": "tare", "kg": 1.5}],
                    price_per_kg="10.00",
                ),
                payment("PRD-H1", "500.00", day=13, kind="advance", method="cash", currency="PEN"),
                premium("M1", 200, fob_price_per_lb="2.50"),
                payment(
                    "PRD-H1", "30.00", contract="C-M1", method="collector", collector="Don Lucho"
                ),
            )
        )
        yield led


def test_the_season_balance(ledger: Ledger) -> None:
    data = statement(ledger, "PRD-H1", "2025")
    assert [d["lot"] for d in data["deliveries"]] == ["H1"]
    p = data["purchases"][0]
    assert (p["net_kg"], p["amount"], p["deductions"]["moisture"]) == (200.0, "2000.00", 2.5)
    assert data["premiums"][0]["amount"] == "58.79"  # 2/3 of 88.18, largest remainder
    assert data["balance"] == {
        "PEN": {"bought": "2000.00", "premiums": "0.00", "paid": "500.00", "balance": "1500.00"},
        "USD": {"bought": "0.00", "premiums": "58.79", "paid": "30.00", "balance": "28.79"},
    }


def test_farm_gate_share_and_living_income_gap(ledger: Ledger) -> None:
    a = Assumptions({"PEN": Decimal("0.27")}, Decimal("0.8"), Decimal("1000"), "USD")
    data = statement(ledger, "PRD-H1", "2025", a)["analysis"]
    fg = data["farm_gate"][0]
    # 10 PEN/kg parchment = 2.70 USD, / 0.8 = 3.375 USD/kg green; FOB 2.50/lb = 5.51 USD/kg
    assert (fg["lot"], fg["farm_gate_per_kg_green"], fg["fob_per_kg_green"]) == (
        "M1",
        "3.38",
        "5.51",
    )
    assert fg["share_pct"] == 61.2
    # income 2000 PEN = 540 USD + 58.79 premium = 598.79; gap to 1000
    assert data["income"] == {
        "currency": "USD",
        "total": "598.79",
        "benchmark": "1000.00",
        "gap": "401.21",
    }
    no_fx = statement(ledger, "PRD-H1", "2025")["analysis"]["farm_gate"][0]
    assert no_fx["share_pct"] is None and no_fx["note"] == "no exchange rate for PEN"


def test_html_is_spanish_self_contained_and_prints(ledger: Ledger) -> None:
    page = render_html(statement(ledger, "PRD-H1", "2025"))
    assert page.startswith("<!DOCTYPE html>") and '<html lang="es">' in page
    assert "@media print" in page and "@page" in page
    assert "Estado de cuenta 2025" in page and "Saldo a favor" in page
    assert "2000,00 PEN" in page and "1500,00" in page and "adelanto" in page
    assert "vía acopiador (Don Lucho)" in page
    assert "<script" not in page and "http" not in page  # nothing to fetch


def test_html_escapes_what_it_shows(ledger: Ledger) -> None:
    ledger.append(batch(payment("PRD-H1", "1.00", reference="<b>x</b>", day=71)))
    page = render_html(statement(ledger, "PRD-H1", "2025"))
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


def test_nothing_in_the_season_is_one_line(ledger: Ledger) -> None:
    with pytest.raises(
        LottraceError, match="producer PRD-H1 has no harvest, purchase or payment in 2024"
    ):
        statement(ledger, "PRD-H1", "2024")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((["PEN"], "0.8", None), "--fx 'PEN' is not CUR=RATE"),
        ((["PEN=x"], "0.8", None), "--fx rate 'x' is not a number"),
        (([], "1.5", None), "--green-ratio '1.5' is above 1"),
        (([], "0.8", "12000"), "--living-income '12000' is not AMOUNT CUR"),
        (([], "0.8", "-5 PEN"), "must be a number above 0"),
    ],
)
def test_bad_assumptions(args: tuple[list[str], str, str | None], message: str) -> None:
    with pytest.raises(LottraceError, match=message):
        assumptions(*args)


def test_cli_producer_statement(ledger: Ledger, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    out = tmp_path / "estado.html"
    r = CliRunner().invoke(
        cli, ["--db", db, "producer-statement", "PRD-H1", "--season", "2025", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    r = CliRunner().invoke(
        cli,
        [
            "--db",
            db,
            "producer-statement",
            "PRD-H1",
            "--season",
            "2025",
            "--json",
            "--fx",
            "PEN=0.27",
            "--living-income",
            "1000 USD",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["analysis"]["income"]["gap"] == "401.21"
    r = CliRunner().invoke(cli, ["--db", db, "producer-statement", "PRD-H1", "--season", "2025"])
    assert r.exit_code == 2 and "give -o FILE.html" in r.stderr
    r = CliRunner().invoke(
        cli, ["--db", db, "producer-statement", "PRD-H1", "--season", "2025", "-o", db]
    )
    assert r.exit_code != 0
    r = CliRunner().invoke(
        cli,
        ["--db", db, "producer-statement", "PRD-H1", "--season", "2025", "--json", "--fx", "x"],
    )
    assert r.exit_code == 1 and r.stderr == "Error: --fx 'x' is not CUR=RATE, e.g. PEN=0.27\n"


def test_a_benchmark_in_the_farm_currency_converts_premiums_back(ledger: Ledger) -> None:
    a = Assumptions({"PEN": Decimal("0.27")}, Decimal("0.8"), Decimal("5000"), "PEN")
    income = statement(ledger, "PRD-H1", "2025", a)["analysis"]["income"]
    # 2000 PEN bought + 58.79 USD premium / 0.27 = 217.74 PEN
    assert income == {
        "currency": "PEN",
        "total": "2217.74",
        "benchmark": "5000.00",
        "gap": "2782.26",
    }
