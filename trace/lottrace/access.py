"""Who may do what on a served ledger: organisations, users, roles, tokens, and the rules that decide.

A ledger belongs to one organisation, its **owner** (the cooperative that
runs it), set when its first user is added (``lottrace users add NAME --org
ORG --role admin --owner``) and kept in the access file beside the ledger,
``LEDGER.access.json`` (for a ledger on PostgreSQL, the file
``LOTTRACE_ACCESS`` names). Its sites belong to the owner unless declared to
belong to another organisation (``lottrace users site SITE --org ORG``).

Roles and what they may do (see docs/deploying.md):

``field``, ``qc``
    write events, only at their organisation's sites; read their
    organisation's lots.
``analyst``
    read their organisation's lots and the delay analyses.
``buyer``
    read only the lots exported to their organisation (an export's
    ``buyer``) and everything upstream of them.
``admin``
    everything ``qc`` and ``analyst`` may do, and manage their organisation's users.

"Their organisation's lots": for the owner, every lot of the ledger; for
another organisation, the lots an event at one of its sites touched, and
their upstream.

A token is shown once, when the user is added, and only its SHA-256 is
kept: tokens are 256 random bits, so a fast hash is enough (a slow one
protects guessable passwords, which these are not). Tokens are compared in
constant time.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InvalidInput, LedgerError, LottraceError, RuleViolation
from .ledger import Ledger

__all__ = [
    "ROLES",
    "AccessFile",
    "Identity",
    "NotAllowed",
    "NotAuthenticated",
    "WriteGuard",
    "site_key",
    "visible_lots",
]

ROLES = ("field", "qc", "analyst", "buyer", "admin")
#: Roles that write events.
WRITERS = frozenset({"field", "qc", "admin"})
#: Roles that read the delay analyses of their organisation.
ANALYSTS = frozenset({"analyst", "admin", "qc"})
_NAME = re.compile(r"[^\W_][\w .,'&@()-]{0,99}")
#: lottrace's own sites as EPCIS names them (``epcis.SITE_BASE``).
_SITE_URI = "https://lottrace.org/site/"


def site_key(site: str) -> str:
    """A site as the access file names it: ``hq:JUMARP`` for its EPCIS URI form too."""
    return site.removeprefix(_SITE_URI)


class NotAuthenticated(LottraceError):
    """No token, or a token that is not a live user's (HTTP 401)."""


class NotAllowed(LottraceError):
    """The user's role or organisation does not allow this (HTTP 403).

    ``field`` names the event field that made it so (``site``, ``lot``), if one did.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Identity:
    """The user behind a request's token."""

    name: str
    org: str
    role: str
    #: Whether the organisation owns the ledger.
    owner: bool

    @property
    def actor(self) -> str:
        """What is recorded as the ``actor`` of every event this user writes."""
        return f"{self.name} ({self.org}, {self.role})"


@dataclass
class _Data:
    owner: str | None = None
    users: list[dict[str, Any]] = field(default_factory=list)
    sites: dict[str, str] = field(default_factory=dict)
    public: list[str] = field(default_factory=list)


def _check_name(what: str, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r}: use 1-100 letters, digits, spaces and . , ' & @ ( ) _ - "
            "(starting with a letter or digit)"
        )
    return value


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessFile:
    """The access file of a ledger: its owner, users (tokens hashed), sites of other
    organisations and the lots whose passports are public.

    Written atomically (a new file renamed over the old), readable only by
    its owner on the system (mode 0600).
    """

    def __init__(self, ledger: str | os.PathLike[str]) -> None:
        from .storage import is_server_uri

        if is_server_uri(ledger):
            # A ledger on a database server has no folder beside it: name the file.
            named = os.environ.get("LOTTRACE_ACCESS")
            if not named:
                raise InvalidInput(
                    "a ledger on a database server keeps its users in the file "
                    "LOTTRACE_ACCESS names: set it (e.g. /etc/lottrace/access.json)"
                )
            self.path = Path(named)
        else:
            self.path = Path(f"{os.fspath(ledger)}.access.json")

    _cached: tuple[tuple[int, int, int], _Data] | None = None

    def _load(self) -> _Data:
        """The file as it is now: read again whenever it changed (a revocation counts at once)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return _Data()
        except OSError as exc:
            raise LedgerError(f"{self.path.name}: cannot read the access file: {exc}") from None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cached is not None and self._cached[0] == stamp:
            return copy.deepcopy(self._cached[1])
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _Data()
        except (OSError, ValueError) as exc:  # the server's own file: not the caller's doing
            raise LedgerError(f"{self.path.name}: cannot read the access file: {exc}") from None
        data = _Data(
            owner=raw.get("owner"),
            users=list(raw.get("users", [])),
            sites=dict(raw.get("sites", {})),
            public=list(raw.get("public", [])),
        )
        self._cached = (stamp, copy.deepcopy(data))
        return data

    def version(self) -> tuple[int, int, int] | None:
        """The file's version as :meth:`_load` tells a change (mtime, size, inode); None when
        there is none: answers derived from the file are kept under it."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LedgerError(f"{self.path.name}: cannot read the access file: {exc}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _save(self, data: _Data) -> None:
        text = json.dumps(
            {"owner": data.owner, "users": data.users, "sites": data.sites, "public": data.public},
            indent=2,
            ensure_ascii=False,
        )
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=".access-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text + "\n")
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ management

    @property
    def owner(self) -> str | None:
        return self._load().owner

    def add_user(self, name: str, *, org: str, role: str, owner: bool = False) -> str:
        """Add a user and return its token, which is never stored and never shown again."""
        _check_name("user", name)
        _check_name("organisation", org)
        if role not in ROLES:
            raise InvalidInput(f"role {role!r}: choose one of {', '.join(ROLES)}")
        data = self._load()
        if owner:
            if data.owner not in (None, org):
                raise InvalidInput(f"the ledger's owner is {data.owner} already")
            data.owner = org
        if data.owner is None:
            raise InvalidInput(
                "the ledger has no owner yet: add its first user with --owner "
                "(the organisation that runs the ledger)"
            )
        if any(u["name"] == name and not u.get("revoked") for u in data.users):
            raise InvalidInput(f"user {name!r} exists already (revoke it first)")
        token = "lt_" + secrets.token_urlsafe(32)
        data.users.append(
            {
                "name": name,
                "org": org,
                "role": role,
                "token_sha256": _digest(token),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        self._save(data)
        return token

    def revoke(self, name: str, *, org: str | None = None) -> None:
        """Revoke a user's token (``org``: only a user of that organisation)."""
        data = self._load()
        found = [
            u
            for u in data.users
            if u["name"] == name and not u.get("revoked") and org in (None, u["org"])
        ]
        if not found:
            raise InvalidInput(f"no user {name!r} to revoke")
        for u in found:
            u["revoked"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._save(data)

    def users(self, *, org: str | None = None) -> list[dict[str, Any]]:
        """The users (never their token digests), of one organisation or all."""
        return [
            {k: v for k, v in u.items() if k != "token_sha256"}
            for u in self._load().users
            if org in (None, u["org"])
        ]

    def set_site(self, site: str, org: str) -> None:
        """Declare that ``site`` belongs to ``org`` (not to the ledger's owner)."""
        _check_name("organisation", org)
        data = self._load()
        data.sites[site_key(site)] = org
        self._save(data)

    def publish(self, lot: str, public: bool = True) -> None:
        """Make a lot's passport public (or private again)."""
        data = self._load()
        if public and lot not in data.public:
            data.public.append(lot)
        if not public and lot in data.public:
            data.public.remove(lot)
        self._save(data)

    # ------------------------------------------------------------------ decisions

    def identify(self, token: str | None) -> Identity:
        """The live user whose token this is; :class:`NotAuthenticated` otherwise."""
        if not token:
            raise NotAuthenticated("send a token: Authorization: Bearer TOKEN")
        digest = _digest(token)
        data = self._load()
        for u in data.users:
            if hmac.compare_digest(u["token_sha256"], digest) and not u.get("revoked"):
                return Identity(u["name"], u["org"], u["role"], u["org"] == data.owner)
        raise NotAuthenticated("the token is not a live user's")

    def site_org(self, site: str) -> str | None:
        """The organisation a site belongs to (its EPCIS URI form counts as the site)."""
        data = self._load()
        return data.sites.get(site_key(site), data.owner)

    def sites_of(self, org: str) -> set[str]:
        """The sites declared to belong to ``org`` (the owner's are all the others)."""
        return {s for s, o in self._load().sites.items() if o == org}

    def writable_sites(self, who: Identity, known: Iterable[str]) -> list[str]:
        """The sites ``who`` may write at, among ``known`` (the ledger's, most used first) and
        those declared to be its organisation's; none for a role that does not write."""
        if who.role not in WRITERS:
            return []
        data = self._load()
        mine = [s for s in known if data.sites.get(site_key(s), data.owner) == who.org]
        return mine + sorted(s for s, o in data.sites.items() if o == who.org and s not in mine)

    def is_public(self, lot: str) -> bool:
        return lot in self._load().public

    def check_write(self, who: Identity, sites: list[str]) -> None:
        """Refuse a write unless the role writes and every site is the user's organisation's."""
        if who.role not in WRITERS:
            raise NotAllowed(f"role {who.role} does not write events")
        for site in sites:
            if self.site_org(site) != who.org:
                raise NotAllowed(
                    f"site {site} is not {who.org}'s: {who.name} cannot write there", field="site"
                )


class WriteGuard:
    """What one caller may write into one ledger, checked event by event.

    An event is the caller's to write when the caller's role writes, its site
    is the caller's organisation's, every lot it names that exists already is
    one the caller may read (another organisation cannot draw from, move or
    restate the owner's lots by writing at a site of its own), and a
    correction voids only an event written at one of the caller's
    organisation's sites.
    """

    def __init__(self, access: AccessFile, who: Identity, ledger: Ledger) -> None:
        self.access = access
        self.who = who
        self.ledger = ledger
        self._visible: set[str] | None = None
        self._known = False
        access.check_write(who, [])

    def _may_read(self, lot: str) -> bool:
        if not self._known:
            self._visible = visible_lots(self.ledger, self.who, self.access)
            self._known = True
        return self._visible is None or lot in self._visible

    def check(
        self,
        site: str,
        lots: list[str] | list[tuple[str, str]],
        corrects: str | None = None,
        where: str = "",
    ) -> None:
        """Refuse the event unless it is the caller's to write (see the class).

        ``lots`` are the lot codes the event names, or (lot, role) pairs as
        :func:`lottrace.rules.lots_of` gives them. A lot the caller may not see is
        answered as the rules answer a lot that does not exist (``lot-unknown``), as
        the server's 404s do: the caller does not learn that it exists. Only a new
        lot's code (a harvest's) that is taken already cannot look free.
        """
        self.access.check_write(self.who, [site])
        inputs = 0
        for item in lots:
            lot, role = (item, "subject") if isinstance(item, str) else item
            if role == "input":
                inputs += 1
            if self.ledger.lot(lot) is None or self._may_read(lot):
                continue
            if role == "subject":
                raise RuleViolation(
                    f"lot {lot} was never created (log its harvest first)",
                    rule="lot-unknown",
                    where=where,
                    field="lot",
                )
            if role == "input":
                raise RuleViolation(
                    f"input lot {lot} was never created",
                    rule="lot-unknown",
                    where=where,
                    field=f"inputs[{inputs - 1}]",
                )
            raise NotAllowed(f"lot code {lot} cannot be used: choose another", field="lot")
        if corrects:
            try:
                target = self.ledger.event(corrects).event
            except LottraceError:
                return  # no such event: the rules refuse the correction, naming it
            if self.access.site_org(target.site) != self.who.org:
                raise NotAllowed(
                    f"event {corrects[:12]}... was written at {target.site}, not at a site of "
                    f"{self.who.org}'s: {self.who.name} cannot void it",
                    field="corrects",
                )


def visible_lots(ledger: Ledger, who: Identity, access: AccessFile) -> set[str] | None:
    """The lots ``who`` may read, or None for every lot of the ledger.

    The owner's users (but buyers) read everything. A buyer reads the lots
    exported to its organisation (the export's ``buyer``) and their upstream.
    Another organisation's users read the lots that events at its sites
    touched, and their upstream.
    """
    if who.owner and who.role != "buyer":
        return None
    roots: set[str] = set()
    if who.role == "buyer":
        for stored in ledger.events_of_types(["export"]):
            ev = stored.event
            if not stored.void and ev.field("buyer") == who.org and ev.subject is not None:
                roots.add(ev.subject)
    else:
        sites = access.sites_of(who.org)
        if sites:
            roots = {lot for lot, _t, _type, _role, site in ledger.leg_scan() if site in sites}
    lots = set(roots)
    for root in roots:
        lots.update(src for src, *_ in ledger.lineage_links(root, direction="up"))
    return lots
