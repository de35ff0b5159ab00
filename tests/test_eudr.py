"""EUDR due diligence: the plot registry, geometry checks, TRACES GeoJSON, findings, statements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.demo import build_demo
from lottrace.ledger import Ledger
from lottrace.plot_registry import as_of_key, registry

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
