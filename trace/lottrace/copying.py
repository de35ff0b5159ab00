"""Copying a ledger to another place or backend (``lottrace copy``), keeping its ids, order and chain.

The source is verified first: only a ledger that proves itself is copied.
The copy takes the source's ledger id (its chain starts from the hash of
it), then every event of the log, in log order, goes through
:meth:`~lottrace.ledger.Ledger.append_prepared` in one batch, as every
event does: the rules are checked again and the derived tables are folded
as they go. The copy's chain is then the source's row for row, and the
copy is verified and its head compared with the source's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from .errors import IntegrityViolation, LedgerError
from .events import parse_event
from .ledger import Ledger, Prepared
from .rules import facts_of

__all__ = ["CopyReport", "copy_ledger"]


@dataclass(frozen=True)
class CopyReport:
    """A finished copy: where from, where to, how many events, the head both share."""

    source: str
    target: str
    events: int
    head: str


def _prepared(source: Ledger) -> Iterator[Prepared]:
    """The source's events as the log stores them, in log order (bodies and ids kept)."""
    where = str(source.path)
    for seq, eid, body in source.store.log_rows():
        facts = facts_of(parse_event(orjson.loads(body), stored=True))
        yield Prepared(f"{where}: seq {seq}", body, eid, facts)


def copy_ledger(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> CopyReport:
    """Copy the ledger ``src`` into the new (or empty) ledger ``dst``, on either backend.

    All or nothing: the events go in one batch. ``dst`` must hold no event.
    """
    with Ledger.reader(src) as source, source.store.read_snapshot():
        proven = source.verify()
        with Ledger.create(dst) as target:
            held = target.head()[0]
            if held:
                raise LedgerError(
                    f"{target.path} already holds {held} events: copy needs an empty ledger"
                )
            target.store.begin_write()
            try:
                target.store.adopt_ledger_id(source.store.ledger_id)
                target.store.commit()
            except BaseException:
                target.store.rollback()
                raise
            target.append_prepared(_prepared(source))
            copied = target.verify()
            if (copied.events, copied.head) != (proven.events, proven.head):
                raise IntegrityViolation(
                    f"the copy {target.path} ends at head {copied.head} "
                    f"({copied.events} events), not at the source's {proven.head} "
                    f"({proven.events} events)"
                )
            return CopyReport(str(source.path), str(target.path), copied.events, copied.head)
