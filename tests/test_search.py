"""Finding lots by code, producer or container (lottrace.search), and what a caller may see."""

from __future__ import annotations

from pathlib import Path

import pytest

from lottrace.demo import build_demo
from lottrace.events import parse_event
from lottrace.ledger import Ledger
from lottrace.search import find_lots


@pytest.fixture(scope="module")
def season(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("search") / "season.db"
    build_demo(db)
    return db


def _lots(answer: dict[str, object]) -> list[tuple[str, str]]:
    return [(r["lot"], r["matched"]) for r in answer["results"]]  # type: ignore[attr-defined]


def test_a_lot_code_whole_or_in_part_any_case(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        assert _lots(find_lots(ledger, "exp-25-jum-01")) == [("EXP-25-JUM-01", "lot")]
        some = _lots(find_lots(ledger, "  EXP-25 "))
        assert len(some) >= 3 and all(lot.startswith("EXP-25") for lot, _ in some)
        assert find_lots(ledger, "ex")["results"] == []  # two characters match only whole
        assert find_lots(ledger, "   ")["results"] == []


def test_a_producer_finds_its_harvests_and_every_lot_made_from_them(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        found = _lots(find_lots(ledger, "APR-0502"))
    assert found[0] == ("APR-25-H0502-1", "producer")
    lots = [lot for lot, _ in found]
    assert "MILL-25-0412-G1" in lots and "APR-25-HQ-014" in lots
    assert all(how == "producer" for _, how in found)
    assert "EXP-25-JUM-01" not in lots  # JUMARP's export holds no APROCASSI coffee


def test_a_container_finds_what_was_shipped_in_it(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        answer = find_lots(ledger, "HLXU8364124")
    assert answer["results"][0]["lot"] == "MILL-25-0412-G1"
    assert answer["results"][0]["by"] == "HLXU8364124"
    assert answer["results"][0]["stage"] == "export"


def test_lots_the_caller_may_not_see_are_never_answered(season: Path) -> None:
    visible = {"MILL-25-0412-G1", "APR-25-H0502-1"}
    with Ledger.reader(season) as ledger:
        assert _lots(find_lots(ledger, "HLXU", visible=visible)) == [
            ("MILL-25-0412-G1", "container")
        ]
        assert find_lots(ledger, "EXP-25-CEC-01", visible=visible)["results"] == []
        assert find_lots(ledger, "MSCU7249054", visible=visible)["results"] == []
        every = _lots(find_lots(ledger, "APR-0502", visible=visible))
    assert sorted(lot for lot, _ in every) == sorted(visible)


def test_a_limit_and_more(season: Path) -> None:
    with Ledger.reader(season) as ledger:
        answer = find_lots(ledger, "-25-", limit=3)
    assert len(answer["results"]) == 3 and answer["more"] is True


def test_an_appended_event_is_found_at_once(tmp_path: Path) -> None:
    """The index is kept per head: an append moves the head, so the next search sees it."""
    db = tmp_path / "s.db"
    build_demo(db)
    with Ledger.reader(db) as ledger:
        assert find_lots(ledger, "NEW-LOT-1")["results"] == []
    harvest = {
        "type": "harvest",
        "time": "2025-11-02T08:00:00-05:00",
        "site": "farm:NEW",
        "lot": "NEW-LOT-1",
        "kg": 50,
        "producer": "NEWP-1",
        "plot": {"id": "NP1", "geometry": {"type": "Point", "coordinates": [-78.8, -5.6]}},
    }
    with Ledger(db) as ledger:
        ledger.append([("t:1", parse_event(harvest))])
    with Ledger.reader(db) as ledger:
        assert _lots(find_lots(ledger, "new-lot-1")) == [("NEW-LOT-1", "lot")]
        assert _lots(find_lots(ledger, "NEWP-1")) == [("NEW-LOT-1", "producer")]
