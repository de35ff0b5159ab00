"""A lot's timeline: the critical path back through its merges, and where it waited longest.

Times are ISO-8601 with the offset each event was logged with; hours are
rounded to three decimals, as in :mod:`lottrace.delays`.
"""

from __future__ import annotations

from typing import Any

from .delays import _h, _hours, _key_iso
from .graph import (
    ancestors_graph,
)
from .ledger import Ledger, StoredEvent
from .rules import time_key

__all__ = [
    "timeline",
]

JSON = dict[str, Any]


def timeline(ledger: Ledger, lot: str) -> JSON:
    """The critical path of a lot: at each merge, the input that arrived last.

    Walking back from `lot`, at the event that formed each lot the input
    whose latest checkpoint before that event is the latest is critical:
    it held the formed lot (and so the container) back. The path follows
    critical inputs back to a harvest. An export of part of an input lot is
    not a checkpoint of the rest of it, so it does not count as "ready".

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger, typically an export lot.

    Returns
    -------
    dict
        ``lot``; ``steps``: the checkpoints along the critical path in time
        order (lot, stage, time, site, hours since the step before);
        ``merges``: for each forming event on the path, latest first: lot
        (formed), stage, time, site, ``critical`` (the input lot that
        arrived last) and ``inputs`` (lot, kg, ready (the time of its latest
        checkpoint before the merge), ready_stage, ready_site,
        waited_hours, slack_hours (how much later it could have been without
        delaying the merge)); ``total_hours`` (first step to last);
        ``slowest`` (the longest step: lot, from, to, from_site, to_site,
        hours); ``voided``.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     tl = timeline(ledger, "EXP-25-APR-02")
    >>> [(m["lot"], m["critical"]) for m in tl["merges"]][:2]
    [('EXP-25-APR-02', 'MILL-25-0455-G1'), ('MILL-25-0455-G1', 'APR-25-HQ-019')]
    >>> [(i["lot"], i["ready_stage"], i["slack_hours"]) for i in tl["merges"][0]["inputs"]]
    [('MILL-25-0455-G1', 'dry_mill', 0.0), ('MILL-25-0412-G1', 'dry_mill', 816.25)]
    >>> tl["slowest"]["from"], tl["slowest"]["to"], tl["slowest"]["hours"]
    ('dry_mill', 'export', 799.417)
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    path: list[tuple[str, StoredEvent]] = []  # latest first
    merges: list[JSON] = []
    code, cutoff = lot, None
    while True:
        own = [e for e in G.nodes[code].get("timeline", []) if e.role != "input"]
        if cutoff is not None:  # an input lot: its checkpoints up to the merge that used it
            own = [e for e in own if time_key(e.event.time) <= cutoff and _moves_lot(e)]
        path.extend((code, e) for e in reversed(own))
        preds = list(G.predecessors(code))
        if not preds:
            break
        merge_key = G.edges[preds[0], code]["time"]
        formed = next((e for e in own if e.role == "output"), None)
        ready: list[tuple[str, float, str, StoredEvent | None]] = []
        for src in preds:
            before = [
                e
                for e in G.nodes[src].get("timeline", [])
                if e.role != "input" and _moves_lot(e) and time_key(e.event.time) <= merge_key
            ]
            last = before[-1] if before else None
            key = time_key(last.event.time) if last else G.nodes[src].get("first_time", "")
            ready.append((key, G.edges[src, code]["kg"], src, last))
        ready.sort(key=lambda r: (r[0], r[1], r[2]), reverse=True)
        crit_key = ready[0][0]
        merges.append(
            {
                "lot": code,
                "stage": formed.event.type if formed else None,
                "time": formed.event.time.isoformat() if formed else _key_iso(merge_key),
                "site": formed.event.site if formed else None,
                "critical": ready[0][2],
                "inputs": [
                    {
                        "lot": src,
                        "kg": kg,
                        "ready": last.event.time.isoformat() if last else _key_iso(key),
                        "ready_stage": last.event.type if last else None,
                        "ready_site": last.event.site if last else None,
                        "waited_hours": _h(_hours(key, merge_key)),
                        "slack_hours": _h(_hours(key, crit_key)),
                    }
                    for key, kg, src, last in ready
                ],
            }
        )
        code, cutoff = ready[0][2], merge_key
    path.reverse()
    steps: list[JSON] = []
    slowest: JSON | None = None
    for i, (code, e) in enumerate(path):
        hours = _hours(time_key(path[i - 1][1].event.time), time_key(e.event.time)) if i else None
        steps.append(
            {
                "lot": code,
                "stage": e.event.type,
                "time": e.event.time.isoformat(),
                "site": e.event.site,
                "hours": _h(hours) if hours is not None else None,
            }
        )
        if hours is not None and (slowest is None or hours > slowest["hours"]):
            prev = path[i - 1][1].event
            slowest = {
                "lot": code,
                "from": prev.type,
                "to": e.event.type,
                "from_site": prev.site,
                "to_site": e.event.site,
                "hours": _h(hours),
            }
    total = (
        _hours(time_key(path[0][1].event.time), time_key(path[-1][1].event.time)) if path else 0.0
    )
    return {
        "lot": lot,
        "steps": steps,
        "merges": merges,
        "total_hours": _h(total),
        "slowest": slowest,
        "voided": ledger.voided_for_lots(G.nodes),
    }


def _moves_lot(e: StoredEvent) -> bool:
    """Whether an own event is a checkpoint of the whole lot: not an export of part of it."""
    return not (e.role == "subject" and e.event.type == "export")
