"""Legs of one lot from its timeline: what the ledger keeps in its ``legs`` table.

A leg is one step of a lot's journey (see :mod:`lottrace.delays` for the
definition): from one of its own stage checkpoints to its next one, or to an
event that draws kg from it. :func:`lot_legs` walks one lot's
``(lot, time, type, role, site)`` rows, by time and then log order, and gives
its legs in order, each with the hours it took and its transit hours
(dispatch to arrival; ``None`` without a dispatch). The ledger calls it for
every lot a batch touched and replaces that lot's legs, in the batch's
transaction, so the table always holds what a walk of the whole ledger gives.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .events import STAGE_ORDER

__all__ = ["LegRow", "lot_legs"]

#: One leg: ``(lot, n, from_stage, from_site, start, to_stage, to_site, end, hours,
#: transit_hours)``, ``n`` its place among the lot's legs (0, 1, ...). Times are UTC keys.
LegRow = tuple[str, int, str, str, str, str, str, str, float, float | None]

_MARKS = frozenset(("dispatch", "arrival"))


def lot_legs(rows: Iterable[tuple[str, str, str, str, str]]) -> list[LegRow]:
    """The legs of one lot, from its rows by time and log order.

    >>> rows = [("L", "2025-06-01T00:00:00+00:00", "harvest", "output", "farm:A"),
    ...         ("L", "2025-06-02T00:00:00+00:00", "dispatch", "subject", "farm:A"),
    ...         ("L", "2025-06-02T06:00:00+00:00", "arrival", "subject", "hq:B"),
    ...         ("L", "2025-06-03T00:00:00+00:00", "drying", "subject", "hq:B")]
    >>> [(g[2], g[5], g[8], g[9]) for g in lot_legs(rows)]
    [('harvest', 'drying', 48.0, 6.0)]
    """
    fromiso = datetime.fromisoformat
    start: tuple[str, str, str] | None = None  # (time, stage, site) of the latest checkpoint
    start_dt: datetime | None = None
    marks: list[tuple[str, str]] = []  # dispatches and arrivals since then
    found: list[LegRow] = []
    for lot, key, kind, role, site in rows:
        if kind not in STAGE_ORDER:
            if start is not None and role == "subject" and kind in _MARKS:
                marks.append((kind, key))
            continue
        end_dt = None
        if start is not None and role != "output":
            if start_dt is None:
                start_dt = fromiso(start[0])
            end_dt = fromiso(key)
            transit = None
            if marks:
                if len(marks) == 2 and marks[0][0] == "dispatch" and marks[1][0] == "arrival":
                    transit = (fromiso(marks[1][1]) - fromiso(marks[0][1])).total_seconds() / 3600
                else:
                    transit = _transit(marks, key)
                marks = []
            found.append(
                (
                    lot,
                    len(found),
                    start[1],
                    start[2],
                    start[0],
                    kind,
                    site,
                    key,
                    (end_dt - start_dt).total_seconds() / 3600,
                    transit,
                )
            )
        if role == "output" or (role == "subject" and kind != "export"):
            start, start_dt = (key, kind, site), end_dt
            if marks:
                marks = []
    return found


def _transit(marks: list[tuple[str, str]], end: str) -> float | None:
    """Hours on the road: each first dispatch to the next arrival, an open one to `end`."""
    transit: float | None = None
    dispatched: str | None = None
    for kind, key in marks:
        if kind == "dispatch" and dispatched is None:
            dispatched = key
        elif kind == "arrival" and dispatched is not None:
            transit = (transit or 0.0) + _hours(dispatched, key)
            dispatched = None
    if dispatched is not None:  # no arrival logged: on the road until the leg ends
        transit = (transit or 0.0) + _hours(dispatched, end)
    return transit


def _hours(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 3600
