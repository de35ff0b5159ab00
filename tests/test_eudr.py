"""EUDR due diligence: the plot registry, geometry checks, TRACES GeoJSON, findings, statements."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.demo import build_demo
from lottrace.ledger import Ledger
from lottrace.plot_registry import as_of_key, registry

JSONDict = dict[str, Any]
DATA = Path(__file__).parent / "data" / "eudr"
T1 = "2026-11-01T00:00:00Z"
T2 = "2026-11-20T00:00:00Z"


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    db = tmp_path / "e.db"
    assert run(db, "init").exit_code == 0
    return db


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s") / "demo.db"
    build_demo(path)
    return path


@pytest.fixture
def sample(sample_db: Path, tmp_path: Path) -> Path:
    db = tmp_path / "demo.db"
    db.write_bytes(sample_db.read_bytes())
    return db


def events_count(db: Path) -> int:
    with Ledger.reader(db) as ledger:
        return sum(1 for _ in ledger.iter_events())


# --------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", ["ok.geojson", "plots.csv", "plots.kml"])
def test_clean_files_import_and_check_clean(empty: Path, name: str) -> None:
    r = run(empty, "plots", "import", str(DATA / name), "--time", T1)
    assert r.exit_code == 0, r.output
    r = run(empty, "plots", "check", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == []


def test_csv_and_kml_read_every_field(empty: Path) -> None:
    run(empty, "plots", "import", str(DATA / "plots.csv"), str(DATA / "plots.kml"), "--time", T1)
    with Ledger.reader(empty) as ledger:
        plots = registry(ledger)
    assert plots["CSV-P1"].geometry == {"type": "Point", "coordinates": [-78.196382, -5.903417]}
    assert plots["CSV-P1"].registered_name == "Rosa Huamán Quispe"
    assert plots["CSV-P2"].geometry is not None
    assert plots["CSV-P2"].geometry["type"] == "Polygon"
    assert plots["CSV-P2"].decimals == 6
    assert plots["KML-P1"].geometry == {"type": "Point", "coordinates": [-78.196382, -5.903417]}
    assert (plots["KML-P2"].producer, plots["KML-P2"].area_ha) == ("KML-02", 5.0)
    assert plots["KML-P2"].source == "plots.kml:12"


def test_registry_is_versioned_never_overwritten(empty: Path, tmp_path: Path) -> None:
    run(empty, "plots", "import", str(DATA / "ok.geojson"), "--time", T1)
    doc = json.loads((DATA / "ok.geojson").read_text())
    doc["features"][1]["properties"]["Area"] = 2.5
    changed = tmp_path / "changed.geojson"
    changed.write_text(json.dumps(doc))
    r = run(empty, "plots", "import", str(changed), "--time", T2, "--json")
    assert json.loads(r.output)["added"] == 1  # only the plot that changed
    assert json.loads(r.output)["unchanged"] == 2
    with Ledger.reader(empty) as ledger:
        before = registry(ledger, as_of_key("2026-11-10"))
        now = registry(ledger)
        none = registry(ledger, as_of_key("2026-10-01"))
    assert before["OK-P2"].area_ha == 2.0
    assert (now["OK-P2"].area_ha, now["OK-P2"].versions) == (2.5, 2)
    assert none == {}


def test_bad_feature_is_one_line_and_nothing_is_written(empty: Path) -> None:
    r = run(empty, "plots", "import", str(DATA / "ok.geojson"), str(DATA / "bad_area.geojson"))
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "Error: bad_area.geojson:features[1]: field 'area_ha': -2 is too small: "
        "it must be more than 0"
    ]
    assert events_count(empty) == 0


def test_bad_csv_row_names_line_and_field(empty: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("plot_id,producer,lat,lon\nA,X,-5.903417,-78.196382\nB,Y,-5.9o3,-78.196382\n")
    r = run(empty, "plots", "import", str(f))
    assert r.exit_code == 1
    assert r.output.strip() == "Error: p.csv:3: lat: '-5.9o3' is not a number"
    assert events_count(empty) == 0


def test_bad_kml_names_line(empty: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.kml"
    f.write_text(
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Document>\n<Placemark>\n'
        "<name>A</name>\n<Point><coordinates>-78.1,x</coordinates></Point>\n"
        "</Placemark></Document></kml>"
    )
    r = run(empty, "plots", "import", str(f))
    assert r.exit_code == 1
    assert r.output.strip() == "Error: p.kml:4: coordinates: '-78.1,x' is not lon,lat[,alt]"


def test_harvests_register_their_plots_and_sample_is_clean(sample: Path) -> None:
    with Ledger.reader(sample) as ledger:
        plots = registry(ledger)
    assert len(plots) == 21
    assert all(p.event_id is None and p.source.startswith("harvest ") for p in plots.values())
    assert plots["APR-P0231"].lots == ["APR-25-H0231-1", "APR-25-H0231-2"]
    r = run(sample, "plots", "check")
    assert (r.exit_code, r.output) == (0, "no problems\n")


def test_harvest_disagreeing_with_registry_is_a_mismatch(sample: Path, tmp_path: Path) -> None:
    f = tmp_path / "p.geojson"
    f.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"plot_id": "JUM-P0041", "producer": "JUM-0041"},
                        "geometry": {"type": "Point", "coordinates": [-78.196382, -5.903417]},
                    }
                ],
            }
        )
    )
    run(sample, "plots", "import", str(f), "--time", "2025-01-01T00:00:00Z")
    with Ledger.reader(sample) as ledger:
        p = registry(ledger)["JUM-P0041"]
    assert p.event_id is not None and p.lots == ["JUM-25-H0041-1"]
    assert p.mismatches == ["harvest JUM-25-H0041-1 gives area 1.2 ha (registered: None)"]


# --------------------------------------------------------------------------- geometry checks

EXPECTED = {
    "precision.geojson": {("PRE-P1", "precision")},
    "swapped.geojson": {("SWP-P1", "lon-lat-swapped")},
    "not_closed.geojson": {("OPEN-P1", "ring-not-closed")},
    "self_intersection.geojson": {("BOW-P1", "self-intersection")},
    "holes.geojson": {("HOLE-P1", "holes")},
    "spike.geojson": {("SPK-P1", "spike")},
    "point_over_4ha.geojson": {("BIG-P1", "polygon-missing")},
    "area_mismatch.geojson": {("AREA-P1", "area-mismatch")},
    "overlap.geojson": {("OVL-P1", "overlap"), ("OVL-P2", "overlap")},
    "duplicate.geojson": {("DUP-P1", "duplicate-geometry"), ("DUP-P2", "duplicate-geometry")},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_geometry_problem_is_found(empty: Path, name: str) -> None:
    assert run(empty, "plots", "import", str(DATA / name), "--time", T1).exit_code == 0
    r = run(empty, "plots", "check", "--json")
    assert r.exit_code == 1
    problems = json.loads(r.output.split("Error:")[0])
    assert {(p["plot_id"], p["code"]) for p in problems} == EXPECTED[name]
    for p in problems:
        assert set(p) == {"plot_id", "producer", "code", "message", "lots"}
        assert p["producer"] in p["message"] and p["plot_id"] in p["message"]


def test_problem_names_every_lot_it_blocks(sample: Path) -> None:
    # the sample plot JUM-P0041 re-registered with four-decimal coordinates
    f = DATA.parent / "eudr" / "precision.geojson"
    doc = json.loads(f.read_text())
    doc["features"][0]["properties"].update(ProductionPlace="JUM-P0041", ProducerName="JUM-0041")
    g = sample.parent / "jum.geojson"
    g.write_text(json.dumps(doc))
    run(sample, "plots", "import", str(g), "--time", T1)
    problems = json.loads(run(sample, "plots", "check", "--json").output.split("Error:")[0])
    jum = [p for p in problems if p["plot_id"] == "JUM-P0041"]
    assert [p["code"] for p in jum] == ["precision"]
    assert jum[0]["lots"] == [
        "EXP-25-JUM-01",
        "JUM-25-G-PAL01-03",
        "JUM-25-H0041-1",
        "JUM-25-HQ-006",
        "MILL-25-0471-G1",
        "MILL-25-0471-G2",
        "MILL-25-0471-MCM",
    ]
    # as of before the update the registry (and the check) is the harvest's plot
    r = run(sample, "plots", "check", "--as-of", "2026-10-01")
    assert r.exit_code == 0


# --------------------------------------------------------------------------- findings

WHISP = DATA / "whisp_results.csv"
WHISP_ARGS = ("--dataset", "whisp", "--dataset-version", "2.0.0", "--date", "2026-11-15")


def test_lot_carries_worst_open_finding_and_eudr_refuses_it(sample: Path) -> None:
    r = run(sample, "findings", "import", str(WHISP), *WHISP_ARGS)
    assert (r.exit_code, r.output) == (0, "findings added 3, duplicates skipped 0\n")
    data = json.loads(run(sample, "findings", "list", "EXP-25-JUM-01", "--json").output)
    assert data["risk"] == "high"
    assert [(f["plot_id"], f["producer"], f["risk"]) for f in data["findings"]] == [
        ("JUM-P0041", "JUM-0041", "high"),
        ("JUM-P0063", "JUM-0063", "medium"),
    ]
    high = data["findings"][0]
    assert high["indicators"] == ["Ind_01_treecover", "Ind_04_disturbance_after_2020"]
    assert (high["dataset"], high["dataset_version"], high["date"]) == (
        "whisp",
        "2.0.0",
        "2026-11-15",
    )
    r = run(sample, "eudr", "EXP-25-JUM-01", "--check")
    assert r.exit_code == 1
    assert "plot JUM-P0041 has an open high-risk finding (whisp 2.0.0, 2026-11-15" in r.output
    assert "JUM-P0063" not in r.output  # medium risk is carried, not refused
    # another lot without those plots is not touched
    assert run(sample, "eudr", "EXP-25-APR-02", "--check").exit_code == 0
    # resolved with evidence: shade-grown agroforestry is not forest
    r = run(sample, "findings", "resolve", high["event_id"][:12], "--evidence", "agroforestry",
            "--document", "visita-2026-11-20.pdf", "--time", "2026-11-20T10:00:00-05:00")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert run(sample, "eudr", "EXP-25-JUM-01", "--check").exit_code == 0
    assert (
        json.loads(run(sample, "findings", "list", "EXP-25-JUM-01", "--json").output)["risk"]
        == "medium"
    )
    # as of before the resolution, the lot is refused again: nothing was overwritten
    assert run(sample, "eudr", "EXP-25-JUM-01", "--check", "--as-of", "2026-11-16").exit_code == 1


def test_a_later_result_of_the_same_dataset_supersedes(sample: Path) -> None:
    run(sample, "findings", "import", str(WHISP), *WHISP_ARGS)
    later = sample.parent / "later.csv"
    later.write_text("plotId,risk_pcrop\nJUM-P0041,low\n")
    run(sample, "findings", "import", str(later), "--dataset", "whisp",
        "--dataset-version", "2.1.0", "--date", "2026-11-28")  # fmt: skip
    assert run(sample, "eudr", "EXP-25-JUM-01", "--check").exit_code == 0
    # a result of another dataset does not
    run(sample, "findings", "import", str(DATA / "whisp_results.geojson"))
    data = json.loads(run(sample, "findings", "list", "--json").output)
    assert sorted((f["plot_id"], f["dataset"], f["risk"]) for f in data["findings"]) == [
        ("APR-P0231", "whisp", "low"),
        ("JUM-P0041", "gfw", "low"),
        ("JUM-P0041", "whisp", "low"),
        ("JUM-P0063", "whisp", "medium"),
    ]


def test_bad_finding_row_is_one_line_and_nothing_written(sample: Path, tmp_path: Path) -> None:
    n = events_count(sample)
    f = tmp_path / "bad.csv"
    f.write_text("plotId,risk_pcrop\nJUM-P0041,high\nJUM-P0063,maybe\n")
    r = run(sample, "findings", "import", str(f), *WHISP_ARGS)
    assert r.exit_code == 1
    assert r.output.strip().startswith("Error: bad.csv:3: risk: 'maybe' is not one of")
    r = run(sample, "findings", "import", str(WHISP))
    assert r.output.strip() == (
        "Error: whisp_results.csv:2: time: missing (a column analysis_date, date, or --date)"
    )
    f.write_text("plotId,risk_pcrop\nJUM-P0041,high\nJUM-P9999,low\n")
    r = run(sample, "findings", "import", str(f), *WHISP_ARGS)
    assert r.output.strip() == (
        "Error: bad.csv:3: plot_id: JUM-P9999 is not in the plot registry (see lottrace plots list)"
    )
    assert events_count(sample) == n
    r = run(sample, "findings", "resolve", "0123456789ab", "--evidence", "agroforestry")
    assert r.exit_code != 0 and "no eudr_finding 0123456789ab" in r.output


# --------------------------------------------------------------------------- statements


def _independent_lineage(db: Path, lot: str) -> tuple[float, list[JSONDict]]:
    """The export's kg and the harvests behind it, from the raw log, without lottrace's graph."""
    formed_from: dict[str, set[str]] = {}
    harvests: dict[str, JSONDict] = {}
    kg = 0.0
    with Ledger.reader(db) as ledger:
        for s in ledger.iter_events():
            if s.void:
                continue
            body = s.event.model_dump(mode="json")
            ins = {i["lot"] for i in body.get("inputs") or []}
            outs = [o["lot"] for o in body.get("outputs") or []] or [body.get("lot")]
            for out in outs:
                if out is not None and ins:
                    formed_from.setdefault(out, set()).update(ins)
            if body["type"] == "harvest":
                harvests[body["lot"]] = body
            if body["type"] == "export" and body["lot"] == lot:
                kg = body["kg"]
    seen, todo = set(), [lot]
    while todo:
        code = todo.pop()
        if code not in seen:
            seen.add(code)
            todo.extend(formed_from.get(code, ()))
    return kg, [harvests[c] for c in sorted(seen & harvests.keys())]


def test_statement_numbers_match_the_ledger(sample: Path, tmp_path: Path) -> None:
    out, req = tmp_path / "statement.json", tmp_path / "request.json"
    r = run(sample, "dds", "EXP-25-JUM-01", "--operator", "JUMARP", "--operator-id",
            "PE20123456789", "-o", str(out), "--request", str(req))  # fmt: skip
    assert r.exit_code == 0, r.output
    stmt = json.loads(out.read_text())
    kg, harvests = _independent_lineage(sample, "EXP-25-JUM-01")
    c = stmt["commodity"]
    assert c["net_mass_kg"] == kg == 414
    days = sorted(h["time"][:10] for h in harvests)  # local dates, as the times are given
    assert c["production_period"] == {"start": days[0], "end": days[-1]}
    plots = {h["plot"]["id"]: h["plot"] for h in harvests}
    assert c["plots"] == len(plots) == 5
    assert c["area_ha"] == pytest.approx(sum(p["area_ha"] for p in plots.values()))
    assert c["hs_code"] == "090111" and c["countries_of_production"] == ["PE"]
    assert stmt["operator"] == {"name": "JUMARP", "identifier": "PE20123456789", "country": "PE"}
    assert stmt["activity"] == "export" and stmt["upstream_statements"] == []
    features = c["geolocation"]["features"]
    assert {f["properties"]["ProductionPlace"] for f in features} == set(plots)
    assert '"coordinates": [\n' in out.read_text()
    body = json.loads(req.read_text())
    assert body["dry_run"] is True and "1.4" in body["model"]
    sub = body["submitDds"]["statement"]
    assert sub["commodities"][0]["descriptors"]["goodsMeasure"]["netWeight"] == 414
    geo = json.loads(base64.b64decode(sub["commodities"][0]["producers"][0]["geometryGeojson"]))
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 5
    assert r.output.startswith(
        f"wrote {out}: lot EXP-25-JUM-01, 414 kg, 5 plots (7.8 ha), harvested "
    )


def test_statement_life_and_downstream_numbers(sample: Path, tmp_path: Path) -> None:
    # an upstream statement (the mill's grade, say by a trader) and the export's own
    r = run(sample, "statement", "record", "submitted", "MILL-25-0471-G1", "--reference",
            "26PEUP000001", "--verification", "VUP00001", "--time", "2026-11-01T09:00:00-05:00")  # fmt: skip
    assert r.exit_code == 0, r.output
    stmt = json.loads(run(sample, "dds", "EXP-25-JUM-01", "--operator", "JUMARP").output)
    assert stmt["upstream_statements"] == [
        {"reference": "26PEUP000001", "verification": "VUP00001"}
    ]
    # the operator's own statement on the lot is not an upstream one; another operator's is
    for who, ref in (("JUMARP", "26PEOWN00001"), ("Andes Trading SAC", "26PEOTH00001")):
        r = run(sample, "statement", "record", "submitted", "EXP-25-JUM-01", "--operator", who,
                "--reference", ref, "--verification", "V" + ref[-5:],
                "--time", "2026-11-01T10:00:00-05:00")  # fmt: skip
        assert r.exit_code == 0, r.output
    stmt = json.loads(run(sample, "dds", "EXP-25-JUM-01", "--operator", "JUMARP").output)
    assert [u["reference"] for u in stmt["upstream_statements"]] == [
        "26PEOTH00001",
        "26PEUP000001",
    ]
    for ref in ("26PEOWN00001", "26PEOTH00001"):
        run(sample, "statement", "record", "withdrawn", "EXP-25-JUM-01", "--reference", ref,
            "--time", "2026-11-01T11:00:00-05:00")  # fmt: skip
    run(sample, "statement", "record", "submitted", "EXP-25-JUM-01", "--reference",
        "26PEEX000002", "--verification", "VEX00002", "--time", "2026-11-02T09:00:00-05:00")  # fmt: skip
    down = json.loads(run(sample, "downstream", "JUM-25-H0041-1", "--json").output)
    assert down["exports"][0]["statements"] == ["26PEEX000002/VEX00002"]
    assert {s["reference"] for s in down["statements"]} == {"26PEUP000001", "26PEEX000002"}
    assert "26PEEX000002/VEX00002" in run(sample, "downstream", "JUM-25-H0041-1").output
    # amended: a new verification number; withdrawn: no longer carried
    run(sample, "statement", "record", "amended", "EXP-25-JUM-01", "--reference",
        "26PEEX000002", "--verification", "VEX00003", "--time", "2026-11-03T09:00:00-05:00")  # fmt: skip
    down = json.loads(run(sample, "downstream", "JUM-25-H0041-1", "--json").output)
    assert down["exports"][0]["statements"] == ["26PEEX000002/VEX00003"]
    page = tmp_path / "p.html"
    run(sample, "passport", "EXP-25-JUM-01", "-o", str(page))
    assert "26PEEX000002/VEX00003" in page.read_text()
    run(sample, "statement", "record", "withdrawn", "EXP-25-JUM-01", "--reference",
        "26PEEX000002", "--time", "2026-11-04T09:00:00-05:00")  # fmt: skip
    down = json.loads(run(sample, "downstream", "JUM-25-H0041-1", "--json").output)
    assert down["exports"][0]["statements"] == []
    rows = json.loads(run(sample, "statement", "list", "--json").output)
    ex = next(r for r in rows if r["reference"] == "26PEEX000002")
    assert [h["status"] for h in ex["history"]] == ["submitted", "amended", "withdrawn"]
    # a rejection carries the authority's message
    r = run(sample, "statement", "record", "rejected", "EXP-25-JUM-01")
    assert r.exit_code == 1 and "a rejected statement has the authority's message" in r.output
    r = run(sample, "statement", "record", "rejected", "EXP-25-JUM-01", "--message",
            "geolocation: polygon self-intersects")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = run(sample, "statement", "record", "submitted", "NO-SUCH-LOT", "--reference", "X",
            "--verification", "Y")  # fmt: skip
    assert r.exit_code != 0 and "no lot 'NO-SUCH-LOT'" in r.output


def test_statement_refused_for_an_unprovable_lot(sample: Path) -> None:
    run(sample, "findings", "import", str(WHISP), *WHISP_ARGS)
    r = run(sample, "dds", "EXP-25-JUM-01", "--operator", "JUMARP")
    assert r.exit_code == 1
    assert "lot EXP-25-JUM-01 cannot be proven EUDR-compliant" in r.output
    assert "JUM-P0041" in r.output


def test_registry_events_leave_lots_exports_verify_and_rebuild_alone(
    sample: Path, tmp_path: Path
) -> None:
    before = json.loads(run(sample, "delays", "--json").output)
    stuck = run(sample, "stuck").output
    run(sample, "plots", "import", str(DATA / "ok.geojson"), "--time", T1)
    run(sample, "findings", "import", str(WHISP), *WHISP_ARGS)
    run(sample, "statement", "record", "submitted", "EXP-25-JUM-01", "--reference", "R1",
        "--verification", "V1", "--time", T2)  # fmt: skip
    with Ledger.reader(sample) as ledger:
        plot_id = next(ledger.events_of_types(["plot"])).event_id
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"type": "correction", "time": T2, "site": "hq:registry",
                             "corrects": plot_id, "reason": "incorrect_data"}) + "\n")  # fmt: skip
    assert run(sample, "import", str(f)).exit_code == 0
    with Ledger.reader(sample) as ledger:
        assert "OK-P1" not in registry(ledger)  # the corrected record is void
    assert json.loads(run(sample, "delays", "--json").output) == before
    assert run(sample, "stuck").output == stuck
    assert run(sample, "verify").exit_code == 0
    assert run(sample, "rebuild").exit_code == 0
    assert run(sample, "verify").exit_code == 0
    out = tmp_path / "x.json"
    r = run(sample, "epcis", "export", "-o", str(out))
    assert r.exit_code == 0, r.output
    # plots and findings are not EPCIS events; the statement is (an ObjectEvent on its lots)
    assert "86 EPCIS events" in r.output
    doc = json.loads(out.read_text())
    [dds] = [e for e in doc["epcisBody"]["eventList"] if e.get("lt:type") == "dds"]
    assert (dds["lt:reference"], dds["lt:verification"]) == ("R1", "V1")
    assert dds["quantityList"] == [{"epcClass": "https://lottrace.org/lot/EXP-25-JUM-01"}]
    other = tmp_path / "other.db"
    run(other, "init")
    assert run(other, "epcis", "import", str(out)).exit_code == 0
    rows = json.loads(run(other, "statement", "list", "--json").output)
    assert [(r["reference"], r["verification"], r["status"], r["lots"]) for r in rows] == [
        ("R1", "V1", "submitted", ["EXP-25-JUM-01"])
    ]
    down = json.loads(run(other, "downstream", "JUM-25-H0041-1", "--json").output)
    assert down["exports"][0]["statements"] == ["R1/V1"]


# --------------------------------------------------------------------------- TRACES GeoJSON


def test_traces_geojson_uses_the_registry_and_six_decimals(sample: Path, tmp_path: Path) -> None:
    # JUM-P0041 re-registered as two parcels (a MultiPolygon) of 0.6 ha each
    lon, lat, dx, dy = -78.19638, -5.90341, 0.000697, 0.000697

    def square(x: float) -> list[list[float]]:
        return [[x, lat], [x + dx, lat], [x + dx, lat + dy], [x, lat + dy], [x, lat]]

    geometry = {"type": "MultiPolygon", "coordinates": [[square(lon)], [square(lon + 0.002)]]}
    f = tmp_path / "p.geojson"
    f.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"ProductionPlace": "JUM-P0041", "ProducerName": "JUM-0041",
                                       "Area": 1.2, "ProducerCountry": "PE"},
                        "geometry": geometry,
                    }
                ],
            }
        )
    )  # fmt: skip
    assert run(sample, "plots", "import", str(f), "--time", T1).exit_code == 0
    r = run(sample, "eudr", "EXP-25-JUM-01")
    assert r.exit_code == 0, r.output
    fc = json.loads(r.output)
    first = fc["features"][0]
    assert first["properties"] == {
        "ProducerName": "JUM-0041",
        "ProducerCountry": "PE",
        "ProductionPlace": "JUM-P0041",
        "Area": 1.2,
    }
    assert first["geometry"]["type"] == "MultiPolygon"
    assert first["geometry"]["coordinates"][1][0][0] == [-78.19438, -5.90341]
    numbers = re.findall(r"^\s+(-?\d+\.\d+),?$", r.output, re.M)
    assert numbers and all(len(n.split(".")[1]) == 6 for n in numbers)
    assert "-78.194380," in r.output  # written with six decimals, trailing zero kept
    # every other plot is a Point with its Area (all are up to 4 ha)
    assert all(
        f["geometry"]["type"] == "Point" and f["properties"]["Area"] <= 4
        for f in fc["features"][1:]
    )
    # as of before the record, the harvest's own point
    old = json.loads(run(sample, "eudr", "EXP-25-JUM-01", "--as-of", "2026-10-01").output)
    assert old["features"][0]["geometry"] == {
        "type": "Point",
        "coordinates": [-78.196382, -5.903417],
    }
