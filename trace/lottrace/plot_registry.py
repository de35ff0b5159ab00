"""The plot registry: plots as ``plot`` events, folded as of a date, and read from files.

A plot is registered, and its record replaced, by a ``plot`` event; nothing
is overwritten, so the registry as of any date is the fold of the plot events
up to then (:func:`registry`). A harvest that carries its plot inline (as
harvests always could) registers that plot when no record exists, or is
matched against the record (a different producer, geometry or area is kept
as a mismatch). :func:`read_plots` reads GeoJSON FeatureCollections, KML and
CSV (lat/lon or WKT) into plot events, keeping how many decimals the source
gave, and :func:`import_plots` appends those that change the registry.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .errors import InvalidEvent, InvalidInput
from .events import Harvest, PlotRecord, parse_event
from .ledger import Ledger, StoredEvent
from .rules import time_key

__all__ = [
    "PlotState",
    "as_of_key",
    "decimals_of",
    "fold",
    "import_plots",
    "read_plots",
    "registry",
    "void_ids",
]

JSON = dict[str, Any]

#: Source property names accepted for each plot field (GeoJSON, KML, CSV), first wins.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "plot_id": ("plot_id", "ProductionPlace", "plot", "id", "name"),
    "producer": ("producer", "ProducerName"),
    "registered_name": ("registered_name", "owner", "titular"),
    "area_ha": ("area_ha", "Area", "area"),
    "country": ("country", "ProducerCountry"),
    "organic_since": ("organic_since",),
}


@dataclass
class PlotState:
    """One plot as the registry holds it at a date."""

    plot_id: str
    producer: str
    registered_name: str | None
    geometry: JSON | None
    area_ha: float | None
    country: str
    organic_since: str | None
    decimals: int | None
    since: str  #: time of the record in force (ISO, as the event gives it)
    event_id: str | None  #: the plot event, or None when a harvest registered it
    source: str  #: where the record came from: FILE:LINE, or ``harvest LOT``
    versions: int = 1  #: records of this plot up to the date
    lots: list[str] = field(default_factory=list)  #: harvest lots from it, in time order
    mismatches: list[str] = field(default_factory=list)  #: harvests that disagree

    def as_dict(self) -> JSON:
        return dict(self.__dict__)


# --------------------------------------------------------------------------- fold


def void_ids(ledger: Ledger) -> set[str]:
    """Ids of events voided by a correction (read from the corrections themselves, as a
    correction of an event naming no lot leaves no row in the ``voided`` table)."""
    return {
        target
        for s in ledger.events_of_types(["correction"])
        if not s.void and isinstance(target := s.event.field("corrects"), str)
    }


def as_of_key(value: str | None) -> str | None:
    """A ``--as-of`` date or time as a time key (a date means the end of that day, UTC).

    >>> as_of_key("2026-12-03"), as_of_key(None)
    ('2026-12-03T23:59:59.999999Z', None)
    """
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.fromisoformat(value).strftime("%Y-%m-%dT23:59:59.999999Z")
        t = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--as-of: {value!r} is not a date or an ISO time") from None
    if t.tzinfo is None:
        raise InvalidInput(f"--as-of: {value!r} has no UTC offset")
    return time_key(t)


def _registry_events(ledger: Ledger, until: str | None) -> list[tuple[str, StoredEvent]]:
    void = void_ids(ledger)
    out = []
    for s in ledger.events_of_types(["plot", "harvest"]):
        if s.void or s.event_id in void:
            continue
        key = time_key(s.event.time)
        if until is None or key <= until:
            out.append((key, s))
    out.sort(key=lambda ks: (ks[0], ks[1].seq))
    return out


def registry(ledger: Ledger, as_of: str | None = None) -> dict[str, PlotState]:
    """Every plot as of a time key (``None``: now), by plot id.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     plots = registry(ledger)
    >>> p = plots["JUM-P0072"]
    >>> p.producer, p.geometry["type"], p.area_ha, p.source, p.lots
    ('JUM-0072', 'Polygon', 4.9, 'harvest JUM-25-H0072-1', ['JUM-25-H0072-1', 'JUM-25-H0072-2'])
    """
    return fold(s for _key, s in _registry_events(ledger, as_of))


def fold(events: Iterable[StoredEvent]) -> dict[str, PlotState]:
    """The registry made by these ``plot`` and ``harvest`` events, given in time order."""
    plots: dict[str, PlotState] = {}
    for s in events:
        ev = s.event
        if isinstance(ev, PlotRecord):
            old = plots.get(ev.plot_id)
            plots[ev.plot_id] = PlotState(
                plot_id=ev.plot_id,
                producer=ev.producer,
                registered_name=ev.registered_name,
                geometry=ev.geometry.model_dump() if ev.geometry else None,
                area_ha=ev.area_ha,
                country=ev.country,
                organic_since=ev.organic_since.isoformat() if ev.organic_since else None,
                decimals=ev.decimals,
                since=ev.time.isoformat(),
                event_id=s.event_id,
                source=ev.source or f"plot event {s.event_id[:12]}",
                versions=old.versions + 1 if old else 1,
                lots=old.lots if old else [],
                mismatches=old.mismatches if old else [],
            )
        elif isinstance(ev, Harvest):
            _harvest(plots, ev)
    return plots


def _harvest(plots: dict[str, PlotState], h: Harvest) -> None:
    inline = h.plot
    geometry = inline.geometry.model_dump() if inline.geometry else None
    st = plots.get(inline.id)
    if st is None:
        plots[inline.id] = PlotState(
            plot_id=inline.id,
            producer=h.producer,
            registered_name=None,
            geometry=geometry,
            area_ha=inline.area_ha,
            country="PE",
            organic_since=None,
            decimals=decimals_of(geometry["coordinates"]) if geometry else None,
            since=h.time.isoformat(),
            event_id=None,
            source=f"harvest {h.lot}",
            lots=[h.lot],
        )
        return
    st.lots.append(h.lot)
    what = []
    if h.producer != st.producer:
        what.append(f"producer {h.producer} (registered: {st.producer})")
    if geometry is not None and _rounded(geometry) != _rounded(st.geometry):
        what.append("its geometry")
    if inline.area_ha is not None and inline.area_ha != st.area_ha:
        what.append(f"area {inline.area_ha:g} ha (registered: {st.area_ha})")
    if what:
        st.mismatches.append(f"harvest {h.lot} gives {', '.join(what)}")


def _rounded(geometry: JSON | None) -> Any:
    def walk(c: Any) -> Any:
        if isinstance(c, list):
            return [walk(x) for x in c]
        return round(float(c), 6)

    return None if geometry is None else (geometry["type"], walk(geometry["coordinates"]))


def decimals_of(coordinates: Any) -> int:
    """The most decimal places any number of nested coordinates has (shortest float text).

    >>> decimals_of([[-78.86174, -5.641382], [-78.1, 2]])
    6
    """
    if isinstance(coordinates, list):
        return max((decimals_of(c) for c in coordinates), default=0)
    if isinstance(coordinates, Decimal):
        exp = coordinates.as_tuple().exponent
        return -exp if isinstance(exp, int) and exp < 0 else 0
    if isinstance(coordinates, float):
        return decimals_of(Decimal(repr(coordinates)))
    return 0


# --------------------------------------------------------------------------- reading


_NUMBER = re.compile(r"-?\d+(?:\.(\d+))?(?:[eE][-+]?\d+)?")


def _text_decimals(text: str) -> int:
    return max((len(m.group(1) or "") for m in _NUMBER.finditer(text)), default=0)


def _pick(props: dict[str, Any], name: str) -> Any:
    for key in FIELD_NAMES[name]:
        value = props.get(key)
        if value is not None and value != "":
            return value
    return None


def _floats(c: Any) -> Any:
    if isinstance(c, list):
        return [_floats(x) for x in c]
    if isinstance(c, Decimal):
        return float(c)
    return c


def _record(
    where: str,
    props: dict[str, Any],
    geometry: JSON | None,
    decimals: int | None,
    time: str,
    site: str,
) -> PlotRecord:
    body: JSON = {"type": "plot", "time": time, "site": site, "source": where}
    for name in FIELD_NAMES:
        value = _pick(props, name)
        if isinstance(value, Decimal):
            value = float(value)
        if name in ("plot_id", "producer") and isinstance(value, int | float):
            value = str(value)
        if value is not None:
            body[name] = value
    for name in ("plot_id", "producer"):
        if name not in body:
            raise InvalidEvent(
                f"{name}: missing (give one of {', '.join(FIELD_NAMES[name])})", where=where
            )
    if geometry is not None:
        body["geometry"] = geometry
        body["decimals"] = decimals
    ev = parse_event(body, where=where)
    assert isinstance(ev, PlotRecord)
    return ev


def read_plots(path: Path, *, time: str, site: str) -> list[tuple[str, PlotRecord]]:
    """Plot events read from a GeoJSON FeatureCollection, a KML file or a CSV file.

    Every record is read before any is returned: the first bad one raises
    (:class:`InvalidInput` or :class:`InvalidEvent`) naming file, line or
    feature, and field.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        return list(_geojson(path.name, raw, time, site))
    if suffix == ".kml":
        return list(_kml(path.name, raw, time, site))
    if suffix in (".csv", ".txt"):
        return list(_csv(path.name, raw, time, site))
    raise InvalidInput(f"{path}: unknown plot file type {suffix!r} (.geojson, .json, .kml, .csv)")


def _geojson(name: str, raw: bytes, time: str, site: str) -> Iterator[tuple[str, PlotRecord]]:
    try:
        doc = json.loads(raw.decode("utf-8-sig"), parse_float=Decimal)
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InvalidInput(f"{name}:1: type: not a GeoJSON FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise InvalidInput(f"{name}:1: features: missing or not a list")
    for i, feat in enumerate(features):
        where = f"{name}:features[{i}]"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            raise InvalidInput(f"{where}: type: not a Feature")
        props = dict(feat.get("properties") or {})
        if "id" in feat and "id" not in props:
            props["id"] = feat["id"]
        geom = feat.get("geometry")
        if geom is not None and not isinstance(geom, dict):
            raise InvalidInput(f"{where}: geometry: not a GeoJSON geometry")
        geometry = None
        decimals = None
        if geom is not None:
            geometry = {"type": geom.get("type"), "coordinates": _floats(geom.get("coordinates"))}
            decimals = decimals_of(geom.get("coordinates"))
        yield where, _record(where, props, geometry, decimals, time, site)


_KML_NS = "{http://www.opengis.net/kml/2.2}"


def _kml(name: str, raw: bytes, time: str, site: str) -> Iterator[tuple[str, PlotRecord]]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidInput(f"{name}:{exc.lineno}: not valid XML: {exc.msg}") from None
    ns = _KML_NS if root.tag.startswith(_KML_NS) else ""
    for pm in root.iter(f"{ns}Placemark"):
        where = f"{name}:{pm.sourceline}"
        props: dict[str, Any] = {}
        nm = pm.find(f"{ns}name")
        if nm is not None and nm.text:
            props["name"] = nm.text.strip()
        for d in pm.iter(f"{ns}Data"):
            v = d.find(f"{ns}value")
            if (key := d.get("name")) and v is not None and v.text:
                props[key] = v.text.strip()
        for d in pm.iter(f"{ns}SimpleData"):
            if (key := d.get("name")) and d.text:
                props[key] = d.text.strip()
        geometry, texts = _kml_geometry(pm, ns, where)
        decimals = max((_text_decimals(t) for t in texts), default=0) if texts else None
        yield where, _record(where, props, geometry, decimals, time, site)


def _kml_positions(text: str | None, where: str) -> list[list[float]]:
    out = []
    for tup in (text or "").split():
        parts = tup.split(",")
        try:
            out.append([float(parts[0]), float(parts[1])])
        except (ValueError, IndexError):
            raise InvalidInput(f"{where}: coordinates: {tup!r} is not lon,lat[,alt]") from None
    return out


def _kml_geometry(pm: Any, ns: str, where: str) -> tuple[JSON | None, list[str]]:
    texts: list[str] = []

    def line_of(el: Any) -> str:
        return f"{where.rsplit(':', 1)[0]}:{el.sourceline}"

    def coords(el: Any) -> list[list[float]]:
        c = el.find(f".//{ns}coordinates")
        if c is None:
            raise InvalidInput(f"{line_of(el)}: coordinates: missing")
        texts.append(c.text or "")
        return _kml_positions(c.text, line_of(c))

    def polygon(el: Any) -> list[list[list[float]]]:
        outer = el.find(f"{ns}outerBoundaryIs")
        if outer is None:
            raise InvalidInput(f"{line_of(el)}: outerBoundaryIs: missing")
        rings = [coords(outer)]
        rings += [coords(inner) for inner in el.findall(f"{ns}innerBoundaryIs")]
        return rings

    polys = list(pm.iter(f"{ns}Polygon"))
    if len(polys) > 1:
        return {"type": "MultiPolygon", "coordinates": [polygon(p) for p in polys]}, texts
    if polys:
        return {"type": "Polygon", "coordinates": polygon(polys[0])}, texts
    pt = pm.find(f".//{ns}Point")
    if pt is not None:
        positions = coords(pt)
        if len(positions) != 1:
            raise InvalidInput(f"{line_of(pt)}: coordinates: a Point has one lon,lat")
        return {"type": "Point", "coordinates": positions[0]}, texts
    return None, texts


def _csv(name: str, raw: bytes, time: str, site: str) -> Iterator[tuple[str, PlotRecord]]:
    from shapely import wkt
    from shapely.errors import ShapelyError
    from shapely.geometry import mapping

    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name}: not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip() for f in reader.fieldnames or []]
    lat_col = next((f for f in ("lat", "latitude", "latitud") if f in fields), None)
    lon_col = next((f for f in ("lon", "lng", "longitude", "longitud") if f in fields), None)
    wkt_col = next((f for f in ("wkt", "WKT", "geometry") if f in fields), None)
    if wkt_col is None and (lat_col is None or lon_col is None):
        raise InvalidInput(f"{name}:1: header: needs lat and lon columns, or a wkt column")
    for row in reader:
        line = reader.line_num
        where = f"{name}:{line}"
        props = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        geometry: JSON | None = None
        decimals: int | None = None
        if wkt_col and props.get(wkt_col):
            try:
                shape = wkt.loads(props[wkt_col])
            except ShapelyError as exc:
                raise InvalidInput(f"{where}: {wkt_col}: not WKT: {exc}") from None
            geometry = _lists(mapping(shape))
            decimals = _text_decimals(props[wkt_col])
        elif lat_col and lon_col and (props.get(lat_col) or props.get(lon_col)):
            try:
                lat, lon = float(props[lat_col]), float(props[lon_col])
            except ValueError:
                bad = lat_col if not _is_float(props[lat_col]) else lon_col
                raise InvalidInput(f"{where}: {bad}: {props[bad]!r} is not a number") from None
            geometry = {"type": "Point", "coordinates": [lon, lat]}
            decimals = max(_text_decimals(props[lat_col]), _text_decimals(props[lon_col]))
        if props.get("area_ha") or props.get("Area"):
            col = "area_ha" if props.get("area_ha") else "Area"
            if not _is_float(props[col].replace(",", ".")):
                raise InvalidInput(f"{where}: {col}: {props[col]!r} is not a number")
            props[col] = float(props[col].replace(",", "."))
        yield where, _record(where, props, geometry, decimals, time, site)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _lists(geo: Any) -> Any:
    if isinstance(geo, dict):
        return {k: _lists(v) for k, v in geo.items()}
    if isinstance(geo, list | tuple):
        return [_lists(v) for v in geo]
    return geo


# --------------------------------------------------------------------------- import


_SAME = ("producer", "registered_name", "geometry", "area_ha", "country", "organic_since")


def _unchanged(ev: PlotRecord, st: PlotState | None) -> bool:
    if st is None or st.event_id is None:
        return False
    new = ev.model_dump(mode="json")
    old = st.as_dict()
    return all(new.get(k) == old.get(k) for k in _SAME)


def import_plots(
    ledger: Ledger, paths: Iterable[Path], *, site: str = "hq:registry", time: str | None = None
) -> JSON:
    """Read plot files and append a ``plot`` event for each plot they change.

    Every file is read and checked before anything is written; a plot whose
    record equals the one in force is skipped (``unchanged``). Returns
    ``added``, ``unchanged`` and ``plots`` (ids added, in file order).
    """
    when = time or datetime.now(UTC).replace(microsecond=0).isoformat()
    read: list[tuple[str, PlotRecord]] = []
    for path in paths:
        read.extend(read_plots(path, time=when, site=site))
    current = registry(ledger)
    seen: dict[str, str] = {}
    new: list[tuple[str, PlotRecord]] = []
    unchanged = 0
    for where, ev in read:
        if ev.plot_id in seen:
            raise InvalidEvent(
                f"plot {ev.plot_id} is also at {seen[ev.plot_id]}", where=where, field="plot_id"
            )
        seen[ev.plot_id] = where
        if _unchanged(ev, current.get(ev.plot_id)):
            unchanged += 1
        else:
            new.append((where, ev))
    report = ledger.append(new)
    return {
        "added": report.added,
        "unchanged": unchanged,
        "duplicates": report.duplicates,
        "plots": [ev.plot_id for _, ev in new],
    }
