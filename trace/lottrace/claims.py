"""A lot's claims: which it holds, which a blend dropped and why, and which it was declared to hold.

The claims (organic, fairtrade, rainforest, cafe_femenino, single_producer,
eudr_cleared) are folded from the harvests behind the lot by
:mod:`lottrace.claimlogic`, the same fold the rules use on append, walking up
through the event that created each lot. See ``docs/rules.md``, "Claims".
"""

from __future__ import annotations

from typing import Any

from .claimlogic import CLAIMS, ClaimState, state_of
from .ledger import Ledger
from .rules import Facts, facts_of

__all__ = ["claims"]

JSON = dict[str, Any]


def claims(ledger: Ledger, lot: str) -> JSON:
    """The claims a lot holds, those it lacks with why, and where a blend dropped one.

    Returns
    -------
    dict
        ``lot``; ``held`` (claims, in :data:`~lottrace.events.CLAIMS` order);
        ``declared`` (claims the event that formed the lot declared);
        ``producers`` (one, or the first two when more); ``not_held``
        (claim, reason, ``dropped_at``: the lots formed by a blend that lost
        it although an input held it, empty when no source ever held it).

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     c = claims(ledger, "EXP-25-CEC-01")
    >>> c["held"]
    ['fairtrade', 'eudr_cleared']
    """
    ledger.require_lot(lot)
    creators: dict[str, Facts | None] = {}

    def creator(code: str) -> Facts | None:
        if code not in creators:
            st = ledger.lot(code)
            creators[code] = None if st is None else facts_of(ledger.event(st.created_by).event)
        return creators[code]

    memo: dict[str, ClaimState] = {}
    state = state_of(lot, creator, memo)
    own = creators.get(lot)
    not_held = []
    for claim in CLAIMS:
        if claim in state.held:
            continue
        dropped = sorted(
            code
            for code, s in memo.items()
            if claim not in s.held
            and (f := creators.get(code)) is not None
            and f.origin is None
            and any(claim in memo[src].held for src, _kg in f.drawn if src in memo)
        )
        not_held.append({"claim": claim, "reason": state.reason(claim), "dropped_at": dropped})
    return {
        "lot": lot,
        "held": [c for c in CLAIMS if c in state.held],
        "declared": list(own.claims) if own is not None else [],
        "producers": sorted(state.producers),
        "not_held": not_held,
    }
