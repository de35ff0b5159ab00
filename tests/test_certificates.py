"""Certificates as events: certify checks each contributing event on its date; expiring."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lottrace.certificates import expiring, registry
from lottrace.cli import cli
from lottrace.compliance import certify
from lottrace.errors import InvalidEvent, RuleViolation
from lottrace.events import event_id, parse_event
from lottrace.ledger import Ledger
from records import certificate, purchase, transaction_certificate

from factories import batch, chain, correction, harvest

ORGANIC = ["organic"]


def organic_chain() -> list[dict[str, Any]]:
    """The factories' chain with both harvests listing organic."""
    out = chain()
    out[0] = harvest("H1", 1, 1000, certifications=ORGANIC)  # 2025-05-01
    out[1] = harvest("H2", 2, 500, certifications=ORGANIC)  # 2025-05-02
    return out


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    with Ledger.create(tmp_path / "c.db") as led:
        led.append(batch(*organic_chain()))
        yield led


OLD_KEYS = {"lot", "scheme", "certified", "harvests", "breaking", "voided"}


def test_without_certificates_certify_reads_the_harvests_as_before(ledger: Ledger) -> None:
    data = certify(ledger, "M1", "organic")
    assert set(data) >= OLD_KEYS
    assert data["certified"] is True and data["basis"] == "harvest certifications"
    assert data["events_checked"] == 0 and data["certificates"] == []


def test_an_expired_certificate_is_named(ledger: Ledger) -> None:
    ledger.append(
        batch(
            certificate("ORG-1", producers=["PRD-H1"]),
            certificate("ORG-2", valid=("2024-05-01", "2025-04-30"), producers=["PRD-H2"]),
        )
    )
    data = certify(ledger, "M1", "organic")
    assert data["certified"] is False and data["basis"] == "certificates"
    assert data["events_checked"] == 2  # the two harvests: no certificate names a site
    assert [(b["lot"], b["producer"], b["reason"]) for b in data["breaking"]] == [
        ("H2", "PRD-H2", "certificate ORG-2 expired on 2025-04-30")
    ]
    assert [c["number"] for c in data["certificates"]] == ["ORG-1", "ORG-2"]
    # another scheme is not affected by organic certificates
    assert certify(ledger, "M1", "fairtrade")["basis"] == "harvest certifications"


def test_a_certificate_valid_on_the_day_covers_it(ledger: Ledger) -> None:
    ledger.append(
        batch(
            certificate("ORG-1", producers=["PRD-H1"]),
            certificate("ORG-2", valid=("2024-05-01", "2025-04-30"), producers=["PRD-H2"]),
            certificate("ORG-3", valid=("2025-05-01", "2026-04-30"), plots=["PLOT-H2"]),
        )
    )
    data = certify(ledger, "M1", "organic")
    assert data["certified"] is True, data["breaking"]


def test_not_yet_valid_and_missing(ledger: Ledger) -> None:
    ledger.append(batch(certificate("ORG-9", valid=("2025-05-02", "2025-12-31"))))
    data = certify(ledger, "M1", "organic")
    assert sorted((b["lot"], b["reason"]) for b in data["breaking"]) == [
        ("H1", "certificate ORG-9 is valid only from 2025-05-02"),
        ("H2", "no organic certificate valid on 2025-05-02"),
    ]


def test_sites_are_checked_once_a_certificate_names_one(ledger: Ledger) -> None:
    ledger.append(
        batch(
            certificate("ORG-1", producers=["PRD-H1", "PRD-H2"]),
            certificate("ORG-M", sites=["mill:M1"]),
        )
    )
    data = certify(ledger, "M1", "organic")
    assert [(b["lot"], b["reason"]) for b in data["breaking"]] == [
        ("G1", "gatherer_qc at gatherer:G1: no organic certificate valid on 2025-05-15"),
        ("M1", "export at port:PAITA: no organic certificate valid on 2025-06-29"),
    ]
    ledger.append(batch(certificate("ORG-G", sites=["gatherer:G1", "port:PAITA"])))
    assert certify(ledger, "M1", "organic")["certified"] is True


def test_a_voided_certificate_covers_nothing(ledger: Ledger) -> None:
    cert = certificate("ORG-1", producers=["PRD-H1", "PRD-H2"])
    ledger.append(batch(cert))
    assert certify(ledger, "M1", "organic")["certified"] is True
    ledger.append(batch(correction(event_id(parse_event(cert)), day=70)))
    assert registry(ledger).certificates == ()
    assert ledger.stats()["voided"] == 1
    assert ledger.verify().events == len(organic_chain()) + 2
    snapshot = ledger.derived_snapshot()
    ledger.rebuild()
    assert ledger.derived_snapshot() == snapshot


def test_expiring_lists_soonest_first_and_the_just_expired(ledger: Ledger) -> None:
    ledger.append(
        batch(
            certificate("A", valid=("2025-01-01", "2025-12-31")),
            certificate("B", valid=("2025-01-01", "2025-11-20")),
            certificate("C", valid=("2025-01-01", "2026-06-30")),
            certificate("D", valid=("2024-01-01", "2025-10-15")),
        )
    )
    data = expiring(ledger, 60, date(2025, 11, 1))
    assert [(c["number"], c["days_left"]) for c in data["certificates"]] == [
        ("B", 19),
        ("A", 60),
    ]
    assert [c["number"] for c in data["expired"]] == ["D"]


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def test_cli_expiring_and_certify(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    run(db, "init")
    f = tmp_path / "c.jsonl"
    events = [
        *organic_chain(),
        certificate("ORG-2", valid=("2024-05-01", "2025-04-30"), producers=["PRD-H2"]),
        certificate("ORG-1", valid=("2025-01-01", "2025-12-31"), producers=["PRD-H1"]),
    ]
    f.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert run(db, "import", str(f)).exit_code == 0
    r = run(db, "certificates", "expiring", "--within", "60d", "--today", "2025-11-15")
    assert r.exit_code == 0, r.output
    assert "ORG-1" in r.output and "ORG-2" not in r.output
    r = run(db, "certificates", "expiring", "--within", "8w", "--today", "2025-11-15", "--json")
    assert json.loads(r.output)["within_days"] == 56
    r = run(db, "certificates", "expiring", "--within", "soon")
    assert r.exit_code != 0 and r.stderr.startswith("Error: --within 'soon'")
    r = run(db, "certify", "M1", "--scheme", "organic")
    assert r.exit_code == 1
    assert "certificate ORG-2 expired on 2025-04-30" in r.output
    data = json.loads(run(db, "certify", "M1", "--scheme", "organic", "--json").stdout)
    assert set(data) >= OLD_KEYS and data["basis"] == "certificates"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"valid_to": "2024-12-31"}, "'valid_to' is before 'valid_from'"),
        ({"scope": {}}, "a scope names at least one producer, plot or site"),
        ({"valid_from": "2025-13-01"}, "field 'valid_from'"),
        ({"scheme": "Organic EU"}, "field 'scheme'"),
    ],
)
def test_a_bad_certificate_is_one_line(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEvent, match=message) as info:
        parse_event({**certificate(), **change})
    assert "\n" not in str(info.value)


def test_transaction_certificate_names_an_exported_lot(ledger: Ledger) -> None:
    n = ledger.stats()["events"]
    with pytest.raises(RuleViolation, match=r"\[record-lot\].*lot G1 is only at gatherer_qc"):
        ledger.append(batch(transaction_certificate("G1")))
    with pytest.raises(RuleViolation, match=r"\[record-lot\].*lot NOPE was never created"):
        ledger.append(batch(transaction_certificate("NOPE")))
    assert ledger.stats()["events"] == n
    ledger.append(batch(transaction_certificate("M1")))
    tcs = certify(ledger, "M1", "organic")["transaction_certificates"]
    assert [(t["kind"], t["reference"]) for t in tcs] == [("eu_coi", "COI.PE.2025.0001")]


def test_records_touch_no_lot(ledger: Ledger) -> None:
    before = ledger.derived_snapshot()
    state = ledger.lot("H1")
    ledger.append(batch(certificate(), purchase("H1", "PRD-H1"), transaction_certificate("M1")))
    assert ledger.derived_snapshot() == before  # no lot state, timeline row or link
    assert ledger.lot("H1") == state
    assert all(s.event.type != "purchase" for s in ledger.lot_events("H1"))
    assert ledger.verify().events == len(organic_chain()) + 3


def test_every_breaking_reason_has_a_code_and_its_spanish(ledger: Ledger) -> None:
    """A reason certify gives that no code reads, or a code without Spanish, fails."""
    from lottrace import certificates as certs
    from lottrace.compliance import REASONS, REASONS_ES, reason_code

    assert REASONS_ES.keys() == REASONS.keys() and all(REASONS_ES.values())
    ledger.append(
        batch(
            certificate("ORG-9", valid=("2025-05-02", "2025-12-31")),
            certificate("ORG-2", valid=("2024-05-01", "2025-04-30"), sites=["mill:M1"]),
        )
    )
    told = {
        b["reason"]: reason_code(b["reason"]) for b in certify(ledger, "M1", "organic")["breaking"]
    }
    assert set(told.values()) == {"not-yet-valid", "no-certificate", "expired"}, told
    assert reason_code("not certified") == "not-certified"
    assert reason_code("unknown origin") == "unknown-origin"
    cert = certs.registry(ledger).of("organic")[0]
    day = date(2025, 5, 1)
    for status, code in [
        ("expired", "expired"),
        ("not-yet-valid", "not-yet-valid"),
        ("none", "no-certificate"),
    ]:
        assert reason_code(certs.reason(status, cert, "organic", day)) == code
    assert reason_code("the moon was wrong") is None
