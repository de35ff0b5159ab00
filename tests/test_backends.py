"""Both backends, end to end: the command line gives the same answers on SQLite and PostgreSQL,
and writers in several processes share a PostgreSQL ledger without losing or doubling an event.

The PostgreSQL tests run in a fresh schema of ``LOTTRACE_TEST_PG`` (see conftest).
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from lottrace.cli import cli
from lottrace.demo import sample_files
from lottrace.ledger import Ledger

from factories import batch, drying, harvest

#: Read commands whose --json answers must be the same on every backend.
QUESTIONS = [
    ["stats", "--json"],
    ["upstream", "EXP-25-APR-02", "--json"],
    ["downstream", "APR-25-H0519-1", "--json"],
    ["history", "MILL-25-0412-G1", "--json"],
    ["timeline", "EXP-25-APR-02", "--json"],
    ["eudr", "EXP-25-APR-02"],
    ["delays", "--json"],
    ["bottlenecks", "--json"],
    ["stuck", "--json"],
    ["certify", "EXP-25-APR-02", "--scheme", "organic", "--json"],
]


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args], catch_exceptions=False)


def _season(db: str) -> None:
    """init, import the sample season, verify: the smoke every backend must pass."""
    r = run(db, "init")
    assert r.exit_code == 0, r.output
    r = run(db, "import", *map(str, sample_files()))
    assert r.exit_code == 0, r.output
    assert "added 105, duplicates skipped 0" in r.stdout, r.output
    r = run(db, "verify")
    assert r.exit_code == 0 and r.output.startswith("ok: 105 events, chain intact"), r.output


def _answer(db: str, args: list[str]) -> Any:
    """A command's exit code and answer (a refusal, like an expired certificate, included)."""
    r = run(db, *args)
    assert r.exit_code in (0, 1), (args, r.output)
    if "--json" not in args:
        return r.exit_code, r.output
    data = json.loads(r.stdout)
    if args[0] == "stats":
        data.pop("head")  # each ledger's chain starts from its own random id
    return r.exit_code, data


def test_the_sample_season_on_each_backend(ledger_target: str) -> None:
    _season(ledger_target)
    up = _answer(ledger_target, ["upstream", "EXP-25-APR-02", "--json"])
    assert up and "APR-25" in json.dumps(up)
    assert _answer(ledger_target, ["delays", "--json"])
    again = run(ledger_target, "import", *map(str, sample_files()))
    assert "added 0, duplicates skipped 104" in again.stdout, again.output
    assert run(ledger_target, "rebuild").exit_code == 0
    assert run(ledger_target, "verify").exit_code == 0


def test_both_backends_give_the_same_answers(tmp_path: Path, pg_uri: str) -> None:
    file = str(tmp_path / "s.db")
    _season(file)
    _season(pg_uri)
    for args in QUESTIONS:
        assert _answer(pg_uri, args) == _answer(file, args), args
    docs = []
    for db, name in ((file, "sqlite"), (pg_uri, "postgres")):
        out = tmp_path / f"{name}.jsonld"
        r = run(db, "epcis", "export", "--lot", "EXP-25-APR-02", "--upstream", "-o", str(out))
        assert r.exit_code == 0, r.output
        doc = json.loads(out.read_text())
        doc.pop("creationDate", None)
        docs.append(doc)
        r = run(db, "passport", "EXP-25-APR-02", "-o", str(tmp_path / f"{name}.html"))
        assert r.exit_code == 0 and "wrote" in r.output, r.output
    assert docs[0] == docs[1]


# --------------------------------------------------------------------------- writers at once

#: Processes and appends each (the issue's 4 x 5,000), in batches of BATCH.
PROCESSES, APPENDS, BATCH = 4, 5000, 250


def _writer(args: tuple[str, int]) -> int:
    uri, k = args
    added = 0
    with Ledger(uri) as led:
        for j in range(APPENDS // BATCH):
            events = [harvest(f"W{k}-{j}-{i}", 1 + i % 20, 100 + i % 50) for i in range(BATCH)]
            added += led.append(batch(*events)).added
    return added


def test_four_processes_append_to_one_postgres_ledger(pg_uri: str) -> None:
    Ledger.create(pg_uri).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        added = pool.map(_writer, [(pg_uri, k) for k in range(PROCESSES)])
    assert added == [APPENDS] * PROCESSES
    total = PROCESSES * APPENDS
    with Ledger(pg_uri) as led:
        assert led.verify().events == total
        rows = led.conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT event_id), MIN(seq), MAX(seq) FROM events"
        ).fetchone()
        assert tuple(rows) == (total, total, 1, total)  # each once, no gap in the chain
        assert led.stats()["lots"] == total


def _killed_writer(uri: str, started: Any) -> None:
    events = [harvest(f"K-{i}", 1 + i % 20, 100) for i in range(20_000)]
    with Ledger(uri) as led:
        led.append(batch(*events), progress=lambda n: started.set())


def test_a_writer_killed_mid_batch_leaves_the_postgres_ledger_before_it(pg_uri: str) -> None:
    import os
    import signal

    with Ledger.create(pg_uri) as led:
        led.append(batch(harvest("SEED")))
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    child = ctx.Process(target=_killed_writer, args=(pg_uri, started))
    child.start()
    try:
        assert started.wait(120), "the writer never got into its batch"
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)  # inside its transaction, holding the lock
    finally:
        child.join(60)
    assert child.exitcode == -signal.SIGKILL
    with Ledger(pg_uri, busy_timeout_s=30) as led:
        assert led.verify().events == 1  # before the batch: none of it
        # the server released the dead writer's lock: the next writer goes on
        assert led.append(batch(harvest("AFTER"))).added == 1
        assert led.verify().events == 2


# --------------------------------------------------------------------------- --db as a URI

URI = "postgresql://ana:pw@db.example/lots"


def test_a_uri_has_no_folder_beside_it_for_contexts_unless_one_is_named(tmp_path: Path) -> None:
    local = tmp_path / "ctx.jsonld"
    local.write_text(json.dumps({"@context": {"ex": "https://example.org/ns#"}}))
    url = "https://example.org/ctx.jsonld"
    runner = CliRunner()
    r = runner.invoke(cli, ["--db", URI, "epcis", "context", "add", url, str(local)], env={})
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert (
        r.output.startswith("Error: a PostgreSQL ledger has no folder")
        and "LOTTRACE_CONTEXTS" in r.output
    )
    folder = tmp_path / "contexts"
    env = {"LOTTRACE_CONTEXTS": str(folder)}
    r = runner.invoke(cli, ["--db", URI, "epcis", "context", "add", url, str(local)], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["--db", URI, "epcis", "context", "list", "--json"], env=env)
    assert [e["url"] for e in json.loads(r.output)] == [url]
    assert (folder / "index.json").exists()


def test_a_uri_is_kept_whole_and_other_schemes_are_refused(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["--db", URI, "datasette-metadata"])
    assert (
        r.exit_code == 1
        and r.output == "Error: Datasette reads SQLite files: datasette-metadata needs --db FILE\n"
    )
    r = CliRunner().invoke(cli, ["--db", "mysql://x/y", "stats"])
    assert r.exit_code == 2 and "neither a file nor a postgresql://" in r.output
    out = tmp_path / "schemas"
    r = CliRunner().invoke(cli, ["--db", URI, "schema", "--write", str(out)])
    assert r.exit_code == 0 and (out / "harvest.json").exists(), r.output  # output files checked


# --------------------------------------------------------------------------- copy


def test_copy_moves_a_ledger_between_backends_keeping_its_chain(
    tmp_path: Path, pg_uri: str
) -> None:
    file = str(tmp_path / "s.db")
    _season(file)
    r = run(file, "copy", file, pg_uri)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("copied 105 events from ") and "both verify" in r.output
    for args in QUESTIONS:
        assert _answer(pg_uri, args) == _answer(file, args), args
    heads = {json.loads(run(db, "stats", "--json").output)["head"] for db in (file, pg_uri)}
    assert len(heads) == 1  # the same chain, from the same ledger id
    back = str(tmp_path / "back.db")
    r = run(file, "copy", pg_uri, back, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["head"] in heads
    with Ledger.reader(file) as a, Ledger.reader(back) as b:
        rows = "SELECT * FROM events ORDER BY seq"
        assert a.conn.execute(rows).fetchall() == b.conn.execute(rows).fetchall()
        assert a.derived_snapshot() == b.derived_snapshot()
    r = run(file, "copy", file, pg_uri)  # never into a ledger that holds events
    assert r.exit_code == 1 and "already holds 105 events" in r.output, r.output


def test_copy_refuses_a_source_that_does_not_verify(tmp_path: Path) -> None:
    import sqlite3

    src = str(tmp_path / "s.db")
    _season(src)
    con = sqlite3.connect(src)
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET body = replace(body, '\"kg\":', '\"kg\": ') WHERE seq = 3")
    con.commit()
    con.close()
    r = run(src, "copy", src, str(tmp_path / "d.db"))
    assert r.exit_code == 1 and "row seq 3" in r.output, r.output


def test_the_demo_note_never_shows_a_password(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "d.db")], env={"LOTTRACE_DB": URI})
    assert r.exit_code == 0, r.output
    assert "never postgresql://ana@db.example/lots," in r.stderr and "pw" not in r.stderr


def test_many_lots_in_one_batch_give_the_same_tables_and_fresh_statistics(
    tmp_path: Path, pg_uri: str
) -> None:
    """A batch that changes many lots upserts them through a staging table on PostgreSQL,
    and a large one leaves the planner statistics (ANALYZE); the tables equal SQLite's."""
    import lottrace.storage.postgres as pg

    events = [harvest(f"L{i:04d}", day=1 + i % 20, kg=100.0 + i) for i in range(300)]
    events += [drying(f"L{i:04d}", day=25, kg=20.0 + i / 10) for i in range(300)]
    with Ledger.create(tmp_path / "m.db") as a, Ledger.create(pg_uri) as b:
        old = pg._ANALYZE_AFTER
        pg._ANALYZE_AFTER = 500  # 600 events and 600 event_lots rows: analyzed
        try:
            a.append(batch(*events))
            b.append(batch(*events))
        finally:
            pg._ANALYZE_AFTER = old
        assert a.derived_snapshot() == b.derived_snapshot()
        assert len(b.derived_snapshot()["lots"]) == 300
        analyzed = b.conn.execute(
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() "
            "AND relname IN ('events', 'event_lots', 'lots') AND last_analyze IS NOT NULL"
        ).fetchone()
        assert analyzed == (3,)
        b.verify()
