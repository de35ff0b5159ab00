"""The lot passport in a real headless Chromium: it renders, logs nothing, shows the key facts.

The browser is Debian's ``chromium`` (or ``LOTTRACE_CHROMIUM``, a path).
Without one these tests are skipped, naming what was looked for; with
``CI=true`` a missing browser fails them (``.ci/run`` installs it).

Console messages are read from the browser's own log
(``--enable-logging=stderr``), where each one, error or not, is a
``CONSOLE`` line. The passport has no script, so any such line is a
problem: a Content-Security-Policy violation (something tried to load) or
a parse error.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from lottrace.demo import build_demo
from lottrace.ledger import Ledger
from lottrace.passport import STRINGS, passport

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_WIDTH, _HEIGHT = 1000, 3400


@pytest.fixture(scope="module")
def browser() -> str:
    """The path of a Chromium to drive; skip (or fail on CI) without one."""
    override = os.environ.get("LOTTRACE_CHROMIUM")
    found = override if override and Path(override).is_file() else None
    found = found or next((p for p in map(shutil.which, _NAMES) if p), None)
    if found:
        return found
    reason = (
        f"no headless browser found: none of {', '.join(_NAMES)} on PATH, LOTTRACE_CHROMIUM unset"
    )
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(
            f"{reason} (CI=true: the browser test must run; apt-get install chromium)",
            pytrace=False,
        )
    pytest.skip(reason)


def chromium(browser: str, profile: Path, page: Path, *args: str) -> tuple[str, list[str]]:
    """Run headless Chromium on a local file; its stdout and its console messages."""
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",  # tests may run as root, in a container
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        f"--window-size={_WIDTH},{_HEIGHT}",
        *args,
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium exited {done.returncode}:\n{done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if re.search(r":CONSOLE[(:]", line)]
    return done.stdout, console


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The Spanish passport of the Café Femenino export lot, and the ledger head."""
    folder = tmp_path_factory.mktemp("passport")
    db = folder / "demo.db"
    build_demo(db)
    with Ledger(db) as ledger:
        text = passport(
            ledger, "EXP-25-JUM-01", lang="es", url="https://coop.example/p/EXP-25-JUM-01.html"
        )
        _, head = ledger.head()
    out = folder / "EXP-25-JUM-01.html"
    out.write_text(text, encoding="utf-8")
    return out, head


def test_the_console_check_catches_errors(browser: str, tmp_path: Path) -> None:
    """The check can fail: a page that loads from the network and logs an error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        '<img src="https://coop.example/logo.png"><script>console.error("boom")</script>'
        "</body></html>",
        encoding="utf-8",
    )
    _, console = chromium(browser, tmp_path / "profile", bad, "--dump-dom")
    assert any("boom" in line for line in console), console
    assert any("coop.example/logo.png" in line for line in console), console


def test_the_passport_renders_without_console_messages(
    browser: str, page: tuple[Path, str], tmp_path: Path
) -> None:
    dom, console = chromium(browser, tmp_path / "profile", page[0], "--dump-dom")
    assert console == []
    assert dom.lstrip().lower().startswith("<!doctype html>") or "<html" in dom[:200]


def test_the_key_facts_are_in_the_rendered_dom(
    browser: str, page: tuple[Path, str], tmp_path: Path
) -> None:
    dom, _ = chromium(browser, tmp_path / "profile", page[0], "--dump-dom")
    _, head = page
    t = STRINGS["es"]
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))
    for fact in [
        "EXP-25-JUM-01",
        "MSKU5930284",
        "Hudson Women's Coffee Importers LLC",
        t["timeline"],
        "port:PAITA",
        "JUM-0063",
        "28,8 %",  # the Spanish page writes a decimal comma
        t["women"],
        "Café Femenino",
        t["pass"],
        t["eudr_ok"].format(n=5),
        f"lottrace verify --expect {head}",
    ]:
        assert fact in text, f"{fact!r} is not in the rendered page"
    assert re.search(r'<svg[^>]*class="map"', dom), "the plot map was not rendered"
    assert re.search(r'<figure[^>]*id="qr"[^>]*>\s*<svg', dom), "the QR code was not rendered"


def _png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_a_screenshot_of_the_passport(browser: str, page: tuple[Path, str], tmp_path: Path) -> None:
    shot = tmp_path / "passport.png"
    _, console = chromium(browser, tmp_path / "profile", page[0], f"--screenshot={shot}")
    assert console == []
    data = shot.read_bytes()
    width, height, pixels = _png_pixels(data)
    assert (width, height) == (_WIDTH, _HEIGHT)
    assert len(data) > 20_000
    # Not a blank page: the scanlines hold many different byte values.
    assert len(set(pixels)) > 50
