"""Prepare events for the ledger in a second process while this one writes them.

An import does two kinds of work. Reading, validating, writing the canonical
JSON and hashing depend on each event alone; checking rules against the
ledger, chaining and writing must happen in order, in the process that holds
the write transaction. :func:`prepared_events` runs the first kind in a forked
child process and streams :class:`~lottrace.ledger.Prepared` events back
through a pipe in small batches, so on a machine with two cores the two halves
run at the same time, and memory stays flat however long the input is.

The reader's callbacks (a bad row, a note on how a file was read, progress)
are called in this process, in the same order as without the child, so a
caller cannot tell the two apart except by the time taken. An error raised by
the reader is raised here after every event read before it. If the child dies,
the import fails with a :class:`~lottrace.errors.LottraceError` and, since
nothing is committed until the whole batch is in, nothing is written.

The child never opens the ledger: it only reads the input and sends values
(prepared events, bad rows, notes, progress) in order. The writer looks up
every id itself, so no answer from another process can make it skip an
event or store one twice.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import queue
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InvalidEvent, LottraceError
from .events import EventBase
from .gcpause import collector_paused
from .ledger import Prepared, prepare
from .rules import Facts

__all__ = ["Hooks", "PreparedStream", "prepared_events"]

#: Prepared events sent to the parent in one message.
_BATCH = 500
#: Messages the child may have ready before it waits for the parent (about 20,000 events).
_QUEUED = 40
#: The pipe's buffer: Linux allows up to 1 MiB without privileges.
_PIPE_BYTES = 1 << 20
_ITEM, _BAD, _NOTE, _PROGRESS, _RAISE, _END = range(6)


@dataclass(frozen=True)
class Hooks:
    """The callbacks a reader takes: see :func:`lottrace.readers.iter_events`."""

    on_error: Callable[[InvalidEvent], None]
    on_note: Callable[[str], None]
    progress: Callable[[int], None]


Read = Callable[[Hooks], Iterable[tuple[str, EventBase]]]


class PreparedStream(Iterator[Prepared]):
    """Prepared events as they come, with :meth:`close` to stop their making.

    ``close`` stops and joins the child process whether or not the stream was
    ever read (a write transaction that fails to start never reads it).
    """

    def __init__(self, events: Iterator[Prepared], child: Any = None, receiver: Any = None) -> None:
        self._events = events
        self._child = child
        self._receiver = receiver

    def __next__(self) -> Prepared:
        return next(self._events)

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()
        if self._receiver is not None and not self._receiver.closed:
            self._receiver.close()
        if self._child is not None:
            if self._child.is_alive():
                self._child.terminate()
            self._child.join()


def prepared_events(read: Read, hooks: Hooks, *, parallel: bool) -> PreparedStream:
    """The events ``read(hooks)`` yields, prepared for :meth:`Ledger.append_prepared`.

    With ``parallel``, ``read`` runs in a child process forked now, and the
    hooks are called here as the child reports. Without it, on one core, or
    where ``fork`` is not available, it runs here, one event at a time. Fork
    before a write transaction begins; a program with threads of its own (a
    server) should pass ``parallel=False``, as forking a threaded process is
    unsafe.

    >>> from lottrace.events import parse_event
    >>> ev = parse_event({"type": "drying", "time": "2025-06-02T09:30:00-05:00",
    ...                   "site": "farm:X", "lot": "L1", "kg": 200})
    >>> hooks = Hooks(on_error=print, on_note=print, progress=lambda n: None)
    >>> [p.where for p in prepared_events(lambda h: [("a.jsonl:1", ev)], hooks, parallel=True)]
    ['a.jsonl:1']
    """
    one_core = (os.cpu_count() or 1) < 2
    if not parallel or one_core or "fork" not in multiprocessing.get_all_start_methods():
        return PreparedStream(prepare(where, ev) for where, ev in read(hooks))
    ctx = multiprocessing.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    _widen(sender)
    child = ctx.Process(target=_child, args=(read, sender, receiver), daemon=True)
    try:
        child.start()
    finally:
        sender.close()
    return PreparedStream(_receive(child, receiver, hooks), child, receiver)


def _widen(conn: Any) -> None:
    """Give the pipe room for a few messages (Linux; elsewhere it keeps its size)."""
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    except (ImportError, OSError):
        pass


def _receive(child: Any, receiver: Any, hooks: Hooks) -> Iterator[Prepared]:
    new = tuple.__new__  # the named tuples' own __new__ is Python code, a third slower
    try:
        while True:
            try:
                ops = pickle.loads(receiver.recv_bytes())
            except (EOFError, OSError):
                child.join()
                raise LottraceError(
                    f"the process reading the input stopped unexpectedly (exit code "
                    f"{child.exitcode}); nothing was written"
                ) from None
            for op, value in ops:
                if op == _ITEM:
                    where, body, eid, facts = value
                    yield new(Prepared, (where, body, eid, new(Facts, facts)))
                elif op == _PROGRESS:
                    hooks.progress(value)
                elif op == _BAD:
                    hooks.on_error(value)
                elif op == _NOTE:
                    hooks.on_note(value)
                elif op == _RAISE:
                    raise value
                else:
                    return
    finally:
        receiver.close()
        if child.is_alive():
            child.terminate()
        child.join()


def _child(read: Read, sender: Any, receiver: Any) -> None:
    """In the child: read, prepare and send, in order, then an end mark (or the error).

    The child closes its copy of the parent's end of the pipe first, so that
    if the parent dies its next send fails and it exits, instead of waiting
    forever for a reader that is gone.
    """
    receiver.close()
    gc.freeze()  # what the child inherited is not garbage: keep the collector off it
    ops: list[tuple[int, Any]] = []
    # A thread writes to the pipe, so the reading goes on while the parent is busy
    # (writing a chunk to SQLite, say) instead of waiting for it to take one batch.
    outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED)

    def write() -> None:
        while (blob := outbox.get()) is not None:
            try:
                sender.send_bytes(blob)
            except OSError:  # the parent is gone or stopped listening
                os._exit(1)

    # The writer needs the GIL back after each write; don't make it wait 5 ms for it.
    sys.setswitchinterval(0.0005)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()

    def send() -> None:
        outbox.put(pickle.dumps(ops, protocol=pickle.HIGHEST_PROTOCOL))
        ops.clear()

    def progress(n: int) -> None:
        if ops and ops[-1][0] == _PROGRESS:
            n += ops.pop()[1]
        ops.append((_PROGRESS, n))

    hooks = Hooks(
        on_error=lambda exc: ops.append((_BAD, _portable(exc))),
        on_note=lambda message: ops.append((_NOTE, message)),
        progress=progress,
    )
    try:
        # Reading and preparing make no reference cycles, as appending makes none
        # (tests/test_ledger.py checks both): the collector would find nothing.
        with collector_paused():
            for n, (where, ev) in enumerate(read(hooks), 1):
                p = prepare(where, ev)
                ops.append((_ITEM, (p.where, p.body, p.eid, tuple(p.facts))))
                if n % _BATCH == 0:
                    send()
        ops.append((_END, None))
    except BaseException as exc:  # raised in the parent, after the events before it
        ops.append((_RAISE, _portable(exc)))
    send()
    outbox.put(None)
    writer.join()
    sender.close()


def _portable(exc: BaseException) -> BaseException:
    """``exc``, or an equivalent :class:`LottraceError` if it does not survive pickling."""
    try:
        back = pickle.loads(pickle.dumps(exc))
        if type(back) is type(exc) and str(back) == str(exc):
            return exc
    except Exception:  # anything that does not survive pickling is replaced below
        pass
    if isinstance(exc, LottraceError):
        return LottraceError(str(exc))
    return LottraceError(f"reading the input failed: {type(exc).__name__}: {exc}")
