"""The HTTP face: lottrace served to a whole supply chain (``lottrace serve``).

A FastAPI app over one ledger. Like the CLI it is thin: each route parses
its request, checks who is asking (:mod:`lottrace.access`), calls one library
function, and renders its answer; the JSON bodies are the CLI's ``--json``
outputs. It serves:

- GS1's **EPCIS 2.0 REST bindings**: ``POST /capture`` (a document, all or
  nothing; ``202`` and a capture job), ``GET /capture/{id}``, ``POST /events``
  (one event), ``GET /events`` (the standard query parameters, paged) and
  ``GET /events/{eventID}``, with the ``GS1-EPCIS-Version`` and
  ``GS1-CBV-Version`` headers;
- **lottrace's own API** under ``/api/``: a lot's history, upstream,
  downstream, EUDR GeoJSON, certification, timeline and passport; delays,
  bottlenecks, stuck lots; ``POST /api/import`` for files;
- the **passport resolver**: ``/lot/{lot}`` and GS1 Digital Link paths
  ``/01/{gtin}/10/{lot}``, what a passport's QR code points at.

Every request but the resolver of a public passport and ``/openapi.json``
needs ``Authorization: Bearer TOKEN``; the identity behind the token is the
``actor`` of every event written through the server, whatever the body says.
Errors are RFC 7807 problem documents naming the field where there is one.
The error boundary is :func:`_problem`: every :class:`LottraceError` is
mapped there, once.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import __version__, web
from .access import AccessFile, Identity, NotAllowed, NotAuthenticated, visible_lots
from .errors import (
    BadRows,
    IntegrityViolation,
    InvalidEvent,
    InvalidInput,
    LedgerError,
    LottraceError,
    TooBig,
    UnknownEvent,
    UnknownLot,
)
from .ledger import AppendReport, Ledger
from .storage import Pool
from .web import pages
from .web.deps import (
    AnsweredInThread,
    Credentials,
    OrJSON,
    Readers,
    User,
    check_lot,
    need_analyst,
    written_by,
)

__all__ = ["create_app"]

log = logging.getLogger("lottrace.server")

EPCIS_HEADERS = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
#: Capture jobs kept in memory (the oldest are forgotten first).
_JOBS = 1000
_JSON_LD = "application/ld+json"


def _problem_body(kind: str, title: str, status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 7807 problem document: every error the server answers has this shape."""
    return {
        "type": f"https://lottrace.org/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def _problem(
    exc: LottraceError, db: Path | None = None, scrub: Callable[[str], str] | None = None
) -> OrJSON:
    """The one place a LottraceError becomes an HTTP answer: status and an RFC 7807 body.

    Where the message names the ledger's file, only its name is shown: the
    server's folders are nobody's business (``scrub`` takes out others, such
    as where uploads were put).
    """

    def clean(text: str) -> str:
        return scrub(text) if scrub is not None else text

    status, title = 400, "bad request"
    headers: dict[str, str] = {}
    if isinstance(exc, NotAuthenticated):
        status, title = 401, "not authenticated"
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, NotAllowed):
        status, title = 403, "forbidden"
    elif isinstance(exc, UnknownLot | UnknownEvent):
        status, title = 404, "not found"
    elif isinstance(exc, BadRows):
        status, title = 422, "bad rows"
    elif isinstance(exc, TooBig):
        status, title = 413, "too large"
    elif isinstance(exc, InvalidEvent | InvalidInput):
        status, title = 400, "bad input"
    elif isinstance(exc, IntegrityViolation):
        status, title = 500, "the ledger failed its integrity check"
    elif isinstance(exc, LedgerError):
        status, title = 503, "the ledger is not available"
    detail = str(exc)
    if db is not None:
        for spelled in (str(db.absolute()), str(db)):
            detail = detail.replace(spelled, db.name)
    body = _problem_body(type(exc).__name__, title, status, clean(detail))
    for name in ("where", "field", "rule"):
        value = getattr(exc, name, None)
        if value:
            body[name] = clean(str(value))
    if isinstance(exc, BadRows):
        body["problems"] = [
            {
                k: v
                for k, v in {
                    "where": clean(getattr(p, "where", "")),
                    "field": getattr(p, "field", ""),
                    "detail": clean(str(p)),
                }.items()
                if v
            }
            for p in exc.problems
        ]
    return OrJSON(body, status_code=status, headers=headers | EPCIS_HEADERS)


class _BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413, before reading it all."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await _too_large(send, self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def quiet(message: Message) -> None:
            if not refused:  # after the 413, nothing the app says is sent
                await send(message)

        try:
            await self.app(scope, limited, quiet)
        except Exception:
            if not refused:
                raise


class _HeadersAndLog:
    """Every answer's security, CSP and EPCIS version headers; one log line per request.

    A plain ASGI middleware (Starlette's ``BaseHTTPMiddleware`` costs a task
    and two streams per request). The log line names the route's template
    only: no query string, token, lot code or user.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for k, v in _SECURITY.items():
                    headers.setdefault(k, v)
                page = headers.get("content-type", "").startswith("text/html")
                headers.setdefault("Content-Security-Policy", _CSP_PAGE if page else _CSP_API)
                for k, v in EPCIS_HEADERS.items():
                    headers.setdefault(k, v)
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        finally:
            log.info(
                "%s %s %d %.1f ms",
                scope["method"],
                getattr(scope.get("route"), "path_format", "?"),
                status,
                (time.perf_counter() - start) * 1000,
            )


class _Static(StaticFiles):
    """The web app's files: cached by the browser, checked again each time (ETag)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(
        _problem_body(
            "TooLarge", "request too large", 413, f"the request body is over {limit} bytes"
        )
    )
    headers = [(b"content-type", b"application/problem+json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in (_SECURITY | EPCIS_HEADERS).items()]
    headers.append((b"content-security-policy", _CSP_API.encode()))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


#: The body of a capture: an EPCIS 2.0 JSON-LD document or event, or EPCIS 2.0 / 1.2 XML.
_EPCIS_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/ld+json": {"schema": {"type": "object"}},
        "application/json": {"schema": {"type": "object"}},
        "application/xml": {"schema": {"type": "string"}},
    },
}

_SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_CSP_API = "default-src 'none'; frame-ancestors 'none'"
_CSP_PAGE = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


def create_app(
    db: str | Path,
    *,
    max_body_bytes: int = 50_000_000,
    cors_origins: tuple[str, ...] = (),
    public_url: str | None = None,
    pool_size: int = 8,
) -> FastAPI:
    """The app serving the ledger at ``db`` (its access file beside it).

    ``max_body_bytes`` bounds every request body (413 beyond it);
    ``cors_origins`` are the only origins a browser may call it from (none by
    default); ``public_url`` is the server's address as passports' QR codes
    should name it (default: the address each request came to).

    A ledger on PostgreSQL is served through a pool of at most ``pool_size``
    connections, opened when the app starts and closed when it shuts down
    (its lifespan), so requests do not each connect. An SQLite file is
    opened per request.
    """
    from .storage import is_server_uri, open_pool

    db = db if is_server_uri(db) else Path(db)
    access = AccessFile(db)
    shown_path = db if isinstance(db, Path) else None  # a URI is shown without its password
    Ledger.reader(db).close()  # fail now, with one line, if it is not a ledger
    pools: list[Pool] = []  # the one pool while the app runs

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The capture process starts with the server (it takes a second to import
        # lottrace), not with the first capture.
        _capture_process().submit(os.getpid)
        pool = await _in_thread(functools.partial(open_pool, db, size=pool_size))
        if pool is not None:
            pools.append(pool)
        _settle()
        try:
            yield
        finally:
            pools.clear()
            if pool is not None:
                await _in_thread(pool.close)
            await _in_thread(_stop_capture_process)  # its capture, if any, ends first

    app = FastAPI(
        lifespan=lifespan,
        title="lottrace",
        version=__version__,
        description=(
            "A traceability ledger for coffee lots: GS1 EPCIS 2.0 capture and query, "
            "lot provenance, EUDR, certification and delay analytics. Every request "
            "needs `Authorization: Bearer TOKEN` (`lottrace users add`), except a "
            "public passport."
        ),
        docs_url=None,  # Swagger UI loads from a CDN; the OpenAPI document is at /openapi.json
        redoc_url=None,
        default_response_class=OrJSON,
    )
    app.router.route_class = AnsweredInThread  # answers rendered off the event loop
    jobs: OrderedDict[str, dict[str, Any]] = OrderedDict()
    jobs_lock = threading.Lock()
    app.state.access = access
    app.state.db = db
    app.state.pools = pools  # the pool while the app runs
    readers = app.state.readers = Readers(db, pools)  # how every route opens it to read
    app.state.public_url = public_url

    # ------------------------------------------------------------------ boundary

    @app.exception_handler(LottraceError)
    async def lottrace_error(_request: Request, exc: LottraceError) -> Response:
        return _problem(exc, shown_path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        return OrJSON(
            _problem_body("HTTP", str(exc.detail).lower(), exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=dict(exc.headers or {}) | EPCIS_HEADERS,
        )

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, exc: Exception) -> Response:
        log.error("internal error %s", type(exc).__name__)  # no message: it may name data
        detail = f"internal error {type(exc).__name__} (please report it)"
        return OrJSON(
            _problem_body("InternalError", "internal error", 500, detail),
            status_code=500,
            headers=EPCIS_HEADERS | _SECURITY,
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
        detail = f"{where}: {first.get('msg', 'invalid')}"
        return OrJSON(
            _problem_body("RequestValidationError", "bad request", 400, detail, field=where),
            status_code=400,
            headers=EPCIS_HEADERS,
        )

    app.add_middleware(_HeadersAndLog)

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    # ------------------------------------------------------------------ helpers

    def pool() -> Pool | None:
        return pools[0] if pools else None

    reading = readers.open

    async def capture(user: Identity, raw: bytes, name: str) -> dict[str, Any]:
        """Capture a document in the capture process; its report, or the problem raised."""
        status, answer = await _in_capture_process(db, user, raw, name)
        if status != 200:
            raise _Answered(status, answer)
        return answer

    # ------------------------------------------------------------------ EPCIS

    @app.get("/", summary="What this server offers", tags=["EPCIS"])
    def index(request: Request) -> Any:
        """JSON for programs; a browser (Accept: text/html first) gets the web app's home."""
        if pages.wants_html(request):
            return pages.home(request)
        return {
            "name": "lottrace",
            "version": __version__,
            "resources": ["capture", "events", "api"],
        }

    @app.post(
        "/capture",
        status_code=202,
        summary="Capture an EPCIS document, all or nothing",
        tags=["EPCIS"],
        responses={400: {"description": "A problem, naming its JSON path or XML line"}},
        openapi_extra={"requestBody": _EPCIS_BODY},
    )
    async def capture_document(request: Request, user: User) -> Response:
        access.check_write(user, [])  # no capture job for a role that does not write
        raw = await request.body()
        job_id = "c" + secrets.token_hex(8)
        created = _now()
        job: dict[str, Any] = {
            "captureID": job_id,
            "createdAt": created,
            "running": True,
            "success": True,
            "captureErrorBehaviour": "rollback",
            "errors": [],
            "_org": user.org,
        }
        try:
            report = await capture(user, raw, "capture " + job_id)
        except _Answered as exc:
            if exc.status not in (401, 403):  # no capture job for what the caller may not do
                job.update(running=False, success=False, errors=[exc.body], finishedAt=_now())
                _keep(jobs, jobs_lock, job)
            return exc.response()
        job.update(running=False, finishedAt=_now(), report=report)
        _keep(jobs, jobs_lock, job)
        shown = {k: v for k, v in job.items() if not k.startswith("_")}
        return OrJSON(shown, status_code=202, headers={"Location": f"/capture/{job_id}"})

    @app.get("/capture/{captureID}", summary="A capture job's state", tags=["EPCIS"])
    def capture_job(captureID: str, user: User) -> dict[str, Any]:
        with jobs_lock:
            job = jobs.get(captureID)
        if job is None or job.get("_org") not in (None, user.org):
            raise UnknownEvent(f"no capture job {captureID}")
        return {k: v for k, v in job.items() if not k.startswith("_")}

    @app.post(
        "/events",
        status_code=201,
        summary="Capture one EPCIS event",
        tags=["EPCIS"],
        openapi_extra={"requestBody": _EPCIS_BODY},
    )
    async def capture_event(request: Request, user: User) -> Response:
        raw = await request.body()
        try:
            report = await capture(user, raw, "event")
        except _Answered as exc:
            return exc.response()
        return OrJSON(report, status_code=201)

    @app.get("/events", summary="Query events (EPCIS 2.0 query parameters)", tags=["EPCIS"])
    def get_events(
        request: Request,
        user: User,
        eventType: str | None = None,
        GE_eventTime: str | None = None,
        LT_eventTime: str | None = None,
        EQ_bizStep: str | None = None,
        EQ_disposition: str | None = None,
        EQ_bizLocation: str | None = None,
        EQ_readPoint: str | None = None,
        MATCH_epc: str | None = None,
        MATCH_anyEPC: str | None = None,
        MATCH_epcClass: str | None = None,
        MATCH_anyEPCClass: str | None = None,
        EQ_eventID: str | None = None,
        perPage: Annotated[int, Query(ge=1, le=1000)] = 100,
        nextPageToken: str | None = None,
    ) -> Response:
        from .epcis_query import query_events

        params = {
            k: v
            for k, v in {
                "eventType": eventType,
                "GE_eventTime": GE_eventTime,
                "LT_eventTime": LT_eventTime,
                "EQ_bizStep": EQ_bizStep,
                "EQ_disposition": EQ_disposition,
                "EQ_bizLocation": EQ_bizLocation,
                "EQ_readPoint": EQ_readPoint,
                "MATCH_epc": MATCH_epc,
                "MATCH_anyEPC": MATCH_anyEPC,
                "MATCH_epcClass": MATCH_epcClass,
                "MATCH_anyEPCClass": MATCH_anyEPCClass,
                "EQ_eventID": EQ_eventID,
            }.items()
            if v is not None
        }
        key = _params_key(params, user)
        offset = _read_token(nextPageToken, key) if nextPageToken else 0
        with reading() as ledger:
            lots = visible_lots(ledger, user, access)
            doc, more = query_events(ledger, params, lots=lots, offset=offset, limit=perPage)
        headers = {}
        if more:
            token = _make_token(offset + perPage, key)
            from urllib.parse import urlencode

            query = urlencode(
                [(k, v) for k, v in request.query_params.items() if k != "nextPageToken"]
                + [("nextPageToken", token)]
            )
            link = f"/events?{query}"
            headers["Link"] = f'<{link}>; rel="next"'
            headers["GS1-Next-Page-Token-Expires"] = "never"
        return OrJSON(doc, headers=headers, media_type=_JSON_LD)

    @app.get("/events/{eventID:path}", summary="One event by its eventID", tags=["EPCIS"])
    def get_event(eventID: str, user: User) -> Response:
        from .epcis_query import query_events

        with reading() as ledger:
            lots = visible_lots(ledger, user, access)
            doc, _more = query_events(ledger, {"EQ_eventID": eventID}, lots=lots, offset=0, limit=1)
        found = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        if not found:
            raise UnknownEvent(f"no event {eventID}")
        return OrJSON(found[0], media_type=_JSON_LD)

    # ------------------------------------------------------------------ lottrace's API

    @app.get(
        "/api/lots/{lot:lot}", summary="A lot's history (`lottrace history --json`)", tags=["lots"]
    )
    def lot_history(lot: str, user: User) -> Any:
        from .provenance import history

        with reading() as ledger:
            lots = check_lot(ledger, user, lot, access)
            answer = history(ledger, lot)
        if lots is not None:  # not the events that formed lots the caller may not see
            answer["events"] = [e for e in answer["events"] if _event_lots(e) <= lots]
        return answer

    @app.get("/api/lots/{lot:lot}/upstream", summary="`lottrace upstream --json`", tags=["lots"])
    def lot_upstream(lot: str, user: User) -> Any:
        from .provenance import upstream

        with reading() as ledger:
            check_lot(ledger, user, lot, access)
            return upstream(ledger, lot)

    @app.get(
        "/api/lots/{lot:lot}/downstream", summary="`lottrace downstream --json`", tags=["lots"]
    )
    def lot_downstream(lot: str, user: User) -> Any:
        from .provenance import downstream

        with reading() as ledger:
            lots = check_lot(ledger, user, lot, access)
            answer = downstream(ledger, lot)
        return answer if lots is None else _only_visible(answer, lots)

    @app.get("/api/lots/{lot:lot}/eudr", summary="EUDR GeoJSON (`lottrace eudr`)", tags=["lots"])
    def lot_eudr(lot: str, user: User) -> Any:
        from .dds import lot_proof

        with reading() as ledger:
            check_lot(ledger, user, lot, access)
            collection, problems = lot_proof(ledger, lot)
        if problems:
            detail = f"lot {lot} cannot be proven EUDR-compliant: {len(problems)} problem(s)"
            return OrJSON(
                _problem_body("NotProvable", "not provable", 422, detail, problems=problems),
                status_code=422,
            )
        return OrJSON(collection, media_type="application/geo+json")

    @app.get("/api/lots/{lot:lot}/certify", summary="`lottrace certify --json`", tags=["lots"])
    def lot_certify(
        lot: str,
        user: User,
        scheme: Annotated[str, Query(pattern="^(organic|fairtrade|rainforest|cafe_femenino)$")],
    ) -> Any:
        from .compliance import certify

        with reading() as ledger:
            check_lot(ledger, user, lot, access)
            return certify(ledger, lot, scheme)

    @app.get("/api/lots/{lot:lot}/timeline", summary="`lottrace timeline --json`", tags=["lots"])
    def lot_timeline(lot: str, user: User) -> Any:
        from .timeline import timeline

        with reading() as ledger:
            check_lot(ledger, user, lot, access)
            return timeline(ledger, lot)

    @app.get(
        "/api/lots/{lot:lot}/passport",
        summary="The lot passport (HTML)",
        tags=["lots"],
        response_class=HTMLResponse,
    )
    def lot_passport(
        request: Request,
        lot: str,
        user: User,
        lang: Annotated[str, Query(pattern="^(en|es)$")] = "en",
    ) -> HTMLResponse:
        with reading() as ledger:
            check_lot(ledger, user, lot, access)
            return _passport(ledger, request, lot, lang, public_url)

    @app.get("/api/delays", summary="`lottrace delays --json`", tags=["delays"])
    def api_delays(
        user: User,
        by: Annotated[str, Query(pattern="^(stage|site|month)$")] = "stage",
        since: str | None = None,
        until: str | None = None,
    ) -> Any:
        from .delays import delays

        need_analyst(user)
        with reading() as ledger:
            return delays(ledger, by, _time(since, "since"), _time(until, "until"))

    @app.get("/api/bottlenecks", summary="`lottrace bottlenecks --json`", tags=["delays"])
    def api_bottlenecks(
        user: User,
        top: Annotated[int, Query(ge=1, le=10_000)] = 10,
        since: str | None = None,
        until: str | None = None,
    ) -> Any:
        from .delays import bottlenecks

        need_analyst(user)
        with reading() as ledger:
            return bottlenecks(ledger, top, _time(since, "since"), _time(until, "until"))

    @app.get("/api/stuck", summary="`lottrace stuck --json`", tags=["delays"])
    def api_stuck(
        user: User,
        as_of: Annotated[str | None, Query(alias="as-of")] = None,
        min_kg: Annotated[float, Query(alias="min-kg", ge=0, le=1e9)] = 0.0,
    ) -> Any:
        from .delays import stuck

        need_analyst(user)
        when = _time(as_of, "as-of") or datetime.now(UTC)
        with reading() as ledger:
            return stuck(ledger, when, min_kg=min_kg)

    @app.post(
        "/api/import",
        summary="Import files, all or nothing (`lottrace import --json`)",
        tags=["import"],
        responses={422: {"description": "Every bad row, in file and line order"}},
    )
    async def api_import(
        user: User,
        files: list[UploadFile],
        type: str | None = None,
    ) -> Any:
        import tempfile

        access.check_write(user, [])
        with tempfile.TemporaryDirectory(prefix="lottrace-upload-") as folder:
            paths = []
            for i, upload in enumerate(files):
                name = re.sub(r"[^\w.\- ]", "_", Path(upload.filename or "").name)[:100]
                if name.strip(".") == "":
                    name = f"upload-{i}"
                path = Path(folder) / str(i) / name  # each file under the name it was sent
                path.parent.mkdir()
                path.write_bytes(await upload.read())
                paths.append(path)
            hidden = re.compile(re.escape(folder) + r"/\d+/")
            try:
                report = await _in_thread(_import_files, db, pool(), user, access, paths, type)
            except LottraceError as exc:
                return _problem(exc, shown_path, lambda text: hidden.sub("", text))
        warnings = [hidden.sub("", str(w)) for w in report.warnings]
        return report.as_dict() | {"warning_list": warnings}

    # ------------------------------------------------------------------ the passport resolver

    @app.get("/lot/{lot:lot}", response_class=HTMLResponse, tags=["passport"])
    def resolve_lot(
        request: Request,
        lot: str,
        credentials: Credentials,
        lang: Annotated[str, Query(pattern="^(en|es)$")] = "en",
    ) -> HTMLResponse:
        """The live passport a QR code points at: public if its owner made it so."""
        with reading() as ledger:
            if not access.is_public(lot):
                user = access.identify(credentials.credentials if credentials else None)
                check_lot(ledger, user, lot, access)
            else:
                ledger.require_lot(lot)
            return _passport(ledger, request, lot, lang, public_url)

    @app.get("/01/{gtin}/10/{lot:lot}", response_class=HTMLResponse, tags=["passport"])
    def resolve_digital_link(
        request: Request,
        gtin: Annotated[str, PathParam(pattern=r"^\d{8,14}$")],
        lot: str,
        credentials: Credentials,
        lang: Annotated[str, Query(pattern="^(en|es)$")] = "en",
    ) -> HTMLResponse:
        """A GS1 Digital Link (GTIN and batch/lot) resolved to the lot's passport."""
        return resolve_lot(request, lot, credentials, lang)

    # ------------------------------------------------------------------ the web app

    app.include_router(web.router)
    app.mount("/static", _Static(directory=web.STATIC), name="static")

    # The outermost layer: a body over the limit is refused before any route reads it.
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    return app


# --------------------------------------------------------------------------- the capture process

#: The process captures are parsed, checked and appended in (one, started at the first
#: capture). Parsing a 1,000-event document holds the interpreter for about a third of a
#: second; in the serving process that would stall every query behind it (the GIL).
_capture_pool: ProcessPoolExecutor | None = None
_capture_pool_lock = threading.Lock()


class _Answered(Exception):
    """A capture the capture process refused: the status and problem body to answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status, self.body = status, body
        super().__init__(status)

    def response(self) -> OrJSON:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        return OrJSON(self.body, status_code=self.status, headers=headers)


def _capture_process() -> ProcessPoolExecutor:
    global _capture_pool
    with _capture_pool_lock:
        if _capture_pool is None:
            import multiprocessing

            # spawn, not fork: the serving process has threads (a fork would copy their locks).
            _capture_pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_end_with,
                initargs=(os.getpid(),),
            )
        return _capture_pool


def _stop_capture_process() -> None:
    """Let the capture process finish its capture and end (at the server's shutdown): killed
    with the server instead, it left its semaphores to the resource tracker's warning."""
    global _capture_pool
    with _capture_pool_lock:
        pool, _capture_pool = _capture_pool, None
    if pool is not None:
        pool.shutdown(wait=True)


#: The modules the routes import when first asked: imported before the server settles.
_ROUTE_MODULES = ("provenance", "delays", "dds", "passport", "epcis_query", "timeline")


def _settle() -> None:
    """Once the server has started: import what the routes will, then freeze what is alive.

    Python's full garbage collection walks every object that has lived
    long, however old; in a server that is all of FastAPI, pydantic and
    lottrace, and each full pass held every request for 45-95 ms, every two
    seconds or so under load (measured with a gc callback on
    ``bench/serve_load.py``), which was the slow tail of ``upstream``.
    ``gc.freeze`` moves what exists now out of the collector's sight;
    objects made later are collected as before.
    """
    import gc
    import importlib

    for name in _ROUTE_MODULES:
        importlib.import_module(f".{name}", __package__)
    gc.collect()
    gc.freeze()


#: How much lower the capture process's CPU priority is than the server's (``nice``):
#: a capture is batch work its client waits seconds for, a query is someone
#: waiting on a page, so on a busy machine queries get the CPU first.
CAPTURE_NICE = 10


def _end_with(server: int) -> None:
    """In the capture process: lower its priority (:data:`CAPTURE_NICE`), and end it
    when the server that started it is gone.

    A SIGKILLed server tells its capture process nothing (the process holds
    both ends of its own task pipe, so it never reads an end of file), and it
    would wait forever. A capture it was running when the server died is
    abandoned uncommitted: the log stays before the batch.
    """

    with contextlib.suppress(OSError):  # not allowed here: captures keep the server's priority
        os.nice(CAPTURE_NICE)

    def watch() -> None:
        while os.getppid() == server:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="lottrace-end-with-server", daemon=True).start()


async def _in_capture_process(
    db: str | Path, user: Identity, raw: bytes, name: str
) -> tuple[int, dict[str, Any]]:
    """Run :func:`_capture_here` in the capture process; ``(200, report)`` or a problem.

    Captures are one at a time anyway (the log has one writer), so one process
    is enough. If it dies (killed, out of memory), the capture is answered 503
    and the next one starts a new process; what it had appended is whole or
    absent (the batch is one transaction), and a retry of the same document
    stores nothing twice.
    """
    import asyncio
    from concurrent.futures.process import BrokenProcessPool

    global _capture_pool
    pool = _capture_process()
    try:
        return await asyncio.get_running_loop().run_in_executor(
            pool, _capture_here, db, user, raw, name
        )
    except BrokenProcessPool:
        with _capture_pool_lock:
            if _capture_pool is pool:
                _capture_pool = None
        log.error("the capture process died")
        detail = "the capture process stopped; nothing was answered for: send the document again"
        return 503, _problem_body("LedgerError", "the ledger is not available", 503, detail)


def _capture_here(
    db: str | Path, user: Identity, raw: bytes, name: str
) -> tuple[int, dict[str, Any]]:
    """Parse, check and append one capture (in the capture process): its answer.

    The answer is plain data (a status and a JSON body), not objects: what
    crosses between processes is pickled, and the error tree's keyword-only
    arguments do not survive that.
    """
    from .contexts import ContextRegistry
    from .epcis import parse_document
    from .importing import import_documents

    try:
        if isinstance(db, Path):
            contexts = ContextRegistry(db).contexts()
        else:  # a ledger on a database server: the registry LOTTRACE_CONTEXTS names, if any
            folder = os.environ.get("LOTTRACE_CONTEXTS")
            contexts = ContextRegistry(folder=folder).contexts() if folder else {}
        doc = parse_document(raw, name, contexts=contexts)
        access = AccessFile(db)
        with Ledger(db) as ledger:
            report = import_documents(
                ledger, [(name, doc)], transform=written_by(user, access, ledger)
            )
    except LottraceError as exc:
        answer = _problem(exc, db if isinstance(db, Path) else None)
        return answer.status_code, orjson.loads(answer.body)
    return 200, report.as_dict()


# --------------------------------------------------------------------------- helpers


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking ledger work off the event loop."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def _import_files(
    db: str | Path,
    pool: Pool | None,
    user: Identity,
    access: AccessFile,
    paths: list[Path],
    default_type: str | None,
) -> AppendReport:
    """The library's import of uploaded files: in one process (a server must not fork)."""
    from .importing import ReadOptions, import_files

    with Ledger(db, pool=pool) as ledger:
        return import_files(
            ledger,
            paths,
            ReadOptions(default_type=default_type),
            parallel=False,
            transform=written_by(user, access, ledger),
        )


def _passport(
    ledger: Ledger, request: Request, lot: str, lang: str, public_url: str | None
) -> HTMLResponse:
    from urllib.parse import quote

    from .passport import passport

    base = (public_url or str(request.base_url)).rstrip("/")
    return HTMLResponse(passport(ledger, lot, lang=lang, url=f"{base}/lot/{quote(lot, safe='')}"))


def _only_visible(answer: dict[str, Any], lots: set[str]) -> dict[str, Any]:
    """A downstream answer cut to the lots the caller may see (rows and lists of codes)."""
    out = dict(answer)
    for key, value in answer.items():
        if not isinstance(value, list) or not value:
            continue
        if isinstance(value[0], dict) and "lot" in value[0]:
            out[key] = [row for row in value if row["lot"] in lots]
        elif isinstance(value[0], str) and key == "lots":
            out[key] = [code for code in value if code in lots]
    return out


def _event_lots(event: dict[str, Any]) -> set[str]:
    """Every lot an event (as ``history`` shows it) names: its lot, inputs and outputs."""
    found = {str(event["lot"])} if event.get("lot") else set()
    for key in ("inputs", "outputs"):
        for item in event.get(key) or ():
            if isinstance(item, dict) and item.get("lot"):
                found.add(str(item["lot"]))
    return found


def _keep(
    jobs: OrderedDict[str, dict[str, Any]], lock: threading.Lock, job: dict[str, Any]
) -> None:
    with lock:
        jobs[job["captureID"]] = job
        while len(jobs) > _JOBS:
            jobs.popitem(last=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _time(value: str | None, name: str) -> datetime | None:
    from .delays import window_bound

    return None if value is None else window_bound(value, name)


_TOKEN_KEY = secrets.token_bytes(16)


def _params_key(params: dict[str, str], user: Identity) -> str:
    text = orjson.dumps(params, option=orjson.OPT_SORT_KEYS) + user.org.encode()
    return hashlib.sha256(_TOKEN_KEY + text).hexdigest()[:16]


def _make_token(offset: int, key: str) -> str:
    return base64.urlsafe_b64encode(f"{offset}:{key}".encode()).decode().rstrip("=")


def _read_token(token: str, key: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        offset, _, found = text.partition(":")
        if found != key or not offset.isdigit():
            raise ValueError
        return int(offset)
    except ValueError:
        raise InvalidEvent(
            "nextPageToken: not a token this server gave for this query", field="nextPageToken"
        ) from None
