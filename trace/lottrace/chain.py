"""The hash chain: how each row of the log links to the one before, and the row-by-row check.

Row *n* stores ``prev_hash`` = row *n-1*'s ``hash``, and ``hash`` =
sha256(``prev_hash`` || ``event_id``) over the raw 32-byte digests; the first
row's ``prev_hash`` is the ledger's genesis, sha256(``lottrace:`` + its
random id). Pure functions over rows, so every storage backend checks its log
the same way (:meth:`lottrace.ledger.Ledger.verify`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

__all__ = ["Checked", "check_rows", "genesis", "link", "prev_message"]


def genesis(ledger_id: str) -> str:
    """The hash a ledger's chain starts from: sha256 of ``lottrace:`` and its random id."""
    return hashlib.sha256(f"lottrace:{ledger_id}".encode()).hexdigest()


def link(prev: str, eid: str) -> str:
    """The hash of the row whose event is ``eid`` and whose predecessor's hash is ``prev``."""
    return hashlib.sha256(bytes.fromhex(prev + eid)).hexdigest()


#: The form of the ``time`` column (rules.time_key): fromisoformat alone accepts more.
_TIME_KEY = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")

_PREV_MSG = (
    "row seq {seq}: prev_hash does not match the hash of the row before "
    "(rows were inserted, removed or moved)"
)


def prev_message(seq: int) -> str:
    if seq == 1:  # the chain starts from sha256 of meta's ledger_id
        return (
            "row seq 1: prev_hash is not this ledger's genesis (sha256 of meta's ledger_id): "
            "the ledger_id was edited, or the rows come from another ledger"
        )
    return _PREV_MSG.format(seq=seq)


@dataclass
class Checked:
    """What checking a run of rows found: the first failure, and the ends of its chain."""

    failure: tuple[int, int, str] | None  #: (seq, which check, message)
    rows: int
    first_seq: int
    first_prev: str
    last_hash: str
    saw_expect: bool


def check_rows(rows: Iterable[Any], prev: str | None, n: int, expect: str | None) -> Checked:
    """Check each row's seq, body, columns, id and chain link, stopping at the first bad one.

    ``prev`` is the hash the first row must link to, or None to take its
    ``prev_hash`` as given (a worker's range: the caller checks that seam).
    The body is re-serialised to see whether it is canonical only when it
    does not hash to its id: lottrace wrote the id as the hash of the
    canonical body, so a body that hashes to it is that body.
    """
    sha, fromhex, loads, is_key = hashlib.sha256, bytes.fromhex, orjson.loads, _TIME_KEY.fullmatch
    fromiso = datetime.fromisoformat
    first_seq, first_prev, count, saw = n, "", 0, False
    bad: tuple[int, int, str] | None = None
    for seq, eid, raw, prev_hash, h, typ, t, lot in rows:
        if count == 0:
            first_seq, first_prev = seq, prev_hash
            if prev is None:
                prev = prev_hash
        count += 1
        if seq != n:
            bad = (seq, 0, f"row seq {seq}: expected seq {n}; rows are missing or reordered")
            break
        n += 1
        try:
            d = loads(raw)
            # The time column is the body's time as a UTC key: same instant, same form.
            columns_ok = (
                d["type"] == typ
                and d.get("lot") == lot
                and is_key(t) is not None
                and fromiso(d["time"]) == fromiso(t)
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            columns_ok = False
        if not columns_ok or sha(raw).hexdigest() != eid:
            if not columns_ok or not _canonical(raw):
                bad = (
                    seq,
                    1,
                    f"row seq {seq}: the body is not a canonical event, or its type, time or lot "
                    "column disagrees with it (the row was edited)",
                )
            else:
                bad = (
                    seq,
                    2,
                    f"row seq {seq}: body does not hash to its event_id {eid[:12]}... "
                    "(the event was edited)",
                )
            break
        if prev_hash != prev:
            bad = (seq, 3, prev_message(seq))
            break
        prev = sha(fromhex(prev_hash + eid)).hexdigest()
        if h != prev:
            bad = (seq, 4, f"row seq {seq}: stored hash is wrong")
            break
        if prev == expect:
            saw = True
    return Checked(bad, count, first_seq, first_prev, prev or "", saw)


def _canonical(raw: bytes) -> bool:
    """Whether ``raw`` is a JSON object written the canonical way (sorted keys, no spaces)."""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS) == raw
    except orjson.JSONDecodeError:
        return False
