"""The season generator: valid, realistic, deterministic, and streaming in flat memory."""

from __future__ import annotations

import itertools
import tracemalloc
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.events import parse_event
from lottrace.generate import _coops, generate, generate_lines, write_jsonl
from lottrace.ledger import Ledger
from lottrace.provenance import upstream

SMALL = (30, 60)  # cooperative sizes that keep the tests fast


@pytest.fixture(scope="module")
def season() -> list[dict[str, Any]]:
    return list(generate(producers=150, seasons=2, seed=7, coop_size=SMALL))


def test_imports_without_a_single_rule_violation(
    season: list[dict[str, Any]], tmp_path: Path
) -> None:
    with Ledger.create(tmp_path / "g.db") as ledger:
        report = ledger.append((f"gen:{i}", parse_event(e)) for i, e in enumerate(season, 1))
        assert report.added == len(season) and report.duplicates == 0
        ledger.verify()
        # The only warnings are the wet lots the generator means to be wet.
        assert {w.rule for w in report.warnings} <= {"moisture-range", "water-activity"}
        export = next(e["lot"] for e in season if e["type"] == "export")
        data = upstream(ledger, export)
        assert data["harvests"] and data["producers"]


def test_models_every_part_of_the_chain(season: list[dict[str, Any]]) -> None:
    kinds = Counter(e["type"] for e in season)
    assert set(kinds) == {
        "harvest",
        "drying",
        "gatherer_qc",
        "hq_qc",
        "dry_mill",
        "export",
        "dispatch",
        "arrival",
    }
    harvests = [e for e in season if e["type"] == "harvest"]
    assert {h["plot"]["geometry"]["type"] for h in harvests} == {"Point", "Polygon"}
    months = {int(h["time"][5:7]) for h in harvests}
    assert min(months) >= 4 and max(months) <= 10 and len(months) >= 5
    assert {h["time"][:4] for h in harvests} == {"2024", "2025"}
    # Rejected and held lots are re-inspected and accepted later.
    for kind, verdict in (("gatherer_qc", "rejected"), ("hq_qc", "hold")):
        bad = [e["lot"] for e in season if e["type"] == kind and e["result"] == verdict]
        assert bad, verdict
        for lot in bad:
            assert any(
                e.get("lot") == lot and e.get("result") == "accepted" and "inputs" not in e
                for e in season
            ), lot
    # Merges of merges: HQ lots draw collection lots, which drew harvest lots.
    collections = {e["lot"] for e in season if e["type"] == "gatherer_qc" and "inputs" in e}
    hq = [e for e in season if e["type"] == "hq_qc" and "inputs" in e]
    assert all(i["lot"] in collections for e in hq for i in e["inputs"])
    assert all(len(e["outputs"]) == 3 for e in season if e["type"] == "dry_mill")
    assert all(e["site"] == "port:PAITA" for e in season if e["type"] == "export")


def test_rain_slows_the_rainy_roads() -> None:
    season = list(generate(producers=600, seed=7, coop_size=(200, 200)))
    rainy = {site for c in _coops(600, 7, (200, 200)) for site, wet in c.gatherers if wet}
    left: dict[str, datetime] = {}
    hours: dict[tuple[bool, bool], list[float]] = {}
    for e in season:
        if e["type"] == "dispatch" and e["site"].startswith("farm:"):
            left[e["lot"]] = datetime.fromisoformat(e["time"])
        elif e["type"] == "arrival" and e["lot"] in left:
            t = datetime.fromisoformat(e["time"])
            h = (t - left.pop(e["lot"])).total_seconds() / 3600
            if t.month != 10:  # the rains' return, half as slow
                hours.setdefault((e["site"] in rainy, t.month <= 5), []).append(h)
    mean = {k: sum(v) / len(v) for k, v in hours.items()}
    assert mean[(True, True)] > 1.8 * mean[(True, False)]  # rainy road, April-May vs later
    assert mean[(False, True)] < 1.5 * mean[(False, False)]  # dry roads do not care


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = list(generate_lines(60, seed=3, coop_size=SMALL))
    assert a == list(generate_lines(60, seed=3, coop_size=SMALL))
    assert a != list(generate_lines(60, seed=4, coop_size=SMALL))
    # A cooperative's events do not depend on how many cooperatives follow it.
    first = next(_coops(60, 3, SMALL))
    coop0 = [x for x in a if first.code.encode() in x]
    bigger = list(generate_lines(200, seed=3, coop_size=SMALL))
    assert bigger[: len(coop0)] == coop0


def _peak(producers: int) -> int:
    tracemalloc.start()
    try:
        for _ in generate_lines(producers, seed=1, coop_size=(40, 40)):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streams_in_flat_memory() -> None:
    assert isinstance(generate_lines(10), type(x for x in ()))
    small, large = _peak(80), _peak(800)  # 2 and 20 cooperatives
    assert large < 1.3 * small, (small, large)


def test_prefix_of_the_stream_imports(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    assert write_jsonl(path, 100, seed=2, max_events=1234, coop_size=SMALL) == 1234
    lines = path.read_bytes().splitlines()
    assert len(lines) == 1234
    assert lines == list(itertools.islice(generate_lines(100, seed=2, coop_size=SMALL), 1234))
    with Ledger.create(tmp_path / "g.db") as ledger:
        assert (
            ledger.append((str(i), parse_event(orjson.loads(x))) for i, x in enumerate(lines)).added
            == 1234
        )


def test_cli_generate_then_import(tmp_path: Path) -> None:
    out = tmp_path / "season.jsonl"
    runner = CliRunner()
    r = runner.invoke(cli, ["generate", "--producers", "12", "--seed", "5", "-o", str(out)])
    assert r.exit_code == 0, r.output
    n = len(out.read_bytes().splitlines())
    assert f"wrote {n} events" in r.output
    db = str(tmp_path / "g.db")
    assert runner.invoke(cli, ["--db", db, "init"]).exit_code == 0
    r = runner.invoke(cli, ["--db", db, "import", str(out)])
    assert r.exit_code == 0 and f"added {n}," in r.output, r.output
    r = runner.invoke(cli, ["generate", "--producers", "0", "-o", str(out)])
    assert r.exit_code == 2
