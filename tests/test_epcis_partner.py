"""A trading partner's view of lottrace's EPCIS (issue 17): partners' eventIDs kept
and searchable, one Event Hash ID one event, single-event capture.

Conformance material is read from ``../shared/conformance`` (``conformance_dir``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.epcis import document_to_events, export_document, load_document
from lottrace.epcis_hash import event_hash_id
from lottrace.errors import InvalidInput, RuleViolation
from lottrace.events import EpcisEvent
from lottrace.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT.parent / "shared" / "conformance"
GS1 = pytest.mark.fixture_source("gs1/EPCIS@2b888befbc071e1c2d388e027b30149b3f51dcef")
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


def _gs1_examples() -> list[Any]:
    base = CONFORMANCE / "gs1-epcis" / "examples"
    names = sorted(str(p.relative_to(base)) for p in base.glob("**/*.jsonld"))
    if not names:
        return [pytest.param(None, id="gs1/<conformance folder missing>", marks=GS1)]
    return [pytest.param(n, id=f"gs1/{n}", marks=GS1) for n in names]


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    body = doc["epcisBody"]
    if "queryResults" in body:
        return body["queryResults"]["resultsBody"]["eventList"]  # type: ignore[no-any-return]
    return body["eventList"]  # type: ignore[no-any-return]


def _doc(*events: dict[str, Any], context: Any = CONTEXT) -> dict[str, Any]:
    return {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-07-01T00:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def _object(event_id: str | None = None, **more: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": "2025-06-20T10:00:00.000+02:00",
        "eventTimeZoneOffset": "+02:00",
        "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
    }
    if event_id is not None:
        ev["eventID"] = event_id
    return ev | more


# --------------------------------------------------------------------------- keep ids


def _readable(path: Path) -> bool:
    try:
        load_document(str(path))
    except InvalidInput:  # e.g. a key repeated in one object (test_epcis checks those)
        return False
    return True


@pytest.mark.parametrize("name", _gs1_examples())
def test_gs1_event_ids_survive_import_export_import(
    conformance_dir: Path, tmp_path: Path, name: str
) -> None:
    path = conformance_dir / "gs1-epcis" / "examples" / name
    if not _readable(path):
        return
    doc = load_document(str(path))
    given = {e["eventID"] for e in _events(doc) if isinstance(e.get("eventID"), str)}
    with Ledger.create(tmp_path / "a.db") as ledger:
        ledger.append(document_to_events(doc, name))
        ids = sorted(s.event_id for s in ledger.iter_events())
        out = json.loads(json.dumps(export_document(ledger)))
    exported = {e["eventID"] for e in _events(out)}
    assert given <= exported
    with Ledger.create(tmp_path / "b.db") as ledger:
        ledger.append(document_to_events(out, "out.jsonld"))
        assert sorted(s.event_id for s in ledger.iter_events()) == ids
        again = json.loads(json.dumps(export_document(ledger)))
    assert sorted(e["eventID"] for e in _events(again)) == sorted(exported)


def test_partner_event_id_is_kept_out_of_the_hash(tmp_path: Path) -> None:
    ev = _object("urn:uuid:7c5d0a0e-6a4c-4f1e-9a5a-1f0c2b3d4e5f")
    with Ledger.create(tmp_path / "l.db") as ledger:
        ledger.append(document_to_events(_doc(ev), "p.jsonld"))
        (stored,) = [s.event for s in ledger.iter_events()]
        assert isinstance(stored, EpcisEvent)
        assert stored.partner_event_id == ev["eventID"]
        assert "eventID" not in stored.event
        assert stored.hash_id == event_hash_id(ev, {})
        (out,) = _events(export_document(ledger))
    assert out["eventID"] == ev["eventID"]


def test_without_an_event_id_the_hash_id_is_given(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "l.db") as ledger:
        ledger.append(document_to_events(_doc(_object()), "p.jsonld"))
        (out,) = _events(export_document(ledger))
    assert out["eventID"] == event_hash_id(_object(), {})


def test_corrective_event_ids_resolve_against_partner_ids(tmp_path: Path) -> None:
    wrong = _object("urn:uuid:0000-wrong")
    right = _object("urn:uuid:0000-right", bizStep="receiving")
    declared = _object(
        "urn:uuid:0000-wrong",
        errorDeclaration={
            "declarationTime": "2025-06-21T10:00:00Z",
            "reason": "incorrect_data",
            "correctiveEventIDs": ["urn:uuid:0000-right"],
        },
    )
    with Ledger.create(tmp_path / "l.db") as ledger:
        ledger.append(document_to_events(_doc(wrong, right, declared), "p.jsonld"))
        (decl,) = ledger.find_events("urn:uuid:0000-wrong")[1:]
        assert isinstance(decl.event, EpcisEvent) and decl.event.declares_error
        (target,) = decl.event.event["errorDeclaration"]["correctiveEventIDs"]
        (fix,) = ledger.find_events(target)
        assert fix.event.partner_event_id == "urn:uuid:0000-right"  # type: ignore[attr-defined]
        out = _events(export_document(ledger))
    assert [e["eventID"] for e in out].count("urn:uuid:0000-wrong") == 2
    assert "urn:uuid:0000-right" in {e["eventID"] for e in out}


# --------------------------------------------------------------------------- one hash, one event


def test_same_hash_with_another_event_id_is_refused_naming_both(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    run = CliRunner()
    assert run.invoke(cli, ["--db", str(db), "init"]).exit_code == 0
    first, second = tmp_path / "a.jsonld", tmp_path / "b.jsonld"
    first.write_text(json.dumps(_doc(_object("urn:uuid:aaa"))))
    second.write_text(json.dumps(_doc(_object("urn:uuid:bbb"))))
    assert run.invoke(cli, ["--db", str(db), "epcis", "import", str(first)]).exit_code == 0
    r = run.invoke(cli, ["--db", str(db), "epcis", "import", str(second)])
    assert r.exit_code == 1
    line = r.output.strip()
    assert "\n" not in line and "[epcis-same-hash]" in line
    assert "urn:uuid:aaa" in line and "urn:uuid:bbb" in line and str(second) in line
    with Ledger(db) as ledger:
        assert ledger.stats()["events"] == 1


def test_same_hash_twice_in_one_document_is_refused(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "l.db") as ledger, pytest.raises(RuleViolation) as info:
        ledger.append(document_to_events(_doc(_object("urn:x:1"), _object("urn:x:2")), "d"))
    assert info.value.rule == "epcis-same-hash"


def test_record_time_only_difference_is_a_duplicate(tmp_path: Path) -> None:
    with Ledger.create(tmp_path / "l.db") as ledger:
        ev = _object("urn:uuid:aaa", recordTime="2025-06-20T11:00:00Z")
        assert ledger.append(document_to_events(_doc(ev), "a")).added == 1
        later = dict(ev, recordTime="2025-07-01T11:00:00Z")
        report = ledger.append(document_to_events(_doc(later), "b"))
        assert (report.added, report.duplicates) == (0, 1)


# --------------------------------------------------------------------------- search by id


def test_history_and_export_find_both_ids(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    run = CliRunner()
    run.invoke(cli, ["--db", str(db), "init"])
    ev = _object("urn:uuid:partner-1")
    doc = tmp_path / "a.jsonld"
    doc.write_text(json.dumps(_doc(ev)))
    assert run.invoke(cli, ["--db", str(db), "epcis", "import", str(doc)]).exit_code == 0
    with Ledger(db) as ledger:
        (stored,) = ledger.iter_events()
    for some_id in ("urn:uuid:partner-1", event_hash_id(ev, {}), stored.event_id):
        r = run.invoke(cli, ["--db", str(db), "history", "--event-id", some_id, "--json"])
        assert r.exit_code == 0, r.output
        (found,) = json.loads(r.output)["events"]
        assert found["event_id"] == stored.event_id
        assert found["partner_event_id"] == "urn:uuid:partner-1"
        out = tmp_path / "one.jsonld"
        r = run.invoke(
            cli, ["--db", str(db), "epcis", "export", "--event-id", some_id, "-o", str(out)]
        )
        assert r.exit_code == 0, r.output
        assert [e["eventID"] for e in _events(json.loads(out.read_text()))] == [ev["eventID"]]
    r = run.invoke(cli, ["--db", str(db), "history", "--event-id", "urn:uuid:none"])
    assert r.exit_code == 2 and r.output.startswith("Error: no event 'urn:uuid:none'")
    r = run.invoke(cli, ["--db", str(db), "history"])
    assert r.exit_code == 2


# --------------------------------------------------------------------------- single event


OPENEPCIS = pytest.mark.fixture_source(
    "openepcis/openepcis-test-resources@901e5d392f1f332b9e28e6d2d60111c2112630dc"
)


@OPENEPCIS
@pytest.mark.parametrize(
    "name", ["ObjectEvent", "AggregationEvent", "TransformationEvent", "AssociationEvent"]
)
def test_one_bare_event_is_captured(conformance_dir: Path, tmp_path: Path, name: str) -> None:
    path = conformance_dir / "other" / "openepcis-test-resources" / "Capture" / "Events"
    path = path / f"{name}.json"
    event = json.loads(path.read_text("utf-8"))
    db = tmp_path / "l.db"
    run = CliRunner()
    run.invoke(cli, ["--db", str(db), "init"])
    r = run.invoke(cli, ["--db", str(db), "epcis", "import", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["added"] == 1
    ctx = {k: v for c in event["@context"] if isinstance(c, dict) for k, v in c.items()}
    with Ledger(db) as ledger:
        (stored,) = [s.event for s in ledger.iter_events()]
        assert stored.hash_id == event_hash_id(event, ctx)  # type: ignore[attr-defined]
    r = run.invoke(cli, ["epcis", "hash", str(path)])
    assert r.output.strip() == stored.hash_id  # type: ignore[attr-defined]


def test_a_bad_bare_event_is_named_by_its_path_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    ev = _object("urn:uuid:1") | {"@context": CONTEXT}
    del ev["eventTime"]
    path.write_text(json.dumps(ev))
    with pytest.raises(InvalidInput, match=rf"^{path}: \$: 'eventTime' is required"):
        load_document(str(path))


@pytest.mark.parametrize(
    ("context", "key"),
    [
        ([CONTEXT, {"lt": "https://lottrace.org/epcis/"}], "lt:actor"),
        ([CONTEXT, {"x": "https://lottrace.org/epcis/"}], "x:actor"),
        (CONTEXT, "https://lottrace.org/epcis/actor"),
    ],
)
def test_a_partners_event_cannot_claim_who_recorded_it(
    tmp_path: Path, context: Any, key: str
) -> None:
    """lottrace's actor is the identity that wrote the event; a foreign event is served as
    it came, so an actor in its body would be shown as if lottrace had recorded it."""
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    doc = _doc(_object("urn:uuid:a1"), _object("urn:uuid:a2", **{key: "ana (APROCASSI, admin)"}))
    doc["@context"] = context
    path = tmp_path / "d.jsonld"
    path.write_text(json.dumps(doc))
    r = CliRunner().invoke(cli, ["--db", str(db), "epcis", "import", str(path)])
    assert r.exit_code == 1, r.output
    assert f"eventList[1]: field '{key}': a partner's event cannot say who recorded it" in r.output
    assert "Traceback" not in r.output
    with Ledger.reader(db) as ledger:
        assert ledger.stats()["events"] == 0  # nothing of the document


# --------------------------------------------------------------------------- contexts

PARTNER_URL = "https://contexts.example.eg/gs1egypthc/context.jsonld"


def _partner_doc() -> dict[str, Any]:
    ev = _object("urn:uuid:eg-1") | {"gs1egypthc:batchPermit": "EG-PERMIT-7"}
    return _doc(ev, context=[CONTEXT, PARTNER_URL])


def test_a_registered_context_makes_a_partner_document_import_offline(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    run = CliRunner()
    run.invoke(cli, ["--db", str(db), "init"])
    doc = tmp_path / "eg.jsonld"
    doc.write_text(json.dumps(_partner_doc()))
    r = run.invoke(cli, ["--db", str(db), "epcis", "import", str(doc)])
    assert r.exit_code == 1
    assert "'gs1egypthc' is not declared" in r.output and PARTNER_URL in r.output
    assert "lottrace epcis context add" in r.output
    local = tmp_path / "ctx.jsonld"
    local.write_text(json.dumps({"@context": {"gs1egypthc": "https://eg.example/voc/"}}))
    r = run.invoke(cli, ["--db", str(db), "epcis", "context", "add", PARTNER_URL, str(local)])
    assert r.exit_code == 0, r.output
    local.write_text("changed after registering: the registry keeps its own copy")
    r = run.invoke(cli, ["--db", str(db), "epcis", "context", "list", "--json"])
    assert [e["url"] for e in json.loads(r.output)] == [PARTNER_URL]
    r = run.invoke(cli, ["--db", str(db), "epcis", "import", str(doc)])
    assert r.exit_code == 0, r.output
    with Ledger(db) as ledger:
        (stored,) = [s.event for s in ledger.iter_events()]
        assert stored.context == {"gs1egypthc": "https://eg.example/voc/"}  # type: ignore[attr-defined]
        ev = _events(_partner_doc())[0]
        assert stored.hash_id == event_hash_id(  # type: ignore[attr-defined]
            ev, {"gs1egypthc": "https://eg.example/voc/"}
        )
    r = run.invoke(cli, ["--db", str(db), "epcis", "hash", str(doc)])
    assert r.output.strip() == stored.hash_id  # type: ignore[attr-defined]
    r = run.invoke(cli, ["--db", str(db), "epcis", "context", "remove", PARTNER_URL])
    assert r.exit_code == 0
    r = run.invoke(cli, ["--db", str(db), "epcis", "context", "list"])
    assert r.output == ""
    r = run.invoke(cli, ["--db", str(db), "epcis", "context", "remove", PARTNER_URL])
    assert r.exit_code == 1 and "not registered" in r.output


def test_a_context_that_redefines_a_protected_term_is_not_registered(tmp_path: Path) -> None:
    local = tmp_path / "ctx.jsonld"
    local.write_text(json.dumps({"@context": {"gs1": "https://evil.example/voc/"}}))
    db = tmp_path / "l.db"
    r = CliRunner().invoke(
        cli, ["--db", str(db), "epcis", "context", "add", PARTNER_URL, str(local)]
    )
    assert r.exit_code == 1 and "'gs1'" in r.output and "protected" in r.output
    r = CliRunner().invoke(cli, ["--db", str(db), "epcis", "context", "add", "ftp://x", str(local)])
    assert r.exit_code == 1


@GS1
def test_a_document_redefining_a_protected_term_is_refused_naming_it(
    conformance_dir: Path,
) -> None:
    path = conformance_dir / "gs1-epcis" / "examples" / "WithFullCombinationOfFields"
    path = path / "transformation_event_all_possible_fields.jsonld"
    with pytest.raises(InvalidInput) as info:
        load_document(str(path))
    msg = str(info.value)
    assert msg.startswith(f"{path}: $.@context[4]: redefines 'cbvmda', a protected term")


@pytest.mark.parametrize(
    ("inline", "refused"),
    [
        ({"gs1": "https://gs1.org/voc/"}, None),  # the same definition is allowed
        ({"gs1": "https://evil.example/"}, "gs1"),
        ({"quantity": {"@id": "ex:q"}, "ex": "https://ex.example/"}, "quantity"),
        ({"ex": "https://ex.example/"}, None),
    ],
)
def test_protected_terms(tmp_path: Path, inline: dict[str, Any], refused: str | None) -> None:
    path = tmp_path / "d.jsonld"
    path.write_text(json.dumps(_doc(_object(), context=[CONTEXT, inline])))
    if refused is None:
        load_document(str(path))
    else:
        with pytest.raises(InvalidInput, match=rf"redefines '{refused}', a protected term"):
            load_document(str(path))
    path.write_text(json.dumps(_doc(_object(), context=[inline])))  # no GS1 context: none
    load_document(str(path))


# --------------------------------------------------------------------------- XML

#: GS1's XML examples whose JSON-LD twins hold the same events (others differ in content:
#: the *_all_possible_fields XML lacks e.g. certificationInfo).
XML_TWINS = [
    ("Example_9.6.1-ObjectEvent-2020_06_18a.xml", ["Example_9.6.1-ObjectEvent.jsonld"]),
    (
        "AssociationEvent/AssociationEventExamples.xml",
        [f"AssociationEvent/AssociationEvent-{c}.jsonld" for c in "abcdefg"],
    ),
]


@GS1
@pytest.mark.parametrize(("xml", "twins"), XML_TWINS)
def test_xml_and_json_ld_twins_give_the_same_event_hash_ids(
    conformance_dir: Path, xml: str, twins: list[str]
) -> None:
    from lottrace.epcis_hash import document_hash_ids

    base = conformance_dir / "gs1-epcis"
    from_xml = document_hash_ids(load_document(str(base / "xml" / xml)))
    from_json = [
        h for t in twins for h in document_hash_ids(load_document(str(base / "examples" / t)))
    ]
    assert set(from_json) <= set(from_xml) and len(from_json) >= 1


def _xml_files() -> list[Any]:
    base = CONFORMANCE / "gs1-epcis"
    names = sorted(str(p.relative_to(base)) for p in base.glob("xml*/**/*.xml"))
    if not names:
        return [pytest.param(None, id="gs1/<conformance folder missing>", marks=GS1)]
    return [pytest.param(n, id=f"gs1/{n}", marks=GS1) for n in names]


@pytest.mark.parametrize("name", _xml_files())
def test_xml_documents_import_or_are_refused_in_one_line(
    conformance_dir: Path, tmp_path: Path, name: str
) -> None:
    """EPCIS 2.0 and 1.2 XML: imported, or refused naming the file; never a crash."""
    path = conformance_dir / "gs1-epcis" / name
    db = tmp_path / "l.db"
    run = CliRunner()
    run.invoke(cli, ["--db", str(db), "init"])
    r = run.invoke(cli, ["--db", str(db), "epcis", "import", str(path), "--json"])
    if r.exit_code == 0:
        n = json.loads(r.output)["added"]
        again = run.invoke(cli, ["--db", str(db), "epcis", "import", str(path), "--json"])
        assert json.loads(again.output)["added"] == 0
        assert n > 0 or "masterdata" in name
    else:
        assert r.exit_code == 1, r.output
        line = r.output.strip()
        assert line.startswith(f"Error: {path}") and "\n" not in line, line


def test_epcis_1_2_transformation_event_in_its_extension_wrapper(conformance_dir: Path) -> None:
    doc = load_document(str(conformance_dir / "gs1-epcis" / "xml-1.2" / "TransformationEvent.xml"))
    (ev,) = _events(doc)
    assert ev["type"] == "TransformationEvent"
    assert ev["bizStep"] == "commissioning"
    assert ev["inputQuantityList"][0] == {
        "epcClass": "urn:epc:class:lgtin:4012345.011111.4444",
        "quantity": 10,
        "uom": "KGM",
    }


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("<epcis:EPCISDocument xmlns:epcis='urn:epcglobal:epcis:xsd:2'>\n<EPCISBody>\n</EPCIS>", 3),
        ("<?xml version='1.0'?>\n<root/>", 2),
    ],
)
def test_a_bad_xml_file_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, line: int
) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(text)
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "l.db"), "epcis", "import", str(path)])
    assert r.exit_code == 1
    out = r.output.strip()
    assert out.startswith(f"Error: {path}:{line}: ") and "\n" not in out, out


def test_an_edited_context_index_cannot_point_at_other_files(tmp_path: Path) -> None:
    """`context remove` deletes only the copies lottrace stored, never the ledger."""
    db = tmp_path / "l.db"
    run = CliRunner()
    run.invoke(cli, ["--db", str(db), "init"])
    local = tmp_path / "ctx.jsonld"
    local.write_text(json.dumps({"@context": {"gs1egypthc": "https://eg.example/voc/"}}))
    assert (
        run.invoke(
            cli, ["--db", str(db), "epcis", "context", "add", PARTNER_URL, str(local)]
        ).exit_code
        == 0
    )
    [index] = tmp_path.glob("*.contexts/index.json")
    index.write_text(json.dumps({PARTNER_URL: "../l.db"}))
    r = run.invoke(cli, ["--db", str(db), "epcis", "context", "remove", PARTNER_URL])
    assert r.exit_code == 1 and "not a map of URLs to the files lottrace stored" in r.output
    assert db.exists()
