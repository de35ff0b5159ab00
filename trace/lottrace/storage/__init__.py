"""Storage: the interface the ledger's core needs from a database, and the backends behind it.

:class:`Storage` is everything :class:`lottrace.ledger.Ledger` asks of the
place its log lives: the log's rows and their chain, the derived tables
(each lot's state, each lot's events, the kg links, the voided events),
write transactions, the schema and its migrations, and the reads the
queries make. The ledger's own logic (the rules, folding events into lot
states, the hash chain, what ``verify`` proves) is written once, above this
interface, so every backend behaves the same.

Backends: :class:`lottrace.storage.sqlite.SqliteStorage`, one SQLite file
(the default), and :class:`lottrace.storage.postgres.PostgresStorage`, one
schema of a PostgreSQL database, chosen by a ``postgresql://`` URI. Both run
the same tests. :func:`open_storage` is the one place that chooses, and
imports only the backend it opens (so ``import lottrace`` never loads psycopg).

SQL lives only in the backends. Every error of a database driver is mapped
there into the :class:`~lottrace.errors.LottraceError` tree, naming the
ledger, so nothing above this package imports a driver or catches its errors.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from math import floor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..chain import Checked
from ..errors import IntegrityViolation, LedgerError
from ..events import EventBase
from ..rules import LotState

__all__ = [
    "DERIVED_TABLES",
    "KEY_SEP",
    "LEG_BAND_HOURS",
    "US_PER_HOUR",
    "NeedsUpgrade",
    "Pool",
    "Rows",
    "Storage",
    "StoredEvent",
    "display_uri",
    "is_server_uri",
    "leg_band",
    "leg_day_deltas",
    "open_pool",
    "open_storage",
    "raise_row_difference",
    "window",
]

#: The tables folded from the log, in the order ``verify`` compares them.
DERIVED_TABLES = ("lots", "event_lots", "links", "voided", "legs", "leg_days")

#: The separator of the fields of a group's key in :meth:`Storage.legs_grouped`: a C0
#: control character, which no event's text may hold.
KEY_SEP = "\x1f"

#: The width of a band of legs' hours in ``leg_days``: a power of two, so ``hours / 4``
#: is exact, and a leg's band (:func:`leg_band`) is the same in Python and in SQL (the
#: index ``legs_band``: SQLite's ``CAST(hours / 4 AS INTEGER)``, PostgreSQL's
#: ``floor(hours / 4::float8)``; hours are never negative, so the two agree).
LEG_BAND_HOURS = 4.0

#: Microseconds in an hour: a leg's duration is ``round(hours * US_PER_HOUR)``
#: microseconds, exactly (times are kept to the microsecond).
US_PER_HOUR = 3_600_000_000


def leg_band(hours: float) -> int:
    """The band of ``leg_days`` a leg of ``hours`` falls in: ``floor(hours / 4)``."""
    return floor(hours / LEG_BAND_HOURS)


def window(column: str, lo: str | None, hi: str | None, mark: str) -> tuple[list[str], list[str]]:
    """A backend's conditions ``column >= lo`` and ``column < hi`` for the bounds given
    (``mark``: its placeholder), and their parameters."""
    conditions, params = [], []
    for op, bound in ((">=", lo), ("<", hi)):
        if bound is not None:
            conditions.append(f"{column} {op} {mark}")
            params.append(bound)
    return conditions, params


def leg_day_deltas(
    removed: Iterable[Row], added: Iterable[Row]
) -> dict[tuple[str, str, str, int], list[int]]:
    """How ``leg_days`` changes when legs are removed and added.

    ``leg_days`` keeps, for each day (``YYYY-MM-DD`` of the legs' end, UTC),
    stage pair and band of hours, the legs' count, their microseconds, how many
    were trucked and those legs' transit and wait microseconds: integers, so
    the sums are exact whatever the order legs come and go in, and equal to a
    rebuild's. Rows are ``(end_time, from_stage, to_stage, hours,
    transit_hours)``; the answer maps each touched key to the five deltas.
    """
    deltas: dict[tuple[str, str, str, int], list[int]] = {}
    for sign, rows in ((-1, removed), (1, added)):
        for end, frm, to, hours, transit in rows:
            key = (end[:10], frm, to, floor(hours / LEG_BAND_HOURS))
            d = deltas.get(key)
            if d is None:
                d = deltas[key] = [0, 0, 0, 0, 0]
            us = round(hours * US_PER_HOUR)
            d[0] += sign
            d[1] += sign * us
            if transit is not None:
                t = round(transit * US_PER_HOUR)
                d[2] += sign
                d[3] += sign * t
                d[4] += sign * (us - t)
    return deltas


#: ``(lot, src, dst, kg, seq, time)``-style rows, as each backend returns them.
Row = tuple[Any, ...]


class NeedsUpgrade(LedgerError):
    """A ledger opened read-only needs a migration first (see :meth:`Ledger.reader`)."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the ledger holds it."""

    seq: int
    event_id: str
    event: EventBase
    void: bool = False
    role: str = "subject"

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"seq": self.seq, "event_id": self.event_id}
        d.update(self.event.model_dump(mode="json", exclude_none=True))
        if self.void:
            d["void"] = True
        return d


@dataclass
class Rows:
    """The rows one batch writes, buffered until the next flush."""

    #: ``(seq, event_id, type, time, lot, body, prev_hash, hash)``
    events: list[Row]
    #: ``(lot, time, type, seq, role, site)``
    event_lots: list[Row]
    #: ``(dst, src, seq, kg, time)``
    links: list[Row]
    #: ``(event_id, lot, by_event_id, reason)``
    voided: list[Row]
    #: lots whose state is gone (all their events voided)
    lots_gone: list[str]
    #: the new states of lots
    lots_live: list[LotState]


class Storage(abc.ABC):
    """What the ledger's core needs from a database. One instance is one open connection.

    A write happens only between :meth:`begin_write` and :meth:`commit` (or
    :meth:`rollback`): one batch, all of it or none. Reads outside a write
    see the last commit; :meth:`read_snapshot` holds one snapshot for
    several reads (``verify``).
    """

    #: Where the ledger is, as messages name it (a file, or a URI without its password).
    path: Path | str
    #: Opened read-only: nothing is ever written.
    read_only: bool
    #: The ledger's random id (its chain starts from the hash of it).
    ledger_id: str

    # ------------------------------------------------------------------ life

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @property
    @abc.abstractmethod
    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection."""

    @abc.abstractmethod
    def begin_write(self) -> None:
        """Begin a batch's write transaction, waiting for another writer up to the busy timeout."""

    @abc.abstractmethod
    def commit(self) -> None:
        """Commit the write transaction."""

    @abc.abstractmethod
    def rollback(self) -> None:
        """Roll the open transaction back, if there is one (writes still running behind are
        stopped, and their errors forgotten)."""

    @abc.abstractmethod
    def settle(self) -> None:
        """Wait for the writes of the open batch still running behind, and raise the first
        one's error.

        :meth:`write` and :meth:`replace_legs` may return before their rows are
        written (PostgreSQL writes a large batch's rows in a thread while the
        batch goes on); every other method waits for them first, so reads see
        them and their errors are raised there.
        """

    @abc.abstractmethod
    def read_snapshot(self) -> AbstractContextManager[None]:
        """Hold one read snapshot for the ``with`` block (within a transaction already open, none)."""

    # ------------------------------------------------------------------ schema

    @abc.abstractmethod
    def check_schema(self) -> None:
        """Raise :class:`IntegrityViolation` naming the first object not as lottrace made it."""

    @abc.abstractmethod
    def check_schema_quickly(self) -> None:
        """:meth:`check_schema` as cheap as an append can afford."""

    @abc.abstractmethod
    def restore_schema(self) -> list[str]:
        """In a write transaction: make the schema lottrace's, derived tables empty; what changed."""

    # ------------------------------------------------------------------ the log

    @abc.abstractmethod
    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the newest row, or ``(0, genesis)``."""

    @abc.abstractmethod
    def recorded_head(self) -> tuple[int, str]:
        """The head the last batch recorded beside the log (raises if missing or malformed)."""

    @abc.abstractmethod
    def record_head(self, seq: int, head: str) -> None:
        """In a write transaction: record the batch's head beside the log."""

    @abc.abstractmethod
    def hash_at(self, seq: int) -> str:
        """The stored hash of row ``seq``."""

    @abc.abstractmethod
    def check_chain(self, genesis: str, expect: str | None, workers: int | None) -> list[Checked]:
        """Check every row with :func:`lottrace.chain.check_rows`, in ranges; the seams are the caller's."""

    @abc.abstractmethod
    def log_rows(self) -> Iterator[tuple[int, str, str]]:
        """``(seq, event_id, body)`` of every row, in log order, streamed."""

    @abc.abstractmethod
    def corrections(self) -> Iterator[tuple[str, str]]:
        """``(voided event id, body)`` of every correction, from the bodies."""

    @abc.abstractmethod
    def stored_among(self, eids: list[str]) -> set[str]:
        """Which of ``eids`` the log holds."""

    @abc.abstractmethod
    def event_row(self, eid: str) -> tuple[str, bool] | None:
        """``(body, voided)`` of event ``eid``, or None."""

    @abc.abstractmethod
    def seq_of(self, eid: str) -> int:
        """The row number of event ``eid``."""

    @abc.abstractmethod
    def epcis_by_hash(self, hash_id: str) -> list[tuple[str, str]]:
        """``(event_id, body)`` of the foreign events with this Event Hash ID."""

    @abc.abstractmethod
    def event_ids_at(self, seqs: list[int]) -> list[str]:
        """The event ids of the rows ``seqs``, in that order."""

    # ------------------------------------------------------------------ derived tables

    @abc.abstractmethod
    def write(self, rows: Rows) -> None:
        """In a write transaction: write a batch's buffered rows (maybe behind: :meth:`settle`)."""

    @abc.abstractmethod
    def voided_ids(self) -> frozenset[str]:
        """Every voided event's id."""

    @abc.abstractmethod
    def lot_has_void(self, lot: str) -> bool:
        """Whether a voided event named ``lot``."""

    @abc.abstractmethod
    def delete_event_rows(self, seq: int, lots: list[str], formed: list[str], links: int) -> None:
        """Remove the derived rows of row ``seq`` (voided): its ``lots``' rows and its links into ``formed``."""

    @abc.abstractmethod
    def lots_timelines(self, lots: list[str]) -> Iterator[Row]:
        """``(lot, time, type, role, site, seq)`` of the named lots' rows, by lot, time and log order."""

    @abc.abstractmethod
    def replace_legs(self, lots: list[str], legs: list[Row]) -> None:
        """In a write transaction: delete the named lots' legs, then add ``legs`` (rows of ``legs``).

        ``legs`` may hold new legs of other lots too (their old legs stay). Maybe behind, as
        :meth:`write`."""

    @abc.abstractmethod
    def legs_ending(self, lo: str | None, hi: str | None) -> Iterator[Row]:
        """The ``legs`` rows ending in ``[lo, hi)`` (either bound may be None), by lot and ``n``."""

    @abc.abstractmethod
    def legs_grouped(self, by: str, lo: str | None, hi: str | None) -> Iterator[Row]:
        """``(key, hours, transit_hours)`` of the legs ending in ``[lo, hi)``, in no set order
        (ordering would sort the whole window; what reads them does not depend on it).

        ``key`` joins the group's fields with U+001F (which no event text may
        hold): ``from_stage, to_stage`` (``by="stage"``), with ``from_site,
        to_site`` (``"site"``), or ``end_time``'s ``YYYY-MM`` first (``"month"``).
        """

    @abc.abstractmethod
    def leg_days(self, by: str, lo_day: str | None, hi_day: str | None) -> Iterator[Row]:
        """``(key, band, n, us, trucked, transit_us, wait_us)`` summed over the days
        ``[lo_day, hi_day)`` (``YYYY-MM-DD``; either may be None) of ``leg_days``, by
        group and band, in no set order; ``key`` as :meth:`legs_grouped`'s, for
        ``by`` ``"stage"`` or ``"month"``. Sums are exact (Python integers)."""

    @abc.abstractmethod
    def leg_hours_in_band(
        self, frm: str, to: str, band: int, lo: str | None, hi: str | None
    ) -> list[float]:
        """The hours of the ``frm`` to ``to`` legs in ``band`` (:func:`leg_band`) that end
        in ``[lo, hi)``, in no set order: read through the index on the pair, band and end,
        so in proportion to those legs."""

    @abc.abstractmethod
    def lot_fold_rows(self, lot: str) -> list[tuple[str, str, str]]:
        """``(event_id, body, role)`` of the lot's events, in log order: what its state folds."""

    @abc.abstractmethod
    def scratch_derived(self) -> AbstractContextManager[None]:
        """For the block: writes to the derived tables go to private scratch copies."""

    @abc.abstractmethod
    def compare_derived(self) -> None:
        """Raise :class:`IntegrityViolation` naming the first row where the derived tables and the scratch copies differ."""

    @abc.abstractmethod
    def derived_snapshot(self) -> dict[str, list[Row]]:
        """Every derived table's rows, sorted: to compare maintained and rebuilt state."""

    # ------------------------------------------------------------------ reads

    @abc.abstractmethod
    def meta(self, key: str) -> str | None:
        """A value kept beside the log (``ledger_id``, ``head``, ``demo``), or None."""

    @abc.abstractmethod
    def mark_demo(self) -> None:
        """Flag this ledger as a demo ledger."""

    @abc.abstractmethod
    def adopt_ledger_id(self, ledger_id: str) -> None:
        """In a write transaction, on an empty log: take ``ledger_id`` as this ledger's id.

        A copy of a ledger (``lottrace copy``) keeps its source's id, so its
        chain, which starts from the hash of the id, is the source's.
        """

    # ------------------------------------------------------------------ sources (merging)

    @abc.abstractmethod
    def write_sources(
        self, ledger_id: str, rows: Iterable[tuple[int, str, str]], head: tuple[int, str]
    ) -> None:
        """In a write transaction: record rows ``(seq, event_id, hash)`` of the source ledger
        ``ledger_id``'s chain, and its head ``(seq, hash)`` (``meta`` key ``source:ID``)."""

    @abc.abstractmethod
    def source_rows(self, ledger_id: str) -> Iterator[tuple[int, str, str, str | None]]:
        """``(seq, event_id, hash, body)`` of the source's recorded rows in its order (body
        None: no such event in the log), streamed."""

    @abc.abstractmethod
    def source_ids(self) -> list[tuple[str, int]]:
        """``(ledger id, rows)`` of every source merged into this ledger, by id."""

    @abc.abstractmethod
    def lot(self, code: str) -> LotState | None:
        """One lot's state, or None."""

    @abc.abstractmethod
    def lots_states(self, codes: Iterable[str]) -> dict[str, LotState]:
        """The states of the named lots that exist, by code."""

    @abc.abstractmethod
    def lot_hint(self, code: str) -> list[str]:
        """Up to three lot codes like ``code``, for a "did you mean" hint."""

    @abc.abstractmethod
    def event(self, eid: str) -> StoredEvent | None:
        """One event by lottrace's id, or None."""

    @abc.abstractmethod
    def find_events(self, some_id: str) -> list[StoredEvent]:
        """Events named by lottrace's id, an Event Hash ID or a partner's eventID, in log order."""

    @abc.abstractmethod
    def iter_events(self) -> Iterator[StoredEvent]:
        """Every event in log order, void ones flagged."""

    @abc.abstractmethod
    def events_of_types(self, types: list[str]) -> Iterator[StoredEvent]:
        """Every event of these types in log order, void ones flagged."""

    @abc.abstractmethod
    def events_after(self, seq: int) -> list[StoredEvent]:
        """Every event after sequence number ``seq``, in log order, void ones flagged."""

    @abc.abstractmethod
    def voided_by(self, eid: str) -> str | None:
        """The correction that voided ``eid``, or None."""

    @abc.abstractmethod
    def lot_events(self, code: str) -> list[StoredEvent]:
        """The lot's non-void events, in time order, with their roles."""

    @abc.abstractmethod
    def voided_for_lot(self, code: str) -> list[str]:
        """Ids of void events that named this lot, in log order."""

    @abc.abstractmethod
    def counts(self) -> dict[str, Any]:
        """``by_type``, ``lots``, ``voided``, ``first_time`` and ``last_time`` of the ledger."""

    @abc.abstractmethod
    def sites(self) -> list[str]:
        """Every site an event happened at, most used first, then by name."""

    @abc.abstractmethod
    def lineage_links(self, code: str, *, direction: str) -> list[Row]:
        """``(src, dst, kg, seq, time)`` of every link in the lot's lineage, ``up`` or ``down``."""

    @abc.abstractmethod
    def ancestor_link_kgs(self, code: str) -> list[Row]:
        """``(src, dst, kg)`` of every link into the lot or one of its ancestors."""

    @abc.abstractmethod
    def lots_events(
        self, codes: Iterable[str], *, own_types: Iterable[str] | None = None
    ) -> Iterator[tuple[str, StoredEvent]]:
        """``(lot, event)`` for the named lots' non-void events, by lot then time."""

    @abc.abstractmethod
    def own_event_bodies(self, codes: Iterable[str], types: Iterable[str]) -> list[Row]:
        """``(lot, role, time key, seq, body)`` of the lots' own events of ``types``."""

    @abc.abstractmethod
    def voided_for_lots(self, codes: Iterable[str]) -> list[str]:
        """Ids of void events that named any of these lots, in log order, each once."""

    @abc.abstractmethod
    def link_inflows(self, codes: Iterable[str]) -> dict[str, float]:
        """For each named lot formed from inputs, the kg on the links into it."""

    @abc.abstractmethod
    def leg_rows(self) -> Iterator[Row]:
        """``(lot, time, type, role, site)`` of every (lot, event) pair, by lot, time and seq."""

    @abc.abstractmethod
    def leg_scan(self, lot: str | None = None, *, marks: bool = True) -> Iterator[Row]:
        """:meth:`leg_rows` in the derived key's order (see the SQLite backend)."""

    @abc.abstractmethod
    def open_lot_checkpoints(self, types: Iterable[str]) -> list[Row]:
        """``(lot, kg_left, last_qc, type, time, site)`` of lots with kg left, oldest first."""


class Pool(abc.ABC):
    """Open connections to a ledger's database server, shared by the ledgers opened through it.

    A server keeps one for its lifetime, so its requests do not each connect;
    :func:`open_pool` makes it, and whoever made it closes it.
    """

    #: The most connections it ever holds open.
    size: int

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection (those in use are closed when given back)."""


#: What a backend calls to fold the whole log into its (empty) derived tables.
Refold = Callable[[Storage], int]


#: The URI schemes that name a PostgreSQL database instead of an SQLite file.
SERVER_SCHEMES = ("postgresql://", "postgres://")


def is_server_uri(target: object) -> bool:
    """Whether ``target`` is a PostgreSQL URI (``postgresql://`` or ``postgres://``), not a file.

    >>> is_server_uri("postgresql:///lottrace?host=/var/run/postgresql"), is_server_uri("l.db")
    (True, False)
    """
    return isinstance(target, str) and target.lower().startswith(SERVER_SCHEMES)


def display_uri(uri: str) -> str:
    """``uri`` as messages show it: without its password (in the user part or the query).

    >>> display_uri("postgresql://ana:s3cret@db.example/lots?sslmode=require&password=x")
    'postgresql://ana@db.example/lots?sslmode=require'
    >>> display_uri("postgresql:///lottrace?host=/var/run/postgresql")
    'postgresql:///lottrace?host=/var/run/postgresql'
    """
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}@{host}"
    query = "&".join(
        q for q in parts.query.split("&") if q and not q.lower().startswith("password=")
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def open_pool(target: str | os.PathLike[str], *, size: int) -> Pool | None:
    """A pool of at most ``size`` connections for a PostgreSQL URI; None for an SQLite file.

    An SQLite file is opened per use (it costs a file open, not a login).
    """
    if is_server_uri(target):
        from .postgres import PostgresPool

        return PostgresPool(str(target), size=size)
    return None


def open_storage(
    target: str | os.PathLike[str],
    *,
    refold: Refold,
    busy_timeout_s: float,
    read_only: bool = False,
    create: bool = False,
    pool: Pool | None = None,
) -> Storage:
    """The backend ``target`` names: PostgreSQL for a ``postgresql://`` URI, else the SQLite file.

    Only the chosen backend's module (and its driver) is imported. With
    ``pool`` (from :func:`open_pool` for the same URI), the connection is
    borrowed from it and given back on :meth:`Storage.close`.
    """
    if is_server_uri(target):
        from .postgres import PostgresPool, PostgresStorage

        if pool is not None and not isinstance(pool, PostgresPool):
            raise TypeError("a PostgreSQL ledger needs a PostgresPool")
        return PostgresStorage(
            str(target),
            refold=refold,
            busy_timeout_s=busy_timeout_s,
            read_only=read_only,
            create=create,
            pool=pool,
        )
    from .sqlite import SqliteStorage

    return SqliteStorage(
        target, refold=refold, busy_timeout_s=busy_timeout_s, read_only=read_only, create=create
    )


def raise_row_difference(
    path: Any, table: str, cols: Sequence[str], keys: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Name the first row where derived ``table`` and its refold differ, as both backends do.

    ``rows`` are at most two rows of ``(side, *cols)``, ordered by ``keys``: side 0 is in the
    table and not in the refold, side 1 the other way. One of each with the same key is an
    edited row; one alone was added or deleted.
    """
    first = rows[0]
    key_of = [cols.index(k) + 1 for k in keys]
    key = " ".join(f"{k}={first[i]}" for k, i in zip(keys, key_of, strict=True))
    if len(rows) == 2 and [rows[1][i] for i in key_of] == [first[i] for i in key_of]:
        had, gives = first[1:], rows[1][1:]
        col = next(
            (c for c, a, b in zip(cols, had, gives, strict=True) if repr(a) != repr(b)),
            cols[0],
        )
        how = (
            f"differs from what the log gives ({col} is {had[cols.index(col)]!r}, "
            f"the log gives {gives[cols.index(col)]!r}: edited behind lottrace's back)"
        )
    elif first[0] == 0:
        how = "is not what the log gives (added behind lottrace's back)"
    else:
        how = "is missing (the log gives it: deleted behind lottrace's back)"
    raise IntegrityViolation(
        f"{path}: derived table {table}: row {key} {how}; run 'lottrace rebuild'"
    )
