"""The JSON the field and QC pages call: who the caller is and its sites, the lots with kg
left to draw from, a checkpoint checked without writing, and a checkpoint written.

Every route takes the caller from its token (:data:`.deps.User`). A checkpoint
is built from the flat form by :func:`lottrace.fieldform.event_from_form` (the
one function ``lottrace log`` shares), stamped with the caller as its actor,
refused at another organisation's site (:class:`lottrace.access.WriteGuard`,
403 naming the field) and appended with the ledger's rules; the check runs the
same steps and appends with ``dry_run`` (rolled back: nothing is written).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..access import Identity, NotAllowed, NotAuthenticated, visible_lots
from ..dashboard import ledger_sites, open_lot_rows
from ..errors import BadRows, InvalidEvent, InvalidInput, LottraceError, RuleViolation, TooBig
from ..events import STAGE_ORDER, EventBase, event_id
from ..fieldform import CHECKPOINTS, FormField, event_from_form, form_fields
from ..fieldlog import describe_event
from ..importing import ReadOptions, import_files
from ..ledger import AppendReport
from ..numfmt import number
from ..rules import RULES_ES, WARNINGS_ES
from ..sheets import (
    ROW_PROBLEMS_ES,
    ColumnMap,
    check_bounds,
    field_names,
    load_map,
    map_to_toml,
    reads_natively,
    row_problem_code,
    suggest_map,
)
from .deps import AnsweredInThread, User, access_of, reading, writing, written_by
from .i18n import pick_lang, t

__all__ = ["form_specs", "router"]

router = APIRouter(tags=["web"], route_class=AnsweredInThread)

#: A flat checkpoint form: field name -> the text typed.
CheckpointForm = Annotated[
    dict[str, str],
    Body(
        description="A checkpoint form: `type`, `time` (ISO-8601 with offset) and the event's "
        "fields by name, dotted where they nest (`plot.id`); numbers may have a decimal comma.",
        examples=[
            {
                "type": "cosecha",
                "time": "2025-06-01T08:00:00-05:00",
                "site": "farm:APR-P0231",
                "lot": "APR-0231-H9",
                "kg": "212,5",
                "producer": "APR-0231",
                "plot.id": "P0231-A",
            }
        ],
    ),
]
_WHERE = "web form"


def _lang(request: Request) -> str:
    return pick_lang(request.query_params.get("lang"), request.cookies.get("lang"))


@router.get("/api/me", summary="Who the token is: name, organisation, role, the sites it writes at")
def me(request: Request, user: User) -> dict[str, Any]:
    access = access_of(request)
    with reading(request) as ledger:
        # every page asks; the ledger's sites are a scan, kept per head (a new site is an append)
        known = ledger_sites(ledger)
    return {
        "name": user.name,
        "org": user.org,
        "role": user.role,
        "owner": user.owner,
        "sites": access.writable_sites(user, known),
    }


@router.get(
    "/api/field/lots",
    summary="Lots with kg left the caller may draw from: each with its last checkpoint",
)
def open_lots(
    request: Request,
    user: User,
    type: Annotated[str | None, Query(pattern="^[a-z_]{1,30}$")] = None,
    site: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """``type``: only lots a checkpoint of that type may draw from (at an earlier or the same
    stage); ``site``: only lots whose last checkpoint was there. Newest first, at most 500."""
    limit = STAGE_ORDER.get(type) if type else None
    with reading(request) as ledger:
        lots = visible_lots(ledger, user, access_of(request))
        rows = open_lot_rows(ledger)  # kept per head
    out = []
    for lot, left, last_qc, kind, time, where in reversed(rows):
        if lots is not None and lot not in lots:
            continue
        if limit is not None and STAGE_ORDER.get(kind, 0) > limit:
            continue
        if site and where != site:
            continue
        out.append(
            {"lot": lot, "kg_left": round(left, 3), "last": kind, "time": time, "site": where}
            | ({"last_qc": last_qc} if last_qc else {})
        )
        if len(out) == 500:
            break
    return {"lots": out}


def _build(form: dict[str, str], user: Identity, lang: str) -> EventBase:
    ev = event_from_form(form, where=_WHERE, lang=lang)
    return ev.model_copy(update={"actor": user.actor})


def _append(request: Request, user: Identity, ev: EventBase, *, dry_run: bool) -> AppendReport:
    """The event appended as the server writes every event (:func:`.deps.written_by`)."""
    with writing(request) as ledger:
        stamped = written_by(user, access_of(request), ledger)(_WHERE, ev)
        return ledger.append([(_WHERE, stamped)], dry_run=dry_run)


_RULE_PREFIX = re.compile(r"^\[[\w-]+\] (field '[^']*': )?")


def _form_field(field: str) -> str:
    """The form field a rule's field path is about: ``inputs[0]`` -> ``inputs``."""
    return re.sub(r"\[\d+\].*$", "", field)


def _said(exc: LottraceError) -> str:
    """An error's words without the form's ``web form:`` prefix."""
    return str(exc).removeprefix(f"{_WHERE}: ")


def _warnings(report: AppendReport, lang: str = "en") -> list[dict[str, str]]:
    """The batch's rule warnings; in Spanish, each rule's words before its particulars."""
    return [
        {
            "rule": w.rule,
            "detail": f"{WARNINGS_ES[w.rule]} ({w.message})"
            if lang == "es" and w.rule in WARNINGS_ES
            else w.message,
        }
        for w in report.warnings
    ]


@router.post(
    "/api/field/check",
    summary="Check a checkpoint form with the ledger's rules, writing nothing",
)
def check(request: Request, user: User, form: CheckpointForm) -> dict[str, Any]:
    """``ok``, every ``problems`` (field, detail), rule ``warnings`` and the event as it
    would be saved (``summary``: field, value). Nothing is written, whatever the answer."""
    lang = _lang(request)
    try:
        ev = _build(form, user, lang)
    except InvalidEvent as exc:
        return {"ok": False, "problems": _problems(exc), "warnings": [], "summary": []}
    summary = describe_event(ev, lang)
    try:
        report = _append(request, user, ev, dry_run=True)
    except RuleViolation as exc:
        detail = _RULE_PREFIX.sub("", _said(exc))
        if lang == "es" and exc.rule in RULES_ES:  # the rule in Spanish, the particulars after it
            detail = f"{RULES_ES[exc.rule]} ({detail})"
        problem = {"field": _form_field(exc.field), "rule": exc.rule, "detail": detail}
        return {"ok": False, "problems": [problem], "warnings": [], "summary": summary}
    except NotAllowed as exc:
        problem = {"field": exc.field, "detail": str(exc)}
        return {"ok": False, "problems": [problem], "warnings": [], "summary": summary}
    return {
        "ok": True,
        "problems": [],
        "warnings": _warnings(report, lang),
        "summary": summary,
        "event_id": event_id(ev),
        "duplicate": report.added == 0,
    }


def _problems(exc: InvalidEvent) -> list[dict[str, str]]:
    if exc.problems:
        return [
            {"field": f, "detail": f"field '{f}': {words}" if f else words}
            for f, words, _value in exc.problems
        ]
    return [{"field": exc.field, "detail": _said(exc)}]


@router.post(
    "/api/field/events",
    status_code=201,
    summary="Log a checkpoint from its form: 201 when added, 200 when already in the ledger",
    responses={403: {"description": "Not the caller's site or lot (the body names the field)"}},
)
def log_checkpoint(request: Request, user: User, form: CheckpointForm) -> JSONResponse:
    lang = _lang(request)
    ev = _build(form, user, lang)
    report = _append(request, user, ev, dry_run=False)
    body = {
        "event_id": event_id(ev),
        "added": report.added == 1,
        "duplicate": report.added == 0,
        "warnings": _warnings(report, lang),
        "summary": describe_event(ev, lang),
    }
    return JSONResponse(body, status_code=201 if report.added else 200)


# --------------------------------------------------------------------------- the forms


def _range_hint(f: FormField, lang: str) -> str:
    """A number's allowed and usual range in words: ``0–100 · lo usual 9–13``."""

    def n(x: float | None) -> str:
        return number(x, 3, lang) if x is not None else ""

    parts = []
    if f.bounds is not None:
        lo, hi, low_ok, _whole = f.bounds
        if lo is not None and hi is not None:
            parts.append(t(lang, "field.between", lo=n(lo), hi=n(hi)))
        elif lo is not None:
            parts.append(t(lang, "field.at_least" if low_ok else "field.more_than", lo=n(lo)))
    if f.usual is not None:
        lo_u, hi_u = f.usual
        if lo_u is not None and hi_u is not None:
            key = "field.usual_is" if lo_u == hi_u else "field.usual_between"
            parts.append(t(lang, key, lo=n(lo_u), hi=n(hi_u)))
        elif hi_u is not None:
            parts.append(t(lang, "field.usual_max", hi=n(hi_u)))
        elif lo_u is not None:
            parts.append(t(lang, "field.usual_min", lo=n(lo_u)))
    return " · ".join(parts)


def form_specs(lang: str) -> list[dict[str, Any]]:
    """Each checkpoint's form as the template draws it: labels, hints, choices in ``lang``."""
    out = []
    for type_ in CHECKPOINTS:
        fields = []
        for f in form_fields(type_):
            hint = _range_hint(f, lang)
            extra = t(lang, f"field.hint.{f.name}") if f"field.hint.{f.name}" in _HINTS else ""
            fields.append(
                {
                    "name": f.name,
                    "id": f"{type_}-{f.name.replace('.', '-')}",
                    "kind": f.kind,
                    "required": f.required,
                    "label": t(lang, f"field.f.{f.name}"),
                    "hint": " · ".join(x for x in (extra, hint) if x),
                    "choices": [(c, t(lang, f"field.c.{c}")) for c in f.choices],
                    "site_kinds": " ".join(f.site_kinds),
                    "decimal": f.kind == "number",
                }
            )
        out.append({"type": type_, "label": t(lang, f"field.type.{type_}"), "fields": fields})
    return out


_HINTS = {"field.hint.inputs", "field.hint.outputs", "field.hint.site", "field.hint.lot"}


# --------------------------------------------------------------------------- uploads


def _bad_map(words: str) -> InvalidEvent:
    """A map whose JSON is not of the shape the upload page sends: a 400 naming ``map``."""
    return InvalidEvent(f"map: {words}", field="map")


def _map_from_json(text: str) -> ColumnMap:
    """A column map sent by the upload page as JSON (the shape of :class:`ColumnMap`).

    Names and values must be text (a default may also be a number): anything else is a
    problem naming ``map`` (#19 F2: a number among the values was a 500).
    """
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise _bad_map("not JSON") from None
    if not isinstance(raw, dict):
        raise _bad_map("not a JSON object")

    def table(key: str) -> dict[str, Any]:
        value = raw.get(key) or {}
        if not isinstance(value, dict):
            raise _bad_map(f"{key} is not an object")
        return value

    def texts(where: str, value: Any, numbers: bool = False) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _bad_map(f"{where} is not an object")
        for k, v in value.items():
            number = isinstance(v, int | float) and not isinstance(v, bool)
            if not (isinstance(v, str) or (numbers and number)):
                kind = "text or a number" if numbers else "text"
                raise _bad_map(f"{where}.{k} must be {kind}")
        return dict(value)

    for key in ("zone", "order"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _bad_map(f"{key} must be text")
    return ColumnMap(
        columns=texts("columns", table("columns")),
        values={k: texts(f"values.{k}", v) for k, v in table("values").items()},
        zone=str(raw["zone"]) if raw.get("zone") else None,
        order=str(raw.get("order") or "DMY"),
        defaults={k: texts(f"defaults.{k}", v, True) for k, v in table("defaults").items()},
        source="the map",
    )


def _map_json(cm: ColumnMap) -> dict[str, Any]:
    return {
        "columns": cm.columns,
        "values": cm.values,
        "zone": cm.zone,
        "order": cm.order,
        "defaults": cm.defaults,
    }


#: What an uploaded sheet may hold (#19 F5, F12): checked before it is parsed, so that one
#: writer's sheet cannot hold the server's memory (an .xlsx inflating to hundreds of MB), its
#: time (thousands of columns to match) or the ledger's writer (the dry run) for long.
MAX_ROWS = 50_000
MAX_COLUMNS = 200
MAX_INFLATED = 64 * 2**20


def _scrub(text: str, folder: str) -> str:
    """``text`` without ``folder``: its sheet by the sheet's own name, its map as "the map"."""
    return (
        text.replace(str(Path(folder) / "map.toml"), "the map")
        .replace(str(Path(folder) / "sheet") + "/", "")
        .replace(folder, "")
    )


class _Upload:
    """An uploaded sheet in a folder of its own, and the map to read it with (given or
    suggested), as the library's import takes them.

    Built off the event loop (:func:`_receive`): reading the sheet and suggesting its map
    take time in proportion to the sheet; :func:`~lottrace.sheets.check_bounds` first refuses
    one over :data:`MAX_ROWS`, :data:`MAX_COLUMNS` or :data:`MAX_INFLATED` (413, ``file``).
    """

    def __init__(self, folder: str, file: UploadFile, data: bytes, map_text: str | None) -> None:
        name = re.sub(r"[^\w.\- ]", "_", Path(file.filename or "").name)[:100]
        if name.strip(".") == "":
            name = "upload.csv"
        self.folder = folder
        (Path(folder) / "sheet").mkdir()  # the map beside it can never be its name (#19 F4)
        self.path = Path(folder) / "sheet" / name
        self.path.write_bytes(data)
        check_bounds(
            self.path, max_rows=MAX_ROWS, max_columns=MAX_COLUMNS, max_inflated=MAX_INFLATED
        )
        self.native = map_text is None and reads_natively(self.path)
        self.comments: list[str] = []
        self.cm: ColumnMap | None = None
        if map_text:
            self.cm = _map_from_json(map_text)
        elif not self.native:
            self.cm, _unknown, self.comments = suggest_map(self.path)
        self.map_path: Path | None = None
        if self.cm is not None:
            self.map_path = Path(folder) / "map.toml"
            self.map_path.write_text(map_to_toml(self.cm, self.comments), encoding="utf-8")
            load_map(self.map_path)  # the map's own problems, named, before any row is read

    def scrub(self, text: str) -> str:
        """A message without the server's folders: the sheet and the map by their names."""
        return _scrub(text, self.folder)

    def run(self, request: Request, user: Identity, default_type: str | None, dry: bool) -> Any:
        with writing(request) as ledger:
            return import_files(
                ledger,
                [self.path],
                ReadOptions(default_type=default_type or None, map_path=self.map_path),
                parallel=False,
                transform=written_by(user, access_of(request), ledger),
                dry_run=dry,
            )


def _row_problems(exc: LottraceError, up: _Upload, lang: str = "en") -> list[dict[str, str]]:
    """Every problem of every row, each with its line, field where known and ``code``: its
    kind (:data:`lottrace.sheets.ROW_PROBLEMS`) or the ledger rule it breaks, "" for a problem
    of the whole sheet. In Spanish, a row's problem is said in Spanish first, then in the
    sheet's words (the English the command line prints)."""
    found = exc.problems if isinstance(exc, BadRows) else [exc]
    out = []
    for p in found:
        where = up.scrub(str(getattr(p, "where", "") or ""))
        line = where.rpartition(":")[2] if ":" in where else ""
        detail = up.scrub(str(p))
        if where and detail.startswith(where + ": "):
            detail = detail[len(where) + 2 :]
        code, detail = _row_said(p, detail, lang)
        field = str(getattr(p, "field", "") or "")
        out.append({"line": line, "field": field, "code": code, "detail": detail})
    return out


def _row_said(p: LottraceError, detail: str, lang: str) -> tuple[str, str]:
    """A row problem's code, and its words in ``lang``: in Spanish, the kind of problem (or the
    rule broken) in Spanish, then its particulars in parentheses."""
    if isinstance(p, RuleViolation):
        code, spanish = p.rule, RULES_ES.get(p.rule)
        particulars = _RULE_PREFIX.sub("", detail)
    elif isinstance(p, InvalidEvent):
        code = row_problem_code(detail)
        spanish, particulars = ROW_PROBLEMS_ES[code], detail
    else:  # the whole sheet (its columns, its encoding): not a row's
        return "", detail
    return code, f"{spanish} ({particulars})" if lang == "es" and spanish else detail


def _upload_warnings(report: AppendReport, up: _Upload, lang: str) -> list[str]:
    """The import's rule warnings; in Spanish, each rule's words before its particulars."""
    return [
        f"{WARNINGS_ES[w.rule]} ({up.scrub(str(w))})"
        if lang == "es" and w.rule in WARNINGS_ES
        else up.scrub(str(w))
        for w in report.warnings
    ]


class _Unread(InvalidInput):
    """The uploaded sheet or its map cannot be read: the message without the server's folders,
    ``field`` the part of the request it is about (``file`` or ``map``)."""

    def __init__(self, message: str, *, field: str) -> None:
        self.field = field
        super().__init__(message)


async def _receive(
    request: Request, user: Identity, file: UploadFile, map_json: str | None, type_: str | None
) -> tuple[tempfile.TemporaryDirectory[str], _Upload]:
    access_of(request).check_write(user, [])  # a role that does not write uploads nothing
    data = await file.read()
    folder = tempfile.TemporaryDirectory(prefix="lottrace-sheet-")
    try:
        up = await run_in_threadpool(_Upload, folder.name, file, data, map_json)
    except InvalidInput as exc:
        folder.cleanup()
        if type(exc) is InvalidInput:  # the sheet or the map cannot be read (#19 F3)
            text = _scrub(str(exc), folder.name)
            raise _Unread(text, field="map" if "the map" in text else "file") from None
        raise
    except BaseException:
        folder.cleanup()
        raise
    return folder, up


UploadMap = Annotated[
    str | None,
    Form(description="The column map as JSON (columns, values, zone, order, defaults)"),
]
UploadType = Annotated[
    str | None, Form(pattern="^[a-z_]{1,30}$", description="The type of rows without one")
]


@router.post(
    "/api/upload/check",
    summary="A sheet read and checked with the ledger's rules, writing nothing: its column "
    "map (suggested, or the one sent) and every problem of every row",
)
async def upload_check(
    request: Request,
    user: User,
    file: UploadFile,
    map: UploadMap = None,
    type: UploadType = None,
) -> dict[str, Any]:
    try:
        folder, up = await _receive(request, user, file, map, type)
    except TooBig:
        raise
    except InvalidInput as exc:
        field = getattr(exc, "field", "") or "map"
        return {"ok": False, "problems": [{"line": "", "field": field, "detail": str(exc)}]}
    with folder:
        answer: dict[str, Any] = {
            "file": up.path.name,
            "native": up.native,
            "map": _map_json(up.cm) if up.cm is not None else None,
            "toml": map_to_toml(up.cm, up.comments) if up.cm is not None else None,
            "unresolved": {
                col: {"near": near, "why": why}
                for col, (near, why) in (up.cm.unresolved if up.cm else {}).items()
            },
            "fields": field_names(),
        }
        try:
            report = await run_in_threadpool(up.run, request, user, type, True)
        except LottraceError as exc:
            return answer | {"ok": False, "problems": _row_problems(exc, up, _lang(request))}
    return answer | {
        "ok": True,
        "problems": [],
        "added": report.added,
        "duplicates": report.duplicates,
        "warnings": _upload_warnings(report, up, _lang(request)),
    }


@router.post(
    "/api/upload/import",
    status_code=201,
    summary="Import a sheet with its column map, all or nothing (`lottrace import --map`)",
    responses={422: {"description": "Every bad row, in line order; nothing was written"}},
)
async def upload_import(
    request: Request,
    user: User,
    file: UploadFile,
    map: UploadMap = None,
    type: UploadType = None,
) -> JSONResponse:
    folder, up = await _receive(request, user, file, map, type)
    with folder:
        try:
            report = await run_in_threadpool(up.run, request, user, type, False)
        except (NotAllowed, NotAuthenticated):
            raise
        except LottraceError as exc:
            problems = _row_problems(exc, up, _lang(request))
            body = {
                "type": f"https://lottrace.org/problems/{type_name(exc)}",
                "title": "bad rows",
                "status": 422,
                "detail": f"{len(problems)} problem(s); nothing was written",
                "problems": problems,
            }
            return JSONResponse(body, status_code=422)
    return JSONResponse(
        {
            "added": report.added,
            "duplicates": report.duplicates,
            "warnings": _upload_warnings(report, up, _lang(request)),
        },
        status_code=201,
    )


def type_name(exc: Exception) -> str:
    return type(exc).__name__
