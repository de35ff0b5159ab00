"""Answers kept in memory per process, keyed by the ledger's head: a bounded, thread-safe LRU.

A served ledger's answers change only when something is appended, and every
append moves the head (:meth:`lottrace.ledger.Ledger.head`). So a slow
whole-ledger answer (delays, bottlenecks, stuck lots, a search index) can be
kept under ``(ledger, head, question)`` and reused until the head moves; an
entry of an older head is never found again and falls off the end.

>>> memo = Memo(2)
>>> memo.get_or_make(("db", (1, "h1"), "q"), lambda: 41 + 1)
42
>>> memo.get_or_make(("db", (1, "h1"), "q"), lambda: 0)  # kept
42
>>> memo.hits, memo.misses
(1, 1)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, TypeVar

__all__ = ["ANSWERS", "GROWING", "WHOLE", "Growing", "Memo"]

T = TypeVar("T")


class Memo:
    """At most ``size`` answers, the least recently used forgotten first.

    Two threads asking the same new question may both compute it (the
    answer is the same); the lock only guards the dictionary.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The answer kept under ``key``, or ``make()``'s, kept."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                found: T = self._items[key]
                return found
            self.misses += 1
        value = make()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)


class _Log(Protocol):
    """What :class:`Growing` reads of a ledger (a :class:`lottrace.ledger.Ledger`)."""

    def head(self) -> tuple[int, str]: ...

    def hash_at(self, seq: int) -> str: ...

    def events_after(self, seq: int) -> Sequence[Any]: ...


class Growing:
    """The newest answer to each question, with the head it was computed at, to extend.

    :class:`Memo` forgets an answer as soon as the head moves, so the first
    request after an append computes it from the whole ledger again. For an
    answer that only grows as the log grows (an index of lots, the farms
    placed by harvests), :meth:`get` keeps its newest value under
    ``question`` with the ``(seq, hash)`` it was computed at, and on a new
    head hands it to ``extend(value, events)`` with the events appended
    since (:meth:`lottrace.ledger.Ledger.events_after`, up to the new
    head), which returns the new value, or None when those events could
    change what the old value says (a correction, new master data ...: each
    caller decides and says so); then ``make()`` computes it from scratch.
    ``extend`` must not change the old value (another thread may hold it).

    The old head must still be in the ledger's chain (the same hash at its
    seq), else the answer is made again: a ledger replaced by another is
    never extended. A value is kept only if the head did not move while it
    was computed (an append meanwhile could be half in it). ``question``
    must name the ledger (its genesis hash does).

    >>> from types import SimpleNamespace as E
    >>> class Log:
    ...     seq = 1
    ...     def head(self): return (self.seq, f"h{self.seq}")
    ...     def hash_at(self, seq): return f"h{seq}"
    ...     def events_after(self, seq): return [E(seq=s) for s in range(seq + 1, self.seq + 1)]
    >>> g, log = Growing(4), Log()
    >>> def extend(old, events): return old + [e.seq for e in events]
    >>> g.get(log, "q", lambda: [1], extend)
    [1]
    >>> log.seq = 3
    >>> g.get(log, "q", lambda: [1, 2, 3], extend)
    [1, 2, 3]
    >>> g.made, g.extended
    (1, 1)
    """

    def __init__(self, size: int, most: int = 20_000) -> None:
        self.size = size
        self.most = most  #: more events appended than this: made again, not extended
        self._items: OrderedDict[Hashable, tuple[tuple[int, str], Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.made = 0
        self.extended = 0

    def get(
        self,
        log: _Log,
        question: Hashable,
        make: Callable[[], T],
        extend: Callable[[T, list[Any]], T | None],
    ) -> T:
        """The answer at ``log``'s head: the kept one, extended, or ``make()``'s."""
        head = log.head()
        with self._lock:
            kept = self._items.get(question)
        value: T | None = None
        if kept is not None:
            (seq, digest), old = kept
            if (seq, digest) == head:
                found: T = old
                return found
            if 0 < seq < head[0] <= seq + self.most and log.hash_at(seq) == digest:
                events = [e for e in log.events_after(seq) if e.seq <= head[0]]
                value = extend(old, events)
                if value is not None:
                    self.extended += 1
        if value is None:
            value = make()
            self.made += 1
        if log.head() != head:  # appended meanwhile: the value may hold part of it
            return value
        with self._lock:
            now = self._items.get(question)
            if now is None or now[0][0] <= head[0]:
                self._items[question] = (head, value)
                self._items.move_to_end(question)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.made = self.extended = 0


#: The process's cache of answers (a dashboard for some filters, a lot's card, who sees what).
ANSWERS = Memo(256)
#: Structures as big as the ledger (every leg, the search index, the open lots): a few, so
#: that a ledger appended to all day does not keep one per head it went through.
WHOLE = Memo(6)
#: The newest value of each answer that grows with the log, per ledger (see :class:`Growing`).
GROWING = Growing(32)
