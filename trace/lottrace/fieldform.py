"""The field form: the fields each checkpoint's form asks for, and the one function that makes
the event from a filled form (flat, as typed: decimal commas, Spanish words).

A form field's name is the event field's name, dotted where it nests
(``plot.id``, ``defects.cat1``), as in a CSV header; ``inputs`` is
``LOT=KG|LOT=KG``, ``outputs`` ``LOT=KG=GRADE|...``. :func:`event_from_form`
checks each answer as ``lottrace log`` does (:func:`lottrace.fieldlog.check_answer`:
ranges, a site that suits the checkpoint, a time not in the future), then the
data contract (:func:`event_from_row`, which ``lottrace log`` uses too).

>>> ev = event_from_form({"type": "secado", "time": "2025-06-01T10:00:00-05:00",
...     "site": "farm:APR-P0231", "lot": "H1", "kg": "212,5", "moisture_pct": "11,5"})
>>> ev.type, ev.kg, ev.moisture_pct
('drying', 212.5, 11.5)
>>> event_from_form({"type": "drying", "time": "2025-06-01T10:00:00-05:00",
...     "site": "farm:X", "kg": "1"}, lang="es")
Traceback (most recent call last):
...
lottrace.errors.InvalidEvent: web form: campo 'lot': es obligatorio
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import InvalidEvent
from .events import EVENT_MODELS, EventBase, parse_event
from .fieldlog import AnswerError, check_answer, missing_fields, number_range, resolve_type, say
from .readers import row_to_record
from .rules import SITE_KINDS

__all__ = [
    "CHECKPOINTS",
    "FormField",
    "event_from_form",
    "event_from_row",
    "form_fields",
]

#: The checkpoints logged at the field, in the order coffee meets them.
CHECKPOINTS = (
    "harvest",
    "drying",
    "gatherer_qc",
    "hq_qc",
    "dry_mill",
    "export",
    "dispatch",
    "arrival",
)

_QC = [
    "time", "site", "lot", "inputs", "kg", "result", "moisture_pct", "water_activity",
    "defects.cat1", "defects.cat2", "cup_score", "yield_pct", "inspector", "reason", "note",
]  # fmt: skip
#: Each checkpoint's form, field by field, in the order asked.
_ASKED: dict[str, list[str]] = {
    "harvest": [
        "time", "site", "lot", "kg", "producer", "plot.id", "plot.lon", "plot.lat",
        "plot.area_ha", "plot.altitude_m", "variety", "process", "note",
    ],
    "drying": ["time", "site", "lot", "inputs", "kg", "method", "moisture_pct", "note"],
    "gatherer_qc": _QC,
    "hq_qc": _QC,
    "dry_mill": ["time", "site", "inputs", "outputs", "rejects_kg", "note"],
    "export": [
        "time", "site", "lot", "inputs", "kg", "container", "bags", "bag_kg", "buyer",
        "destination", "vessel", "ico_mark", "note",
    ],
    "dispatch": ["time", "site", "lot", "to_site", "vehicle", "note"],
    "arrival": ["time", "site", "lot", "from_site", "note"],
}  # fmt: skip

#: The usual values (low, high) of the measures a QC looks at, as the rules warn about them
#: (moisture 9-13 %, water activity up to 0.70) and as SCA grades specialty coffee.
USUAL: dict[str, tuple[float | None, float | None]] = {
    "moisture_pct": (9, 13),
    "water_activity": (None, 0.70),
    "cup_score": (80, None),
    "defects.cat1": (0, 0),
    "defects.cat2": (0, 5),
}


@dataclass(frozen=True)
class FormField:
    """One field of a checkpoint's form."""

    #: The event field, dotted where it nests: the form input's ``name``.
    name: str
    #: ``time``, ``site``, ``lots`` (inputs), ``outputs``, ``number``, ``whole``, ``choice``, ``text``.
    kind: str
    required: bool
    #: A choice's values, as stored.
    choices: tuple[str, ...] = ()
    #: A number's allowed range: (low, high, low allowed, whole numbers only).
    bounds: tuple[float | None, float | None, bool, bool] | None = None
    #: A measure's usual range (low, high), shown beside it.
    usual: tuple[float | None, float | None] | None = None
    #: The kinds of site a ``site`` field takes (``farm``, ``gatherer`` ...), () for any.
    site_kinds: tuple[str, ...] = ()


def _choices(type_: str, name: str) -> tuple[str, ...]:
    model = EVENT_MODELS[type_]
    info = model.model_fields.get(name)

    def literal(ann: Any) -> tuple[str, ...]:
        if typing.get_origin(ann) is typing.Literal:
            return tuple(str(a) for a in typing.get_args(ann))
        for arg in typing.get_args(ann):
            if found := literal(arg):
                return found
        return ()

    return literal(info.annotation) if info is not None else ()


def form_fields(type_: str) -> list[FormField]:
    """The fields of ``type_``'s form (a checkpoint of :data:`CHECKPOINTS`), in order.

    >>> [f.name for f in form_fields("dispatch") if f.required]
    ['time', 'site', 'lot']
    """
    needed = set(missing_fields(type_, {})) | {"time"}
    out = []
    for name in _ASKED[type_]:
        bounds = number_range(name)
        choices = _choices(type_, name) if "." not in name else ()
        if name == "time":
            kind = "time"
        elif name == "site":
            kind = "site"
        elif name == "inputs":
            kind = "lots"
        elif name == "outputs":
            kind = "outputs"
        elif bounds is not None:
            kind = "whole" if bounds[3] else "number"
        elif choices:
            kind = "choice"
        else:
            kind = "text"
        out.append(
            FormField(
                name=name,
                kind=kind,
                required=name in needed,
                choices=choices,
                bounds=bounds,
                usual=USUAL.get(name),
                site_kinds=SITE_KINDS.get(type_, ()) if name == "site" else (),
            )
        )
    return out


def event_from_row(row: Mapping[str, str], where: str) -> EventBase:
    """The event of a flat row of dotted fields (numbers may have a decimal comma):
    the data contract, as an import reads a CSV row."""
    return parse_event(row_to_record(dict(row), where, decimal_comma=True), where=where)


def event_from_form(
    form: Mapping[str, str],
    *,
    where: str = "web form",
    lang: str = "en",
    now: datetime | None = None,
) -> EventBase:
    """The event a filled checkpoint form makes: each answer checked as typed, then the contract.

    ``form`` maps field names to text as typed; empty answers are left out.
    Raises :class:`~lottrace.errors.InvalidEvent` naming the field, in ``lang``,
    for a missing required field, a field the form does not have, or an
    answer that cannot be right. The same form always makes the same event
    (its ``time`` is part of it), so sending it twice stores it once.
    """
    type_ = resolve_type(str(form.get("type", "")).strip())
    if type_ not in _ASKED:
        known = ", ".join(CHECKPOINTS)
        raise InvalidEvent(
            f"field 'type': {form.get('type', '')!r} is not a checkpoint: {known}",
            where=where,
            field="type",
        )
    asked = _ASKED[type_]
    row: dict[str, str] = {"type": type_}
    for key, raw in form.items():
        value = str(raw).strip()
        if key == "type" or value == "":
            continue
        if key not in asked:
            msg = say(lang, "not_in_form", type=type_)
            raise InvalidEvent(say(lang, "field", field=key, msg=msg), where=where, field=key)
        try:
            row[key] = check_answer(type_, key, value, lang, now=now)
        except AnswerError as exc:
            raise InvalidEvent(
                say(lang, "field", field=key, msg=exc), where=where, field=key
            ) from None
    for key in ["time", *missing_fields(type_, row)]:
        if key not in row:
            msg = say(lang, "required")
            raise InvalidEvent(say(lang, "field", field=key, msg=msg), where=where, field=key)
    return event_from_row(row, where)
