"""Spreadsheets as cooperatives keep them: column maps, header suggestions, Excel, templates.

A *column map* (TOML, read with :mod:`tomllib`) says how one cooperative's
sheet reads as lottrace events::

    [columns]              # the file's header -> lottrace field ("" drops it)
    "Fecha" = "time"
    "Peso (kg)" = "kg"
    [values.result]        # a field's values in the file -> lottrace values
    "Aceptado" = "accepted"
    [time]
    zone = "America/Lima"  # for times written without an offset
    order = "DMY"          # how to read 02/06/2025
    [defaults.harvest]     # fields filled when the file has none, per event type
    site = "farm:SIG"

:func:`suggest_map` writes one for a header it recognises (Spanish and English
names, accents, case, units in brackets); :func:`iter_import` is the import
service the ``import`` command calls: each file is read natively (a header of
lottrace field names, JSON), or through the map given, or through the map
suggested for its header when every column is recognised. Rows read through a
map report every problem of every row in the sheet's own words (``column
"Peso (kg)": "doce" is not a number``). Origin lots written without kilos are
passed on as :class:`~lottrace.ledger.WholeInputs`, which the ledger's batch
resolves (each such lot gives all it has left). :func:`write_template` writes
an empty sheet for one checkpoint type.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import tomllib
import typing
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidEvent, InvalidInput, TooBig
from .events import EVENT_MODELS, REGISTRY_TYPES, EventBase, parse_event
from .fieldlog import STAGE_ALIASES, resolve_type
from .ledger import WholeInputs
from .readers import CsvReader, check_encoding, iter_events, number_fields, sniff_delimiter

__all__ = [
    "ROW_PROBLEMS",
    "ROW_PROBLEMS_ES",
    "ColumnMap",
    "check_bounds",
    "field_names",
    "iter_import",
    "load_map",
    "map_to_toml",
    "reads_natively",
    "row_problem_code",
    "suggest_map",
    "suggested_toml",
    "template_columns",
    "template_csv",
    "write_template",
]

OnError = Callable[[InvalidEvent], None]
Note = Callable[[str], None]
Progress = Callable[[int], None]

ORDERS = ("DMY", "MDY", "YMD")


@dataclass
class ColumnMap:
    """A sheet's column map: see the module docstring for its TOML shape."""

    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    zone: str | None = None
    order: str = "DMY"
    defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "the suggested map"
    #: suggested only: columns left for the user to decide -> (nearest field or "", why)
    unresolved: dict[str, tuple[str, str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- names


def _plain(text: str) -> str:
    """Lowercase, no accents, no units in brackets, single spaces: ``Área (ha)`` -> ``area``."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    bare = re.sub(r"[\(\[][^\)\]]*[\)\]]", " ", bare)
    bare = re.sub(r"[_\-./:#°%]+", " ", bare)
    return " ".join(bare.split())


#: Header names as cooperatives write them (plain form, see :func:`_plain`) -> field.
HEADERS: dict[str, str] = {
    "fecha": "time", "fecha y hora": "time", "fecha hora": "time", "hora": "time",
    "date": "time", "time": "time", "datetime": "time", "date time": "time",
    "etapa": "type", "tipo": "type", "evento": "type", "punto de control": "type",
    "stage": "type", "type": "type", "checkpoint": "type", "event": "type",
    "lote": "lot", "codigo de lote": "lot", "codigo lote": "lot", "lot": "lot", "lot code": "lot",
    "productor": "producer", "socio": "producer", "nombre del productor": "producer",
    "producer": "producer", "farmer": "producer",
    "dni": "", "ruc": "", "telefono": "", "celular": "", "n": "", "nro": "", "item": "",
    "parcela": "plot.id", "codigo de parcela": "plot.id", "plot": "plot.id", "plot id": "plot.id",
    "latitud": "plot.lat", "lat": "plot.lat", "latitude": "plot.lat",
    "longitud": "plot.lon", "lon": "plot.lon", "lng": "plot.lon", "longitude": "plot.lon",
    "area": "plot.area_ha", "superficie": "plot.area_ha", "hectareas": "plot.area_ha",
    "area ha": "plot.area_ha", "plot area": "plot.area_ha",
    "altitud": "plot.altitude_m", "altura": "plot.altitude_m", "msnm": "plot.altitude_m",
    "altitude": "plot.altitude_m",
    "peso": "kg", "peso neto": "kg", "kilos": "kg", "kg": "kg", "kilogramos": "kg",
    "weight": "kg", "net weight": "kg", "peso kg": "kg",
    "humedad": "moisture_pct", "moisture": "moisture_pct", "humedad final": "moisture_pct",
    "resultado": "result", "dictamen": "result", "result": "result", "verdict": "result",
    "lotes de origen": "inputs", "lote de origen": "inputs", "lotes origen": "inputs",
    "origen": "inputs", "inputs": "inputs", "input lots": "inputs", "origin lots": "inputs",
    "responsable": "actor", "registrado por": "actor", "actor": "actor", "logged by": "actor",
    "observaciones": "note", "observacion": "note", "notas": "note", "nota": "note",
    "comentarios": "note", "note": "note", "notes": "note", "remarks": "note",
    "sitio": "site", "lugar": "site", "ubicacion": "site", "site": "site", "location": "site",
    "variedad": "variety", "variety": "variety",
    "proceso": "process", "beneficio": "process", "process": "process",
    "certificaciones": "certifications", "certificacion": "certifications",
    "certifications": "certifications",
    "metodo de secado": "method", "metodo": "method", "method": "method", "drying method": "method",
    "inicio de secado": "started", "inicio": "started", "started": "started",
    "actividad de agua": "water_activity", "aw": "water_activity", "water activity": "water_activity",
    "defectos cat 1": "defects.cat1", "defectos categoria 1": "defects.cat1",
    "defectos primarios": "defects.cat1", "cat1": "defects.cat1", "category 1 defects": "defects.cat1",
    "defectos cat 2": "defects.cat2", "defectos categoria 2": "defects.cat2",
    "defectos secundarios": "defects.cat2", "cat2": "defects.cat2", "category 2 defects": "defects.cat2",
    "puntaje": "cup_score", "puntaje de taza": "cup_score", "taza": "cup_score",
    "cup score": "cup_score", "score": "cup_score",
    "rendimiento": "yield_pct", "yield": "yield_pct",
    "inspector": "inspector", "catador": "inspector", "catadora": "inspector",
    "motivo": "reason", "razon": "reason", "reason": "reason",
    "lotes de salida": "outputs", "outputs": "outputs", "output lots": "outputs",
    "descarte": "rejects_kg", "rechazos": "rejects_kg", "rejects": "rejects_kg",
    "contenedor": "container", "container": "container",
    "sacos": "bags", "bags": "bags", "peso por saco": "bag_kg", "bag kg": "bag_kg",
    "marca oic": "ico_mark", "ico mark": "ico_mark",
    "nave": "vessel", "buque": "vessel", "vessel": "vessel",
    "destino": "destination", "destination": "destination",
    "comprador": "buyer", "cliente": "buyer", "buyer": "buyer",
    "hacia": "to_site", "to site": "to_site", "desde": "from_site", "from site": "from_site",
    "vehiculo": "vehicle", "placa": "vehicle", "vehicle": "vehicle", "truck": "vehicle",
    "productora": "women_producer", "women producer": "women_producer",
    "etapa proceso": "type", "etapa del proceso": "type", "tipo de evento": "type",
    "tipo de registro": "type",
    "resultado qc": "result", "resultado de qc": "result", "resultado control": "result",
    "resultado de control": "result", "resultado control calidad": "result",
    "resultado de control de calidad": "result", "resultado calidad": "result",
    "lote origen": "inputs", "lotes de procedencia": "inputs", "lote de procedencia": "inputs",
    "fecha de acopio": "time", "fecha acopio": "time", "fecha de cosecha": "time",
    "fecha de registro": "time", "fecha de recepcion": "time", "fecha de ingreso": "time",
    "centro de acopio": "site", "centro acopio": "site", "punto de acopio": "site",
    "observaciones generales": "note",
    "humedad porcentaje": "moisture_pct", "porcentaje de humedad": "moisture_pct",
}  # fmt: skip

#: Abbreviations as cooperatives write them (plain form) -> the word.
_ABBREVIATIONS = {
    "cod": "codigo", "cdgo": "codigo", "hum": "humedad", "obs": "observaciones",
    "observ": "observaciones", "resp": "responsable", "prod": "productor", "var": "variedad",
    "lat": "latitud", "long": "longitud", "lon": "longitud", "alt": "altitud", "kgs": "kg",
    "qc": "qc", "ctrl": "control", "cc": "control calidad",
}  # fmt: skip
#: Words that hint at a field without naming it surely (only ever a suggestion).
_NEAR_WORDS = {"calificacion": "result", "estado": "result", "bruto": "kg", "grade": "result"}
#: A number sign before a name: ``N° Lote``, ``Nº Lote``, ``No. Lote``, ``Nro. Lote``.
_NUMBER_WORDS = frozenset({"n", "no", "nro", "num", "numero", "nr", "number", "nb"})

#: Values as written in a sheet (plain form) -> lottrace value, per field.
VALUES: dict[str, dict[str, str]] = {
    "result": {
        "aceptado": "accepted", "aceptada": "accepted", "aprobado": "accepted",
        "conforme": "accepted", "ok": "accepted", "accepted": "accepted",
        "rechazado": "rejected", "rechazada": "rejected", "no conforme": "rejected",
        "rejected": "rejected",
        "observado": "hold", "observada": "hold", "en espera": "hold", "retenido": "hold",
        "pendiente": "hold", "hold": "hold", "on hold": "hold",
    },
    "process": {"lavado": "washed", "natural": "natural", "honey": "honey", "melado": "honey"},
    "method": {
        "cubierto": "covered", "secador solar": "covered", "abierto": "open", "patio": "open",
        "camas africanas": "raised_bed", "cama africana": "raised_bed",
        "mecanico": "mechanical", "guardiola": "mechanical",
    },
}  # fmt: skip

#: Stage names in longer Spanish forms: a word in the value -> type.
_STAGE_WORDS = {
    **STAGE_ALIASES,
    "harvest": "harvest",
    "control calidad sede": "hq_qc",
    "control de calidad sede": "hq_qc",
    "exportación": "export",
}

#: Spanish and English headers lottrace writes in its templates, per field.
LABELS: dict[str, tuple[str, str]] = {
    "type": ("Etapa", "Stage"),
    "time": ("Fecha", "Date"),
    "site": ("Sitio", "Site"),
    "lot": ("Lote", "Lot"),
    "producer": ("Productor", "Producer"),
    "plot.id": ("Parcela", "Plot"),
    "plot.lat": ("Latitud", "Latitude"),
    "plot.lon": ("Longitud", "Longitude"),
    "plot.area_ha": ("Área (ha)", "Area (ha)"),
    "kg": ("Peso (kg)", "Weight (kg)"),
    "variety": ("Variedad", "Variety"),
    "process": ("Proceso", "Process"),
    "method": ("Método de secado", "Drying method"),
    "moisture_pct": ("Humedad (%)", "Moisture (%)"),
    "result": ("Resultado", "Result"),
    "defects.cat1": ("Defectos cat. 1", "Category 1 defects"),
    "defects.cat2": ("Defectos cat. 2", "Category 2 defects"),
    "cup_score": ("Puntaje de taza", "Cup score"),
    "inputs": ("Lotes de origen", "Input lots"),
    "outputs": ("Lotes de salida", "Output lots"),
    "rejects_kg": ("Descarte (kg)", "Rejects (kg)"),
    "container": ("Contenedor", "Container"),
    "bags": ("Sacos", "Bags"),
    "vessel": ("Nave", "Vessel"),
    "to_site": ("Hacia", "To site"),
    "from_site": ("Desde", "From site"),
    "vehicle": ("Vehículo", "Vehicle"),
    "inspector": ("Inspector", "Inspector"),
    "reason": ("Motivo", "Reason"),
    "actor": ("Responsable", "Logged by"),
    "note": ("Observaciones", "Notes"),
}


def _native_fields() -> set[str]:
    """Every field name a lottrace CSV header may use as it is (dotted for parts)."""
    names = {"plot.lon", "plot.lat"}
    for model in EVENT_MODELS.values():
        for name, info in model.model_fields.items():
            names.add(name)
            sub = info.annotation
            for part in getattr(sub, "model_fields", {}) or {}:
                names.add(f"{name}.{part}")
    names |= {"plot.id", "plot.geometry", "plot.area_ha", "plot.altitude_m"}
    names |= {"defects.cat1", "defects.cat2"}
    return names - {"hash_id", "event", "context"}


#: Words that make a header Spanish (plain form, see :func:`_plain`).
_SPANISH_WORDS = frozenset(
    [
        "fecha",
        "etapa",
        "tipo",
        "lote",
        "lotes",
        "productor",
        "productora",
        "socio",
        "parcela",
        "latitud",
        "longitud",
        "superficie",
        "hectareas",
        "altitud",
        "altura",
        "peso",
        "kilos",
        "kilogramos",
        "humedad",
        "resultado",
        "origen",
        "responsable",
        "observaciones",
        "observacion",
        "obs",
        "notas",
        "nota",
        "comentarios",
        "sitio",
        "lugar",
        "ubicacion",
        "variedad",
        "proceso",
        "codigo",
        "cod",
        "nro",
        "acopio",
        "catador",
        "catadora",
        "puntaje",
        "taza",
        "rendimiento",
        "defectos",
        "metodo",
        "secado",
        "motivo",
        "sacos",
        "nave",
        "buque",
        "destino",
        "comprador",
        "cliente",
        "vehiculo",
        "placa",
        "hora",
        "dictamen",
        "descarte",
        "contenedor",
        "salida",
        "calificacion",
        "estado",
        "bruto",
        "neto",
    ]
)


def _is_spanish(header: str) -> bool:
    return bool(_SPANISH_WORDS & set(_plain(header).split()))


def _forms(header: str) -> list[str]:
    """A header's plain forms, most literal first: as written, abbreviations spelt out, no "de"."""
    plain = _plain(header)
    words = [w for t in plain.split() for w in _ABBREVIATIONS.get(t, t).split()]
    if len(words) > 1 and words[0] in _NUMBER_WORDS:
        words = words[1:]  # N° Lote -> lote
    spelt = " ".join(words)
    bare = " ".join(w for w in words if w not in ("de", "del", "la", "el", "los", "las", "of"))
    return list(dict.fromkeys([plain, spelt, bare]))


def _recognise(header: str) -> str | None:
    """The field a header names, ``""`` to drop it, or None if it is not recognised."""
    raw = header.strip()
    plain = _plain(raw)
    for form in _forms(raw):
        if form in HEADERS:
            return HEADERS[form]
    if raw.lower() in _native_fields():
        return raw.lower()
    unit = re.search(r"[\(\[]\s*(kg|ha|%|msnm|m)\s*[\)\]]", raw.lower())
    if unit and plain in ("", "peso", "cantidad"):
        return {"kg": "kg", "ha": "plot.area_ha", "%": "moisture_pct"}.get(unit.group(1))
    return None


def _nearest(header: str) -> str | None:
    """The field whose name (or a known header for it) is nearest ``header``, by difflib."""
    forms = _forms(header)
    # A word of the header that names a field says more than spelling does:
    # "Código socio" is nearest producer (socio), "Peso bruto" nearest kg.
    for word in forms[-1].split():
        if HEADERS.get(word) or word in _NEAR_WORDS:
            return HEADERS.get(word) or _NEAR_WORDS[word]
    plain = forms[-1]
    candidates = {f: f for f in _native_fields()} | {k: v for k, v in HEADERS.items() if v}
    close = difflib.get_close_matches(plain, list(candidates), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(
            plain.replace(" ", "_"), list(candidates), n=1, cutoff=0.6
        )
    return candidates[close[0]] if close else None


def _value_key(value: str) -> str:
    return _plain(value)


def _stage(value: str) -> str | None:
    t = resolve_type(value)
    if t in EVENT_MODELS:
        return t
    plain = _plain(value)
    for word, kind in _STAGE_WORDS.items():
        if _plain(word) == plain:
            return kind
    for word, kind in _STAGE_WORDS.items():
        if _plain(word) in plain.split():
            return kind
    return None


# --------------------------------------------------------------------------- the map


def load_map(path: str | Path) -> ColumnMap:
    """Read a column map from a TOML file; a bad map is one line naming the file and the key."""
    name = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such map file") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: a map is UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"{name}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot read: {exc.strerror}") from None

    def bad(key: str, why: str) -> InvalidInput:
        return InvalidInput(f"{name}: {key}: {why}")

    unknown = set(data) - {"columns", "values", "time", "defaults"}
    if unknown:
        key = sorted(unknown)[0]
        raise bad(
            key, "not a part of a map (use [columns], [values.FIELD], [time], [defaults.TYPE])"
        )
    fields = _native_fields()
    cm = ColumnMap(source=name)
    problems: list[str] = []  # every wrong name or value of the map, said at once
    columns = data.get("columns", {})
    if not isinstance(columns, dict) or not columns:
        raise bad("[columns]", "missing: a map names the file's columns")
    for col, fld in columns.items():
        if not isinstance(fld, str):
            raise bad(f'[columns] "{col}"', 'give a field name as text ("" drops the column)')
        if fld and fld not in fields:
            hint = difflib.get_close_matches(fld, sorted(fields), n=1)
            dym = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(f'[columns] "{col}": {fld!r} is not a lottrace field{dym}')
        elif fld and (other := next((c for c, f in cm.columns.items() if f == fld), None)):
            problems.append(
                f'[columns] "{other}" and "{col}" both give {fld}: map one of them, "" drops the other'
            )
        cm.columns[col] = fld
    values = data.get("values", {})
    if not isinstance(values, dict):
        raise bad("[values]", "give one table per field, e.g. [values.result]")
    for fld, table in values.items():
        if fld not in fields:
            problems.append(f"[values.{fld}]: {fld!r} is not a lottrace field")
            continue
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise bad(f"[values.{fld}]", 'give "as written" = "lottrace value" pairs')
        choices = _choices(fld)
        for k, v in table.items():
            if choices and v not in choices and not (fld == "type" and _stage(v)):
                hint = difflib.get_close_matches(v, choices, n=1)
                dym = f"; did you mean {hint[0]}?" if hint else ""
                problems.append(
                    f'[values.{fld}] "{k}": {v!r} is not a {fld} lottrace knows '
                    f"({', '.join(choices)}{dym})"
                )
        cm.values[fld] = {_value_key(k): v for k, v in table.items()}
    t = data.get("time", {})
    if not isinstance(t, dict):
        raise bad("[time]", "give zone and order")
    for key in t:
        if key not in ("zone", "order"):
            raise bad(f"[time] {key}", "unknown (use zone and order)")
    if "zone" in t:
        zone = t["zone"]
        try:
            if not isinstance(zone, str):
                raise ZoneInfoNotFoundError
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise bad("[time] zone", f"{zone!r} is not a time zone (e.g. America/Lima)") from None
        cm.zone = zone
    if "order" in t:
        if t["order"] not in ORDERS:
            raise bad("[time] order", f"{t['order']!r}: use DMY, MDY or YMD")
        cm.order = t["order"]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise bad("[defaults]", "give one table per event type, e.g. [defaults.harvest]")
    for kind, table in defaults.items():
        real = _stage(kind)
        if real is None:
            raise bad(f"[defaults.{kind}]", f"{kind!r} is not an event type")
        if not isinstance(table, dict):
            raise bad(f"[defaults.{kind}]", "give field = value pairs")
        for fld in table:
            if fld not in fields:
                hint = difflib.get_close_matches(fld, sorted(fields), n=1)
                dym = f" (did you mean {hint[0]}?)" if hint else ""
                problems.append(f"[defaults.{kind}] {fld}: {fld!r} is not a lottrace field{dym}")
        cm.defaults[real] = dict(table)
    if problems:
        raise InvalidInput(f"{name}: " + "; ".join(problems))
    return cm


def _choices(fld: str) -> tuple[str, ...]:
    """The values a field may take (a Literal in the event models), or () if any."""
    if fld == "type":
        return tuple(EVENT_MODELS)

    def literal(ann: Any) -> tuple[str, ...]:
        if typing.get_origin(ann) is typing.Literal:
            return tuple(str(a) for a in typing.get_args(ann))
        for arg in typing.get_args(ann):
            if found := literal(arg):
                return found
        return ()

    for model in EVENT_MODELS.values():
        info = model.model_fields.get(fld)
        if info is not None and (found := literal(info.annotation)):
            return found
    return ()


def _q(text: str) -> str:
    """A TOML basic string."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{out}"'


def map_to_toml(cm: ColumnMap, comments: Sequence[str] = ()) -> str:
    """The map as TOML text, with ``comments`` (lines) on top."""
    lines = [f"# {c}" for c in comments]
    lines.append("[columns]")
    lines += [f"{_q(col)} = {_q(fld)}" for col, fld in cm.columns.items()]
    if cm.unresolved:
        lines.append(
            "# not mapped yet (an import refuses these columns until this map names them):"
        )
        lines += [
            f"# {_q(col)} = {_q(near)}    # {why}" for col, (near, why) in cm.unresolved.items()
        ]
    for fld, table in cm.values.items():
        lines += ["", f"[values.{fld}]"]
        lines += [f"{_q(k)} = {_q(v)}" for k, v in table.items()]
    lines += ["", "[time]"]
    if cm.zone:
        lines.append(f"zone = {_q(cm.zone)}")
    lines.append(f"order = {_q(cm.order)}")
    for kind, table in cm.defaults.items():
        lines += ["", f"[defaults.{kind}]"]
        for k, v in table.items():
            lines.append(f"{k} = {_q(v) if isinstance(v, str) else v}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reading


@dataclass
class _Sheet:
    name: str
    header: list[str]
    rows: Iterator[tuple[int, list[Any]]]  # (line or row number, cells)
    decimal_comma: bool
    cell_names: bool = False  # xlsx: name cells as A14
    close: Callable[[], None] = lambda: None  # the file, whether or not the rows were read


def _open_sheet(
    path: Path,
    *,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    on_note: Note | None,
    progress: Progress | None,
) -> _Sheet:
    name = str(path)
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _open_xlsx(path, sheet)
    if encoding is not None:
        check_encoding(name, encoding)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot read: {exc.strerror}") from None
    sep = {"tab": "\t"}.get(delimiter or "", delimiter)
    reader = CsvReader(name, encoding or "utf-8", encoding is None, sep, progress, None, on_note)
    lines = reader.lines(f)
    try:
        first = next(lines)
    except StopIteration:
        f.close()
        raise InvalidInput(f"{name}: the file is empty") from None
    except BaseException:  # a file that cannot be decoded
        f.close()
        raise
    d = sep or sniff_delimiter(first)

    def chained() -> Iterator[str]:
        yield first
        yield from lines

    rows = csv.reader(chained(), delimiter=d, strict=True)
    try:
        header = [h.strip() for h in next(rows)]
    except (csv.Error, StopIteration) as exc:
        f.close()
        raise InvalidInput(f"{name}:1: not valid CSV: {exc}") from None

    def body() -> Iterator[tuple[int, list[Any]]]:
        with f:
            start = rows.line_num + 1
            try:
                for row in rows:
                    line, start = start, rows.line_num + 1
                    yield line, list(row)
            except csv.Error as exc:
                raise InvalidEvent(
                    f"not valid CSV: {exc}", where=f"{name}:{rows.line_num}"
                ) from None

    return _Sheet(name, header, body(), decimal_comma=d != ",", close=f.close)


def check_bounds(
    path: str | Path,
    *,
    max_rows: int,
    max_columns: int,
    max_inflated: int,
    sheet: str | None = None,
) -> None:
    """Refuse a sheet bigger than the bounds, reading no more of it than they allow.

    :class:`TooBig` (naming ``file``) when an ``.xlsx`` workbook's parts would
    inflate beyond ``max_inflated`` bytes (checked in the zip's directory,
    before a workbook reader holds anything: a shared-strings "bomb" of a few
    hundred KB inflates to hundreds of MB), or when the sheet has more than
    ``max_rows`` rows or ``max_columns`` columns (a row is counted as read).
    A sheet that cannot be read at all is left to the reader to report.
    """
    import zipfile

    p = Path(path)
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        try:
            with zipfile.ZipFile(p) as z:
                inflated = sum(i.file_size for i in z.infolist())
        except (zipfile.BadZipFile, OSError):
            return
        if inflated > max_inflated:
            raise TooBig(
                f"{p.name}: the workbook inflates to {inflated // 2**20} MB "
                f"(at most {max_inflated // 2**20} MB)",
                field="file",
            )
    try:
        sh = _open_sheet(p, encoding=None, delimiter=None, sheet=sheet, on_note=None,
                         progress=None)  # fmt: skip
    except (InvalidInput, InvalidEvent):
        return
    try:
        if len(sh.header) > max_columns:
            raise TooBig(
                f"{p.name}: {len(sh.header)} columns (at most {max_columns})", field="file"
            )
        rows = 1
        for _line, cells in sh.rows:
            rows += 1
            if rows > max_rows:
                raise TooBig(f"{p.name}: more than {max_rows} rows", field="file")
            if len(cells) > max_columns:
                raise TooBig(
                    f"{p.name}: row {rows} has {len(cells)} cells (at most {max_columns})",
                    field="file",
                )
    except TooBig:
        raise
    except (InvalidInput, InvalidEvent):
        return  # the reader says what is wrong, with its line
    finally:
        sh.close()


def _open_xlsx(path: Path, sheet: str | None) -> _Sheet:
    import zipfile

    import openpyxl

    name = str(path)
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InvalidInput(f"{name}: not an Excel .xlsx workbook ({exc})") from None
    if sheet is not None and sheet not in wb.sheetnames:
        wb.close()
        raise InvalidInput(f"{name}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
    ws: Any = wb[sheet] if sheet is not None else wb.worksheets[0]
    if not hasattr(ws, "iter_rows"):  # a chart sheet
        wb.close()
        raise InvalidInput(f"{name}: sheet {ws.title!r} is a chart, not a table")
    it = ws.iter_rows(values_only=True)
    try:
        first = next(it)
    except StopIteration:
        wb.close()
        raise InvalidInput(f"{name}: the sheet is empty") from None
    except Exception as exc:  # openpyxl on a broken workbook: IndexError, KeyError, ...
        wb.close()
        raise InvalidInput(
            f"{name}: not a readable .xlsx workbook ({type(exc).__name__})"
        ) from None
    header = ["" if c is None else str(c).strip() for c in first]

    def body() -> Iterator[tuple[int, list[Any]]]:
        n = 1
        try:
            for n, row in enumerate(it, 2):
                yield n, list(row)
        except (InvalidInput, InvalidEvent):
            raise
        except Exception as exc:  # as above, in a later row
            raise InvalidInput(
                f"{name}: row {n + 1}: not a readable .xlsx row ({type(exc).__name__})"
            ) from None
        finally:
            wb.close()

    return _Sheet(name, header, body(), decimal_comma=True, cell_names=True, close=wb.close)


def _column_letter(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


_DECIMAL = re.compile(r"[+-]?(\d+|\d{1,3}(\.\d{3})+),\d+|[+-]?\d{1,3}(\.\d{3})+")
_ISO_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
_DATE_TIME = re.compile(
    r"^(\d{1,4})[/.-](\d{1,2})[/.-](\d{1,4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?)?$",
    re.I,
)


_ORDER_WORDS = {"DMY": "day/month/year", "MDY": "month/day/year", "YMD": "year/month/day"}


#: Thousands grouped with spaces, as lottrace prints Spanish numbers: ``1 020,5``
#: (a space, a no-break space or a narrow no-break space between groups).
_SPACED = re.compile(r"[+-]?\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?:[.,]\d+)?")


def _number_text(value: str, decimal_comma: bool) -> str:
    v = value.strip()
    if _SPACED.fullmatch(v):  # with spaced groups, a comma or a dot can only be the decimals
        return re.sub(r"[ \u00a0\u202f]", "", v).replace(",", ".")
    if decimal_comma and _DECIMAL.fullmatch(v):
        return v.replace(".", "").replace(",", ".")
    return v


def _when(value: Any, cm: ColumnMap) -> str:
    """A time cell as ISO-8601 with an offset; ValueError says why not."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time())
    else:
        text = str(value).strip()
        if _ISO_OFFSET.match(text):
            return text
        m = _DATE_TIME.match(text)
        if not m:
            raise ValueError(f"{_show(text)} is not a date (e.g. 02/06/2025 or 2025-06-02 14:30)")
        a, b, c = (int(x) for x in m.group(1, 2, 3))
        if len(m.group(1)) == 4:
            y, mo, d = a, b, c
        elif cm.order == "MDY":
            mo, d, y = a, b, c
        else:
            d, mo, y = a, b, c
        if y < 100:
            y += 2000
        hh, mm, ss = int(m.group(4) or 0), int(m.group(5) or 0), int(m.group(6) or 0)
        ampm = (m.group(7) or "").lower().replace(".", "")
        if ampm == "pm" and hh < 12:
            hh += 12
        elif ampm == "am" and hh == 12:
            hh = 0
        order = "YMD" if len(m.group(1)) == 4 else cm.order
        words = _ORDER_WORDS[order]
        if not 1 <= mo <= 12:
            fix = (
                ""
                if order == "YMD"
                else "; set [time] order in the map if the sheet writes "
                + ("month first" if order == "DMY" else "day first")
            )
            raise ValueError(
                f"{_show(text)}: {mo} is not a month: dates here are read {words}{fix}"
            )
        if not (0 <= hh <= 23 and 0 <= mm <= 59 and 0 <= ss <= 59):
            raise ValueError(f"{_show(text)}: {hh}:{mm:02d} is not a time of day")
        try:
            dt = datetime(y, mo, d, hh, mm, ss)
        except ValueError:
            raise ValueError(
                f"{_show(text)}: month {mo} of {y} has no day {d} (dates here are read {words})"
            ) from None
    if dt.tzinfo is None:
        if not cm.zone:
            raise ValueError(
                f'{_show(str(value))} has no UTC offset; add [time] zone = "America/Lima" '
                f"to {cm.source}"
            )
        dt = dt.replace(tzinfo=ZoneInfo(cm.zone))
    return dt.isoformat()


def _show(text: str) -> str:
    text = text if len(text) <= 40 else text[:39] + "…"
    return '"' + text.replace('"', "'") + '"'


def _inputs(text: str, decimal_comma: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """``LOT=KG|LOT=KG``, or lots without kilos (``A, B``, ``A; B``, ``A B``) -> items, whole lots."""
    if "=" in text:
        parts = [p.strip() for p in re.split(r"[|;]", text) if p.strip()]
    else:
        parts = [p for p in re.split(r"[\s,;|]+", text) if p]
    items: list[dict[str, Any]] = []
    whole: list[str] = []
    for part in parts:
        lot, eq, kg = (b.strip() for b in part.partition("="))
        if not eq:
            items.append({"lot": lot})
            whole.append(lot)
        else:
            if not lot or not kg:
                raise ValueError(f"{_show(part)} is not LOT=KG")
            items.append({"lot": lot, "kg": _number_text(kg, decimal_comma)})
    return items, whole


class _Row:
    """One sheet row read through a map: the record, its problems, and where each field came from."""

    def __init__(self, sheet: _Sheet, cm: ColumnMap, line: int, cells: list[Any]) -> None:
        self.sheet, self.cm, self.line = sheet, cm, line
        self.problems: list[tuple[int, str]] = []  # (column index or -1, words)
        self.origin: dict[str, int] = {}  # field -> column index
        self.whole: list[str] = []
        self.record: dict[str, Any] = {}
        self._read(cells)

    def column(self, i: int) -> str:
        label = f'column "{self.sheet.header[i]}"'
        if self.sheet.cell_names:
            label += f" (cell {_column_letter(i)}{self.line})"
        return label

    def _read(self, cells: list[Any]) -> None:
        sheet, cm = self.sheet, self.cm
        numbers = number_fields()
        flat: dict[str, Any] = {}
        for i, col in enumerate(sheet.header):
            fld = cm.columns.get(col, "")
            value = cells[i] if i < len(cells) else None
            if not fld or value is None or (isinstance(value, str) and not value.strip()):
                continue
            self.origin[fld] = i
            try:
                flat[fld] = self._cell(fld, value, numbers)
            except ValueError as exc:
                self.problems.append((i, str(exc)))
        extra = [c for c in cells[len(sheet.header) :] if c not in (None, "") and str(c).strip()]
        if extra:
            self.problems.append(
                (
                    -1,
                    f"the row has {len(sheet.header) + len(extra)} cells but the header {len(sheet.header)} columns",
                )
            )
        kind = flat.get("type")
        if isinstance(kind, str):
            for k, v in cm.defaults.get(kind, {}).items():
                flat.setdefault(k, v)
        lon, lat = flat.pop("plot.lon", None), flat.pop("plot.lat", None)
        if lon is not None or lat is not None:
            if lon is None or lat is None:
                where = self.origin.get("plot.lat", self.origin.get("plot.lon", -1))
                self.problems.append((where, "give both latitude and longitude, or neither"))
            elif isinstance(lon, float) and isinstance(lat, float):
                flat["plot.geometry"] = {"type": "Point", "coordinates": [lon, lat]}
                self.origin["plot.geometry"] = self.origin["plot.lat"]
        for key, value in flat.items():
            node = self.record
            parts = key.split(".")
            for part in parts[:-1]:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    break
                node = child
            else:
                node[parts[-1]] = value

    def _cell(self, fld: str, value: Any, numbers: frozenset[str]) -> Any:
        cm, dc = self.cm, self.sheet.decimal_comma
        table = cm.values.get(fld) or {}
        if isinstance(value, str):
            value = value.strip()
            key = _value_key(value)
            if key in table:
                value = table[key]
        if fld == "type":
            kind = _stage(str(value))
            if kind is None:
                known = ", ".join(t for t in EVENT_MODELS if t not in REGISTRY_TYPES)
                raise ValueError(
                    f"{_show(str(value))} is not a stage lottrace knows ({known}; or cosecha, secado, acopio ...); "
                    f"add it under [values.type] in {cm.source}"
                )
            return kind
        if fld in ("time", "started"):
            return _when(value, cm)
        if fld in ("plot.lat", "plot.lon"):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            text = _number_text(str(value), True)
            try:
                return float(text)
            except ValueError:
                raise ValueError(f"{_show(str(value))} is not a number") from None
        if fld.rsplit(".", 1)[-1] in numbers:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
            raw = str(value).strip()
            if fld.endswith("_pct") and raw.endswith("%"):
                raw = raw[:-1].rstrip()  # 11,5 % in a percent column is 11.5
            text = _number_text(raw, dc)
            try:
                float(text)
            except ValueError:
                if "," in raw and "." in raw:
                    hint = "; write decimals with a comma or a dot, not both"
                elif re.fullmatch(r"[+-]?[\d.,\s\u00a0\u202f]*\d\s*[^\d\s.,]+\.?", raw):
                    hint = "; write the number alone, without its unit"
                else:
                    hint = ""
                raise ValueError(f"{_show(str(value))} is not a number{hint}") from None
            return text
        if fld == "inputs":
            items, whole = _inputs(str(value), dc)
            self.whole = whole
            return items
        if fld == "outputs":
            out = []
            for part in re.split(r"[|;]", str(value)):
                bits = [b.strip() for b in part.split("=")]
                if len(bits) != 3 or not all(bits):
                    raise ValueError(f"{_show(part.strip())} is not LOT=KG=GRADE")
                out.append({"lot": bits[0], "kg": _number_text(bits[1], dc), "grade": bits[2]})
            return out
        if fld == "certifications":
            return [c.strip().lower() for c in re.split(r"[|,;]", str(value)) if c.strip()]
        if isinstance(value, datetime):
            return _when(value, cm)
        if fld in VALUES and isinstance(value, str):
            return VALUES[fld].get(_value_key(value), value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return value if isinstance(value, str) else str(value)

    def where(self) -> str:
        return f"{self.sheet.name}:{self.line}"

    def _origin_of(self, fld: str) -> int | None:
        """The column a field's problem is in (``plot.geometry`` in Latitud ...), or None."""
        parts = fld.split("[")[0].split(".")
        for n in range(len(parts), 0, -1):
            cand = ".".join(parts[:n])
            if cand in self.origin:
                return self.origin[cand]
        for f, i in self.origin.items():
            if f.split(".")[0] == parts[0]:
                return i
        return None

    def event(
        self, lacking: dict[str, str] | None = None
    ) -> tuple[EventBase | WholeInputs | None, list[str], list[str]]:
        """The row's event (or its whole-input form), its problems, and the map's, in words.

        The map's problems (no column gives a required field, ``lacking``:
        a field -> the column the map names for it that the file lacks) are
        the same on every row: the caller says each of them once.
        """
        lacking = lacking or {}
        out: list[tuple[int, str]] = list(self.problems)
        of_map: list[str] = []
        rec = self.record
        checked = rec
        if self.whole:
            checked = {**rec, "inputs": [{"kg": 1, **i} for i in rec["inputs"]]}
        ev: EventBase | None = None
        stage_cols = [
            c for c, f in self.cm.columns.items() if f == "type" and c not in lacking.values()
        ]
        if (
            "type" not in rec
            and stage_cols
            and not any(i == self.origin.get("type") for i, _ in out)
        ):
            out.append((-1, f'no stage: the "{stage_cols[0]}" cell is empty'))
        elif "type" not in rec and not any(i == self.origin.get("type") for i, _ in out):
            of_map.append(
                f'no stage: {self.cm.source} maps no column of the file to "type"'
                + (
                    f' (its column "{lacking["type"]}" is not in the file)'
                    if "type" in lacking
                    else ' (map the stage column to "type")'
                )
            )
        elif "type" in rec:
            try:
                ev = parse_event(checked, where=self.where())
            except InvalidEvent as exc:
                for fld, words, _v in exc.problems or [(exc.field, str(exc), None)]:
                    if any(i == self.origin.get(fld) for i, _ in out):
                        continue  # already said of that cell
                    if words == "is required" and fld not in self.origin:
                        kind = rec.get("type")
                        top = fld.split(".")[0]
                        col = lacking.get(fld) or next(
                            (c for f, c in lacking.items() if f.split(".")[0] == top), None
                        )
                        of_map.append(
                            f'"{fld}" is required for {kind}: {self.cm.source} maps the column '
                            f'"{col}" to {fld}, and the file has no such column'
                            if col
                            else f'"{fld}" is required for {kind}: no column gives it '
                            f"(add a column, or {fld} = ... under [defaults.{kind}] in {self.cm.source})"
                        )
                    elif (i := self._origin_of(fld)) is not None:
                        out.append((i, words))
                    else:
                        out.append((-2, f'field "{fld}" (from the map\'s defaults): {words}'))
        texts = []
        for i, words in sorted(out, key=lambda p: p[0] if p[0] >= 0 else 10_000):
            texts.append(f"{self.column(i)}: {words}" if i >= 0 else words)
        if texts or of_map or ev is None:
            return None, texts, of_map
        if self.whole:
            return WholeInputs(rec, tuple(self.whole)), [], []
        return ev, [], []


def suggest_map(
    path: str | Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    on_note: Note | None = None,
) -> tuple[ColumnMap, list[str], list[str]]:
    """A map for ``path``'s header: the map, the columns it could not map, and comments.

    Values of the type, result, process and method columns that the file
    uses are listed under ``[values.FIELD]``; the date order is read from
    the dates (a first number over 12 means day-first), day-first otherwise.
    """
    sh = _open_sheet(Path(path), encoding=encoding, delimiter=delimiter, sheet=sheet,
                     on_note=on_note, progress=None)  # fmt: skip
    try:
        cm = ColumnMap(zone="America/Lima")
        unknown: list[str] = []
        comments = [
            f"lottrace column map for {Path(path).name} (lottrace import FILE --map THIS.toml)"
        ]
        given: dict[str, str] = {}  # field -> the column that gives it
        for col in sh.header:
            if not col:
                continue
            fld = _recognise(col)
            if fld is None:
                # Never dropped silently: a commented line the user decides on,
                # and a column an import refuses until the map names it.
                unknown.append(col)
                near = _nearest(col)
                cm.unresolved[col] = (
                    near or "",
                    "not recognised"
                    + (f"; nearest field {near}" if near else "")
                    + ': give its field, or "" to drop the column',
                )
            elif fld and fld in given:
                unknown.append(col)
                cm.unresolved[col] = (
                    fld,
                    f'also {fld}, like "{given[fld]}": one column per field; '
                    'map one of them, "" drops the other',
                )
            else:
                cm.columns[col] = fld
                if fld:
                    given[fld] = col
        by_field = {f: i for i, f in enumerate(cm.columns.get(c, "") for c in sh.header)}
        seen: dict[str, dict[str, str]] = {}
        dmy, mdy = False, ""
        for n, (_line, cells) in enumerate(sh.rows):
            if n >= 10_000:
                break
            for fld in ("type", "result", "process", "method"):
                i = by_field.get(fld)
                if i is None or i >= len(cells) or cells[i] in (None, ""):
                    continue
                raw = str(cells[i]).strip()
                if fld == "type":
                    kind = _stage(raw)
                    if kind is not None and kind != raw:
                        seen.setdefault("type", {})[raw] = kind
                    elif kind is None:
                        comments.append(
                            f'stage "{raw}" is not recognised: add "{raw}" = "TYPE" under [values.type]'
                        )
                else:
                    v = VALUES[fld].get(_value_key(raw))
                    if v is not None and v != raw:
                        seen.setdefault(fld, {})[raw] = v
                    elif v is None and raw not in VALUES[fld].values():
                        comments.append(
                            f'{fld} "{raw}" is not recognised: add it under [values.{fld}]'
                        )
            i = by_field.get("time")
            if i is not None and i < len(cells) and isinstance(cells[i], str):
                m = _DATE_TIME.match(cells[i].strip())
                if m and len(m.group(1)) < 4:
                    a, b = int(m.group(1)), int(m.group(2))
                    dmy = dmy or a > 12
                    mdy = mdy or (cells[i].strip() if b > 12 else "")
        cm.values = seen
        spanish = any(_is_spanish(col) for col in sh.header) or any(
            _plain(raw) not in (kind, "ok", "on hold")
            for fld in ("type", "result")
            for raw, kind in seen.get(fld, {}).items()
        )
        # The order is decided once, for the whole sheet: a Spanish sheet is
        # day-first whatever its dates say (a date impossible that way is an
        # error on its own line, never a reason to re-read the others).
        if spanish:
            cm.order = "DMY"
            why = "day/month/year: the sheet is in Spanish, and Peru writes 02/06/2025 for 2 June"
        elif mdy and not dmy:
            cm.order = "MDY"
            why = f"month/day/year: the sheet is in English and {mdy} is written month first"
        else:
            cm.order = "DMY"
            why = "day/month/year"
        comments.append(
            f"times without an offset are read in [time] zone; dates as [time] order, here {why}"
            '; set order = "MDY" or "DMY" if that is wrong'
        )
        comments = list(dict.fromkeys(comments))
        comments.append('add the sites per event type, e.g. [defaults.harvest] site = "farm:XXX"')
        return cm, unknown, comments
    finally:
        sh.close()


def suggested_toml(
    path: str | Path,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    on_note: Note | None = None,
) -> str:
    """:func:`suggest_map`'s map for ``path`` as TOML, what it could not map in comments.

    ``on_note`` is told, once, the columns left as comments for the user to decide.
    """
    cm, _unknown, comments = suggest_map(path, encoding=encoding, delimiter=delimiter, sheet=sheet)
    if on_note is not None and cm.unresolved:
        on_note(f"{path}: left for you to map (commented out in the map): {_unresolved(cm)}")
    return map_to_toml(cm, comments)


def _unresolved(cm: ColumnMap) -> str:
    """The columns a suggested map left open, each with why, on one line."""
    return "; ".join(f'"{col}" {why.split(":")[0]}' for col, (_n, why) in cm.unresolved.items())


def _sheet_kind(path: Path) -> str:
    """``xlsx``, ``json`` or ``csv`` by the file's name and first bytes."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return "xlsx"
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return "json"
    try:
        with path.open("rb") as f:
            head = f.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return "json"  # the native reader names the problem
    if head[:1] in (b"{", b"[") or b"\x00" in head:
        return "json"
    return "csv"


def reads_natively(path: str | Path) -> bool:
    """Whether ``path`` is read without a column map: JSON, or a CSV whose header is all
    lottrace field names (what :func:`iter_import` does with it)."""
    p = Path(path)
    kind = _sheet_kind(p)
    return kind == "json" or (kind == "csv" and _header_is_native(p, None, None))


def field_names() -> list[str]:
    """Every field a column may be mapped to (dotted for parts), sorted."""
    return sorted(_native_fields())


def _header_is_native(path: Path, encoding: str | None, delimiter: str | None) -> bool:
    sh = _open_sheet(
        path, encoding=encoding, delimiter=delimiter, sheet=None, on_note=None, progress=None
    )
    sh.close()
    names = _native_fields()
    return all(not h or h.strip().lower() in names for h in sh.header)


def iter_import(
    paths: Sequence[Path],
    *,
    map_path: Path | None = None,
    default_type: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    progress: Progress | None = None,
    on_error: OnError | None = None,
    on_note: Note | None = None,
    on_map: Callable[[str, str], None] | None = None,
) -> Iterator[tuple[str, EventBase | WholeInputs]]:
    """The events of every file, each read natively, through ``map_path``'s map, or a suggested one.

    A file whose header is all lottrace field names (or JSON) is read as
    before (:func:`lottrace.readers.iter_events`). Otherwise its header is
    mapped: by the map given, or by :func:`suggest_map` if that recognises
    every column (``on_map(file, toml)`` is told the map used); if not, one
    :class:`InvalidInput` names the unknown columns and the nearest fields.
    Each problem of each row goes to ``on_error`` (file and line order).
    """
    cm_given = load_map(map_path) if map_path is not None else None
    for path in paths:
        path = Path(path)
        kind = _sheet_kind(path)
        if cm_given is None and (
            kind == "json" or (kind == "csv" and _header_is_native(path, encoding, delimiter))
        ):
            yield from iter_events(path, default_type=default_type, encoding=encoding, delimiter=delimiter,
                                   progress=progress, on_error=on_error, on_note=on_note)  # fmt: skip
            continue
        cm = cm_given
        if cm is None:
            cm, unknown, comments = suggest_map(
                path, encoding=encoding, delimiter=delimiter, sheet=sheet
            )
            dups = [c for c in unknown if cm.unresolved.get(c, ("", ""))[1].startswith("also ")]
            unknown = [c for c in unknown if c not in dups]
            if unknown or dups:
                what = [f"unknown columns {_named(unknown)}"] if unknown else []
                what += [f'"{c}" {cm.unresolved[c][1].split(":")[0]}' for c in dups]
                raise InvalidInput(
                    f"{path}: {'; '.join(what)}; lottrace import {path.name} "
                    "--suggest-map "
                    "> map.toml writes a map to edit, then --map map.toml"
                )
            if on_map is not None:
                on_map(str(path), map_to_toml(cm, comments))
        yield from _mapped(path, cm, default_type=default_type, encoding=encoding, delimiter=delimiter,
                           sheet=sheet, progress=progress, on_error=on_error, on_note=on_note)  # fmt: skip


def _named(columns: list[str]) -> str:
    """Column names, quoted, each with the nearest lottrace field if one is near."""
    return ", ".join(
        f'"{c}"' + (f" (did you mean {near}?)" if (near := _nearest(c)) else "") for c in columns
    )


def _mapped(
    path: Path,
    cm: ColumnMap,
    *,
    default_type: str | None,
    encoding: str | None,
    delimiter: str | None,
    sheet: str | None,
    progress: Progress | None,
    on_error: OnError | None,
    on_note: Note | None,
) -> Iterator[tuple[str, EventBase | WholeInputs]]:
    sh = _open_sheet(path, encoding=encoding, delimiter=delimiter, sheet=sheet,
                     on_note=on_note, progress=progress)  # fmt: skip
    try:
        missing = [c for c in cm.columns if c not in sh.header]
        header_fields = [cm.columns.get(h) for h in sh.header]
        unknown = [h for h, f in zip(sh.header, header_fields, strict=True) if h and f is None]
        if unknown:
            raise InvalidInput(
                f'{path}: columns {_named(unknown)} are not in {cm.source} (map them, or "" '
                "to drop)"
            )
        if on_note is not None and missing:
            on_note(
                f"{path}: {cm.source} names columns the file lacks: "
                + ", ".join(f'"{c}"' for c in missing)
            )
        lacking = {cm.columns[c]: c for c in missing if cm.columns[c]}
        said: set[str] = set()  # the map's problems, each said once
        for line, cells in sh.rows:
            if not any(c not in (None, "") and str(c).strip() for c in cells):
                continue
            row = _Row(sh, cm, line, cells)
            if default_type and "type" not in row.record:
                row.record["type"] = resolve_type(default_type)
                for k, v in cm.defaults.get(row.record["type"], {}).items():
                    row.record.setdefault(k, v)
            ev, problems, of_map = row.event(lacking)
            for words in of_map:
                if words not in said:
                    said.add(words)
                    problems.append(words + " (said once for all the rows like this)")
            if problems or of_map:
                for words in problems:
                    exc = InvalidEvent(words, where=row.where())
                    if on_error is None:
                        raise exc
                    on_error(exc)
                continue
            assert ev is not None
            yield row.where(), ev
    finally:
        sh.close()


# --------------------------------------------------------------------------- templates

#: The columns of each checkpoint type's template, in order.
_TEMPLATE_FIELDS: dict[str, list[str]] = {
    "harvest": ["type", "time", "site", "lot", "producer", "plot.id", "plot.lat", "plot.lon",
                "plot.area_ha", "kg", "variety", "process", "actor", "note"],
    "drying": ["type", "time", "site", "lot", "kg", "method", "moisture_pct", "inputs", "actor", "note"],
    "gatherer_qc": ["type", "time", "site", "lot", "kg", "moisture_pct", "result", "inputs",
                    "inspector", "reason", "actor", "note"],
    "hq_qc": ["type", "time", "site", "lot", "kg", "moisture_pct", "result", "defects.cat1",
              "defects.cat2", "cup_score", "inputs", "inspector", "reason", "actor", "note"],
    "dry_mill": ["type", "time", "site", "inputs", "outputs", "rejects_kg", "actor", "note"],
    "export": ["type", "time", "site", "lot", "kg", "container", "bags", "vessel", "actor", "note"],
    "dispatch": ["type", "time", "site", "lot", "to_site", "vehicle", "actor", "note"],
    "arrival": ["type", "time", "site", "lot", "from_site", "actor", "note"],
}  # fmt: skip

_SPANISH_STAGE = {v: k for k, v in STAGE_ALIASES.items()}

_EXAMPLES: dict[str, str] = {
    "time": "02/06/2025 09:30", "lot": "SIG-25-001", "producer": "Peña Córdova",
    "plot.id": "SIG-P0101", "plot.lat": "-5,160921", "plot.lon": "-78,993518",
    "plot.area_ha": "1,5", "kg": "1.020,5", "variety": "Caturra", "process": "washed",
    "method": "covered", "moisture_pct": "11,5", "result": "accepted",
    "inputs": "SIG-25-001, SIG-25-002", "outputs": "GR-25-001=700=Grade 1|GR-25-002=120=MCM",
    "rejects_kg": "200", "defects.cat1": "0", "defects.cat2": "4", "cup_score": "84,5",
    "container": "MSKU1234565", "bags": "275", "vessel": "Maersk Lima",
    "to_site": "hq:SIG", "from_site": "gatherer:SIG-01", "vehicle": "ABC-123",
    "inspector": "J. Pérez", "reason": "", "actor": "M. Torres", "note": "",
}  # fmt: skip
_EXAMPLE_SITE = {
    "harvest": "farm:SIG-P0101", "drying": "farm:SIG-P0101", "gatherer_qc": "gatherer:SIG-01",
    "hq_qc": "hq:SIG", "dry_mill": "mill:CHICLAYO-1", "export": "port:PAITA",
    "dispatch": "gatherer:SIG-01", "arrival": "hq:SIG",
}  # fmt: skip
_ES_VALUES = {"accepted": "Aceptado", "washed": "Lavado", "covered": "Cubierto"}


def template_columns(kind: str, lang: str = "es") -> tuple[list[str], list[str]]:
    """The header and a row of examples of ``kind``'s template, in Spanish or English."""
    real = _stage(kind)
    if real is None or real not in _TEMPLATE_FIELDS:
        raise InvalidInput(f"no template for {kind!r}: use one of {', '.join(_TEMPLATE_FIELDS)}")
    if lang not in ("es", "en"):
        raise InvalidInput(f"unknown language {lang!r}: use es or en")
    es = lang == "es"
    fields = _TEMPLATE_FIELDS[real]
    header = [LABELS[f][0 if es else 1] for f in fields]
    row = []
    for f in fields:
        if f == "type":
            row.append(_SPANISH_STAGE.get(real, real).capitalize() if es else real)
        elif f == "site":
            row.append(_EXAMPLE_SITE[real])
        else:
            v = _EXAMPLES.get(f, "")
            if es:
                v = _ES_VALUES.get(v, v)
            else:
                v = v.replace(".", "").replace(",", ".") if _DECIMAL.fullmatch(v) else v
                if f == "time":
                    v = "2025-06-02 09:30"
            if real == "drying" and f == "inputs":
                v = ""
            row.append(v)
    return header, row


def write_template(kind: str, out: Path, lang: str = "es") -> None:
    """Write ``kind``'s template to ``out``: ``.xlsx`` if the name says so, CSV otherwise."""
    header, row = template_columns(kind, lang)
    if out.suffix.lower() == ".xlsx":
        import openpyxl

        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = (
            _SPANISH_STAGE.get(_stage(kind) or kind, kind)
            if lang == "es"
            else (_stage(kind) or kind)
        )
        ws.append(header)
        ws.append(row)
        wb.save(out)
        return
    out.write_bytes(template_csv(kind, lang).encode("utf-8-sig"))


def template_csv(kind: str, lang: str = "es") -> str:
    """``kind``'s template as CSV text (``;`` and decimal commas in Spanish, ``,`` in English)."""
    header, row = template_columns(kind, lang)
    buf = io.StringIO()
    csv.writer(buf, delimiter=";" if lang == "es" else ",", lineterminator="\r\n").writerows(
        [header, row]
    )
    return buf.getvalue()


# --------------------------------------------------------------------------- problems by kind

#: The kinds of problem a sheet's row can have, by a stable code, in English (what each code
#: means; the row's own words say the particulars). :func:`row_problem_code` names the kind of
#: a problem's words; :data:`ROW_PROBLEMS_ES` says each kind in Spanish (the web app's upload
#: page, a test keeps the keys in step). A row that breaks a ledger rule is a
#: :class:`~lottrace.errors.RuleViolation`, named by its rule (:data:`lottrace.rules.RULES`).
ROW_PROBLEMS: dict[str, str] = {
    "not-a-date": "a date cell is not a date",
    "not-a-month": "a date's month is over 12 in the map's date order",
    "no-such-day": "a date names a day its month does not have",
    "not-a-time": "a time of day is not one",
    "no-offset": "a time without a UTC offset, and no [time] zone in the map",
    "not-a-stage": "the stage cell is not a stage lottrace knows",
    "not-a-number": "a number cell is not a number",
    "not-whole": "a cell that takes a whole number has decimals",
    "not-lot-kg": "an inputs cell is not LOT=KG",
    "not-lot-kg-grade": "an outputs cell is not LOT=KG=GRADE",
    "extra-cells": "the row has more cells than the header has columns",
    "lat-lon": "a plot has its latitude or its longitude, not both",
    "no-stage": "the row has no stage",
    "required": "a field the row's stage needs is not given",
    "too-small": "a number is under the field's allowed range",
    "too-large": "a number is over the field's allowed range",
    "out-of-range": "a position or a measure is outside its range",
    "not-one-of": "a value is not one the field allows",
    "not-a-field": "a field the row's stage does not have",
    "empty": "a cell that may not be empty is",
    "too-long": "a value is too long",
    "bad-format": "a value is not written as the field needs (a code, a site, a date)",
    "other": "a value the data model refuses",
}

#: :data:`ROW_PROBLEMS` in Spanish, as the web app's upload page says them.
ROW_PROBLEMS_ES: dict[str, str] = {
    "not-a-date": "la fecha no es una fecha",
    "not-a-month": "el mes de la fecha es mayor que 12 en el orden de fechas del mapa",
    "no-such-day": "la fecha nombra un día que su mes no tiene",
    "not-a-time": "la hora no es una hora del día",
    "no-offset": "una hora sin desfase UTC, y el mapa no da la zona horaria ([time] zone)",
    "not-a-stage": "la etapa no es una que lottrace conozca",
    "not-a-number": "no es un número",
    "not-whole": "este campo lleva un número entero, sin decimales",
    "not-lot-kg": "los lotes de origen se escriben LOTE=KG",
    "not-lot-kg-grade": "los lotes de salida se escriben LOTE=KG=GRADO",
    "extra-cells": "la fila tiene más celdas que columnas el encabezado",
    "lat-lon": "una parcela lleva latitud y longitud, las dos o ninguna",
    "no-stage": "la fila no dice su etapa",
    "required": "falta un dato que la etapa de la fila necesita",
    "too-small": "el número es menor que lo permitido",
    "too-large": "el número es mayor que lo permitido",
    "out-of-range": "el valor está fuera de su rango",
    "not-one-of": "el valor no es uno de los permitidos",
    "not-a-field": "la etapa de la fila no tiene ese campo",
    "empty": "la celda no puede estar vacía",
    "too-long": "el valor es demasiado largo",
    "bad-format": "el valor no está escrito como el campo lo pide",
    "other": "el registro no admite este valor",
}

#: How each kind's words read (searched, first match wins); "other" is what none matches.
_ROW_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (code, re.compile(words))
    for code, words in (
        ("not-a-date", r"is not a date \(e\.g\.|is not a date and time"),
        ("not-a-month", r": \d+ is not a month: dates here are read"),
        ("no-such-day", r": month \d+ of \d+ has no day \d+"),
        ("not-a-time", r": \d+:\d\d is not a time of day$"),
        ("no-offset", r"has no UTC offset"),
        ("not-a-stage", r"is not a stage lottrace knows"),
        ("not-whole", r"is not a whole number$"),
        ("not-a-number", r"is not a (finite )?number"),
        ("not-lot-kg", r"is not LOT=KG$"),
        ("not-lot-kg-grade", r"is not LOT=KG=GRADE$"),
        ("extra-cells", r"^the row has \d+ cells but the header \d+ columns"),
        ("lat-lon", r"give both latitude and longitude, or neither"),
        ("no-stage", r"^no stage: "),
        ("required", r"is required\b|are required$"),
        ("too-small", r"is too small: it must be"),
        ("too-large", r"is too large: it must be"),
        ("out-of-range", r"is outside -?[\d.]+\.\.-?[\d.]+"),
        ("not-one-of", r"is not one of: |is not true or false"),
        ("not-a-field", r"is not a field of an? \w+ event|is not a known field"),
        ("empty", r"is empty$"),
        ("too-long", r"is too long \(at most"),
        ("bad-format", r"is not valid: "),
    )
)
_CELL = re.compile(r'^column "[^"]*"(?: \(cell [A-Z]+\d+\))?: ')


def row_problem_code(words: str) -> str:
    """The kind of a row problem (a key of :data:`ROW_PROBLEMS`) from its words, with or
    without the column it names: ``column "Kilos": "doce" is not a number`` ->
    ``not-a-number``; ``other`` when no kind reads so."""
    bare = _CELL.sub("", words)
    for code, pattern in _ROW_WORDS:
        if pattern.search(bare):
            return code
    return "other"
