"""Payment data stay with the cooperative: never in EPCIS, never in a passport (but one opt-in line)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.epcis import export_document
from lottrace.errors import LottraceError
from lottrace.events import event_id, parse_event
from lottrace.ledger import Ledger
from lottrace.passport import passport
from lottrace.statement import Assumptions
from records import certificate, payment, premium, purchase

from factories import batch, chain, correction

PAY = payment("PRD-H1", "123.45", reference="BCP-SECRET-77", contract="C-M1")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.create(tmp_path / "p.db") as led:
        led.append(
            batch(
                *chain(),
                purchase("H1", "PRD-H1", receipt="BOLETA-991", price_per_kg="9.00"),
                certificate(),
                premium("M1", 200, fob_price_per_lb="2.50"),
                PAY,
                payment("PRD-H2", "9.99", reference="TX-VOID", day=71),
            )
        )
        voided = payment("PRD-H2", "9.99", reference="TX-VOID", day=71)
        led.append(batch(correction(event_id(parse_event(voided)), day=72)))
        yield led


def test_epcis_export_leaves_every_record_out(ledger: Ledger) -> None:
    doc = export_document(ledger)
    text = json.dumps(doc)
    assert len(doc["epcisBody"]["eventList"]) == len(chain())
    for secret in ("BCP-SECRET-77", "BOLETA-991", "123.45", "TX-VOID", "ORG-1", "premium"):
        assert secret not in text
    assert export_document(ledger, lot="M1", upstream=True)["epcisBody"]["eventList"]


def test_epcis_export_of_a_payment_by_id_is_refused(ledger: Ledger) -> None:
    eid = event_id(parse_event(PAY))
    with pytest.raises(LottraceError, match="is a payment: certificates, purchases, payments"):
        export_document(ledger, event_id=eid)


def test_the_passport_never_shows_payments(ledger: Ledger) -> None:
    page = passport(ledger, "M1")
    for secret in ("BCP-SECRET-77", "BOLETA-991", "123.45", "Farm-gate"):
        assert secret not in page


def test_the_cooperative_may_add_one_aggregate_line(ledger: Ledger) -> None:
    a = Assumptions({"PEN": Decimal("0.27")})
    page = passport(ledger, "M1", farm_gate=a)
    # 9.00 PEN x 0.27 = 2.43 USD/kg parchment, / 0.8 = 3.0375/kg green; FOB 2.50/lb = 5.5116/kg
    assert "Farm-gate price: 55.1 % of FOB" in page
    assert "BOLETA-991" not in page and "123.45" not in page
    es = passport(ledger, "M1", farm_gate=a, lang="es")
    assert "Precio en chacra: 55,1 % del precio FOB" in es
    # without an exchange rate no figure is shown rather than a wrong one
    assert "Farm-gate" not in passport(ledger, "M1", farm_gate=Assumptions())


def test_cli_passport_opt_in(ledger: Ledger, tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    out = tmp_path / "m1.html"
    r = CliRunner().invoke(cli, ["--db", db, "passport", "M1", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "Farm-gate" not in out.read_text(encoding="utf-8")
    r = CliRunner().invoke(
        cli,
        ["--db", db, "passport", "M1", "-o", str(out), "--farm-gate-share", "--fx", "PEN=0.27"],
    )
    assert r.exit_code == 0, r.output
    assert "Farm-gate price: 55.1 % of FOB" in out.read_text(encoding="utf-8")
    r = CliRunner().invoke(cli, ["--db", db, "epcis", "export", "-o", str(tmp_path / "e.json")])
    assert r.exit_code == 0, r.output
    assert "BCP-SECRET-77" not in (tmp_path / "e.json").read_text(encoding="utf-8")
