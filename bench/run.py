"""Benchmark lottrace against the raw-SQLite limit on one generated ledger (not a test).

    python bench/run.py --events 100000 [--json] [--seed 0] [--keep DIR] [--db URI]

One run: generate a season (``lottrace.generate``) cut to ``--events``;
import it with a whole ``lottrace import`` process (parse, validate, rules,
hash chain, derived tables) and take its peak memory (``peak_rss_mb``, the
largest process; ``peak_rss_all_mb``, the import and its reader process
together, sampled); insert the same canonical rows with plain ``sqlite3``
``executemany`` into a table with the same indexes in one transaction (the
physical limit); time importing the same file again (``reimport_s``: every
event a duplicate); time one export lot's
``upstream`` against a bare recursive CTE; time the ``lottrace upstream``
process, ``delays``, ``bottlenecks`` and ``verify``; and measure the file.
The figures are printed as a table, or as one JSON object with ``--json``.

With ``--db postgresql://...`` the same season is then run again on
PostgreSQL, in a fresh schema of that database (dropped afterwards), and the
result has the same keys for each backend (``{"sqlite": {...}, "postgresql":
{...}}``). There, the raw baseline is ``COPY`` of the ledger's own rows into a
table made by the ledger's own ``events`` statements (the same columns,
collations, constraints and indexes) in a fresh schema on the same server, in
one transaction; ``cte_p50_ms`` is the same bare recursive CTE on PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from lottrace.delays import bottlenecks, delays
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger
from lottrace.provenance import upstream
from lottrace.storage.sqlite_schema import EVENTS_TABLE_SQL

#: Events per producer family and season in the generator, rounded down (it is about 24).
EVENTS_PER_PRODUCER = 20

_RAW_SCHEMA = EVENTS_TABLE_SQL

_CTE = """WITH RECURSIVE reach(lot) AS (SELECT ? UNION
    SELECT l.src FROM reach CROSS JOIN links l ON l.dst = reach.lot)
SELECT el.lot, e.seq, e.body FROM reach CROSS JOIN event_lots el ON el.lot = reach.lot
JOIN events e ON e.seq = el.seq ORDER BY el.lot, el.time, el.seq"""


#: The same CTE on PostgreSQL (its placeholder, typed and collated as the columns;
#: ``CROSS JOIN ... ON``, SQLite's hint to keep the join order, is plain ``JOIN`` there).
_CTE_PG = _CTE.replace("?", '%s::text COLLATE "C"').replace("CROSS JOIN", "JOIN")


def _lottrace(*args: str) -> list[str]:
    return [sys.executable, "-m", "lottrace", *args]


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _pg_version(uri: str) -> str:
    import psycopg

    with psycopg.connect(uri) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _raw_insert(ledger_path: Path, folder: Path) -> tuple[float, int]:
    """Rows per second of a plain executemany of the ledger's own rows, read time excluded."""
    src = sqlite3.connect(ledger_path)
    select = "SELECT seq, event_id, type, time, lot, body, prev_hash, hash FROM events ORDER BY seq"
    t0 = time.perf_counter()
    n = sum(1 for _ in src.execute(select))
    read_s = time.perf_counter() - t0
    raw = folder / "raw.db"
    dst = sqlite3.connect(raw, isolation_level=None)
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=FULL")
    dst.execute(_RAW_SCHEMA)
    t0 = time.perf_counter()
    dst.execute("BEGIN")
    dst.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", src.execute(select))
    dst.execute("COMMIT")
    total_s = time.perf_counter() - t0
    dst.close()
    src.close()
    raw.unlink()
    for extra in ("-wal", "-shm"):
        Path(f"{raw}{extra}").unlink(missing_ok=True)
    return n / max(total_s - read_s, 1e-9), n


def _pg_schema_uri(base: str, schema: str) -> str:
    """``base`` whose connections put the ledger in ``schema`` (their search_path)."""
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def _pg_raw_insert(base: str, ledger_uri: str) -> tuple[float, float, int]:
    """Rows per second of ``COPY``, and of ``executemany``, of the ledger's own rows into the
    same table, each in one transaction, read time excluded.

    The table and its indexes are made by the very statements of the ledger's
    migrations that make ``events`` (triggers left out: they fire only on UPDATE,
    DELETE and TRUNCATE), in a fresh schema on the same server. ``COPY`` is the
    baseline of ``import_ratio`` (the server's fastest way in); ``executemany``
    (psycopg pipelines it) is reported beside it.
    """
    import psycopg

    from lottrace.storage.postgres_schema import statements

    select = "SELECT seq, event_id, type, time, lot, body, prev_hash, hash FROM events ORDER BY seq"
    cols = "seq, event_id, type, time, lot, body, prev_hash, hash"
    schema = f"lottrace_bench_raw_{os.getpid()}"
    with psycopg.connect(ledger_uri) as src, psycopg.connect(base, autocommit=True) as dst:

        def rows() -> Any:
            with src.cursor(name="raw_read") as cur:
                cur.itersize = 5000
                cur.execute(select)
                yield from cur
            src.rollback()

        def fresh_table() -> None:
            dst.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            dst.execute(f"CREATE SCHEMA {schema}")
            dst.execute(f"SET search_path TO {schema}")
            for st in statements():
                if st.table == "events" and st.kind in ("table", "index"):
                    dst.execute(st.sql)

        t0 = time.perf_counter()
        n = sum(1 for _ in rows())
        read_s = time.perf_counter() - t0
        try:
            fresh_table()
            t0 = time.perf_counter()
            with (
                dst.transaction(),
                dst.cursor() as cur,
                cur.copy(f"COPY events ({cols}) FROM STDIN") as copy,
            ):
                for row in rows():
                    copy.write_row(row)
            copy_s = time.perf_counter() - t0
            fresh_table()
            t0 = time.perf_counter()
            with dst.transaction(), dst.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO events ({cols}) VALUES ({', '.join(['%s'] * 8)})", rows()
                )
            many_s = time.perf_counter() - t0
        finally:
            dst.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return n / max(copy_s - read_s, 1e-9), n / max(many_s - read_s, 1e-9), n


def _rss_kib(pid: int, field: str = "VmRSS:") -> tuple[int, list[int]]:
    """A process's resident memory (KiB) and its children's pids, from /proc (0 if gone)."""
    rss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                rss = int(line.split()[1])
    except (OSError, ValueError):
        return 0, []
    kids: list[int] = []
    try:  # /proc/PID/task/TID/children needs a kernel built with it
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids.extend(int(k) for k in (task / "children").read_text().split())
    except (OSError, ValueError):
        pass
    return rss, kids


def _peak_rss_of_tree(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Wait for ``proc``; the peak of its and its children's summed RSS in KiB, sampled every
    50 ms, and ``proc``'s own peak (its VmHWM when last sampled).

    ru_maxrss gives only the largest single process; the import's reader
    process runs beside it. Where /proc is missing this returns 0.
    """
    peak = hwm = 0
    while proc.poll() is None:
        hwm = max(hwm, _rss_kib(proc.pid, "VmHWM:")[0])
        total, todo = 0, [proc.pid]
        while todo:
            rss, kids = _rss_kib(todo.pop())
            total += rss
            todo.extend(kids)
        peak = max(peak, total)
        time.sleep(0.05)
    return peak, hwm


def _export_lot(ledger: Ledger) -> str:
    """The first export lot formed from other lots: the same lineage at every ledger size."""
    row = ledger.conn.execute(
        "SELECT e.lot FROM events e WHERE e.type = 'export' AND EXISTS "
        "(SELECT 1 FROM links l WHERE l.dst = e.lot) ORDER BY e.seq LIMIT 1"
    ).fetchone()
    if row is None:
        raise SystemExit("no export lot in the generated ledger: use more --events")
    return str(row[0])


def _timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run(events: int, seed: int, folder: Path, pg: str | None = None) -> dict[str, Any]:
    """One run on SQLite, and with ``pg`` (a base URI) the same season on PostgreSQL too."""
    jsonl = folder / "season.jsonl"
    t0 = time.perf_counter()
    producers = events // EVENTS_PER_PRODUCER + 1
    n = write_jsonl(jsonl, producers, seed=seed, max_events=events)
    generate_s = round(time.perf_counter() - t0, 2)
    if n < events:
        raise SystemExit(f"the generator made only {n} events")
    if pg is None:
        return run_one(events, n, jsonl, generate_s, folder, None)
    out = {"sqlite": run_one(events, n, jsonl, generate_s, folder, None)}
    import psycopg

    schema = f"lottrace_bench_{os.getpid()}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        out["postgresql"] = run_one(events, n, jsonl, generate_s, folder, (pg, schema))
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return out


def run_one(
    events: int,
    n: int,
    jsonl: Path,
    generate_s: float,
    folder: Path,
    pg: tuple[str, str] | None,
) -> dict[str, Any]:
    """The figures of one backend: the SQLite file in ``folder``, or ``(base URI, schema)``."""
    r: dict[str, Any] = {"events": events, "machine": _machine()}
    r["backend"] = "postgresql" if pg else "sqlite"
    target = _pg_schema_uri(*pg) if pg else str(folder / "bench.db")
    db = target
    cte_sql = _CTE_PG if pg else _CTE
    r["generate_s"] = generate_s
    r["input_bytes_per_event"] = round(jsonl.stat().st_size / n, 1)

    subprocess.run(_lottrace("--db", str(db), "init"), check=True, capture_output=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            _lottrace("--db", str(db), "import", str(jsonl)), stdout=subprocess.DEVNULL, stderr=err
        )
        together, own = _peak_rss_of_tree(proc)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"the import failed: {err.read().decode(errors='replace')}")
    import_s = time.perf_counter() - t0
    # The import is the biggest process so far; ru_maxrss is in KiB on Linux. After
    # another backend's run it counts that run's import too: then the import's own
    # high-water mark, as last sampled, is taken.
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r["peak_rss_mb"] = round((own if pg else children) / 1024, 1)
    r["peak_rss_all_mb"] = round(together / 1024, 1)
    r["import_s"] = round(import_s, 2)
    r["import_events_per_s"] = round(n / import_s)

    # The same file again: every event is a duplicate, counted and skipped.
    t0 = time.perf_counter()
    subprocess.run(
        _lottrace("--db", str(db), "import", str(jsonl)), check=True, capture_output=True
    )
    r["reimport_s"] = round(time.perf_counter() - t0, 2)

    if pg:
        r["machine"]["postgresql"] = _pg_version(target)
        raw_rate, many_rate, raw_n = _pg_raw_insert(pg[0], target)
        r["raw_executemany_rows_per_s"] = round(many_rate)
    else:
        raw_rate, raw_n = _raw_insert(Path(db), folder)
    assert raw_n == n
    r["raw_insert_rows_per_s"] = round(raw_rate)
    r["import_ratio"] = round(r["import_events_per_s"] / raw_rate, 3)
    if pg:
        r["import_ratio_executemany"] = round(r["import_events_per_s"] / many_rate, 3)

    with Ledger(db) as ledger:
        lot = _export_lot(ledger)
        up = upstream(ledger, lot)
        r["upstream_lot"] = lot
        r["upstream_ancestors"] = len(up["lots"])
        r["upstream_events"] = len(ledger.conn.execute(cte_sql, [lot]).fetchall())
        _timed(lambda: upstream(ledger, lot), 3)
        ts = _timed(lambda: upstream(ledger, lot), 30)
        r["upstream_p50_ms"] = round(statistics.median(ts), 2)
        r["upstream_p99_ms"] = round(_quantile(ts, 0.99), 2)
        _timed(lambda: ledger.conn.execute(cte_sql, [lot]).fetchall(), 3)
        cte = _timed(lambda: ledger.conn.execute(cte_sql, [lot]).fetchall(), 30)
        r["cte_p50_ms"] = round(statistics.median(cte), 3)
        r["upstream_ratio"] = round(r["upstream_p50_ms"] / r["cte_p50_ms"], 2)

        cli = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(
                _lottrace("--db", str(db), "upstream", lot, "--json"),
                check=True,
                capture_output=True,
            )
            cli.append((time.perf_counter() - t0) * 1000)
        r["cli_upstream_wall_ms"] = round(statistics.median(cli), 1)

        t0 = time.perf_counter()
        delays(ledger)
        r["delays_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        bottlenecks(ledger)
        r["bottlenecks_s"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        ledger.verify()
        r["verify_events_per_s"] = round(n / (time.perf_counter() - t0))
        if pg:
            size = int(
                ledger.conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
                    "JOIN pg_namespace s ON s.oid = c.relnamespace "
                    "WHERE s.nspname = %s AND c.relkind = 'r'",
                    [pg[1]],
                ).fetchone()[0]
            )
        else:
            ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if not pg:
        file = Path(db)
        size = file.stat().st_size + sum(
            Path(f"{file}{x}").stat().st_size for x in ("-wal",) if Path(f"{file}{x}").exists()
        )
    r["db_bytes_per_event"] = round(size / n, 1)
    r["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="events to generate and import")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    ap.add_argument(
        "--db",
        metavar="URI",
        help="also run on PostgreSQL: a libpq URI of a database (a fresh schema is made in it)",
    )
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lottrace-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args.events, args.seed, folder, args.db)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    from tabulate import tabulate

    for one in [result["sqlite"], result["postgresql"]] if args.db else [result]:
        machine = one.pop("machine")
        print(tabulate(list(one.items()), headers=["figure", "value"]))
        print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))


if __name__ == "__main__":
    main()
