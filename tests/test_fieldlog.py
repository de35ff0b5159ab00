"""Field logging: Spanish stage names, prompts only in a terminal, the stored event shown back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lottrace import cli as cli_module
from lottrace.cli import cli
from lottrace.events import EVENT_MODELS, REGISTRY_TYPES
from lottrace.fieldlog import STAGE_ALIASES, missing_fields, resolve_type
from lottrace.numfmt import NNBSP

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
    # foreign EPCIS events, master data and document headers arrive through
    # `lottrace epcis import`, never from the field; plots, findings and statements
    # are registry records, not stages
    foreign = {"epcis", "master_data", "epcis_header"}
    assert set(STAGE_ALIASES.values()) == set(EVENT_MODELS) - foreign - REGISTRY_TYPES
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
            "--lon", "-79.0", "--lat", "-5.1", input="farm:APR-P1\nAPR-1\nAPR-0001\nAPR-P1\ny\n")  # fmt: skip
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
            "--time", "2025-05-12T16:00:00-05:00", input="-3\n190\n\ny\n")  # fmt: skip
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


# ---------------------------------------------------------------- at the field (issue 16)


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)


@pytest.fixture
def lima(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The computer's local time is Lima's (UTC-5), as at a Peruvian cooperative."""
    monkeypatch.setenv("TZ", "America/Lima")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("typed", "kg"), [("12,5", 12.5), ("1.020,5", 1020.5), ("7.25", 7.25)])
def test_log_reads_a_decimal_comma(db: Path, typed: str, kg: float) -> None:
    r = run(db, "log", "cosecha", *HARVEST[:-2], "--kg", typed, "--lon", "-78,98", "--lat", "-5,1")
    assert r.exit_code == 0, r.output
    [stored] = events(db, "APR-1")
    assert stored["kg"] == kg
    assert stored["plot"]["geometry"]["coordinates"] == [-78.98, -5.1]  # type: ignore[index]


def test_the_whole_harvest_is_asked_checked_shown_and_confirmed(
    db: Path, tty: None, lima: None
) -> None:
    answers = [
        "2025-06-14 14:30",  # local time
        "hq:APROCASSI",  # not where a harvest happens: asked again
        "farm:APR-P9",
        "APR-9",
        "APR-0009",
        "APR-P9",
        "doce",  # not a number
        "0",  # not more than 0
        "612,5",
        "-78,981204",
        "-5,148733",
        "y",
    ]
    r = run(db, "log", "cosecha", input="\n".join(answers) + "\n")
    assert r.exit_code == 0, r.output
    assert "field 'site': a harvest happens at a farm: site, not at hq:APROCASSI" in r.stderr
    assert "field 'kg': 'doce' is not a number" in r.stderr
    assert "field 'kg': must be more than 0" in r.stderr
    assert r.stdout.count("site (") == 2 and r.stdout.count("kg (") == 3
    summary = r.stdout.split("To be saved:\n")[1].split("Save this event?")[0]
    assert "\n  kg        612.5\n" in summary
    assert "point -78.981204, -5.148733" in summary
    assert "logged harvest APR-9 as event" in r.stdout
    [stored] = events(db, "APR-9")
    assert stored["time"] == "2025-06-14T14:30:00-05:00"  # Lima
    assert stored["site"] == "farm:APR-P9" and stored["kg"] == 612.5


def test_saying_no_at_the_summary_writes_nothing(db: Path, tty: None) -> None:
    r = run(db, "log", "secado", "--lot", "APR-1", "--site", "farm:APR-P1",
            "--time", "2025-05-12T16:00:00-05:00", input="190\n11,5\nn\n")  # fmt: skip
    assert r.exit_code == 1
    assert "To be saved:" in r.stdout and "Not saved: nothing was written." in r.stderr
    assert events(db, "APR-1") == []


def test_everything_given_in_a_terminal_is_not_confirmed(db: Path, tty: None) -> None:
    r = run(db, "log", "cosecha", *HARVEST, input="")
    assert r.exit_code == 0, r.output
    assert "To be saved" not in r.output and len(events(db, "APR-1")) == 1


def test_a_harvest_without_a_location_says_eudr_needs_it(db: Path, tty: None) -> None:
    r = run(db, "log", "cosecha", *HARVEST[:-6], *HARVEST[-2:], input="\ny\n")  # Enter: no lon
    assert r.exit_code == 0, r.output
    assert "No location for plot APR-P1: EUDR will need it" in r.stderr
    [stored] = events(db, "APR-1")
    assert "geometry" not in stored["plot"]  # type: ignore[operator]


def test_the_known_sites_for_the_type_are_offered_and_picked_by_number(db: Path, tty: None) -> None:
    run(db, "log", "harvest", *HARVEST)
    run(db, "log", "acopio", "--lot", "APR-1", "--site", "gatherer:SIG-03", "--result",
        "accepted", "--time", "2025-05-20T09:00:00-05:00", "--kg", "200", "--moisture", "12")  # fmt: skip
    r = run(db, "log", "secado", "--lot", "APR-1", "--time", "2025-05-22T09:00:00-05:00",
            input="2\n190\n\ny\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    # drying may be at the farm or re-drying at a gatherer; never at HQ or a port
    assert "known sites for a drying: 1 farm:APR-P1, 2 gatherer:SIG-03" in r.stdout
    assert events(db, "APR-1")[-1]["site"] == "gatherer:SIG-03"
    r = run(db, "log", "sede", "--lot", "APR-1", "--time", "2025-05-23T09:00:00-05:00",
            input="hq:APROCASSI\naceptado\n\n\n\ny\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "known sites" not in r.stdout  # no hq: site yet
    assert events(db, "APR-1")[-1]["result"] == "accepted"  # said in Spanish


def test_qc_ranges_are_checked_as_typed(db: Path, tty: None) -> None:
    run(db, "log", "harvest", *HARVEST)
    r = run(db, "log", "sede", "--lot", "APR-1", "--site", "hq:APROCASSI", "--result", "hold",
            "--reason", "humedad", "--time", "2025-05-20T09:00:00-05:00",
            input="500\n150\n11,2\n1,5\n0,62\ny\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "usually 9-13" in r.stdout
    assert "field 'moisture_pct': must be between 0 and 100" in r.stderr
    assert "field 'water_activity': must be between 0 and 1" in r.stderr
    stored = events(db, "APR-1")[-1]
    assert (stored["moisture_pct"], stored["water_activity"]) == (11.2, 0.62)


@pytest.mark.parametrize("typed", ["2025-06-14 14:30", "14/06/2025 14:30", "2025-06-14T14:30"])
def test_a_time_without_offset_typed_at_the_field_is_local_time(
    db: Path, tty: None, lima: None, typed: str
) -> None:
    r = run(db, "log", "cosecha", *[a for a in HARVEST if a != "--time" and "T07" not in a],
            input=f"mañana\n2999-01-01 10:00\n{typed}\ny\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "field 'time': 'mañana' is not a time" in r.stderr
    assert "is in the future" in r.stderr
    assert events(db, "APR-1")[0]["time"] == "2025-06-14T14:30:00-05:00"


def test_enter_at_the_time_prompt_is_now(db: Path, tty: None, lima: None) -> None:
    before = datetime.now().astimezone().replace(microsecond=0)
    r = run(db, "log", "cosecha", *[a for a in HARVEST if a != "--time" and "T07" not in a],
            input="\ny\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    t = datetime.fromisoformat(str(events(db, "APR-1")[0]["time"]))
    assert t.utcoffset() == before.utcoffset() and t >= before


def test_a_given_value_that_cannot_be_right_fails_before_any_question(db: Path, tty: None) -> None:
    r = run(db, "log", "cosecha", "--site", "port:PAITA", input="")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr == (
        "Error: lottrace log: field 'site': a harvest happens at a farm: site, not at port:PAITA\n"
    )


def test_a_site_that_does_not_suit_the_type_is_refused_in_scripts_too(db: Path) -> None:
    r = run(db, "log", "cosecha", *HARVEST[:2], "--site", "port:PAITA", *HARVEST[4:])
    assert r.exit_code == 1
    assert "[site-kind]" in r.stderr and events(db, "APR-1") == []


@pytest.mark.parametrize("how", ["option", "env"])
def test_spanish_prompts_messages_and_numbers(
    db: Path, tty: None, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    lang = ["--lang", "es"] if how == "option" else []
    if how == "env":
        monkeypatch.setenv("LOTTRACE_LANG", "es")
    r = run(db, "log", "cosecha", *lang, "--time", "2025-05-01T07:00:00-05:00",
            "--lot", "APR-1", "--producer", "APR-0001", "--plot", "APR-P1",
            input="port:PAITA\nfarm:APR-P1\n-5\n1.020,5\n\ns\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "site (dónde: tipo:ID" in r.stdout
    assert "campo 'site': un evento harvest se registra en un lugar farm:, no en port:PAITA" in (
        r.stderr
    )
    assert "campo 'kg': debe ser mayor que 0" in r.stderr
    assert "Sin ubicación para la parcela APR-P1: la EUDR la exigirá" in r.stderr
    assert "Se guardará:" in r.stdout and "¿Guardar este evento? [S/n]" in r.stdout
    assert "registrado harvest APR-1 como evento" in r.stdout
    assert "  kg        1020,5\n" in r.stdout and "1.020" not in r.stdout.split("Se guardará")[1]
    assert events(db, "APR-1")[0]["kg"] == 1020.5


def test_spanish_log_prints_decimal_commas_and_no_thousands_point(db: Path) -> None:
    r = run(db, "log", "cosecha", "--lang", "es", *HARVEST[:-2], "--kg", "12345,75",
            "--area-ha", "1,5", "--lon", "-78.981204", "--lat", "-5.148733")  # fmt: skip
    assert r.exit_code == 0, r.output
    shown = dict(line.split(None, 1) for line in r.stdout.splitlines()[1:])
    assert shown["kg"] == f"12{NNBSP}345,75"
    assert shown["plot"] == "id APR-P1; geometry punto -78,981204; -5,148733; area_ha 1,5"


def test_a_bad_lot_code_is_asked_again_as_typed(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An invalid lot code is refused at its question, not after the summary."""
    monkeypatch.setattr(cli_module, "_interactive", lambda: True)
    r = run(db, "log", "cosecha", "--lang", "es", "--time", "2025-05-01T07:00:00-05:00",
            "--kg", "900", "--lon", "-79.0", "--lat", "-5.1",
            input="farm:APR-P1\nlote ñ 1\nAPR-1\nAPR-0001\nAPR-P1\ny\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "'lote ñ 1' no es un código de lote" in r.output
    assert events(db, "APR-1")
