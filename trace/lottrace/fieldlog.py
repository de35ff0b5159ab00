"""Helpers for logging at the field: Spanish stage names, the fields to ask for, a readable event.

:data:`STAGE_ALIASES` is the one table of the Spanish names a cooperative's
staff use for the checkpoints; ``lottrace log`` and the ``type`` of CSV rows
accept them (with or without accents, in any case). The ledger always stores
the English type.

>>> resolve_type("Cosecha"), resolve_type("exportación"), resolve_type("hq_qc")
('harvest', 'export', 'hq_qc')
>>> missing_fields("drying", {"lot": "L1"})
['site', 'kg']
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from .events import EVENT_MODELS, EventBase

__all__ = ["STAGE_ALIASES", "describe_event", "missing_fields", "resolve_type"]

#: Spanish name -> event type. Keys are lowercase, without accents.
STAGE_ALIASES: dict[str, str] = {
    "cosecha": "harvest",  # the cherry picked on a plot
    "secado": "drying",  # parchment dried on the farm
    "acopio": "gatherer_qc",  # the local gatherer's (acopiador's) weighing and QC
    "sede": "hq_qc",  # QC at the cooperative's headquarters (sede central)
    "trilla": "dry_mill",  # the dry mill (trilladora) hulls and grades
    "exportacion": "export",  # shipped through Paita
    "despacho": "dispatch",  # a truck leaves
    "llegada": "arrival",  # a truck arrives
    "correccion": "correction",  # voids a wrong event
}


@lru_cache(maxsize=256)
def resolve_type(name: str) -> str:
    """The event type for `name`: an English type or a Spanish alias; anything else unchanged."""
    if name in EVENT_MODELS:  # the common case, without normalising
        return name
    key = _plain(name)
    if key in EVENT_MODELS:
        return key
    return STAGE_ALIASES.get(key, name)


def missing_fields(type_: str, row: dict[str, str]) -> list[str]:
    """The row keys (dotted, as in CSV headers) that a `type_` event requires and `row` lacks.

    ``type`` and ``time`` are never missing (``log`` fills them in); an
    unknown type requires nothing here, so its own error shows.
    """
    model = EVENT_MODELS.get(type_)
    if model is None:
        return []
    wanted: list[str] = []
    for name, info in model.model_fields.items():
        if name in ("type", "time") or not info.is_required():
            continue
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            wanted += [f"{name}.{p}" for p, i in sub.model_fields.items() if i.is_required()]
        else:
            wanted.append(name)
    return [k for k in wanted if k not in row]


def describe_event(event: EventBase) -> list[tuple[str, str]]:
    """The stored event as (field, value) lines for people, in the model's field order.

    >>> from lottrace.events import parse_event
    >>> ev = parse_event({"type": "gatherer_qc", "time": "2025-06-03T09:40:00-05:00",
    ...     "site": "gatherer:SIG-03", "lot": "G7", "result": "accepted",
    ...     "defects": {"cat1": 0, "cat2": 4},
    ...     "inputs": [{"lot": "H1", "kg": 260.5}, {"lot": "H2", "kg": 179}]})
    >>> for k, v in describe_event(ev): print(f"{k}: {v}")
    type: gatherer_qc
    time: 2025-06-03T09:40:00-05:00
    site: gatherer:SIG-03
    lot: G7
    result: accepted
    defects: cat1 0, cat2 4
    inputs: H1 260.5 kg, H2 179 kg
    """
    body: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    return [(key, _show(key, value)) for key, value in body.items()]


def _show(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(_show(key, v) for v in value)
    if isinstance(value, dict):
        if "lot" in value and "kg" in value:  # an input or a mill output
            grade = f" {value['grade']}" if "grade" in value else ""
            return f"{value['lot']} {_show('kg', value['kg'])} kg{grade}"
        if value.get("type") == "Point":
            lon, lat = value["coordinates"][:2]
            return f"point {lon}, {lat}"
        if value.get("type") == "Polygon":
            return f"polygon of {len(value['coordinates'][0]) - 1} corners"
        return ", ".join(f"{k} {_show(k, v)}" for k, v in value.items())
    return str(value)


def _plain(name: str) -> str:
    """Lowercase, without accents, ``-`` and spaces as ``_``."""
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.replace("-", "_").replace(" ", "_")
