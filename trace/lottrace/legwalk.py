"""Legs of one lot from its timeline: what the ledger keeps in its ``legs`` table.

A leg is one step of a lot's journey (see :mod:`lottrace.delays` for the
definition): from one of its own stage checkpoints to its next one, or to an
event that draws kg from it. :func:`lot_legs` walks one lot's
``(lot, time, type, role, site)`` rows, by time and then log order, and gives
its legs in order, each with the hours it took and its transit hours
(dispatch to arrival; ``None`` without a dispatch). The ledger calls it for
every lot a batch touched and replaces that lot's legs, in the batch's
transaction, so the table always holds what a walk of the whole ledger gives;
when a lot's new rows all come after its old ones (the usual case), it
continues the lot's :class:`LegWalk` and only adds the new legs.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from .events import STAGE_ORDER

__all__ = ["LegRow", "LegWalk", "lot_legs"]

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
    return LegWalk().feed(rows)


class LegWalk:
    """One lot's walk so far: :meth:`feed` it the lot's next rows, it gives their new legs.

    A leg depends only on the rows up to its end, so rows that come after
    all those fed so far (by time, then log order) add legs and change none:
    feeding a timeline in two parts gives what :func:`lot_legs` gives for
    the whole. :attr:`last` is the time of the last row fed, to tell whether
    a row comes after them.

    >>> rows = [("L", "2025-06-01T00:00:00+00:00", "harvest", "output", "farm:A"),
    ...         ("L", "2025-06-02T00:00:00+00:00", "drying", "subject", "farm:A"),
    ...         ("L", "2025-06-04T00:00:00+00:00", "gatherer_qc", "subject", "hq:B")]
    >>> walk = LegWalk()
    >>> [g[1:3] for g in walk.feed(rows[:2])], [g[1:3] for g in walk.feed(rows[2:])]
    ([(0, 'harvest')], [(1, 'drying')])
    >>> walk.feed(rows[2:]) == lot_legs(rows)[1:]  # not after: a new walk, legs from 0 again
    False
    """

    __slots__ = ("last", "marks", "n", "start", "start_dt")

    def __init__(self) -> None:
        #: The time key of the last row fed, or None.
        self.last: str | None = None
        #: ``(time, stage, site)`` of the latest checkpoint, or None.
        self.start: tuple[str, str, str] | None = None
        self.start_dt: datetime | None = None
        #: Dispatches and arrivals since the latest checkpoint.
        self.marks: list[tuple[str, str]] = []
        #: The legs given so far (the next leg's ``n``).
        self.n = 0

    def feed(self, rows: Iterable[tuple[str, str, str, str, str]]) -> list[LegRow]:
        """The legs that rows (the lot's next, by time and log order) end."""
        fromiso = datetime.fromisoformat
        start, start_dt, marks, n = self.start, self.start_dt, self.marks, self.n
        key = self.last
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
                        transit = (
                            fromiso(marks[1][1]) - fromiso(marks[0][1])
                        ).total_seconds() / 3600
                    else:
                        transit = _transit(marks, key)
                    marks = []
                found.append(
                    (
                        lot,
                        n,
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
                n += 1
            if role == "output" or (role == "subject" and kind != "export"):
                start, start_dt = (key, kind, site), end_dt
                if marks:
                    marks = []
        self.start, self.start_dt, self.marks, self.n, self.last = start, start_dt, marks, n, key
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
