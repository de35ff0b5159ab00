"""Read event files (JSON Lines, a JSON array, or CSV) into validated events.

Each record comes out with ``where`` = ``FILE:LINE`` so every error can point
at the spreadsheet row. Files are streamed: a million-line file is never held
in memory as a million events.

CSV conventions, for spreadsheets kept by quality managers:

- one header row; each column is a field, and dotted headers nest
  (``plot.id``, ``defects.cat1``);
- empty cells are absent fields;
- ``type`` may be a column, or given for the whole file (``--type``);
- ``inputs`` is written ``LOT=KG|LOT=KG``, ``outputs`` ``LOT=KG=GRADE|...``
  and ``certifications`` ``organic|fairtrade``; a cell that starts with
  ``[`` or ``{`` is read as JSON;
- ``plot.lon`` and ``plot.lat`` together make ``plot.geometry`` a Point;
- the delimiter (``,`` ``;`` or tab) is detected from the header row.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .errors import InvalidEvent, InvalidInput
from .events import EventBase, parse_event

__all__ = ["iter_events", "iter_records", "row_to_record"]

Progress = Callable[[int], None]

_MAX_LINE = 2_000_000  # bytes; longer lines are not event records


def iter_events(
    path: str | Path,
    *,
    default_type: str | None = None,
    encoding: str = "utf-8",
    progress: Progress | None = None,
) -> Iterator[tuple[str, EventBase]]:
    """Yield ``(where, event)`` for every record in ``path``, validated.

    Raises
    ------
    InvalidInput
        The file cannot be read as JSON Lines, JSON or CSV.
    InvalidEvent
        A record breaks the data contract; ``where`` names file and line.
    """
    for where, record in iter_records(
        path, default_type=default_type, encoding=encoding, progress=progress
    ):
        yield where, parse_event(record, where=where)


def iter_records(
    path: str | Path,
    *,
    default_type: str | None = None,
    encoding: str = "utf-8",
    progress: Progress | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, plain dict)`` for every record in ``path``."""
    p = Path(path)
    name = str(path)
    try:
        f = p.open("rb")
    except FileNotFoundError:
        raise InvalidInput(f"{name}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{name}: is a folder, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"{name}: cannot read: {exc.strerror}") from None
    try:
        codecs.lookup(encoding)
    except LookupError:
        f.close()
        raise InvalidInput(
            f"{name}: unknown encoding {encoding!r} (try utf-8 or latin-1)"
        ) from None
    with f:
        head = f.read(4096)
        f.seek(0)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            encoding = "utf-16"  # Excel's "Unicode Text"; the BOM says so
        elif not head.strip():
            raise InvalidInput(f"{name}: the file is empty")
        elif b"\x00" in head and not encoding.lower().replace("-", "").startswith("utf16"):
            raise InvalidInput(f"{name}: looks like a binary file, not JSON Lines, JSON or CSV")
        if encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
            records = _csv(f, name, encoding, progress)
        else:
            first_line = f.readline().lstrip(codecs.BOM_UTF8)
            f.seek(0)
            first = first_line.lstrip()[:1]
            if p.suffix.lower() in (".jsonl", ".ndjson") or (
                first == b"{" and _is_json_object(first_line)
            ):
                records = _json_lines(f, name, progress)
            elif first in (b"[", b"{"):
                records = _json_document(f, name, encoding)
            else:
                records = _csv(f, name, encoding, progress)
        for where, rec in records:
            if default_type and isinstance(rec, dict) and "type" not in rec:
                rec["type"] = default_type
            if isinstance(rec, dict) and rec.get("type") in ("EPCISDocument", "EPCISQueryDocument"):
                raise InvalidInput(
                    f"{where}: this is an EPCIS document, not lottrace events "
                    "(use: lottrace epcis import FILE)"
                )
            yield where, rec


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _json_lines(f: Any, name: str, progress: Progress | None) -> Iterator[tuple[str, Any]]:
    for n, line in enumerate(f, 1):
        if n == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        if len(line) > _MAX_LINE:
            raise InvalidEvent(f"line is longer than {_MAX_LINE:,} bytes", where=f"{name}:{n}")
        try:
            yield f"{name}:{n}", orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(f"not valid JSON: {_json_msg(exc)}", where=f"{name}:{n}") from None


def _json_msg(exc: ValueError) -> str:
    return str(exc).split(": line")[0]


def _reject_constant(value: str) -> None:
    raise ValueError(f"{value} is not a number JSON allows")


def _json_document(f: Any, name: str, encoding: str) -> Iterator[tuple[str, Any]]:
    """A JSON array of events (or one object), with the line each element starts on.

    The whole document is parsed before the first element is yielded, so a
    syntax error anywhere is reported as such, not as a bad first event.
    """
    yield from _parse_json_document(f, name, encoding)


def _parse_json_document(f: Any, name: str, encoding: str) -> Iterator[tuple[str, Any]]:
    raw = f.read()
    try:
        text = raw.decode("utf-8-sig" if _is_utf8(encoding) else encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(f"{name}:{line}: not {encoding} text") from None
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    pos = 0

    def skip_space() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1

    def fail(msg: str) -> InvalidEvent:
        return InvalidEvent(
            f"not valid JSON: {msg}", where=f"{name}:{text.count(chr(10), 0, pos) + 1}"
        )

    def value() -> tuple[str, Any]:
        nonlocal pos
        where = f"{name}:{text.count(chr(10), 0, pos) + 1}"
        obj, pos = decoder.raw_decode(text, pos)
        return where, obj

    out: list[tuple[str, Any]] = []
    try:
        skip_space()
        if text[pos] != "[":
            out.append(value())
        else:
            pos += 1
            skip_space()
            if text[pos : pos + 1] == "]":
                pos += 1
            else:
                while True:
                    out.append(value())
                    skip_space()
                    if pos >= len(text):
                        raise fail("the array is not closed with ']'")
                    sep = text[pos]
                    pos += 1
                    if sep == "]":
                        break
                    if sep != ",":
                        raise fail(f"expected ',' or ']' but found {sep!r}")
                    skip_space()
        skip_space()
        if pos < len(text):
            raise fail(
                "more data after the end of the JSON document (one event per line is JSON Lines: name the file .jsonl)"
            )
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {exc.msg}", where=f"{name}:{exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        raise fail(str(exc) or type(exc).__name__) from None
    yield from out


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _decoded_lines(f: Any, name: str, encoding: str, progress: Progress | None) -> Iterator[str]:
    if encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
        # Wide encodings cannot be split on b"\n": let the codec find the lines.
        text = io.TextIOWrapper(f, encoding=encoding, newline="")
        try:
            yield from text
        except UnicodeDecodeError:
            raise InvalidInput(f"{name}: not {encoding} text") from None
        finally:
            text.detach()
        return
    enc = "utf-8-sig" if _is_utf8(encoding) else encoding
    for n, line in enumerate(f, 1):
        if progress is not None:
            progress(len(line))
        try:
            yield line.decode(enc if n == 1 else encoding)
        except UnicodeDecodeError:
            hint = " (try --encoding latin-1)" if encoding.lower().startswith("utf") else ""
            raise InvalidInput(f"{name}:{n}: not {encoding} text{hint}") from None


def _csv(f: Any, name: str, encoding: str, progress: Progress | None) -> Iterator[tuple[str, Any]]:
    lines = _decoded_lines(f, name, encoding, progress)
    try:
        first = next(lines)
    except StopIteration:  # pragma: no cover - empty files are caught earlier
        raise InvalidInput(f"{name}: the file is empty") from None
    delimiter = _sniff_delimiter(first)

    def chained() -> Iterator[str]:
        yield first
        yield from lines

    reader = csv.reader(chained(), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
        if not any(header):
            raise InvalidInput(f"{name}:1: the header row is empty")
        dupes = {h for h in header if header.count(h) > 1 and h}
        if dupes:
            raise InvalidInput(f"{name}:1: column {sorted(dupes)[0]!r} appears twice in the header")
        start = reader.line_num + 1
        for row in reader:
            where = f"{name}:{start}"
            start = reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            while len(row) > len(header) and not row[-1].strip():
                row.pop()  # trailing empty cells, as spreadsheets write them
            if len(row) > len(header):
                raise InvalidEvent(
                    f"row has {len(row)} cells but the header has {len(header)} columns "
                    f"(delimiter {delimiter!r})",
                    where=where,
                )
            yield where, row_to_record(dict(zip(header, row, strict=False)), where)
    except csv.Error as exc:
        raise InvalidEvent(f"not valid CSV: {exc}", where=f"{name}:{reader.line_num}") from None


def row_to_record(row: dict[str, str], where: str) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    lon, lat = row.pop("plot.lon", "").strip(), row.pop("plot.lat", "").strip()
    if lon or lat:
        if not (lon and lat):
            raise InvalidEvent("field 'plot.lon'/'plot.lat': give both or neither", where=where)
        row["plot.geometry"] = f'{{"type":"Point","coordinates":[{lon},{lat}]}}'
    for key, raw in row.items():
        value = raw.strip()
        if not key or value == "":
            continue
        parsed = _cell(key, value, where)
        node = rec
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidEvent(f"column {key!r} clashes with column {part!r}", where=where)
            node = child
        node[parts[-1]] = parsed
    return rec


#: Columns whose cells may hold JSON (``[...]`` or ``{...}``); other text is text.
_JSON_COLUMNS = {"inputs", "outputs", "certifications", "defects", "plot", "plot.geometry"}


def _cell(key: str, value: str, where: str) -> Any:
    if value[0] in "[{" and key in _JSON_COLUMNS:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(
                f"field {key!r}: not valid JSON: {_json_msg(exc)}", where=where
            ) from None
    if key == "certifications":
        return [c.strip() for c in value.split("|") if c.strip()]
    if key in ("inputs", "outputs"):
        items = []
        for part in value.split("|"):
            bits = [b.strip() for b in part.split("=")]
            want = 2 if key == "inputs" else 3
            if len(bits) != want or not all(bits):
                form = "LOT=KG|LOT=KG" if key == "inputs" else "LOT=KG=GRADE|..."
                raise InvalidEvent(
                    f"field {key!r}: {part.strip()!r} is not of the form {form}", where=where
                )
            item: dict[str, Any] = {"lot": bits[0], "kg": bits[1]}
            if key == "outputs":
                item["grade"] = bits[2]
            items.append(item)
        return items
    return value
