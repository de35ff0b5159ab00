"""The claim algebra: which claims a lot holds, folded from the harvests behind it.

Pure logic over :class:`~lottrace.rules.Facts`-like values, no SQL: the rules use
it on append (a lot declared a claim lot must hold its claims,
``rules.check``), and :mod:`lottrace.claims` to answer for a lot. A harvest
holds a claim on its own facts; a lot formed from inputs holds what every
input holds (a merge, a blend, the dry mill's grades, a split), and is a
single-producer lot only while one producer's coffee is in it. See
``docs/rules.md``, "Claims".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from .events import CLAIMS

__all__ = ["CLAIMS", "ClaimState", "Origin", "blend", "harvest_state", "state_of", "unknown"]


class Origin(NamedTuple):
    """What a harvest says that its claims rest on."""

    producer: str
    plot: str
    women_producer: bool
    registered_to: str | None
    certifications: tuple[str, ...]
    #: None when the plot's geolocation is enough for EUDR, else why not
    eudr_problem: str | None


class ClaimState(NamedTuple):
    """The claims a lot holds, its producers (at most two kept), and why it lacks the others."""

    held: frozenset[str]
    producers: frozenset[str]
    why: tuple[tuple[str, str], ...]  #: (claim, reason) for each claim not held

    def reason(self, claim: str) -> str:
        return next((r for c, r in self.why if c == claim), "")


_CERTIFIED = ("organic", "fairtrade", "rainforest")


def harvest_state(lot: str, o: Origin) -> ClaimState:
    """The claims of a harvest lot, from its own facts."""
    held: set[str] = {"single_producer"}
    why: list[tuple[str, str]] = []
    for claim in _CERTIFIED:
        if claim in o.certifications:
            held.add(claim)
        else:
            why.append((claim, f"harvest lot {lot} (producer {o.producer}) is not {claim}"))
    if not o.women_producer:
        why.append(
            (
                "cafe_femenino",
                f"harvest lot {lot}: producer {o.producer} is not recorded as a woman "
                "(women_producer)",
            )
        )
    elif o.registered_to is None:
        why.append(
            (
                "cafe_femenino",
                f"harvest lot {lot}: plot {o.plot} has no registered_to (whose name the "
                "land is in)",
            )
        )
    elif o.registered_to != o.producer:
        why.append(
            (
                "cafe_femenino",
                f"harvest lot {lot}: plot {o.plot} is registered to {o.registered_to}, "
                f"not to the producer {o.producer}",
            )
        )
    else:
        held.add("cafe_femenino")
    if o.eudr_problem is None:
        held.add("eudr_cleared")
    else:
        why.append(("eudr_cleared", f"harvest lot {lot}: {o.eudr_problem}"))
    return ClaimState(frozenset(held), frozenset({o.producer}), _ordered(why))


def unknown(lot: str) -> ClaimState:
    """A lot of unknown origin (not a harvest, no inputs) holds no claim."""
    reason = f"lot {lot} has no known origin (not a harvest, no input lots)"
    return ClaimState(frozenset(), frozenset(), tuple((c, reason) for c in CLAIMS))


def blend(lot: str, inputs: Iterable[tuple[str, ClaimState]]) -> ClaimState:
    """The claims of a lot formed from ``inputs``: what every input holds.

    A single-producer lot stays one while all its coffee is one producer's.
    """
    parts = list(inputs)
    if not parts:
        return unknown(lot)
    held = frozenset.intersection(*(s.held for _l, s in parts))
    producers: set[str] = set()
    for _l, s in parts:
        producers |= s.producers
    if len(producers) > 1:
        held = held - {"single_producer"}
        producers = set(sorted(producers)[:2])
    why: list[tuple[str, str]] = []
    for claim in CLAIMS:
        if claim in held:
            continue
        if claim == "single_producer" and len(producers) > 1:
            a, b = sorted(producers)[:2]
            why.append((claim, f"lot {lot} blends coffee of producers {a} and {b}"))
            continue
        lacking = next((code, s) for code, s in parts if claim not in s.held)
        why.append((claim, lacking[1].reason(claim) or f"input lot {lacking[0]} is not {claim}"))
    return ClaimState(held, frozenset(producers), _ordered(why))


def _ordered(why: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    order = {c: i for i, c in enumerate(CLAIMS)}
    return tuple(sorted(why, key=lambda cr: order[cr[0]]))


def state_of(
    code: str,
    creator: Callable[[str], Any],
    memo: dict[str, ClaimState] | None = None,
) -> ClaimState:
    """The claims of lot ``code``, walking up through the events that created each lot.

    ``creator(code)`` gives the Facts of the event that created the lot (None
    for a lot unknown): a harvest's ``origin``, or the ``drawn`` inputs it was
    formed from. A lineage cycle (refused on append) stops the walk.
    """
    memo = {} if memo is None else memo
    stack: list[str] = [code]
    visiting: set[str] = set()
    while stack:
        lot = stack[-1]
        if lot in memo:
            stack.pop()
            continue
        facts = creator(lot)
        if facts is None:
            memo[lot] = unknown(lot)
            stack.pop()
            continue
        if facts.origin is not None:
            memo[lot] = harvest_state(lot, facts.origin)
            stack.pop()
            continue
        inputs = [src for src, _kg in facts.drawn]
        if not inputs:
            memo[lot] = unknown(lot)
            stack.pop()
            continue
        todo = [src for src in inputs if src not in memo and src not in visiting]
        if todo and lot not in visiting:
            visiting.add(lot)
            stack.extend(todo)
            continue
        memo[lot] = blend(lot, [(src, memo.get(src) or unknown(src)) for src in inputs])
        visiting.discard(lot)
        stack.pop()
    return memo[code]
