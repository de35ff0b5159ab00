"""Build a demo ledger from the sample season that ships with lottrace.

The sample lives in ``sample_events/`` at the repository root and is packaged
as ``lottrace.sample_events``, so ``lottrace demo`` works from a plain
``pip install``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

from .errors import LedgerError
from .events import EventBase
from .ledger import AppendReport, Ledger
from .readers import iter_events

__all__ = ["DemoResult", "build_demo", "sample_files"]


@dataclass(frozen=True)
class DemoResult:
    report: AppendReport
    files: list[str]
    export_lot: str  #: an export lot, formed from other lots where the sample has one
    input_lot: str  #: one of the lots it was formed from


def sample_files() -> list[Path]:
    """The sample event files, in the order they are imported."""
    root = files("lottrace.sample_events")
    with as_file(root) as folder:
        return sorted(p for p in Path(folder).iterdir() if p.suffix in (".jsonl", ".json", ".csv"))


def build_demo(path: str | Path) -> DemoResult:
    """Import every sample file into the ledger at ``path`` (a demo ledger of its own)."""
    p = Path(path)
    if p.exists():
        with Ledger(p) as ledger:
            if ledger.meta("demo") is None:
                raise LedgerError(
                    f"{p} is a ledger that is not a demo ledger; choose another --out"
                )
    paths = sample_files()
    exports: list[EventBase] = []

    def events() -> Iterator[tuple[str, EventBase]]:
        for f in paths:
            for where, ev in iter_events(f):
                if ev.type == "export":
                    exports.append(ev)
                yield where.replace(str(f.parent) + "/", "sample_events/"), ev

    with Ledger.create(p) as ledger:
        ledger.mark_demo()
        report = ledger.append(events())
    if not exports:
        raise LedgerError("the sample season has no export event")
    shown = next((e for e in exports if e.drawn), exports[0])
    source = shown.drawn[0].lot if shown.drawn else shown.subject
    return DemoResult(report, [f.name for f in paths], shown.subject or "", source or "")
