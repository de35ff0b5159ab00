"""The Event Hash ID's ValueError becomes one LottraceError, in one place, whoever hashes.

``epcis_hash`` is a standalone module raising ``ValueError``; a plain import's
``type: epcis`` line (the ledger), an EPCIS document's import and ``lottrace
epcis hash`` all hash through ``epcis_check`` and report the same error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lottrace.cli import cli
from lottrace.epcis import document_to_events
from lottrace.epcis_check import EPCIS_CONTEXT, document_hashes, event_hash
from lottrace.epcis_hash import event_hash_id
from lottrace.errors import InvalidEvent
from lottrace.events import parse_event
from lottrace.ledger import Ledger

from factories import observe

WHY = "cannot hash field 'nope:permit' in event: namespace prefix 'nope' is not declared"


def _unhashable() -> dict[str, Any]:
    """An event well-formed for EPCIS, whose hash cannot be computed (an undeclared prefix)."""
    return observe(1, "urn:epc:class:lgtin:4012345.012345.X", 10.0) | {"nope:permit": "P-7"}


def _doc(context: Any = EPCIS_CONTEXT) -> dict[str, Any]:
    return {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-07-01T00:00:00Z",
        "epcisBody": {"eventList": [_unhashable()]},
    }


def test_the_leaf_raises_valueerror_and_the_wrapper_invalidevent() -> None:
    with pytest.raises(ValueError, match=WHY):
        event_hash_id(_unhashable())
    with pytest.raises(InvalidEvent, match=f"^in.jsonl:3: cannot compute the Event Hash ID: {WHY}"):
        event_hash(_unhashable(), where="in.jsonl:3")
    with pytest.raises(
        InvalidEvent, match=f"^d.jsonld: cannot compute the Event Hash ID: event 0: {WHY}"
    ):
        document_hashes(_doc(), where="d.jsonld")


def test_a_plain_import_line_reports_what_the_document_import_reports(tmp_path: Path) -> None:
    line = {
        "type": "epcis",
        "time": _unhashable()["eventTime"],
        "site": "epcis:unknown",
        "hash_id": "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0",
        "event": _unhashable(),
    }
    with Ledger.create(tmp_path / "l.db") as ledger:
        with pytest.raises(InvalidEvent) as plain:
            ledger.append([("in.jsonl:3", parse_event(line))])
        with pytest.raises(InvalidEvent) as document:
            list(document_to_events(_doc(), "d.jsonld"))
        assert ledger.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    assert type(plain.value) is type(document.value) is InvalidEvent
    assert str(plain.value) == f"in.jsonl:3: cannot compute the Event Hash ID: {WHY} in @context"
    assert str(document.value).startswith(
        f"d.jsonld: cannot compute the Event Hash ID: event 0: {WHY}"
    )


def test_an_unresolved_context_url_is_named_with_how_to_register_it() -> None:
    url = "https://partner.example/ctx.jsonld"
    with pytest.raises(InvalidEvent, match="lottrace epcis context add URL FILE") as info:
        list(document_to_events(_doc([EPCIS_CONTEXT, url]), "d.jsonld"))
    assert f"({url}: lottrace never fetches a context" in str(info.value)


def test_epcis_hash_prints_one_error_line(tmp_path: Path) -> None:
    src = tmp_path / "d.jsonld"
    src.write_text(json.dumps(_doc()))
    r = CliRunner().invoke(cli, ["--db", str(tmp_path / "l.db"), "epcis", "hash", str(src)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        f"Error: {src}: cannot compute the Event Hash ID: event 0: {WHY} in @context"
    ]
