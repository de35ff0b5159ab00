"""The web app's browser tests: a real ``lottrace serve`` (uvicorn on 127.0.0.1, a free port)
over the sample season, and Debian's Chromium driven by Playwright at 390x844 and 1280x800.

Fixtures:

- ``web``: the served ledger (session-wide): ``web.url``, ``web.db``, ``web.tokens[who]``
  for the users in :data:`USERS` (the owner APROCASSI's field, qc, analyst and admin;
  the buyers of the sample's two exports; a field user of another organisation with a
  site of its own, :data:`OTHER_SITE`); ``web.api(who)`` an httpx client with the token.
- ``browser``: one Chromium for the session.
- ``size``: ``(390, 844)`` or ``(1280, 800)``; a test taking ``page`` runs at both.
- ``context`` / ``page``: a fresh browser context (no cache, no storage) at ``size``.
- ``sign_in(page, who)``: signs in through ``/login`` as a person would.
- ``shot(page, name)``: ``docs/screenshots/<name>-<390|1280>.png`` when
  ``LOTTRACE_SCREENSHOTS=1``.
- ``count_events(db)``: how many events the ledger holds (the library, not a page).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from lottrace.demo import build_demo

from .webapp import (
    CHROMIUM,
    CHROMIUM_ARGS,
    OTHER,
    OTHER_SITE,
    SCREENSHOTS,
    SIZES,
    USERS,
    Web,
    _free_port,
    _lottrace,
)


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    folder = tmp_path_factory.mktemp("web")
    db = folder / "season.db"
    build_demo(db)
    tokens = {}
    for i, (name, (org, role)) in enumerate(USERS.items()):
        extra = ["--owner"] if i == 0 else []
        r = _lottrace(db, "users", "add", name, "--org", org, "--role", role, *extra)
        assert r.returncode == 0, r.stderr
        tokens[name] = r.stdout.strip()
    assert _lottrace(db, "users", "site", OTHER_SITE, "--org", OTHER).returncode == 0
    log = folder / "server.log"
    port = _free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lottrace", "--db", str(db), "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not start in 60 s")
    served = Web(db, url, tokens, log)
    yield served
    for client in served.clients.values():
        client.close()
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture(params=list(SIZES), ids=[f"w{k}" for k in SIZES])
def size(request: pytest.FixtureRequest) -> tuple[int, int]:
    return SIZES[str(request.param)]


@pytest.fixture
def context(browser: Browser, size: tuple[int, int], web: Web) -> Iterator[BrowserContext]:
    width, height = size
    ctx = browser.new_context(
        viewport={"width": width, "height": height},
        base_url=web.url,
        locale="es-PE",
        service_workers="allow",
    )
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    yield p
    assert errors == [], f"script errors on the page: {errors}"


@pytest.fixture
def sign_in(web: Web) -> Callable[[Page, str], None]:
    def go(page: Page, who: str) -> None:
        page.goto("/login")
        page.get_by_label("Clave (token)").fill(web.tokens[who])
        page.get_by_role("button", name="Entrar").click()
        page.wait_for_url(f"{web.url}/")
        page.wait_for_selector("#hello:not(:text('Entre con su clave'))")

    return go


@pytest.fixture
def shot(size: tuple[int, int]) -> Callable[[Page, str], None]:
    def take(page: Page, name: str) -> None:
        if os.environ.get("LOTTRACE_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{size[0]}.png"), full_page=True)

    return take
