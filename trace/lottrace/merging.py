"""Merging cooperatives' ledgers into one platform ledger (``lottrace merge``), each source's chain kept.

A platform (many cooperatives on one PostgreSQL database, say) holds its own
ledger, with its own id and chain. Each source ledger is verified first;
then its events, in its log order, go through
:meth:`~lottrace.ledger.Ledger.append_prepared` in one batch per source, so
every event from any source passes the same rules as any event, and is
stored once by its content id: an event another source (or the platform)
already holds is a duplicate, not a second row. In the same transaction
the source's chain is recorded beside the log (``sources``: the source's
ledger id, its seq, the event id, its hash at that row, and its head), for
every one of its events, new or already held, so a duplicate remembers
every source that had it. :meth:`~lottrace.ledger.Ledger.verify_source`
then proves each source's chain inside the platform: its head there is
the head the source's own ``verify`` prints.

Merging a source again after it grew adds only its new rows, once its
earlier rows are shown to be the ones merged before (the same hash at the
recorded head); a source rewritten since is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from .chain import genesis, link
from .errors import IntegrityViolation, LedgerError
from .events import parse_event
from .ledger import Ledger, Prepared, SourceLog
from .rules import facts_of

__all__ = ["MergeReport", "merge_ledgers"]


@dataclass(frozen=True)
class MergeReport:
    """One source merged: its id and place, its events, what was new, and its head."""

    source: str
    ledger_id: str
    events: int
    added: int
    duplicates: int
    head: str


def merge_ledgers(
    sources: list[str | os.PathLike[str]], into: str | os.PathLike[str]
) -> list[MergeReport]:
    """Merge each ledger of ``sources`` into the ledger ``into`` (created if missing), in order.

    One source at a time, each all or nothing; a source that fails its own
    ``verify`` or any rule stops the merge there (the sources before it stay merged).
    """
    reports = []
    with Ledger.create(into) as platform:
        for src in sources:
            reports.append(_merge_one(src, platform))
    return reports


def _merge_one(src: str | os.PathLike[str], platform: Ledger) -> MergeReport:
    with Ledger.reader(src) as source, source.store.read_snapshot():
        sid = source.store.ledger_id
        if sid == platform.store.ledger_id:
            raise LedgerError(f"{source.path} is {platform.path} itself (the same ledger id)")
        proven = source.verify()
        start = 0
        before = platform.store.meta(f"source:{sid}")
        if before is not None:
            seq, _, head = before.partition(" ")
            start = int(seq)
            if start > proven.events or source.store.hash_at(start) != head:
                raise IntegrityViolation(
                    f"{source.path} (ledger {sid}) is not the ledger merged before: its row "
                    f"{start} is not the head recorded then ({head[:12]}...); rewritten since"
                )
        where = str(source.path)

        def events() -> Iterator[Prepared]:
            for seq, eid, body in source.store.log_rows():
                if seq > start:
                    facts = facts_of(parse_event(orjson.loads(body), stored=True))
                    yield Prepared(f"{where}: seq {seq}", body, eid, facts)

        def rows() -> Iterator[tuple[int, str, str]]:
            prev = genesis(sid)
            for seq, eid, _body in source.store.log_rows():
                prev = link(prev, eid)
                if seq > start:
                    yield seq, eid, prev

        report = platform.append_prepared(
            events(), source=SourceLog(sid, rows, (proven.events, proven.head))
        )
        checked = platform.verify_source(sid)
        if (checked.events, checked.head) != (proven.events, proven.head):
            raise IntegrityViolation(
                f"{platform.path} holds source {sid} up to head {checked.head}, "
                f"not the source's {proven.head}"
            )
        return MergeReport(where, sid, proven.events, report.added, report.duplicates, proven.head)
