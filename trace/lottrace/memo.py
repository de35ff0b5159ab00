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
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["ANSWERS", "WHOLE", "Memo"]

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


#: The process's cache of answers (a dashboard for some filters, a lot's card, who sees what).
ANSWERS = Memo(256)
#: Structures as big as the ledger (every leg, the search index, the open lots): a few, so
#: that a ledger appended to all day does not keep one per head it went through.
WHOLE = Memo(6)
