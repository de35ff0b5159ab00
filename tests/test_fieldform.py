"""The field form (the web's /field and `lottrace log` share it), the dry-run append that checks
a batch with the rules and writes nothing, and the web's message catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from lottrace.access import AccessFile
from lottrace.errors import InvalidEvent, RuleViolation
from lottrace.events import event_id
from lottrace.fieldform import CHECKPOINTS, event_from_form, form_fields
from lottrace.importing import import_files
from lottrace.ledger import Ledger
from lottrace.sheets import field_names, reads_natively

HARVEST = {
    "type": "Cosecha",
    "time": "2025-06-01T08:00:00-05:00",
    "site": "farm:APR-P0231",
    "lot": "H1",
    "kg": "1.212,5",
    "producer": "APR-0231",
    "plot.id": "P1",
    "plot.lon": "-78,981",
    "plot.lat": "-5,149",
    "note": "",
}


def test_a_spanish_form_with_decimal_commas_makes_the_event() -> None:
    ev = event_from_form(HARVEST, lang="es")
    body = ev.model_dump(mode="json", exclude_none=True)
    assert body["type"] == "harvest" and body["kg"] == 1212.5
    assert body["plot"] == {
        "id": "P1",
        "geometry": {"type": "Point", "coordinates": [-78.981, -5.149]},
    }
    assert "note" not in body  # an empty answer is left out
    # the same form makes the same event: its content hash is its id
    assert event_id(event_from_form(dict(HARVEST))) == event_id(ev)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"kg": "doce"}, "kg", "'doce' no es un número"),
        ({"moisture_pct": "11"}, "moisture_pct", "no es un campo del formulario de harvest"),
        ({"producer": ""}, "producer", "campo 'producer': es obligatorio"),
        ({"site": "gatherer:SIG-03"}, "site", "se registra en un lugar farm:"),
        ({"time": "2999-01-01T00:00:00-05:00"}, "time", "está en el futuro"),
        ({"type": "epcis"}, "type", "is not a checkpoint"),
    ],
)
def test_a_bad_answer_names_its_field_in_the_forms_language(
    change: dict[str, str], field: str, words: str
) -> None:
    with pytest.raises(InvalidEvent, match=words) as info:
        event_from_form(HARVEST | change, lang="es")
    assert info.value.field == field


def test_every_checkpoint_has_a_form_naming_event_fields() -> None:
    names = set(field_names())
    for type_ in CHECKPOINTS:
        fields = form_fields(type_)
        assert fields[0].name == "time" and fields[1].kind == "site"
        assert {f.name for f in fields} <= names, type_
    qc = {f.name: f for f in form_fields("hq_qc")}
    assert qc["moisture_pct"].usual == (9, 13) and qc["moisture_pct"].bounds == (
        0,
        100,
        True,
        False,
    )
    assert qc["result"].choices == ("accepted", "rejected", "hold") and qc["result"].required
    assert qc["defects.cat1"].kind == "whole" and qc["inputs"].kind == "lots"


def test_a_dry_run_append_checks_the_rules_and_writes_nothing(ledger_target: str) -> None:
    ev = event_from_form(HARVEST)
    with Ledger.create(ledger_target) as ledger:
        head = ledger.head()
        report = ledger.append([("form", ev)], dry_run=True)
        assert report.added == 1
        assert ledger.head() == head and ledger.stats()["events"] == 0
        assert ledger.lot("H1") is None
        drying = event_from_form(
            {
                "type": "drying",
                "time": "2025-06-02T08:00:00-05:00",
                "site": "farm:APR-P0231",
                "lot": "D1",
                "kg": "10",
                "inputs": "H1=10",
            }
        )
        with pytest.raises(RuleViolation, match="H1"):  # H1 was never written
            ledger.append([("form", drying)], dry_run=True)
        ledger.append([("form", ev)])
        assert ledger.append([("form", drying)], dry_run=True).added == 1
        assert ledger.stats()["events"] == 1
        assert ledger.append([("form", ev)], dry_run=True).duplicates == 1
        ledger.verify()


def test_a_dry_run_import_reads_and_checks_everything_and_writes_nothing(tmp_path: Path) -> None:
    sheet = tmp_path / "h.csv"
    sheet.write_text(
        "type,time,site,lot,kg,producer,plot.id\n"
        "harvest,2025-06-01T08:00:00-05:00,farm:X,H1,10,P,PL\n",
        encoding="utf-8",
    )
    assert reads_natively(sheet)
    with Ledger.create(tmp_path / "l.db") as ledger:
        assert import_files(ledger, [sheet], parallel=False, dry_run=True).added == 1
        assert ledger.stats()["events"] == 0
        assert import_files(ledger, [sheet], parallel=False).added == 1
        assert ledger.stats()["events"] == 1


def test_the_sites_a_user_writes_at(tmp_path: Path) -> None:
    access = AccessFile(tmp_path / "l.db")
    access.add_user("a", org="COOP", role="admin", owner=True)
    access.set_site("farm:N-1", "Neighbour")
    access.set_site("farm:N-2", "Neighbour")
    known = ["hq:COOP", "farm:N-1", "farm:C-1"]
    owner = access.identify(access.add_user("f", org="COOP", role="field"))
    other = access.identify(access.add_user("n", org="Neighbour", role="qc"))
    buyer = access.identify(access.add_user("b", org="Roaster", role="buyer"))
    assert access.writable_sites(owner, known) == ["hq:COOP", "farm:C-1"]
    assert access.writable_sites(other, known) == ["farm:N-1", "farm:N-2"]
    assert access.writable_sites(buyer, known) == []


def test_the_web_catalogue_has_every_message_in_both_languages() -> None:
    from lottrace.web.i18n import CATALOGUE

    assert set(CATALOGUE["es"]) == set(CATALOGUE["en"])
    for lang, words in CATALOGUE.items():
        assert all(text.strip() for text in words.values()), lang
