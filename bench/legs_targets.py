"""Time the #20 analytics targets on one ledger (not a test): delays by window, upstream.

    python bench/legs_targets.py --db FILE_OR_URI [--make EVENTS --jsonl FILE]

With ``--make``, a season cut to EVENTS events is generated (as bench/run.py
does, seed 0; ``--seasons S`` spreads them over S years) into ``--jsonl``
and imported into a new ledger at ``--db`` with a ``lottrace import``
process (``import_s``; ``--make-only`` stops there). Then, on the ledger:
``delays`` over each calendar month that has legs (``delays_month_s``: the
slowest month, and every month's time and leg count), over the whole ledger
(``delays_all_s``; by month ``delays_by_month_all_s``, by site
``delays_by_site_all_s``), ``bottlenecks`` over the whole ledger and the busiest
month, and one export lot's ``upstream`` (p50 of 30 runs after 3, the lot
bench/run.py picks). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from lottrace.delays import bottlenecks, delays
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger
from lottrace.provenance import upstream

sys.path.insert(0, str(Path(__file__).parent))
from run import EVENTS_PER_PRODUCER, _export_lot, _machine, _timed


def _secs(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return round(time.perf_counter() - t0, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--make", type=int)
    ap.add_argument("--jsonl", type=Path)
    ap.add_argument(
        "--seasons",
        type=int,
        default=1,
        help="with --make: spread the events over this many seasons (years), as a "
        "platform's ledger grows; 1 (all in one season) by default",
    )
    ap.add_argument("--make-only", action="store_true", help="with --make: stop after the import")
    args = ap.parse_args()
    r: dict[str, Any] = {"machine": _machine()}
    lottrace = [sys.executable, "-m", "lottrace", "--db", args.db]
    if args.make:
        t0 = time.perf_counter()
        n = write_jsonl(
            args.jsonl,
            args.make // (EVENTS_PER_PRODUCER * args.seasons) + 1,
            seasons=args.seasons,
            seed=0,
            max_events=args.make,
        )
        r["seasons"] = args.seasons
        r["generate_s"] = round(time.perf_counter() - t0, 1)
        subprocess.run([*lottrace, "init"], check=True, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([*lottrace, "import", str(args.jsonl)], check=True, capture_output=True)
        r["import_s"] = round(time.perf_counter() - t0, 1)
        r["import_events_per_s"] = round(n / r["import_s"])
        if args.make_only:
            print(orjson.dumps(r, option=orjson.OPT_INDENT_2).decode())
            return
    with Ledger(args.db) as ledger:
        r["events"] = ledger.head()[0]
        months = [
            str(m[0])
            for m in ledger.conn.execute(
                "SELECT DISTINCT substr(end_time, 1, 7) FROM legs ORDER BY 1"
            ).fetchall()
        ]
        r["legs"] = ledger.conn.execute("SELECT count(*) FROM legs").fetchone()[0]
        per_month = []
        for m in months:
            y, mo = int(m[:4]), int(m[5:7])
            nxt = f"{y + mo // 12}-{mo % 12 + 1:02d}-01"
            since = f"{m}-01"
            n_legs = ledger.conn.execute(
                "SELECT count(*) FROM legs WHERE end_time >= %s AND end_time < %s"
                if str(args.db).startswith("postgres")
                else "SELECT count(*) FROM legs WHERE end_time >= ? AND end_time < ?",
                [since, nxt],
            ).fetchone()[0]
            s = _secs(lambda since=since, nxt=nxt: delays(ledger, since=since, until=nxt))
            s_open = _secs(lambda since=since: delays(ledger, since=since))
            per_month.append({"month": m, "legs": n_legs, "delays_s": s, "delays_since_s": s_open})
        r["months"] = per_month
        r["delays_month_s"] = max(p["delays_s"] for p in per_month)
        busiest = max(per_month, key=lambda p: p["legs"])
        r["busiest_month"] = busiest["month"]
        r["delays_busiest_month_s"] = busiest["delays_s"]
        last = per_month[-1]
        r["delays_since_last_month_s"] = last["delays_since_s"]
        r["delays_all_s"] = _secs(lambda: delays(ledger))
        r["delays_by_month_all_s"] = _secs(lambda: delays(ledger, by="month"))
        r["delays_by_site_all_s"] = _secs(lambda: delays(ledger, by="site"))
        r["bottlenecks_all_s"] = _secs(lambda: bottlenecks(ledger))
        m = busiest["month"]
        y, mo = int(m[:4]), int(m[5:7])
        r["bottlenecks_busiest_month_s"] = _secs(
            lambda: bottlenecks(
                ledger, since=f"{m}-01", until=f"{y + mo // 12}-{mo % 12 + 1:02d}-01"
            )
        )
        lot = _export_lot(ledger)
        r["upstream_lot"] = lot
        r["upstream_ancestors"] = len(upstream(ledger, lot)["lots"])
        _timed(lambda: upstream(ledger, lot), 3)
        r["upstream_p50_ms"] = round(
            statistics.median(_timed(lambda: upstream(ledger, lot), 30)), 2
        )
    if not str(args.db).startswith("postgres"):
        r["db_bytes"] = os.path.getsize(args.db)
    r["machine"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    print(orjson.dumps(r, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
