"""Docs and generated files that must not drift from the code.

- ``schemas/*.json`` equal what the models generate;
- ``docs/data-model.md``, ``docs/rules.md`` and ``docs/cli.md`` carry generated
  sections between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``;
- every ``console`` block in ``docs/*.md`` and ``README.md`` is run, command by
  command, and its output compared (``...`` matches anything, as in doctest).

Set ``LOTTRACE_UPDATE_DOCS=1`` to rewrite the generated files and sections
instead of failing; review the diff, then commit.
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.rules import RULES, WARNINGS
from lottrace.schemas import markdown_tables, schema_files

ROOT = Path(__file__).resolve().parents[1]
UPDATE = os.environ.get("LOTTRACE_UPDATE_DOCS") == "1"


def test_schema_files_match_models() -> None:
    expected = schema_files()
    folder = ROOT / "schemas"
    if UPDATE:
        for name, text in expected.items():
            (folder / name).write_text(text, encoding="utf-8")
    actual = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.json")}
    assert actual.keys() == expected.keys(), "run: lottrace schema --write schemas/"
    for name, text in expected.items():
        assert actual[name] == text, (
            f"schemas/{name} drifted from the models: lottrace schema --write schemas/"
        )


def rules_table() -> str:
    rows = ["| rule | blocks? | what it checks |", "|---|---|---|"]
    rows += [f"| `{k}` | yes | {v} |" for k, v in RULES.items()]
    rows += [f"| `{k}` | warning | {v} |" for k, v in WARNINGS.items()]
    return "\n".join(rows) + "\n"


def cli_reference() -> str:
    out = []

    def walk(cmd: click.Command, path: list[str]) -> None:
        ctx = click.Context(
            cmd,
            info_name=" ".join(path),
            terminal_width=100,
            max_content_width=100,
            help_option_names=["-h", "--help"],
        )
        out.append(f"## `{' '.join(path)}`\n\n```text\n{cmd.get_help(ctx).rstrip()}\n```\n")
        if isinstance(cmd, click.Group):
            for name in sorted(cmd.list_commands(ctx)):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                walk(sub, [*path, name])

    walk(cli, ["lottrace"])
    return "\n".join(out)


GENERATED = {
    ("data-model.md", "event-tables"): markdown_tables,
    ("rules.md", "rules"): rules_table,
    ("cli.md", "cli-reference"): cli_reference,
}


@pytest.mark.parametrize(("doc", "name"), list(GENERATED))
def test_generated_sections_are_current(doc: str, name: str) -> None:
    path = ROOT / "docs" / doc
    text = path.read_text(encoding="utf-8")
    begin, end = f"<!-- generated: {name} -->\n", f"<!-- end: {name} -->"
    assert begin in text and end in text, f"{doc} lacks the markers for {name}"
    head, rest = text.split(begin, 1)
    current, tail = rest.split(end, 1)
    fresh = GENERATED[(doc, name)]()
    if UPDATE and current != fresh:
        path.write_text(head + begin + fresh + end + tail, encoding="utf-8")
        current = fresh
    assert current == fresh, (
        f"docs/{doc} section {name!r} is stale: LOTTRACE_UPDATE_DOCS=1 pytest tests/test_docs.py"
    )


def test_every_command_is_documented_in_a_guide() -> None:
    guides = "".join(
        p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"
    )
    guides += (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [
        name for name in cli.list_commands(click.Context(cli)) if f"lottrace {name}" not in guides
    ]
    assert not missing, f"commands with no guide: {missing}"


def console_sessions() -> list[tuple[str, list[tuple[int, str, str]]]]:
    """Per doc: its ``console`` blocks' (line, command, expected output), in order.

    A doc's blocks are one session: they run in one folder, one after another.
    """
    sessions = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        steps: list[tuple[int, str, str]] = []
        for m in re.finditer(r"```console\n(.*?)```", text, re.S):
            line = text.count("\n", 0, m.start()) + 1
            for i, raw in enumerate(m.group(1).splitlines(), 1):
                if raw.startswith("$ "):
                    steps.append((line + i, raw[2:], ""))
                elif steps:
                    n, cmd, out = steps[-1]
                    steps[-1] = (n, cmd, out + raw + "\n")
        if steps:
            sessions.append((path.name, steps))
    return sessions


_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize(
    ("doc", "steps"), console_sessions(), ids=[d for d, _ in console_sessions()]
)
def test_console_examples_run_as_written(
    doc: str, steps: list[tuple[int, str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "sample_events", tmp_path / "sample_events")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env: dict[str, str | None] = {
        "LOTTRACE_DB": None,
        "LOTTRACE_SITE": None,
        "LOTTRACE_ACTOR": None,
    }
    for line, command, expected in steps:
        argv = shlex.split(command)
        if argv[0] == "export":  # `export LOTTRACE_DB=...` in a guide
            key, _, value = argv[1].partition("=")
            env[key] = value
            continue
        assert argv[0] == "lottrace", f"{doc}:{line}: only lottrace commands run in console blocks"
        result = runner.invoke(cli, argv[1:], env=env)
        if not _CHECKER.check_output(expected, result.output, _FLAGS):
            pytest.fail(
                f"{doc}:{line}: `{command}` printed:\n{result.output}\nexpected:\n{expected}"
            )


def test_every_guide_is_a_checked_session() -> None:
    checked = {doc for doc, _ in console_sessions()}
    guides = {p.name for p in (ROOT / "docs").glob("guide-*.md")} | {"getting-started.md"}
    assert {"guide-quality-manager.md", "guide-buyer.md", "guide-analyst.md"} <= guides
    assert guides <= checked, f"guides with no console session: {sorted(guides - checked)}"


def test_relative_links_and_images_resolve() -> None:
    broken = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" not in target and not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, broken
