"""The server on a PostgreSQL ledger holds a pool of connections: many concurrent requests
use at most the pool's size of them, and shutting the server down closes them all.

Connections are counted by PostgreSQL itself (``pg_stat_activity``), by an
``application_name`` only this test's server uses.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.demo import sample_files
from lottrace.server import create_app

OWNER = "APROCASSI"


def _count(base: str, app_name: str) -> int:
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [app_name]
        ).fetchone()
    return int(row[0]) if row else 0


def test_concurrent_requests_share_the_pool_and_shutdown_closes_it(
    pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import pg_base_uri

    monkeypatch.setenv("LOTTRACE_ACCESS", str(tmp_path / "access.json"))
    app_name = f"lottrace_pool_{uuid.uuid4().hex[:8]}"
    uri = f"{pg_uri}&application_name={app_name}"
    runner = CliRunner()
    for args in (["init"], ["import", *map(str, sample_files())]):
        r = runner.invoke(cli, ["--db", uri, *args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
    r = runner.invoke(
        cli, ["--db", uri, "users", "add", "a", "--org", OWNER, "--role", "admin", "--owner"]
    )
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    base = pg_base_uri()
    assert _count(base, app_name) == 0

    import lottrace.storage

    made: list[object] = []  # the pools the app opens, held so only closing them closes them
    opened = lottrace.storage.open_pool

    def open_pool(*args: object, **kw: object) -> object:
        made.append(opened(*args, **kw))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(lottrace.storage, "open_pool", open_pool)
    size = 3
    seen: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(_count(base, app_name))

    paths = ["/api/lots/EXP-25-APR-02/upstream", "/api/delays", "/events", "/api/stuck"]
    headers = {"Authorization": f"Bearer {token}"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # In this process (a thread), so that after its shutdown the test can see that the
    # server closed its connections itself, not that its process died.
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(uri, pool_size=size), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    running = threading.Thread(target=server.run)
    running.start()
    try:
        for _ in range(600):
            if server.started or not running.is_alive():
                break
            time.sleep(0.05)
        assert server.started
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60)
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            with ThreadPoolExecutor(max_workers=16) as workers:
                answers = list(workers.map(lambda i: client.get(paths[i % len(paths)]), range(96)))
        finally:
            stop.set()
            sampler.join()
            client.close()
        assert [a.status_code for a in answers] == [200] * 96, answers[0].text
        assert max(seen) >= 1  # the counting sees the server's connections ...
        assert max(seen) <= size, max(seen)  # ... and never more than the pool holds
        assert 1 <= _count(base, app_name) <= size  # kept open between requests
    finally:
        server.should_exit = True
        running.join(timeout=60)
    assert not running.is_alive()
    assert len(made) == 1
    assert _count(base, app_name) == 0  # the lifespan's end closed the pool
