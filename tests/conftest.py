"""Shared pytest configuration: custom markers and the conformance fixtures folder."""

from __future__ import annotations

import os
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
