"""Purchases, payments, premiums: their rules, and a lot's premium shared to the cent."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.errors import InvalidEvent, LottraceError, RuleViolation
from lottrace.events import parse_event
from lottrace.generate import generate
from lottrace.ledger import Ledger
from lottrace.money import allocate, premiums
from records import payment, premium, purchase

from factories import batch, chain


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger.create(tmp_path / "m.db") as led:
        led.append(batch(*chain()))  # H1 200 kg + H2 100 kg -> G1 -> M1 200 kg, exported
        yield led


def test_purchase_amount_is_net_kg_times_price_to_the_cent() -> None:
    p = parse_event(
        purchase(
            "H1",
            "PRD-H1",
            kg=103.4,
            deductions=[{"kind": "moisture", "kg": 2.1}, {"kind": "tare", "kg": 0.7}],
            price_per_kg="9.35",
        )
    )
    assert p.net_kg == Decimal("100.6")  # type: ignore[attr-defined]
    assert p.amount == Decimal("940.61")  # type: ignore[attr-defined]  # 940.61 exactly


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price_per_kg": "-1"}, "field 'price_per_kg'"),
        ({"price_per_kg": "9,50"}, "write decimals with a dot"),
        ({"price_per_kg": True}, "not true/false"),
        ({"currency": "soles"}, "field 'currency'"),
        ({"currency": None}, "field 'currency'"),
        ({"deductions": [{"kind": "moisture", "kg": 200}]}, "deductions weigh as much"),
        ({"deductions": [{"kind": "stones", "kg": 2}]}, "field 'deductions"),
    ],
)
def test_a_bad_purchase_is_one_line(change: dict[str, Any], message: str) -> None:
    data = {k: v for k, v in {**purchase("H1", "PRD-H1"), **change}.items() if v is not None}
    with pytest.raises(InvalidEvent, match=message) as info:
        parse_event(data)
    assert "\n" not in str(info.value)


def test_payment_via_a_collector_names_them() -> None:
    with pytest.raises(InvalidEvent, match="names the 'collector'"):
        parse_event(payment("PRD-H1", "10", method="collector"))
    assert parse_event(payment("PRD-H1", "10", method="collector", collector="Don Lucho"))


def test_purchase_rules(ledger: Ledger) -> None:
    n = ledger.stats()["events"]
    with pytest.raises(RuleViolation, match=r"\[record-lot\] field 'producer': lot H1 is"):
        ledger.append(batch(purchase("H1", "PRD-H2")))
    with pytest.raises(RuleViolation, match="lot G1 was not created by a harvest"):
        ledger.append(batch(purchase("G1", "PRD-H1")))
    with pytest.raises(RuleViolation, match="purchase happens at a gatherer: site or a hq:"):
        ledger.append(batch(purchase("H1", "PRD-H1", site="port:PAITA")))
    assert ledger.stats()["events"] == n
    assert ledger.append(batch(purchase("H1", "PRD-H1"))).added == 1


def test_premium_rules(ledger: Ledger) -> None:
    with pytest.raises(RuleViolation, match="lot G1 is only at gatherer_qc"):
        ledger.append(batch(premium("G1", 100)))
    with pytest.raises(RuleViolation, match="a premium cannot be paid on 300 kg"):
        ledger.append(batch(premium("M1", 300)))
    with pytest.raises(RuleViolation, match="lot NOPE was never created"):
        ledger.append(batch(payment("PRD-H1", "1.00", lot="NOPE")))


def test_premiums_share_and_round_to_the_cent(ledger: Ledger) -> None:
    ledger.append(batch(premium("M1", 200), payment("PRD-H1", "20.00", contract="C-M1")))
    data = premiums(ledger, "M1")
    # 200 kg = 440.92 lb x 0.20 = 88.18; H1 gave 2/3, H2 1/3: 58.787 and 29.393
    assert data["received"] == "88.18" and data["currency"] == "USD"
    rows = {r["producer"]: r for r in data["producers"]}
    assert (rows["PRD-H1"]["premium"], rows["PRD-H1"]["paid"], rows["PRD-H1"]["owed"]) == (
        "58.79",
        "20.00",
        "38.79",
    )
    assert (rows["PRD-H2"]["premium"], rows["PRD-H2"]["owed"]) == ("29.39", "29.39")
    assert rows["PRD-H1"]["share_fraction"] == "2/3" and rows["PRD-H1"]["kg"] == 133.333
    assert data["totals"] == {"premium": "88.18", "paid": "20.00", "owed": "68.18"}
    assert "largest remainders" in data["rounding"]


def test_premium_lines_per_lb_kg_and_flat(ledger: Ledger) -> None:
    lines = [
        {"kind": "fairtrade", "rate": "0.20", "per": "lb"},
        {"kind": "organic", "rate": "0.66", "per": "kg"},
        {"kind": "quality", "rate": "150", "per": "flat"},
    ]
    ledger.append(batch(premium("M1", 200, lines=lines)))
    data = premiums(ledger, "M1")
    assert [x["amount"] for x in data["contracts"][0]["lines"]] == ["88.18", "132.00", "150.00"]
    assert data["received"] == "370.18"


def test_a_premium_paid_to_someone_outside_the_lot_shows(ledger: Ledger) -> None:
    ledger.append(batch(premium("M1", 200), payment("PRD-X", "5.00", contract="C-M1")))
    rows = {r["producer"]: r for r in premiums(ledger, "M1")["producers"]}
    assert rows["PRD-X"]["owed"] == "-5.00" and rows["PRD-X"]["premium"] == "0.00"


def test_no_premium_is_one_line(ledger: Ledger) -> None:
    with pytest.raises(LottraceError, match="lot M1 has no premium recorded"):
        premiums(ledger, "M1")


def test_allocate_largest_remainder() -> None:
    shares = {"A": Fraction(1, 6), "B": Fraction(1, 3), "C": Fraction(1, 2)}
    assert allocate(Decimal("0.05"), shares) == {
        "A": Decimal("0.01"),
        "B": Decimal("0.02"),
        "C": Decimal("0.02"),
    }  # exact 0.83, 1.67 and 2.5 cents: floors 0 + 1 + 2, the two cents left to A (.83) and B (.67)


def test_cli_premiums(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append(batch(premium("M1", 200)))
    db = str(tmp_path / "m.db")
    r = CliRunner().invoke(cli, ["--db", db, "premiums", "M1"])
    assert r.exit_code == 0, r.output
    assert "received 88.18 USD" in r.output and "PRD-H1" in r.output
    assert "total premium 88.18 USD, paid 0.00, owed 88.18" in r.output
    data = json.loads(CliRunner().invoke(cli, ["--db", db, "premiums", "M1", "--json"]).stdout)
    assert data["received"] == "88.18"
    r = CliRunner().invoke(cli, ["--db", db, "premiums", "G1"])
    assert r.exit_code != 0
    assert r.stderr == "Error: lot G1 has no premium recorded (a 'premium' event)\n"


# --------------------------------------------------------------------------- generated seasons


def _independent_shares(ledger: Ledger, lot: str) -> dict[str | None, Fraction]:
    """Each producer's share of ``lot``, computed here from the raw links and harvests."""
    links: dict[str, dict[str, float]] = {}
    for src, dst, kg, _seq, _t in ledger.lineage_links(lot, direction="up"):
        links.setdefault(dst, {})
        links[dst][src] = links[dst].get(src, 0.0) + kg
    producer = {}
    for s in ledger.iter_events():
        if s.event.type == "harvest" and not s.void:
            producer[s.event.subject] = s.event.producer  # type: ignore[attr-defined]
    out: dict[str | None, Fraction] = {}

    def walk(code: str, weight: Fraction) -> None:
        ins = links.get(code)
        if not ins:
            key = producer.get(code)
            out[key] = out.get(key, Fraction(0)) + weight
            return
        total = sum(Fraction(kg) for kg in ins.values())
        for src, kg in ins.items():
            walk(src, weight * Fraction(kg) / total)

    walk(lot, Fraction(1))
    return out


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    path = tmp_path_factory.mktemp("g") / "g.db"
    with Ledger.create(path) as led:
        led.append(
            (f"gen:{i}", parse_event(e))
            for i, e in enumerate(generate(producers=120, seasons=1, seed=5, coop_size=(60, 60)))
        )
        yield led


def test_generated_season_premiums_reconcile(season: Ledger) -> None:
    rng = random.Random(11)
    exported = [s.event for s in season.iter_events() if s.event.type == "export" and not s.void]
    assert len(exported) >= 3
    records = []
    for i, ex in enumerate(exported):
        kg = season.lot(ex.subject or "").kg  # type: ignore[union-attr]
        lines = [
            {"kind": "fairtrade", "rate": str(rng.choice(["0.20", "0.15", "0.30"])), "per": "lb"},
            {"kind": "organic", "rate": f"0.{rng.randint(1, 99):02d}", "per": "lb"},
            {
                "kind": "quality",
                "rate": f"{rng.randint(1, 99999)}.{rng.randint(0, 99):02d}",
                "per": "flat",
            },
        ]
        t = ex.time.isoformat()
        records.append(
            {
                "type": "premium",
                "time": t,
                "site": "hq:X",
                "lot": ex.subject,
                "contract": f"K{i}",
                "kg": kg,
                "currency": "USD",
                "lines": lines,
            }
        )
    season.append((f"p:{i}", parse_event(r)) for i, r in enumerate(records))
    for ex in exported:
        lot = ex.subject or ""
        data = premiums(season, lot)
        total = Decimal(data["received"])
        got = {r["producer"]: Decimal(r["premium"]) for r in data["producers"]}
        got[None] = Decimal(data["unallocated"]["premium"])
        # the shares sum to the premium exactly, to the cent
        assert sum(got.values()) == total
        shares = _independent_shares(season, lot)
        assert sum(shares.values()) == 1
        assert {p for p in shares if p is not None} == {r["producer"] for r in data["producers"]}
        cents = int(total * 100)
        exact = {p: cents * s for p, s in shares.items()}
        for p, s in exact.items():  # each within its floor and the next cent
            floor = s.numerator // s.denominator
            assert floor <= got[p] * 100 <= floor + 1, (lot, p)
        # and the extra cents went to the largest remainders
        extra = sorted(
            (p for p in exact if got[p] * 100 > exact[p].numerator // exact[p].denominator), key=str
        )
        kept = [p for p in exact if p not in extra]
        if extra and kept:
            frac = {p: exact[p] - exact[p].numerator // exact[p].denominator for p in exact}
            assert min(frac[p] for p in extra) >= max(frac[p] for p in kept)


def _cli_import(
    files: list[str], db: Path, parallel_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> Any:
    monkeypatch.setattr("lottrace.importing.PARALLEL_BYTES", parallel_bytes)
    assert CliRunner().invoke(cli, ["--db", str(db), "init"]).exit_code == 0
    return CliRunner().invoke(cli, ["--db", str(db), "import", *files])


def test_records_and_claims_through_the_reader_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample season (records, a claim lot, a correction) is the same ledger either way,
    and a refused claim blend is refused the same way."""
    from lottrace.demo import sample_files

    files = [str(p) for p in sample_files()]
    here = _cli_import(files, tmp_path / "here.db", 10**12, monkeypatch)
    there = _cli_import(files, tmp_path / "there.db", 0, monkeypatch)
    assert here.exit_code == there.exit_code == 0, there.output
    with Ledger(tmp_path / "here.db") as a, Ledger(tmp_path / "there.db") as b:
        rows = "SELECT seq, event_id, type, time, lot, body FROM events ORDER BY seq"
        assert a.conn.execute(rows).fetchall() == b.conn.execute(rows).fetchall()
        assert a.derived_snapshot() == b.derived_snapshot()
        assert premiums(a, "EXP-25-JUM-01") == premiums(b, "EXP-25-JUM-01")
    bad = tmp_path / "bad.jsonl"
    blend = {
        "type": "export",
        "time": "2025-10-20T10:00:00-05:00",
        "site": "port:PAITA",
        "lot": "EXP-25-JUM-02",
        "kg": 79.0,
        "claims": ["cafe_femenino"],
        "inputs": [
            {"lot": "MILL-25-0471-G2", "kg": 49.0},
            {"lot": "MILL-25-0433-G2", "kg": 30.0},
        ],
    }
    bad.write_text(json.dumps(blend) + "\n")
    a_err = _cli_import([*files, str(bad)], tmp_path / "a.db", 10**12, monkeypatch)
    b_err = _cli_import([*files, str(bad)], tmp_path / "b.db", 0, monkeypatch)
    assert a_err.exit_code == b_err.exit_code == 1
    assert a_err.stderr == b_err.stderr
    assert "[claim-broken] field 'claims': lot EXP-25-JUM-02 is declared cafe_femenino" in (
        b_err.stderr
    )
