"""The web app's browser tests (a package, as tests/reliability: its conftest is its own)."""
