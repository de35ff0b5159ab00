"""Server time of the web app's pages and of the API calls they make (not a test).

    python bench/web_load.py --events 100000 --repeats 50 --after-append 10 [--json] [--keep DIR]

One run, in a fresh folder:

1. generate a season of ``--events`` events and import it; then give the
   non-farm sites master data (names and coordinates: each gatherer at the
   mean of its farms' plots, each HQ at the mean of its gatherers, each mill
   at the mean of its HQs, the port at Paita), as partners would, so the
   dashboard's map has something to draw; users: the owner's analyst, the
   buyer of the most exports (``buyer``), a field user;
2. start ``lottrace serve`` and, for each page (``/find``, ``/lots/{lot}``,
   ``/dashboard``, ``/field``), fetch what a browser fetches on its first load: the
   HTML, the CSS and scripts it links, ``/api/me`` and the page's data
   (``first_load_bytes``: the bodies, uncompressed);
3. time each request the pages make: the first after the server started
   (``cold_ms``: nothing kept yet), then ``--repeats`` more (``p50_ms``,
   ``p95_ms``, ``max_ms``). Server time is what the server logged for the
   request (its middleware: from the request reaching the app to the
   response leaving it), read from its log; ``client_p50_ms`` is the round
   trip over loopback, for comparison. The very first ``/api/dashboard``
   (which reads every leg of the ledger) is ``dashboard_first_request_ms``;
   each page's data call on its first load, ``first_request_ms``; so a
   ``cold_ms`` is the first request *after* those (for a dashboard filter:
   a new filter over the legs already kept). ``/field`` is timed as the
   field form calls it: ``/api/me`` (its sites list), the lots with kilos
   left (``/api/field/lots?type=gatherer_qc``) and the dry-run check of a
   harvest (``POST /api/field/check``, which writes nothing);
3b. *first after an append*: ``--after-append`` times, a field user logs a
   harvest (``POST /api/field/events``: the head moves, every kept answer is
   stale), then the request is made once: its server time's p50, p95 and max
   (``after_append_p50_ms`` ...). This is what the first user to open a page
   after a checkpoint was logged waits for;
4. the baseline, in the same run: the server's own, uncached
   ``/api/delays?by=site``, ``/api/bottlenecks`` and ``/api/stuck``
   (``baseline``), and the dashboard's first answer after one event is
   appended (``after_append_ms``: what an analyst waits for when the ledger
   has just changed, every kept answer being stale). ``ratio_p95_to_baseline``
   is the dashboard's warm p95 over the slowest baseline call's p50.

Prints a table, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from lottrace import __version__
from lottrace.dashboard import all_legs, site_positions
from lottrace.events import parse_event
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger

OWNER = "BENCH"
PAITA = (-5.085, -81.114)
_LOGGED = re.compile(r" (GET|POST) (\S+) (\d{3}) ([\d.]+) ms$")


def _lottrace(db: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "lottrace", "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


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


def _master_data(db: Path) -> int:
    """Names and coordinates for the sites that have none (see the module docstring)."""
    with Ledger.reader(db) as ledger:
        where = site_positions(ledger)
        legs = all_legs(ledger)
    feeds: dict[str, set[str]] = {}
    for g in legs:
        if g.from_site != g.to_site:
            feeds.setdefault(g.to_site, set()).add(g.from_site)
    placed = {s: (lon, lat) for s, (lon, lat, _) in where.items()}
    for kind in ("gatherer:", "hq:", "mill:"):
        for site, sources in sorted(feeds.items()):
            if site.startswith(kind) and site not in placed:
                pts = [placed[s] for s in sources if s in placed]
                if pts:
                    lon = sum(p[0] for p in pts) / len(pts) + 0.01
                    lat = sum(p[1] for p in pts) / len(pts) + 0.01
                    placed[site] = (lon, lat)
    for site in feeds:
        if site.startswith("port:"):
            placed.setdefault(site, (PAITA[1], PAITA[0]))
    events = []
    for i, (site, (lon, lat)) in enumerate(sorted(placed.items())):
        if site.startswith("farm:") or site in where:
            continue
        events.append(
            (
                f"md:{i}",
                parse_event(
                    {
                        "type": "master_data",
                        "time": "2020-01-01T00:00:00Z",
                        "vocabulary": "urn:epcglobal:epcis:vtype:BusinessLocation",
                        "element": {
                            "id": f"https://lottrace.org/site/{site}",
                            "attributes": [
                                {"id": "urn:epcglobal:cbv:mda#name", "attribute": site},
                                {"id": "urn:epcglobal:cbv:mda#latitude", "attribute": lat},
                                {"id": "urn:epcglobal:cbv:mda#longitude", "attribute": lon},
                            ],
                        },
                    }
                ),
            )
        )
    with Ledger(db) as ledger:
        ledger.append(events)
    return len(events)


def _quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else 0.0


class _Log:
    """The server's log, read from where it was last read: one line per request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def times(self) -> list[tuple[str, int, float]]:
        text = self.path.read_text(errors="replace")
        new, self.offset = text[self.offset :], len(text)
        out = []
        for line in new.splitlines():
            m = _LOGGED.search(line)
            if m:
                out.append((m.group(2), int(m.group(3)), float(m.group(4))))
        return out


#: A request: a path to GET, or a path and the JSON to POST to it.
Call = str | tuple[str, dict[str, Any]]


def _ask(client: httpx.Client, call: Call) -> httpx.Response:
    if isinstance(call, str):
        return client.get(call)
    return client.post(call[0], json=call[1])


def _timed(client: httpx.Client, log: _Log, call: Call, repeats: int) -> dict[str, Any]:
    """The first request's server time, then ``repeats`` more: p50, p95, max."""
    path = call if isinstance(call, str) else "POST " + call[0]
    log.times()
    rounds: list[float] = []
    sizes = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        r = _ask(client, call)
        rounds.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{path}: {r.status_code} {r.text[:300]}")
        sizes.append(len(r.content))
    time.sleep(0.2)  # the last line reaches the log
    logged = [ms for _route, _status, ms in log.times()]
    if len(logged) != repeats + 1:
        raise SystemExit(f"{path}: {len(logged)} log lines for {repeats + 1} requests")
    warm = logged[1:]
    return {
        "path": path,
        "bytes": sizes[0],
        "cold_ms": round(logged[0], 1),
        "p50_ms": round(_quantile(warm, 0.5), 1),
        "p95_ms": round(_quantile(warm, 0.95), 1),
        "max_ms": round(max(warm), 1),
        "client_p50_ms": round(statistics.median(rounds[1:]), 1),
    }


class _Appender:
    """Logs a new harvest as the field user (``POST /api/field/events``): the head moves."""

    def __init__(self, client: httpx.Client, site: str) -> None:
        self.client, self.site, self.n = client, site, 0

    def __call__(self) -> None:
        self.n += 1
        form = _harvest_form(f"BENCH-NEW-{self.n}", self.site)
        r = self.client.post("/api/field/events", json=form)
        if r.status_code != 201:
            raise SystemExit(f"append failed: {r.status_code} {r.text[:300]}")


def _harvest_form(lot: str, site: str) -> dict[str, Any]:
    return {
        "type": "cosecha",
        "time": "2025-11-02T08:00:00-05:00",
        "site": site,
        "lot": lot,
        "kg": "50,5",
        "producer": "BENCH-P",
        "plot.id": "BP",
    }


def _after_append(
    client: httpx.Client, log: _Log, call: Call, times: int, append: _Appender
) -> dict[str, Any]:
    """``times`` times: an append, then ``call`` once; its server times' p50, p95, max."""
    logged = []
    for _ in range(times):
        append()
        time.sleep(0.05)
        log.times()
        r = _ask(client, call)
        if r.status_code != 200:
            raise SystemExit(f"{call}: {r.status_code} {r.text[:300]}")
        time.sleep(0.2)
        found = log.times()
        if len(found) != 1:
            raise SystemExit(f"{call}: {len(found)} log lines for one request")
        logged.append(found[0][2])
    return {
        "after_append_p50_ms": round(_quantile(logged, 0.5), 1),
        "after_append_p95_ms": round(_quantile(logged, 0.95), 1),
        "after_append_max_ms": round(max(logged), 1),
    }


def _first_load(
    client: httpx.Client, log: _Log, page: str, data: list[str]
) -> tuple[int, dict[str, float]]:
    """The bytes a browser fetches on a page's first load (HTML, linked CSS and JS, data),
    and the server time of its data's first request (nothing kept for it yet)."""
    html = client.get(page, headers={"Accept": "text/html"}).text
    assets = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    total = len(html.encode())
    for path in [*assets, "/api/me"]:
        total += len(client.get(path).content)
    first = {}
    for path in data:
        log.times()
        total += len(client.get(path).content)
        time.sleep(0.2)
        first[path] = round(log.times()[-1][2], 1)
    return total, first


def run(events: int, repeats: int, folder: Path, after_append: int = 10) -> dict[str, Any]:
    r: dict[str, Any] = {
        "version": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
        "nice": os.nice(0),
        "load_avg_1m_start": os.getloadavg()[0],
        "events": events,
        "repeats": repeats,
        "after_append_times": after_append,
    }
    season, db = folder / "season.jsonl", folder / "served.db"
    write_jsonl(season, events // 20 + 1, seed=0, max_events=events)
    _lottrace(db, "init")
    t0 = time.perf_counter()
    _lottrace(db, "import", str(season))
    r["import_s"] = round(time.perf_counter() - t0, 1)
    r["master_data_sites"] = _master_data(db)
    with Ledger.reader(db) as ledger:
        exports = [
            (s.event.subject, s.event.field("buyer"), s.event.field("container"))
            for s in ledger.events_of_types(["export"])
            if s.event.subject and not s.void
        ]
        r["ledger_events"] = ledger.stats()["events"]
        producer = next(
            s.event.field("producer") for s in ledger.events_of_types(["harvest"]) if not s.void
        )
    buyer_org = Counter(b for _, b, _ in exports).most_common(1)[0][0]
    lot, _, container = next(x for x in exports if x[1] == buyer_org)
    analyst = _lottrace(db, "users", "add", "a", "--org", OWNER, "--role", "analyst", "--owner")
    buyer = _lottrace(db, "users", "add", "b", "--org", buyer_org, "--role", "buyer")
    field = _lottrace(db, "users", "add", "f", "--org", OWNER, "--role", "field")
    r["buyer_lots"] = sum(1 for _, b, _ in exports if b == buyer_org)

    log_path = folder / "server.log"
    proc, url = _serve(db, log_path)
    log = _Log(log_path)
    calls: dict[str, list[dict[str, Any]]] = {}
    try:
        as_analyst = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {analyst.strip()}"}, timeout=600
        )
        as_buyer = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {buyer.strip()}"}, timeout=600
        )
        as_field = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {field.strip()}"}, timeout=600
        )
        with as_analyst, as_buyer, as_field:
            log.times()
            dash = as_analyst.get("/api/dashboard").json()  # the filters' choices
            time.sleep(0.2)
            r["dashboard_first_request_ms"] = round(log.times()[-1][2], 1)
            coop = dash["coops"][0]["site"]
            route = dash["routes"][0]
            season_year = dash["seasons"][-1]
            farms = [s for s in as_field.get("/api/me").json()["sites"] if s.startswith("farm:")]
            if not farms:
                raise SystemExit("the field user writes at no farm")
            check = _harvest_form("BENCH-CHECK-1", farms[0])
            plan: dict[str, tuple[httpx.Client, list[Call]]] = {
                "/find": (
                    as_buyer,
                    [f"/api/find?q={container}", f"/api/find?q={producer}", f"/api/find?q={lot}"],
                ),
                "/lots/{lot}": (as_buyer, [f"/api/lots/{lot}/card"]),
                "/dashboard": (
                    as_analyst,
                    [
                        "/api/dashboard",
                        f"/api/dashboard?coop={coop}",
                        f"/api/dashboard?route={route['from_site']}>{route['to_site']}",
                        f"/api/dashboard?season={season_year}&since={season_year}-06-01"
                        f"&until={season_year}-08-01",
                        "/api/dashboard/bottlenecks.csv",
                        "/api/dashboard/map.csv",
                    ],
                ),
                "/field": (
                    as_field,
                    ["/api/field/lots?type=gatherer_qc", ("/api/field/check", check)],
                ),
            }
            pages: dict[str, Any] = {}
            for page, (client, paths) in plan.items():
                shown = page.replace("{lot}", lot)
                size, first = _first_load(client, log, shown, [str(paths[0])])
                pages[page] = {
                    "first_load_bytes": size,
                    "first_request_ms": first,
                    "html": _timed(client, log, shown, repeats),
                    "me": _timed(client, log, "/api/me", repeats),
                }
                calls[page] = [_timed(client, log, p, repeats) for p in paths]
                pages[page]["api"] = calls[page]
            r["pages"] = pages
            baseline = [
                _timed(as_analyst, log, p, max(5, repeats // 10))
                for p in ("/api/delays?by=site", "/api/bottlenecks", "/api/stuck")
            ]
            r["baseline"] = baseline
            # one append makes every kept answer stale: each request is then made again
            append = _Appender(as_field, farms[0])
            for page, (client, paths) in plan.items():
                shown = page.replace("{lot}", lot)
                timed = [pages[page]["html"], pages[page]["me"], *pages[page]["api"]]
                for c, call in zip(timed, [shown, "/api/me", *paths], strict=True):
                    c.update(_after_append(client, log, call, after_append, append))
            r["after_append_ms"] = pages["/dashboard"]["api"][0]["after_append_p50_ms"]
    finally:
        proc.terminate()
        proc.wait()
    r["load_avg_1m_end"] = os.getloadavg()[0]
    every = [c for page in r["pages"].values() for c in [page["html"], page["me"], *page["api"]]]
    r["worst_p95_ms"] = max(c["p95_ms"] for c in every)
    r["worst_p95_path"] = max(every, key=lambda c: c["p95_ms"])["path"]
    slowest = max(b["p50_ms"] for b in r["baseline"])
    dash_p95 = r["pages"]["/dashboard"]["api"][0]["p95_ms"]
    r["ratio_p95_to_baseline"] = round(dash_p95 / slowest, 3) if slowest else None
    r["worst_after_append_p95_ms"] = max(c["after_append_p95_ms"] for c in every)
    r["worst_after_append_path"] = max(every, key=lambda c: c["after_append_p95_ms"])["path"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument(
        "--after-append", type=int, default=10, help="appends, each then one request per call"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="lottrace-web-load-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        r = run(args.events, args.repeats, folder, args.after_append)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(r, indent=1))
        return
    print(
        f"{r['ledger_events']:,} events, {args.repeats} repeats, {args.after_append} appends, "
        f"nice {r['nice']}; server time in ms (append: first request after an append)"
    )
    print(
        f"{'path':56} {'cold':>7} {'p50':>6} {'p95':>6} {'max':>6} "
        f"{'app50':>7} {'app95':>7} {'bytes':>9}"
    )
    for page, found in r["pages"].items():
        print(f"{page}: first load {found['first_load_bytes']:,} bytes")
        for c in [found["html"], found["me"], *found["api"]]:
            print(
                f"  {c['path'][:54]:54} {c['cold_ms']:7.1f} {c['p50_ms']:6.1f} "
                f"{c['p95_ms']:6.1f} {c['max_ms']:6.1f} {c['after_append_p50_ms']:7.1f} "
                f"{c['after_append_p95_ms']:7.1f} {c['bytes']:9,}"
            )
    print("baseline (uncached server routes):")
    for c in r["baseline"]:
        print(f"  {c['path'][:58]:58} {c['cold_ms']:8.1f} {c['p50_ms']:7.1f} {c['p95_ms']:7.1f}")
    print(f"worst p95: {r['worst_p95_ms']} ms ({r['worst_p95_path']})")
    print(
        f"worst p95 after an append: {r['worst_after_append_p95_ms']} ms "
        f"({r['worst_after_append_path']})"
    )


if __name__ == "__main__":
    main()
