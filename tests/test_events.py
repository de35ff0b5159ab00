"""The event contract: what parses, what is refused and how, and the canonical form."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lottrace.errors import InvalidEvent
from lottrace.events import EVENT_MODELS, canonical_json, event_id, parse_event
from records import record_samples

from factories import drying, export, harvest, mill, qc


def test_every_type_parses() -> None:
    samples = [
        harvest(),
        drying(),
        qc("G1", 15, inputs=[("H1", 10)]),
        qc("B1", 20, stage="hq_qc"),
        mill(30, [("G1", 10)], [("M1", 8, "Grade 1")]),
        export("M1", 40, 8),
        {
            "type": "dispatch",
            "time": "2025-06-01T06:00:00-05:00",
            "site": "gatherer:G",
            "lot": "G1",
            "to_site": "hq:H",
        },
        {
            "type": "arrival",
            "time": "2025-06-02T06:00:00-05:00",
            "site": "hq:H",
            "lot": "G1",
            "from_site": "gatherer:G",
        },
        {
            "type": "correction",
            "time": "2025-06-02T06:00:00-05:00",
            "site": "hq:H",
            "corrects": "a" * 64,
            "reason": "did_not_occur",
        },
        {
            "type": "epcis",
            "time": "2025-06-02T06:00:00-05:00",
            "site": "urn:epc:id:sgln:0614141.07346.0",
            "hash_id": f"ni:///sha-256;{'b' * 64}?ver=CBV2.0",
            "event": {"type": "ObjectEvent"},
        },
        {
            "type": "master_data",
            "time": "2025-06-02T06:00:00-05:00",
            "vocabulary": "urn:epcglobal:epcis:vtype:BusinessLocation",
            "element": {"id": "urn:epc:id:sgln:0614141.07346.0"},
        },
        {
            "type": "epcis_header",
            "time": "2025-06-02T06:00:00-05:00",
            "header": {"sender": "urn:epc:id:sgln:0614141.07346.0"},
        },
        *record_samples(),
        *EUDR_SAMPLES,
    ]
    assert {parse_event(s).type for s in samples} == set(EVENT_MODELS)


_T = "2026-11-02T09:00:00-05:00"
EUDR_SAMPLES: list[dict[str, Any]] = [
    {"type": "plot", "time": _T, "site": "hq:H", "plot_id": "P1", "producer": "A",
     "geometry": {"type": "MultiPolygon", "coordinates": [[[[-78.1, -5.1], [-78.2, -5.1], [-78.2, -5.2]]]]}},
    {"type": "eudr_finding", "time": _T, "site": "hq:H", "plot_id": "P1", "risk": "high",
     "dataset": "whisp", "dataset_version": "2.3.1"},
    {"type": "eudr_resolution", "time": _T, "site": "hq:H", "finding": "c" * 64,
     "evidence": "agroforestry"},
    {"type": "dds", "time": _T, "site": "hq:H", "status": "submitted", "statement_lots": ["E1"],
     "reference": "R1", "verification": "V1"},
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"geometry": {"type": "Point", "coordinates": [-78.1]}}, "a position is [lon, lat]"),
        ({"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}, "at least three"),
        ({"geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "geometry.type"),
        ({"country": "Peru"}, "country"),
    ],
)
def test_plot_records_are_checked(change: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(words)):
        parse_event({**EUDR_SAMPLES[0], **change})


def test_statement_numbers_are_required_where_the_system_gives_them() -> None:
    with pytest.raises(InvalidEvent, match="reference and verification"):
        parse_event({**EUDR_SAMPLES[3], "verification": None})
    with pytest.raises(InvalidEvent, match="authority's message"):
        parse_event({**EUDR_SAMPLES[3], "status": "rejected"})
    assert parse_event({**EUDR_SAMPLES[3], "status": "withdrawn", "verification": None})


def test_models_are_frozen() -> None:
    e = parse_event(harvest())
    with pytest.raises(Exception, match="frozen"):
        e.kg = 5  # type: ignore[attr-defined,misc]


BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "no offset",
        {**drying(), "time": "2025-06-02T09:30:00"},
        "field 'time': time '2025-06-02T09:30:00' has no UTC offset",
    ),
    (
        "unix time",
        {**drying(), "time": 1748000000},
        "field 'time': time must be an ISO-8601 string",
    ),
    ("year 9999", {**drying(), "time": "9999-12-31T23:59:59-05:00"}, "field 'time': year 9999"),
    ("negative kg", {**drying(), "kg": -1}, "field 'kg': -1 is too small: it must be more than 0"),
    ("zero kg", {**drying(), "kg": 0}, "field 'kg'"),
    ("bool kg", {**drying(), "kg": True}, "field 'kg': must be a number"),
    ("huge kg", {**drying(), "kg": 1e12}, "field 'kg': 1e+12 is too large: it must be at most"),
    ("nan kg", {**drying(), "kg": float("nan")}, "field 'kg': is not a finite number"),
    ("moisture 101", {**drying(), "moisture_pct": 101}, "field 'moisture_pct'"),
    ("water activity 1.5", {**qc("G", 1), "water_activity": 1.5}, "field 'water_activity'"),
    ("cup score 101", {**qc("G", 1), "cup_score": 101}, "field 'cup_score'"),
    (
        "negative defects",
        {**qc("G", 1), "defects": {"cat1": -1, "cat2": 0}},
        "field 'defects.cat1'",
    ),
    (
        "bad result",
        qc("G", 1, result="ok"),
        "field 'result': \"ok\" is not one of: accepted, rejected, hold",
    ),
    (
        "lon out of range",
        harvest(plot={"id": "p", "geometry": {"type": "Point", "coordinates": [200, 1]}}),
        "longitude 200.0 is outside",
    ),
    (
        "lat out of range",
        harvest(plot={"id": "p", "geometry": {"type": "Point", "coordinates": [-79, -95]}}),
        "latitude -95.0 is outside",
    ),
    (
        "open ring",
        harvest(
            plot={
                "id": "p",
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0, 1], [1, 1], [1, 0]]]},
            }
        ),
        "closed ring",
    ),
    (
        "line string",
        harvest(
            plot={"id": "p", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}
        ),
        "field 'plot.geometry'",
    ),
    ("missing plot id", harvest(plot={}), "field 'plot.id': is required"),
    (
        "unknown field",
        {**drying(), "colour": "green"},
        "field 'colour': is not a field of a drying event",
    ),
    ("unknown type", {**drying(), "type": "roast"}, "field 'type': 'roast'; expected one of"),
    ("type is a list", {**drying(), "type": ["drying"]}, "field 'type': ['drying']"),
    (
        "unicode lot",
        {**drying(), "lot": "LOTE-ñ"},
        "field 'lot': 'LOTE-ñ' is not valid: a lot code uses ASCII",
    ),
    ("sql in lot", {**drying(), "lot": "x'; DROP TABLE events;--"}, "field 'lot'"),
    (
        "bad site",
        {**drying(), "site": "Finca Pérez"},
        "field 'site': 'Finca Pérez' is not valid: a site is kind:ID",
    ),
    (
        "control char",
        {**drying(), "note": "bad\x07bell"},
        "field 'note': contains a control character",
    ),
    (
        "1 MB note",
        {**drying(), "note": "x" * 1_000_000},
        "field 'note': is too long (at most 2000 characters)",
    ),
    ("empty inputs", {**qc("G", 1), "inputs": []}, "field 'inputs'"),
    (
        "mill without outputs",
        {**mill(1, [("A", 1)], [("B", 1, "g")]), "outputs": []},
        "field 'outputs'",
    ),
    (
        "mill duplicate outputs",
        mill(1, [("A", 9)], [("B", 1, "g"), ("B", 2, "h")]),
        "output lot codes must be distinct",
    ),
    (
        "drying started after end",
        {**drying(), "started": "2030-01-01T00:00:00-05:00"},
        "'started' is after 'time'",
    ),
    (
        "bad correction id",
        {
            "type": "correction",
            "time": "2025-06-02T06:00:00-05:00",
            "site": "hq:H",
            "corrects": "xyz",
            "reason": "did_not_occur",
        },
        "field 'corrects': 'xyz' is not valid: an event id",
    ),
    ("not an object", ["drying"], "an event must be a JSON object"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("case", "data", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_events_are_one_line_errors(case: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(data, where="f.jsonl:7")
    text = str(info.value)
    assert text.startswith("f.jsonl:7: ")
    assert message in text
    assert "\n" not in text and len(text) < 400


def test_equivalent_input_has_one_id() -> None:
    a = parse_event(harvest(kg=100, certifications=["organic", "fairtrade"]))
    b = parse_event(harvest(kg=100.0, certifications=["fairtrade", "organic", "organic"]))
    c = parse_event(harvest(kg="100", certifications=["fairtrade", "organic"]))  # a CSV cell
    assert canonical_json(a) == canonical_json(b) == canonical_json(c)
    assert event_id(a) == event_id(b)
    assert event_id(a) != event_id(parse_event(harvest(kg=100.5)))


def test_canonical_json_is_sorted_and_compact() -> None:
    body = canonical_json(parse_event(drying(note="ñandú")))
    assert body.startswith(b'{"kg":200.0,"lot":"H1","note":"\xc3\xb1and\xc3\xba",')
    assert b" " not in body.replace(b"\xc3\xb1and\xc3\xba", b"")


def test_all_missing_fields_are_named_at_once() -> None:
    with pytest.raises(InvalidEvent, match=r"lot H1: fields 'producer', 'plot', 'kg' are required"):
        parse_event(
            {"type": "harvest", "time": "2025-05-01T07:00:00-05:00", "site": "farm:X", "lot": "H1"}
        )


def test_comma_decimals_get_a_hint() -> None:
    with pytest.raises(
        InvalidEvent, match=r'field .kg.: "12,5" is not a number; write decimals with a dot'
    ):
        parse_event({**drying(), "kg": "12,5"})


def test_yes_no_words_are_not_booleans() -> None:
    with pytest.raises(InvalidEvent, match=r"field 'women_producer': 'si' is not true or false"):
        parse_event(harvest(women_producer="si"))
