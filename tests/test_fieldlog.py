"""Field logging: Spanish stage names, prompts only in a terminal, the stored event shown back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lottrace import cli as cli_module
from lottrace.cli import cli
from lottrace.events import EVENT_MODELS
from lottrace.fieldlog import STAGE_ALIASES, missing_fields, resolve_type

HARVEST = [
    "--lot", "APR-1", "--site", "farm:APR-P1", "--time", "2025-05-01T07:00:00-05:00",
    "--producer", "APR-0001", "--plot", "APR-P1", "--lon", "-79.0", "--lat", "-5.1", "--kg", "900",
]  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "f.db"
    CliRunner().invoke(cli, ["--db", str(path), "init"])
    return path


def run(db: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=input)


def events(db: Path, lot: str) -> list[dict[str, object]]:
    r = run(db, "history", lot, "--json")
    return json.loads(r.output)["events"] if r.exit_code == 0 else []


def test_every_alias_names_a_real_type_and_every_stage_has_one() -> None:
    # foreign EPCIS events arrive through `lottrace epcis import`, never from the field
    assert set(STAGE_ALIASES.values()) == set(EVENT_MODELS) - {"epcis"}
    for spanish, english in STAGE_ALIASES.items():
        assert resolve_type(spanish) == english
    assert resolve_type("EXPORTACIÓN") == "export"
    assert resolve_type("Corrección") == "correction"
    assert resolve_type("Harvest") == "harvest"
    assert resolve_type("teleport") == "teleport"  # left for the usual error


def test_log_accepts_spanish_names_and_stores_english(db: Path) -> None:
    r = run(db, "log", "cosecha", *HARVEST)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("logged harvest APR-1 as event ")
    r = run(db, "log", "Secado", "--lot", "APR-1", "--site", "farm:APR-P1",
            "--time", "2025-05-12T16:00:00-05:00", "--kg", "190", "--method", "covered")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert [e["type"] for e in events(db, "APR-1")] == ["harvest", "drying"]


def test_log_shows_the_stored_event(db: Path) -> None:
    r = run(
        db,
        "log",
        "harvest",
        *HARVEST,
        "--cert",
        "organic",
        "--cert",
        "fairtrade",
        "--women-producer",
    )
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()[1:]
    shown = dict(line.split(None, 1) for line in lines)
    assert shown == {
        "type": "harvest",
        "time": "2025-05-01T07:00:00-05:00",
        "site": "farm:APR-P1",
        "lot": "APR-1",
        "producer": "APR-0001",
        "plot": "id APR-P1, geometry point -79.0, -5.1",
        "kg": "900",
        "certifications": "fairtrade, organic",  # as stored: sorted
        "women_producer": "yes",
    }
    assert all(line.startswith("  ") for line in lines)


def test_missing_fields_follow_the_model() -> None:
    assert missing_fields("harvest", {}) == ["site", "lot", "producer", "plot.id", "kg"]
    assert missing_fields("harvest", {"plot.id": "P1", "kg": "9"}) == ["site", "lot", "producer"]
    assert missing_fields("gatherer_qc", {"site": "x", "lot": "L"}) == ["result"]
    assert missing_fields("dry_mill", {"site": "x"}) == ["inputs", "outputs"]
    assert missing_fields("teleport", {}) == []


def test_no_prompt_when_input_is_not_a_terminal(db: Path) -> None:
    r = run(db, "log", "secado", "--lot", "APR-1", input="farm:APR-P1\n190\n")
    assert r.exit_code == 1
    assert r.stdout == ""  # nothing asked
    assert r.stderr == "Error: lottrace log: lot APR-1: fields 'site', 'kg' are required\n"


def test_prompts_for_missing_fields_in_a_terminal(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    r = run(db, "log", "cosecha", "--time", "2025-05-01T07:00:00-05:00", "--kg", "900",
            "--lon", "-79.0", "--lat", "-5.1", input="farm:APR-P1\nAPR-1\nAPR-0001\nAPR-P1\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    asked = [line.split(" (")[0] for line in r.output.splitlines() if "): " in line]
    assert asked == ["site", "lot", "producer", "plot.id"]
    assert "logged harvest APR-1 as event" in r.output
    [stored] = events(db, "APR-1")
    assert stored["plot"]["geometry"]["coordinates"] == [-79.0, -5.1]  # type: ignore[index]


def test_a_bad_answer_is_asked_again(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    run(db, "log", "harvest", *HARVEST)
    r = run(db, "log", "secado", "--lot", "APR-1", "--site", "farm:APR-P1",
            "--time", "2025-05-12T16:00:00-05:00", input="-3\n190\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "field 'kg'" in r.stderr  # the reason the first answer was refused
    assert r.stdout.count("kg (Kilograms): ") == 2
    assert [e["kg"] for e in events(db, "APR-1")] == [900, 190]  # type: ignore[index]


def test_given_bad_values_still_fail_in_a_terminal(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    r = run(db, "log", "secado", "--lot", "APR-1", "--site", "farm:APR-P1", "--kg", "-3", input="")
    assert r.exit_code == 1
    assert "field 'kg'" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("item", ["kg", "=5", " =5"])
def test_log_set_without_a_field_name_is_an_error_not_ignored(db: Path, item: str) -> None:
    r = run(db, "log", "drying", "--lot", "H1", "--site", "farm:X", "--kg", "5", "--set", item)
    assert r.exit_code == 2
    assert "--set" in r.output and "is not FIELD=VALUE" in r.output
    assert events(db, "H1") == []


def test_log_refuses_the_foreign_epcis_type(db: Path) -> None:
    r = run(db, "log", "epcis", "--lot", "A", "--site", "farm:X")
    assert r.exit_code == 2
    assert "lottrace epcis import" in r.output
    assert events(db, "A") == []
