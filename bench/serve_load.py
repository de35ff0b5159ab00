"""Load on ``lottrace serve`` over loopback (not a test): captures and queries from many clients.

    python bench/serve_load.py --events 1000000 --clients 16 --seconds 60 [--json]

One run, in a fresh folder:

1. generate a season of ``--events`` events and import it (the served ledger);
2. make ``--docs`` EPCIS documents of 1,000 new harvests each, and measure
   the baseline: ``lottrace epcis import`` of all of them into a copy of the
   ledger (events per second);
3. capture the same documents over HTTP, one after another, into another
   copy, with ``lottrace serve`` running on it (``capture_ratio``: its rate
   over the baseline's);
4. the load: ``--clients`` threads for ``--seconds`` on the first ledger,
   one in four capturing documents (fresh ones each time, enough for the
   whole run at the rate of step 3; ``captures_ran_out_after_s`` says if
   they did not last), the others asking for an export lot's ``upstream``,
   each pausing ``--think-ms`` (on average) between requests (0 by default:
   every client always has one in flight); every answer's status is
   counted, every latency kept, as the clients saw it (``upstream_p99_ms``)
   and as the server's log timed it (``upstream_server_p99_ms``: without the
   load generator's own queueing, which shares the machine);
5. afterwards the ledger must hold exactly the events the captures were
   answered for (``lost_events``: 0), ``verify`` must pass, and the peak
   memory (VmHWM) of the server and of the processes it started (its
   capture process) is read from /proc.

Prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from lottrace.epcis import export_document
from lottrace.events import parse_event
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger

OWNER = "BENCH"


def _lottrace(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lottrace", "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=True,
    )


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lottrace", "--db", str(db), "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start: {log.read_text()}")


def _documents(folder: Path, count: int, prefix: str) -> list[Path]:
    """``count`` EPCIS documents of 1,000 new harvests each, as lottrace exports them."""
    paths = []
    for d in range(count):
        with Ledger.create(folder / f"{prefix}{d}.db") as ledger:
            ledger.append(
                (
                    f"doc{d}:{i}",
                    parse_event(
                        {
                            "type": "harvest",
                            "time": "2025-05-03T08:00:00-05:00",
                            "site": "farm:BENCH",
                            "lot": f"{prefix}-{d}-{i}",
                            "kg": 100 + i % 50,
                            "producer": f"BP{i}",
                            "plot": {
                                "id": f"BPL{i}",
                                "geometry": {"type": "Point", "coordinates": [-78.8, -5.6]},
                            },
                        }
                    ),
                )
                for i in range(1000)
            )
            doc = export_document(ledger)
        path = folder / f"{prefix}{d}.jsonld"
        path.write_text(json.dumps(doc))
        paths.append(path)
        (folder / f"{prefix}{d}.db").unlink()
        for x in ("-wal", "-shm"):
            Path(f"{folder / f'{prefix}{d}.db'}{x}").unlink(missing_ok=True)
    return paths


def _copy(db: Path, to: Path) -> Path:
    with Ledger(db) as ledger:
        ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copyfile(db, to)
    shutil.copyfile(f"{db}.access.json", f"{to}.access.json")  # the same users
    return to


def _token(db: Path, name: str, role: str, owner: bool = False) -> str:
    extra = ["--owner"] if owner else []
    return _lottrace(
        db, "users", "add", name, "--org", OWNER, "--role", role, *extra
    ).stdout.strip()


def _rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (the server's capture process, its resource tracker)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _server_ms(log: Path, what: str) -> list[float]:
    """The server's own time for each request logged as ``what`` (its log says
    ``METHOD ROUTE STATUS 12.3 ms``): the latency without the load generator's."""
    return [
        float(line.rsplit(" ", 2)[-2])
        for line in log.read_text(errors="replace").splitlines()
        if f" {what} " in line and line.endswith(" ms")
    ]


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else 0.0


def run(
    events: int, clients: int, seconds: float, docs: int, folder: Path, think_ms: float = 0.0
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "events": events,
        "clients": clients,
        "seconds": seconds,
        "think_ms": think_ms,
    }
    season, db = folder / "season.jsonl", folder / "served.db"
    write_jsonl(season, events // 20 + 1, seed=0, max_events=events)
    _lottrace(db, "init")
    t0 = time.perf_counter()
    _lottrace(db, "import", str(season))
    r["import_s"] = round(time.perf_counter() - t0, 1)
    with Ledger(db) as ledger:
        lots = [
            s.event.subject
            for s in ledger.events_of_types(["export"])
            if s.event.subject and not s.void
        ][:200]
    token = _token(db, "bench", "admin", owner=True)

    # the baseline and the same documents over HTTP, each into its own copy
    fixed = _documents(folder, docs, "F")
    cli_db = _copy(db, folder / "cli.db")
    t0 = time.perf_counter()
    _lottrace(cli_db, "epcis", "import", *map(str, fixed))
    cli_rate = docs * 1000 / (time.perf_counter() - t0)
    http_db = _copy(db, folder / "http.db")
    proc, url = _serve(http_db, folder / "http.log")
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        ) as c:
            t0 = time.perf_counter()
            for path in fixed:
                resp = c.post("/capture", content=path.read_bytes())
                if resp.status_code != 202:
                    raise SystemExit(f"capture failed: {resp.status_code} {resp.text[:500]}")
            http_rate = docs * 1000 / (time.perf_counter() - t0)
    finally:
        proc.terminate()
        proc.wait()
    r["cli_import_events_per_s"] = round(cli_rate)
    r["http_capture_events_per_s"] = round(http_rate)
    r["capture_ratio"] = round(http_rate / cli_rate, 2)

    # the load: enough fresh documents for the capturing clients to keep capturing
    # for the whole run at the rate just measured (half again as many, to spare)
    capturing = len([k for k in range(clients) if k % 4 == 0])
    per_doc_s = 1000 / http_rate + think_ms / 1000
    fresh = _documents(folder, max(4, math.ceil(capturing * seconds / per_doc_s * 1.5)), "L")
    before = Ledger.reader(db)
    start_events = before.stats()["events"]
    before.close()
    proc, url = _serve(db, folder / "load.log")
    latencies: dict[str, list[float]] = {"capture": [], "upstream": []}
    statuses: dict[str, int] = {}
    captured = 0
    lock = threading.Lock()
    began = time.monotonic()
    stop = began + seconds
    queue = list(fresh)
    ran_out: list[float] = []

    def worker(k: int) -> None:
        nonlocal captured
        rng = random.Random(k)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600
        ) as c:
            while time.monotonic() < stop:
                capture = k % 4 == 0
                if capture:
                    with lock:
                        path = queue.pop() if queue else None
                        if path is None and not ran_out:
                            ran_out.append(time.monotonic() - began)
                    if path is None:
                        capture = False
                t0 = time.perf_counter()
                if capture and path is not None:
                    resp = c.post("/capture", content=path.read_bytes())
                    kind = "capture"
                else:
                    resp = c.get(f"/api/lots/{rng.choice(lots)}/upstream")
                    kind = "upstream"
                ms = (time.perf_counter() - t0) * 1000
                if think_ms:
                    time.sleep(think_ms / 1000 * rng.uniform(0.5, 1.5))
                with lock:
                    latencies[kind].append(ms)
                    key = f"{kind} {resp.status_code}"
                    statuses[key] = statuses.get(key, 0) + 1
                    if capture and resp.status_code == 202:
                        captured += resp.json()["report"]["added"]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss = _rss_peak_mb(proc.pid)
    helpers_rss = sum(_rss_peak_mb(k) for k in _children(proc.pid))
    proc.terminate()
    proc.wait()
    with Ledger.reader(db) as ledger:
        end_events = ledger.stats()["events"]
        ledger.verify()
    errors = sum(n for key, n in statuses.items() if not key.endswith((" 200", " 202")))
    r["statuses"] = statuses
    r["errors"] = errors
    r["captured_events"] = captured
    r["lost_events"] = captured - (end_events - start_events)
    r["upstream_requests"] = len(latencies["upstream"])
    r["upstream_p50_ms"] = (
        round(statistics.median(latencies["upstream"]), 1) if latencies["upstream"] else None
    )
    r["upstream_p99_ms"] = round(_quantile(latencies["upstream"], 0.99), 1)
    r["capture_p50_ms"] = (
        round(statistics.median(latencies["capture"]), 1) if latencies["capture"] else None
    )
    served = _server_ms(folder / "load.log", "GET /api/lots/{lot}/upstream 200")
    r["upstream_server_p50_ms"] = round(statistics.median(served), 1) if served else None
    r["upstream_server_p99_ms"] = round(_quantile(served, 0.99), 1) if served else None
    r["capture_documents"] = len(fresh)
    r["captures_ran_out_after_s"] = round(ran_out[0], 1) if ran_out else None
    r["server_peak_rss_mb"] = rss
    r["server_children_peak_rss_mb"] = round(helpers_rss, 1)  # the capture process and its kin
    r["cpu"] = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    r["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument(
        "--docs", type=int, default=5, help="1,000-event documents for the capture ratio"
    )
    ap.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="each client's pause between requests (0: every client always waiting on one)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lottrace-load-"))
    try:
        result = run(args.events, args.clients, args.seconds, args.docs, folder, args.think_ms)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for k, v in result.items():
        print(f"{k:28} {v}")


if __name__ == "__main__":
    main()
