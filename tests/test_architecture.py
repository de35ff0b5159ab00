"""The module map holds: imports point down the layers, SQL and its driver stay in storage.

The layers, from the faces down (docs/architecture.md draws them): a module
may import its own layer or any layer below it, never one above.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import lottrace

PACKAGE = Path(lottrace.__file__).parent

#: Each module's layer: 0 is the bottom.
LAYERS: dict[str, int] = {
    # leaves: no lottrace import above errors
    "errors": 0,
    "numfmt": 0,
    "gcpause": 0,
    "chain": 0,
    "epcis_hash": 0,
    "epcis_check": 0,
    "views": 0,
    "memo": 0,
    "events": 1,
    "claimlogic": 1,
    "rules": 2,
    "legwalk": 2,
    "storage": 3,
    "storage.sqlite": 3,
    "storage.sqlite_schema": 3,
    "storage.postgres": 3,
    "storage.postgres_schema": 3,
    "ledger": 4,
    "graph": 5,
    "provenance": 6,
    "compliance": 6,
    "delays": 6,
    "timeline": 6,
    "browse": 6,
    "plot_registry": 5,
    "geometry": 6,
    "findings": 6,
    "dds": 6,
    "certificates": 6,
    "claims": 6,
    "money": 6,
    "masterdata": 6,
    "search": 6,
    # services: reading, importing, EPCIS, the passport, charts, generated things
    "fieldlog": 7,
    "fieldform": 7,
    "readers": 7,
    "sheets": 7,
    "pipeline": 7,
    "importing": 7,
    "copying": 7,
    "merging": 7,
    "contexts": 7,
    "epcis_xml": 7,
    "epcis": 7,
    "passport": 7,
    "charts": 7,
    "dashboard": 7,
    "schemas": 7,
    "demo": 7,
    "generate": 7,
    "access": 7,
    "statement": 7,
    "epcis_query": 7,
    # faces
    "cli": 8,
    "server": 8,
    "web": 8,
    "web.deps": 8,
    "web.i18n": 8,
    "web.pages": 8,
    "web.fieldapi": 8,
    "web.insight": 8,
    "__main__": 8,
    "__init__": 8,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        if "sample_events" in parts:
            continue
        found[".".join(parts)] = path
    return found


def _lottrace_imports(name: str, path: Path) -> set[str]:
    """The lottrace modules ``name`` imports (at the top or inside functions)."""
    tree = ast.parse(path.read_text())
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    if name == "__init__":
        package = []
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, node.module] if node.module else base)
                if node.module is None:  # from . import x
                    out.update(".".join([*base, a.name]) for a in node.names)
                    continue
            elif node.module and node.module.startswith("lottrace."):
                mod = node.module.removeprefix("lottrace.")
            else:
                continue
            out.add(mod)
        elif isinstance(node, ast.Import):
            out.update(
                a.name.removeprefix("lottrace.")
                for a in node.names
                if a.name.startswith("lottrace.")
            )
    return {m for m in out if m}


def test_every_module_has_a_layer_and_a_docstring() -> None:
    modules = _modules()
    assert set(modules) - set(LAYERS) == set(), "give the new module a layer in LAYERS"
    for name, path in modules.items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc, f"{name} has no docstring saying its one job"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_point_down(name: str) -> None:
    path = _modules()[name]
    for target in _lottrace_imports(name, path):
        if target not in LAYERS:  # e.g. `from . import __version__`
            continue
        assert LAYERS[target] <= LAYERS[name], (
            f"{name} (layer {LAYERS[name]}) imports {target} (layer {LAYERS[target]}): an arrow up"
        )


def test_only_the_storage_backends_speak_to_the_database_driver() -> None:
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        drivers = {
            a.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for a in node.names
            if a.name in ("sqlite3", "psycopg")
        } | {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in ("sqlite3", "psycopg")
        }
        if name.startswith("storage."):
            continue
        assert not drivers, f"{name} imports {drivers}: SQL lives only in lottrace.storage"


def test_the_check_itself_can_fail() -> None:
    """The import scan sees a relative import inside a function, and a layer above is refused."""
    tree_text = "def f():\n    from .cli import main\n"
    probe = PACKAGE / "_probe_for_test.py"
    probe.write_text('"""probe."""\n' + tree_text)
    try:
        assert _lottrace_imports("_probe_for_test", probe) == {"cli"}
    finally:
        probe.unlink()


def test_the_public_api_is_what_all_says_and_importing_it_stays_light() -> None:
    for name in lottrace.__all__:
        assert getattr(lottrace, name) is not None, name
    code = (
        "import sys, lottrace\n"
        "heavy = [m for m in ('pydantic', 'networkx', 'sqlite_utils', 'orjson', 'psycopg') "
        "if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_the_library_example_in_the_architecture_doc_runs(tmp_path: Path) -> None:
    """docs/architecture.md's example of lottrace as a library, run as written."""
    import re
    import shutil

    root = Path(__file__).resolve().parents[1]
    blocks = re.findall(
        r"```python\n(.*?)```", (root / "docs" / "architecture.md").read_text(), re.S
    )
    assert blocks, "docs/architecture.md has no python example"
    shutil.copytree(root / "sample_events", tmp_path / "sample_events")
    out = subprocess.run(
        [sys.executable, "-c", blocks[0]], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"added \d+, duplicates 0", out.stdout), out.stdout


@pytest.mark.parametrize("argv", [["--help"], ["--db", "some.db", "schema", "--help"]])
def test_the_command_line_never_loads_the_postgres_driver_for_a_file(argv: list[str]) -> None:
    """psycopg is imported only by the PostgreSQL backend, when a URI selects it."""
    code = (
        "import sys\n"
        "from lottrace.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('PSYCOPG', 'psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "PSYCOPG False" in out.stdout


def test_every_package_is_installed_by_pip_install_dot() -> None:
    """``pip install .`` (not editable) ships only the packages pyproject.toml lists."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        "lottrace" + "".join(f".{part}" for part in p.parent.relative_to(PACKAGE).parts)
        for p in PACKAGE.rglob("__init__.py")
        if "sample_events" not in p.parts
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def test_the_web_apps_templates_and_files_are_package_data() -> None:
    """``pip install .`` ships every template and static file the web app serves."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = [  # each package's patterns, as paths under lottrace/
        "/".join([*pkg.split(".")[1:], pat])
        for pkg, pats in setuptools["package-data"].items()
        if pkg == "lottrace" or pkg.startswith("lottrace.")
        if pkg in setuptools["packages"]
        for pat in pats
    ]
    web = PACKAGE / "web"
    files = [p.relative_to(PACKAGE).as_posix() for p in web.rglob("*") if p.is_file()]
    files = [f for f in files if not f.endswith((".py", ".pyc")) and "__pycache__" not in f]
    assert files, "the web app has no templates or static files"
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert unshipped == [], f"add to package-data: {unshipped}"
