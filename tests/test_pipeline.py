"""Reading and preparing events in a second process gives the same ledger as reading them here."""

from __future__ import annotations

import itertools
import json
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.errors import InvalidEvent, LottraceError
from lottrace.events import EventBase, parse_event
from lottrace.generate import write_jsonl
from lottrace.ledger import Ledger, prepare
from lottrace.pipeline import Hooks, prepared_events
from lottrace.readers import iter_events
from lottrace.rules import Facts

from factories import drying, harvest


def _import(path: Path, db: Path, parallel_bytes: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr("lottrace.importing.PARALLEL_BYTES", parallel_bytes)
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


# --------------------------------------------------------------------------- duplicates


def _hooks() -> Hooks:
    return Hooks(print, print, lambda n: None)


def test_another_batch_landing_while_the_reader_reads_is_neither_lost_nor_doubled(
    tmp_path: Path,
) -> None:
    """The writer looks every id up itself, at its own head: what came in meanwhile is a duplicate."""
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    events = _events(300)
    stream = prepared_events(lambda h: events, _hooks(), parallel=True)
    first = next(stream)  # the reader is under way
    with Ledger(db) as other:  # another import adds some of the same events meanwhile
        assert other.append(events[100:400]).added == 300
    with Ledger(db) as ledger:
        report = ledger.append_prepared(itertools.chain([first], stream))
        assert (report.added, report.duplicates) == (300, 300)
        assert ledger.stats()["events"] == 600
        ledger.verify()


def test_the_same_events_twice_in_one_input_and_across_chunks_are_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lottrace.ledger._CHUNK", 50)  # the writer flushes (and forgets) often
    db = tmp_path / "l.db"
    events = _events(600)  # more than one look-ahead chunk (1,000) before the copies
    with Ledger.create(db) as ledger:
        ledger.append(events[:10])
    again = events[1:40:2]
    items = list(prepared_events(lambda h: events + again, _hooks(), parallel=True))
    with Ledger(db) as ledger:
        report = ledger.append_prepared(iter(items))
        assert (report.added, report.duplicates) == (1190, 10 + len(again))
        ledger.verify()


def test_a_file_with_repeated_lines_imports_the_same_in_one_process_or_two(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    season = tmp_path / "season.jsonl"
    lines = season.read_text().splitlines() if write_jsonl(season, 40, seed=5) else []
    season.write_text("\n".join(lines + lines[::7]) + "\n")  # some events twice
    monkeypatch.setattr("lottrace.ledger._CHUNK", 50)
    reports = []
    for name, parallel_bytes in (("two", 0), ("one", 10**12)):
        r = _import(season, tmp_path / f"{name}.db", parallel_bytes, monkeypatch)
        assert r.exit_code == 0, r.output
        reports.append(json.loads(r.stdout))
    for rep in reports:
        del rep["head"]
    assert reports[0] == reports[1]
    assert reports[0]["duplicates"] == len(lines[::7])
    with Ledger(tmp_path / "two.db") as a, Ledger(tmp_path / "one.db") as b:
        assert a.derived_snapshot() == b.derived_snapshot()
    monkeypatch.setattr("lottrace.importing.PARALLEL_BYTES", 0)
    again = CliRunner().invoke(
        cli, ["--db", str(tmp_path / "two.db"), "import", "--json", str(season)]
    )
    assert json.loads(again.stdout)["added"] == 0


def test_the_reader_process_never_opens_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import whose ledger the reader could not open at all still imports: it never tries."""
    import sqlite3 as sqlite

    season = tmp_path / "season.jsonl"
    n = write_jsonl(season, 20, seed=2)
    db = tmp_path / "l.db"
    Ledger.create(db).close()
    real = sqlite.connect
    parent = os.getpid()

    def connect(*args: Any, **kw: Any) -> Any:
        if os.getpid() != parent:
            os._exit(7)  # the child touched SQLite: the import fails loudly
        return real(*args, **kw)

    monkeypatch.setattr(sqlite, "connect", connect)
    r = _import(season, db, 0, monkeypatch)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["added"] == n


def test_the_batch_filter_rarely_calls_a_new_id_met() -> None:
    """Three positions per id: at 2**20 bits and 30,000 ids, about 17 false "met"s in 30,000
    new ids are expected (two positions: about 93); each is a look-up that waits, on
    PostgreSQL, for the writes running behind the batch."""
    import hashlib

    from lottrace.ledger import _Added

    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(60_000)]
    seen = _Added(20)
    assert len(seen.met_then_add(ids[:30_000])) < 25  # distinct ids: a few as it fills
    assert all(seen.met(i) for i in ids[:30_000])  # never a miss
    false = [i for i in ids[30_000:] if seen.met(i)]
    assert len(false) < 45, len(false)


@pytest.mark.parametrize("bits", [27, 3])
def test_an_empty_ledger_is_looked_up_only_for_ids_its_batch_met(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits: int
) -> None:
    """Into an empty log, the writer skips the look-up of ids its own filter never met; a
    filter that always says "met" (3 bits) changes nothing but speed, and no copy is missed."""
    from lottrace import ledger as ledger_module

    monkeypatch.setattr("lottrace.ledger._CHUNK", 50)  # copies come after flushes
    monkeypatch.setattr(ledger_module._Added, "BITS", bits)
    asked: list[int] = []
    from lottrace.storage.sqlite import SqliteStorage

    real = SqliteStorage.stored_among

    def counting(self: Any, eids: list[str]) -> set[str]:
        asked.append(len(eids))
        return real(self, eids)

    monkeypatch.setattr(SqliteStorage, "stored_among", counting)
    events = _events(600)
    again = events[1:400:3]
    with Ledger.create(tmp_path / "l.db") as ledger:
        report = ledger.append(events + again)
        assert (report.added, report.duplicates) == (1200, len(again))
        ledger.verify()
    if bits == 27:
        assert sum(asked) < len(again) + 20  # the copies (and a rare false "met"), not all
    else:  # every id once the 8-bit filter is full (after the first few ids)
        assert 1200 + len(again) - 100 <= sum(asked) <= 1200 + len(again)
