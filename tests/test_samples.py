"""The bundled sample season imports cleanly and has what the guides promise."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.demo import build_demo, sample_files
from lottrace.errors import LedgerError
from lottrace.events import EventBase
from lottrace.ledger import Ledger
from lottrace.readers import iter_events

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(
    p for p in (ROOT / "sample_events").iterdir() if p.suffix in (".jsonl", ".json", ".csv")
)


def all_events() -> list[EventBase]:
    return [e for f in FILES for _, e in iter_events(f)]


def test_packaged_samples_are_the_repository_samples() -> None:
    assert [p.name for p in sample_files()] == [p.name for p in FILES]
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_sample_file_parses(path: Path) -> None:
    assert list(iter_events(path))


def test_whole_season_imports_in_one_batch(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "s.db") as ledger:
        report = ledger.append((w, e) for f in FILES for w, e in iter_events(f))
        assert report.duplicates == 0
        assert report.added == len(all_events())
        assert ledger.verify().events == report.added
        snapshot = ledger.derived_snapshot()
        ledger.rebuild()
        assert ledger.derived_snapshot() == snapshot
        assert ledger.stats()["voided"] >= 1


def test_season_has_what_the_guides_promise() -> None:
    events = all_events()
    types = Counter(e.type for e in events)
    assert set(types) >= {
        "harvest",
        "drying",
        "gatherer_qc",
        "hq_qc",
        "dry_mill",
        "export",
        "correction",
    }
    sites = {e.site.split(":")[1] for e in events if e.site.startswith("hq:")}
    assert sites >= {"APROCASSI", "CECANOR", "JUMARP"}
    assert any(e.type == "gatherer_qc" and e.drawn for e in events), "a merge at a gatherer"
    assert any(e.type == "hq_qc" and e.drawn for e in events), "a merge at HQ"
    assert any(e.type == "dry_mill" and len(e.formed) >= 2 for e in events), "a dry-mill split"
    assert sum(getattr(e, "result", None) == "rejected" for e in events) >= 1
    big_polygons = [
        e for e in events
        if e.type == "harvest" and e.plot.geometry is not None  # type: ignore[attr-defined]
        and e.plot.geometry.type == "Polygon" and (e.plot.area_ha or 0) > 4  # type: ignore[attr-defined]
    ]  # fmt: skip
    assert big_polygons, "plots over 4 ha drawn as polygons"
    assert any(getattr(e, "women_producer", None) for e in events)
    assert sum(f.suffix == ".csv" for f in FILES) >= 2


def test_demo_builds_its_own_ledger_and_is_repeatable(tmp_path: Path) -> None:
    out = tmp_path / "demo.db"
    first = build_demo(out)
    assert first.report.added == len(all_events())
    again = build_demo(out)
    already = again.report.duplicates + again.report.voided_again  # the sample voids one
    assert (again.report.added, already, again.report.voided_again) == (0, first.report.added, 1)
    with Ledger(out) as ledger:
        assert ledger.lot(first.export_lot) is not None


def test_demo_refuses_a_real_ledger(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    Ledger.create(real).close()
    with pytest.raises(LedgerError, match="not a demo ledger"):
        build_demo(real)


def test_demo_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo"])
    assert result.exit_code == 0, result.output
    assert "lottrace-demo.db" in result.output and "Go on with:" in result.output
    assert (tmp_path / "lottrace-demo.db").exists()


def test_demo_never_writes_the_ledger_named_by_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["--db", "real.db", "demo"])
    assert result.exit_code == 0, result.output
    assert "never real.db" in result.stderr
    assert not (tmp_path / "real.db").exists()
    assert (tmp_path / "lottrace-demo.db").exists()
    quiet = CliRunner().invoke(cli, ["demo"])
    assert quiet.stderr == ""


def test_sample_cafe_femenino_lot_holds_and_a_mans_coffee_is_refused(tmp_path: Path) -> None:
    from lottrace.claims import claims
    from lottrace.errors import RuleViolation
    from lottrace.events import parse_event

    path = tmp_path / "demo.db"
    build_demo(path)
    with Ledger(path) as ledger:
        held = claims(ledger, "JUM-25-HQ-006")
        assert held["declared"] == ["cafe_femenino"] and "cafe_femenino" in held["held"]
        assert "cafe_femenino" in claims(ledger, "EXP-25-JUM-01")["held"]
        n = ledger.stats()["events"]
        blend = {  # the women's Grade 2 topped up with CECANOR's, shipped as Café Femenino
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
        with pytest.raises(RuleViolation) as info:
            ledger.append([("test:1", parse_event(blend))])
        assert str(info.value) == (
            "test:1: [claim-broken] field 'claims': lot EXP-25-JUM-02 is declared cafe_femenino "
            "but harvest lot CEC-25-H0112-1: producer CEC-0112 is not recorded as a woman "
            "(women_producer)"
        )
        assert ledger.stats()["events"] == n


def test_sample_expired_certificate_is_named(tmp_path: Path) -> None:
    from lottrace.compliance import certify

    path = tmp_path / "demo.db"
    build_demo(path)
    with Ledger(path) as ledger:
        data = certify(ledger, "MILL-25-0412-G1", "organic")
    assert data["certified"] is False
    assert [(b["lot"], b["reason"]) for b in data["breaking"]] == [
        ("APR-25-H0342-1", "certificate CU-PE-ORG-24-0342 expired on 2025-05-10")
    ]
