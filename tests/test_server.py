"""``lottrace serve``: a real server (uvicorn on 127.0.0.1, a free port), talked to over HTTP.

The sample season is served; its owner is APROCASSI. Users of every role
of the owner, two buyers (the sample's two export buyers), and a gatherer
of another organisation with a site of its own. Each test says what a
person or a partner's system would do, and what they must (not) get.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from lottrace.demo import build_demo
from lottrace.ledger import Ledger

OWNER = "APROCASSI"
ELB = "Elbkaffee Rohkaffee-Import GmbH"  # bought MILL-25-0412-G1
FLANDRIA = "Flandria Green Coffee NV"  # bought EXP-25-CEC-01
OTHER = "Cooperativa Vecina"
OTHER_SITE = "farm:VECINA-01"
ELB_LOT = "MILL-25-0412-G1"
FLANDRIA_LOT = "EXP-25-CEC-01"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lottrace(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lottrace", "--db", str(db), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@dataclass
class Served:
    db: Path
    url: str
    tokens: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path
    clients: dict[str | None, httpx.Client]

    def client(self, who: str | None = None) -> httpx.Client:
        """One client per user, kept open for the module and closed with the server."""
        if who not in self.clients:
            headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
            self.clients[who] = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        return self.clients[who]


def start(db: Path, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with open(log, "ab") as out:  # the server writes to its own copy of the descriptor
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lottrace",
                "--db",
                str(db),
                "serve",
                "--port",
                str(port),
                *extra,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
    proc.kill()
    raise RuntimeError("the server did not start in 60 s")


USERS = {
    "field": (OWNER, "field"),
    "qc": (OWNER, "qc"),
    "analyst": (OWNER, "analyst"),
    "admin": (OWNER, "admin"),
    "buyer": (ELB, "buyer"),
    "buyer2": (FLANDRIA, "buyer"),
    "other_field": (OTHER, "field"),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("served")
    db = folder / "season.db"
    build_demo(db)
    tokens = {}
    for i, (name, (org, role)) in enumerate(USERS.items()):
        extra = ["--owner"] if i == 0 else []
        r = lottrace(db, "users", "add", name, "--org", org, "--role", role, *extra)
        assert r.returncode == 0, r.stderr
        tokens[name] = r.stdout.strip()
    assert lottrace(db, "users", "site", OTHER_SITE, "--org", OTHER).returncode == 0
    log = folder / "server.log"
    proc, url = start(db, log)
    served = Served(db, url, tokens, proc, log, {})
    yield served
    for client in served.clients.values():
        client.close()
    proc.terminate()
    proc.wait(timeout=30)


def events_count(db: Path) -> int:
    with Ledger.reader(db) as ledger:
        return int(ledger.stats()["events"])


def harvest(lot: str, site: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": "harvest",
        "time": "2025-05-03T08:00:00-05:00",
        "site": site,
        "lot": lot,
        "kg": 500,
        "producer": "P-TEST",
        "plot": {"id": "PL-T", "geometry": {"type": "Point", "coordinates": [-78.8, -5.6]}},
        **kw,
    }


def epcis_doc(events: list[dict[str, Any]]) -> dict[str, Any]:
    """An EPCIS document of lottrace events, made the way lottrace exports them."""
    import tempfile

    from lottrace.epcis import export_document
    from lottrace.events import parse_event

    with tempfile.TemporaryDirectory() as folder, Ledger.create(Path(folder) / "x.db") as ledger:
        ledger.append((f"x:{i}", parse_event(e)) for i, e in enumerate(events))
        return export_document(ledger)


# --------------------------------------------------------------------------- basics


def test_openapi_describes_every_route_and_the_bearer_scheme(served: Served) -> None:
    doc = served.client().get("/openapi.json").json()
    paths = set(doc["paths"])
    for p in (
        "/capture",
        "/capture/{captureID}",
        "/events",
        "/events/{eventID}",
        "/api/lots/{lot}",
        "/api/lots/{lot}/upstream",
        "/api/lots/{lot}/downstream",
        "/api/lots/{lot}/eudr",
        "/api/lots/{lot}/certify",
        "/api/lots/{lot}/timeline",
        "/api/lots/{lot}/passport",
        "/api/delays",
        "/api/bottlenecks",
        "/api/stuck",
        "/api/import",
        "/lot/{lot}",
        "/01/{gtin}/10/{lot}",
    ):
        assert p in paths, p
    assert "HTTPBearer" in json.dumps(doc["components"]["securitySchemes"])


def test_headers_epcis_versions_and_no_cors_by_default(served: Served) -> None:
    r = served.client("analyst").get("/api/delays", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert r.headers["GS1-EPCIS-Version"] == "2.0.0"
    assert r.headers["GS1-CBV-Version"] == "2.0.0"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "access-control-allow-origin" not in r.headers


def test_the_json_bodies_are_the_clis_json(served: Served) -> None:
    for path, args in (
        (f"/api/lots/{ELB_LOT}/upstream", ["upstream", ELB_LOT, "--json"]),
        (f"/api/lots/{ELB_LOT}", ["history", ELB_LOT, "--json"]),
        ("/api/bottlenecks?top=3", ["bottlenecks", "--top", "3", "--json"]),
        ("/api/delays?by=site", ["delays", "--by", "site", "--json"]),
    ):
        api = served.client("admin").get(path)
        assert api.status_code == 200, (path, api.text)
        cli = lottrace(served.db, *args)
        assert cli.returncode == 0, cli.stderr
        assert api.json() == json.loads(cli.stdout), path


# --------------------------------------------------------------------------- the authorization matrix

#: (method, path, body kind) of every endpoint; ``{own}`` is a lot the buyer may see.
ENDPOINTS = [
    ("GET", "/api/lots/{lot}", None),
    ("GET", "/api/lots/{lot}/upstream", None),
    ("GET", "/api/lots/{lot}/downstream", None),
    ("GET", "/api/lots/{lot}/timeline", None),
    ("GET", "/api/lots/{lot}/certify?scheme=organic", None),
    ("GET", "/api/lots/{lot}/passport", None),
    ("GET", "/api/lots/{lot}/eudr", None),
    ("GET", "/lot/{lot}", None),
    ("GET", "/api/delays", None),
    ("GET", "/api/bottlenecks", None),
    ("GET", "/api/stuck", None),
    ("GET", "/events?perPage=1", None),
    ("POST", "/events", "own-site event"),
    ("POST", "/events", "other-site event"),
    ("POST", "/capture", "own-site document"),
    ("POST", "/api/import", "own-site file"),
    # the web app's buyers' and analysts' pages (shells: no data) and the JSON they fetch
    ("GET", "/api/lots/{lot}/card", None),
    ("GET", "/api/find?q=HLXU", None),
    ("GET", "/api/dashboard", None),
    ("GET", "/api/dashboard/bottlenecks.csv", None),
    ("GET", "/find", None),
    ("GET", "/dashboard", None),
    ("GET", "/lots/{lot}", None),
]
#: Page shells: they carry no ledger data, so anyone gets them (their scripts fetch the API).
PAGES = ("/find", "/dashboard", "/lots/{lot}")


def _expected(who: str | None, method: str, path: str, body: str | None, lot: str) -> set[int]:
    """What the rules in docs/deploying.md allow: the status (or statuses) expected."""
    if path in PAGES:
        return {200}
    if who is None:
        return {401}
    org, role = USERS[who]
    owner = org == OWNER
    if method == "POST":
        if role not in ("field", "qc", "admin"):
            return {403}
        return {200, 201, 202} if body and body.startswith("own") else {403}
    if path.startswith(("/api/delays", "/api/bottlenecks", "/api/stuck", "/api/dashboard")):
        return {200} if owner and role in ("analyst", "admin", "qc") else {403}
    if path.startswith(("/events", "/api/find")):
        return {200}  # what is listed is cut to the lots the caller may see
    visible = (owner and role != "buyer") or (
        role == "buyer"
        and ((org == ELB and lot == ELB_LOT) or (org == FLANDRIA and lot == FLANDRIA_LOT))
    )
    if not visible:
        return {404}  # as for a lot that does not exist: no caller learns which lots exist
    if path.endswith("/eudr"):
        return {200, 422}  # the GeoJSON, or the problems that stop it
    return {200}


def _body(kind: str | None, who: str, n: int) -> tuple[dict[str, Any], Any]:
    if kind is None:
        return {}, None
    mine = OTHER_SITE if who == "other_field" else "farm:MATRIX"
    theirs = "farm:MATRIX" if who == "other_field" else OTHER_SITE
    site = mine if kind.startswith("own") else theirs
    event = harvest(f"MX-{who}-{n}", site)
    if "document" in kind:
        return {"content": json.dumps(epcis_doc([event]))}, None
    if "file" in kind:
        line = json.dumps(event) + "\n"
        return {"files": {"files": ("h.jsonl", line.encode(), "application/json")}}, None
    doc = epcis_doc([event])  # one event, with the context it needs, as GS1's capture allows
    return {
        "content": json.dumps({"@context": doc["@context"], **doc["epcisBody"]["eventList"][0]})
    }, None


@pytest.mark.parametrize("who", [None, *USERS])
def test_authorization_matrix(served: Served, who: str | None) -> None:
    seen = []
    n = 0
    client = served.client(who)
    for method, template, kind in ENDPOINTS:
        for lot in (ELB_LOT, FLANDRIA_LOT) if "{lot}" in template else (None,):
            path = template.replace("{lot}", lot or "")
            n += 1
            kw, _ = _body(kind, who or "field", n)
            before = events_count(served.db) if method == "POST" else 0
            r = client.request(method, path, **kw)
            expected = _expected(who, method, template, kind, lot or "")
            seen.append((method, path, kind, r.status_code))
            assert r.status_code in expected, (who, method, path, kind, r.status_code, r.text)
            if method == "POST" and r.status_code >= 400:
                assert events_count(served.db) == before, "a refused write wrote something"
            if r.status_code >= 400:
                assert r.json()["status"] == r.status_code
    assert len(seen) == 33


def test_a_buyer_sees_its_lot_and_its_upstream_only(served: Served) -> None:
    buyer = served.client("buyer")
    up = buyer.get(f"/api/lots/{ELB_LOT}/upstream").json()
    assert len(up["lots"]) > 1
    for row in up["lots"]:
        assert buyer.get(f"/api/lots/{row}").status_code == 200
    assert buyer.get(f"/api/lots/{FLANDRIA_LOT}").status_code == 404
    events = buyer.get("/events", params={"perPage": 1000}).json()
    listed = events["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    everything = served.client("admin").get("/events", params={"perPage": 1000}).json()
    all_events = everything["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert 0 < len(listed) < len(all_events)
    assert FLANDRIA_LOT not in json.dumps(listed)
    assert buyer.get("/api/lots/NO-SUCH-LOT").status_code == 404


# --------------------------------------------------------------------------- writing


def test_capture_is_all_or_nothing_and_twice_stores_nothing_twice(served: Served) -> None:
    doc = epcis_doc([harvest("CAP-1", "farm:CAP"), harvest("CAP-2", "farm:CAP")])
    field = served.client("field")
    before = events_count(served.db)
    r = field.post("/capture", content=json.dumps(doc))
    assert r.status_code == 202, r.text
    job = field.get(r.headers["Location"]).json()
    assert job["running"] is False and job["success"] is True
    assert events_count(served.db) == before + 2
    again = field.post("/capture", content=json.dumps(doc))
    assert again.status_code == 202
    assert again.json()["report"]["added"] == 0
    assert events_count(served.db) == before + 2
    # one bad event among good ones: nothing of the document is stored
    bad = epcis_doc([harvest("CAP-3", "farm:CAP"), harvest("CAP-4", "farm:CAP")])
    bad["epcisBody"]["eventList"][1]["eventTime"] = "not a time"
    r = field.post("/capture", content=json.dumps(bad))
    assert r.status_code == 400
    assert "eventList[1]" in r.json()["detail"]
    assert events_count(served.db) == before + 2
    assert served.client("buyer").get(r.headers.get("Location", "/capture/none")).status_code == 404


def test_the_token_is_the_actor_whatever_the_body_says(served: Served) -> None:
    event = harvest("ACT-1", "farm:ACT", actor="Somebody Else")
    r = served.client("qc").post("/capture", content=json.dumps(epcis_doc([event])))
    assert r.status_code == 202, r.text
    history = served.client("admin").get("/api/lots/ACT-1").json()
    assert history["events"][0]["actor"] == f"qc ({OWNER}, qc)"


def test_a_file_import_lists_every_bad_row_and_writes_nothing(served: Served) -> None:
    good = json.dumps(harvest("IMP-1", "farm:IMP"))
    bad1 = json.dumps(harvest("IMP-2", "farm:IMP", kg="lots"))
    bad2 = json.dumps({**harvest("IMP-3", "farm:IMP"), "time": "yesterday"})
    body = "\n".join([good, bad1, bad2]) + "\n"
    before = events_count(served.db)
    r = served.client("field").post(
        "/api/import", files={"files": ("season.jsonl", body.encode(), "application/json")}
    )
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert [p["where"] for p in problems] == ["season.jsonl:2", "season.jsonl:3"]
    assert {p["field"] for p in problems} == {"kg", "time"}
    assert events_count(served.db) == before
    ok = served.client("field").post(
        "/api/import", files={"files": ("season.jsonl", (good + "\n").encode(), "application/json")}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["added"] == 1


# --------------------------------------------------------------------------- EPCIS queries


def test_events_are_paged_with_a_next_page_token(served: Served) -> None:
    client = served.client("admin")
    whole = client.get("/events", params={"perPage": 1000}).json()
    every = [e["eventID"] for e in whole["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]
    got: list[str] = []
    url = "/events?perPage=7"
    while url:
        r = client.get(url)
        assert r.status_code == 200
        got += [
            e["eventID"] for e in r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        ]
        link = r.headers.get("Link")
        url = link[1 : link.index(">")] if link else ""
    assert got == every and len(every) > 7
    assert client.get("/events?nextPageToken=forged").status_code == 400


def test_events_filters(served: Served) -> None:
    client = served.client("admin")

    def ids(**params: Any) -> list[dict[str, Any]]:
        r = client.get("/events", params={"perPage": 1000, **params})
        assert r.status_code == 200, r.text
        return list(r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"])

    every = ids()
    assert {e["type"] for e in ids(eventType="TransformationEvent")} == {"TransformationEvent"}
    shipping = ids(EQ_bizStep="shipping")
    assert shipping and all(e["bizStep"].endswith("shipping") for e in shipping)
    lot_uri = f"https://lottrace.org/lot/{ELB_LOT}"
    mine = ids(MATCH_anyEPCClass=lot_uri)
    assert mine and all(lot_uri in json.dumps(e) for e in mine)
    first = every[0]
    assert [e["eventID"] for e in ids(EQ_eventID=first["eventID"])] == [first["eventID"]]
    late = ids(GE_eventTime="2025-08-01T00:00:00Z")
    assert late and len(late) < len(every)
    one = client.get("/events/" + quote(first["eventID"], safe=""))  # ni:///...?ver=CBV2.0
    assert one.status_code == 200 and one.json()["eventID"] == first["eventID"]
    assert client.get("/events/urn:uuid:nothing-like-it").status_code == 404
    assert client.get("/events", params={"GE_eventTime": "soon"}).status_code == 400


# --------------------------------------------------------------------------- the passport resolver


def test_a_passport_is_private_until_published(served: Served) -> None:
    anyone = served.client()
    assert anyone.get(f"/lot/{ELB_LOT}").status_code == 401
    r = served.client("buyer").get(f"/lot/{ELB_LOT}")
    assert r.status_code == 200 and "<html" in r.text and f"/lot/{ELB_LOT}" in r.text
    assert lottrace(served.db, "publish", ELB_LOT).returncode == 0
    r = anyone.get(f"/lot/{ELB_LOT}")
    assert r.status_code == 200 and ELB_LOT in r.text
    assert "style-src 'unsafe-inline'" in r.headers["Content-Security-Policy"]
    assert anyone.get(f"/01/07612345678900/10/{ELB_LOT}").status_code == 200
    assert anyone.get(f"/lot/{FLANDRIA_LOT}").status_code == 401
    assert lottrace(served.db, "publish", ELB_LOT, "--private").returncode == 0
    assert anyone.get(f"/lot/{ELB_LOT}").status_code == 401


# --------------------------------------------------------------------------- safe defaults


def test_tokens_are_stored_hashed_and_revoked_tokens_refused(served: Served) -> None:
    stored = Path(f"{served.db}.access.json").read_text()
    for token in served.tokens.values():
        assert token not in stored
    assert oct(Path(f"{served.db}.access.json").stat().st_mode)[-3:] == "600"
    r = lottrace(served.db, "users", "add", "temp", "--org", OWNER, "--role", "analyst")
    token = r.stdout.strip()
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/delays").status_code == 200
        assert lottrace(served.db, "users", "revoke", "temp").returncode == 0
        assert client.get("/api/delays").status_code == 401


def test_nothing_personal_or_secret_in_the_log(served: Served) -> None:
    served.client("buyer").get(f"/api/lots/{ELB_LOT}/upstream?secret=1")
    time.sleep(0.5)
    text = served.log.read_text()
    assert "/api/lots/{lot}/upstream" in text  # the route is logged
    for token in served.tokens.values():
        assert token not in text
    for word in (ELB_LOT, "secret", ELB, "buyer2", "Bearer"):
        assert word not in text


def test_an_oversized_body_is_refused_before_it_is_read(tmp_path: Path) -> None:
    db = tmp_path / "small.db"
    Ledger.create(db).close()
    token = lottrace(db, "users", "add", "f", "--org", OWNER, "--role", "field", "--owner").stdout
    proc, url = start(db, tmp_path / "log", "--max-body-mb", "1")
    try:
        headers = {"Authorization": f"Bearer {token.strip()}"}
        r = httpx.post(url + "/capture", content=b"x" * 2_000_001, headers=headers, timeout=30)
        assert r.status_code == 413
        assert events_count(db) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_server_stopped_by_sigterm_ends_its_capture_process_cleanly(tmp_path: Path) -> None:
    db = tmp_path / "stop.db"
    Ledger.create(db).close()
    log = tmp_path / "log"
    proc, _url = start(db, log)
    children = _children(proc.pid)
    assert children, "the capture process starts with the server"
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then raises the signal it caught again: -15
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    deadline = time.monotonic() + 30  # the resource tracker ends when it reads the end
    while time.monotonic() < deadline and [c for c in children if _alive(c)]:
        time.sleep(0.1)
    left = [Path(f"/proc/{c}/cmdline").read_bytes() for c in children if _alive(c)]
    assert not left, left
    text = log.read_text()  # after the children: the resource tracker warns as it ends
    assert "leaked semaphore" not in text and "Traceback" not in text, text


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in found]


# --------------------------------------------------------------------------- killed mid-capture


def test_a_server_killed_during_a_capture_leaves_the_document_whole_or_absent(
    tmp_path: Path,
) -> None:
    db = tmp_path / "kill.db"
    Ledger.create(db).close()
    token = lottrace(db, "users", "add", "f", "--org", OWNER, "--role", "field", "--owner").stdout
    headers = {"Authorization": f"Bearer {token.strip()}"}
    events = [harvest(f"K-{i}", "farm:K", producer=f"P{i}") for i in range(3000)]
    body = json.dumps(epcis_doc(events)).encode()
    outcomes = []
    for delay in (0.2, 0.6, 1.2):
        proc, url = start(db, tmp_path / "log")
        workers = _capture_processes(proc.pid)
        assert workers, "the capture process starts with the server"
        try:
            with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
                import threading

                threading.Timer(delay, lambda p=proc: os.kill(p.pid, signal.SIGKILL)).start()
                with contextlib.suppress(httpx.TransportError):
                    client.post("/capture", content=body)
        finally:
            proc.wait(timeout=30)
        # the killed server's capture process ends too: none is left behind
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(Path(f"/proc/{w}/cmdline").exists() for w in workers), workers
        n = events_count(db)
        assert n in (0, 3000), n
        outcomes.append(n)
        with Ledger.reader(db) as ledger:
            ledger.verify()
    proc, url = start(db, tmp_path / "log")  # the client's retry
    try:
        r = httpx.post(url + "/capture", content=body, headers=headers, timeout=300)
        assert r.status_code == 202, r.text
        assert events_count(db) == 3000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _capture_processes(server: int) -> list[int]:
    """The server's capture process(es): its children started by multiprocessing's spawn."""
    children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
    return [
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_captures_run_in_a_process_of_their_own_and_its_death_loses_nothing(
    tmp_path: Path,
) -> None:
    """A capture is parsed and appended outside the serving process (queries are not
    stalled behind it); if that process is killed mid-batch the capture is answered
    503, the log is before or after the batch, and the retry stores it once."""
    import threading

    db = tmp_path / "worker.db"
    Ledger.create(db).close()
    token = lottrace(db, "users", "add", "f", "--org", OWNER, "--role", "field", "--owner").stdout
    headers = {"Authorization": f"Bearer {token.strip()}"}
    proc, url = start(db, tmp_path / "log")
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=300) as client:
            small = json.dumps(epcis_doc([harvest("W-0", "farm:W")]))
            assert client.post("/capture", content=small).status_code == 202
            workers = _capture_processes(proc.pid)
            assert len(workers) == 1, workers  # the capture ran in its own process
            events = [harvest(f"W-{i}", "farm:W", producer=f"P{i}") for i in range(1, 3001)]
            body = json.dumps(epcis_doc(events)).encode()
            answers: list[httpx.Response] = []
            sender = threading.Thread(
                target=lambda: answers.append(client.post("/capture", content=body))
            )
            sender.start()
            time.sleep(0.5)
            os.kill(workers[0], signal.SIGKILL)
            sender.join()
            n = events_count(db)
            assert n in (1, 3001), n
            if n == 1:  # killed before its commit: the caller is told to send again
                assert answers[0].status_code == 503, answers[0].text
                assert "send the document again" in answers[0].json()["detail"]
            with Ledger.reader(db) as ledger:
                ledger.verify()
            retry = client.post("/capture", content=body)  # a new capture process
            assert retry.status_code == 202, retry.text
            assert events_count(db) == 3001
            assert _capture_processes(proc.pid) != workers
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_partners_event_is_found_by_its_own_event_id(served: Served) -> None:
    """A partner's eventID (urn:uuid) survives capture, and GET /events/{eventID} finds it."""
    eid = "urn:uuid:3f1c2b9e-5d7a-4c1e-9b2a-0c8d7e6f5a41"
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-06-01T10:05:00Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventID": eid,
                    "eventTime": "2025-06-01T10:00:00Z",
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"],
                    "action": "OBSERVE",
                    "bizStep": "inspecting",
                    "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
                }
            ]
        },
    }
    r = served.client("qc").post("/capture", content=json.dumps(doc))
    assert r.status_code == 202, r.text
    found = served.client("admin").get("/events/" + quote(eid, safe=""))
    assert found.status_code == 200, found.text
    assert found.json()["eventID"] == eid
    listed = served.client("admin").get("/events", params={"EQ_eventID": eid}).json()
    assert [
        e["eventID"] for e in listed["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    ] == [eid]
    # a buyer sees no such event: it touches none of its lots
    assert served.client("buyer").get("/events/" + quote(eid, safe="")).status_code == 404


def test_the_server_on_a_postgresql_ledger(pg_uri: str, tmp_path: Path) -> None:
    """The same server on the PostgreSQL backend: users from LOTTRACE_ACCESS, capture, query."""
    access = tmp_path / "access.json"
    env = {**os.environ, "LOTTRACE_ACCESS": str(access)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lottrace", "--db", pg_uri, *args],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )

    assert run("init").returncode == 0
    no_file = subprocess.run(
        [sys.executable, "-m", "lottrace", "--db", pg_uri, "users", "list"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "LOTTRACE_ACCESS"},
    )
    assert no_file.returncode == 1 and "LOTTRACE_ACCESS" in no_file.stderr
    token = run("users", "add", "f", "--org", OWNER, "--role", "field", "--owner").stdout.strip()
    port = _free_port()
    with open(tmp_path / "log", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lottrace", "--db", pg_uri, "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        doc = epcis_doc([harvest("PG-1", "farm:PG"), harvest("PG-2", "farm:PG")])
        r = httpx.post(url + "/capture", content=json.dumps(doc), headers=headers, timeout=60)
        assert r.status_code == 202, r.text
        assert r.json()["report"]["added"] == 2
        lot = httpx.get(url + "/api/lots/PG-1", headers=headers, timeout=60)
        assert lot.status_code == 200 and lot.json()["events"][0]["actor"] == f"f ({OWNER}, field)"
        assert "password" not in (tmp_path / "log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with Ledger.reader(pg_uri) as ledger:
        assert ledger.verify().events == 2
