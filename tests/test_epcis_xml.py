"""EPCIS XML export (issue 17): ``epcis export --format xml`` writes EPCIS 2.0 XML
(and 1.2 where the events allow) that GS1's XSDs accept and that imports back to
the same events, eventIDs and Event Hash IDs as the JSON-LD path.

Conformance material is read from ``../shared/conformance`` (``conformance_dir``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lxml import etree

from lottrace.cli import cli
from lottrace.demo import build_demo
from lottrace.epcis import document_to_events, export_document, load_document
from lottrace.epcis_hash import document_hash_ids
from lottrace.epcis_xml import XmlExportError, document_to_xml, xml_to_document
from lottrace.errors import LottraceError
from lottrace.events import RECORD_TYPES
from lottrace.ledger import Ledger
from lottrace.masterdata import document_records

ROOT = Path(__file__).resolve().parents[1]
CONFORMANCE = ROOT.parent / "shared" / "conformance"
GS1 = pytest.mark.fixture_source("gs1/EPCIS@2b888befbc071e1c2d388e027b30149b3f51dcef")
GDST = pytest.mark.fixture_source(
    "ift-gftc/opentraceability@05a392128730367424b0c26048d6199de9cfa71f"
)
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xml") / "demo.db"
    build_demo(path)
    return path


@pytest.fixture(scope="module")
def xsd_2(conformance_dir: Path) -> etree.XMLSchema:
    return etree.XMLSchema(
        etree.parse(str(conformance_dir / "gs1-epcis" / "xsd" / "EPCglobal-epcis-2_0.xsd"))
    )


@pytest.fixture(scope="module")
def xsd_12(conformance_dir: Path) -> etree.XMLSchema:
    return etree.XMLSchema(
        etree.parse(str(conformance_dir / "gs1-epcis" / "xsd-1.2" / "EPCglobal-epcis-1_2.xsd"))
    )


def _valid(schema: etree.XMLSchema, data: bytes) -> None:
    doc = etree.fromstring(data)
    if not schema.validate(doc):
        errors = [f"{e.line}: {e.message}" for e in schema.error_log][:5]
        raise AssertionError("\n".join(errors))


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    body = doc["epcisBody"]
    if "queryResults" in body:
        return body["queryResults"]["resultsBody"]["eventList"]  # type: ignore[no-any-return]
    return body["eventList"]  # type: ignore[no-any-return]


def _ids(db: Path) -> list[str]:
    """The ids of the events an export carries (records, such as certificates, never go)."""
    with Ledger(db) as ledger:
        return [s.event_id for s in ledger.iter_events() if s.event.type not in RECORD_TYPES]


def _import(db: Path, doc: dict[str, Any], name: str) -> None:
    with Ledger.create(db) as ledger:
        ledger.append(document_to_events(doc, name))


def _as_xml(doc: dict[str, Any], tmp_path: Path, version: str = "2.0") -> tuple[bytes, Path]:
    data = document_to_xml(doc, version=version)
    path = tmp_path / f"out-{version}.xml"
    path.write_bytes(data)
    return data, path


# --------------------------------------------------------------------------- the sample season


def test_the_sample_season_exports_as_valid_xml_that_imports_to_the_same_events(
    demo_db: Path, tmp_path: Path, xsd_2: etree.XMLSchema
) -> None:
    run = CliRunner()
    out = tmp_path / "season.xml"
    r = run.invoke(
        cli, ["--db", str(demo_db), "epcis", "export", "--format", "xml", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith(f"wrote {out}: 85 EPCIS events")
    _valid(xsd_2, out.read_bytes())
    with Ledger(demo_db) as ledger:
        doc = json.loads(json.dumps(export_document(ledger)))
    assert document_hash_ids(load_document(str(out))) == [e["eventID"] for e in _events(doc)]
    _import(tmp_path / "x.db", load_document(str(out)), str(out))
    assert _ids(tmp_path / "x.db") == _ids(demo_db)


def test_xml_version_1_2_refuses_naming_the_first_event_it_cannot_carry(
    demo_db: Path, tmp_path: Path
) -> None:
    out = tmp_path / "season.xml"
    args = ["epcis", "export", "--format", "xml", "--xml-version", "1.2", "-o", str(out)]
    r = CliRunner().invoke(cli, ["--db", str(demo_db), *args])
    assert r.exit_code == 1
    line = r.output.strip()
    assert "\n" not in line and not out.exists()
    assert line.startswith("Error: cannot write EPCIS 1.2 XML: event ")
    assert "sensorElementList, which EPCIS 1.2 cannot carry" in line
    with Ledger(demo_db) as ledger:
        events = _events(export_document(ledger))
    first = next(i for i, e in enumerate(events) if "sensorElementList" in e)
    assert f"event {first + 1} ({events[first]['type']} {events[first]['eventID']})" in line


def test_xml_version_needs_format_xml(demo_db: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        cli,
        [
            "--db",
            str(demo_db),
            "epcis",
            "export",
            "--xml-version",
            "1.2",
            "-o",
            str(tmp_path / "o"),
        ],
    )
    assert r.exit_code == 2 and "--xml-version" in r.output


# --------------------------------------------------------------------------- partners' documents


def _foreign() -> list[Any]:
    base = CONFORMANCE / "gs1-epcis"
    names = [
        f"examples/{p.relative_to(base / 'examples')}" for p in base.glob("examples/**/*.jsonld")
    ]
    names += [str(p.relative_to(base)) for p in base.glob("xml*/**/*.xml")]
    params = [pytest.param(f"gs1-epcis/{n}", id=f"gs1/{n}", marks=GS1) for n in sorted(names)]
    gdst = CONFORMANCE / "other" / "opentraceability-gdst"
    params += [
        pytest.param(f"other/opentraceability-gdst/{p.name}", id=f"gdst/{p.name}", marks=GDST)
        for p in sorted(gdst.glob("*.jsonld"))
    ]
    if not params:
        return [pytest.param(None, id="<conformance folder missing>", marks=GS1)]
    return params


def _imported(path: Path, db: Path) -> bool:
    """Import a fixture into a new ledger; False when lottrace refuses it."""
    try:
        doc = load_document(str(path))
        _import(db, doc, str(path))
    except LottraceError:  # refused documents and events (tests/test_epcis*.py say why)
        return False
    return True


@pytest.mark.parametrize("name", _foreign())
def test_imported_partner_documents_export_as_valid_xml_and_come_back_the_same(
    conformance_dir: Path, tmp_path: Path, name: str, xsd_2: etree.XMLSchema
) -> None:
    """JSON-LD path and XML path give the same lottrace events, eventIDs and Event Hash IDs."""
    if not _imported(conformance_dir / name, tmp_path / "a.db"):
        return
    with Ledger(tmp_path / "a.db") as ledger:
        doc = json.loads(json.dumps(export_document(ledger)))
    data, path = _as_xml(doc, tmp_path)
    _valid(xsd_2, data)
    back = load_document(str(path))
    assert [e["eventID"] for e in _events(back)] == [e["eventID"] for e in _events(doc)]
    assert document_hash_ids(back) == document_hash_ids(doc)
    _import(tmp_path / "b.db", back, str(path))
    assert _ids(tmp_path / "b.db") == _ids(tmp_path / "a.db")


@GS1
@pytest.mark.parametrize(
    "name", ["TransformationEvent.xml", "AggregationEvent.xml", "TransactionEvent.xml"]
)
def test_epcis_1_2_documents_export_as_valid_1_2_xml(
    conformance_dir: Path, tmp_path: Path, name: str, xsd_12: etree.XMLSchema
) -> None:
    source = conformance_dir / "gs1-epcis" / "xml-1.2" / name
    assert _imported(source, tmp_path / "a.db")
    with Ledger(tmp_path / "a.db") as ledger:
        doc = json.loads(json.dumps(export_document(ledger)))
    data, path = _as_xml(doc, tmp_path, "1.2")
    assert b"urn:epcglobal:epcis:xsd:1" in data
    _valid(xsd_12, data)
    back = load_document(str(path))
    assert document_hash_ids(back) == document_hash_ids(doc)
    _import(tmp_path / "b.db", back, str(path))
    assert _ids(tmp_path / "b.db") == _ids(tmp_path / "a.db")


@GS1
def test_an_association_event_is_refused_in_1_2(conformance_dir: Path) -> None:
    doc = load_document(
        str(
            conformance_dir
            / "gs1-epcis"
            / "xml"
            / "AssociationEvent"
            / "AssociationEventExamples.xml"
        )
    )
    with pytest.raises(XmlExportError, match=r"event 1 \(AssociationEvent .*type AssociationEvent"):
        document_to_xml(doc, version="1.2")


# --------------------------------------------------------------------------- JSON types


def test_extension_values_keep_their_json_types_through_xml() -> None:
    ext = {
        "ex:int": 200,
        "ex:float": 200.0,
        "ex:bool": False,
        "ex:null": None,
        "ex:empty": [],
        "ex:one": ["a"],
        "ex:two": [1, "b"],
        "ex:obj": {"ex:inner": [{"ex:x": 1.5}], "ex:s": "text"},
        "ex:text": "200",
    }
    event = {
        "type": "ObjectEvent",
        "eventTime": "2025-06-20T10:00:00.000+02:00",
        "eventTimeZoneOffset": "+02:00",
        "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
        "action": "OBSERVE",
        "bizStep": "shipping",
        "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234", "ex:door": 3},
        "sensorElementList": [
            {"sensorReport": [{"type": "Temperature", "value": 20, "uom": "CEL"}], **ext}
        ],
        **ext,
    }
    doc = {
        "@context": [CONTEXT, {"ex": "https://ns.example.com/epcis/"}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-07-01T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    }
    back = xml_to_document(document_to_xml(doc), "t.xml")
    assert _events(back) == [event]
    assert document_hash_ids(back) == document_hash_ids(doc)


# --------------------------------------------------------------------------- one event, two bindings

#: GS1's XML examples and their JSON-LD twins (the same events; the JSON-LD ones carry
#: placeholder eventIDs, the XML ones none).
TWINS = [
    ("xml/Example_9.6.1-ObjectEvent-2020_06_18a.xml", ["Example_9.6.1-ObjectEvent.jsonld"]),
    (
        "xml/AssociationEvent/AssociationEventExamples.xml",
        [f"AssociationEvent/AssociationEvent-{c}.jsonld" for c in "abcdefg"],
    ),
]


def _without_event_ids(sources: list[Path], tmp_path: Path) -> list[Path]:
    out = []
    for source in sources:
        doc = json.loads(source.read_text("utf-8"))
        for event in _events(doc):
            event.pop("eventID", None)
        path = tmp_path / source.name
        path.write_text(json.dumps(doc), "utf-8")
        out.append(path)
    return out


def _import_cli(db: Path, *paths: Path) -> Any:
    if not db.exists():
        assert CliRunner().invoke(cli, ["--db", str(db), "init"]).exit_code == 0
    return CliRunner().invoke(cli, ["--db", str(db), "epcis", "import", "--json", *map(str, paths)])


def _count(db: Path) -> int:
    """The ledger's events, less documents' headers and master data: GS1's JSON-LD twins
    carry a sender and receiver their XML twins do not (see test_epcis_masterdata)."""
    with Ledger(db) as ledger:
        return sum(
            s.event.type not in ("epcis_header", "master_data") for s in ledger.iter_events()
        )


def _headers(db: Path) -> int:
    with Ledger(db) as ledger:
        return sum(s.event.type in ("epcis_header", "master_data") for s in ledger.iter_events())


@GS1
@pytest.mark.parametrize(("xml", "twins"), TWINS)
@pytest.mark.parametrize("xml_first", [True, False], ids=["xml-first", "json-ld-first"])
def test_an_xml_example_and_its_json_ld_twin_are_one_event_in_either_order(
    conformance_dir: Path, tmp_path: Path, xml: str, twins: list[str], xml_first: bool
) -> None:
    """Same Event Hash ID, same eventID (none): a duplicate, whatever the representation
    (the XML's namespaces and numbers are not written as the JSON-LD's are)."""
    base = conformance_dir / "gs1-epcis"
    json_ld = _without_event_ids([base / "examples" / t for t in twins], tmp_path)
    n_xml = len(_events(load_document(str(base / xml))))
    n_json = sum(len(_events(load_document(str(p)))) for p in json_ld)
    db = tmp_path / "a.db"
    first, second = ([base / xml], json_ld) if xml_first else (json_ld, [base / xml])
    assert _import_cli(db, *first).exit_code == 0
    headers_before = _headers(db)
    r = _import_cli(db, *second)
    assert r.exit_code == 0, r.output
    # the JSON-LD twins' headers (sender, receiver) are one header: stored once
    headers = sum(len(document_records(load_document(str(p)), {})) for p in second)
    new_headers = _headers(db) - headers_before
    assert json.loads(r.output)["duplicates"] == n_json + headers - new_headers
    assert _count(db) == n_xml


@GS1
@pytest.mark.parametrize(("xml", "twins"), TWINS)
def test_a_twin_without_event_ids_after_one_with_them_is_a_duplicate_not_the_reverse(
    conformance_dir: Path, tmp_path: Path, xml: str, twins: list[str]
) -> None:
    """A capture without an eventID names no id that could be lost; one with an id the
    stored event lacks is refused (that id would point at nothing)."""
    base = conformance_dir / "gs1-epcis"
    twin = base / "examples" / twins[0]
    assert _import_cli(tmp_path / "a.db", twin).exit_code == 0
    r = _import_cli(tmp_path / "a.db", base / xml)
    n_twin = len(_events(load_document(str(twin))))
    assert r.exit_code == 0 and json.loads(r.output)["duplicates"] == n_twin, r.output
    assert _import_cli(tmp_path / "b.db", base / xml).exit_code == 0
    r = _import_cli(tmp_path / "b.db", twin)
    assert r.exit_code == 1
    assert "[epcis-same-hash]" in r.output and "under another eventID" in r.output


def test_the_same_event_written_otherwise_is_a_duplicate(tmp_path: Path) -> None:
    """``200`` or ``200.0``, an extension prefix named ``ex`` or ``other``: the same hash."""

    def doc(quantity: float, prefix: str) -> dict[str, Any]:
        return {
            "@context": [CONTEXT, {prefix: "https://ns.example.com/epcis/"}],
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": "2025-07-01T00:00:00Z",
            "epcisBody": {
                "eventList": [
                    {
                        "type": "ObjectEvent",
                        "eventID": "urn:uuid:6e3d0c9e-0b39-4a2c-9a3a-0d6f1d8e1a11",
                        "eventTime": "2025-06-20T10:00:00.000+02:00",
                        "eventTimeZoneOffset": "+02:00",
                        "action": "OBSERVE",
                        "quantityList": [
                            {
                                "epcClass": "urn:epc:class:lgtin:4012345.012345.998877",
                                "quantity": quantity,
                                "uom": "KGM",
                            }
                        ],
                        f"{prefix}:grade": "A",
                    }
                ]
            },
        }

    a, b = doc(200, "ex"), doc(200.0, "other")
    assert document_hash_ids(a) == document_hash_ids(b)
    with Ledger.create(tmp_path / "l.db") as ledger:
        assert ledger.append(document_to_events(a, "a")).added == 1
        report = ledger.append(document_to_events(b, "b"))
        assert (report.added, report.duplicates) == (0, 1)


# --------------------------------------------------------------------------- XML lines

_TWO_CAPTURES = """<?xml version="1.0" encoding="UTF-8"?>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0"
    creationDate="2025-07-01T00:00:00Z">
  <EPCISBody>
    <EventList>
      <ObjectEvent>
        <eventTime>2025-06-20T10:00:00.000+02:00</eventTime>
        <eventTimeZoneOffset>+02:00</eventTimeZoneOffset>
        <eventID>urn:uuid:aaaaaaaa-0000-4000-8000-000000000001</eventID>
        <epcList><epc>urn:epc:id:sgtin:0614141.107346.2017</epc></epcList>
        <action>OBSERVE</action>
      </ObjectEvent>
      <ObjectEvent>
        <eventTime>2025-06-20T10:00:00.000+02:00</eventTime>
        <eventTimeZoneOffset>+02:00</eventTimeZoneOffset>
        <eventID>urn:uuid:aaaaaaaa-0000-4000-8000-000000000002</eventID>
        <epcList><epc>urn:epc:id:sgtin:0614141.107346.2017</epc></epcList>
        <action>OBSERVE</action>
      </ObjectEvent>
      <ObjectEvent>
        <eventTime>2025-06-21T10:00:00.000+02:00</eventTime>
        <eventTimeZoneOffset>+02:00</eventTimeZoneOffset>
        <epcList><epc>urn:epc:id:sgtin:0614141.107346.2018</epc></epcList>
        <action>OBSERVE</action>
        <bizStep>not a step</bizStep>
      </ObjectEvent>
    </EventList>
  </EPCISBody>
</epcis:EPCISDocument>
"""


def test_a_refusal_after_conversion_names_the_xml_line(tmp_path: Path) -> None:
    path = tmp_path / "two.xml"
    path.write_text(_TWO_CAPTURES, "utf-8")
    r = _import_cli(tmp_path / "l.db", path)
    assert r.exit_code == 1
    line = r.output.strip()  # the third event's bizStep, line 25
    assert line.startswith(f"Error: {path}:25: bizStep: "), line
    path.write_text(_TWO_CAPTURES.replace("<bizStep>not a step</bizStep>", ""), "utf-8")
    r = _import_cli(tmp_path / "l.db", path)
    assert r.exit_code == 1
    line = r.output.strip()  # the second capture of one event: its element, line 13
    assert line.startswith(f"Error: {path}:13: [epcis-same-hash]"), line
    assert "$." not in line


@GS1
def test_a_refused_1_2_document_names_the_line_of_its_extension(conformance_dir: Path) -> None:
    path = conformance_dir / "gs1-epcis" / "xml-1.2" / "ObjectEvent.xml"
    with pytest.raises(LottraceError) as info:
        load_document(str(path))
    line = int(str(info.value).removeprefix(f"{path}:").split(":")[0])
    assert "<myField>" in path.read_text("utf-8").splitlines()[line - 1]
    assert "myField" in str(info.value)


def test_several_certification_infos_are_refused_in_xml_one_is_written() -> None:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2025-06-20T10:00:00.000+02:00",
        "eventTimeZoneOffset": "+02:00",
        "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
        "action": "OBSERVE",
        "certificationInfo": ["https://cert.example.org/1"],
    }
    doc = {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-07-01T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    }
    back = xml_to_document(document_to_xml(doc), "t.xml")
    assert _events(back)[0]["certificationInfo"] == "https://cert.example.org/1"
    assert document_hash_ids(back) == document_hash_ids(doc)
    event["certificationInfo"] = ["https://cert.example.org/1", "https://cert.example.org/2"]
    with pytest.raises(XmlExportError, match=r"event 1 .* has 2 certificationInfo values"):
        document_to_xml(doc)


def test_xml_entities_are_refused_not_expanded_or_dropped(tmp_path: Path) -> None:
    """An entity reference in an id (``urn:&b;``) was stored as ``urn:``: now refused whole."""
    doc = tmp_path / "e.xml"
    doc.write_text(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY b "bbb">]>'
        '<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" schemaVersion="2.0" '
        'creationDate="2020-01-01T00:00:00Z"><EPCISBody><EventList><ObjectEvent>'
        "<eventTime>2020-01-01T00:00:00Z</eventTime><eventTimeZoneOffset>+00:00"
        "</eventTimeZoneOffset><action>OBSERVE</action><epcList><epc>urn:&b;</epc></epcList>"
        "</ObjectEvent></EventList></EPCISBody></epcis:EPCISDocument>"
    )
    db = tmp_path / "l.db"
    run = CliRunner()
    run.invoke(cli, ["--db", str(db), "init"])
    r = run.invoke(cli, ["--db", str(db), "epcis", "import", str(doc)])
    assert r.exit_code == 1 and "XML entities" in r.output, r.output
