"""The Datasette metadata: its descriptions match the schema, its canned queries match the library.

Each canned query is run with plain ``sqlite3`` and its named parameters, as
Datasette runs it (a parameter left empty is ``''``), and compared with the
answer of the library query it mirrors.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.browse import CANNED_QUERIES, TABLES, datasette_metadata
from lottrace.cli import cli
from lottrace.delays import bottlenecks, stuck
from lottrace.demo import build_demo
from lottrace.graph import ancestors_graph, shares_into
from lottrace.ledger import Ledger
from lottrace.provenance import downstream, upstream

from factories import batch, chain, drying, export, harvest, mill, qc


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s") / "demo.db"
    build_demo(path)
    return path


@pytest.fixture(scope="module")
def conn(sample: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(f"file:{sample}?mode=ro", uri=True)
    c.row_factory = sqlite3.Row
    yield c
    c.close()


def canned(conn: sqlite3.Connection, name: str, **params: str) -> list[dict[str, Any]]:
    query = CANNED_QUERIES[name]
    values = {p: params.get(p, "") for p in query["params"]}
    return [dict(r) for r in conn.execute(query["sql"], values)]


def all_lots(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT lot FROM lots ORDER BY lot")]


# --------------------------------------------------------------------------- metadata


def test_every_table_and_column_is_described_and_nothing_else(sample: Path) -> None:
    c = sqlite3.connect(sample)
    try:
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        schema = {t: [r[1] for r in c.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        c.close()
    assert sorted(TABLES) == sorted(schema)
    for table, columns in schema.items():
        assert list(TABLES[table]["columns"]) == columns, table
        assert all(TABLES[table]["columns"].values()), table


def test_declared_params_are_the_ones_the_sql_uses() -> None:
    for name, query in CANNED_QUERIES.items():
        used = set(re.findall(r"(?<!:):([a-z_]+)", query["sql"]))
        assert used == set(query["params"]), name
        assert query["title"] and query["description"]


def test_metadata_is_keyed_by_the_database_name() -> None:
    meta = datasette_metadata("season")
    assert list(meta["databases"]) == ["season"]
    db = meta["databases"]["season"]
    assert db["queries"] == CANNED_QUERIES and db["tables"] == TABLES
    json.dumps(meta)  # plain JSON


# --------------------------------------------------------------------------- canned queries


def test_upstream_returns_the_library_lots_and_shares(
    sample: Path, conn: sqlite3.Connection
) -> None:
    checked = 0
    with Ledger(sample) as ledger:
        for lot in all_lots(conn):
            rows = canned(conn, "lot_upstream", lot=lot)
            up = upstream(ledger, lot)
            assert [r["lot"] for r in rows if r["depth"] == 0] == [lot]
            assert sorted(r["lot"] for r in rows if r["depth"] > 0) == up["lots"], lot
            assert sorted({r["producer"] for r in rows if r["producer"]}) == up["producers"]
            sources = shares_into(ancestors_graph(ledger, lot), lot)
            if len(rows) > 1:
                got = {r["lot"]: r["share"] for r in rows if r["lot"] in sources}
                assert got == pytest.approx({k: float(v) for k, v in sources.items()}, abs=1e-6)
                checked += 1
    assert checked > 20


def small_ledger(path: Path, events: list[dict[str, Any]]) -> sqlite3.Connection:
    with Ledger.create(path) as ledger:
        ledger.append(batch(*events))
    c = sqlite3.connect(path)
    c.row_factory = sqlite3.Row
    return c


def test_upstream_shares_add_over_the_paths_of_a_diamond(tmp_path: Path) -> None:
    # G1 is milled into M1 and M2, and equal parts of both go into E: two paths
    # with the same share and depth, which must both count.
    both = [{"lot": "M1", "kg": 30}, {"lot": "M2", "kg": 30}]
    c = small_ledger(tmp_path / "d.db", [*chain()[:-1], export("E", 60, 60, inputs=both)])
    try:
        rows = {r["lot"]: r for r in canned(c, "lot_upstream", lot="E")}
    finally:
        c.close()
    with Ledger(tmp_path / "d.db") as ledger:
        expected = shares_into(ancestors_graph(ledger, "E"), "E")
    assert expected == {"H1": Fraction(2, 3), "H2": Fraction(1, 3)}
    assert rows["H1"]["share"] == pytest.approx(2 / 3, abs=1e-6)
    assert rows["H2"]["share"] == pytest.approx(1 / 3, abs=1e-6)
    assert rows["G1"]["share"] == pytest.approx(1.0)  # through both grades
    assert rows["M1"]["share"] == rows["M2"]["share"] == pytest.approx(0.5)
    assert rows["H1"]["kg_in_lot"] == pytest.approx(40.0, abs=1e-3)


def test_stuck_breaks_a_tie_between_next_stages_as_the_library_does(tmp_path: Path) -> None:
    # After gatherer QC, one lot went to HQ QC (5 days) and one to the dry mill
    # (25 days): a tie, which goes to the earlier stage, HQ QC, so G3 is stuck
    # at 15 days.
    events = [
        *(harvest(f"H{i}", i) for i in (1, 2, 3)),
        *(drying(f"H{i}", 10) for i in (1, 2, 3)),
        *(qc(f"G{i}", 15, inputs=[(f"H{i}", 200)]) for i in (1, 2, 3)),
        qc("Q1", 20, stage="hq_qc", inputs=[("G1", 200)]),
        mill(40, [("G2", 200)], [("M2", 150, "Grade 1")]),
    ]
    db = tmp_path / "t.db"
    c = small_ledger(db, events)
    try:
        rows = canned(c, "stuck_lots", as_of="2025-05-30", min_kg="")
    finally:
        c.close()
    with Ledger(db) as ledger:
        lib = stuck(ledger, "2025-05-30")
    assert [(r["lot"], r["next"]) for r in rows] == [(r["lot"], r["next"]) for r in lib]
    assert ("G3", "hq_qc") in [(r["lot"], r["next"]) for r in rows]


def test_downstream_returns_the_library_lots(sample: Path, conn: sqlite3.Connection) -> None:
    with Ledger(sample) as ledger:
        for lot in all_lots(conn):
            rows = canned(conn, "lot_downstream", lot=lot)
            assert sorted(r["lot"] for r in rows) == downstream(ledger, lot)["lots"], lot
    rows = {r["lot"]: r for r in canned(conn, "lot_downstream", lot="APR-25-G-HUA02-03")}
    assert json.loads(rows["EXP-25-APR-02"]["containers"]) == ["HLXU8411777"]


@pytest.mark.parametrize(
    ("since", "until"),
    [("", ""), ("2025-07-01", ""), ("", "2025-08-01"), ("2025-06-15", "2025-09-01")],
)
def test_bottlenecks_match_the_library(
    sample: Path, conn: sqlite3.Connection, since: str, until: str
) -> None:
    rows = canned(conn, "bottlenecks", since=since, until=until)
    with Ledger(sample) as ledger:
        lib = bottlenecks(ledger, top=10**6, since=since or None, until=until or None)
    assert rows, "the sample season has bottlenecks"
    assert [
        (r["from_site"], r["to_site"], r["from"], r["to"], r["legs"], r["baseline_hours"])
        for r in rows
    ] == [
        (r["from_site"], r["to_site"], r["from"], r["to"], r["count"], r["baseline_hours"])
        for r in lib
    ]
    assert [r["excess_hours"] for r in rows] == pytest.approx(
        [r["excess_hours"] for r in lib], abs=2e-3
    )
    assert [r["mean_hours"] for r in rows] == pytest.approx(
        [r["mean_hours"] for r in lib], abs=2e-3
    )


@pytest.mark.parametrize(
    ("as_of", "min_kg"),
    [
        ("2025-10-31", "100"),
        ("2025-10-31", ""),
        ("2025-09-01", "0"),
        ("2025-12-31T12:00:00-05:00", "500"),
    ],
)
def test_stuck_lots_match_the_library(
    sample: Path, conn: sqlite3.Connection, as_of: str, min_kg: str
) -> None:
    rows = canned(conn, "stuck_lots", as_of=as_of, min_kg=min_kg)
    with Ledger(sample) as ledger:
        lib = stuck(ledger, as_of, min_kg=float(min_kg or 0))
    keys = ["lot", "stage", "site", "next", "last_qc"]
    assert [[r[k] for k in keys] for r in rows] == [[r[k] for k in keys] for r in lib]
    for k in ("age_hours", "p90_hours", "over_hours", "kg_left"):
        assert [r[k] for r in rows] == pytest.approx([r[k] for r in lib], abs=2e-3), k


def test_stuck_lots_default_to_now(conn: sqlite3.Connection) -> None:
    late = canned(conn, "stuck_lots")  # as_of empty: now, long after the 2025 season
    assert {r["lot"] for r in canned(conn, "stuck_lots", as_of="2025-10-31")} <= {
        r["lot"] for r in late
    }


# --------------------------------------------------------------------------- command


def test_command_prints_or_writes_the_metadata(sample: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["--db", str(sample), "datasette-metadata"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == datasette_metadata("demo")
    out = tmp_path / "metadata.json"
    wrote = runner.invoke(cli, ["--db", str(sample), "datasette-metadata", "-o", str(out)])
    assert wrote.exit_code == 0
    assert wrote.output == f"wrote {out}: run datasette {sample} --metadata {out}\n"
    assert json.loads(out.read_text(encoding="utf-8")) == datasette_metadata("demo")
    bad = runner.invoke(cli, ["datasette-metadata", "-o", str(tmp_path / "no" / "m.json")])
    assert bad.exit_code == 1 and bad.output.startswith("Error: cannot write ")


def _steps(c: sqlite3.Connection, name: str, **params: str) -> int:
    """SQLite virtual-machine steps one canned query takes: work done, not time taken."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    c.set_progress_handler(step, 1)
    try:
        canned(c, name, **params)
    finally:
        c.set_progress_handler(None, 1)
    return steps


@pytest.fixture(scope="module")
def small_and_large(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The same diamond lineage beside 20 and beside 2,000 unrelated lineages."""
    both = [{"lot": "M1", "kg": 30}, {"lot": "M2", "kg": 30}]
    target = [*chain()[:-1], export("E", 60, 60, inputs=both)]
    paths = []
    for n in (20, 2000):
        unrelated = [harvest(f"U{i}{s}", 1, 300) for i in range(n) for s in "AB"]
        unrelated += [qc(f"U{i}G", 5, inputs=[(f"U{i}A", 300), (f"U{i}B", 300)]) for i in range(n)]
        path = tmp_path_factory.mktemp("cost") / f"{n}.db"
        small_ledger(path, [*unrelated, *target]).close()
        paths.append(path)
    return paths


@pytest.mark.parametrize(("name", "lot"), [("lot_upstream", "E"), ("lot_downstream", "H1")])
def test_lineage_queries_read_only_the_lineage(
    small_and_large: list[Path], name: str, lot: str
) -> None:
    costs = []
    for path in small_and_large:
        c = sqlite3.connect(path)
        c.row_factory = sqlite3.Row
        try:
            costs.append(_steps(c, name, lot=lot))
        finally:
            c.close()
    small, large = costs
    assert large <= small * 1.02 + 50, (small, large)
