"""How the server reads under load: answers rendered off the event loop, kept read
connections that still see every commit, captures at a lower CPU priority.

These are the changes that took ``upstream`` from 12-13 to 6-8.5 ms of server CPU
per request at a million events, and its p99 under load from 266 to 42 ms
(bench/serve_cpu.py, bench/serve_load.py, docs/performance.md); the tests say
what each must keep true, not how fast it is.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from lottrace.demo import build_demo
from lottrace.errors import UnknownLot
from lottrace.events import parse_event
from lottrace.ledger import Ledger
from lottrace.server import CAPTURE_NICE, create_app
from lottrace.web.deps import Readers
from test_server import OWNER, _capture_processes, epcis_doc, harvest, lottrace, start


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("reading") / "season.db"
    build_demo(db)
    return db


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every route, those of included routers too (FastAPI keeps those in a branch)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        inner = getattr(getattr(r, "original_router", None), "routes", None)
        yield from _api_routes(inner or getattr(r, "routes", None) or [])


def test_every_plain_json_route_renders_its_answer_in_its_worker_thread(demo: Path) -> None:
    """A plain endpoint's dict becomes bytes where it was made, not on the event loop
    (FastAPI would serialize it there, holding up every other request)."""
    app = create_app(demo)
    plain = [
        r
        for r in _api_routes(app.routes)
        if isinstance(r, APIRoute)
        and not asyncio.iscoroutinefunction(r.dependant.call)
        and issubclass(getattr(r.response_class, "value", r.response_class), JSONResponse)
    ]
    assert len(plain) >= 10  # the server's and the web app's JSON routes
    paths = {r.path for r in plain}
    assert {"/api/lots/{lot:lot}/upstream", "/api/delays", "/api/me"} <= paths
    unwrapped = sorted(r.path for r in plain if not getattr(r.endpoint, "_answered_here", False))
    assert unwrapped == []


def test_the_openapi_document_still_describes_each_answer(demo: Path) -> None:
    """The wrapping keeps each endpoint's signature: parameters and tags as before."""
    doc = create_app(demo).openapi()
    upstream = doc["paths"]["/api/lots/{lot}/upstream"]["get"]
    assert [p["name"] for p in upstream["parameters"]] == ["lot"]
    assert upstream["tags"] == ["lots"]
    delays = doc["paths"]["/api/delays"]["get"]
    assert {"since", "until"} <= {p["name"] for p in delays["parameters"]}


def _head_of(readers: Readers) -> tuple[int, str]:
    with readers.open() as ledger:
        return ledger.head()


def test_a_kept_read_connection_sees_every_commit(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    Ledger.create(db).close()
    readers = Readers(db, [])
    with readers.open() as first:
        assert first.head()[0] == 0
    with readers.open() as again:
        assert again is first  # kept for this thread
    with Ledger(db) as writer:
        writer.append([("t:1", parse_event(harvest("K-1", "farm:K")))])
    assert _head_of(readers)[0] == 1
    seen: list[int] = []
    other = threading.Thread(target=lambda: seen.append(_head_of(readers)[0]))
    other.start()
    other.join()
    assert seen == [1]


def test_a_replaced_ledger_file_is_opened_again(tmp_path: Path) -> None:
    """A restore renames a copy over the served file: the next read is of the copy."""
    db, restored = tmp_path / "live.db", tmp_path / "backup.db"
    Ledger.create(db).close()
    with Ledger.create(restored) as ledger:
        ledger.append([("t:1", parse_event(harvest("R-1", "farm:R")))])
        ledger_id = ledger.store.ledger_id
    readers = Readers(db, [])
    assert _head_of(readers)[0] == 0
    os.replace(restored, db)
    with readers.open() as ledger:
        assert ledger.head()[0] == 1
        assert ledger.store.ledger_id == ledger_id


def test_a_failed_read_does_not_keep_its_connection(tmp_path: Path) -> None:
    db = tmp_path / "failed.db"
    Ledger.create(db).close()
    readers = Readers(db, [])
    with pytest.raises(UnknownLot), readers.open() as ledger:
        failed = ledger
        ledger.require_lot("NOPE")
    with readers.open() as ledger:
        assert ledger is not failed


def test_postgresql_reads_are_not_kept(pg_uri: str) -> None:
    Ledger.create(pg_uri).close()
    readers = Readers(pg_uri, [])
    with readers.open() as a:
        pass
    with readers.open() as b:
        assert b is not a


def test_captures_run_at_a_lower_cpu_priority_than_queries(tmp_path: Path) -> None:
    db = tmp_path / "nice.db"
    Ledger.create(db).close()
    token = lottrace(db, "users", "add", "f", "--org", OWNER, "--role", "field", "--owner").stdout
    proc, url = start(db, tmp_path / "log")
    try:
        headers = {"Authorization": f"Bearer {token.strip()}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            doc = json.dumps(epcis_doc([harvest("N-1", "farm:N")]))
            assert client.post("/capture", content=doc).status_code == 202

        (worker,) = _capture_processes(proc.pid)

        def nice(pid: int) -> int:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

        assert nice(worker) == min(19, nice(proc.pid) + CAPTURE_NICE)  # 19: the lowest
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_started_server_freezes_what_it_started_with(demo: Path) -> None:
    """The collector's full passes stop walking the server's startup objects (FastAPI,
    pydantic, lottrace's modules): those passes held every request for 45-95 ms."""
    import gc

    app = create_app(demo)

    async def started() -> int:
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    gc.unfreeze()
    try:
        assert asyncio.run(started()) > 10_000
    finally:
        gc.unfreeze()
