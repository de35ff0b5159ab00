"""The event model: one frozen pydantic class per checkpoint, and their canonical form.

This module is the public data contract. Field names here are what users write
in their files, what ``schemas/*.json`` is generated from, and what the event
id hashes, so they change only with a new schema version.

Every event has ``type``, ``time`` (ISO-8601 with a UTC offset), ``site``
(``kind:ID``), and optional ``actor`` and ``note``. The types form a
discriminated union on ``type``; :func:`parse_event` turns a plain dict into
the right class, and :func:`event_id` gives its content address.

>>> e = parse_event({"type": "drying", "time": "2025-06-02T09:30:00-05:00",
...                  "site": "farm:APR-P0231", "lot": "APR-0231-H1", "kg": 212.5})
>>> e.type, e.lot, e.kg
('drying', 'APR-0231-H1', 212.5)
>>> canonical_json(e)
b'{"kg":212.5,"lot":"APR-0231-H1","site":"farm:APR-P0231","time":"2025-06-02T09:30:00-05:00","type":"drying"}'
>>> event_id(e)[:16]
'dba47b0749ce83fe'
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, TypeAlias
from urllib.parse import unquote

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .errors import InvalidEvent

__all__ = [
    "CLAIMS",
    "EVENT_MODELS",
    "LOT_BASE",
    "RECORD_TYPES",
    "REGISTRY_TYPES",
    "STAGE_ORDER",
    "Arrival",
    "Certificate",
    "Correction",
    "Defects",
    "Dispatch",
    "DryMill",
    "Drying",
    "EpcisEvent",
    "EpcisHeader",
    "Event",
    "EventBase",
    "Export",
    "GathererQC",
    "Harvest",
    "HqQC",
    "LotInput",
    "MasterData",
    "MillOutput",
    "Payment",
    "Plot",
    "PlotGeometry",
    "PlotRecord",
    "Premium",
    "Purchase",
    "RiskFinding",
    "RiskResolution",
    "StatementStatus",
    "TransactionCertificate",
    "canonical_json",
    "event_id",
    "lot_id",
    "parse_event",
    "record_time",
]

# --------------------------------------------------------------------------- field types

_ISO_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})$"
)
# What text may not hold, so that no value can forge a line of lottrace's
# output, send terminal escapes or display as something it is not: C0
# controls (but tab, and newline in free text), DEL, C1 controls (U+0080-9F,
# with U+0085 NEL), the line and paragraph separators U+2028/9, and the
# bidirectional controls (U+061C, U+200E/F, U+202A-E, U+2066-9).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f\u2028\u2029{_BIDI}]")
_LONG_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\u2028\u2029{_BIDI}]")
#: What an id may not hold besides: invisible characters (zero-width space,
#: joiners, word joiner, BOM), so two ids that look alike are alike.
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")
#: What text was checked against before the rules above: an event read back
#: from a ledger is read as it was written (only new input meets them).
_STORED_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _iso_time(value: Any) -> Any:
    """Accept only ISO-8601 strings that carry a UTC offset (or aware datetimes)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("time has no UTC offset; write e.g. 2025-06-02T09:30:00-05:00")
        return value
    if not isinstance(value, str):
        raise ValueError("time must be an ISO-8601 string such as 2025-06-02T09:30:00-05:00")
    if not _ISO_TIME.match(value):
        if re.match(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", value):
            raise ValueError(
                f"time {value!r} has no UTC offset; Peru is -05:00, e.g. {value}-05:00"
            )
        raise ValueError(
            f"time {value[:40]!r} is not ISO-8601 with an offset, e.g. 2025-06-02T09:30:00-05:00"
        )
    return value


def _plausible_year(value: datetime) -> datetime:
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = value.year
    if not (1970 <= year <= 2199):
        raise ValueError(f"year {value.year} is not a plausible checkpoint time")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


def _stored(info: ValidationInfo) -> bool:
    """Whether the value is read back from a ledger (``parse_event(..., stored=True)``)."""
    context = info.context
    return isinstance(context, dict) and bool(context.get("stored"))


def _char_problem(c: str) -> str:
    code = f"U+{ord(c):04X}"
    if c == "\n":
        return f"contains a line break ({code}); only note and reason may span lines"
    if c in "\u2028\u2029":
        return f"contains a line or paragraph separator ({code})"
    if unicodedata.category(c) == "Cf":
        kind = "an invisible character" if _INVISIBLE.match(c) else "a bidirectional control"
        return f"contains {kind} ({code}), which makes text display as something it is not"
    return f"contains a control character ({code})"


def _check_chars(value: str, pattern: re.Pattern[str], info: ValidationInfo) -> str:
    if _stored(info):
        if _STORED_CONTROL.search(value):
            raise ValueError("contains a control character")
        return value
    m = pattern.search(value)
    if m is not None:
        raise ValueError(_char_problem(m.group()))
    return value


def _no_control(value: str, info: ValidationInfo) -> str:
    """One-line text: no control characters (tab allowed), no separators, no bidi controls."""
    return _check_chars(value, _CONTROL, info)


def _no_control_long(value: str, info: ValidationInfo) -> str:
    """Free text: as one-line text, but newlines are allowed."""
    return _check_chars(value, _LONG_CONTROL, info)


def _id_text(value: str, info: ValidationInfo) -> str:
    """An id in free text (a producer, a plot, a container): one-line text, visible, NFC."""
    value = _check_chars(value, _CONTROL, info)
    if value.isascii() or _stored(info):  # most ids: nothing invisible, already NFC
        return value
    m = _INVISIBLE.search(value)
    if m is not None:
        raise ValueError(_char_problem(m.group()))
    return unicodedata.normalize("NFC", value)


#: The fields of an EPCIS event that hold ids (strings or lists of them), and
#: the quantity lists whose items name an id in ``epcClass``.
_EPC_FIELDS = ("parentID", "epcList", "childEPCs", "inputEPCList", "outputEPCList")
_ID_OBJECTS = ("readPoint", "bizLocation")


def _foreign_id(value: str, info: ValidationInfo) -> str:
    """An id from a foreign EPCIS document: visible, one line, already NFC.

    It is not normalised but refused if not NFC: the event's Event Hash ID
    covers the id as written, so lottrace cannot rewrite it.
    """
    if _stored(info):
        return value
    m = _CONTROL.search(value) or _INVISIBLE.search(value)
    if m is not None:
        raise ValueError(f"id {value[:80]!r} {_char_problem(m.group())}")
    if not unicodedata.is_normalized("NFC", value):
        raise ValueError(
            f"id {value[:80]!r} is not in Unicode NFC form; its Event Hash ID covers it "
            "as written, so normalise it in the document"
        )
    return value


def _foreign_ids(event: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """Check every id of a foreign EPCIS event (:func:`_foreign_id`)."""
    if _stored(info):
        return event
    ids: list[Any] = []
    for name in _EPC_FIELDS:
        value = event.get(name)
        ids.extend(value if isinstance(value, list) else [value])
    for name in _QUANTITY_LISTS:
        for item in event.get(name) or ():
            if isinstance(item, dict):
                ids.append(item.get("epcClass"))
    for name in _ID_OBJECTS:
        obj = event.get(name)
        if isinstance(obj, dict):
            ids.append(obj.get("id"))
    for value in ids:
        if isinstance(value, str):
            _foreign_id(value, info)
    return event


Timestamp: TypeAlias = Annotated[
    AwareDatetime, BeforeValidator(_iso_time), AfterValidator(_plausible_year)
]
"""An instant with its UTC offset, e.g. ``2025-06-02T09:30:00-05:00``."""

LotCode: TypeAlias = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/#%+-]{0,199}$",
        description="A lot code: ASCII letters, digits and ._:/#%+- , at most 200 characters.",
    ),
]
SiteId: TypeAlias = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z_]{0,29}:[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$",
        description="A location id 'kind:ID', e.g. farm:APR-P0231, gatherer:SIG-03, "
        "hq:APROCASSI, mill:CHICLAYO-1, port:PAITA.",
    ),
]
Text: TypeAlias = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_control)]
"""One line of text: no control characters but tab, no separators or bidi controls."""
IdText: TypeAlias = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_id_text)]
"""An id written as text (a producer, a plot): as :data:`Text`, visible, NFC-normalised."""
LongText: TypeAlias = Annotated[
    str, Field(min_length=1, max_length=2000), AfterValidator(_no_control_long)
]
"""Free text: as :data:`Text`, but it may span lines."""
Kg: TypeAlias = Annotated[
    float, Field(gt=0, le=1e7, description="Kilograms, > 0."), BeforeValidator(_not_bool)
]
Percent: TypeAlias = Annotated[float, Field(ge=0, le=100), BeforeValidator(_not_bool)]

# The checkpoints in the order a lot passes them. A lot's own events never go
# back in this order; dispatch, arrival and correction are not stages.
STAGE_ORDER: dict[str, int] = {
    "harvest": 0,
    "drying": 1,
    "gatherer_qc": 2,
    "hq_qc": 3,
    "dry_mill": 4,
    "export": 5,
}

# --------------------------------------------------------------------------- parts


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class LotInput(_Part):
    """One input lot drawn into the event's lot: ``{"lot": ..., "kg": ...}``."""

    lot: LotCode = Field(description="The input lot code.")
    kg: Kg = Field(description="Kilograms drawn from the input lot.")


class MillOutput(_Part):
    """One graded output lot of a dry mill: ``{"lot": ..., "kg": ..., "grade": ...}``."""

    lot: LotCode = Field(description="The new green-coffee lot code.")
    kg: Kg = Field(description="Kilograms of green coffee in this grade.")
    grade: Text = Field(description="Export grade, e.g. 'Grade 1 SHB', 'Grade 2', 'MCM'.")


def _position(value: list[float]) -> list[float]:
    if len(value) != 2:
        raise ValueError("a position is [lon, lat] (two numbers)")
    lon, lat = value
    if not (-180 <= lon <= 180):
        raise ValueError(f"longitude {lon} is outside -180..180 (positions are [lon, lat])")
    if not (-90 <= lat <= 90):
        raise ValueError(f"latitude {lat} is outside -90..90 (positions are [lon, lat])")
    return value


Position: TypeAlias = Annotated[
    list[Annotated[float, BeforeValidator(_not_bool)]], AfterValidator(_position)
]


class Point(_Part):
    """A GeoJSON Point in WGS84, ``coordinates`` = [lon, lat]."""

    type: Literal["Point"]
    coordinates: Position


class Polygon(_Part):
    """A GeoJSON Polygon in WGS84: closed rings of [lon, lat], the first one the outline."""

    type: Literal["Polygon"]
    coordinates: Annotated[
        list[Annotated[list[Position], Field(min_length=4)]], Field(min_length=1)
    ]

    @model_validator(mode="after")
    def _rings_closed(self) -> Polygon:
        for ring in self.coordinates:
            if ring[0] != ring[-1]:
                raise ValueError("a polygon ring must end where it starts (closed ring)")
        return self


Geometry: TypeAlias = Annotated[Point | Polygon, Field(discriminator="type")]


class Plot(_Part):
    """The plot a harvest comes from."""

    id: IdText = Field(description="The plot's id in the cooperative's register.")
    geometry: Geometry | None = Field(
        default=None,
        description="GeoJSON Point or Polygon, WGS84, [lon, lat]. EUDR needs a polygon "
        "for plots over 4 ha.",
    )
    area_ha: Annotated[float, Field(gt=0, le=10000), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Plot area in hectares."
    )
    altitude_m: Annotated[float, Field(ge=0, le=6000), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Altitude in metres above sea level."
    )
    registered_to: IdText | None = Field(
        default=None,
        description="Whose name the land is registered in (title or possession record); "
        "Café Femenino needs it to be the producer's own.",
    )


class Defects(_Part):
    """Physical defect counts in a 350 g green sample (SCA method)."""

    cat1: Annotated[int, Field(ge=0, le=10000), BeforeValidator(_not_bool)] = Field(
        description="Category 1 (primary)."
    )
    cat2: Annotated[int, Field(ge=0, le=10000), BeforeValidator(_not_bool)] = Field(
        description="Category 2 (secondary)."
    )


# --------------------------------------------------------------------------- events


class EventBase(_Part):
    """Fields every event has."""

    type: str
    time: Timestamp = Field(description="When it happened, ISO-8601 with a UTC offset.")
    site: SiteId
    actor: Text | None = Field(default=None, description="Who logged it.")
    note: LongText | None = Field(default=None, description="Free text.")

    def field(self, name: str) -> Any:
        """A field's value, or None when this type has no such field.

        Reads the instance dict: ``getattr(ev, name, None)`` goes through
        pydantic's slow ``__getattr__`` for every field a type lacks.
        """
        return self.__dict__.get(name)

    # The lot the event is about, if any.
    @property
    def subject(self) -> str | None:
        return self.__dict__.get("lot")

    @property
    def drawn(self) -> tuple[LotInput, ...]:
        """The input lots this event draws kg from."""
        return tuple(self.__dict__.get("inputs") or ())

    @property
    def formed(self) -> tuple[tuple[str, float | None], ...]:
        """The lots this event creates, with their kg when known."""
        if self.drawn and self.subject is not None:
            kg = self.__dict__.get("kg")
            return ((self.subject, kg if kg is not None else sum(i.kg for i in self.drawn)),)
        return ()

    @property
    def touched(self) -> tuple[str, ...]:
        """Lots the event names besides its subject, inputs and outputs (EPCIS events)."""
        return ()

    @property
    def stage(self) -> int | None:
        return STAGE_ORDER.get(self.type)

    def kg_for(self, lot: str) -> float | None:
        """The kg this event states for ``lot``: drawn from it, formed as it, or its own."""
        for i in self.drawn:
            if i.lot == lot:
                return i.kg
        formed = dict(self.formed)
        if lot in formed:
            return formed[lot]
        kg = self.__dict__.get("kg")
        return kg if isinstance(kg, float) else None


_INPUTS_DOC = "Input lots `[{lot, kg}]`: the event forms its `lot` from them."

#: The claims a lot can carry (see ``docs/rules.md``, "Claims").
CLAIMS = (
    "organic",
    "fairtrade",
    "rainforest",
    "cafe_femenino",
    "single_producer",
    "eudr_cleared",
)
Claim: TypeAlias = Literal[
    "organic", "fairtrade", "rainforest", "cafe_femenino", "single_producer", "eudr_cleared"
]
_Claims: TypeAlias = Annotated[
    list[Claim], Field(min_length=1, max_length=6), AfterValidator(lambda v: sorted(set(v)))
]
_CLAIMS_DOC = (
    "Declares the lot this event forms a claim lot: it must hold each claim named "
    "(organic, fairtrade, rainforest, cafe_femenino, single_producer, eudr_cleared), "
    "or the event is refused (rule claim-broken)."
)
_Inputs: TypeAlias = Annotated[list[LotInput], Field(min_length=1, max_length=5000)]


class Harvest(EventBase):
    """Cherry picked from one plot: creates the lot."""

    type: Literal["harvest"] = "harvest"
    lot: LotCode
    producer: IdText = Field(description="The producer's id or name.")
    plot: Plot = Field(
        description="The plot: `id`, `geometry`, `area_ha`, `altitude_m` (see Plot)."
    )
    kg: Kg = Field(description="Kilograms of cherry.")
    variety: Text | None = Field(default=None, description="e.g. Bourbon, Typica, Caturra.")
    process: Literal["washed", "natural", "honey"] | None = Field(
        default=None, description="Post-harvest process."
    )
    certifications: (
        Annotated[
            list[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")]],
            Field(max_length=20),
            AfterValidator(lambda v: sorted(set(v))),
        ]
        | None
    ) = Field(
        default=None,
        description="e.g. organic, fairtrade, rainforest, cafe_femenino (sorted on input).",
    )
    women_producer: bool | None = Field(
        default=None, description="True for a women producer's micro-lot (e.g. JUMARP)."
    )
    claims: _Claims | None = Field(default=None, description=_CLAIMS_DOC)

    @property
    def formed(self) -> tuple[tuple[str, float | None], ...]:
        return ((self.lot, self.kg),)


class Drying(EventBase):
    """Cherry or wet parchment dried to parchment."""

    type: Literal["drying"] = "drying"
    lot: LotCode
    kg: Kg = Field(description="Kilograms of dry parchment.")
    method: Literal["covered", "open", "raised_bed", "mechanical"] | None = Field(
        default=None, description="How it was dried; covered beds are the APROCASSI norm."
    )
    moisture_pct: Percent | None = Field(default=None, description="Moisture at the end, %.")
    started: Timestamp | None = Field(default=None, description="When drying started.")
    inputs: _Inputs | None = Field(default=None, description=_INPUTS_DOC)
    claims: _Claims | None = Field(default=None, description=_CLAIMS_DOC)

    @model_validator(mode="after")
    def _started_before_end(self) -> Drying:
        if self.started is not None and self.started > self.time:
            raise ValueError("'started' is after 'time' (drying cannot end before it starts)")
        return self


class _QC(EventBase):
    lot: LotCode
    result: Literal["accepted", "rejected", "hold"] = Field(
        description="The verdict; a rejected lot cannot move on until re-inspected."
    )
    kg: Kg | None = Field(default=None, description="Kilograms weighed at this checkpoint.")
    moisture_pct: Percent | None = Field(default=None, description="Moisture, %.")
    water_activity: Annotated[float, Field(ge=0, le=1), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Water activity a_w, 0 to 1 (target under 0.65)."
    )
    defects: Defects | None = Field(default=None, description="Defects per 350 g.")
    cup_score: Percent | None = Field(default=None, description="SCA cup score, 0-100.")
    yield_pct: Percent | None = Field(
        default=None,
        description="Exportable green yield of a parchment sample, % (rendimiento).",
    )
    inspector: Text | None = Field(default=None, description="Who inspected the sample.")
    reason: LongText | None = Field(
        default=None, description="Why the lot was rejected or put on hold."
    )
    inputs: _Inputs | None = Field(default=None, description=_INPUTS_DOC)
    claims: _Claims | None = Field(default=None, description=_CLAIMS_DOC)


class GathererQC(_QC):
    """Quality control at the local gatherer (acopio); may merge producers' lots."""

    type: Literal["gatherer_qc"] = "gatherer_qc"


class HqQC(_QC):
    """Quality control at the cooperative's headquarters; may blend collection lots."""

    type: Literal["hq_qc"] = "hq_qc"


class DryMill(EventBase):
    """Hulling and grading: input parchment lots become graded green lots."""

    type: Literal["dry_mill"] = "dry_mill"
    inputs: _Inputs = Field(description="The parchment lots milled, `[{lot, kg}]`.")
    outputs: Annotated[list[MillOutput], Field(min_length=1, max_length=100)] = Field(
        description="The graded green lots made, `[{lot, kg, grade}]`."
    )
    rejects_kg: Annotated[float, Field(ge=0, le=1e7), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Kilograms removed as husk, defects and screenings."
    )
    claims: _Claims | None = Field(default=None, description=_CLAIMS_DOC)

    @model_validator(mode="after")
    def _distinct_outputs(self) -> DryMill:
        codes = [o.lot for o in self.outputs]
        if len(set(codes)) != len(codes):
            raise ValueError("output lot codes must be distinct")
        return self

    @property
    def formed(self) -> tuple[tuple[str, float | None], ...]:
        return tuple((o.lot, o.kg) for o in self.outputs)


class Export(EventBase):
    """Shipment of a green lot from the port."""

    type: Literal["export"] = "export"
    lot: LotCode
    kg: Kg = Field(description="Kilograms of green coffee shipped.")
    container: IdText | None = Field(
        default=None, description="Container number, e.g. MSKU1234565."
    )
    bags: Annotated[int, Field(gt=0, le=100000), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Number of bags."
    )
    bag_kg: Annotated[float, Field(gt=0, le=1000), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Kilograms per bag; Peru ships 69 kg bags."
    )
    ico_mark: Text | None = Field(default=None, description="ICO identification mark.")
    vessel: Text | None = Field(default=None, description="Vessel name.")
    destination: Text | None = Field(default=None, description="Destination port or country.")
    buyer: Text | None = Field(default=None, description="The buyer.")
    inputs: _Inputs | None = Field(default=None, description=_INPUTS_DOC)
    claims: _Claims | None = Field(default=None, description=_CLAIMS_DOC)


class Dispatch(EventBase):
    """A lot leaves a site on the road; splits a leg into waiting and transit time."""

    type: Literal["dispatch"] = "dispatch"
    lot: LotCode
    to_site: SiteId | None = Field(default=None, description="Where the truck is headed.")
    vehicle: Text | None = Field(default=None, description="Truck plate or carrier.")


class Arrival(EventBase):
    """A lot reaches a site from the road."""

    type: Literal["arrival"] = "arrival"
    lot: LotCode
    from_site: SiteId | None = Field(default=None, description="Where it came from.")


class Correction(EventBase):
    """Voids an earlier event, as an EPCIS errorDeclaration does. Edits nothing."""

    type: Literal["correction"] = "correction"
    corrects: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="The event_id of the event it voids."
    )
    reason: Literal["did_not_occur", "incorrect_data"] = Field(
        description="did_not_occur, or incorrect_data (then log the right event)."
    )


# --------------------------------------------------------------------------- records
# Certificates, purchases, payments and premiums describe things rather than move
# a lot: they are no checkpoint, touch no lot's state or timeline (nothing drawn
# or formed, no (lot, role) in ``rules.facts_of``) and are read by registries
# (``Ledger.events_of_types``). The lot they name is in ``refs``, which the rules
# check exists.


def _money_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an amount, not true/false")
    if isinstance(value, float):  # 12.5 as typed, never its binary expansion
        return repr(value)
    if isinstance(value, str) and "," in value:
        raise ValueError(f"{value[:20]!r} is not an amount; write decimals with a dot, e.g. 12.50")
    return value


Money: TypeAlias = Annotated[
    Decimal,
    BeforeValidator(_money_text),
    Field(gt=0, le=Decimal("1e12"), max_digits=18, decimal_places=6, allow_inf_nan=False),
]
"""An amount of money, > 0, as a decimal (``"12.50"``); read and summed as Decimal, never float."""
Currency: TypeAlias = Annotated[
    str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. PEN or USD.")
]
Scheme: TypeAlias = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9_]{1,40}$",
        description="The scheme as harvests list it: organic, fairtrade, rainforest, "
        "cafe_femenino ...",
    ),
]
_Ids: TypeAlias = Annotated[list[IdText], Field(max_length=5000)]


class _Record(EventBase):
    """An event that records a fact about lots or people, not a checkpoint of a lot.

    Its ``subject`` is the lot it names (the log's ``lot`` column), but it
    involves no lot: ``rules.facts_of`` gives it no (lot, role), so it folds
    into no lot's state or timeline.
    """

    @property
    def drawn(self) -> tuple[LotInput, ...]:
        return ()

    @property
    def formed(self) -> tuple[tuple[str, float | None], ...]:
        return ()

    @property
    def stage(self) -> int | None:
        return None

    def kg_for(self, lot: str) -> float | None:
        return None

    @property
    def refs(self) -> tuple[tuple[str, str, int, str], ...]:
        """The lots it names: ``(lot, field, stage it must have reached, its harvest's producer)``.

        The producer is ``""`` when any lot will do.
        """
        lot = self.__dict__.get("lot")
        return ((lot, "lot", 0, ""),) if isinstance(lot, str) else ()


class CertificateScope(_Part):
    """What a certificate covers: producers, plots, sites (``kind:ID``) and products."""

    producers: _Ids = Field(default_factory=list, description="Producer ids it covers.")
    plots: _Ids = Field(default_factory=list, description="Plot ids it covers.")
    sites: list[SiteId] = Field(
        default_factory=list, max_length=5000, description="Sites it covers (gatherers, mills)."
    )
    products: _Ids = Field(
        default_factory=list, description="Products, e.g. 'green coffee', 'parchment'."
    )

    @model_validator(mode="after")
    def _something(self) -> CertificateScope:
        if not (self.producers or self.plots or self.sites):
            raise ValueError("a scope names at least one producer, plot or site")
        return self


class Certificate(_Record):
    """A certificate held by a cooperative, producer or processor, valid for a span of dates."""

    type: Literal["certificate"] = "certificate"
    holder: IdText = Field(description="Who holds it (a cooperative, a producer, a mill).")
    scheme: Scheme
    standard: Text | None = Field(
        default=None, description="The standard, e.g. 'EU 2018/848', 'USDA NOP', 'FLO'."
    )
    number: IdText = Field(description="The certificate number.")
    issued_by: Text = Field(description="The certification body, e.g. 'Control Union Peru'.")
    valid_from: date = Field(description="First day it is valid (YYYY-MM-DD).")
    valid_to: date = Field(description="Last day it is valid (YYYY-MM-DD).")
    scope: CertificateScope

    @model_validator(mode="after")
    def _span(self) -> Certificate:
        if self.valid_to < self.valid_from:
            raise ValueError("'valid_to' is before 'valid_from'")
        return self


class TransactionCertificate(_Record):
    """A certificate for one shipment: a NOP import certificate, an EU COI reference."""

    type: Literal["transaction_certificate"] = "transaction_certificate"
    lot: LotCode = Field(description="The exported lot it certifies.")
    scheme: Scheme
    kind: Literal["nop_import_certificate", "eu_coi", "fairtrade_tc", "other"] = Field(
        description="nop_import_certificate, eu_coi (EU certificate of inspection), "
        "fairtrade_tc or other."
    )
    reference: IdText = Field(description="Its number or TRACES reference.")
    issued_by: Text | None = Field(default=None, description="Who issued it.")
    issued: date | None = Field(default=None, description="Date of issue.")

    @property
    def refs(self) -> tuple[tuple[str, str, int, str], ...]:
        return ((self.lot, "lot", STAGE_ORDER["export"], ""),)


class Deduction(_Part):
    """Kilograms deducted from a purchase: ``{"kind": "moisture", "kg": 3.5}``."""

    kind: Literal["moisture", "defects", "tare", "other"]
    kg: Kg


class Purchase(_Record):
    """Coffee bought from a producer at the gatherer: the receipt, linked to the lot."""

    type: Literal["purchase"] = "purchase"
    lot: LotCode = Field(description="The lot it pays for (the producer's lot).")
    producer: IdText = Field(description="The producer paid.")
    receipt: IdText = Field(description="The receipt number.")
    kg: Kg = Field(description="Kilograms weighed (gross).")
    deductions: Annotated[list[Deduction], Field(max_length=20)] = Field(
        default_factory=list, description="Kilograms deducted: moisture, defects, tare."
    )
    price_per_kg: Money = Field(description="Price per kg paid, after deductions.")
    currency: Currency
    season: Text | None = Field(default=None, description="The season, e.g. 2025.")

    @property
    def refs(self) -> tuple[tuple[str, str, int, str], ...]:
        return ((self.lot, "lot", 0, self.producer),)

    @model_validator(mode="after")
    def _net(self) -> Purchase:
        if sum(d.kg for d in self.deductions) >= self.kg:
            raise ValueError("deductions weigh as much as the coffee bought")
        return self

    @property
    def net_kg(self) -> Decimal:
        """Kilograms paid for: weighed less every deduction."""
        return _dec(self.kg) - sum((_dec(d.kg) for d in self.deductions), Decimal(0))

    @property
    def amount(self) -> Decimal:
        """What the receipt pays: net kg x price, to the cent (half up)."""
        return (self.net_kg * self.price_per_kg).quantize(CENT, rounding=ROUND_HALF_UP)


class Payment(_Record):
    """Money paid to a producer: an advance, the final payment or a premium."""

    type: Literal["payment"] = "payment"
    producer: IdText = Field(description="The producer paid.")
    kind: Literal["advance", "final", "premium"]
    method: Literal["cash", "bank_transfer", "collector"] = Field(
        description="cash, bank_transfer, or collector (paid through a collector)."
    )
    collector: IdText | None = Field(default=None, description="The collector, if via one.")
    amount: Money
    currency: Currency
    reference: IdText = Field(description="Receipt number or bank reference.")
    lot: LotCode | None = Field(default=None, description="The lot it pays for, if one.")
    contract: IdText | None = Field(
        default=None, description="A premium payment: the export contract it shares out."
    )
    season: Text | None = Field(default=None, description="The season, e.g. 2025.")

    @model_validator(mode="after")
    def _collector(self) -> Payment:
        if self.method == "collector" and self.collector is None:
            raise ValueError("a payment via a collector names the 'collector'")
        return self


class PremiumLine(_Part):
    """One premium of a contract: a rate per lb or per kg of green, or a flat amount."""

    kind: Literal["fairtrade", "organic", "cafe_femenino", "quality", "other"]
    rate: Money = Field(description="The rate, in the premium's currency.")
    per: Literal["lb", "kg", "flat"] = Field(
        description="lb (per pound of green), kg (per kg of green) or flat (the whole amount)."
    )


#: Kilograms in a pound (avoirdupois, exact).
KG_PER_LB = Decimal("0.45359237")
CENT = Decimal("0.01")


def _dec(x: float) -> Decimal:
    """A weight as the decimal it was written as (12.5 -> Decimal('12.5'))."""
    return Decimal(repr(x))


class Premium(_Record):
    """Premiums the cooperative received for an exported lot under an export contract."""

    type: Literal["premium"] = "premium"
    lot: LotCode = Field(description="The exported lot the premiums are paid on.")
    contract: IdText = Field(description="The export contract.")
    kg: Kg = Field(description="Kilograms of green coffee the premiums are paid on.")
    currency: Currency
    lines: Annotated[list[PremiumLine], Field(min_length=1, max_length=20)] = Field(
        description="The premiums: `[{kind, rate, per}]`; rates come from the contract."
    )
    buyer: Text | None = Field(default=None, description="Who paid them.")
    fob_price_per_lb: Money | None = Field(
        default=None,
        description="The contract's FOB price per pound of green, in the premium's currency "
        "(for the farm-gate share of the export price).",
    )

    @property
    def refs(self) -> tuple[tuple[str, str, int, str], ...]:
        return ((self.lot, "lot", STAGE_ORDER["export"], ""),)

    def line_amount(self, line: PremiumLine) -> Decimal:
        """One line's amount, to the cent (half up): rate x pounds, x kg, or flat."""
        if line.per == "flat":
            base = Decimal(1)
        elif line.per == "kg":
            base = _dec(self.kg)
        else:
            base = _dec(self.kg) / KG_PER_LB
        return (line.rate * base).quantize(CENT, rounding=ROUND_HALF_UP)

    @property
    def amount(self) -> Decimal:
        """The premium received: the sum of its lines' amounts."""
        return sum((self.line_amount(x) for x in self.lines), Decimal(0))


_BEYOND_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


def record_time(event_time: str) -> str:
    """The ``time`` of an ``epcis`` record: its ``eventTime`` cut to microseconds.

    >>> record_time("2022-04-29T08:00:00.0000000+00:00")
    '2022-04-29T08:00:00.000000+00:00'
    """
    return _BEYOND_MICROSECONDS.sub(r"\1", event_time)


#: The base of the URIs lottrace gives its own lots in EPCIS (``epcis.Identifiers``).
LOT_BASE = "https://lottrace.org/lot/"


def lot_id(uri: str) -> str:
    """The lot an EPCIS id names: lottrace's own lot URI is the lot code it stands for.

    So a partner's event on a lot lottrace exported reaches that lot, and its
    rules (a rejected lot cannot be drawn) hold there too.

    >>> lot_id("https://lottrace.org/lot/APR-25%2FHQ%231"), lot_id("urn:epc:id:sgtin:1.2.3")
    ('APR-25/HQ#1', 'urn:epc:id:sgtin:1.2.3')
    """
    if uri.startswith(LOT_BASE):
        code = unquote(uri[len(LOT_BASE) :])
        if _LOT_CODE.fullmatch(code):  # else it stands for no lot code: kept as it is
            return code
    return uri


_LOT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#%+-]{0,199}")


_QUANTITY_LISTS = ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")


class EpcisEvent(EventBase):
    """An event from a foreign EPCIS 2.0 document, kept as it came (see ``epcis.py``).

    It obeys the same rules as every event on every lot it names (a first
    sight of an id creates that lot; ``rules.check``); its lot lineage joins the graph:
    a TransformationEvent's inputs flow into its outputs, and an
    AggregationEvent ADD's children into its parent (an AssociationEvent
    ties a device or asset to an object, not material, so it makes no link).
    Ids are the document's own (EPC URIs, Digital Link URIs, any URI).
    """

    type: Literal["epcis"] = "epcis"
    site: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_foreign_id)] = Field(
        description="The event's bizLocation or readPoint id, or 'epcis:unknown'."
    )
    hash_id: Annotated[str, Field(pattern=r"^ni:///sha-256;[0-9a-f]{64}\?ver=CBV2\.0$")] = Field(
        description="The CBV 2.0 EPCIS Event Hash ID of the event."
    )
    context: dict[str, str] | None = Field(
        default=None, description="The namespace prefixes of the document it came in."
    )
    partner_event_id: (
        Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_foreign_id)] | None
    ) = Field(
        default=None,
        description="The partner's eventID, given back on export (none: the hash_id is used).",
    )
    event: Annotated[dict[str, Any], AfterValidator(_foreign_ids)] = Field(
        description="The EPCIS event, as a JSON-LD object."
    )

    def _ids(self, *fields: str) -> list[str]:
        out: list[str] = []
        for name in fields:
            value = self.event.get(name)
            if isinstance(value, str):
                out.append(lot_id(value))
            for item in value if isinstance(value, list) else ():
                if isinstance(item, str):
                    out.append(lot_id(item))
                elif isinstance(item, dict) and isinstance(item.get("epcClass"), str):
                    out.append(lot_id(item["epcClass"]))
        return list(dict.fromkeys(out))

    def _kg(self, lot: str, *fields: str) -> float | None:
        for name in fields:
            for item in self.event.get(name) or ():
                if (
                    isinstance(item, dict)
                    and isinstance(item.get("epcClass"), str)
                    and lot_id(item["epcClass"]) == lot
                    and item.get("uom") == "KGM"
                    and isinstance(item.get("quantity"), int | float)
                    and not isinstance(item.get("quantity"), bool)
                    and item["quantity"] > 0
                ):
                    return float(item["quantity"])
        return None

    @property
    def declares_error(self) -> bool:
        """Whether it is an error declaration: it says an event was wrong, not what happened.

        Such an event carries no lineage and states no weights; it is kept
        in the log, and its corrective events carry what did happen.
        """
        return "errorDeclaration" in self.event

    def _flow(self) -> tuple[list[str], list[str]]:
        if self.declares_error:
            return [], []
        kind = self.event.get("type")
        if kind == "TransformationEvent":
            ins = self._ids("inputEPCList", "inputQuantityList")
            outs = self._ids("outputEPCList", "outputQuantityList")
        elif kind == "AggregationEvent" and self.event.get("action") == "ADD":
            ins = self._ids("childEPCs", "childQuantityList")
            outs = self._ids("parentID")
        else:
            return [], []
        if not ins or not outs:
            return [], []
        return [i for i in ins if i not in outs], outs

    @property
    def drawn(self) -> tuple[LotInput, ...]:
        """Input ids, weighted by their kg where given in KGM, else 1."""
        ins, _ = self._flow()
        fields = ("inputQuantityList", "childQuantityList")
        return tuple(LotInput.model_construct(lot=i, kg=self._kg(i, *fields) or 1.0) for i in ins)

    @property
    def formed(self) -> tuple[tuple[str, float | None], ...]:
        """Output ids with their kg: a transformation's stated in KGM; an aggregation's
        parent holds the kg its children are packed with (None where none is stated)."""
        ins, outs = self._flow()
        if not ins:
            return ()
        if self.event.get("type") == "AggregationEvent":
            packed = [kg for i in ins if (kg := self._kg(i, "childQuantityList")) is not None]
            return tuple((o, sum(packed) if packed else None) for o in outs)
        return tuple((o, self._kg(o, "outputQuantityList")) for o in outs)

    def kg_for(self, lot: str) -> float | None:
        """The kg the event states for ``lot`` in any quantity list (KGM only).

        None for an error declaration and for an AssociationEvent, which ties a
        device or asset to an object and says nothing of its weight.
        """
        if self.declares_error or self.event.get("type") == "AssociationEvent":
            return None
        return self._kg(lot, *_QUANTITY_LISTS)

    @property
    def adds_to(self) -> tuple[str, ...]:
        """The formed ids it may add to when they exist: an AggregationEvent ADD's parent.

        A pallet (or container) is aggregated again and again; any other
        event that forms an existing lot is refused (``lot-exists``).
        """
        if self.event.get("type") == "AggregationEvent":
            return tuple(lot for lot, _kg in self.formed)
        return ()

    @property
    def ours(self) -> tuple[str, ...]:
        """The lot codes it names by lottrace's own URI for them (see :func:`lot_id`)."""
        found: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, str):
                if value.startswith(LOT_BASE) and (code := lot_id(value)) != value:
                    found.append(code)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)

        walk(self.event)
        return tuple(dict.fromkeys(found))

    @property
    def instances(self) -> tuple[str, ...]:
        """The input ids named as EPC instances (``childEPCs``, ``inputEPCList``), not classes.

        An aggregation packs such an instance whole: nothing of it is used up.
        """
        ins, _ = self._flow()
        named = set(self._ids("childEPCs", "inputEPCList"))
        return tuple(i for i in ins if i in named)

    @property
    def unstated(self) -> tuple[str, ...]:
        """The input ids it draws without stating their kg (no quantity in KGM)."""
        fields = ("inputQuantityList", "childQuantityList")
        return tuple(i.lot for i in self.drawn if self._kg(i.lot, *fields) is None)

    @property
    def touched(self) -> tuple[str, ...]:
        """Every id the event names: EPCs, classes, parents, children, inputs, outputs."""
        if self.declares_error:
            return ()
        return tuple(
            self._ids(
                "epcList",
                "quantityList",
                "parentID",
                "childEPCs",
                "childQuantityList",
                "inputEPCList",
                "inputQuantityList",
                "outputEPCList",
                "outputQuantityList",
            )
        )


def _foreign_element(element: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """A vocabulary element names its id (a URI), and its children are URIs."""
    ident = element.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError("a vocabulary element needs an 'id' (a URI)")
    _foreign_id(ident, info)
    for child in element.get("children") or ():
        if isinstance(child, str):
            _foreign_id(child, info)
    return element


class MasterData(EventBase):
    """One version of one EPCIS master-data vocabulary element (see ``masterdata.py``).

    A location, party, product class ... with its attributes and children,
    as a partner's ``epcisHeader.epcisMasterData`` gave it, at the time of
    the document that carried it. A later version of the same element
    (same ``vocabulary`` and ``element.id``) is a later event; the current
    view is the latest by time. It names no lot, so it joins no lineage and
    no lot's timeline.
    """

    type: Literal["master_data"] = "master_data"
    site: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_foreign_id)] = Field(
        default="epcis:unknown", description="Always 'epcis:unknown': master data has no site."
    )
    vocabulary: Annotated[
        str, Field(min_length=1, max_length=2000), AfterValidator(_foreign_id)
    ] = Field(description="The vocabulary type, e.g. urn:epcglobal:epcis:vtype:BusinessLocation.")
    element: Annotated[dict[str, Any], AfterValidator(_foreign_element)] = Field(
        description="The vocabulary element as JSON-LD: id, attributes [{id, attribute}], "
        "children [ids], extension keys."
    )
    context: dict[str, str] | None = Field(
        default=None, description="The namespace prefixes the element uses."
    )


class EpcisHeader(EventBase):
    """What a partner's EPCIS document says about itself: sender, receiver, ids.

    ``header`` holds the document's ``id``, ``sender``, ``receiver``,
    ``instanceIdentifier`` (in XML, the SBDH's) and the ``epcisHeader``
    extension keys, as JSON-LD. One per imported document that has any;
    ``time`` is the document's ``creationDate``. It names no lot.
    """

    type: Literal["epcis_header"] = "epcis_header"
    site: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_foreign_id)] = Field(
        default="epcis:unknown", description="Always 'epcis:unknown': a document has no site."
    )
    header: dict[str, Any] = Field(
        description="The document's id, sender, receiver, instanceIdentifier and epcisHeader "
        "extension keys, as JSON-LD."
    )
    context: dict[str, str] | None = Field(
        default=None, description="The namespace prefixes the header uses."
    )


# --------------------------------------------------------------------------- EUDR registry
# Events that describe things (plots, deforestation findings, due diligence
# statements) rather than move a lot: they name no lot as subject, input or
# output, so they never enter a lot's timeline, its checkpoints or its delays.


def _geo_position(value: Any, where: str) -> None:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    ):
        raise ValueError(f"{where}: a position is [lon, lat] (two numbers)")
    lon, lat = value
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"{where}: [{lon}, {lat}] is outside [-180..180, -90..90]")


def _geo_rings(value: Any, where: str) -> None:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: a polygon is a list of rings")
    for i, ring in enumerate(value):
        if not isinstance(ring, list) or len(ring) < 3:
            raise ValueError(f"{where}[{i}]: a ring has at least three positions")
        for j, p in enumerate(ring):
            _geo_position(p, f"{where}[{i}][{j}]")


class PlotGeometry(_Part):
    """A plot's GeoJSON Point, Polygon or MultiPolygon (WGS84, [lon, lat]) as its source gave it.

    Unlike a harvest's inline geometry, rings need not be closed here: the
    registry keeps what it was given, and ``lottrace plots check`` says what
    is wrong with it.
    """

    type: Literal["Point", "Polygon", "MultiPolygon"]
    coordinates: list[Any] = Field(description="GeoJSON coordinates for the type, [lon, lat].")

    @model_validator(mode="after")
    def _shape(self) -> PlotGeometry:
        c = self.coordinates
        if self.type == "Point":
            _geo_position(c, "coordinates")
        elif self.type == "Polygon":
            _geo_rings(c, "coordinates")
        else:
            if not c:
                raise ValueError("coordinates: a MultiPolygon has at least one polygon")
            for k, poly in enumerate(c):
                _geo_rings(poly, f"coordinates[{k}]")
        return self


class PlotRecord(EventBase):
    """A plot registered, or its record updated: the whole record as of ``time``.

    The registry as of a date is the last record of each plot up to then;
    nothing is overwritten. A harvest carrying its plot inline registers it if
    no record exists.
    """

    type: Literal["plot"] = "plot"
    plot_id: IdText = Field(description="The plot's id in the cooperative's register.")
    producer: IdText = Field(description="The producer's id or name.")
    registered_name: Text | None = Field(
        default=None, description="The name the land is registered in (title holder)."
    )
    geometry: PlotGeometry | None = Field(
        default=None, description="GeoJSON Point, Polygon or MultiPolygon, WGS84, [lon, lat]."
    )
    area_ha: Annotated[float, Field(gt=0, le=10000), BeforeValidator(_not_bool)] | None = Field(
        default=None, description="Declared area in hectares."
    )
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] = Field(
        default="PE", description="ISO 3166-1 alpha-2 country of production."
    )
    organic_since: date | None = Field(
        default=None, description="Date the plot's organic transition started."
    )
    decimals: Annotated[int, Field(ge=0, le=30)] | None = Field(
        default=None,
        description="The most decimal places any coordinate had in the source text "
        "(None when unknown).",
    )
    source: Text | None = Field(default=None, description="Where the record was read (FILE:LINE).")


class RiskFinding(EventBase):
    """A deforestation risk result for one plot from an external analysis (e.g. FAO Whisp)."""

    type: Literal["eudr_finding"] = "eudr_finding"
    plot_id: IdText = Field(description="The plot analysed.")
    risk: Literal["low", "medium", "high"] = Field(description="The analysis' risk class.")
    dataset: Text = Field(description="The analysis or dataset, e.g. 'whisp', 'gfw'.")
    dataset_version: Text = Field(description="Its version, as the analysis states it.")
    indicators: Annotated[list[Text], Field(max_length=100)] | None = Field(
        default=None, description="The indicators that raised the risk, as the analysis names them."
    )
    source: Text | None = Field(default=None, description="Where the result was read (FILE:LINE).")


class RiskResolution(EventBase):
    """Closes a deforestation finding with the evidence that answers it."""

    type: Literal["eudr_resolution"] = "eudr_resolution"
    finding: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="The event_id of the eudr_finding it resolves."
    )
    evidence: Literal[
        "agroforestry", "not_forest", "before_cutoff", "field_visit", "false_positive"
    ] = Field(
        description="agroforestry (shade-grown coffee is not forest under the regulation), "
        "not_forest, before_cutoff (cleared before 31 Dec 2020), field_visit, false_positive."
    )
    document: Text | None = Field(
        default=None, description="The evidence document (file name, URL or archive reference)."
    )


class StatementStatus(EventBase):
    """A due diligence statement's life in the EU information system (TRACES)."""

    type: Literal["dds"] = "dds"
    status: Literal["submitted", "amended", "withdrawn", "rejected"] = Field(
        description="submitted, amended, withdrawn, or rejected by the authority."
    )
    statement_lots: Annotated[list[LotCode], Field(min_length=1, max_length=1000)] = Field(
        description="The lots the statement covers."
    )
    operator: Text | None = Field(default=None, description="The operator who filed it.")
    reference: IdText | None = Field(default=None, description="The reference number.")
    verification: IdText | None = Field(default=None, description="The verification number.")
    message: LongText | None = Field(default=None, description="The authority's message.")

    @model_validator(mode="after")
    def _numbers(self) -> StatementStatus:
        if self.status in ("submitted", "amended") and not (self.reference and self.verification):
            raise ValueError(
                f"a {self.status} statement has its reference and verification numbers"
            )
        if self.status == "rejected" and not self.message:
            raise ValueError("a rejected statement has the authority's message")
        return self


#: Event types that describe things rather than move a lot (never a checkpoint).
REGISTRY_TYPES = frozenset(("plot", "eudr_finding", "eudr_resolution", "dds"))


Event: TypeAlias = Annotated[
    Harvest
    | Drying
    | GathererQC
    | HqQC
    | DryMill
    | Export
    | Dispatch
    | Arrival
    | Correction
    | EpcisEvent
    | MasterData
    | EpcisHeader
    | Certificate
    | TransactionCertificate
    | Purchase
    | Payment
    | Premium
    | PlotRecord
    | RiskFinding
    | RiskResolution
    | StatementStatus,
    Field(discriminator="type"),
]

EVENT_MODELS: dict[str, type[EventBase]] = {
    m.model_fields["type"].default: m
    for m in (
        Harvest,
        Drying,
        GathererQC,
        HqQC,
        DryMill,
        Export,
        Dispatch,
        Arrival,
        Correction,
        EpcisEvent,
        MasterData,
        EpcisHeader,
        Certificate,
        TransactionCertificate,
        Purchase,
        Payment,
        Premium,
        PlotRecord,
        RiskFinding,
        RiskResolution,
        StatementStatus,
    )
}

#: The record types: no checkpoint of a lot (see ``_Record``).
RECORD_TYPES = ("certificate", "transaction_certificate", "purchase", "payment", "premium")

_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)
_STORED = {"stored": True}

# --------------------------------------------------------------------------- parse & hash


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for i, p in enumerate(loc):
        if i == 0 and p in EVENT_MODELS:  # the union's tag
            continue
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif p in ("Point", "Polygon"):
            continue
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


_LOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#%+-]{0,59}$")
_PATTERN_HELP = {
    "lot": "a lot code uses ASCII letters, digits and ._:/#%+- (at most 200)",
    "site": "a site is kind:ID, e.g. farm:APR-P0231 or port:PAITA",
    "to_site": "a site is kind:ID, e.g. farm:APR-P0231 or port:PAITA",
    "from_site": "a site is kind:ID, e.g. farm:APR-P0231 or port:PAITA",
    "corrects": "an event id is 64 lowercase hex characters ('history LOT --json' shows them)",
    "certifications": "a certification is lowercase letters, digits and _ (e.g. organic)",
}


def parse_event(data: Any, *, where: str = "", stored: bool = False) -> EventBase:
    """Validate a plain dict into its event class.

    With ``stored``, the dict is an event read back from a ledger: it is read
    as it was written, without the text rules added since (no control, bidi
    or invisible characters, NFC ids), which apply to new input only.

    Raises
    ------
    InvalidEvent
        Naming ``where`` (e.g. ``file.csv:12``), the lot, and the first bad field.

    >>> parse_event({"type": "drying", "time": "2025-06-02T09:30:00",
    ...              "site": "farm:X", "lot": "L1", "kg": 1})
    Traceback (most recent call last):
    ...
    lottrace.errors.InvalidEvent: lot L1: field 'time': time '2025-06-02T09:30:00' has no UTC offset; Peru is -05:00, e.g. 2025-06-02T09:30:00-05:00
    """
    if not isinstance(data, dict):
        raise InvalidEvent(
            f"an event must be a JSON object, not {type(data).__name__}", where=where
        )
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in EVENT_MODELS:
        known = ", ".join(EVENT_MODELS)
        shown = repr(kind)[:40] if kind is not None else "missing"
        raise InvalidEvent(
            f"field 'type': {shown}; expected one of {known}", where=where, field="type"
        )
    try:
        return _ADAPTER.validate_python(  # type: ignore[no-any-return]
            data, context=_STORED if stored else None
        )
    except ValidationError as exc:
        problems = error_words(exc, kind)
        lot = data.get("lot")
        prefix = f"lot {lot}: " if isinstance(lot, str) and _LOT_RE.match(lot) else ""
        missing = [f for f, _m, _v, t in problems if t == "missing"]
        if len(missing) > 1 and problems[0][3] == "missing":
            names = ", ".join(f"'{m}'" for m in missing)
            raise InvalidEvent(
                f"{prefix}fields {names} are required",
                where=where,
                field=missing[0],
                problems=[(f, m, v) for f, m, v, _t in problems],
            ) from None
        field, msg = problems[0][0], problems[0][1]
        raise InvalidEvent(
            f"{prefix}field '{field}': {msg}",
            where=where,
            field=field,
            problems=[(f, m, v) for f, m, v, _t in problems],
        ) from None


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _shown_input(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text[:40], ensure_ascii=False)


def error_words(exc: ValidationError, kind: str = "") -> list[tuple[str, str, Any, str]]:
    """Every problem pydantic found, as ``(field, words, the value given, error type)``.

    The one place pydantic's error types become plain words a quality manager
    reads (``"doce" is not a number``): no message lottrace prints says
    "Input should be" or names a model class. One problem per field, in the
    order pydantic found them.
    """
    out: list[tuple[str, str, Any, str]] = []
    seen: set[str] = set()
    for err in exc.errors(include_url=False):
        field = _field_path(err["loc"])
        if field in seen:  # a union reports each branch: the first is enough
            continue
        seen.add(field)
        out.append((field, _words(err, field, kind), err.get("input"), err["type"]))
    return out


def _words(err: Any, field: str, kind: str) -> str:
    t, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    shown = _shown_input(value) if value is not None else ""
    if t == "missing":
        return "is required"
    if t == "value_error" or t == "assertion_error":
        return str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if t in ("float_parsing", "int_parsing", "float_type", "int_type", "int_from_float"):
        if t == "int_from_float":
            return f"{shown} is not a whole number"
        if isinstance(value, str) and "," in value:
            return f"{shown} is not a number; write decimals with a dot, e.g. 12.5"
        return f"{shown} is not a number" if shown else "is not a number"
    if t == "finite_number":
        return "is not a finite number"
    if t in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": "more than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[t]
        limit = next(iter(ctx.values()), "")
        return f"{_num(value)} is too {'small' if t.startswith('greater') else 'large'}: it must be {words} {_num(limit)}"
    if t in ("literal_error", "enum"):
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"{shown} is not one of: {expected.replace(' or ', ', ')}"
    if t == "string_pattern_mismatch":
        help_ = _PATTERN_HELP.get(field.split(".")[-1].split("[")[0], "see the data model")
        return f"{str(value)[:60]!r} is not valid: {help_}"
    if t == "bool_parsing" or t == "bool_type":
        return f"{str(value)[:30]!r} is not true or false (yes/no)"
    if t == "extra_forbidden":
        return f"is not a field of a {kind} event" if kind else "is not a known field"
    if t in ("string_too_short", "too_short"):
        return "is empty" if not value else "has too few items"
    if t in ("string_too_long", "too_long"):
        limit = ctx.get("max_length", "")
        return (
            f"is too long (at most {limit} {'characters' if t == 'string_too_long' else 'items'})"
        )
    if t in ("model_type", "model_attributes_type", "dict_type"):
        return f"{shown} is not a group of fields (give {field}.<part> columns, or a JSON object)"
    if t in ("list_type", "tuple_type"):
        return f"{shown} is not a list"
    if t in ("string_type", "string_unicode"):
        return f"{shown} is not text"
    if t in ("union_tag_invalid", "union_tag_not_found"):
        return f"{shown} is not a known kind (e.g. Point or Polygon)"
    if t.startswith(("datetime", "date", "time")):
        return f"{shown} is not a date and time with its UTC offset, e.g. 2025-06-02T09:30:00-05:00"
    return f"{shown} is not valid" if shown else "is not valid"


def canonical_json(event: EventBase) -> bytes:
    """The canonical bytes of an event: sorted keys, no nulls, no spaces, UTF-8."""
    return orjson.dumps(
        event.model_dump(mode="json", exclude_none=True), option=orjson.OPT_SORT_KEYS
    )


def event_id(event: EventBase | bytes) -> str:
    """The content address of an event: sha256 of its canonical JSON, in hex."""
    body = event if isinstance(event, bytes) else canonical_json(event)
    return hashlib.sha256(body).hexdigest()
