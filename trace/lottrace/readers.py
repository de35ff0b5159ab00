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
- the delimiter (``,`` ``;`` or tab) is detected from the header row, or given;
- in a ``;`` or tab file, numbers may use a decimal comma (``12,5``, and
  ``1.234,5`` with a thousands dot), as a Spanish-language spreadsheet
  writes them; only number fields are read this way;
- ``type`` may be a Spanish stage name (``cosecha``, ``secado`` ...; see
  :data:`lottrace.fieldlog.STAGE_ALIASES`);
- the encoding is UTF-8 (with or without a BOM), or UTF-16 or UTF-32 with a
  BOM (JSON files too); a file that is not UTF-8 is read as Windows-1252 (a
  superset of Latin-1's letters), with a note, unless an encoding is given.

JSON with a key repeated within one object is refused, naming the key and its
line (:func:`repeated_key`): a reader that keeps the first value and one that
keeps the last would see different events. A file with no records at all (an
empty array, a CSV header alone) is read as no events, with a note saying so.

With ``on_error``, a row that breaks the data contract is passed to it and
skipped, so a caller can report every bad row and then reject the batch;
without it, the first bad row raises. Errors in the file as a whole (not
readable, broken JSON document, broken CSV quoting) always raise.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from .errors import InvalidEvent, InvalidInput
from .events import EVENT_MODELS, EventBase, parse_event
from .fieldlog import resolve_type

__all__ = [
    "CsvReader",
    "check_encoding",
    "iter_events",
    "iter_records",
    "number_fields",
    "repeated_key",
    "row_to_record",
    "sniff_delimiter",
]

Progress = Callable[[int], None]
OnError = Callable[[InvalidEvent], None]
Note = Callable[[str], None]

#: What ``encoding=None`` falls back to when a file is not UTF-8.
FALLBACK_ENCODING = "cp1252"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)  # UTF-32-LE's begins with UTF-16-LE's
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t"}

_MAX_LINE = 2_000_000  # bytes; longer lines are not event records


def iter_events(
    path: str | Path,
    *,
    default_type: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    progress: Progress | None = None,
    on_error: OnError | None = None,
    on_note: Note | None = None,
) -> Iterator[tuple[str, EventBase]]:
    """Yield ``(where, event)`` for every record in ``path``, validated.

    Parameters
    ----------
    encoding : str, optional
        The text encoding; by default UTF-8, falling back to Windows-1252.
    delimiter : str, optional
        The CSV delimiter (``,`` ``;`` or ``tab``); by default detected.
    on_error : callable, optional
        Called with each bad record's :class:`InvalidEvent`, which is then
        skipped; without it the first bad record raises.
    on_note : callable, optional
        Called with a one-line note on how the file was read (the encoding
        it fell back to).

    Raises
    ------
    InvalidInput
        The file cannot be read as JSON Lines, JSON or CSV.
    InvalidEvent
        A record breaks the data contract; ``where`` names file and line.
    """
    for where, record in iter_records(
        path,
        default_type=default_type,
        encoding=encoding,
        delimiter=delimiter,
        progress=progress,
        on_error=on_error,
        on_note=on_note,
    ):
        try:
            event = parse_event(record, where=where)
        except InvalidEvent as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        yield where, event


def iter_records(
    path: str | Path,
    *,
    default_type: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    progress: Progress | None = None,
    on_error: OnError | None = None,
    on_note: Note | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, plain dict)`` for every record in ``path`` (see :func:`iter_events`)."""
    if delimiter is not None and delimiter not in DELIMITERS:
        raise InvalidInput(f"unknown delimiter {delimiter!r}: use ',', ';' or 'tab'")
    sep = DELIMITERS.get(delimiter) if delimiter is not None else None
    auto = encoding is None
    encoding = encoding or "utf-8"
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
        check_encoding(name, encoding)
    except InvalidInput:
        f.close()
        raise
    counted = _Counted(on_error)
    on_error = counted if on_error is not None else None
    n = 0
    with f:
        head = f.read(4096)
        f.seek(0)
        if not head.removeprefix(codecs.BOM_UTF8).strip() or head in _UTF16_BOMS + _UTF32_BOMS:
            raise InvalidInput(f"{name}: the file is empty")  # a BOM alone is empty too
        if head.startswith(_UTF32_BOMS):
            encoding = "utf-32"  # the BOM says so
        elif head.startswith(_UTF16_BOMS):
            encoding = "utf-16"  # Excel's "Unicode Text"; the BOM says so
        elif b"\x00" in head and not _is_wide(encoding):
            raise InvalidInput(f"{name}: looks like a binary file, not JSON Lines, JSON or CSV")
        csv_reader = CsvReader(name, encoding, auto, sep, progress, on_error, on_note)
        if _is_wide(encoding):
            try:
                records = _wide(f, p, name, encoding, csv_reader, progress, on_error)
            except UnicodeError:
                raise InvalidInput(f"{name}: not {encoding} text") from None
        else:
            first_line = f.readline().lstrip(codecs.BOM_UTF8)
            f.seek(0)
            first = first_line.lstrip()[:1]
            if p.suffix.lower() in (".jsonl", ".ndjson") or (
                first == b"{" and _is_json_object(first_line)
            ):
                records = _json_lines(f, name, progress, on_error)
            elif first in (b"[", b"{"):
                records = _json_document(f, name, encoding)
            else:
                records = csv_reader.records(f)
        try:
            for where, rec in records:
                if default_type and isinstance(rec, dict) and "type" not in rec:
                    rec["type"] = resolve_type(default_type)
                if isinstance(rec, dict) and rec.get("type") in (
                    "EPCISDocument",
                    "EPCISQueryDocument",
                ):
                    raise InvalidInput(
                        f"{where}: this is an EPCIS document, not lottrace events "
                        "(use: lottrace epcis import FILE)"
                    )
                n += 1
                yield where, rec
        except UnicodeError:  # a codec that fails other than on one line (UTF-16 without BOM ...)
            raise InvalidInput(f"{name}: not {encoding} text") from None
    if n == 0 and counted.count == 0 and on_note is not None:
        on_note(f"no events in {name}")


class _Counted:
    """An ``on_error`` callback that counts the bad records it passes on."""

    def __init__(self, on_error: OnError | None) -> None:
        self.on_error, self.count = on_error, 0

    def __call__(self, exc: InvalidEvent) -> None:
        self.count += 1
        if self.on_error is not None:
            self.on_error(exc)


def check_encoding(name: str, encoding: str) -> None:
    """Raise :class:`InvalidInput` naming ``name`` unless ``encoding`` is a text encoding."""
    try:
        codecs.lookup(encoding)
        _is_text_encoding(encoding)
    except LookupError:
        raise InvalidInput(
            f"{name}: unknown encoding {encoding!r} (try utf-8 or latin-1)"
        ) from None


def _is_text_encoding(encoding: str) -> None:
    """Raise LookupError for a codec that is not a text encoding (rot13, base64, zlib ...)."""
    with contextlib.suppress(UnicodeError):  # a text encoding, only not of these bytes
        b"\x00\x00\x00\x00".decode(encoding)  # b"" would not ask the codec at all


def _is_wide(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "").startswith(("utf16", "utf32"))


def _wide(
    f: Any,
    p: Path,
    name: str,
    encoding: str,
    csv_reader: CsvReader,
    progress: Progress | None,
    on_error: OnError | None,
) -> Iterator[tuple[str, Any]]:
    """A UTF-16 or UTF-32 file: JSON is recoded to UTF-8 on the fly and read as such; CSV as CSV."""
    first_line = codecs.EncodedFile(f, "utf-8", encoding).readline().lstrip(codecs.BOM_UTF8)
    f.seek(0)
    first = first_line.lstrip()[:1]
    recoded = codecs.EncodedFile(f, "utf-8", encoding)
    if p.suffix.lower() in (".jsonl", ".ndjson") or (first == b"{" and _is_json_object(first_line)):
        return _json_lines(recoded, name, progress, on_error)
    if first in (b"[", b"{"):
        return _json_document(recoded, name, "utf-8")
    return csv_reader.records(f)


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _json_lines(
    f: Any, name: str, progress: Progress | None, on_error: OnError | None
) -> Iterator[tuple[str, Any]]:
    read_one = False
    for n, line in enumerate(f, 1):
        if n == 1:
            line = line.removeprefix(codecs.BOM_UTF8)
        if progress is not None:
            progress(len(line))
        if not line.strip():
            continue
        try:
            if len(line) > _MAX_LINE:
                raise InvalidEvent(f"line is longer than {_MAX_LINE:,} bytes", where=f"{name}:{n}")
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InvalidEvent(
                    f"not valid JSON: {_json_msg(exc)}", where=f"{name}:{n}"
                ) from None
            repeated = repeated_key(line, record)
            if repeated is not None:
                raise _repeated(repeated[0], f"{name}:{n}")
        except InvalidEvent as exc:
            if on_error is None or not read_one:  # a bad first line: not JSON Lines at all
                raise
            on_error(exc)
            continue
        read_one = True
        yield f"{name}:{n}", record


#: The tokens that matter to find keys: strings and structure (numbers, literals skipped).
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],]')


def repeated_key(raw: bytes | str, parsed: Any) -> tuple[str, int] | None:
    r"""The first key repeated within one object of the JSON text ``raw``, and its line, or None.

    ``parsed`` is what ``raw`` parsed to (JSON parsers keep one value of a
    repeated key silently). Most texts are cleared by counting quotes: a
    quote in valid JSON only opens or closes a string or is written ``\"``
    inside one, so unless ``raw`` writes a quote as ``\u0022``, ``parsed``
    re-serialised has as many quotes as ``raw`` exactly when no key (and
    its value) was dropped. Otherwise the text is scanned key by key.

    >>> repeated_key(b'{"a": 1, "b": {"c": 2}}', {"a": 1, "b": {"c": 2}})
    >>> repeated_key('{"a": 1,\n "a": 2}', {"a": 2})
    ('a', 2)
    """
    if not isinstance(parsed, (dict, list)):
        return None
    try:
        if isinstance(raw, str):
            cleared = "\\u0022" not in raw and raw.count('"') == orjson.dumps(parsed).count(b'"')
        else:
            cleared = b"\\u0022" not in raw and raw.count(b'"') == orjson.dumps(parsed).count(b'"')
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits: scan
        cleared = False
    if cleared:
        return None
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    stack: list[set[str] | None] = []
    expect_key = False
    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c == '"':
            keys = stack[-1] if stack else None
            if expect_key and keys is not None:
                key = json.loads(tok)
                if key in keys:
                    return key, text.count("\n", 0, m.start()) + 1
                keys.add(key)
            expect_key = False
        elif c == "{":
            stack.append(set())
            expect_key = True
        elif c == "[":
            stack.append(None)
            expect_key = False
        elif c == ",":
            expect_key = bool(stack) and stack[-1] is not None
        elif stack:
            stack.pop()
            expect_key = False
    return None


def _repeated(key: str, where: str) -> InvalidEvent:
    return InvalidEvent(
        f"key {key!r} appears twice in one object (JSON keys must be unique)", where=where
    )


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
    except UnicodeError:  # a codec that fails as a whole (UTF-16 without a BOM ...)
        raise InvalidInput(f"{name}: not {encoding} text") from None
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
        start, line = pos, text.count(chr(10), 0, pos) + 1
        obj, pos = decoder.raw_decode(text, pos)
        repeated = repeated_key(text[start:pos], obj)
        if repeated is not None:
            raise _repeated(repeated[0], f"{name}:{line + repeated[1] - 1}")
        return f"{name}:{line}", obj

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


def sniff_delimiter(header: str) -> str:
    """The delimiter a CSV header line uses: the most frequent of ``,`` ``;`` and tab."""
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


class CsvReader:
    """One CSV file's rows as records: decoding (with the cp1252 fallback), delimiter, cells."""

    def __init__(
        self,
        name: str,
        encoding: str,
        auto: bool,
        delimiter: str | None,
        progress: Progress | None,
        on_error: OnError | None,
        on_note: Note | None,
    ) -> None:
        self.name, self.encoding, self.auto, self.delimiter = name, encoding, auto, delimiter
        self.progress, self.on_error, self.on_note = progress, on_error, on_note

    def lines(self, f: Any) -> Iterator[str]:
        name, encoding = self.name, self.encoding
        if encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
            # Wide encodings cannot be split on b"\n": let the codec find the lines.
            text = io.TextIOWrapper(f, encoding=encoding, newline="")
            try:
                yield from text
            except UnicodeError:
                raise InvalidInput(f"{name}: not {encoding} text") from None
            finally:
                text.detach()
            return
        non_ascii = False  # seen a non-ASCII line that was valid in the current encoding
        for n, line in enumerate(f, 1):
            if self.progress is not None:
                self.progress(len(line))
            try:
                yield line.decode("utf-8-sig" if n == 1 and _is_utf8(encoding) else encoding)
            except UnicodeError:
                if not (self.auto and _is_utf8(encoding)) or non_ascii:
                    hint = " (try --encoding cp1252)" if _is_utf8(encoding) else ""
                    mixed = (
                        " (the lines before it were UTF-8: mixed encodings?)" if non_ascii else ""
                    )
                    raise InvalidInput(f"{name}:{n}: not {encoding} text{mixed or hint}") from None
                encoding = self.encoding = FALLBACK_ENCODING
                try:
                    yield line.decode(encoding)
                except UnicodeDecodeError:
                    raise InvalidInput(
                        f"{name}:{n}: neither UTF-8 nor {encoding} text; give --encoding"
                    ) from None
                if self.on_note is not None:
                    self.on_note(
                        f"{name}: not UTF-8 (line {n}), read as {encoding} (Windows Latin-1); "
                        "--encoding chooses"
                    )
            non_ascii = non_ascii or not line.isascii()

    def records(self, f: Any) -> Iterator[tuple[str, Any]]:
        name = self.name
        lines = self.lines(f)
        try:
            first = next(lines)
        except StopIteration:  # pragma: no cover - empty files are caught earlier
            raise InvalidInput(f"{name}: the file is empty") from None
        delimiter = self.delimiter or sniff_delimiter(first)
        decimal_comma = delimiter != ","

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
                raise InvalidInput(
                    f"{name}:1: column {sorted(dupes)[0]!r} appears twice in the header"
                )
            start = reader.line_num + 1
            for row in reader:
                where = f"{name}:{start}"
                start = reader.line_num + 1
                if not any(cell.strip() for cell in row):
                    continue
                while len(row) > len(header) and not row[-1].strip():
                    row.pop()  # trailing empty cells, as spreadsheets write them
                try:
                    if len(row) > len(header):
                        raise InvalidEvent(
                            f"row has {len(row)} cells but the header has {len(header)} columns "
                            f"(delimiter {delimiter!r})",
                            where=where,
                        )
                    cells = dict(zip(header, row, strict=False))
                    record = row_to_record(cells, where, decimal_comma=decimal_comma)
                except InvalidEvent as exc:
                    if self.on_error is None:
                        raise
                    self.on_error(exc)
                    continue
                if isinstance(record.get("type"), str):
                    record["type"] = resolve_type(record["type"])
                yield where, record
        except csv.Error as exc:
            raise InvalidEvent(f"not valid CSV: {exc}", where=f"{name}:{reader.line_num}") from None


def row_to_record(
    row: dict[str, str], where: str, *, decimal_comma: bool = False
) -> dict[str, Any]:
    """One CSV row (dotted column -> cell text) as a nested record.

    With `decimal_comma`, number fields may be written ``12,5`` or ``1.234,5``.

    >>> row_to_record({"type": "drying", "kg": "1.234,5", "note": "3,5 sacos"}, "f.csv:2",
    ...               decimal_comma=True)
    {'type': 'drying', 'kg': '1234.5', 'note': '3,5 sacos'}
    """
    rec: dict[str, Any] = {}
    lon, lat = row.pop("plot.lon", "").strip(), row.pop("plot.lat", "").strip()
    if decimal_comma:
        lon, lat = _decimal(lon), _decimal(lat)
    if lon or lat:
        if not (lon and lat):
            raise InvalidEvent("field 'plot.lon'/'plot.lat': give both or neither", where=where)
        for axis, v in (("plot.lon", lon), ("plot.lat", lat)):
            try:
                float(v)
            except ValueError:
                raise InvalidEvent(
                    f"field '{axis}': {v[:30]!r} is not a number", where=where
                ) from None
        row["plot.geometry"] = f'{{"type":"Point","coordinates":[{lon},{lat}]}}'
    for key, raw in row.items():
        value = raw.strip()
        if not key or value == "":
            continue
        if decimal_comma and key.rsplit(".", 1)[-1] in number_fields():
            value = _decimal(value)
        parsed = _cell(key, value, where, decimal_comma)
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


_DECIMAL_COMMA = re.compile(r"[+-]?(\d+|\d{1,3}(\.\d{3})+),\d+")


def _decimal(value: str) -> str:
    """``12,5`` -> ``12.5`` and ``1.234,5`` -> ``1234.5``; anything else unchanged."""
    if _DECIMAL_COMMA.fullmatch(value):
        return value.replace(".", "").replace(",", ".")
    return value


@cache
def number_fields() -> frozenset[str]:
    """The names of every number field of every event type (and its parts), from the models."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, sub in (node.get("properties") or {}).items():
                kinds = [sub, *sub.get("anyOf", [])]
                if any(k.get("type") in ("number", "integer") for k in kinds):
                    names.add(name)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for model in EVENT_MODELS.values():
        walk(model.model_json_schema())
    return frozenset(names)


def _cell(key: str, value: str, where: str, decimal_comma: bool = False) -> Any:
    if value[0] in "[{" and key in _JSON_COLUMNS:
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidEvent(
                f"field {key!r}: not valid JSON: {_json_msg(exc)}", where=where
            ) from None
        repeated = repeated_key(value, parsed)
        if repeated is not None:
            raise InvalidEvent(
                f"field {key!r}: key {repeated[0]!r} appears twice in one object", where=where
            )
        return parsed
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
            kg = _decimal(bits[1]) if decimal_comma else bits[1]
            item: dict[str, Any] = {"lot": bits[0], "kg": kg}
            if key == "outputs":
                item["grade"] = bits[2]
            items.append(item)
        return items
    return value
