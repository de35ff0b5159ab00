"""Reading and preparing events in a second process gives the same ledger as reading them here."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace import pipeline
from lottrace.cli import cli
from lottrace.errors import InvalidEvent, LedgerError, LottraceError
from lottrace.events import EventBase, parse_event
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger, open_here, prepare
from lottrace.pipeline import Hooks, prepared_events
from lottrace.readers import iter_events
from lottrace.rules import Facts

from factories import drying, harvest


def _import(path: Path, db: Path, parallel_bytes: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr("lottrace.cli.PARALLEL_BYTES", parallel_bytes)
    r = CliRunner().invoke(cli, ["--db", str(db), "init"])
    assert r.exit_code == 0, r.output
    return CliRunner().invoke(cli, ["--db", str(db), "import", "--json", str(path)])


def test_a_season_imported_through_the_reader_process_is_the_same_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    season = tmp_path / "season.jsonl"
    n = write_jsonl(season, 120, seed=3)
    assert n > 2 * 500  # more than one message from the child
    here = _import(season, tmp_path / "here.db", 10**12, monkeypatch)
    there = _import(season, tmp_path / "there.db", 0, monkeypatch)
    assert here.exit_code == there.exit_code == 0, there.output
    a_report, b_report = json.loads(here.stdout), json.loads(there.stdout)
    del a_report["head"], b_report["head"]  # each ledger's chain starts from its own random id
    assert a_report == b_report
    with Ledger(tmp_path / "here.db") as a, Ledger(tmp_path / "there.db") as b:
        rows = "SELECT seq, event_id, type, time, lot, body FROM events ORDER BY seq"
        assert a.conn.execute(rows).fetchall() == b.conn.execute(rows).fetchall()
        assert a.derived_snapshot() == b.derived_snapshot()
        assert b.stats()["events"] == n


def _events(n: int, prefix: str = "L") -> list[tuple[str, EventBase]]:
    out: list[tuple[str, EventBase]] = []
    for i in range(n):
        out.append((f"f.jsonl:{2 * i + 1}", parse_event(harvest(f"{prefix}{i}", day=1))))
        out.append((f"f.jsonl:{2 * i + 2}", parse_event(drying(f"{prefix}{i}", day=3))))
    return out


def test_items_and_hooks_arrive_in_the_order_the_reader_made_them() -> None:
    seen: list[Any] = []
    bad = InvalidEvent("field 'kg': not a number", where="f.jsonl:7", field="kg")

    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        events = _events(600)
        hooks.on_note("read as cp1252")
        for i, item in enumerate(events):
            hooks.progress(10)
            if i == 700:
                hooks.on_error(bad)
            yield item

    hooks = Hooks(on_error=seen.append, on_note=seen.append, progress=seen.append)
    items = list(prepared_events(read, hooks, parallel=True))
    assert items == [prepare(w, ev) for w, ev in _events(600)]
    assert all(type(p.facts) is Facts for p in items)
    assert seen[0] == "read as cp1252"
    errors = [x for x in seen if isinstance(x, InvalidEvent)]
    assert [(str(e), e.where, e.field) for e in errors] == [(str(bad), "f.jsonl:7", "kg")]
    assert sum(x for x in seen if isinstance(x, int)) == 10 * 1200
    # the error came after the progress of the 700 items before it, and before the rest
    at = next(i for i, x in enumerate(seen) if isinstance(x, InvalidEvent))
    assert sum(x for x in seen[:at] if isinstance(x, int)) == 10 * 701


def test_an_error_the_reader_raises_comes_after_the_events_before_it(tmp_path: Path) -> None:
    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        yield from _events(300)
        raise InvalidEvent("not valid JSON", where="f.jsonl:601")

    stream = prepared_events(read, Hooks(print, print, lambda n: None), parallel=True)
    got = []
    with pytest.raises(InvalidEvent, match=r"^f.jsonl:601: not valid JSON$"):
        for p in stream:
            got.append(p)
    assert len(got) == 600


def test_an_exception_that_cannot_be_pickled_still_reaches_the_parent() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"odd {a} {b}")

    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        pickle.loads(pickle.dumps(Odd(1, 2)))  # sanity: it does not survive pickling as it is

    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        yield from _events(1)
        raise Odd(1, 2)

    with pytest.raises(LottraceError, match="reading the input failed: Odd: odd 1 2"):
        list(prepared_events(read, Hooks(print, print, lambda n: None), parallel=True))


def test_a_reader_process_that_dies_fails_the_batch_and_writes_nothing(tmp_path: Path) -> None:
    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        yield from _events(600)  # the first 500 are sent
        os._exit(9)

    with Ledger.create(tmp_path / "l.db") as ledger:
        stream = prepared_events(read, Hooks(print, print, lambda n: None), parallel=True)
        with pytest.raises(LottraceError, match=r"stopped unexpectedly \(exit code 9\)"):
            ledger.append_prepared(stream)
        assert ledger.stats()["events"] == 0
        ledger.verify()


def test_stopping_early_stops_the_reader_process() -> None:
    import multiprocessing

    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        while True:
            yield from _events(100)

    stream = prepared_events(read, Hooks(print, print, lambda n: None), parallel=True)
    assert next(iter(stream)).where == "f.jsonl:1"
    assert multiprocessing.active_children()
    stream.close()
    assert not multiprocessing.active_children()


def test_serial_and_parallel_prepare_the_same_items(tmp_path: Path) -> None:
    season = tmp_path / "s.jsonl"
    write_jsonl(season, 30, seed=1)

    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        return iter_events(season, progress=hooks.progress)

    hooks = Hooks(print, print, lambda n: None)
    assert list(prepared_events(read, hooks, parallel=True)) == list(
        prepared_events(read, hooks, parallel=False)
    )


def test_the_page_cache_can_be_set_and_a_bad_value_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger.create(tmp_path / "l.db") as ledger:
        monkeypatch.setenv("LOTTRACE_CACHE_MB", "lots")
        with pytest.raises(LottraceError, match="LOTTRACE_CACHE_MB must be a whole number"):
            ledger.append(_events(1))
        assert not ledger.conn.in_transaction
        monkeypatch.setenv("LOTTRACE_CACHE_MB", "3")
        assert ledger.append(_events(1)).added == 2
        # the batch's cache is set back afterwards
        assert ledger.conn.execute("PRAGMA cache_size").fetchone()[0] == -2000


def test_closing_a_stream_never_read_stops_the_reader_process() -> None:
    import multiprocessing

    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        while True:
            yield from _events(100)

    stream = prepared_events(read, Hooks(print, print, lambda n: None), parallel=True)
    assert multiprocessing.active_children()
    stream.close()
    assert not multiprocessing.active_children()
    stream.close()  # twice is fine


# --------------------------------------------------------------------------- ids the reader looked up


def _hooks() -> Hooks:
    return Hooks(print, print, lambda n: None)


def _recorded_head(path: Path) -> str:
    with Ledger(path) as ledger:
        return str(ledger.meta("head"))


@pytest.fixture(autouse=True)
def _child_always_looks_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child looks ids up only while it is ahead of the parent: here, always."""
    monkeypatch.setattr("lottrace.pipeline._AHEAD", 0)


def test_a_child_behind_the_parent_leaves_the_look_ups_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lottrace.pipeline._AHEAD", 10**9)  # never ahead
    db = tmp_path / "l.db"
    events = _events(3)
    with Ledger.create(db) as ledger:
        ledger.append(events[:2])
    items = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    assert _marks(items) == [None] * 6  # marked, but for the writer to look up
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(items))
        assert (report.added, report.duplicates) == (4, 2)
    for x in ("", "-wal", "-shm"):
        Path(f"{db}{x}").unlink(missing_ok=True)
    Ledger.create(db).close()  # an empty ledger: every look-up is free, so it is made
    items = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    assert _marks(items) == [True] * 6


def _marks(items: list[Any]) -> list[Any]:
    """new (True), in the ledger (False), maybe earlier in the input (None), or "unmarked"."""
    return [p.mark[2] if p.mark else "unmarked" for p in items]


def test_the_reader_marks_ids_that_are_neither_in_the_ledger_nor_earlier_in_the_input(
    tmp_path: Path,
) -> None:
    db = tmp_path / "l.db"
    old = _events(2)  # L0 and L1: harvest and drying each
    with Ledger.create(db) as ledger:
        ledger.append(old[:2])
    head = _recorded_head(db)
    assert head.startswith("2 ")
    new = _events(3)[4:]  # L2's two events
    stream = [old[0], old[2], new[0], old[2], new[1], new[0]]
    items = list(prepared_events(lambda h: stream, _hooks(), parallel=True, ledger=db))
    # in the ledger, new, new, met before, new, met before
    assert _marks(items) == [False, True, True, None, True, None]
    readers = {p.mark[0] for p in items}
    assert len(readers) == 1 and readers.pop().startswith(head + " ")
    assert [p.mark[1] for p in items] == list(range(6))
    assert [p.eid for p in items] == [prepare(w, ev).eid for w, ev in stream]
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(items))
        assert (report.added, report.duplicates) == (3, 3)
        ledger.verify()


def test_an_empty_ledger_a_missing_one_and_one_not_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    items = list(prepared_events(lambda h: _events(2), _hooks(), parallel=True, ledger=db))
    assert _marks(items) == [True] * 4
    nowhere = tmp_path / "none.db"
    items = list(prepared_events(lambda h: _events(2), _hooks(), parallel=True, ledger=nowhere))
    assert _marks(items) == ["unmarked"] * 4
    assert not nowhere.exists()  # the reader opens it read-only: it creates nothing
    con = sqlite3.connect(db)  # out of WAL mode, a reader's lock would stall the writer
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    items = list(prepared_events(lambda h: _events(2), _hooks(), parallel=True, ledger=db))
    assert _marks(items) == ["unmarked"] * 4


def test_a_folder_name_with_uri_characters(tmp_path: Path) -> None:
    for name in ("q?x", "h#1", "p%41"):
        (tmp_path / name).mkdir()
        db = tmp_path / name / "l.db"
        Ledger.create(db).close()
        items = list(prepared_events(lambda h: _events(1), _hooks(), parallel=True, ledger=db))
        assert _marks(items) == [True, True], name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h#1", "p%41", "q?x"]  # no stray files


def test_no_look_ups_in_a_ledger_this_process_has_open(tmp_path: Path) -> None:
    """SQLite's record of a process's connections to a file must not cross a fork."""
    db = tmp_path / "l.db"
    with Ledger.create(db) as ledger:
        stream = prepared_events(lambda h: _events(2), _hooks(), parallel=True, ledger=db)
        assert _marks(list(stream)) == ["unmarked"] * 4
        assert (
            ledger.append_prepared(
                prepared_events(lambda h: _events(2), _hooks(), parallel=True)
            ).added
            == 4
        )
    stream = prepared_events(lambda h: _events(3), _hooks(), parallel=True, ledger=db)
    assert _marks(list(stream)) == [False] * 4 + [True] * 2  # closed again: it looks


def test_import_forks_its_reader_before_it_opens_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lottrace import pipeline
    from lottrace.ledger import open_here

    season = tmp_path / "season.jsonl"
    write_jsonl(season, 20, seed=2)
    db = tmp_path / "l.db"
    calls = []
    real = pipeline.prepared_events

    def spy(*args: Any, **kw: Any) -> Any:
        calls.append(open_here(db))
        stream = real(*args, **kw)
        return stream

    monkeypatch.setattr(pipeline, "prepared_events", spy)
    r = _import(season, db, 0, monkeypatch)
    assert r.exit_code == 0, r.output
    assert calls == [False]


def test_marks_go_stale_when_another_batch_comes_in_first(tmp_path: Path) -> None:
    """Without the head check the writer would trust marks made before another batch."""
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    events = _events(300)
    stream = prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db)
    first = next(stream)  # the reader has looked up every id (one message) at the empty head
    assert first.mark is not None and first.mark[0].startswith(_recorded_head(db) + " ")
    with Ledger(db) as other:  # another import adds some of the same events meanwhile
        assert other.append(events[100:400]).added == 300
    with Ledger(db) as ledger:
        report = ledger.append_prepared(itertools.chain([first], stream))
        assert (report.added, report.duplicates) == (300, 300)
        assert ledger.stats()["events"] == 600
        ledger.verify()


@pytest.mark.parametrize("how", ["two readers", "one reader's events again"])
def test_marks_are_trusted_only_for_one_reader_in_its_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A reader's "new" says nothing of another reader's events, nor of its own sent twice."""
    monkeypatch.setattr("lottrace.ledger._CHUNK", 50)  # the writer soon forgets its own ids
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    events = _events(600)  # more than one look-ahead chunk (1,000) before the copies
    first = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    if how == "two readers":
        again = list(prepared_events(lambda h: events[:20], _hooks(), parallel=True, ledger=db))
        assert _marks(again) == [True] * 20  # each reader alone is right
    else:
        again = first[1:20:2]
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(first + again))
        assert (report.added, report.duplicates) == (1200, len(again))
        ledger.verify()


def test_a_look_up_that_fails_leaves_the_rest_to_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lottrace.ledger import StoredIds

    db = tmp_path / "l.db"
    events = _events(600)
    with Ledger.create(db) as ledger:
        ledger.append(events[:300])
    real = StoredIds.among
    calls = [0]

    def among(self: StoredIds, eids: list[str]) -> set[str]:
        calls[0] += 1
        if calls[0] == 2:
            raise sqlite3.OperationalError("disk I/O error")
        return real(self, eids)

    monkeypatch.setattr(StoredIds, "among", among)  # before the fork: the child inherits it
    items = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    assert _marks(items) == [False] * 300 + [True] * 200 + ["unmarked"] * 700
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(items))
        assert (report.added, report.duplicates) == (900, 300)
        ledger.verify()


def test_a_filter_that_always_says_maybe_changes_nothing_but_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lottrace import pipeline

    season = tmp_path / "season.jsonl"
    lines = season.read_text().splitlines() if write_jsonl(season, 40, seed=5) else []
    season.write_text("\n".join(lines + lines[::7]) + "\n")  # some events twice
    monkeypatch.setattr("lottrace.ledger._CHUNK", 50)  # the writer soon forgets its own ids
    reports = []
    for bits in (26, 3):  # 2**3 bits: after a few ids, every id "may have been met"
        monkeypatch.setattr(pipeline._SeenBefore, "BITS", bits)
        r = _import(season, tmp_path / f"{bits}.db", 0, monkeypatch)
        assert r.exit_code == 0, r.output
        reports.append(json.loads(r.stdout))
    serial = _import(season, tmp_path / "serial.db", 10**12, monkeypatch)
    reports.append(json.loads(serial.stdout))
    for rep in reports:
        del rep["head"]
    assert reports[0] == reports[1] == reports[2]
    assert reports[0]["duplicates"] == len(lines[::7])
    with Ledger(tmp_path / "26.db") as a, Ledger(tmp_path / "3.db") as b:
        assert a.derived_snapshot() == b.derived_snapshot()
    monkeypatch.setattr("lottrace.cli.PARALLEL_BYTES", 0)
    again = CliRunner().invoke(
        cli, ["--db", str(tmp_path / "26.db"), "import", "--json", str(season)]
    )
    assert json.loads(again.stdout)["added"] == 0


def test_marks_for_another_ledger_file_at_the_same_path_are_not_trusted(tmp_path: Path) -> None:
    """A "stored" mark trusted wrongly would drop an event: the head check is what stops it."""
    db = tmp_path / "l.db"
    events = _events(2)
    with Ledger.create(db) as ledger:
        ledger.append(events)
    items = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    assert _marks(items) == [False] * 4
    for x in ("", "-wal", "-shm"):  # the file is replaced by a new, empty ledger
        Path(f"{db}{x}").unlink(missing_ok=True)
    with Ledger.create(db) as ledger:
        report = ledger.append_prepared(iter(items))
        assert (report.added, report.duplicates) == (4, 0)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lottrace.ledger._LOOKAHEAD", 10)  # copies land in another chunk
    monkeypatch.setattr("lottrace.ledger._CHUNK", 20)  # and the writer forgets its own ids


def test_marks_stay_right_when_the_child_falls_behind_and_catches_up(
    tmp_path: Path, small_chunks: None
) -> None:
    db = tmp_path / "l.db"
    with Ledger.create(db) as ledger:  # not empty: the child looks up only when ahead
        ledger.append(_events(1, "Z"))
    events = _events(300)  # 600 events

    def read(hooks: Hooks) -> Iterator[tuple[str, EventBase]]:
        pipeline._AHEAD = 10**9  # in the child: not ahead for the first message
        yield from events[:500]
        pipeline._AHEAD = 0  # ahead from the second message on
        yield from events[:100]  # copies of events marked without look-ups
        yield from events[500:]

    items = list(prepared_events(read, _hooks(), parallel=True, ledger=db))
    marks = _marks(items)
    assert marks[:500] == [None] * 500
    assert marks[500:600] == [None] * 100  # met before, though not looked up then
    assert marks[600:] == [True] * 100
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(items))
        assert (report.added, report.duplicates) == (600, 100)
        ledger.verify()


def test_another_readers_events_are_not_trusted_even_with_higher_counts(
    tmp_path: Path, small_chunks: None
) -> None:
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    events = _events(50)  # 100
    filler = _events(50, "F")  # 100
    a = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    b = list(prepared_events(lambda h: filler + events, _hooks(), parallel=True, ledger=db))
    assert _marks(b[100:]) == [True] * 100  # right for reader b alone
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(a + b[100:]))
        assert (report.added, report.duplicates) == (100, 100)
        ledger.verify()


def test_unmarked_events_between_one_readers_events_end_the_trust(
    tmp_path: Path, small_chunks: None
) -> None:
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    events = _events(50)  # 100
    a = list(prepared_events(lambda h: events, _hooks(), parallel=True, ledger=db))
    here = [prepare(w, ev) for w, ev in events[50:]]  # the same events, prepared here
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(a[:50] + here + a[50:]))
        assert (report.added, report.duplicates) == (100, 50)
        ledger.verify()


def test_a_failed_open_leaves_no_count(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(LedgerError):
        Ledger(other)
    assert not open_here(other)
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(LedgerError):
        Ledger(bad)
    assert not open_here(bad)


def test_a_ledger_not_at_its_recorded_head_gets_no_marks(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    with Ledger.create(db) as ledger:
        ledger.append(_events(2))
    con = sqlite3.connect(db)  # a row added behind lottrace's back
    con.execute(
        "INSERT INTO events SELECT seq + 100, 'f' || substr(event_id, 2), type, time, lot, "
        "body, prev_hash, hash FROM events WHERE seq = 1"
    )
    con.commit()
    con.close()
    items = list(prepared_events(lambda h: _events(3), _hooks(), parallel=True, ledger=db))
    assert _marks(items) == ["unmarked"] * 6


def test_a_ledger_dropped_without_close_is_not_counted_open(tmp_path: Path) -> None:
    import gc

    db = tmp_path / "l.db"
    Ledger.create(db).close()
    ledger = Ledger(db)
    assert open_here(db)
    ledger.conn.close()
    del ledger
    gc.collect()
    assert not open_here(db)
