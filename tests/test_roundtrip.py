"""Hypothesis round-trips: any valid event survives the ledger byte for byte."""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lottrace.events import canonical_json, event_id, parse_event
from lottrace.ledger import Ledger

lot_codes = st.from_regex(r"\A[A-Z]{2,4}-[0-9]{1,5}(-[A-Z0-9]{1,3})?\Z")
kgs = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
# Text a field accepts: no control, format (zero-width, bidi), separator or surrogate
# characters, in NFC (ids are normalised on input; see docs/data-model.md "Text").
texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), min_size=1, max_size=40
).map(lambda s: unicodedata.normalize("NFC", s))
offsets = st.sampled_from(["-05:00", "Z", "+01:00", "-04:30"])


@st.composite
def harvests(draw: Any) -> dict[str, Any]:
    day = draw(st.integers(1, 28))
    d: dict[str, Any] = {
        "type": "harvest",
        "time": f"2025-05-{day:02d}T{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:00{draw(offsets)}",
        "site": "farm:" + draw(st.from_regex(r"\A[A-Z0-9]{1,8}\Z")),
        "lot": draw(lot_codes),
        "producer": draw(texts),
        "plot": {"id": draw(texts)},
        "kg": draw(kgs),
    }
    if draw(st.booleans()):
        lon = draw(st.floats(-180, 180))
        lat = draw(st.floats(-90, 90))
        d["plot"]["geometry"] = {"type": "Point", "coordinates": [lon, lat]}
    if draw(st.booleans()):
        d["certifications"] = draw(
            st.lists(st.sampled_from(["organic", "fairtrade", "cafe_femenino"]), max_size=3)
        )
    for key, strat in (
        ("variety", texts),
        ("note", texts),
        ("process", st.sampled_from(["washed", "natural", "honey"])),
    ):
        if draw(st.booleans()):
            d[key] = draw(strat)
    return d


@given(st.lists(harvests(), min_size=1, max_size=8, unique_by=lambda d: d["lot"]))
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
def test_events_round_trip_through_the_ledger(events: list[dict[str, Any]]) -> None:
    parsed = [parse_event(e) for e in events]
    with tempfile.TemporaryDirectory() as tmp, Ledger.create(Path(tmp) / "r.db") as ledger:
        report = ledger.append([(f"h:{i}", e) for i, e in enumerate(parsed)])
        assert report.added == len(parsed)
        for e in parsed:
            [stored] = ledger.lot_events(e.lot)  # type: ignore[attr-defined]
            assert stored.event_id == event_id(e)
            assert canonical_json(stored.event) == canonical_json(e)
            assert stored.event == e
        assert ledger.verify().events == len(parsed)
        again = ledger.append([(f"h:{i}", parse_event(e)) for i, e in enumerate(events)])
        assert (again.added, again.duplicates) == (0, len(parsed))


@given(harvests())
@settings(max_examples=200, deadline=None, derandomize=True)
def test_canonical_form_is_a_fixed_point(d: dict[str, Any]) -> None:
    import orjson

    e = parse_event(d)
    body = canonical_json(e)
    assert canonical_json(parse_event(orjson.loads(body))) == body
