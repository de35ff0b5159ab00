"""Issue 17: partners' master data and document headers, kept, versioned, exported, used.

Also the issue's done-when checks over every conformance fixture: each one
imports or is refused naming a JSON path or an XML line; each imported one
exports (JSON-LD and XML) and reads back to the same events, master data and
header fields, the XML valid against GS1's XSD.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from lxml import etree

from lottrace.cli import cli
from lottrace.delays import delays
from lottrace.epcis import export_document, load_document
from lottrace.epcis_xml import document_to_xml
from lottrace.errors import LottraceError, RuleViolation
from lottrace.events import MasterData
from lottrace.importing import import_documents
from lottrace.ledger import Ledger
from lottrace.masterdata import current, parties, sites
from lottrace.passport import passport, passport_data
from lottrace.provenance import downstream

from factories import batch, chain, correction

GS1 = pytest.mark.fixture_source("gs1/EPCIS@2b888befbc071e1c2d388e027b30149b3f51dcef")
CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
LOCATION = "urn:epcglobal:epcis:vtype:BusinessLocation"
PARTY = "urn:epcglobal:epcis:vtype:Party"
MDA = "urn:epcglobal:cbv:mda#"
FARM = "https://lottrace.org/site/farm:H1"
FARM2 = "https://lottrace.org/site/farm:H2"
BUYER = "urn:epc:id:pgln:4012345.00001"
SBDH = "http://www.unece.org/cefact/namespaces/StandardBusinessDocumentHeader"


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


@pytest.fixture(scope="module")
def gs1_validator(conformance_dir: Path) -> Any:
    import jsonschema

    schema = json.loads(
        (conformance_dir / "gs1-epcis" / "schema" / "EPCIS-JSON-Schema.json").read_text("utf-8")
    )
    cls = jsonschema.Draft7Validator
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _valid(schema: etree.XMLSchema, data: bytes) -> None:
    if not schema.validate(etree.fromstring(data)):
        raise AssertionError("\n".join(f"{e.line}: {e.message}" for e in schema.error_log))


def _element(ident: str, **attributes: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "attributes": [{"id": MDA + k, "attribute": v} for k, v in attributes.items()],
    }


def _doc(
    created: str,
    vocabularies: dict[str, list[dict[str, Any]]],
    events: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": [CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": created,
        **fields,
        "epcisHeader": {
            "epcisMasterData": {
                "vocabularyList": [
                    {"type": kind, "vocabularyElementList": elements}
                    for kind, elements in vocabularies.items()
                ]
            }
        },
        "epcisBody": {"eventList": events or []},
    }
    return doc


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), "utf-8")
    return path


def _cli(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


def _import(db: Path, *paths: Path) -> dict[str, Any]:
    r = _cli(db, "epcis", "import", "--json", *map(str, paths))
    assert r.exit_code == 0, r.output
    return json.loads(r.output)  # type: ignore[no-any-return]


def _ids(db: Path) -> list[str]:
    with Ledger(db) as ledger:
        return sorted(s.event_id for s in ledger.iter_events())


def _name(db: Path, ident: str) -> Any:
    with Ledger(db) as ledger:
        return current(ledger)[(LOCATION, ident)].attribute("name")


# --------------------------------------------------------------------------- versions


def test_each_version_is_an_event_and_the_latest_by_time_is_current(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    assert _cli(db, "init").exit_code == 0
    jan = _write(
        tmp_path,
        "jan.json",
        _doc("2025-01-01T00:00:00Z", {LOCATION: [_element(FARM, name="Finca Uno")]}),
    )
    feb = _write(
        tmp_path,
        "feb.json",
        _doc("2025-02-01T00:00:00Z", {LOCATION: [_element(FARM, name="Finca Dos")]}),
    )
    dec = _write(
        tmp_path,
        "dec.json",
        _doc("2024-12-01T00:00:00Z", {LOCATION: [_element(FARM, name="Finca Cero")]}),
    )
    assert _import(db, jan)["added"] == 1
    assert _name(db, FARM) == "Finca Uno"
    assert _import(db, feb)["added"] == 1
    assert _name(db, FARM) == "Finca Dos"
    assert _import(db, dec)["added"] == 1  # an older version, arriving late: not current
    assert _name(db, FARM) == "Finca Dos"
    with Ledger(db) as ledger:
        versions = [s.event for s in ledger.events_of_types(["master_data"])]
        assert [v.element["attributes"][0]["attribute"] for v in versions] == [  # type: ignore[attr-defined]
            "Finca Uno",
            "Finca Dos",
            "Finca Cero",
        ]
        assert all(isinstance(v, MasterData) for v in versions)
        assert ledger.stats()["lots"] == 0  # no lot, no checkpoint


def test_the_same_master_data_again_stores_nothing(tmp_path: Path) -> None:
    """The same document again, and the same content in a newer document: duplicates."""
    db = tmp_path / "l.db"
    _cli(db, "init")
    vocab = {LOCATION: [_element(FARM, name="Finca Uno")], PARTY: [_element(BUYER, name="Elb")]}
    first = _write(tmp_path, "a.json", _doc("2025-01-01T00:00:00Z", vocab, sender=BUYER))
    later = _write(tmp_path, "b.json", _doc("2025-03-01T00:00:00Z", vocab, sender=BUYER))
    assert _import(db, first)["added"] == 3  # two elements and the header
    before = _ids(db)
    again = _import(db, first)
    assert (again["added"], again["duplicates"]) == (0, 3)
    newer = _import(db, later)
    assert (newer["added"], newer["duplicates"]) == (0, 3)
    assert _ids(db) == before


def test_master_data_is_replaced_by_a_newer_version_not_voided(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _cli(db, "init")
    doc = _doc("2025-01-01T00:00:00Z", {LOCATION: [_element(FARM, name="A")]})
    _import(db, _write(tmp_path, "a.json", doc))
    with Ledger(db) as ledger:
        version = current(ledger)[(LOCATION, FARM)]
        with pytest.raises(RuleViolation, match=r"correction-target.*master_data"):
            ledger.append(batch(correction(version.event_id, day=80)))
        assert ledger.verify().events == 1


def test_a_bad_vocabulary_element_is_refused_naming_its_path(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    _cli(db, "init")
    bad = _doc("2025-01-01T00:00:00Z", {LOCATION: [{"attributes": []}]})
    r = _cli(db, "epcis", "import", str(_write(tmp_path, "bad.json", bad)))
    assert r.exit_code == 1
    assert "$.epcisHeader.epcisMasterData.vocabularyList[0].vocabularyElementList[0]" in r.output
    assert "'id' is required" in r.output and len(r.output.strip().splitlines()) == 1
    assert _ids(db) == []
    listed = _doc("2025-01-01T00:00:00Z", {LOCATION: [_element(FARM, name=["a", "b"])]})
    r = _cli(db, "epcis", "import", str(_write(tmp_path, "list.json", listed)))
    assert r.exit_code == 1 and "attributes[0].attribute: must be a number" in r.output
    assert _ids(db) == []


# --------------------------------------------------------------------------- round trips


def _sbdh_doc() -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<epcis:EPCISDocument xmlns:epcis="urn:epcglobal:epcis:xsd:2" xmlns:sbdh="{SBDH}"
    schemaVersion="2.0" creationDate="2025-06-01T10:00:00Z">
  <EPCISHeader>
    <sbdh:StandardBusinessDocumentHeader>
      <sbdh:HeaderVersion>1.0</sbdh:HeaderVersion>
      <sbdh:Sender>
        <sbdh:Identifier Authority="SGLN">urn:epc:id:sgln:7751234.00001.0</sbdh:Identifier>
        <sbdh:ContactInformation><sbdh:Contact>Ana Quispe</sbdh:Contact></sbdh:ContactInformation>
      </sbdh:Sender>
      <sbdh:Receiver>
        <sbdh:Identifier Authority="SGLN">urn:epc:id:sgln:4012345.00001.0</sbdh:Identifier>
      </sbdh:Receiver>
      <sbdh:DocumentIdentification>
        <sbdh:Standard>EPCglobal</sbdh:Standard>
        <sbdh:TypeVersion>2.0</sbdh:TypeVersion>
        <sbdh:InstanceIdentifier>APR-2025-0042</sbdh:InstanceIdentifier>
        <sbdh:Type>Events</sbdh:Type>
        <sbdh:CreationDateAndTime>2025-06-01T10:00:00Z</sbdh:CreationDateAndTime>
      </sbdh:DocumentIdentification>
    </sbdh:StandardBusinessDocumentHeader>
    <extension>
      <EPCISMasterData>
        <VocabularyList>
          <Vocabulary type="{LOCATION}">
            <VocabularyElementList>
              <VocabularyElement id="{FARM}">
                <attribute id="{MDA}name">Finca Uno</attribute>
                <attribute id="{MDA}latitude">-5.1234</attribute>
                <attribute id="{MDA}longitude">-79.4321</attribute>
                <children><id>urn:epc:id:sgln:7751234.00001.1</id></children>
              </VocabularyElement>
            </VocabularyElementList>
          </Vocabulary>
        </VocabularyList>
      </EPCISMasterData>
    </extension>
  </EPCISHeader>
  <EPCISBody><EventList/></EPCISBody>
</epcis:EPCISDocument>
""".encode()


def _c14n(el: Any) -> bytes:
    for node in el.iter():
        node.tail = None if node.tail is None or not node.tail.strip() else node.tail
        if len(node) and node.text is not None and not node.text.strip():
            node.text = None
    return etree.tostring(el, method="c14n", exclusive=True)  # type: ignore[no-any-return]


def test_an_sbdh_is_read_and_written_back_as_it_was(tmp_path: Path, xsd_2: etree.XMLSchema) -> None:
    src = tmp_path / "sbdh.xml"
    src.write_bytes(_sbdh_doc())
    _valid(xsd_2, src.read_bytes())
    db = tmp_path / "l.db"
    _cli(db, "init")
    assert _import(db, src)["added"] == 2  # the header and one location
    out = tmp_path / "out.xml"
    assert _cli(db, "epcis", "export", "--format", "xml", "-o", str(out)).exit_code == 0
    _valid(xsd_2, out.read_bytes())
    ns = {"sbdh": SBDH}
    original = etree.fromstring(src.read_bytes()).find(".//sbdh:StandardBusinessDocumentHeader", ns)
    written = etree.fromstring(out.read_bytes()).find(".//sbdh:StandardBusinessDocumentHeader", ns)
    assert written is not None and _c14n(written) == _c14n(original)
    # JSON-LD: the three fields of its binding, and the SBDH whole
    assert _cli(db, "epcis", "export", "-o", str(tmp_path / "out.json")).exit_code == 0
    doc = json.loads((tmp_path / "out.json").read_text("utf-8"))
    assert doc["sender"] == "urn:epc:id:sgln:7751234.00001.0"
    assert doc["receiver"] == "urn:epc:id:sgln:4012345.00001.0"
    assert doc["instanceIdentifier"] == "APR-2025-0042"
    assert "Ana Quispe" in doc["epcisHeader"]["lt:sbdh"]
    for path in (out, tmp_path / "out.json"):  # either form reads back to the same events
        again = tmp_path / f"{path.suffix}.db"
        _cli(again, "init")
        _import(again, path)
        assert _ids(again) == _ids(db)


def test_sender_receiver_and_id_without_an_sbdh_round_trip_in_xml(
    tmp_path: Path, xsd_2: etree.XMLSchema
) -> None:
    """A sender alone cannot make an SBDH (it needs a receiver and an instance id)."""
    db = tmp_path / "l.db"
    _cli(db, "init")
    doc = _doc("2025-01-01T00:00:00Z", {}, id="https://example.org/doc/1", sender=BUYER)
    _import(db, _write(tmp_path, "a.json", doc))
    out = tmp_path / "a.xml"
    _cli(db, "epcis", "export", "--format", "xml", "-o", str(out))
    _valid(xsd_2, out.read_bytes())
    again = tmp_path / "b.db"
    _cli(again, "init")
    _import(again, out)
    assert _ids(again) == _ids(db)
    with Ledger(again) as ledger:
        back = export_document(ledger)
    assert (back["id"], back["sender"]) == ("https://example.org/doc/1", BUYER)


def test_master_data_writes_valid_1_2_xml(tmp_path: Path, xsd_12: etree.XMLSchema) -> None:
    src = tmp_path / "sbdh.xml"
    src.write_bytes(_sbdh_doc())
    db = tmp_path / "l.db"
    _cli(db, "init")
    _import(db, src)
    out = tmp_path / "out.xml"
    r = _cli(db, "epcis", "export", "--format", "xml", "--xml-version", "1.2", "-o", str(out))
    assert r.exit_code == 0, r.output
    _valid(xsd_12, out.read_bytes())
    again = tmp_path / "b.db"
    _cli(again, "init")
    _import(again, out)
    assert _ids(again) == _ids(db)


def test_a_lot_export_carries_no_master_data(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with Ledger.create(db) as ledger:
        ledger.append(batch(*chain()))
    _import(
        db,
        _write(
            tmp_path,
            "a.json",
            _doc("2025-01-01T00:00:00Z", {LOCATION: [_element(FARM, name="A")]}, sender=BUYER),
        ),
    )
    with Ledger(db) as ledger:
        assert "epcisHeader" in export_document(ledger)
        assert "epcisHeader" not in export_document(ledger, lot="M1")
        assert "sender" not in export_document(ledger, lot="M1")


# --------------------------------------------------------------------------- every fixture


def _fixtures() -> list[str]:
    from conftest import CONFORMANCE_DIR

    roots = ("gs1-epcis/examples", "gs1-epcis/xml", "gs1-epcis/xml-1.2", "other")
    return sorted(
        str(p.relative_to(CONFORMANCE_DIR))
        for root in roots
        for p in (CONFORMANCE_DIR / root).rglob("*")
        if p.suffix in (".json", ".jsonld", ".xml")
    )


_PLACE = re.compile(r"\$[.\[]|\$:|\.(?:xml|json|jsonld):\d+")


def _header(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        k: doc[k]
        for k in ("id", "sender", "receiver", "instanceIdentifier", "epcisHeader")
        if k in doc
    }


def _event_ids(doc: dict[str, Any]) -> list[str]:
    return [e["eventID"] for e in doc["epcisBody"]["eventList"]]


@GS1
@pytest.mark.parametrize("name", _fixtures())
def test_every_fixture_imports_and_comes_back_whole_or_is_refused_naming_where(
    conformance_dir: Path,
    tmp_path: Path,
    name: str,
    xsd_2: etree.XMLSchema,
    gs1_validator: Any,
) -> None:
    path = conformance_dir / name
    db = tmp_path / "l.db"
    try:
        doc = load_document(str(path))
        with Ledger.create(db) as ledger:
            import_documents(ledger, [(str(path), doc)])
    except LottraceError as exc:
        message = str(exc)
        assert "\n" not in message and _PLACE.search(message), message
        if db.exists():
            assert _ids(db) == []
        return
    with Ledger(db) as ledger:
        exported = export_document(ledger)
    assert gs1_validator.is_valid(exported)
    json_path = tmp_path / "out.jsonld"
    json_path.write_text(json.dumps(exported), "utf-8")
    xml_path = tmp_path / "out.xml"
    xml_path.write_bytes(document_to_xml(exported))
    _valid(xsd_2, xml_path.read_bytes())
    for form in (json_path, xml_path):
        again = tmp_path / f"again{form.suffix}.db"
        with Ledger.create(again) as ledger:
            import_documents(ledger, [(str(form), load_document(str(form)))])
            back = export_document(ledger)
        assert _event_ids(back) == _event_ids(exported)  # every eventID, partners' too
        assert _header(back) == _header(exported)  # master data, sender, receiver ...
        assert _ids(again) == _ids(db)  # every event, every field: the same records
        with Ledger(db) as ledger:  # and into the same ledger: nothing new
            report = import_documents(ledger, [(str(form), load_document(str(form)))])
        assert report.added == 0


def test_the_fixtures_hold_master_data_and_headers(conformance_dir: Path) -> None:
    """The sweep above can fail on master data: some fixtures have it."""
    with_master = [
        n
        for n in _fixtures()
        if n.endswith((".json", ".jsonld", ".xml"))
        and b"asterData" in (conformance_dir / n).read_bytes()
    ]
    assert len(with_master) >= 4, with_master


# --------------------------------------------------------------------------- use


@pytest.fixture
def named_ledger(tmp_path: Path) -> Path:
    """The chain lineage (export of M1 to a buyer named by its PGLN) and master data for
    its farm, its port and the buyer."""
    db = tmp_path / "l.db"
    events = chain()
    events[-1] = {**events[-1], "buyer": BUYER}
    with Ledger.create(db) as ledger:
        ledger.append(batch(*events))
    vocab = {
        LOCATION: [
            _element(FARM, name="Finca Uno", latitude="-5.1234", longitude=-79.4321),
            _element(FARM2, name="Finca Dos", latitude=-5.2, longitude=-79.5),
            _element("https://lottrace.org/site/port:PAITA", name="Puerto de Paita"),
        ],
        PARTY: [_element(BUYER, name="Elbkaffee GmbH")],
    }
    _import(db, _write(tmp_path, "md.json", _doc("2025-04-01T00:00:00Z", vocab)))
    return db


def test_the_passport_names_sites_with_their_coordinates(named_ledger: Path) -> None:
    with Ledger(named_ledger) as ledger:
        data = passport_data(ledger, "M1")
        page = passport(ledger, "M1")
    farm = data["steps"][0]["site"]  # the critical path starts at one of the two farms
    assert data["sites"][farm] == (
        {"name": "Finca Uno", "latitude": -5.1234, "longitude": -79.4321}
        if farm == "farm:H1"
        else {"name": "Finca Dos", "latitude": -5.2, "longitude": -79.5}
    )
    assert data["sites"]["port:PAITA"]["name"] == "Puerto de Paita"
    shown = data["sites"][farm]
    assert shown["name"] in page and str(shown["latitude"]) in page and "Puerto de Paita" in page


def test_delays_by_site_names_sites_and_keeps_its_keys(named_ledger: Path) -> None:
    with Ledger(named_ledger) as ledger:
        rows = delays(ledger, by="site")
    first = next(r for r in rows if r["from_site"] == "farm:H1")
    assert first["from_site_name"] == "Finca Uno"
    assert {"from", "to", "from_site", "to_site", "count", "p50_hours"} <= set(first)
    unnamed = next(r for r in rows if r["from_site"] == "farm:X")
    assert unnamed["from_site_name"] is None
    r = _cli(named_ledger, "delays", "--by", "site")
    assert r.exit_code == 0 and "Finca Uno" in r.output


def test_downstream_names_the_buyer(named_ledger: Path) -> None:
    with Ledger(named_ledger) as ledger:
        down = downstream(ledger, "H1")
        assert parties(ledger) == {BUYER: "Elbkaffee GmbH"}
        assert sites(ledger)[FARM].latitude == -5.1234
    (export,) = down["exports"]
    assert (export["buyer"], export["buyer_name"]) == (BUYER, "Elbkaffee GmbH")
    r = _cli(named_ledger, "downstream", "H1")
    assert r.exit_code == 0 and "Elbkaffee GmbH" in r.output


def test_master_data_is_no_checkpoint_and_the_ledger_verifies_and_rebuilds(
    named_ledger: Path,
) -> None:
    with Ledger(named_ledger) as ledger:
        lots = ledger.stats()["lots"]
    assert lots == 5  # H1 H2 G1 M1 M2, and nothing from master data
    assert _cli(named_ledger, "verify").exit_code == 0
    r = _cli(named_ledger, "rebuild")
    assert r.exit_code == 0, r.output
    assert _cli(named_ledger, "verify").exit_code == 0
    r = _cli(named_ledger, "stuck", "--as-of", "2025-12-01", "--json")
    assert r.exit_code == 0 and "epcis:unknown" not in r.output


@pytest.mark.parametrize("kind", ["master_data", "epcis_header"])
def test_master_data_is_not_logged_from_the_field(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "l.db"
    _cli(db, "init")
    r = _cli(db, "log", kind, "--site", "farm:X")
    assert r.exit_code == 2 and "lottrace epcis import" in r.output
    assert _ids(db) == []
