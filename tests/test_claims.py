"""Claims as typed attributes: what a blend keeps, what a claim lot refuses, and why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.claims import claims
from lottrace.cli import cli
from lottrace.errors import RuleViolation
from lottrace.ledger import Ledger

from factories import batch, drying, export, harvest, mill, qc


def woman(lot: str, day: int, kg: float = 1000, *, land: str | None = None, **kw: Any) -> Any:
    """A woman's harvest on land registered in her name (or in ``land``'s)."""
    h = harvest(lot, day, kg, women_producer=True, certifications=["organic"], **kw)
    h["plot"] = {**h["plot"], "registered_to": land or h["producer"]}
    return h


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger.create(tmp_path / "c.db") as led:
        led.append(
            batch(
                woman("W1", 1),
                woman("W2", 2),
                woman("W3", 3, land="HUSBAND-1"),
                harvest("M1", 4, certifications=["organic"]),
                drying("W1", 10, 200),
                drying("W2", 11, 200),
                drying("W3", 12, 200),
                drying("M1", 13, 200),
            )
        )
        yield led


def test_a_cafe_femenino_lot_that_holds(ledger: Ledger) -> None:
    ledger.append(batch(qc("CF1", 15, inputs=[("W1", 200), ("W2", 200)], claims=["cafe_femenino"])))
    c = claims(ledger, "CF1")
    assert c["declared"] == ["cafe_femenino"]
    assert c["held"] == ["organic", "cafe_femenino", "eudr_cleared"]
    # the dry mill's grades and an export split keep it
    ledger.append(
        batch(
            mill(
                30,
                [("CF1", 400)],
                [("G1", 250, "Grade 1"), ("G2", 50, "Grade 2")],
                claims=["cafe_femenino"],
            ),
            export("E1", 40, 100, inputs=[{"lot": "G1", "kg": 100}], claims=["cafe_femenino"]),
        )
    )
    assert "cafe_femenino" in claims(ledger, "G2")["held"]
    assert "cafe_femenino" in claims(ledger, "E1")["held"]


def test_a_claim_lot_refuses_a_mans_lot(ledger: Ledger) -> None:
    n = ledger.stats()["events"]
    with pytest.raises(RuleViolation) as info:
        ledger.append(
            batch(qc("CF1", 15, inputs=[("W1", 200), ("M1", 200)], claims=["cafe_femenino"]))
        )
    text = str(info.value)
    assert "\n" not in text
    assert (
        "[claim-broken] field 'claims': lot CF1 is declared cafe_femenino but harvest lot M1:"
        in (text)
    )
    assert "producer PRD-M1 is not recorded as a woman" in text
    assert ledger.stats()["events"] == n  # nothing written
    assert ledger.lot("CF1") is None


def test_land_in_another_name_breaks_cafe_femenino(ledger: Ledger) -> None:
    with pytest.raises(RuleViolation, match="plot PLOT-W3 is registered to HUSBAND-1, not to"):
        ledger.append(
            batch(qc("CF1", 15, inputs=[("W1", 200), ("W3", 200)], claims=["cafe_femenino"]))
        )


def test_a_blend_without_declaration_drops_the_claim_and_says_why(ledger: Ledger) -> None:
    report = ledger.append(batch(qc("B1", 15, inputs=[("W1", 200), ("M1", 200)])))
    assert report.added == 1
    c = claims(ledger, "B1")
    assert c["held"] == ["organic", "eudr_cleared"]
    cf = next(r for r in c["not_held"] if r["claim"] == "cafe_femenino")
    assert cf["dropped_at"] == ["B1"]
    assert "PRD-M1 is not recorded as a woman" in cf["reason"]
    sp = next(r for r in c["not_held"] if r["claim"] == "single_producer")
    assert sp["reason"] == "lot B1 blends coffee of producers PRD-M1 and PRD-W1"
    # a lot never certified did not *drop* the claim: no source held it
    rf = next(r for r in c["not_held"] if r["claim"] == "rainforest")
    assert rf["dropped_at"] == []


def test_single_producer_micro_lot(ledger: Ledger) -> None:
    ledger.append(batch(qc("ML1", 15, inputs=[("W1", 150)], claims=["single_producer"])))
    assert claims(ledger, "ML1")["producers"] == ["PRD-W1"]
    with pytest.raises(RuleViolation, match="blends coffee of producers PRD-W1 and PRD-W2"):
        ledger.append(
            batch(qc("ML2", 16, inputs=[("W1", 50), ("W2", 50)], claims=["single_producer"]))
        )


def test_eudr_cleared_needs_every_plot_located(ledger: Ledger) -> None:
    bare = harvest("X1", 5, certifications=["organic"])
    bare["plot"] = {"id": "PLOT-X1", "area_ha": 6.0, "geometry": None}
    ledger.append(batch(bare, drying("X1", 14, 200)))
    with pytest.raises(RuleViolation, match="plot PLOT-X1 has no geometry"):
        ledger.append(
            batch(qc("EU1", 15, inputs=[("W1", 100), ("X1", 100)], claims=["eudr_cleared"]))
        )


def test_a_harvest_declares_what_it_holds(ledger: Ledger) -> None:
    ledger.append(batch(harvest("H9", 5, certifications=["organic"], claims=["organic"])))
    with pytest.raises(RuleViolation, match="H9b is declared fairtrade but harvest lot H9b"):
        ledger.append(batch(harvest("H9b", 5, claims=["fairtrade"])))


def test_claims_need_a_lot_formed(ledger: Ledger) -> None:
    with pytest.raises(RuleViolation, match="a drying that forms no lot cannot declare claims"):
        ledger.append(batch(drying("W1", 14, 190, claims=["organic"])))


def test_cli_claims(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append(batch(qc("B1", 15, inputs=[("W1", 200), ("M1", 200)])))
    db = str(tmp_path / "c.db")
    r = CliRunner().invoke(cli, ["--db", db, "claims", "B1"])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("lot B1 holds: organic, eudr_cleared\n")
    assert "not cafe_femenino (dropped at B1): harvest lot M1" in r.output
    data = json.loads(CliRunner().invoke(cli, ["--db", db, "claims", "B1", "--json"]).stdout)
    assert data["held"] == ["organic", "eudr_cleared"]
    r = CliRunner().invoke(cli, ["--db", db, "claims", "NOPE"])
    assert r.exit_code != 0 and "NOPE" in r.stderr
