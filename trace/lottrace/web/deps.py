"""What every route of the server and of the web app needs from a request: the caller, the
ledger, and the checks on what the caller may read.

One copy, used by :mod:`lottrace.server`'s routes and the web app's: the
caller is the user behind ``Authorization: Bearer TOKEN`` (401 without one),
the ledger is the one ``create_app`` was given (kept in ``app.state``).
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import Depends, Request
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response

from ..access import AccessFile, Identity, NotAllowed, visible_lots
from ..errors import UnknownLot
from ..ledger import Ledger
from ..storage import Pool, is_server_uri

__all__ = [
    "LOT_RESOURCES",
    "AnsweredInThread",
    "Credentials",
    "OrJSON",
    "Readers",
    "User",
    "access_of",
    "check_lot",
    "db_of",
    "need_analyst",
    "reading",
    "writing",
    "written_by",
]

#: The last path segments the lot routes give meaning to: ``/api/lots/{lot}/upstream`` ...
LOT_RESOURCES = ("upstream", "downstream", "eudr", "certify", "timeline", "passport", "card")


class _LotCode(Convertor[str]):
    """``{lot:lot}`` in a route: a lot code, which may hold ``/`` (GS1's AI 10 allows it).

    Clients send it percent-encoded (``%2F``) or not; the server sees it
    decoded. It ends before a last segment a lot route gives meaning to, so
    ``/api/lots/A/B/upstream`` is the upstream of lot ``A/B`` (a lot whose
    code ends in ``/upstream`` is read by its other routes only).
    """

    regex = "(?:(?!/(?:" + "|".join(LOT_RESOURCES) + ")$)[^\\n])+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


register_url_convertor("lot", _LotCode())


class OrJSON(JSONResponse):
    """JSON written by orjson, as the CLI writes it (non-ASCII kept, no spaces)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class AnsweredInThread(APIRoute):
    """A route whose plain (non-``async``) endpoint turns its answer into JSON bytes itself,
    in the worker thread it runs in.

    FastAPI would otherwise validate and serialize a returned dict on the
    event loop, where every other request waits for it: a 100 KB ``upstream``
    answer held the loop for milliseconds, and under 16 clients that wait was
    most of the slow requests' time (py-spy on ``bench/serve_load.py``). The
    OpenAPI document is unchanged: it is made from the endpoint's signature.
    The answer is written as :class:`OrJSON`, with the route's status code.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        made = kwargs.get("response_class")
        made = made.value if isinstance(made, DefaultPlaceholder) else made
        if (made is None or issubclass(made, JSONResponse)) and not inspect.iscoroutinefunction(
            endpoint
        ):
            endpoint = _answered_here(endpoint, kwargs.get("status_code") or 200)
        super().__init__(path, endpoint, **kwargs)


def _answered_here(endpoint: Callable[..., Any], status: int) -> Callable[..., Any]:
    if getattr(endpoint, "_answered_here", False):
        return endpoint  # a route included again (a router in a router)

    @functools.wraps(endpoint)
    def answered(*args: Any, **kwargs: Any) -> Any:
        answer = endpoint(*args, **kwargs)
        return answer if isinstance(answer, Response) else OrJSON(answer, status_code=status)

    answered._answered_here = True  # type: ignore[attr-defined]
    return answered


_bearer = HTTPBearer(auto_error=False, description="A token from `lottrace users add`.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def access_of(request: Request) -> AccessFile:
    """The access file of the served ledger."""
    access: AccessFile = request.app.state.access
    return access


def db_of(request: Request) -> str | Path:
    """The served ledger's path or URI."""
    db: str | Path = request.app.state.db
    return db


def _who(request: Request, credentials: Credentials) -> Identity:
    """The dependency every route but a public passport takes: the caller, or 401."""
    return access_of(request).identify(credentials.credentials if credentials else None)


User = Annotated[Identity, Depends(_who)]


class Readers:
    """How the server opens its ledger to read: ``with readers.open() as ledger``.

    On SQLite each worker thread keeps its read-only connection from one
    request to the next: opening one reads the schema and starts with an
    empty page cache, about 1 ms of a 4–5 ms ``upstream`` at a million
    events. A kept connection sees every commit (each read is its own
    transaction), and is opened again when the ledger file was replaced (a
    restore renames a copy over it) or when a request failed while using it.
    On PostgreSQL a connection is borrowed from the server's pool instead.
    """

    def __init__(self, db: str | Path, pools: list[Pool]) -> None:
        self.db = db
        self.pools = pools  # the pool while the app runs (filled by its lifespan)
        self._kept = threading.local()

    @contextmanager
    def open(self) -> Iterator[Ledger]:
        if self.pools or is_server_uri(self.db):
            with Ledger.reader(self.db, pool=self.pools[0] if self.pools else None) as ledger:
                yield ledger
            return
        try:
            st = os.stat(self.db)
            same_file: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            same_file = None  # let the open say what is wrong
        kept: tuple[tuple[int, int] | None, Ledger] | None = getattr(self._kept, "ledger", None)
        if kept is None or kept[0] != same_file or same_file is None or kept[1].conn.in_transaction:
            if kept is not None:
                kept[1].close()
            self._kept.ledger = None
            kept = (same_file, Ledger.reader(self.db))
            self._kept.ledger = kept
        try:
            yield kept[1]
        except BaseException:
            self._kept.ledger = None  # whatever the failure left behind goes with the connection
            kept[1].close()
            raise


def reading(request: Request) -> AbstractContextManager[Ledger]:
    """The served ledger, opened to read: ``with reading(request) as ledger`` (see :class:`Readers`)."""
    readers: Readers = request.app.state.readers
    return readers.open()


def writing(request: Request) -> Ledger:
    """The served ledger, opened to write."""
    return Ledger(db_of(request))


def check_lot(ledger: Ledger, user: Identity, lot: str, access: AccessFile) -> set[str] | None:
    """404 for a lot that does not exist, and for one the caller may not see.

    The same answer both ways, with no "did you mean" hint: a caller must
    not learn which lots exist beyond its own. The lots the caller may
    see are returned (None: all).
    """
    lots = visible_lots(ledger, user, access)
    if lots is None:
        ledger.require_lot(lot)
    elif lot not in lots:
        raise UnknownLot(f"no lot {lot!r}")
    return lots


def need_analyst(user: Identity) -> None:
    """403 unless the caller reads the delay analyses (the owner's analysts, qc, admins)."""
    if not (user.owner and user.role in ("analyst", "admin", "qc")):
        raise NotAllowed(f"role {user.role} of {user.org} does not read the delay analyses")


def written_by(user: Identity, access: AccessFile, ledger: Ledger) -> Callable[[str, Any], Any]:
    """Each event as written through the server: checked by a :class:`WriteGuard`, the
    caller its actor."""
    from ..access import WriteGuard
    from ..ledger import WholeInputs
    from ..rules import facts_of

    guard = WriteGuard(access, user, ledger)

    def stamp(where: str, ev: Any) -> Any:
        if isinstance(ev, WholeInputs):
            rec = ev.record
            lots = [(str(rec.get("lot", "")), "subject")]
            lots += [(str(i.get("lot", "")), "input") for i in rec["inputs"]]
            guard.check(str(rec.get("site", "")), lots, where=where)
            return WholeInputs({**rec, "actor": user.actor}, ev.whole)
        facts = facts_of(ev)
        guard.check(ev.site, list(facts.lots), facts.corrects, where=where)
        return ev.model_copy(update={"actor": user.actor})

    return stamp
