"""The ledger: an append-only, hash-chained log of events, checked against the rules, and its derived tables.

:class:`Ledger` is the core every face calls. It holds a
:class:`~lottrace.storage.Storage` (SQLite by default,
:class:`~lottrace.storage.sqlite.SqliteStorage`), and does, the same on
every backend, what makes the log trustworthy:

- **append** a batch atomically: each event checked against the rules
  (:func:`lottrace.rules.check`) and the state so far, chained
  (:mod:`lottrace.chain`), and folded into the derived tables
  (:func:`lottrace.rules.fold`); an event already in the log is counted as a
  duplicate; the first rule broken writes nothing;
- **verify** everything the queries read: every body, id and chain link,
  the recorded head, the schema, and every derived row (the verified log is
  folded again into scratch tables and compared);
- **rebuild** the derived tables from the log alone, putting the schema
  back to lottrace's first.

Its reads (a lot's state, its events, its lineage's links, the leg scans)
are the storage's, with lottrace's errors for an unknown lot or event.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from .chain import genesis, link, prev_message
from .errors import (
    IntegrityViolation,
    InvalidEvent,
    LedgerError,
    LottraceError,
    RuleViolation,
    UnknownEvent,
    UnknownLot,
)
from .events import EpcisEvent, EventBase, canonical_json, event_id, parse_event, record_time
from .gcpause import collector_paused
from .legwalk import LegRow, LegWalk
from .rules import (
    FOREIGN_STAGE,
    Facts,
    LotState,
    check,
    check_refolded,
    facts_of,
    fold,
    lots_of,
)
from .storage import NeedsUpgrade, Pool, Rows, Storage, StoredEvent, is_server_uri, open_storage
from .storage.sqlite import BUSY_TIMEOUT_S

__all__ = [
    "BUSY_TIMEOUT_S",
    "AppendReport",
    "Ledger",
    "Prepared",
    "RuleWarning",
    "StoredEvent",
    "VerifyReport",
    "WholeInputs",
    "prepare",
]

#: Rows buffered before they are written (and lot states flushed) inside a batch.
_CHUNK = 5000


#: Lot states a batch keeps in memory (about 300 bytes each).
_STATES = 50_000

#: The filters of lots a batch forgot (:class:`_Added`): 2**26 bits, 8 MiB each.
_LOT_BITS = 26


#: Events read ahead so their duplicates and lot states are looked up in one query each.
_LOOKAHEAD = 1000


@dataclass(frozen=True)
class RuleWarning:
    """A warning raised on append: where, which rule, what."""

    where: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: warning [{self.rule}] {self.message}"


@dataclass
class AppendReport:
    """What one batch did."""

    added: int = 0
    duplicates: int = 0
    warnings: list[RuleWarning] = field(default_factory=list)
    warning_count: int = 0
    head: str = ""
    #: Events met again that a correction voided: skipped, not counted as duplicates.
    voided_again: int = 0
    #: ``voided_again`` by input file (the part of ``where`` before ``:LINE``).
    voided_again_in: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "duplicates": self.duplicates,
            "voided_again": self.voided_again,
            "warnings": self.warning_count,
            "head": self.head,
        }


@dataclass(frozen=True)
class VerifyReport:
    """A passed verification: how many events, and the head of the chain."""

    events: int
    head: str


@dataclass(frozen=True)
class SourceLog:
    """Where a merged batch's events come from (:meth:`Ledger.append_prepared`).

    ``rows`` gives the source ledger's rows ``(seq, event_id, hash)`` to record
    (read once, after its events are appended); ``head`` is the source's
    ``(seq, hash)`` once they are.
    """

    ledger_id: str
    rows: Callable[[], Iterable[tuple[int, str, str]]]
    head: tuple[int, str]


class Prepared(NamedTuple):
    """One event ready for the log: its origin, canonical body, id and facts.

    Everything here follows from the event alone, so it can be computed in
    another process (:mod:`lottrace.pipeline`) while this one checks rules
    against the ledger and writes.
    """

    where: str  #: e.g. ``file.csv:12``, for messages
    body: str  #: canonical JSON
    eid: str  #: sha256 of the body
    facts: Facts


class WholeInputs(NamedTuple):
    """An event whose ``inputs`` name lots without kilos: each gives all it has left.

    ``record`` is the event as a plain dict, its inputs ``{"lot": ...}`` for
    the ``whole`` lots (and ``{"lot", "kg"}`` for the others). It is resolved
    in the batch that appends it, against the lots' state at that point
    (:meth:`_Batch.resolve`), into an ordinary event; the event's ``kg``, if
    it states one, must match the inputs' sum within the 2 % scale tolerance.
    """

    record: dict[str, Any]
    whole: tuple[str, ...]


#: ``Prepared.eid`` of a :class:`WholeInputs` not yet resolved (its body is the record).
UNRESOLVED = ""


def prepare(where: str, ev: EventBase | WholeInputs) -> Prepared:
    """The :class:`Prepared` form of a validated event, the one door into the log.

    A foreign EPCIS event is checked here as a document's event would be
    (:func:`_check_foreign`): one whose ``hash_id`` is not its CBV 2.0 Event
    Hash ID is refused (rule ``epcis-hash``). A :class:`WholeInputs` is
    carried as it is (``eid`` empty, its facts those of the event with one kg
    per whole lot), for the batch to resolve.
    """
    if isinstance(ev, WholeInputs):
        rec = ev.record
        stand_in = {**rec, "inputs": [{"kg": 1, **i} for i in rec["inputs"]]}
        facts = facts_of(parse_event(stand_in, where=where))
        return Prepared(where, orjson.dumps([rec, list(ev.whole)]).decode(), UNRESOLVED, facts)
    if isinstance(ev, EpcisEvent):
        _check_foreign(where, ev)
    body = canonical_json(ev)
    return Prepared(where, body.decode(), event_id(body), facts_of(ev))


#: The largest quantity in kg a foreign event may state (a million tonnes): a bound
#: that keeps every sum of weights finite.
MAX_FOREIGN_KG = 1e9


def _check_foreign(where: str, ev: EpcisEvent) -> None:
    """A ``type: epcis`` event passes what ``lottrace epcis import`` checks of a document.

    Its ``event`` is a well-formed EPCIS 2.0 event (GS1's JSON Schema rules,
    ids as URIs), its ``time`` is the event's ``eventTime``, its quantities
    are finite, and its ``hash_id`` is its Event Hash ID, recomputed.
    """
    from .epcis_check import EPCIS_CONTEXT, event_hash, first_problem

    context: list[Any] = [EPCIS_CONTEXT]
    if ev.context:
        context.append(ev.context)
    doc = {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2000-01-01T00:00:00Z",
        "epcisBody": {"eventList": [ev.event]},
    }
    problem = first_problem(doc)
    if problem is not None:
        path = problem[0].replace("$.epcisBody.eventList[0]", "event", 1)
        raise InvalidEvent(f"field '{path}': {problem[1]}", where=where, field=path)
    stated = record_time(str(ev.event.get("eventTime", "")))
    try:
        same = datetime.fromisoformat(stated) == ev.time
    except ValueError:
        same = False
    if not same:
        raise InvalidEvent(
            f"field 'time': {ev.time.isoformat()} is not the event's eventTime {stated}",
            where=where,
            field="time",
        )
    for name in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        for i, q in enumerate(ev.event.get(name) or ()):
            quantity = q.get("quantity") if isinstance(q, dict) else None
            if isinstance(quantity, int | float) and not 0 <= quantity <= MAX_FOREIGN_KG:
                why = (
                    "is negative (an amount of coffee cannot be)"
                    if quantity < 0
                    else f"is more than {MAX_FOREIGN_KG:.0e} (a million tonnes)"
                )
                raise InvalidEvent(
                    f"field 'event.{name}[{i}].quantity': {quantity!r} {why}",
                    where=where,
                    field=f"event.{name}[{i}].quantity",
                )
    computed = event_hash(ev.event, ev.context, where=where)
    if computed != ev.hash_id:
        raise RuleViolation(
            f"hash_id {ev.hash_id} is not the event's Event Hash ID {computed}",
            rule="epcis-hash",
            where=where,
            field="hash_id",
        )


def _stored_facts(body: str | bytes) -> Facts:
    """The facts of an event as the log stores it."""
    return facts_of(parse_event(orjson.loads(body), stored=True))


class Ledger:
    """An open ledger.

    ``Ledger(path)`` opens the SQLite ledger at ``path`` for writing (or,
    given a ``postgresql://`` URI, the PostgreSQL one there);
    :meth:`create` makes one, :meth:`reader` opens one read-only. Use it as
    a context manager, or :meth:`close` it.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "doc.db")
    >>> with Ledger.create(path) as ledger:
    ...     ledger.stats()["events"]
    0
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        read_only: bool = False,
        pool: Pool | None = None,
        _create: bool = False,
    ):
        self.store: Storage = open_storage(
            path,
            refold=_fold_log,
            busy_timeout_s=busy_timeout_s,
            read_only=read_only,
            create=_create,
            pool=pool,
        )
        #: The ledger as messages name it: its file, or its URI without the password.
        self.path = self.store.path
        #: Opened with ``read_only``: nothing is ever written (no journal-mode
        #: switch, no migration), so a ledger on a read-only mount, without
        #: write permission, in a read-only folder or on a full disk can be
        #: read and verified.
        self.read_only = read_only
        #: What the last :meth:`rebuild` dropped or restored to make the schema lottrace's.
        self.repaired: list[str] = []

    @classmethod
    def reader(
        cls, path: str | os.PathLike[str], *, upgrade: bool = True, pool: Pool | None = None
    ) -> Ledger:
        """Open the ledger read-only, to read or verify it.

        A ledger written by an older lottrace needs its schema brought up to
        date (a migration) before it can be read. With ``upgrade`` that is
        done first, through a short-lived writable open, if the file can be
        written; ``verify`` passes ``upgrade=False``, since it never writes.
        """
        try:
            return cls(path, read_only=True, pool=pool)
        except NeedsUpgrade:
            if not upgrade or (not is_server_uri(path) and not os.access(path, os.W_OK)):
                raise  # a database server says itself whether this user may migrate
        cls(path).close()  # migrates, in one transaction
        return cls(path, read_only=True, pool=pool)

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Ledger:
        """Create the ledger at ``path`` (or open it), and bring its schema up to date.

        An existing file is only ever opened if it is empty or already a
        lottrace ledger: another program's SQLite file is left untouched.
        """
        return cls(path, _create=True)

    @property
    def conn(self) -> Any:
        """The backend's connection (sqlite3's, or psycopg's on PostgreSQL): for tests and
        tools that look under the hood."""
        return self.store.conn  # type: ignore[attr-defined]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ chain

    @property
    def genesis(self) -> str:
        """The hash the chain starts from: sha256 of this ledger's random id."""
        return genesis(self.store.ledger_id)

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest event, or (0, genesis) for an empty log."""
        return self.store.head()

    def verify(self, *, expect: str | None = None, workers: int | None = None) -> VerifyReport:
        """Recompute every event id and the whole chain; raise on the first bad row.

        Then the schema must be exactly what lottrace's migrations make (no
        trigger, index, table or view added, dropped or changed), and the
        derived tables must hold exactly what folding the verified log gives:
        what every query reads is proven, not only the log. Nothing is ever
        written.

        ``expect`` is a head hash published earlier (``verify --anchor``): the
        chain must still pass through it. Each body is hashed on its own, so
        a large log is checked in ``workers`` processes, each over a range of
        rows; the seams between ranges are checked here. The first bad row is
        named either way. It reads one snapshot: a batch another process
        commits meanwhile is neither half-seen nor mistaken for a cut tail.
        """
        with self.store.read_snapshot():
            report = self._verify_chain(expect, workers)
            self.store.check_schema()
            with self.store.scratch_derived():
                _fold_log(self.store)  # into the scratch tables
                self.store.compare_derived()
            return report

    def verify_source(self, ledger_id: str) -> VerifyReport:
        """Prove the chain of the source ledger ``ledger_id`` merged into this one.

        Its recorded rows, in its order, must be seq 1, 2, ... with no gap;
        each names an event this log holds whose body still hashes to that
        id; each hash must link the one before, from the source's genesis
        (the hash of its id), up to the head recorded when it was merged. So
        the source's own ``verify`` head is this one: a cooperative can check
        that the platform holds its ledger unchanged. Raises
        :class:`IntegrityViolation` naming the first bad row of the source.
        """
        with self.store.read_snapshot():
            self.store.check_schema()  # nothing planted that could answer for the tables
            recorded = self.store.meta(f"source:{ledger_id}")
            if recorded is None:
                raise LedgerError(f"{self.path} holds no events merged from ledger {ledger_id}")
            head_seq, _, head = recorded.partition(" ")
            prev, n = genesis(ledger_id), 0
            for seq, eid, h, body in self.store.source_rows(ledger_id):
                n += 1
                where = f"source {ledger_id} row seq {seq}"
                if seq != n:
                    raise IntegrityViolation(
                        f"source {ledger_id} row seq {n}: missing (rows were removed)", seq=n
                    )
                if body is None:
                    raise IntegrityViolation(
                        f"{where}: event {eid} is not in the log (it was removed)", seq=seq
                    )
                if hashlib.sha256(body.encode()).hexdigest() != eid:
                    raise IntegrityViolation(
                        f"{where}: event {eid}'s body does not hash to its id "
                        "(the event was edited)",
                        seq=seq,
                    )
                prev = link(prev, eid)
                if h != prev:
                    raise IntegrityViolation(
                        f"{where}: the hash does not link the row before "
                        "(rows were changed, inserted or moved)",
                        seq=seq,
                    )
            if (str(n), prev) != (head_seq, head):
                raise IntegrityViolation(
                    f"source {ledger_id}: its rows end at seq {n}, head {prev}, not at the "
                    f"recorded head seq {head_seq}, {head} (rows were cut off the tail)"
                )
            return VerifyReport(events=n, head=prev)

    def sources(self) -> list[tuple[str, int]]:
        """``(ledger id, events)`` of every ledger merged into this one."""
        return self.store.source_ids()

    def _verify_chain(self, expect: str | None, workers: int | None) -> VerifyReport:
        start = self.genesis
        parts = self.store.check_chain(start, expect, workers)
        failures = [p.failure for p in parts if p.failure is not None]
        prev = start
        for p in parts:  # the seams: each range starts where the one before ended
            if p.rows and p.first_prev != prev:
                failures.append((p.first_seq, 3, prev_message(p.first_seq)))
            prev = p.last_hash
        if failures:
            seq, _stage, message = min(failures)
            raise IntegrityViolation(message, seq=seq)
        n = sum(p.rows for p in parts)
        self._check_recorded_head(n)
        if not (expect is None or expect == start or any(p.saw_expect for p in parts)):
            raise IntegrityViolation(
                f"the log never reached the expected head {expect}: "
                "events after it were removed, or this is another ledger"
            )
        return VerifyReport(events=n, head=prev)

    def _check_recorded_head(self, n: int) -> None:
        """Compare a verified chain of ``n`` rows with the head lottrace recorded.

        Called once every row's hash is known to be right, so the stored hash
        at the recorded seq can be trusted.
        """
        recorded_seq, recorded_head = self.store.recorded_head()
        if recorded_seq > n:
            raise IntegrityViolation(
                f"row seq {n + 1}: missing; the log ends at seq {n} but lottrace recorded "
                f"head seq {recorded_seq} (rows were cut off the tail)",
                seq=n + 1,
            )
        if recorded_seq < n:
            raise IntegrityViolation(
                f"row seq {recorded_seq + 1}: not written by lottrace; it recorded head seq "
                f"{recorded_seq} but the log has {n} rows (rows were added behind its back)",
                seq=recorded_seq + 1,
            )
        found = self.store.hash_at(recorded_seq) if recorded_seq else self.genesis
        if found != recorded_head:
            raise IntegrityViolation(
                f"row seq {n}: the chain's head differs from the head lottrace recorded "
                "(the chain was rewritten at or before this row)",
                seq=n,
            )

    # ------------------------------------------------------------------ append

    def append(
        self,
        items: Iterable[tuple[str, EventBase]],
        *,
        now: datetime | None = None,
        progress: Callable[[int], None] | None = None,
        dry_run: bool = False,
    ) -> AppendReport:
        """Append a batch of ``(where, event)`` pairs atomically.

        ``where`` names the event's origin (``file.csv:12``) for messages. An
        event already in the ledger is skipped and counted as a duplicate. The
        first rule broken raises :class:`RuleViolation` and nothing is written.
        With ``dry_run`` the batch is checked exactly as a real one (the same
        rules, in the same transaction) and then rolled back: the report says
        what it would have done, nothing is written.
        """
        return self.append_prepared(
            (prepare(where, ev) for where, ev in items),
            now=now,
            progress=progress,
            dry_run=dry_run,
        )

    def append_prepared(
        self,
        items: Iterable[Prepared],
        *,
        now: datetime | None = None,
        progress: Callable[[int], None] | None = None,
        source: SourceLog | None = None,
        dry_run: bool = False,
    ) -> AppendReport:
        """:meth:`append` for events already :func:`prepare`-d (by another process, say).

        With ``source`` (a merge, :mod:`lottrace.merging`), the events are
        another ledger's, and its chain's rows are recorded in the same
        transaction, for every event, new or already held
        (:meth:`verify_source`).

        The facts are trusted to be those of the body, as :func:`prepare` makes
        them: the rules and the derived tables read the facts, the log stores the body.
        The cyclic garbage collector is paused while the events are checked
        and queued (:func:`~lottrace.gcpause.collector_paused`), and restored
        as it was, on error too.
        """
        now = now or datetime.now(UTC)
        report = AppendReport()
        store = self.store
        store.begin_write()
        try:
            # Nothing is appended through a trigger or index planted behind our back.
            store.check_schema_quickly()
            batch = _Batch(store, report, now)
            if (batch.seq, batch.prev) != store.recorded_head():
                raise IntegrityViolation(
                    f"{self.path}: the log's head is not the one lottrace recorded; "
                    "nothing added (run 'lottrace verify')"
                )
            # Appending makes no reference cycles (tests/test_ledger.py checks), so
            # the cyclic collector would find nothing; its full passes over the
            # cached lot states and buffered rows took a tenth of a large import.
            with collector_paused():
                _add_all(batch, items, progress)
            batch.flush()
            store.settle()  # every row written, or its error raised, before the batch is judged
            report.head = batch.prev
            if dry_run:  # checked as a real batch, written nowhere
                store.rollback()
                return report
            if report.added:
                store.record_head(batch.seq, batch.prev)
            if source is not None:
                store.write_sources(source.ledger_id, source.rows(), source.head)
            store.commit()
        except BaseException:
            store.rollback()
            raise
        return report

    # ------------------------------------------------------------------ derived tables

    def rebuild(self) -> int:
        """Put the schema back to lottrace's and fold the whole log again, atomically.

        Every trigger, index, view or table that lottrace's migrations do not
        make is dropped first (a trigger planted on a derived table could
        otherwise rewrite what the rebuild writes), lottrace's own triggers and
        indexes that were dropped are made again, and the derived tables are
        dropped and created anew from the migrations' definitions, then filled
        by folding the log. What was removed or restored is in
        :attr:`repaired`. The log's own tables cannot be rebuilt: if one of
        them is not as lottrace made it, nothing is changed and
        :class:`IntegrityViolation` says so.
        """
        if self.read_only:
            raise LedgerError(f"{self.path} is open read-only: rebuild needs to write it")
        self.store.begin_write()
        try:
            self.repaired = self.store.restore_schema()
            n = _fold_log(self.store)
            self.store.commit()
        except BaseException:
            self.store.rollback()
            raise
        return n

    def derived_snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every derived table's rows, sorted: for comparing maintained and rebuilt state."""
        return self.store.derived_snapshot()

    # ------------------------------------------------------------------ reads

    def lot(self, code: str) -> LotState | None:
        """The lot's state, or None if the ledger has never seen it."""
        return self.store.lot(code)

    def require_lot(self, code: str) -> LotState:
        """The lot's state; :class:`UnknownLot` (with a hint) if the ledger has never seen it."""
        st = self.store.lot(code)
        if st is None:
            like = self.store.lot_hint(code)
            hint = f" (did you mean {', '.join(like)}?)" if like else ""
            raise UnknownLot(f"no lot {code!r} in {self.path}{hint}")
        return st

    def event(self, eid: str) -> StoredEvent:
        """The event with lottrace's id ``eid``; :class:`UnknownEvent` if there is none."""
        found = self.store.event(eid)
        if found is None:
            raise UnknownEvent(f"no event {eid} in {self.path}")
        return found

    def find_events(self, some_id: str) -> list[StoredEvent]:
        """The events an id names, in log order: lottrace's own event id, a
        foreign event's Event Hash ID (the event and any error declaration of it)
        or a partner's eventID."""
        return self.store.find_events(some_id)

    def iter_events(self) -> Iterator[StoredEvent]:
        """Every event in log order, void ones flagged (what an export reads)."""
        return self.store.iter_events()

    def events_of_types(self, types: Iterable[str]) -> Iterator[StoredEvent]:
        """Every event of these types, in log order, void ones flagged.

        What registries read (plots, certificates, payments...): events that
        describe things rather than move a lot. A scan of the log's ``type``
        column, so keep it to types that are few.
        """
        return self.store.events_of_types(list(types))

    def events_after(self, seq: int) -> list[StoredEvent]:
        """Every event appended after sequence number ``seq``, in log order, void ones flagged.

        What an answer kept for an older head reads to catch up with the log
        (see :class:`lottrace.memo.Growing`) instead of reading it all again.
        """
        return self.store.events_after(seq)

    def hash_at(self, seq: int) -> str:
        """The chain hash of the event at ``seq`` (raises if there is none)."""
        return self.store.hash_at(seq)

    def voided_by(self, eid: str) -> str | None:
        """The id of the correction that voided event ``eid``, or None."""
        return self.store.voided_by(eid)

    def lot_events(self, code: str) -> list[StoredEvent]:
        """The lot's own non-void events (it is subject, input or output), in time order."""
        self.require_lot(code)
        return self.store.lot_events(code)

    def voided_for_lot(self, code: str) -> list[str]:
        """Ids of void events that named this lot (their links are gone)."""
        return self.store.voided_for_lot(code)

    def meta(self, key: str) -> str | None:
        """A value kept beside the log (``ledger_id``, ``head``, ``demo``), or None."""
        return self.store.meta(key)

    def mark_demo(self) -> None:
        """Flag this ledger as a demo ledger, which ``lottrace demo`` may add to."""
        self.store.mark_demo()

    def stats(self) -> dict[str, Any]:
        """Counts: events (by type), lots, voided events, the first and last times, the head."""
        seq, head = self.head()
        counts = self.store.counts()
        return {"events": seq, **counts, "head": head}

    def sites(self) -> list[str]:
        """Every site an event happened at, most used first (then by name): what ``log`` offers."""
        return self.store.sites()

    def lineage_links(self, code: str, *, direction: str) -> list[tuple[str, str, float, int, str]]:
        """Every kg link in the lineage of ``code``, as ``(src, dst, kg, seq, time)`` rows.

        ``direction="up"`` follows links into the lot, back to its harvests;
        ``"down"`` follows them out of it, to the lots and exports it went into.
        The cost follows the size of the lineage, not of the log. Voided
        events' links are already gone.
        """
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        return self.store.lineage_links(code, direction=direction)

    def link_path(self, src: str, dst: str) -> list[str] | None:
        """The ids of the events whose links lead from lot ``src`` down to ``dst``, or None.

        One path, the first found breadth-first, in the order the coffee flows.
        """
        return _link_path(self.store, src, dst)

    def event_ids_at(self, seqs: list[int]) -> list[str]:
        """The event ids of the rows ``seqs``, in that order."""
        return self.store.event_ids_at(seqs)

    def ancestor_link_kgs(self, code: str) -> list[tuple[str, str, float]]:
        """``(src, dst, kg)`` for every link into ``code`` or into one of its ancestors.

        The links of :meth:`lineage_links` ``direction="up"``, only the
        columns shares need; rows of one (src, dst) pair come in log order.
        """
        return self.store.ancestor_link_kgs(code)

    def lots_states(self, codes: Iterable[str]) -> dict[str, LotState]:
        """The states of the named lots that exist, by lot code (one indexed lookup each)."""
        return self.store.lots_states(codes)

    def lots_events(
        self, codes: Iterable[str], *, own_types: Iterable[str] | None = None
    ) -> Iterator[tuple[str, StoredEvent]]:
        """``(lot, event)`` for each named lot's non-void events, by lot, then time order.

        The event's ``role`` says how it involves the lot: ``subject``,
        ``input`` (it drew from the lot) or ``output`` (it formed the lot). An
        event shared by several lots is parsed once. ``own_types`` keeps only
        the lots' own events (not draws, role ``input``) of those types,
        filtered through the index so the others are never read or parsed.
        """
        return self.store.lots_events(codes, own_types=own_types)

    def own_event_bodies(
        self, codes: Iterable[str], types: Iterable[str]
    ) -> list[tuple[str, str, str, int, str]]:
        """``(lot, role, time key, seq, body)`` of the named lots' own events of ``types``.

        Own means the lot is the event's subject or output, not an input drawn
        into another lot; void events are left out. Rows come by lot, then time
        and seq. The body is the stored canonical JSON, unparsed: for readers
        that need a few fields of many events (bodies were validated on append).
        """
        return self.store.own_event_bodies(codes, types)

    def voided_for_lots(self, codes: Iterable[str]) -> list[str]:
        """Ids of void events that named any of these lots, in log order, each once."""
        return self.store.voided_for_lots(codes)

    def link_inflows(self, codes: Iterable[str]) -> dict[str, float]:
        """For each named lot formed from inputs, the total kg on the links into it."""
        return self.store.link_inflows(codes)

    def leg_rows(self) -> Iterator[tuple[str, str, str, str, str]]:
        """Stream ``(lot, time, type, role, site)`` for every (lot, event) pair, by lot, time.

        One pass over the lot timelines: what delay statistics scan, without
        loading event bodies or building any graph.
        """
        return self.store.leg_rows()

    def leg_scan(
        self, lot: str | None = None, *, marks: bool = True
    ) -> Iterator[tuple[str, str, str, str, str]]:
        """Stream ``(lot, time, type, role, site)`` for every (lot, event) pair.

        :meth:`leg_rows` without its sort: rows come by lot, time, type, seq
        and role, so events of one lot at the same time come by type, not seq
        (sorting the whole scan by seq costs a third of it). With ``lot``, only
        that lot's rows, by time and seq. Without ``marks``, the whole scan
        leaves out dispatch and arrival rows (the legs' hours do not need them).
        """
        return self.store.leg_scan(lot, marks=marks)

    def legs_ending(self, lo: str | None = None, hi: str | None = None) -> Iterator[LegRow]:
        """Stream the ``legs`` table's rows that end in ``[lo, hi)`` (time keys), by lot and order.

        The table is kept on append (:mod:`lottrace.legwalk`); the bounds are
        pushed into SQL on the legs' end time, so a window costs in proportion
        to the legs in it.
        """
        return self.store.legs_ending(lo, hi)

    def legs_grouped(
        self, by: str, lo: str | None = None, hi: str | None = None
    ) -> Iterator[tuple[str, float, float | None]]:
        """``(key, hours, transit_hours)`` of the legs ending in ``[lo, hi)``, in no set order.

        ``key`` is the group the leg falls in (:meth:`Storage.legs_grouped`:
        its fields joined by :data:`~lottrace.storage.KEY_SEP`): what
        :func:`lottrace.delays.delays` and ``bottlenecks`` read, three values a leg.
        """
        return self.store.legs_grouped(by, lo, hi)

    def snapshot(self) -> AbstractContextManager[None]:
        """``with ledger.snapshot():`` every read in the block sees the ledger as one state.

        For a query that reads in several statements: a batch another process
        commits meanwhile is wholly outside the block's view. (Inside a write
        transaction already open, the block is part of it.)
        """
        return self.store.read_snapshot()

    def leg_days(
        self, by: str, lo_day: str | None = None, hi_day: str | None = None
    ) -> Iterator[tuple[str, int, int, int, int, int, int]]:
        """``(key, band, n, us, trucked, transit_us, wait_us)``: the legs ending on the days
        ``[lo_day, hi_day)`` (``YYYY-MM-DD``, UTC), counted by group and band of hours.

        From the ``leg_days`` table kept with the legs (see
        :func:`lottrace.storage.leg_day_deltas`): a window of days costs its
        days' rows, not its legs. ``key`` is :meth:`legs_grouped`'s, for ``by``
        ``"stage"`` or ``"month"``.
        """
        return self.store.leg_days(by, lo_day, hi_day)

    def leg_hours_in_band(
        self, frm: str, to: str, band: int, lo: str | None = None, hi: str | None = None
    ) -> list[float]:
        """The hours of the ``frm``-to-``to`` legs in ``band`` (:func:`lottrace.storage.leg_band`)
        that end in ``[lo, hi)``, in no set order: what a percentile in that band needs."""
        return self.store.leg_hours_in_band(frm, to, band, lo, hi)

    def open_lot_checkpoints(
        self, types: Iterable[str]
    ) -> list[tuple[str, float, str | None, str, str, str]]:
        """Lots with kg left, each with its latest own event of one of ``types``.

        Rows are ``(lot, kg_left, last_qc, type, time, site)``, oldest first. A
        lot has kg left when less than all of it was drawn by later inputs and
        exports (with the rules' 1e-6 relative tolerance); "own" means the lot
        was the event's subject or output, not an input drawn into another lot.
        """
        return self.store.open_lot_checkpoints(types)


def _link_path(store: Storage, src: str, dst: str) -> list[str] | None:
    """See :meth:`Ledger.link_path`."""
    parent: dict[str, tuple[str, int]] = {}
    for s, d, _kg, seq, _t in store.lineage_links(src, direction="down"):
        parent.setdefault(d, (s, seq))
    if dst not in parent or dst == src:
        return None
    seqs, lot, seen = [], dst, set()
    while lot != src and lot not in seen:
        seen.add(lot)
        lot, seq = parent[lot]
        seqs.append(seq)
    return store.event_ids_at(list(reversed(seqs)))


def _add_all(
    batch: _Batch, items: Iterable[Prepared], progress: Callable[[int], None] | None
) -> None:
    """Check and queue every item, ``_LOOKAHEAD`` at a time (one id and lot look-up each)."""
    chunk: list[Prepared] = []
    it = iter(items)
    while True:
        try:
            item = next(it)
        except StopIteration:
            break
        except LottraceError:
            # The input failed part-way. Check the events read before it
            # first, so an earlier broken rule is the one reported, as it
            # would be without the lookahead. Nothing is written either way.
            batch.add_many(chunk)
            raise
        chunk.append(item)
        if len(chunk) == _LOOKAHEAD:
            batch.add_many(chunk)
            chunk.clear()
            if progress is not None:
                progress(_LOOKAHEAD)
    batch.add_many(chunk)


def _fold_log(store: Storage) -> int:
    """Fold every event of the log into the (empty) derived tables; the count.

    What ``rebuild`` runs, what a migration that changes the fold runs, and
    what ``verify`` runs into scratch tables to compare.
    """
    voided = dict(store.corrections())
    batch = _Batch(store, AppendReport(), datetime.now(UTC), rebuilding=True)
    n = 0
    for seq, eid, body in store.log_rows():
        batch.derive(seq, eid, _stored_facts(body), void=eid in voided)
        n += 1
    batch.flush()
    return n


class _Batch:
    """The state of one append or rebuild inside its transaction.

    It buffers rows, caches lot states and flushes both every ``_CHUNK`` events,
    so memory stays flat however long the input is.
    """

    def __init__(
        self, store: Storage, report: AppendReport, now: datetime, *, rebuilding: bool = False
    ):
        self.store = store
        self.report = report
        self.now = now
        self.rebuilding = rebuilding
        self.where = ""
        self.seq, self.prev = store.head()
        self.states: dict[str, LotState | None] = {}
        self.dirty: set[str] = set()
        self.pending_ids: dict[str, tuple[Facts, bool]] = {}
        self.event_rows: list[tuple[Any, ...]] = []
        self.lot_rows: list[tuple[Any, ...]] = []
        self.link_rows: list[tuple[Any, ...]] = []
        self.void_rows: list[tuple[str, str, str, str]] = []
        #: Foreign events added in this batch: (hash id, declares an error) -> (where, body).
        #: (hash id, declares an error) -> where it was met, its body, its event id
        self.hash_keys: dict[tuple[str, bool], tuple[str, dict[str, Any], str]] = {}
        #: The ids this batch added, when the log was empty as it began: then only
        #: they can be in it, and an id the filter has not met needs no look-up.
        self.added = _Added() if self.seq == 0 and not rebuilding else None
        #: The derived tables held nothing as the batch began (an empty log, or a
        #: rebuild): a lot the batch has not met has no rows and no legs.
        self.fresh = rebuilding or self.seq == 0
        #: Each lot's walk of its legs so far (see :meth:`_legs`), least recently
        #: changed first; lots whose rows changed other than at the end (a void).
        self.walks: dict[str, LegWalk] = {}
        self.rewalk: set[str] = set()
        #: Lots whose walk was forgotten (memory): the first ``met`` asks the log.
        self.forgotten: _Added | None = None
        #: Lots whose state the cache forgot, when the log was empty as the batch began.
        self.states_forgotten: _Added | None = None

    # View protocol for rules.check
    def lot(self, code: str) -> LotState | None:
        if code in self.states:
            return self.states[code]
        st = self.store.lot(code) if self._may_be_stored(code) else None
        self.states[code] = st
        return st

    def _may_be_stored(self, code: str) -> bool:
        """Whether lot ``code`` may have a state in the store: not if the log was empty as
        the batch began and the batch has not met the lot (its states forgotten aside)."""
        if self.added is None:
            return True
        return self.states_forgotten is not None and self.states_forgotten.met(code)

    def event(self, eid: str) -> tuple[Facts, bool] | None:
        if eid in self.pending_ids:
            return self.pending_ids[eid]
        row = self.store.event_row(eid)
        if row is None:
            return None
        return _stored_facts(row[0]), row[1]

    def voided(self, code: str) -> bool:
        self.flush()
        return self.store.lot_has_void(code)

    def holds_coffee(self, code: str) -> bool:
        # Rare (a foreign event's inputs): write what is pending, then walk up.
        self.flush()
        lots = {code} | {src for src, *_ in self.store.lineage_links(code, direction="up")}
        return any(st.stage != FOREIGN_STAGE for st in self.store.lots_states(lots).values())

    def path(self, src: str, dst: str) -> list[str] | None:
        # Rare (an aggregation into an existing parent): write what is pending, then walk.
        self.flush()
        return _link_path(self.store, src, dst)

    def add_many(self, chunk: list[Prepared]) -> None:
        """Add a few events, looking up their ids and lots in one query each, not one per event."""
        ids = [p.eid for p in chunk if p.eid != UNRESOLVED]
        if self.added is not None:  # an empty log: only this batch's own ids can be in it
            ids = self.added.met_then_add(ids)
        # No call when no id needs a look-up: a call waits for writes running behind.
        stored = self.store.stored_among(ids) if ids else set()
        # Not ``set - self.states.keys()``: that walks every cached state.
        states = self.states
        codes = {lot for p in chunk for lot, _role in p.facts.lots if lot not in states}
        if codes:
            asked = [c for c in codes if self._may_be_stored(c)]
            found = self.store.lots_states(asked) if asked else {}
            for code in codes:
                self.states[code] = found.get(code)
        for p in chunk:
            if p.eid == UNRESOLVED:
                p = self.resolve(p)
                if self.added is not None:
                    self.added.met_then_add([p.eid])
                known = p.eid in stored or p.eid in self.pending_ids
                if not known and self.store.stored_among([p.eid]):
                    stored.add(p.eid)
            # A flush inside the chunk may forget pending ids: remember this chunk's own.
            self.add(p, p.eid in stored)
            stored.add(p.eid)

    def resolve(self, p: Prepared) -> Prepared:
        """A :class:`WholeInputs` as an event: each whole lot gives all it has left now.

        The one place input lots written without kilos get their kilos: from
        the lots' state in this batch (the ledger's, and this batch's events
        before it). The event's ``kg`` must match the inputs' sum within the
        2 % scale tolerance.
        """
        rec, whole = orjson.loads(p.body)
        inputs = []
        for item in rec["inputs"]:
            if "kg" in item or item["lot"] not in whole:
                inputs.append(item)
                continue
            st = self.lot(item["lot"])
            if st is None:
                raise RuleViolation(
                    f"input lot {item['lot']} was never created (log its harvest first)",
                    rule="lot-unknown", where=p.where, field="inputs",
                )  # fmt: skip
            left = st.kg - st.drawn_kg
            if left <= 1e-9:
                raise RuleViolation(
                    f"input lot {item['lot']} has nothing left to give "
                    f"(its {st.kg:g} kg went to other lots already)",
                    rule="weight-consumed", where=p.where, field="inputs",
                )  # fmt: skip
            inputs.append({"lot": item["lot"], "kg": round(left, 3)})
        rec = {**rec, "inputs": inputs}
        total = sum(float(i["kg"]) for i in inputs)
        kg = rec.get("kg")
        if kg is not None:
            try:
                stated = float(kg)
            except (TypeError, ValueError):
                stated = None
            if stated is not None and abs(stated - total) > total * 0.02:
                lots = ", ".join(f"{i['lot']} {float(i['kg']):g} kg" for i in inputs)
                raise RuleViolation(
                    f"the inputs give {total:g} kg ({lots}) but the event states "
                    f"{stated:g} kg; more than the 2 % scale tolerance apart",
                    rule="weight-gain" if stated > total else "input-invalid",
                    where=p.where, field="kg",
                )  # fmt: skip
        return prepare(p.where, parse_event(rec, where=p.where))

    def add(self, p: Prepared, stored: bool) -> None:
        """Check one event against the state so far and queue its rows; skip a duplicate."""
        where, body, eid, ev = p
        if stored or eid in self.pending_ids:
            self._met_again(where, eid)
            return
        self.where = where
        if ev.type == "epcis" and self._same_hash(p):
            return
        findings = check(ev, self, self.now)
        if findings:  # most events have none
            for f in findings:
                if f.severity == "error":
                    raise RuleViolation(f.message, rule=f.rule, where=where, field=f.field)
            for f in findings:
                self.report.warning_count += 1
                if len(self.report.warnings) < 1000:
                    lot = f"lot {ev.subject}: " if ev.subject else ""
                    self.report.warnings.append(RuleWarning(where, f.rule, lot + f.message))
        self.seq += 1
        new = link(self.prev, eid)
        self.event_rows.append((self.seq, eid, ev.type, ev.time, ev.subject, body, self.prev, new))
        self.prev = new
        self.report.added += 1
        self.pending_ids[eid] = (ev, False)
        self.derive(self.seq, eid, ev, void=False)
        if len(self.event_rows) >= _CHUNK:
            self.flush()

    def _met_again(self, where: str, eid: str) -> None:
        """Count an event the ledger holds: a duplicate, or void again if a correction voided it."""
        if self._is_void(eid):  # met again, but a correction voided it: it stays void
            self.report.voided_again += 1
            name = where.rpartition(":")[0] or where
            self.report.voided_again_in[name] = self.report.voided_again_in.get(name, 0) + 1
        else:
            self.report.duplicates += 1

    def _same_hash(self, p: Prepared) -> bool:
        """Whether foreign event ``p`` was captured before under its Event Hash ID.

        Same hash, same event (gs1/EPCIS issue 403); an error declaration is
        the event's second form, so the key is the hash and whether it declares
        an error. Met again with the same partner eventID, or with none, it is
        a duplicate (True), whatever its representation (``200`` or
        ``200.0``, XML or JSON-LD, a prefix named otherwise): the hash says it
        is the same event. With another eventID (one the first capture did
        not have included), the batch is refused, naming both: that id would
        point at nothing.
        """
        body = orjson.loads(p.body)
        key = (body["hash_id"], "errorDeclaration" in body["event"])
        before = self.hash_keys.get(key)
        if before is None:
            for eid, stored in self.store.epcis_by_hash(key[0]):
                other = orjson.loads(stored)
                if ("errorDeclaration" in other["event"]) == key[1]:
                    before = (f"event {eid} of the ledger", other, eid)
                    break
        if before is None:
            self.hash_keys[key] = (p.where, body, p.eid)
            return False
        mine = body.get("partner_event_id")
        if mine is None or mine == before[1].get("partner_event_id"):
            self._met_again(p.where, before[2])
            return True
        what = "error declaration of the event" if key[1] else "event"
        theirs = before[1].get("partner_event_id") or "none"
        raise RuleViolation(
            f"the {what} with Event Hash ID {key[0]} is already {before[0]} "
            f"(eventID {theirs}; this one's {mine}) under another eventID: one Event Hash "
            "ID, one event (a correction is an errorDeclaration)",
            rule="epcis-same-hash",
            where=p.where,
            field="event",
        )

    #: The voided ids as the storage last gave them, or None once this batch voided more.
    _voided: frozenset[str] | None = None

    def _is_void(self, eid: str) -> bool:
        """Whether a correction voided event ``eid``, in this batch or before.

        The voided ids are few, so they are read once, and again only after
        this batch voided more: a file of duplicates reads them once.
        """
        pending = self.pending_ids.get(eid)
        if pending is not None and pending[1]:
            return True
        if self._voided is None:
            self._voided = self.store.voided_ids()
        return eid in self._voided

    def derive(self, seq: int, eid: str, ev: Facts, *, void: bool) -> None:
        """Fold one logged event into the derived tables."""
        if ev.type == "correction" and ev.corrects is not None:
            target = self.pending_ids.get(ev.corrects) or self.event(ev.corrects)
            if target is None:  # cannot happen: rules.check found it
                return
            # A record (a payment ...) names no lot: its void row has lot ''.
            for lot, _role in lots_of(target[0]) or (("", ""),):
                self.void_rows.append((ev.corrects, lot, eid, ev.reason or ""))
            if self.rebuilding:  # the target was skipped as void already
                return
            self.flush()
            self._void(ev.corrects, target[0])
            return
        if void:
            return
        t = ev.time
        for lot, role in lots_of(ev):
            st = fold(self.lot(lot), lot, role, ev, eid)
            self.states.pop(lot, None)  # to the end: the cache forgets the oldest first
            self.states[lot] = st
            self.dirty.add(lot)
            self.lot_rows.append((lot, t, ev.type, seq, role, ev.site))
        for lot, _kg in ev.formed:
            for src, kg in ev.drawn:
                self.link_rows.append((lot, src, seq, kg, t))

    def _void(self, eid: str, ev: Facts) -> None:
        """Remove a voided event's rows and refold the lots it touched."""
        seq = self.store.seq_of(eid)
        if eid in self.pending_ids:
            self.pending_ids[eid] = (ev, True)
        lots = lots_of(ev)
        self.store.delete_event_rows(
            seq,
            [lot for lot, _role in lots],
            [lot for lot, _kg in ev.formed],
            len(ev.formed) * len(ev.drawn),
        )
        self.rewalk.update(lot for lot, _role in lots)
        for lot, _role in lots:
            self._refold(lot)

    def _refold(self, lot: str) -> None:
        st: LotState | None = None
        for eid, body, role in self.store.lot_fold_rows(lot):
            st = fold(st, lot, role, _stored_facts(body), eid)
        if st is not None and not self.rebuilding and (broken := check_refolded(st)):
            raise RuleViolation(
                broken.message, rule=broken.rule, where=self.where, field=broken.field
            )
        self.states[lot] = st
        self.dirty.add(lot)
        self.flush()

    def flush(self) -> None:
        """Write the buffered rows and the changed lot states; forget the oldest states."""
        if self.void_rows:
            self._voided = None  # this batch voided more
        gone = [lot for lot in self.dirty if self.states.get(lot) is None]
        live = [st for lot in self.dirty if (st := self.states.get(lot)) is not None]
        self.store.write(
            Rows(self.event_rows, self.lot_rows, self.link_rows, self.void_rows, gone, live)
        )
        if self.dirty:
            self._legs()
        self.event_rows = []
        self.lot_rows = []
        self.link_rows = []
        self.void_rows = []
        self.dirty.clear()
        if len(self.states) > _STATES:  # forget the half least recently changed
            old = list(itertools.islice(self.states, len(self.states) // 2))
            if self.added is not None:
                if self.states_forgotten is None:
                    self.states_forgotten = _Added(_LOT_BITS)
                self.states_forgotten.met_then_add(old)
            for lot in old:
                del self.states[lot]
        if len(self.pending_ids) > _CHUNK:
            self.pending_ids.clear()

    def _legs(self) -> None:
        """Bring the legs of the lots this flush touched up to date, writing only what changed.

        A lot's legs depend only on its rows up to each leg's end
        (:class:`~lottrace.legwalk.LegWalk`), so when a lot's new rows (this
        flush's :attr:`lot_rows`) all come after the rows it had, by time then
        log order (the usual case), its walk goes on over them and only its
        new legs are added. The walk is the batch's own, kept from the lot's
        earlier flushes (or new, for a lot the batch begins), or else walked
        from the lot's rows as written. A lot with a new row before one of its
        old ones (an event logged late), or whose rows a void removed, is
        walked again from its rows and its legs replaced.
        """
        new: dict[str, list[tuple[str, str, str, str, str, int]]] = {}
        for lot, t, kind, seq, role, site in self.lot_rows:
            got = new.get(lot)
            if got is None:
                new[lot] = [(lot, t, kind, role, site, seq)]
            else:
                got.append((lot, t, kind, role, site, seq))
        walks, rewalk = self.walks, self.rewalk
        legs: list[LegRow] = []
        unknown: list[str] = []  # walked from the rows as written
        replaced: list[str] = []  # their legs replaced
        for lot in sorted(self.dirty):
            walk = walks.pop(lot, None)
            if walk is None and self.fresh and not self._forgotten(lot):
                walk = LegWalk()  # no rows before this batch, none before now
            rows = new.get(lot)
            if lot in rewalk or not rows:
                replaced.append(lot)
                continue
            if walk is None:
                unknown.append(lot)
                continue
            if len(rows) > 1:
                rows.sort(key=_timeline_order)
            if walk.last is not None and rows[0][1] < walk.last:
                replaced.append(lot)
                continue
            legs.extend(walk.feed(r[:5] for r in rows))
            walks[lot] = walk  # to the end: forgotten last
        rewalk.difference_update(self.dirty)
        if unknown or replaced:
            for lot, timeline in itertools.groupby(
                self.store.lots_timelines(sorted(unknown + replaced)), key=_first
            ):
                walk = walks[lot] = LegWalk()
                found = list(timeline)
                fresh = new.get(lot, [])
                seqs = {r[5] for r in fresh}
                if lot in replaced or {r[5] for r in found[len(found) - len(fresh) :]} != seqs:
                    # a row came before an old one: all the lot's legs again
                    if lot not in replaced:
                        replaced.append(lot)
                    legs.extend(walk.feed(r[:5] for r in found))
                else:  # the old legs stand: walk past them, keep the new ones
                    walk.feed(r[:5] for r in found[: len(found) - len(fresh)])
                    legs.extend(walk.feed(r[:5] for r in found[len(found) - len(fresh) :]))
        if replaced or legs:
            self.store.replace_legs(sorted(replaced), legs)
        if len(walks) > _STATES:  # forget the half least recently changed
            if self.forgotten is None:
                self.forgotten = _Added(_LOT_BITS)
            old = list(itertools.islice(walks, len(walks) // 2))
            self.forgotten.met_then_add(old)
            for lot in old:
                del walks[lot]

    def _forgotten(self, lot: str) -> bool:
        """Whether the walk of ``lot`` may have been forgotten (maybe: then walked again)."""
        return self.forgotten is not None and self.forgotten.met(lot)


def _timeline_order(row: tuple[str, str, str, str, str, int]) -> tuple[str, int, str, str]:
    """A timeline's order (:meth:`Storage.lots_timelines`): time, log order, type, role."""
    return row[1], row[5], row[2], row[3]


def _first(row: tuple[Any, ...]) -> Any:
    return row[0]


class _Added:
    """Event ids (or lot codes) met in one batch, in fixed memory: a Bloom filter of
    ``2**bits`` bits (ids: 2**27, 16 MiB) and three positions per id.

    :meth:`met_then_add` may call an id met that never was (about 1 in 90,000
    after a million ids), and the batch then looks it up as it would anyway;
    it never misses an id that was added. The batch's own filter, of its own
    ids: nothing another process says is trusted. The positions come from the
    id's ``hash()`` (salted per process, which a filter living for one batch
    does not mind; Python caches it in the string), its two halves combined
    as ``low + i * high`` (Kirsch and Mitzenmacher's double hashing). A look-up
    on PostgreSQL waits for the writes running behind the batch, so false
    "met"s cost more than a query: with two positions in 8 MiB, a
    million-event import waited about 115 times.

    >>> seen = _Added()
    >>> seen.met_then_add(["8c" * 32, "8d" * 32]), seen.met_then_add(["8c" * 32])
    ([], ['8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c'])
    >>> seen.met("8d" * 32), seen.met("8e" * 32)
    (True, False)
    """

    BITS = 27

    def __init__(self, bits: int | None = None) -> None:
        bits = bits or self.BITS
        self._bits = bytearray(1 << max(bits - 3, 0))
        self._mask = (1 << bits) - 1

    def met(self, eid: str) -> bool:
        """Whether ``eid`` was added (maybe), adding nothing."""
        h = hash(eid)
        low, high, mask, bits = h & 0xFFFFFFFF, (h >> 32) & 0xFFFFFFFF, self._mask, self._bits
        for i in range(3):
            at = (low + i * high) & mask
            if not bits[at >> 3] & (1 << (at & 7)):
                return False
        return True

    def met_then_add(self, ids: list[str]) -> list[str]:
        """The ids of ``ids`` met before (maybe), all of them added afterwards.

        One loop with the arithmetic inline: it runs for every event of an
        import into an empty log, in the process that appends.
        """
        bits, mask = self._bits, self._mask
        met = []
        for eid in ids:
            h = hash(eid)  # cached in the str by the dicts and sets it meets anyway
            low, high = h & 0xFFFFFFFF, (h >> 32) & 0xFFFFFFFF
            a, b, c = low & mask, (low + high) & mask, (low + 2 * high) & mask
            bit_a, bit_b, bit_c = 1 << (a & 7), 1 << (b & 7), 1 << (c & 7)
            a >>= 3
            b >>= 3
            c >>= 3
            if bits[a] & bit_a and bits[b] & bit_b and bits[c] & bit_c:
                met.append(eid)
            bits[a] |= bit_a
            bits[b] |= bit_b
            bits[c] |= bit_c
        return met
