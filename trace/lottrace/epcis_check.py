"""Check the structure of an EPCIS 2.0 JSON-LD document before anything is imported.

One job: find the first place where a parsed ``EPCISDocument`` or
``EPCISQueryDocument`` breaks the rules of the EPCIS 2.0 JSON binding, and
name it by its JSON path (``$.epcisBody.eventList[3].eventTime``). The rules
are those of GS1's EPCIS 2.0 JSON Schema, written out here as code so that
lottrace needs neither the schema file nor a schema library at run time:

- the document: ``@context``, ``type``, ``schemaVersion`` and
  ``creationDate`` (EPCISDocument), ``epcisBody.eventList`` or
  ``epcisBody.queryResults.resultsBody.eventList``;
- every event: a known event type or a URI, ``eventTime`` and
  ``eventTimeZoneOffset``, ``action`` where the type needs one, the
  identifier lists each type needs, and each field's shape;
- values: URIs (a scheme, then no spaces), RFC 3339 date-times, the CBV 2.0
  bare words for ``bizStep``, ``disposition``, business transaction,
  source/destination types and measurement types (any other value must be a
  URI), units ``^[A-Z0-9]{2,3}$``;
- field names: an EPCIS field of that event type, or a namespaced
  extension (``prefix:name`` or a full IRI), also inside ``ilmd``,
  ``errorDeclaration``, sensor elements and sensor reports.

It does not resolve ``@context`` or check that prefixes are declared; the
hash (``epcis_hash.py``) does that for the events it hashes. That module is
a standalone leaf raising :class:`ValueError`; :func:`event_hash` and
:func:`document_hashes` are how lottrace calls it, the one place where its
errors become an :class:`~lottrace.errors.InvalidEvent`.

>>> first_problem({"type": "EPCISDocument"})
('$', "'@context' is required")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from .epcis_hash import document_hash_ids, event_hash_id
from .errors import InvalidEvent

__all__ = ["EPCIS_CONTEXT", "document_hashes", "event_hash", "first_problem"]

#: GS1's EPCIS 2.0 JSON-LD context: the one lottrace writes and knows built in.
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"

Problem = tuple[str, str]

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]*$")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_OFFSET = re.compile(r"^[+-]((0\d|1[0-3]):[0-5]\d|14:00)$")
_UOM = re.compile(r"^[A-Z0-9]{2,3}$")
_VERSION = re.compile(r"^\d+(\.\d+)*$")
_OLD_CBV = re.compile(r"^(urn:epcglobal:cbv|https?://ns\.gs1\.org/cbv/)")
_GS1_VOC = re.compile(r"^https?://(www\.)?gs1\.org/voc/")

_BIZ_STEPS = frozenset(
    [
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
        "sensor_reporting",
        "sampling",
    ]
)
_DISPOSITIONS = frozenset(
    [
        "active",
        "container_closed",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "no_pedigree_match",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unknown",
        "available",
        "completeness_verified",
        "completeness_inferred",
        "conformant",
        "container_open",
        "mismatch_instance",
        "mismatch_class",
        "mismatch_quantity",
        "needs_replacement",
        "non_conformant",
        "unavailable",
    ]
)
_BTT = frozenset(
    [
        "bol",
        "cert",
        "desadv",
        "inv",
        "pedigree",
        "po",
        "poc",
        "prodorder",
        "recadv",
        "rma",
        "testprd",
        "testres",
        "upevt",
    ]
)
_SDT = frozenset(("owning_party", "possessing_party", "location"))
_ERROR_REASONS = frozenset(("did_not_occur", "incorrect_data"))
_COMPONENTS = frozenset(
    [
        "x",
        "y",
        "z",
        "axial_distance",
        "azimuth",
        "height",
        "spherical_radius",
        "polar_angle",
        "elevation_angle",
        "easting",
        "northing",
        "latitude",
        "longitude",
        "altitude",
    ]
)
_ALERTS = frozenset(("ALARM_CONDITION", "ERROR_CONDITION"))
_MEASUREMENTS = frozenset(
    [
        "AbsoluteHumidity",
        "AbsorbedDose",
        "AbsorbedDoseRate",
        "Acceleration",
        "Radioactivity",
        "Altitude",
        "AmountOfSubstance",
        "AmountOfSubstancePerUnitVolume",
        "Angle",
        "AngularAcceleration",
        "AngularMomentum",
        "AngularVelocity",
        "Area",
        "Capacitance",
        "Conductance",
        "Conductivity",
        "Count",
        "Density",
        "Dimensionless",
        "DoseEquivalent",
        "DoseEquivalentRate",
        "DynamicViscosity",
        "ElectricCharge",
        "ElectricCurrent",
        "ElectricCurrentDensity",
        "ElectricFieldStrength",
        "Energy",
        "Exposure",
        "Force",
        "Frequency",
        "Illuminance",
        "Inductance",
        "Irradiance",
        "KinematicViscosity",
        "Length",
        "LinearMomentum",
        "Luminance",
        "LuminousFlux",
        "LuminousIntensity",
        "MagneticFlux",
        "MagneticFluxDensity",
        "MagneticVectorPotential",
        "Mass",
        "MassConcentration",
        "MassFlowRate",
        "MassPerAreaTime",
        "MemoryCapacity",
        "MolalityOfSolute",
        "MolarEnergy",
        "MolarMass",
        "MolarVolume",
        "Power",
        "Pressure",
        "RadiantFlux",
        "RadiantIntensity",
        "RelativeHumidity",
        "Resistance",
        "Resistivity",
        "SolidAngle",
        "SpecificVolume",
        "Speed",
        "SurfaceDensity",
        "SurfaceTension",
        "Temperature",
        "Time",
        "Torque",
        "Voltage",
        "Volume",
        "VolumeFlowRate",
        "VolumeFraction",
        "VolumetricFlux",
        "Wavenumber",
    ]
)

_COMMON = frozenset(
    [
        "@context",
        "type",
        "eventTime",
        "recordTime",
        "eventTimeZoneOffset",
        "eventID",
        "certificationInfo",
        "errorDeclaration",
    ]
)
_WHERE_WHY = ("bizStep", "disposition", "readPoint", "bizLocation", "bizTransactionList")
_SRC_DST = ("sourceList", "destinationList", "sensorElementList")
#: The fields of each event type besides the common ones.
_FIELDS: dict[str, frozenset[str]] = {
    "ObjectEvent": frozenset(
        (
            "action",
            "epcList",
            "quantityList",
            "persistentDisposition",
            "ilmd",
            *_WHERE_WHY,
            *_SRC_DST,
        )
    ),
    "AggregationEvent": frozenset(
        ("parentID", "childEPCs", "childQuantityList", "action", *_WHERE_WHY, *_SRC_DST)
    ),
    "AssociationEvent": frozenset(
        ("parentID", "childEPCs", "childQuantityList", "action", *_WHERE_WHY, *_SRC_DST)
    ),
    "TransactionEvent": frozenset(
        ("parentID", "epcList", "quantityList", "action", *_WHERE_WHY, *_SRC_DST)
    ),
    "TransformationEvent": frozenset(
        (
            "inputEPCList",
            "inputQuantityList",
            "outputEPCList",
            "outputQuantityList",
            "transformationID",
            "persistentDisposition",
            "ilmd",
            *_WHERE_WHY,
            *_SRC_DST,
        )
    ),
}
_NEEDS_ACTION = ("ObjectEvent", "AggregationEvent", "AssociationEvent", "TransactionEvent")
_SENSOR_METADATA = frozenset(
    [
        "time",
        "deviceID",
        "deviceMetadata",
        "rawData",
        "startTime",
        "endTime",
        "dataProcessingMethod",
        "bizRules",
    ]
)
_SENSOR_REPORT = frozenset(
    [
        "type",
        "exception",
        "deviceID",
        "deviceMetadata",
        "rawData",
        "dataProcessingMethod",
        "bizRules",
        "time",
        "microorganism",
        "chemicalSubstance",
        "coordinateReferenceSystem",
        "value",
        "component",
        "stringValue",
        "booleanValue",
        "hexBinaryValue",
        "uriValue",
        "minValue",
        "maxValue",
        "meanValue",
        "sDev",
        "percRank",
        "percValue",
        "uom",
    ]
)


class _Found(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _fail(path: str, message: str) -> _Found:
    return _Found(path, message)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_uri(value: Any) -> bool:
    return isinstance(value, str) and bool(_URI.match(value)) and not _BAD_ESCAPE.search(value)


def _uri(value: Any, path: str) -> None:
    if not _is_uri(value):
        raise _fail(path, f"{_show(value)} is not a URI")


def _time(value: Any, path: str) -> None:
    ok = isinstance(value, str) and bool(_TIME.match(value))
    if ok:
        try:
            datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        except ValueError:
            ok = False
    if not ok:
        raise _fail(path, f"{_show(value)} is not an RFC 3339 date-time with an offset")


def _number(value: Any, path: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _fail(path, f"{_show(value)} is not a number")


def _word_or_uri(words: frozenset[str], what: str, exclude: re.Pattern[str] = _OLD_CBV) -> Any:
    def check(value: Any, path: str) -> None:
        if isinstance(value, str) and value in words:
            return
        if _is_uri(value) and not exclude.match(value):
            return
        raise _fail(path, f"{_show(value)} is not a CBV {what} nor a URI of your own")

    return check


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, f"must be a JSON object, not {_kind(value)}")
    return value


def _list(value: Any, path: str, *, min_items: int = 0) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, f"must be a JSON array, not {_kind(value)}")
    if len(value) < min_items:
        raise _fail(path, f"must hold at least {min_items} item(s)")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "true/false"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def _names(obj: dict[str, Any], allowed: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in allowed and not _is_uri(key):
            raise _fail(
                f"{path}.{key}",
                "is not a field here (an extension needs a namespace, e.g. ex:name)",
            )


def _required(obj: dict[str, Any], names: tuple[str, ...], path: str) -> None:
    for name in names:
        if name not in obj:
            raise _fail(path, f"'{name}' is required")


def _each(value: Any, path: str, check: Callable[[Any, str], None], *, min_items: int = 0) -> None:
    for i, item in enumerate(_list(value, path, min_items=min_items)):
        check(item, f"{path}[{i}]")


_bizstep = _word_or_uri(_BIZ_STEPS, "business step")
_disposition = _word_or_uri(_DISPOSITIONS, "disposition")
_btt = _word_or_uri(_BTT, "business transaction type")
_sdt = _word_or_uri(_SDT, "source/destination type")
_reason = _word_or_uri(_ERROR_REASONS, "error reason")
_component = _word_or_uri(_COMPONENTS, "component")
_measurement = _word_or_uri(_MEASUREMENTS, "measurement type", _GS1_VOC)
_alert = _word_or_uri(_ALERTS, "sensor alert type", _GS1_VOC)


def _quantity(value: Any, path: str) -> None:
    q = _object(value, path)
    _required(q, ("epcClass",), path)
    for key in q:
        if key not in ("epcClass", "quantity", "uom"):
            raise _fail(f"{path}.{key}", "is not a field of a quantity element")
    _uri(q["epcClass"], f"{path}.epcClass")
    if "quantity" in q:
        _number(q["quantity"], f"{path}.quantity")
    if "uom" in q and not (isinstance(q["uom"], str) and _UOM.match(q["uom"])):
        raise _fail(f"{path}.uom", f"{_show(q['uom'])} is not a UN/CEFACT unit code")


def _location(value: Any, path: str) -> None:
    loc = _object(value, path)
    _required(loc, ("id",), path)
    _uri(loc["id"], f"{path}.id")


def _biz_transaction(value: Any, path: str) -> None:
    bt = _object(value, path)
    _required(bt, ("bizTransaction",), path)
    for key in bt:
        if key not in ("type", "bizTransaction"):
            raise _fail(f"{path}.{key}", "is not a field of a business transaction")
    if "type" in bt:
        _btt(bt["type"], f"{path}.type")
    _uri(bt["bizTransaction"], f"{path}.bizTransaction")


def _source_or_destination(name: str) -> Any:
    def check(value: Any, path: str) -> None:
        sd = _object(value, path)
        _required(sd, ("type", name), path)
        for key in sd:
            if key not in ("type", name):
                raise _fail(f"{path}.{key}", f"is not a field of a {name}")
        _sdt(sd["type"], f"{path}.type")
        _uri(sd[name], f"{path}.{name}")

    return check


def _persistent(value: Any, path: str) -> None:
    pd = _object(value, path)
    if not pd.keys() & {"set", "unset"}:
        raise _fail(path, "needs 'set' or 'unset'")
    for key, items in pd.items():
        if key not in ("set", "unset"):
            raise _fail(f"{path}.{key}", "is not a field of a persistentDisposition")
        _each(items, f"{path}.{key}", _disposition, min_items=1)


def _sensor_metadata(value: Any, path: str) -> None:
    md = _object(value, path)
    _names(md, _SENSOR_METADATA, path)
    for key, v in md.items():
        if key in ("time", "startTime", "endTime"):
            _time(v, f"{path}.{key}")
        elif key in _SENSOR_METADATA:
            _uri(v, f"{path}.{key}")


_REPORT_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "type": _measurement,
    "exception": _alert,
    "time": _time,
    "component": _component,
    "stringValue": lambda v, p: None if isinstance(v, str) else _raise(p, "must be a string"),
    "booleanValue": lambda v, p: (
        None if isinstance(v, bool) else _raise(p, "must be true or false")
    ),
    "hexBinaryValue": lambda v, p: (
        None
        if isinstance(v, str) and re.fullmatch(r"[A-Fa-f0-9]+", v)
        else _raise(p, "must be hexadecimal")
    ),
    "uom": lambda v, p: None if isinstance(v, str) else _raise(p, "must be a string"),
    **dict.fromkeys(
        ("value", "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue"), _number
    ),
    **dict.fromkeys(
        (
            "deviceID",
            "deviceMetadata",
            "rawData",
            "dataProcessingMethod",
            "bizRules",
            "microorganism",
            "chemicalSubstance",
            "coordinateReferenceSystem",
            "uriValue",
        ),
        _uri,
    ),
}


def _raise(path: str, message: str) -> None:
    raise _fail(path, message)


def _sensor_report(value: Any, path: str) -> None:
    report = _object(value, path)
    _required(report, ("type",), path)
    _names(report, _SENSOR_REPORT, path)
    for key, v in report.items():
        if key in _REPORT_CHECKS:
            _REPORT_CHECKS[key](v, f"{path}.{key}")


def _sensor_element(value: Any, path: str) -> None:
    element = _object(value, path)
    _required(element, ("sensorReport",), path)
    _names(element, frozenset(("sensorMetadata", "sensorReport")), path)
    if "sensorMetadata" in element:
        _sensor_metadata(element["sensorMetadata"], f"{path}.sensorMetadata")
    _each(element["sensorReport"], f"{path}.sensorReport", _sensor_report, min_items=1)


def _error_declaration(value: Any, path: str) -> None:
    ed = _object(value, path)
    _required(ed, ("declarationTime",), path)
    _names(ed, frozenset(("declarationTime", "reason", "correctiveEventIDs")), path)
    _time(ed["declarationTime"], f"{path}.declarationTime")
    if "reason" in ed:
        _reason(ed["reason"], f"{path}.reason")
    if "correctiveEventIDs" in ed:
        _each(ed["correctiveEventIDs"], f"{path}.correctiveEventIDs", _uri)


def _ilmd(value: Any, path: str) -> None:
    _names(_object(value, path), frozenset(), path)


def _certification(value: Any, path: str) -> None:
    if isinstance(value, list):
        _each(value, path, _uri)
    else:
        _uri(value, path)


def _context(value: Any, path: str) -> None:
    def one(item: Any, p: str) -> None:
        if not isinstance(item, dict):
            _uri(item, p)

    if isinstance(value, list):
        _each(value, path, one)
    else:
        one(value, path)


_FIELD_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "@context": _context,
    "eventTime": _time,
    "recordTime": _time,
    "eventTimeZoneOffset": lambda v, p: (
        None
        if isinstance(v, str) and _OFFSET.match(v)
        else _raise(p, f"{_show(v)} is not a time zone offset like -05:00")
    ),
    "eventID": _uri,
    "certificationInfo": _certification,
    "errorDeclaration": _error_declaration,
    "action": lambda v, p: (
        None
        if v in ("OBSERVE", "ADD", "DELETE")
        else _raise(p, f"{_show(v)} is not OBSERVE, ADD or DELETE")
    ),
    "bizStep": _bizstep,
    "disposition": _disposition,
    "persistentDisposition": _persistent,
    "readPoint": _location,
    "bizLocation": _location,
    "bizTransactionList": lambda v, p: _each(v, p, _biz_transaction),
    "sourceList": lambda v, p: _each(v, p, _source_or_destination("source")),
    "destinationList": lambda v, p: _each(v, p, _source_or_destination("destination")),
    "sensorElementList": lambda v, p: _each(v, p, _sensor_element),
    "ilmd": _ilmd,
    "parentID": _uri,
    "transformationID": _uri,
    **{
        k: (lambda v, p: _each(v, p, _uri))
        for k in ("epcList", "childEPCs", "inputEPCList", "outputEPCList")
    },
    **{
        k: (lambda v, p: _each(v, p, _quantity))
        for k in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList")
    },
}


def _nonempty(event: dict[str, Any], *names: str) -> bool:
    return any(isinstance(event.get(n), list) and event[n] for n in names)


def _event(value: Any, path: str) -> None:
    event = _object(value, path)
    _required(event, ("type",), path)
    kind = event["type"]
    if not isinstance(kind, str) or (kind not in _FIELDS and not _is_uri(kind)):
        raise _fail(f"{path}.type", f"{_show(kind)} is not an EPCIS 2.0 event type")
    _required(event, ("eventTime", "eventTimeZoneOffset"), path)
    if kind in _NEEDS_ACTION:
        _required(event, ("action",), path)
    if kind == "AssociationEvent":
        _required(event, ("parentID",), path)
    if kind == "TransactionEvent":
        _required(event, ("bizTransactionList",), path)
    if kind in _FIELDS:
        _names(event, _COMMON | _FIELDS[kind], path)
    for key, v in event.items():
        if key in _FIELD_CHECKS:
            _FIELD_CHECKS[key](v, f"{path}.{key}")
    if kind == "TransactionEvent" and not event["bizTransactionList"]:
        raise _fail(f"{path}.bizTransactionList", "must hold at least 1 item(s)")
    if kind == "ObjectEvent":
        if not (
            "epcList" in event
            or _nonempty(event, "quantityList")
            or (_nonempty(event, "sensorElementList") and "readPoint" in event)
        ):
            raise _fail(
                path,
                "an ObjectEvent needs an epcList, a quantityList, or sensor data and a readPoint",
            )
        if "ilmd" in event and event.get("action") != "ADD":
            raise _fail(f"{path}.ilmd", "only an ADD ObjectEvent carries ilmd")
    elif kind in ("AggregationEvent", "AssociationEvent"):
        if event["action"] != "DELETE" and not _nonempty(event, "childEPCs", "childQuantityList"):
            raise _fail(path, f"an {kind} needs childEPCs or a childQuantityList (unless DELETE)")
    elif kind == "TransactionEvent":
        if event["action"] != "DELETE" and not (
            "epcList" in event or _nonempty(event, "quantityList")
        ):
            raise _fail(
                path, "a TransactionEvent needs an epcList or a quantityList (unless DELETE)"
            )
    elif kind == "TransformationEvent" and not _nonempty(
        event, "inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList"
    ):
        raise _fail(path, "a TransformationEvent needs inputs or outputs")


_DOC_FIELDS = frozenset(
    [
        "@context",
        "id",
        "type",
        "schemaVersion",
        "creationDate",
        "instanceIdentifier",
        "sender",
        "receiver",
        "epcisHeader",
        "epcisBody",
    ]
)


def _document(doc: Any) -> None:
    path = "$"
    d = _object(doc, path)
    _required(d, ("@context", "type"), path)
    kind = d["type"]
    if kind not in ("EPCISDocument", "EPCISQueryDocument"):
        raise _fail("$.type", f"{_show(kind)} is not EPCISDocument or EPCISQueryDocument")
    _context(d["@context"], "$.@context")
    _names(d, _DOC_FIELDS, path)
    if "id" in d:
        _uri(d["id"], "$.id")
    if kind == "EPCISDocument":
        _required(d, ("schemaVersion", "creationDate", "epcisBody"), path)
    else:
        _required(d, ("epcisBody",), path)
    if "schemaVersion" in d and not (
        isinstance(d["schemaVersion"], str) and _VERSION.match(d["schemaVersion"])
    ):
        raise _fail("$.schemaVersion", f'{_show(d["schemaVersion"])} is not a version like "2.0"')
    if "creationDate" in d:
        _time(d["creationDate"], "$.creationDate")
    for name in ("instanceIdentifier", "sender", "receiver"):
        if name in d and not isinstance(d[name], str):
            raise _fail(f"$.{name}", f"must be a string, not {_kind(d[name])}")
    if "epcisHeader" in d:
        _epcis_header(_object(d["epcisHeader"], "$.epcisHeader"))
    body = _object(d["epcisBody"], "$.epcisBody")
    if kind == "EPCISDocument":
        _required(body, ("eventList",), "$.epcisBody")
        events_path = "$.epcisBody.eventList"
        events = body["eventList"]
    else:
        _required(body, ("queryResults",), "$.epcisBody")
        results = _object(body["queryResults"], "$.epcisBody.queryResults")
        _required(results, ("queryName", "resultsBody"), "$.epcisBody.queryResults")
        rb = _object(results["resultsBody"], "$.epcisBody.queryResults.resultsBody")
        _required(rb, ("eventList",), "$.epcisBody.queryResults.resultsBody")
        events_path = "$.epcisBody.queryResults.resultsBody.eventList"
        events = rb["eventList"]
    _each(events, events_path, _event)


def first_problem(doc: Any) -> Problem | None:
    """The JSON path and description of the first problem in ``doc``, or None.

    Parameters
    ----------
    doc : Any
        A parsed JSON document.

    Returns
    -------
    tuple of (str, str) or None
        ``(path, message)``, e.g. ``("$.epcisBody.eventList[0].action",
        "'CREATE' is not OBSERVE, ADD or DELETE")``; None when the document
        is a well-formed EPCIS 2.0 document.

    Examples
    --------
    >>> doc = {"@context": "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    ...        "type": "EPCISDocument", "schemaVersion": "2.0",
    ...        "creationDate": "2025-06-02T09:30:00-05:00",
    ...        "epcisBody": {"eventList": [{"type": "ObjectEvent", "action": "ADD",
    ...            "eventTime": "22-07-2026", "eventTimeZoneOffset": "-05:00", "epcList": []}]}}
    >>> first_problem(doc)
    ('$.epcisBody.eventList[0].eventTime', "'22-07-2026' is not an RFC 3339 date-time with an offset")
    """
    deep = _too_deep(doc, "$", 0)
    if deep is not None:
        return deep, f"nested deeper than {MAX_DEPTH} levels"
    try:
        _document(doc)
    except _Found as found:
        return found.path, found.message
    return None


#: How deep objects and lists may nest in a document. GS1's examples nest
#: about 8 levels; a far deeper event could be stored but not written out
#: again (JSON writers stop at some depth), breaking every read of it.
MAX_DEPTH = 48


def _too_deep(value: Any, path: str, depth: int) -> str | None:
    """The path of the first value nested deeper than :data:`MAX_DEPTH`, or None."""
    if depth > MAX_DEPTH:
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list):
                found = _too_deep(item, f"{path}.{key}", depth + 1)
                if found is not None:
                    return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict | list):
                found = _too_deep(item, f"{path}[{i}]", depth + 1)
                if found is not None:
                    return found
    return None


def _epcis_header(header: dict[str, Any]) -> None:
    """``epcisHeader``: its master data as GS1's schema has it (vocabularies of
    elements, each with an ``id``; attributes ``{id, attribute}``; children URIs)."""
    _names(header, frozenset(["epcisMasterData"]), "$.epcisHeader")
    if "epcisMasterData" not in header:
        return
    path = "$.epcisHeader.epcisMasterData"
    master = _object(header["epcisMasterData"], path)
    vocabularies = _list(master.get("vocabularyList", []), f"{path}.vocabularyList")
    for i, vocabulary in enumerate(vocabularies):
        vpath = f"{path}.vocabularyList[{i}]"
        v = _object(vocabulary, vpath)
        _required(v, ("type",), vpath)
        _uri(v["type"], f"{vpath}.type")
        elements = _list(v.get("vocabularyElementList", []), f"{vpath}.vocabularyElementList")
        for j, element in enumerate(elements):
            epath = f"{vpath}.vocabularyElementList[{j}]"
            e = _object(element, epath)
            _required(e, ("id",), epath)
            _uri(e["id"], f"{epath}.id")
            for k, attribute in enumerate(_list(e.get("attributes", []), f"{epath}.attributes")):
                apath = f"{epath}.attributes[{k}]"
                a = _object(attribute, apath)
                _required(a, ("id",), apath)
                _uri(a["id"], f"{apath}.id")
                if "attribute" in a and (
                    isinstance(a["attribute"], bool | list) or a["attribute"] is None
                ):
                    raise _fail(
                        f"{apath}.attribute",
                        f"must be a number, a string or an object, not {_kind(a['attribute'])}",
                    )
            _each(e.get("children", []), f"{epath}.children", _uri)


def event_hash(
    event: Mapping[str, Any], context: Mapping[str, str] | None = None, *, where: str = ""
) -> str:
    """The CBV 2.0 Event Hash ID of one event (:func:`lottrace.epcis_hash.event_hash_id`).

    Raises
    ------
    InvalidEvent
        If the event cannot be hashed (an undeclared prefix, a bad time ...),
        naming `where` and why.

    Examples
    --------
    >>> event_hash({"type": "ObjectEvent", "action": "OBSERVE",
    ...             "eventTime": "2020-03-04T11:00:30+01:00"})
    'ni:///sha-256;1d0d468717725aa74a85175f9b53ed797dc1cd8a492386b6852232ea672b2bbd?ver=CBV2.0'
    >>> event_hash({"type": "ObjectEvent", "nope:x": 1}, where="in.jsonl:3")
    Traceback (most recent call last):
    ...
    lottrace.errors.InvalidEvent: in.jsonl:3: cannot compute the Event Hash ID: cannot hash field 'nope:x' in event: namespace prefix 'nope' is not declared in @context
    """
    with _unhashable(where, ()):
        return event_hash_id(event, context)


def document_hashes(doc: Mapping[str, Any], *, where: str, remote: Sequence[str] = ()) -> list[str]:
    """The Event Hash ID of every event of a document, in order.

    :func:`lottrace.epcis_hash.document_hash_ids`, as lottrace calls it.
    `remote` are the document's ``@context`` URLs that no local copy
    resolved: an undeclared prefix's error names them, with how to register one.

    Raises
    ------
    InvalidEvent
        If the document has no event list or an event cannot be hashed,
        naming `where` and the event's position.
    """
    with _unhashable(where, remote):
        return document_hash_ids(doc)


@contextmanager
def _unhashable(where: str, remote: Sequence[str]) -> Iterator[None]:
    """Where the hash's :class:`ValueError` becomes lottrace's :class:`InvalidEvent`, once."""
    try:
        yield
    except ValueError as exc:
        hint = (
            f" ({', '.join(remote)}: lottrace never fetches a context; register a local "
            "copy with 'lottrace epcis context add URL FILE')"
            if remote and "not declared" in str(exc)
            else ""
        )
        raise InvalidEvent(
            f"cannot compute the Event Hash ID: {exc}{hint}", where=where, field="event"
        ) from None
