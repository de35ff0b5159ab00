"""Pausing Python's cyclic garbage collector around one hot loop, and nothing more.

An import's write loop and a delay scan make no reference cycles (reference
counting frees all they drop), but each full collection on the way walks
every container that lives on: the cached lot states, the buffered rows. So
those loops pause the collector, and only they: :func:`collector_paused`
restores it as it was, on error too, so a program that embeds lottrace keeps
its own collector setting.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the ``with`` block, then restore it as it was.

    >>> import gc
    >>> with collector_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
