"""Helpers for logging at the field: Spanish stage names, the fields to ask for, answers checked
as typed, the words of ``lottrace log`` in English and Spanish, a readable event.

:data:`STAGE_ALIASES` is the one table of the Spanish names a cooperative's
staff use for the checkpoints; ``lottrace log`` and the ``type`` of CSV rows
accept them (with or without accents, in any case). The ledger always stores
the English type.

>>> resolve_type("Cosecha"), resolve_type("exportación"), resolve_type("hq_qc")
('harvest', 'export', 'hq_qc')
>>> missing_fields("drying", {"lot": "L1"})
['site', 'kg']
>>> check_answer("drying", "kg", "12,5"), check_answer("hq_qc", "moisture_pct", "11,3", "es")
('12.5', '11.3')
>>> check_answer("harvest", "site", "port:PAITA")
Traceback (most recent call last):
...
lottrace.fieldlog.AnswerError: a harvest happens at a farm: site, not at port:PAITA
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from .events import EVENT_MODELS, EventBase
from .numfmt import number, parse_number
from .rules import SITE_KINDS

__all__ = [
    "ASKED_IF_MISSING",
    "LANGS",
    "RESULT_ALIASES",
    "STAGE_ALIASES",
    "AnswerError",
    "check_answer",
    "describe_event",
    "field_help",
    "missing_fields",
    "number_range",
    "resolve_type",
    "say",
    "suitable_sites",
]

#: The languages ``lottrace log`` speaks.
LANGS = ("en", "es")

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
    "certificado": "certificate",  # a certificate (organic, Fairtrade ...) with its dates
    "certificado_transaccion": "transaction_certificate",  # a shipment's NOP/EU certificate
    "compra": "purchase",  # the gatherer's purchase receipt (boleta de compra)
    "pago": "payment",  # money paid to a producer
    "prima": "premium",  # premiums received on an export contract
}


#: Spanish (and English) words for a QC result -> the stored result. Keys as :func:`_plain`.
RESULT_ALIASES: dict[str, str] = {
    "accepted": "accepted",
    "rejected": "rejected",
    "hold": "hold",
    "aceptado": "accepted",
    "aprobado": "accepted",
    "rechazado": "rejected",
    "en_espera": "hold",
    "observado": "hold",
    "retenido": "hold",
}

#: Optional fields ``log`` asks for in a terminal when not given (Enter skips them).
ASKED_IF_MISSING: dict[str, list[str]] = {
    "drying": ["moisture_pct"],
    "gatherer_qc": ["kg", "moisture_pct"],
    "hq_qc": ["kg", "moisture_pct", "water_activity"],
}

#: (low, high, low is allowed, whole numbers only) for the number fields checked as typed.
_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "kg": (0, None, False, False),
    "bag_kg": (0, None, False, False),
    "rejects_kg": (0, None, True, False),
    "moisture_pct": (0, 100, True, False),
    "water_activity": (0, 1, True, False),
    "cup_score": (0, 100, True, False),
    "yield_pct": (0, 100, True, False),
    "plot.lon": (-180, 180, True, False),
    "plot.lat": (-90, 90, True, False),
    "plot.area_ha": (0, None, False, False),
    "plot.altitude_m": (-500, 9000, True, False),
    "bags": (0, None, False, True),
    "defects.cat1": (0, None, True, True),
    "defects.cat2": (0, None, True, True),
}

#: The words of ``lottrace log``, by language.
_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "field": "field '{field}': {msg}",
        "required": "required",
        "not_in_form": "not a field of a {type} form",
        "not_number": "{value!r} is not a number",
        "not_whole": "{value!r} is not a whole number",
        "more_than": "must be more than {lo}",
        "at_least": "must be {lo} or more",
        "between": "must be between {lo} and {hi}",
        "not_time": "{value!r} is not a time: write 2025-06-14 14:30 (local time) or "
        "2025-06-14T14:30:00-05:00",
        "future": "{value} is in the future",
        "not_site": "{value!r} is not a site: write kind:ID, e.g. {example}",
        "not_lot": "{value!r} is not a lot code: letters, digits and ._:/#%+- only, starting "
        "with a letter or digit, e.g. SIG-25-011",
        "not_result": "{value!r}: answer accepted, rejected or hold",
        "site_kind": "a {type} happens at {kinds}, not at {site}",
        "site_kind_each": "a {kind}: site",
        "or": " or ",
        "ask_time": "time (when; Enter for now; or e.g. 2025-06-14 14:30, local time)",
        "known_sites": "known sites for a {type}: {sites} (a number picks one)",
        "ask_lon": "plot.lon (plot longitude, e.g. -78.981; Enter to skip)",
        "ask_lat": "plot.lat (plot latitude, e.g. -5.149)",
        "no_location": "No location for plot {plot}: EUDR will need it (a point, or the "
        "polygon of a plot over 4 ha) before coffee from it can be sold into the EU.",
        "optional": "Enter to skip",
        "summary": "To be saved:",
        "confirm": "Save this event?",
        "not_saved": "Not saved: nothing was written.",
        "logged": "logged {type} {lot} as event {eid}",
        "voided_again": "event {eid} was voided by a correction earlier; it stays void, "
        "nothing added",
        "duplicate": "already in the ledger as event {eid}; nothing added",
        "yes": "yes",
        "no": "no",
        "point": "point {lon}, {lat}",
        "polygon": "polygon of {n} corners",
    },
    "es": {
        "field": "campo '{field}': {msg}",
        "required": "es obligatorio",
        "not_in_form": "no es un campo del formulario de {type}",
        "not_number": "{value!r} no es un número",
        "not_whole": "{value!r} no es un número entero",
        "more_than": "debe ser mayor que {lo}",
        "at_least": "debe ser {lo} o más",
        "between": "debe estar entre {lo} y {hi}",
        "not_time": "{value!r} no es una fecha y hora: escriba 2025-06-14 14:30 (hora local) "
        "o 2025-06-14T14:30:00-05:00",
        "future": "{value} está en el futuro",
        "not_site": "{value!r} no es un lugar: escriba tipo:ID, p. ej. {example}",
        "not_lot": "{value!r} no es un código de lote: solo letras, dígitos y ._:/#%+-, "
        "empezando por una letra o un dígito, p. ej. SIG-25-011",
        "not_result": "{value!r}: responda aceptado, rechazado o en espera",
        "site_kind": "un evento {type} se registra en {kinds}, no en {site}",
        "site_kind_each": "un lugar {kind}:",
        "or": " o ",
        "ask_time": "hora (cuándo; Enter para ahora; o p. ej. 2025-06-14 14:30, hora local)",
        "known_sites": "lugares conocidos para {type}: {sites} (un número elige uno)",
        "ask_lon": "plot.lon (longitud de la parcela, p. ej. -78,981; Enter para omitir)",
        "ask_lat": "plot.lat (latitud de la parcela, p. ej. -5,149)",
        "no_location": "Sin ubicación para la parcela {plot}: la EUDR la exigirá (un punto, o "
        "el polígono si la parcela pasa de 4 ha) antes de vender su café en la UE.",
        "optional": "Enter para omitir",
        "summary": "Se guardará:",
        "confirm": "¿Guardar este evento?",
        "not_saved": "No se guardó: no se escribió nada.",
        "logged": "registrado {type} {lot} como evento {eid}",
        "voided_again": "el evento {eid} fue anulado antes por una corrección; sigue anulado, "
        "no se añadió nada",
        "duplicate": "ya está en el registro como evento {eid}; no se añadió nada",
        "yes": "sí",
        "no": "no",
        "point": "punto {lon}; {lat}",
        "polygon": "polígono de {n} vértices",
    },
}

#: What each field is, in Spanish (the English comes from the command's option help).
_FIELD_HELP_ES: dict[str, str] = {
    "site": "dónde: tipo:ID, p. ej. farm:APR-P0231",
    "lot": "código del lote",
    "kg": "kilogramos",
    "producer": "cosecha: código o nombre del productor",
    "plot.id": "cosecha: código de la parcela",
    "result": "resultado: aceptado, rechazado o en espera",
    "reason": "por qué se rechazó o quedó en espera",
    "inputs": "lotes de origen: LOTE=KG|LOTE=KG",
    "outputs": "lotes de salida: LOTE=KG=GRADO|...",
    "corrects": "el id del evento que anula",
    "method": "secado: covered, open, raised_bed o mechanical",
    "to_site": "a dónde va el camión",
    "from_site": "de dónde vino",
    "container": "número de contenedor",
}

_UNITS_HINT: dict[str, dict[str, str]] = {
    "moisture_pct": {"en": "Moisture, %: 0-100, usually 9-13", "es": "humedad, %: 0-100, lo "
                     "usual 9-13"},
    "water_activity": {"en": "water activity, 0-1, usually under 0.70",
                       "es": "actividad de agua, 0-1, lo usual bajo 0,70"},
}  # fmt: skip


class AnswerError(ValueError):
    """An answer typed at the field that cannot be right; its text says why, in the asked language."""


def say(lang: str, key: str, **values: Any) -> str:
    """The message `key` of ``lottrace log`` in `lang` (English if unknown)."""
    return _TEXT.get(lang, _TEXT["en"])[key].format(**values)


def field_help(key: str, english: str, lang: str, type_: str = "") -> str:
    """The prompt for field `key` of a `type_` event: ``key (what it is)``, in `lang`."""
    if key == "site" and type_ in SITE_KINDS:
        where = "dónde: tipo:ID, p. ej." if lang == "es" else "Where: kind:ID, e.g."
        return f"site ({where} {_EXAMPLE_SITE[SITE_KINDS[type_][0]]})"
    if key in _UNITS_HINT:
        return f"{key} ({_UNITS_HINT[key].get(lang, _UNITS_HINT[key]['en'])})"
    if lang == "es" and key in _FIELD_HELP_ES:
        return f"{key} ({_FIELD_HELP_ES[key]})"
    return english


def suitable_sites(type_: str, sites: Iterable[str], limit: int = 8) -> list[str]:
    """The `sites` (most used first) where a `type_` event may happen, at most `limit`."""
    kinds = SITE_KINDS.get(type_)
    out = [s for s in sites if kinds is None or s.partition(":")[0] in kinds]
    return out[:limit]


def check_answer(
    type_: str, key: str, text: str, lang: str = "en", *, known: Iterable[str] = (),
    now: datetime | None = None,
) -> str:  # fmt: skip
    """The answer `text` for field `key` of a `type_` event, checked and in the stored form.

    Numbers may have a decimal comma and must be in the field's range; a time
    without an offset is local time; a site must suit the event type (a number
    picks one of the `known` sites); a QC result may be said in Spanish.
    Other fields are left to the data contract. Raises :class:`AnswerError`.
    """
    value = text.strip()
    if key in _RANGES:
        return _check_number(key, value, lang)
    if key == "time":
        return _check_time(value, lang, now or datetime.now().astimezone())
    if key in ("site", "to_site", "from_site"):
        known = list(known)
        if value.isdigit() and 1 <= int(value) <= len(known):
            value = known[int(value) - 1]
        return _check_site(type_ if key == "site" else "dispatch", value, lang)
    if key == "lot" and not _LOT.fullmatch(value):
        raise AnswerError(say(lang, "not_lot", value=value))
    if key == "result":
        result = RESULT_ALIASES.get(_plain(value))
        if result is None:
            raise AnswerError(say(lang, "not_result", value=value))
        return result
    return value


def number_range(key: str) -> tuple[float | None, float | None, bool, bool] | None:
    """``(low, high, low is allowed, whole numbers only)`` for a number field checked as typed.

    >>> number_range("water_activity"), number_range("note")
    ((0, 1, True, False), None)
    """
    return _RANGES.get(key)


def _check_number(key: str, value: str, lang: str) -> str:
    lo, hi, low_ok, whole = _RANGES[key]
    try:
        x = parse_number(value)
    except ValueError:
        raise AnswerError(say(lang, "not_number", value=value)) from None
    if whole and x != int(x):
        raise AnswerError(say(lang, "not_whole", value=value))
    shown = {"lo": number(lo, 3, lang) if lo is not None else "",
             "hi": number(hi, 3, lang) if hi is not None else ""}  # fmt: skip
    if hi is not None and lo is not None and not (lo <= x <= hi and (low_ok or x > lo)):
        raise AnswerError(say(lang, "between", **shown))
    if lo is not None and (x < lo or (x == lo and not low_ok)):
        raise AnswerError(say(lang, "at_least" if low_ok else "more_than", **shown))
    return str(int(x)) if whole else repr(x)


_DMY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2}))?")


def _check_time(value: str, lang: str, now: datetime) -> str:
    m = _DMY.fullmatch(value)
    try:
        if m:  # 14/06/2025 14:30, as written in Peru: day first
            d, mo, y, h, mi = m.groups()
            t = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0))
        else:
            t = datetime.fromisoformat(value)
    except ValueError:
        raise AnswerError(say(lang, "not_time", value=value)) from None
    if t.tzinfo is None:
        t = t.astimezone()  # local time, with the computer's offset on that date
    if t > now + timedelta(minutes=5):
        raise AnswerError(say(lang, "future", value=t.isoformat(timespec="seconds")))
    return t.isoformat(timespec="seconds")


#: A lot code as the data contract writes it (``events.LotCode``).
_LOT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#%+-]{0,199}")
_SITE = re.compile(r"[a-z][a-z_]{0,29}:[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
_EXAMPLE_SITE = {"farm": "farm:APR-P0231", "gatherer": "gatherer:SIG-03", "hq": "hq:APROCASSI",
                 "mill": "mill:CHICLAYO-1", "port": "port:PAITA"}  # fmt: skip


def _check_site(type_: str, value: str, lang: str) -> str:
    kinds = SITE_KINDS.get(type_)
    if not _SITE.fullmatch(value):
        example = _EXAMPLE_SITE[kinds[0]] if kinds else "gatherer:SIG-03"
        raise AnswerError(say(lang, "not_site", value=value, example=example))
    if kinds is not None and value.partition(":")[0] not in kinds:
        wanted = say(lang, "or").join(say(lang, "site_kind_each", kind=k) for k in kinds)
        raise AnswerError(say(lang, "site_kind", type=type_, kinds=wanted, site=value))
    return value


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


def describe_event(event: EventBase, lang: str = "en") -> list[tuple[str, str]]:
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
    return [(key, _show(key, value, lang)) for key, value in body.items()]


def _show(key: str, value: Any, lang: str = "en") -> str:
    if isinstance(value, bool):
        return say(lang, "yes" if value else "no")
    if isinstance(value, float):
        return f"{value:g}" if lang == "en" else number(value, 6, lang)
    if isinstance(value, list):
        sep = "; " if lang == "es" else ", "
        return sep.join(_show(key, v, lang) for v in value)
    if isinstance(value, dict):
        if "lot" in value and "kg" in value:  # an input or a mill output
            grade = f" {value['grade']}" if "grade" in value else ""
            return f"{value['lot']} {_show('kg', value['kg'], lang)} kg{grade}"
        if value.get("type") == "Point":
            lon, lat = value["coordinates"][:2]
            if lang == "en":
                return say(lang, "point", lon=lon, lat=lat)
            return say(lang, "point", lon=_show("", lon, lang), lat=_show("", lat, lang))
        if value.get("type") == "Polygon":
            return say(lang, "polygon", n=len(value["coordinates"][0]) - 1)
        sep = "; " if lang == "es" else ", "
        return sep.join(f"{k} {_show(k, v, lang)}" for k, v in value.items())
    return str(value)


def _plain(name: str) -> str:
    """Lowercase, without accents, ``-`` and spaces as ``_``."""
    decomposed = unicodedata.normalize("NFKD", name.strip().lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return bare.replace("-", "_").replace(" ", "_")
