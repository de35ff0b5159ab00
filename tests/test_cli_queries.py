"""The provenance and delay commands, run as a user would on small and sample ledgers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.demo import build_demo
from lottrace.events import event_id, parse_event

from factories import chain, correction, harvest, qc


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", str(db), *args])


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s") / "demo.db"
    build_demo(path)
    return path


@pytest.fixture
def small(tmp_path: Path) -> Path:
    db = tmp_path / "c.db"
    run(db, "init")
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps(e) + "\n" for e in chain()))
    assert run(db, "import", str(f)).exit_code == 0
    return db


def test_upstream_json_keys_and_shares(small: Path) -> None:
    data = json.loads(run(small, "upstream", "M1", "--json").output)
    assert set(data) >= {"lot", "lots", "producers", "plots", "harvests", "qc", "shares"}
    assert data["lots"] == ["G1", "H1", "H2"]
    shares = {s["producer"]: s["share"] for s in data["shares"]}
    assert shares == pytest.approx({"PRD-H1": 2 / 3, "PRD-H2": 1 / 3})
    assert sum(s["kg"] for s in data["shares"]) == pytest.approx(200)


def test_upstream_table(small: Path) -> None:
    out = run(small, "upstream", "M1").output
    assert "lot M1: 3 ancestor lots, 2 producers, 2 harvests, 1 QC results" in out
    assert "PRD-H1" in out and "66.67" in out


def test_downstream_is_the_recall_query(small: Path) -> None:
    data = json.loads(run(small, "downstream", "H2", "--json").output)
    assert data["lots"] == ["G1", "M1", "M2"]
    assert [e["lot"] for e in data["exports"]] == ["M1"]
    assert "M1" in run(small, "downstream", "H2").output


def test_history_shows_the_upstream_tree(small: Path) -> None:
    out = run(small, "history", "M1").output
    assert "upstream of M1:" in out
    tree = out.split("upstream of M1:")[1]
    assert tree.index("G1") < tree.index("H1") and "accepted" in tree
    assert "upstream of" not in run(small, "history", "M1", "--no-tree").output
    assert "tree" in json.loads(run(small, "history", "M1", "--json").output)


def test_eudr_file_and_failures(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "m1.geojson"
    r = run(small, "eudr", "M1", "-o", str(out))
    assert r.exit_code == 0, r.output
    fc = json.loads(out.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2
    assert {f["properties"]["ProducerCountry"] for f in fc["features"]} == {"PE"}
    assert run(small, "eudr", "M1", "--check").exit_code == 0
    # a harvest with no plot geometry makes any lot it reaches unprovable
    f = tmp_path / "more.jsonl"
    no_geo = harvest("H7", 3, 800, plot={"id": "P7"})
    f.write_text(json.dumps(no_geo) + "\n" + json.dumps({"type": "drying", "time": "2025-05-12T08:00:00-05:00", "site": "farm:H7", "lot": "H7", "kg": 160}) + "\n"
                 + json.dumps(qc("G7", 14, inputs=[("H7", 160)])) + "\n")  # fmt: skip
    assert run(small, "import", str(f)).exit_code == 0
    r = run(small, "eudr", "G7", "--check")
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "H7" in r.output and "PRD-H7" in r.output


def test_certify(small: Path) -> None:
    r = run(small, "certify", "M1", "--scheme", "organic")
    assert r.exit_code == 1 and "not physically traceable as organic" in r.output


def test_correction_removes_a_link_and_the_answer_says_so(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    run(db, "init")
    merge = qc("G1", 15, inputs=[("H1", 200)])
    events = [*chain()[:4], merge, correction(event_id(parse_event(merge)), day=16, reason="did_not_occur"),
              qc("G1", 17, inputs=[("H1", 200), ("H2", 100)])]  # fmt: skip
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert run(db, "import", str(f)).exit_code == 0
    data = json.loads(run(db, "upstream", "G1", "--json").output)
    assert data["lots"] == ["H1", "H2"]
    assert data["voided"] == [event_id(parse_event(merge))]


def test_unknown_lot_is_a_usage_error(small: Path) -> None:
    for cmd in ("upstream", "downstream", "eudr", "timeline"):
        r = run(small, cmd, "NOPE")
        assert r.exit_code == 2 and "no lot 'NOPE'" in r.output and "Traceback" not in r.output


def test_delay_commands_on_the_sample(sample: Path) -> None:
    rows = json.loads(run(sample, "delays", "--json").output)
    assert {"from", "to", "count", "mean_hours", "p50_hours", "p90_hours", "max_hours"} <= set(
        rows[0]
    )
    by_site = json.loads(run(sample, "delays", "--by", "site", "--json").output)
    assert {"from_site", "to_site"} <= set(by_site[0])
    assert json.loads(
        run(sample, "delays", "--by", "month", "--since", "2025-07-01", "--json").output
    )
    top = json.loads(run(sample, "bottlenecks", "--top", "3", "--json").output)
    assert [r["rank"] for r in top] == [1, 2, 3]
    assert top[0]["excess_hours"] >= top[1]["excess_hours"] >= top[2]["excess_hours"]
    stuck = json.loads(run(sample, "stuck", "--as-of", "2025-10-01", "--json").output)
    assert "APR-25-H0519-1" in [s["lot"] for s in stuck]  # the rejected lot nobody moved
    assert run(sample, "delays", "--since", "yesterday").exit_code == 2
    for option, value in [
        ("--since", "0001-01-01T00:00+01:00"),
        ("--until", "9999-12-31T23:00-01:00"),
    ]:
        r = run(sample, "delays", option, value)
        assert r.exit_code == 2 and "not a year between 1900 and 2200" in r.output, r.output
        assert "internal error" not in r.output


def test_timeline_names_the_input_that_held_the_container(sample: Path) -> None:
    data = json.loads(run(sample, "timeline", "EXP-25-APR-02", "--json").output)
    assert data["merges"][0]["critical"] == "MILL-25-0455-G1"
    assert "the last input was MILL-25-0455-G1" in run(sample, "timeline", "EXP-25-APR-02").output
