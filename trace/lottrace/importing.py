"""Importing: files, records or EPCIS documents into a ledger, all or nothing.

The one import service. The CLI's ``import`` and ``epcis import`` call it,
and so will the server's capture: each gets the same checks, the same
duplicates skipped, the same :class:`~lottrace.ledger.AppendReport`, and
the same refusal when something is wrong.

All or nothing: every row is read and checked against the data contract,
and every event against the ledger rules, in one write transaction. If any
row is bad, nothing is written and :class:`~lottrace.errors.BadRows` lists
every row that breaks the contract with the first rule broken, in file and
line order (one bad row is raised as itself).

Large files (:data:`PARALLEL_BYTES` and more) are read and validated in a
second process while this one checks rules and writes
(:mod:`lottrace.pipeline`); the answers are the same either way.

>>> import tempfile, pathlib
>>> from lottrace.ledger import Ledger
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> rows = folder / "harvest.jsonl"
>>> _ = rows.write_text('{"type": "harvest", "time": "2025-05-01T08:00:00-05:00", '
...     '"site": "farm:F1", "lot": "H1", "kg": 1000, "producer": "P1", '
...     '"plot": {"id": "PL1", "geometry": {"type": "Point", '
...     '"coordinates": [-78.846211, -5.628954]}}}\\n')
>>> with Ledger.create(folder / "season.db") as ledger:
...     import_files(ledger, [rows]).added
1
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BadRows, InvalidEvent, LottraceError, RuleViolation
from .events import parse_event
from .ledger import AppendReport, Ledger, Prepared
from .pipeline import Hooks, prepared_events

__all__ = [
    "PARALLEL_BYTES",
    "ReadOptions",
    "import_documents",
    "import_files",
    "import_records",
]

#: ``transform(where, event)``: the event to append in place of one read (see :func:`import_files`).
Transform = Callable[[str, Any], Any]

#: Inputs at least this big (bytes, about 4,000 events) are read and
#: validated in a second process while this one checks rules and writes.
PARALLEL_BYTES = 1_000_000


@dataclass(frozen=True)
class ReadOptions:
    """How to read the files of an import (see ``lottrace import --help``)."""

    #: The event type of rows that have no ``type`` column.
    default_type: str | None = None
    #: The text encoding of CSV files (default: UTF-8, or cp1252 if not UTF-8).
    encoding: str | None = None
    #: The CSV delimiter: ``,``, ``;`` or ``tab`` (default: detected).
    delimiter: str | None = None
    #: A column map (TOML) for sheets with their own column names.
    map_path: Path | None = None
    #: The sheet of an ``.xlsx`` workbook (default: the first).
    sheet: str | None = None


def _quiet(_message: str) -> None:
    pass


def _no_progress(_n: int) -> None:
    pass


def import_files(
    ledger: Ledger,
    files: Sequence[str | os.PathLike[str]],
    options: ReadOptions = ReadOptions(),
    *,
    on_note: Callable[[str], None] = _quiet,
    on_map: Callable[[str, str], None] | None = None,
    progress: Callable[[int], None] = _no_progress,
    parallel: bool | None = None,
    transform: Transform | None = None,
    dry_run: bool = False,
) -> AppendReport:
    """Import JSON Lines, JSON array, CSV or ``.xlsx`` files into ``ledger``, all or nothing.

    ``on_note`` hears how a file was read (a delimiter guessed, a fallback
    encoding), ``on_map`` the column map used when every column of a sheet
    was recognised (its name and TOML), ``progress`` the bytes read so far.
    ``parallel`` reads in a second process (default: for inputs of
    :data:`PARALLEL_BYTES` or more); a program with threads of its own
    should pass ``False``, as forking a threaded process is unsafe.
    ``transform(where, event)`` gives the event to append in place of each
    one read (the server records its caller as the ``actor``), or raises
    to refuse it. With ``dry_run`` everything is read and checked as for a
    real import (the ledger's rules in its transaction) and nothing is
    written: the report says what the import would do.

    Raises :class:`~lottrace.errors.BadRows` (or the one bad row itself)
    when any row is bad; nothing is written then.
    """
    from .sheets import iter_import

    paths = [Path(f) for f in files]
    if parallel is None:
        parallel = sum(p.stat().st_size for p in paths if p.is_file()) >= PARALLEL_BYTES

    def read(hooks: Hooks) -> Iterator[Any]:  # in a second process for a large input
        events = iter_import(
            paths,
            map_path=options.map_path,
            default_type=options.default_type,
            encoding=options.encoding,
            delimiter=options.delimiter,
            sheet=options.sheet,
            progress=hooks.progress,
            on_error=hooks.on_error,
            on_note=hooks.on_note,
            on_map=on_map,
        )
        if transform is None:
            yield from events
        else:
            for where, ev in events:
                yield where, transform(where, ev)

    bad: list[LottraceError] = []  # every row that breaks the contract, and the first rule broken
    hooks = Hooks(on_error=bad.append, on_note=on_note, progress=progress)
    prepared = prepared_events(read, hooks, parallel=parallel)  # forks before the batch begins
    try:
        return _append_all(ledger, prepared, bad, [str(p) for p in paths], dry_run=dry_run)
    finally:
        prepared.close()  # the reader process, even if the batch never began


def import_records(
    ledger: Ledger, records: Iterable[tuple[str, Mapping[str, Any]]]
) -> AppendReport:
    """Import ``(where, record)`` pairs (plain dicts, as JSON gives them), all or nothing.

    ``where`` names each record in messages (``upload.json:3``, ``$[2]``).
    Every record that breaks the contract is listed, as for files.

    >>> from lottrace.ledger import Ledger
    >>> import tempfile, pathlib
    >>> with Ledger.create(pathlib.Path(tempfile.mkdtemp()) / "s.db") as ledger:
    ...     import_records(ledger, [("$[0]", {"type": "drying"}), ("$[1]", {"type": "x"})])
    Traceback (most recent call last):
    ...
    lottrace.errors.BadRows: 2 bad rows; nothing was written
    """
    bad: list[LottraceError] = []

    def prepared() -> Iterator[Prepared]:
        from .ledger import prepare

        for where, record in records:
            try:
                yield prepare(where, parse_event(dict(record), where=where))
            except InvalidEvent as exc:
                bad.append(exc)

    return _append_all(ledger, prepared(), bad, [])


def import_documents(
    ledger: Ledger,
    documents: Iterable[tuple[str, dict[str, Any]]],
    *,
    transform: Transform | None = None,
) -> AppendReport:
    """Import the events of EPCIS documents (``(name, document)`` pairs), all or nothing.

    Each document is one that :func:`lottrace.epcis.load_document` read and
    checked (JSON-LD or XML); its events are mapped by
    :func:`lottrace.epcis.document_to_events` and appended in one batch.
    Master data the ledger holds already (the same element content, a
    header equal to a stored one) is counted as a duplicate, whatever the
    document's date (:func:`lottrace.masterdata.fresh`). ``transform`` is as
    for :func:`import_files`, applied after that.
    """
    from .epcis import document_to_events
    from .masterdata import fresh

    items: Iterator[tuple[str, Any]] = fresh(
        ledger, (item for name, doc in documents for item in document_to_events(doc, name))
    )
    if transform is not None:
        items = ((where, transform(where, ev)) for where, ev in items)
    return ledger.append(items)


def _append_all(
    ledger: Ledger,
    prepared: Iterable[Prepared],
    bad: list[LottraceError],
    files: list[str],
    *,
    dry_run: bool = False,
) -> AppendReport:
    """Append ``prepared`` in one batch; if ``bad`` fills up on the way, write nothing and raise."""

    def events() -> Iterator[Prepared]:
        for item in prepared:
            if not bad:  # after a bad row, only look for more bad rows
                yield item
        if bad:  # raised inside the batch, so nothing is written
            raise _rejected(bad, files)

    stream = events()
    try:
        return ledger.append_prepared(stream, dry_run=dry_run)
    except RuleViolation as exc:  # rolled back; list the other bad rows with it
        if exc in bad:
            raise
        bad.append(exc)
        for _ in stream:
            pass
        raise _rejected(bad, files) from None


def _rejected(bad: list[LottraceError], files: list[str]) -> LottraceError:
    """The error for an import's bad rows: the row itself if one, else :class:`BadRows` in order."""
    if len(bad) == 1:
        return bad[0]
    order = {name: i for i, name in enumerate(files)}
    return BadRows(sorted(bad, key=lambda e: _where_key(getattr(e, "where", ""), order)))


def _where_key(where: str, order: dict[str, int]) -> tuple[int, int]:
    """Sort key for a ``file:line`` location: files in the order given, then lines."""
    path, _, line = where.rpartition(":")
    return order.get(path, len(order)), int(line) if line.isdigit() else 0
