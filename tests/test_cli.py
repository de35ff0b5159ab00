"""The command line, driven through click's CliRunner as a user would type it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lottrace.cli import cli

from factories import chain


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "c.db"
    assert run(path, "init").exit_code == 0
    return path


def run(
    db: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return CliRunner().invoke(
        cli, ["--db", str(db), *args], input=input, env=env, catch_exceptions=False
    )


def chain_file(tmp_path: Path) -> Path:
    p = tmp_path / "chain.jsonl"
    p.write_text("".join(json.dumps(e) + "\n" for e in chain()))
    return p


def assert_one_line_error(result: Result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_init_creates_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    assert "created ledger" in run(path, "init").output
    assert "opened existing ledger" in run(path, "init").output


def test_import_then_history_stats_verify(db: Path, tmp_path: Path) -> None:
    f = chain_file(tmp_path)
    out = run(db, "import", str(f))
    assert out.exit_code == 0
    assert out.output.strip() == "added 7, duplicates skipped 0, warnings 0"
    again = run(db, "import", str(f))
    assert again.output.strip() == "added 0, duplicates skipped 7, warnings 0"

    hist = run(db, "history", "G1")
    assert hist.exit_code == 0
    assert "gatherer_qc (output)" in hist.output and "dry_mill (input)" in hist.output
    data = json.loads(run(db, "history", "M1", "--json").output)
    assert [e["type"] for e in data["events"]] == ["dry_mill", "export"]
    assert data["voided"] == []

    stats = json.loads(run(db, "stats", "--json").output)
    assert stats["events"] == 7 and stats["lots"] == 5
    assert stats["by_type"]["harvest"] == 2

    v = run(db, "verify")
    assert v.exit_code == 0 and v.output.startswith("ok: 7 events")
    anchor = run(db, "verify", "--anchor").output.strip()
    assert anchor == stats["head"]
    assert run(db, "verify", "--expect", anchor).exit_code == 0


def test_bad_file_is_one_line_error_and_nothing_written(db: Path, tmp_path: Path) -> None:
    f = chain_file(tmp_path)
    lines = f.read_text().splitlines()
    lines[3] = json.dumps({**json.loads(lines[3]), "kg": "lots"})
    f.write_text("\n".join(lines))
    result = run(db, "import", str(f))
    assert_one_line_error(result, f"{f}:4", "lot H2", "field 'kg'")
    assert json.loads(run(db, "stats", "--json").output)["events"] == 0


def test_rule_violation_via_cli(db: Path, tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text(json.dumps(chain()[2]) + "\n")  # drying of a lot never harvested
    assert_one_line_error(run(db, "import", str(f)), f"{f}:1", "[lot-unknown]", "lot H1")


def test_import_many_files_is_one_batch(db: Path, tmp_path: Path) -> None:
    good = chain_file(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("type,time,site,lot,kg\ndrying,yesterday,farm:X,H1,100\n")
    assert_one_line_error(run(db, "import", str(good), str(bad)), f"{bad}:2", "field 'time'")
    assert json.loads(run(db, "stats", "--json").output)["events"] == 0


def test_log_harvest_then_drying(db: Path) -> None:
    out = run(
        db, "log", "harvest", "--lot", "APR-1", "--site", "farm:APR-P1", "--time", "2025-05-01T07:00:00-05:00",
        "--producer", "APR-0001", "--plot", "APR-P1", "--lon", "-79.0", "--lat", "-5.1", "--kg", "900",
        "--cert", "organic", "--cert", "fairtrade",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.output.startswith("logged harvest APR-1 as event ")
    eid = out.output.splitlines()[0].split()[-1]
    assert len(eid) == 64
    dup = run(db, "log", "harvest", "--lot", "APR-1", "--site", "farm:APR-P1", "--time", "2025-05-01T07:00:00-05:00",
              "--producer", "APR-0001", "--plot", "APR-P1", "--lon", "-79.0", "--lat", "-5.1", "--kg", "900",
              "--cert", "fairtrade", "--cert", "organic")  # fmt: skip
    assert dup.output.splitlines()[0] == f"already in the ledger as event {eid}; nothing added"
    env = {"LOTTRACE_SITE": "farm:APR-P1"}
    d = run(
        db,
        "log",
        "drying",
        "--lot",
        "APR-1",
        "--kg",
        "190",
        "--method",
        "covered",
        "--json",
        env=env,
    )
    assert d.exit_code == 0, d.output
    data = json.loads(d.output)
    assert data["added"] is True and data["event"]["site"] == "farm:APR-P1"
    from datetime import datetime

    assert datetime.fromisoformat(data["event"]["time"]).tzinfo is not None  # now, with an offset


def test_log_rejects_bad_values_in_one_line(db: Path) -> None:
    r = run(db, "log", "drying", "--lot", "X", "--site", "farm:X", "--kg", "-3")
    assert_one_line_error(r, "lottrace log", "field 'kg'")
    r = run(db, "log", "drying", "--lot", "X", "--site", "farm:X", "--kg", "3")
    assert_one_line_error(r, "[lot-unknown]")
    r = run(db, "log", "teleport", "--lot", "X", "--site", "farm:X")
    assert_one_line_error(r, "field 'type'", "harvest, drying")


def test_log_correction(db: Path, tmp_path: Path) -> None:
    run(db, "import", str(chain_file(tmp_path)))
    qc_id = json.loads(run(db, "history", "G1", "--json").output)["events"][0]["event_id"]
    r = run(
        db, "log", "correction", "--site", "hq:HQ", "--corrects", qc_id, "--reason", "did_not_occur"
    )
    assert_one_line_error(r, "[correction-orphans]", "lot G1")


def test_verify_fails_on_tampered_file(db: Path, tmp_path: Path) -> None:
    run(db, "import", str(chain_file(tmp_path)))
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER events_no_update")
    con.execute("UPDATE events SET body = replace(body, '500.0', '5000.0') WHERE seq = 2")
    con.commit()
    con.close()
    assert_one_line_error(run(db, "verify"), "row seq 2")


def test_db_from_environment(db: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["stats", "--json"], env={"LOTTRACE_DB": str(db)})
    assert json.loads(result.output)["events"] == 0


def test_missing_ledger_and_unknown_lot(tmp_path: Path, db: Path) -> None:
    assert_one_line_error(run(tmp_path / "none.db", "stats"), "run 'lottrace init'")
    assert_one_line_error(run(db, "history", "NOPE"), "no lot 'NOPE'", code=2)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00", b"{", b"type\nharvest\n"])
def test_garbage_files_never_traceback(db: Path, tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "g.jsonl"
    f.write_bytes(content)
    assert_one_line_error(run(db, "import", str(f)), str(f))


def test_schema_command(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["schema", "harvest"])
    assert json.loads(r.output)["title"] == "Harvest"
    r = CliRunner().invoke(cli, ["schema"])
    assert set(json.loads(r.output)["discriminator"]["mapping"]) >= {"harvest", "correction"}
    r = CliRunner().invoke(cli, ["schema", "--write", str(tmp_path / "s")])
    assert r.exit_code == 0 and (tmp_path / "s" / "event.json").exists()
    r = CliRunner().invoke(cli, ["schema", "nope"])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_rebuild_command(db: Path, tmp_path: Path) -> None:
    run(db, "import", str(chain_file(tmp_path)))
    assert run(db, "rebuild").output.strip() == "rebuilt derived tables from 7 events"


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys; from lottrace.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pydantic', 'networkx', 'sqlite_utils', 'orjson', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_internal_errors_are_one_line(db: Path, monkeypatch: Any) -> None:
    from lottrace import ledger

    def boom(self: Any) -> Any:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(ledger.Ledger, "stats", boom)
    r = CliRunner().invoke(cli, ["--db", str(db), "stats"])
    assert r.exit_code == 3
    assert "Traceback" not in r.output and "internal error RuntimeError: kaboom" in r.output


def test_history_hides_voided_events_and_says_so(db: Path, tmp_path: Path) -> None:
    from lottrace.events import event_id, parse_event

    from factories import correction, drying

    wrong = drying("H1", 10, 250)
    events = [chain()[0], wrong, correction(event_id(parse_event(wrong)), day=10), *chain()[1:]]
    f = tmp_path / "c.jsonl"
    f.write_text("".join(json.dumps(e) + "\n" for e in events))
    assert run(db, "import", str(f)).exit_code == 0
    out = run(db, "history", "H1").output
    assert "250" not in out
    assert f"1 voided event(s) not shown: {event_id(parse_event(wrong))[:12]}" in out
    data = json.loads(run(db, "history", "H1", "--json").output)
    assert data["voided"] == [event_id(parse_event(wrong))]
    assert [e["kg"] for e in data["events"] if e["type"] == "drying"] == [200]


def test_verify_expect_needs_a_full_hash(db: Path) -> None:
    r = run(db, "verify", "--expect", "00f5f0f00d72")
    assert r.exit_code == 2 and "full 64-character head hash" in r.output


def test_stats_on_an_empty_ledger(db: Path) -> None:
    out = run(db, "stats").output
    assert "no events yet" in out and "None" not in out


def test_reading_commands_never_change_a_foreign_file(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (id)")
    con.commit()
    con.close()
    before = other.read_bytes()
    for args in (["stats"], ["history", "X"], ["verify"], ["import", str(other)]):
        assert_one_line_error(run(other, *args), "not a lottrace ledger")
    assert other.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.touch()
    assert_one_line_error(run(empty, "stats"), "is empty, not a lottrace ledger")
    assert empty.stat().st_size == 0
