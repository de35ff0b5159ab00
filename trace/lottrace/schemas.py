"""Generate the JSON Schemas and the data-model reference from the event models.

``schemas/*.json`` and the field tables in ``docs/data-model.md`` are outputs
of this module; tests regenerate them and fail when the files have drifted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from .events import EVENT_MODELS, Defects, Event, LotInput, MillOutput, Plot, Point, Polygon

__all__ = ["event_schema", "field_rows", "markdown_tables", "schema_files", "union_schema"]

_SCHEMA_ID = "https://lottrace.example.org/schemas/1/"


def event_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one event type."""
    schema = EVENT_MODELS[kind].model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_SCHEMA_ID}{kind}.json",
        **schema,
    }


def union_schema() -> dict[str, Any]:
    """The JSON Schema of any event: a union discriminated on ``type``."""
    schema = TypeAdapter(Event).json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{_SCHEMA_ID}event.json",
        "title": "lottrace event",
        **schema,
    }


def schema_files() -> dict[str, str]:
    """File name -> text for every file in ``schemas/``."""
    files = {f"{kind}.json": event_schema(kind) for kind in EVENT_MODELS}
    files["event.json"] = union_schema()
    return {name: json.dumps(s, indent=2, ensure_ascii=False) + "\n" for name, s in files.items()}


def write_schemas(folder: str | Path) -> list[Path]:
    """Write every schema file into ``folder``; returns the paths written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_files().items():
        p = out / name
        p.write_text(text, encoding="utf-8")
        written.append(p)
    return written


def _type_text(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(defs.get(schema["$ref"].split("/")[-1], {}).get("title", "object"))
    if "anyOf" in schema:
        parts = [_type_text(s, defs) for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(parts)
    if "oneOf" in schema:
        return " or ".join(_type_text(s, defs) for s in schema["oneOf"])
    if "enum" in schema:
        return " / ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    if schema.get("type") == "array":
        return f"list of {_type_text(schema.get('items', {}), defs)}"
    if schema.get("format") == "date-time":
        return "time"
    return str(schema.get("type", "any"))


def field_rows(model: type[BaseModel]) -> list[tuple[str, str, str, str]]:
    """(field, type, required?, description) for each field of an event model."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema["properties"].items():
        desc = prop.get("description", "")
        if not desc and "anyOf" in prop:
            desc = next((s.get("description", "") for s in prop["anyOf"] if "description" in s), "")
        req = "yes" if name in required or name == "type" else ""
        rows.append((name, _type_text(prop, defs), req, desc))
    return rows


def markdown_tables() -> str:
    """One markdown table per event type, as ``docs/data-model.md`` embeds them."""
    out = []
    parts: dict[str, type[BaseModel]] = {
        m.__name__: m for m in (Plot, Point, Polygon, LotInput, MillOutput, Defects)
    }
    for kind, model in [*EVENT_MODELS.items(), *parts.items()]:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        title = f"`{kind}`" if kind in EVENT_MODELS else f"{kind} (part of an event)"
        out.append(f"### {title}\n\n{doc}\n")
        out.append("| field | type | required | meaning |\n|---|---|---|---|")
        for name, typ, req, desc in field_rows(model):
            out.append(f"| `{name}` | {typ} | {req} | {desc} |")
        out.append("")
    return "\n".join(out)
