"""Reading JSON Lines, JSON arrays and spreadsheet CSV into events, with file:line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lottrace.errors import InvalidEvent, InvalidInput
from lottrace.readers import iter_events, iter_records

from factories import drying, harvest


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_json_lines_skip_blank_lines_and_keep_line_numbers(tmp_path: Path) -> None:
    p = write(tmp_path, "e.jsonl", json.dumps(harvest()) + "\n\n" + json.dumps(drying()) + "\n")
    assert [w for w, _ in iter_events(p)] == [f"{p}:1", f"{p}:3"]


def test_json_array_elements_report_their_line(tmp_path: Path) -> None:
    text = (
        "[\n" + json.dumps(harvest(), indent=1) + ",\n" + json.dumps({**drying(), "kg": 0}) + "\n]"
    )
    p = write(tmp_path, "e.json", text)
    first_len = json.dumps(harvest(), indent=1).count("\n") + 1
    with pytest.raises(InvalidEvent, match=rf"^{p}:{2 + first_len}: lot H1: field 'kg'"):
        list(iter_events(p))


def test_single_json_object_file(tmp_path: Path) -> None:
    p = write(tmp_path, "one.json", json.dumps(harvest(), indent=2))
    assert len(list(iter_events(p))) == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("e.jsonl", '{"type": "harvest", "kg": 1\n', r"e.jsonl:1: not valid JSON"),
        ("e.json", '[{"type": "harvest"}, ', r"e.json:1: not valid JSON"),
        ("e.json", '[{"kg": NaN}]', r"e.json:1: not valid JSON: NaN is not a number"),
        ("e.jsonl", '{"kg": NaN}\n', r"e.jsonl:1: not valid JSON"),
        ("e.jsonl", '["not", "an", "object"]\n', r"e.jsonl:1: an event must be a JSON object"),
    ],
)
def test_broken_json_names_file_and_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    p = write(tmp_path, name, text)
    with pytest.raises(InvalidEvent, match=message):
        list(iter_events(p))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"  \n\n", "the file is empty"),
        (b"\xef\xbb\xbf", "the file is empty"),  # a BOM alone, as some editors save
        (b"\xef\xbb\xbf\r\n", "the file is empty"),
        (b"\xff\xfe", "the file is empty"),
        (b"\x00\x01\x02PK", "binary"),
    ],
)
@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json"])
def test_unreadable_files(tmp_path: Path, content: bytes, message: str, suffix: str) -> None:
    p = write(tmp_path, f"x.{suffix}", content)
    with pytest.raises(InvalidInput, match=message):
        list(iter_records(p))


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        list(iter_records(tmp_path / "nope.csv"))
    with pytest.raises(InvalidInput, match="is a folder"):
        list(iter_records(tmp_path))


CSV = """type,time,site,lot,producer,plot.id,plot.lon,plot.lat,plot.area_ha,kg,certifications
harvest,2025-05-10T08:00:00-05:00,farm:P1,L1,PRD-1,P1,-79.01,-5.12,2.5,1200,organic|fairtrade
harvest,2025-05-11T08:00:00-05:00,farm:P2,L2,PRD-2,P2,,,,800,
"""


def test_csv_dotted_headers_nest_and_empty_cells_are_absent(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", CSV)
    (w1, e1), (w2, e2) = list(iter_events(p))
    assert (w1, w2) == (f"{p}:2", f"{p}:3")
    assert e1.plot.geometry.coordinates == [-79.01, -5.12]  # type: ignore[attr-defined]
    assert e1.plot.area_ha == 2.5  # type: ignore[attr-defined]
    assert e1.certifications == ["fairtrade", "organic"]  # type: ignore[attr-defined]
    assert e2.plot.geometry is None and e2.certifications is None  # type: ignore[attr-defined]


def test_csv_semicolon_delimiter_is_detected(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", CSV.replace(",", ";"))
    assert len(list(iter_events(p))) == 2


def test_csv_type_for_whole_file_and_inputs_syntax(tmp_path: Path) -> None:
    text = "time,site,lot,result,inputs,defects.cat1,defects.cat2\n2025-05-20T10:00:00-05:00,gatherer:G,G1,accepted,L1=120.5|L2=80,0,4\n"
    p = write(tmp_path, "qc.csv", text)
    [(_, e)] = list(iter_events(p, default_type="gatherer_qc"))
    assert e.type == "gatherer_qc"
    assert [(i.lot, i.kg) for i in e.drawn] == [("L1", 120.5), ("L2", 80.0)]
    assert e.defects.cat2 == 4  # type: ignore[attr-defined]


def test_csv_without_type_names_the_row(tmp_path: Path) -> None:
    p = write(tmp_path, "qc.csv", "time,site,lot\n2025-05-20T10:00:00-05:00,gatherer:G,G1\n")
    with pytest.raises(InvalidEvent, match=rf"{p}:2: field 'type': missing"):
        list(iter_events(p))


def test_csv_bad_inputs_cell(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "qc.csv",
        "type,time,site,lot,result,inputs\ngatherer_qc,2025-05-20T10:00:00-05:00,gatherer:G,G1,accepted,L1:120\n",
    )
    with pytest.raises(
        InvalidEvent, match=r"qc.csv:2: field 'inputs': 'L1:120' is not of the form LOT=KG"
    ):
        list(iter_events(p))


def test_csv_row_with_too_many_cells(tmp_path: Path) -> None:
    p = write(tmp_path, "x.csv", "type,time\nharvest,2025,extra\n")
    with pytest.raises(InvalidEvent, match=r"x.csv:2: row has 3 cells"):
        list(iter_events(p))


def test_csv_multiline_cell_keeps_line_numbers(tmp_path: Path) -> None:
    text = 'type,time,site,lot,kg,note\ndrying,2025-05-20T10:00:00-05:00,farm:X,L1,200,"two\nlines"\ndrying,2025-05-21T10:00:00-05:00,farm:X,L1,-1,\n'
    p = write(tmp_path, "d.csv", text)
    with pytest.raises(InvalidEvent, match=rf"{p}:4: lot L1: field 'kg'"):
        list(iter_events(p))


def test_latin1_csv_fails_as_utf8_and_reads_as_latin1(tmp_path: Path) -> None:
    text = "type,time,site,lot,producer,plot.id,kg\nharvest,2025-05-10T08:00:00-05:00,farm:P1,L1,Peña Núñez,P1,900\n"
    p = write(tmp_path, "l.csv", text.encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"l.csv:2: not utf-8 text \(try --encoding cp1252\)"):
        list(iter_events(p, encoding="utf-8"))  # chosen, so no fallback
    [(_, e)] = list(iter_events(p, encoding="latin-1"))
    assert e.producer == "Peña Núñez"  # type: ignore[attr-defined]


def test_utf8_bom_is_ignored(tmp_path: Path) -> None:
    p = write(tmp_path, "b.csv", "\ufeff" + CSV)
    assert len(list(iter_events(p))) == 2


def test_epcis_document_is_pointed_to_epcis_import(tmp_path: Path) -> None:
    p = write(tmp_path, "doc.json", json.dumps({"type": "EPCISDocument", "epcisBody": {}}))
    with pytest.raises(InvalidInput, match="this is an EPCIS document, not lottrace events"):
        list(iter_events(p))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1} {"b": 2}]', r"x.json:1: not valid JSON: expected ',' or '\]' but found '\{'"),
        ('[,{"a": 1}]', r"x.json:1: not valid JSON: Expecting value"),
        ('[{"a": 1},]', r"x.json:1: not valid JSON: Expecting value"),
        ('[{"a": 1}]\n[{"b": 2}]', r"x.json:2: not valid JSON: more data after the end"),
        ('{\n "a": 1\n}\n{"b": 2}', r"x.json:4: not valid JSON: more data after the end"),
        ('[{"a": 1}', r"x.json:1: not valid JSON: the array is not closed"),
    ],
)
def test_json_documents_are_parsed_strictly(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, "x.json", text)
    with pytest.raises(InvalidEvent, match=message):
        list(iter_records(p))


def test_json_lines_in_a_dot_json_file_are_all_read(tmp_path: Path) -> None:
    p = write(tmp_path, "new.json", "".join(json.dumps(harvest(f"H{i}")) + "\n" for i in range(3)))
    assert len(list(iter_events(p))) == 3


def test_json_lines_with_bom(tmp_path: Path) -> None:
    p = write(tmp_path, "b.jsonl", "\ufeff" + json.dumps(harvest()) + "\n")
    assert len(list(iter_events(p))) == 1


def test_utf16_spreadsheet_export_is_read(tmp_path: Path) -> None:
    p = write(tmp_path, "u.csv", ("\ufeff" + CSV.replace(",", "\t")).encode("utf-16-le"))
    assert len(list(iter_events(p))) == 2


def test_unknown_encoding_is_a_clear_error(tmp_path: Path) -> None:
    p = write(tmp_path, "h.csv", CSV)
    with pytest.raises(InvalidInput, match="unknown encoding 'klingon'"):
        list(iter_events(p, encoding="klingon"))


def test_csv_headers_are_case_insensitive_and_trailing_empty_cells_ignored(tmp_path: Path) -> None:
    text = CSV.replace("type,time,site", "Type,Time,Site").replace(
        "organic|fairtrade", "organic|fairtrade,,"
    )
    p = write(tmp_path, "h.csv", text)
    assert len(list(iter_events(p))) == 2


def test_free_text_starting_with_a_bracket_is_text(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "h.csv",
        CSV.replace("1200,organic", "1200,organic").replace("PRD-1", "[PRD-1] mix"),
    )
    (_, e1), _ = list(iter_events(p))
    assert e1.producer == "[PRD-1] mix"  # type: ignore[attr-defined]
