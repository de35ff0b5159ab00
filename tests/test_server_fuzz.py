"""schemathesis against the server's own OpenAPI document: no 5xx, every response as documented.

A fresh server on the sample season, called as its owner's admin (who may
call every route) with generated requests, examples and fuzzing, a fixed
seed and a bounded number of examples per route.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lottrace.demo import build_demo
from test_server import OWNER, lottrace, start


def test_schemathesis_finds_no_server_error_and_no_response_off_its_schema(
    tmp_path: Path,
) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:  # pragma: no cover - the test extra installs it
        pytest.fail("schemathesis is not installed (pip install -e '.[test]')")
    db = tmp_path / "fuzz.db"
    build_demo(db)
    token = lottrace(db, "users", "add", "a", "--org", OWNER, "--role", "admin", "--owner")
    proc, url = start(db, tmp_path / "log")
    try:
        r = subprocess.run(
            [
                st,
                "run",
                f"{url}/openapi.json",
                "-H",
                f"Authorization: Bearer {token.stdout.strip()}",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--request-timeout",
                "60",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            cwd=tmp_path,  # schemathesis keeps its example database in the working folder
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "passed" in r.stdout.lower()
