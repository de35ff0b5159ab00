"""What a cold attack on ``lottrace serve`` found (docs/deploying.md's rules), kept as tests.

Each test is one attack, made with real HTTP requests, and what must hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from lottrace.ledger import Ledger
from test_server import (
    ELB_LOT,
    FLANDRIA_LOT,
    OTHER_SITE,
    OWNER,
    Served,
    events_count,
    harvest,
    lottrace,
    start,
)
from test_server import served as _served

#: The sample season served, as in test_server.py (a module-scoped fixture of its own here).
served = _served


def _jsonl(*events: dict[str, Any]) -> dict[str, Any]:
    body = "".join(json.dumps(e) + "\n" for e in events)
    return {"files": {"files": ("attack.jsonl", body.encode(), "application/json")}}


def _export_event_id(served: Served, lot: str) -> str:
    history = served.client("admin").get(f"/api/lots/{lot}").json()
    return next(e["event_id"] for e in history["events"] if e["type"] == "export")


def test_another_organisation_cannot_void_the_owners_events(served: Served) -> None:
    target = _export_event_id(served, FLANDRIA_LOT)
    correction = {
        "type": "correction",
        "time": "2025-12-01T08:00:00-05:00",
        "site": OTHER_SITE,
        "corrects": target,
        "reason": "did_not_occur",
    }
    before = events_count(served.db)
    r = served.client("other_field").post("/api/import", **_jsonl(correction))
    assert r.status_code == 403, r.text
    assert "cannot void it" in r.json()["detail"]
    assert events_count(served.db) == before
    assert served.client("buyer2").get(f"/api/lots/{FLANDRIA_LOT}").status_code == 200


def test_writing_at_ones_own_site_about_anothers_lot_is_refused(served: Served) -> None:
    drying = {
        "type": "drying",
        "time": "2025-12-01T08:00:00-05:00",
        "site": OTHER_SITE,
        "lot": ELB_LOT,
        "kg": 10,
    }
    before = events_count(served.db)
    r = served.client("other_field").post("/api/import", **_jsonl(drying))
    # refused as a lot that does not exist is (issue #19, F1): its existence is not told
    missing = served.client("other_field").post("/api/import", **_jsonl(drying | {"lot": "NOPE-1"}))
    assert r.status_code == missing.status_code == 400, r.text
    assert r.json() == json.loads(missing.text.replace("NOPE-1", ELB_LOT))
    assert r.json()["field"] == "lot"
    assert events_count(served.db) == before


def test_a_sites_epcis_uri_is_that_site(served: Served) -> None:
    """The owner's user may not write at another organisation's site spelled as a URI."""
    doc = {
        "@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-06-01T10:05:00Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventTime": "2025-06-01T10:00:00Z",
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": ["urn:epc:id:sgtin:0614141.107346.9001"],
                    "action": "OBSERVE",
                    "bizStep": "inspecting",
                    "readPoint": {"id": f"https://lottrace.org/site/{OTHER_SITE}"},
                    "bizLocation": {"id": f"https://lottrace.org/site/{OTHER_SITE}"},
                }
            ]
        },
    }
    before = events_count(served.db)
    r = served.client("field").post("/capture", content=json.dumps(doc))
    assert r.status_code == 403, r.text
    assert events_count(served.db) == before


def _shared_upstream(served: Served) -> tuple[str, set[str]]:
    """A lot upstream of the buyer's export that also went into lots the buyer cannot open."""
    admin, buyer = served.client("admin"), served.client("buyer")
    mine = set(admin.get(f"/api/lots/{ELB_LOT}/upstream").json()["lots"]) | {ELB_LOT}
    for lot in sorted(mine):
        down = set(admin.get(f"/api/lots/{lot}/downstream").json()["lots"])
        closed = {o for o in down if buyer.get(f"/api/lots/{o}").status_code == 404}
        if closed:
            return lot, closed
    pytest.fail("the sample has no upstream lot shared with lots the buyer may not see")


def test_a_buyer_never_sees_lots_beyond_its_own_through_a_shared_upstream_lot(
    served: Served,
) -> None:
    """Nothing the buyer reads names a lot it cannot open."""
    lot, closed = _shared_upstream(served)
    buyer = served.client("buyer")

    def names(text: str) -> set[str]:
        return {o for o in closed if f'"{o}"' in text or f"/lot/{o}" in text}

    history = buyer.get(f"/api/lots/{lot}")
    assert history.status_code == 200 and not names(history.text)
    down = buyer.get(f"/api/lots/{lot}/downstream")
    assert down.status_code == 200 and not names(down.text), names(down.text)
    events = buyer.get("/events", params={"perPage": 1000})
    assert not names(events.text)
    every = served.client("admin").get("/events", params={"perPage": 1000})
    assert names(every.text)  # the check can fail: the owner's answer names them


def test_lots_beyond_ones_own_are_not_found_and_not_hinted(served: Served) -> None:
    buyer = served.client("buyer")
    r = buyer.get(f"/api/lots/{FLANDRIA_LOT[:-1]}")  # a near miss of another buyer's lot
    assert r.status_code == 404
    assert "did you mean" not in r.text and FLANDRIA_LOT not in r.text
    assert buyer.get(f"/api/lots/{FLANDRIA_LOT}").json()["detail"] == f"no lot {FLANDRIA_LOT!r}"


def test_an_event_nested_too_deep_is_refused_at_capture(served: Served) -> None:
    deep: Any = "bottom"
    for _ in range(300):
        deep = {"x:v": deep}
    doc = {
        "@context": [
            "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
            {"x": "https://example.org/x/"},
        ],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-06-01T10:05:00Z",
        "epcisBody": {
            "eventList": [
                {
                    "type": "ObjectEvent",
                    "eventTime": "2025-06-01T10:00:00Z",
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": ["urn:epc:id:sgtin:0614141.107346.9002"],
                    "action": "OBSERVE",
                    "x:deep": deep,
                }
            ]
        },
    }
    r = served.client("field").post("/capture", content=json.dumps(doc))
    assert r.status_code == 400, r.text
    assert "nested deeper than" in r.json()["detail"]
    assert served.client("admin").get("/events", params={"perPage": 5}).status_code == 200


def test_hostile_query_values_get_400_or_a_clean_answer(served: Served) -> None:
    analyst = served.client("analyst")
    for path in ("/api/delays", "/api/bottlenecks", "/api/stuck"):
        key = "as-of" if path.endswith("stuck") else "since"
        r = analyst.get(path, params={key: "0001-01-01"})
        assert r.status_code == 400, (path, r.text)
    r = served.client("admin").get("/events", params={"perPage": 1, "eventType": "A\r\nX-Bad: 1"})
    assert r.status_code == 200
    assert "X-Bad" not in r.headers
    assert served.client("admin").get("/no/such/route").json()["status"] == 404


def test_writes_by_readers_make_no_capture_job_and_jobs_hide_their_owner(served: Served) -> None:
    r = served.client("buyer").post("/capture", content=b"{}")
    assert r.status_code == 403
    assert "Location" not in r.headers
    from test_server import epcis_doc, harvest

    ok = served.client("field").post(
        "/capture", content=json.dumps(epcis_doc([harvest("ATK-1", "farm:ATK")]))
    )
    assert ok.status_code == 202
    assert not any(k.startswith("_") for k in ok.json())


def test_upload_names_are_only_names(served: Served) -> None:
    from test_server import harvest

    line = (json.dumps(harvest("ATK-NAME", "farm:ATK")) + "\n").encode()
    for name in ("..", "x" * 300 + ".jsonl", "../../etc/passwd.jsonl"):
        r = served.client("field").post(
            "/api/import", files={"files": (name, line, "application/json")}
        )
        assert r.status_code == 200, (name, r.text)
    assert "/tmp" not in r.text


def test_organisation_names_as_buyers_write_them(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    Ledger.create(db).close()
    assert (
        lottrace(db, "users", "add", "a", "--org", OWNER, "--role", "admin", "--owner").returncode
        == 0
    )
    r = lottrace(
        db, "users", "add", "h", "--org", "Hudson Women's Coffee Importers LLC", "--role", "buyer"
    )
    assert r.returncode == 0, r.stderr


def test_a_chunked_body_over_the_limit_is_413_not_an_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    Ledger.create(db).close()
    token = lottrace(db, "users", "add", "f", "--org", OWNER, "--role", "field", "--owner").stdout
    proc, url = start(db, tmp_path / "log", "--max-body-mb", "1")
    try:

        def chunks() -> Any:
            for _ in range(40):
                yield b"x" * 65536

        r = httpx.post(
            url + "/capture",
            content=chunks(),
            headers={"Authorization": f"Bearer {token.strip()}"},
            timeout=30,
        )
        assert r.status_code == 413
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert events_count(db) == 0
        assert "Traceback" not in (tmp_path / "log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("code", ["APR-25/HQ#1", "APR-25+HQ%2F2", "APR/25/x"])
def test_a_lot_code_with_a_slash_hash_or_percent_is_reached_on_every_lot_route(
    served: Served, code: str
) -> None:
    """GS1's AI 10 allows '/', and lottrace's lot codes allow '#', '%' and '+': such a lot
    is reached, percent-encoded, on its history, sub-resources, web page and resolver."""
    from urllib.parse import quote

    field = served.client("field")
    r = field.post("/api/import", **_jsonl(harvest(code, "farm:SLASH")))
    assert r.status_code == 200, r.text
    admin = served.client("admin")
    path = quote(code, safe="")
    history = admin.get(f"/api/lots/{path}")
    assert history.status_code == 200, history.text
    assert history.json()["lot"] == code
    for sub in ("upstream", "downstream", "timeline", "card"):
        r = admin.get(f"/api/lots/{path}/{sub}")
        assert r.status_code == 200, (sub, r.text)
    assert admin.get(f"/api/lots/{path}/upstream").json()["lot"] == code
    passport = admin.get(f"/api/lots/{path}/passport")
    assert passport.status_code == 200
    assert f"/lot/{path}" in passport.text  # the QR's address names the lot encoded, once
    assert admin.get(f"/lot/{path}").status_code == 200
    assert admin.get(f"/lots/{path}", headers={"Accept": "text/html"}).status_code == 200
    # a lot that is not there is still 404, with or without a slash
    assert admin.get(f"/api/lots/{quote(code + '/nope', safe='')}").status_code == 404
