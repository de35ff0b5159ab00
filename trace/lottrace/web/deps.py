"""What every route of the server and of the web app needs from a request: the caller, the
ledger, and the checks on what the caller may read.

One copy, used by :mod:`lottrace.server`'s routes and the web app's: the
caller is the user behind ``Authorization: Bearer TOKEN`` (401 without one),
the ledger is the one ``create_app`` was given (kept in ``app.state``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import Convertor, register_url_convertor

from ..access import AccessFile, Identity, NotAllowed, visible_lots
from ..errors import UnknownLot
from ..ledger import Ledger

__all__ = [
    "LOT_RESOURCES",
    "Credentials",
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


def reading(request: Request) -> Ledger:
    """The served ledger, opened to read (close it: ``with reading(request) as ledger``).

    A ledger on PostgreSQL borrows a connection from the server's pool.
    """
    pools = getattr(request.app.state, "pools", None)
    return Ledger.reader(db_of(request), pool=pools[0] if pools else None)


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
