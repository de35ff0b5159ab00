"""Server CPU per request (not a test): what one ``upstream`` costs ``lottrace serve``.

    python bench/serve_cpu.py --db LEDGER [--requests 800] [--clients 4] [--json]

Serves a copy of the ledger, asks once for the ``upstream`` of each of up to
200 export lots (warming the caches), then sends ``--requests`` more from
``--clients`` threads, and reads the server process's CPU time (user +
system, all its threads, from /proc) before and after: ``cpu_ms_per_request``.
CPU time counts only what the server does, so it moves much less than a
latency when other work shares the machine; compare two versions of the code
by running this from each tree (``PYTHONPATH=OTHER/trace``), alternating.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from lottrace.ledger import Ledger

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import _serve, _token


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(src: Path, requests: int, clients: int, folder: Path) -> dict[str, Any]:
    db = folder / "served.db"
    shutil.copy(src, db)
    token = _token(db, "bench", "admin", owner=True)
    with Ledger.reader(db) as ledger:
        lots = [
            s.event.subject
            for s in ledger.events_of_types(["export"])
            if s.event.subject and not s.void
        ][:200]
    proc, url = _serve(db, folder / "server.log")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            for lot in lots:
                c.get(f"/api/lots/{lot}/upstream").raise_for_status()

        def client(k: int) -> None:
            rng = random.Random(k)
            with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
                for _ in range(requests // clients):
                    c.get(f"/api/lots/{rng.choice(lots)}/upstream").raise_for_status()

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu1, t1 = _cpu_s(proc.pid), time.perf_counter()
    finally:
        proc.terminate()
        proc.wait()
    n = requests // clients * clients
    return {
        "requests": n,
        "clients": clients,
        "cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / n, 2),
        "wall_ms_per_request": round((t1 - t0) * 1000 / n, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", type=Path, required=True, help="a ledger file (it is copied)")
    ap.add_argument("--requests", type=int, default=800)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lottrace-cpu-"))
    try:
        result = run(args.db, args.requests, args.clients, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return
    for k, v in result.items():
        print(f"{k:22} {v}")


if __name__ == "__main__":
    main()
