"""Deterministic event files for the reliability suites, built from ``factories``.

Each "chain" is seven events that exercise every derived table: two harvests,
their drying, a gatherer QC that merges them, a dry mill that splits the merged
lot into two grades, and an export. Lot codes carry a prefix and a number, so
files made with different prefixes never share an event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from lottrace.events import canonical_json, parse_event

from factories import drying, export, harvest, mill, qc

EVENTS_PER_CHAIN = 7


def chain_events(prefix: str, i: int) -> list[dict[str, Any]]:
    """The seven events of chain ``i``; times vary with ``i`` so bodies differ."""
    a, b, g = f"{prefix}-{i}-HA", f"{prefix}-{i}-HB", f"{prefix}-{i}-G"
    m1, m2 = f"{prefix}-{i}-M1", f"{prefix}-{i}-M2"
    d = i % 20
    return [
        harvest(a, 1 + d, 1000 + i % 97),
        harvest(b, 2 + d, 500 + i % 89),
        drying(a, 10 + d, 200),
        drying(b, 11 + d, 100),
        qc(g, 15 + d, inputs=[(a, 200), (b, 100)], moisture_pct=11.0),
        mill(40 + d, [(g, 300)], [(m1, 200, "Grade 1"), (m2, 30, "Grade 2")], rejects_kg=10),
        export(m1, 60 + d, 200),
    ]


def season(prefix: str, n_events: int) -> Iterator[dict[str, Any]]:
    """At least ``n_events`` events, whole chains, in file order."""
    for i in range((n_events + EVENTS_PER_CHAIN - 1) // EVENTS_PER_CHAIN):
        yield from chain_events(prefix, i)


def write_jsonl(path: Path, events: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> list[str]:
    """Write events as JSON Lines; return their event ids, in order."""
    ids = []
    with path.open("wb") as f:
        for e in events:
            f.write(orjson.dumps(e) + b"\n")
            ids.append(hashlib.sha256(canonical_json(parse_event(e))).hexdigest())
    return ids
