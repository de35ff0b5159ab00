"""Shared pytest configuration: custom markers, the conformance fixtures folder, the backends.

The PostgreSQL backend is tested in a fresh schema per test of the database
``LOTTRACE_TEST_PG`` names; without it those tests skip, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Third-party conformance material kept beside the repository, not inside it.
CONFORMANCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"


def pytest_configure(config: pytest.Config) -> None:
    """Register the custom markers (the suite runs with ``--strict-markers``)."""
    config.addinivalue_line(
        "markers",
        "fixture_source(origin): where the test's fixture data came from, "
        "as owner/repository@commit",
    )


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """Return the ``shared/conformance`` folder beside the repository.

    Tests using it are skipped when the folder is missing, except on CI
    (environment variable ``CI`` set to ``true``), where a missing folder fails.
    """
    if CONFORMANCE_DIR.is_dir():
        return CONFORMANCE_DIR
    reason = f"conformance fixtures folder not found: {CONFORMANCE_DIR}"
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: the fixtures are required)", pytrace=False)
    pytest.skip(reason)


# --------------------------------------------------------------------------- backends

#: The storage backends the parametrised tests run on.
BACKENDS = ["sqlite", "postgres"]

#: A libpq URI of a PostgreSQL database the tests may create schemas in.
PG_ENV = "LOTTRACE_TEST_PG"


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def pg_base_uri() -> str:
    """The test database's URI; skip without one, except under ``CI=true``, where it fails."""
    uri = os.environ.get(PG_ENV, "").strip()
    if uri:
        return uri
    reason = f"{PG_ENV} is not set (a libpq URI of a PostgreSQL database for the tests)"
    if _on_ci():
        pytest.fail(f"{reason}; CI=true: the PostgreSQL tests are required", pytrace=False)
    pytest.skip(reason)


def uri_with_schema(base: str, schema: str) -> str:
    """``base`` whose connections put the ledger in ``schema`` (their search_path)."""
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_uri() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test, as a ``postgresql://`` URI; dropped after."""
    import uuid

    import psycopg

    base = pg_base_uri()
    schema = f"lt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield uri_with_schema(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '10s'")
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn."""
    return str(request.param)


@pytest.fixture
def ledger_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Where a fresh ledger goes on ``backend``: a file path, or a PostgreSQL URI."""
    if backend == "sqlite":
        return str(tmp_path / "l.db")
    return str(request.getfixturevalue("pg_uri"))
