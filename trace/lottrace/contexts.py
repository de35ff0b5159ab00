"""A local registry of JSON-LD contexts, and the terms GS1's EPCIS context protects.

One job: let EPCIS documents that name a partner's ``@context`` URL import
offline, and refuse documents that redefine GS1's protected terms.

- The registry is a folder beside the ledger, ``<ledger>.contexts/``: an
  ``index.json`` (URL -> file name) and a copy of each context file. It is
  not in the ledger: the ledger holds events (append-only) and tables
  derived from them, which ``verify`` proves; a context is neither, and
  must be replaceable and removable. Nothing imported depends on it later:
  each foreign event keeps the prefixes it uses, so the ledger stays
  self-contained. lottrace never fetches a URL.
- :func:`resolve` replaces each registered URL in a document's ``@context``
  by the context it stands for, so the Event Hash ID code sees its prefixes.
- :func:`protected_problem` finds a redefinition of a term GS1's EPCIS 2.0
  context declares ``@protected`` (every term of it, ``gs1`` and ``cbvmda``
  among them). JSON-LD 1.1 refuses such a document, unless the new
  definition is the same; so does lottrace.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from .errors import InvalidInput, LottraceError

__all__ = [
    "GS1_CONTEXTS",
    "PROTECTED",
    "ContextRegistry",
    "protected_problem",
    "resolve",
    "unresolved",
]

#: URLs of GS1's EPCIS 2.0 context (ratified, and the GitHub copy).
GS1_CONTEXTS = frozenset(
    (
        "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
        "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
        "https://gs1.github.io/EPCIS/epcis-context.jsonld",
    )
)

#: The terms of GS1's EPCIS 2.0 context (``"@protected": true`` covers them all):
#: the plain-IRI ones with their IRI, the others (objects in the context) with None.
PROTECTED: dict[str, str | None] = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": "https://ref.gs1.org/cbv/",
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": "https://gs1.org/voc/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dcterms": "http://purl.org/dc/terms/",
    "id": "@id",
    "type": "@type",
    "baseURL": "@base",
    "ObjectEvent": "epcis:ObjectEvent",
    "AggregationEvent": "epcis:AggregationEvent",
    "TransformationEvent": "epcis:TransformationEvent",
    "AssociationEvent": "epcis:AssociationEvent",
    "TransactionEvent": "epcis:TransactionEvent",
    "Collection": "epcis:Collection",
    "eventTimeZoneOffset": "epcis:eventTimeZoneOffset",
    "action": "epcis:action",
    "uom": "epcis:uom",
    "eventID": "@id",
    "instanceIdentifier": "epcis:instanceIdentifier",
    "schemaVersion": "owl:versionInfo",
    "EPCISDocument": "epcis:EPCISDocument",
    "EPCISQueryDocument": "epcis:EPCISQueryDocument",
    "epcisHeader": "epcis:epcisHeader",
    "masterData": "epcis:masterData",
    "vocabularyList": "epcis:vocabularyList",
    "epcisBody": "epcis:epcisBody",
    "queryResults": "epcis:queryResults",
    "subscriptionID": "epcis:subscriptionID",
    "queryName": "epcis:queryName",
    "resultsBody": "epcis:resultsBody",
    **dict.fromkeys(
        [
            "member",
            "eventTime",
            "recordTime",
            "certificationInfo",
            "bizStep",
            "disposition",
            "bizLocation",
            "readPoint",
            "transformationID",
            "epcList",
            "sourceList",
            "destinationList",
            "persistentDisposition",
            "quantity",
            "epcClass",
            "quantityList",
            "bizTransactionList",
            "parentID",
            "childEPCs",
            "childQuantityList",
            "inputEPCList",
            "outputEPCList",
            "inputQuantityList",
            "outputQuantityList",
            "sensorElementList",
            "errorDeclaration",
            "creationDate",
            "sender",
            "receiver",
            "ilmd",
            "eventList",
            "children",
        ]
    ),
}


def _context_list(raw: Any) -> list[Any]:
    return raw if isinstance(raw, list) else [raw]


def protected_problem(nodes: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[str, str] | None:
    """``("$.@context[1]", "redefines ...")`` naming the first protected term a document redefines, or None.

    ``nodes`` are the document's objects that may hold ``@context`` (the
    root, the body ...), each with its JSON path. A document that does not
    use GS1's context protects nothing. A term defined again with the same
    IRI is allowed, as in JSON-LD 1.1.
    """
    contexts = [
        (f"{path}.@context", c) for path, node in nodes for c in _context_list(node.get("@context"))
    ]
    if not any(isinstance(c, str) and c in GS1_CONTEXTS for _p, c in contexts):
        return None
    for path, node in nodes:
        raw = node.get("@context")
        items = _context_list(raw)
        for i, c in enumerate(items):
            if not isinstance(c, dict):
                continue
            for term, value in c.items():
                if term not in PROTECTED:
                    continue
                if isinstance(value, str) and value == PROTECTED[term]:
                    continue  # the same definition: allowed
                where = f"{path}.@context" + (f"[{i}]" if isinstance(raw, list) else "")
                return where, (
                    f"redefines {term!r}, a protected term of GS1's EPCIS context "
                    f"({PROTECTED[term] or 'an EPCIS field'}), as {orjson.dumps(value).decode()}: "
                    "a JSON-LD processor must refuse the document"
                )
    return None


def resolve(raw: Any, registry: Mapping[str, Any]) -> Any:
    """``@context`` with each URL found in ``registry`` replaced by its context.

    Unregistered URLs stay as they are (GS1's own among them: its prefixes
    are built in).
    """
    out: list[Any] = []
    for c in _context_list(raw):
        found = registry.get(c) if isinstance(c, str) else None
        if found is None:
            out.append(c)
        else:
            out.extend(_context_list(found))
    return out if isinstance(raw, list) or len(out) != 1 else out[0]


def unresolved(raw: Any) -> list[str]:
    """The URLs in ``@context`` that are not GS1's (so were not in the registry)."""
    return [c for c in _context_list(raw) if isinstance(c, str) and c not in GS1_CONTEXTS]


class ContextRegistry:
    """The JSON-LD contexts registered for a ledger, in ``<ledger>.contexts/``."""

    def __init__(
        self,
        ledger_path: str | os.PathLike[str] | None = None,
        *,
        folder: str | os.PathLike[str] | None = None,
    ) -> None:
        """The registry beside the ledger file ``ledger_path``, or in ``folder`` (a ledger
        on a database server has no folder beside it)."""
        if folder is None:
            if ledger_path is None:
                raise TypeError("ContextRegistry needs a ledger_path or a folder")
            folder = f"{os.fspath(ledger_path)}.contexts"
        self.folder = Path(folder)

    @property
    def _index(self) -> Path:
        return self.folder / "index.json"

    def entries(self) -> dict[str, str]:
        """URL -> file name (in the folder)."""
        try:
            raw = self._index.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LottraceError(f"cannot read {self._index}: {exc.strerror}") from None
        try:
            index = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise LottraceError(f"{self._index} is not valid JSON") from None
        if not isinstance(index, dict) or not all(
            isinstance(v, str) and _STORED_NAME.fullmatch(v) for v in index.values()
        ):
            # names lottrace gives its copies only: an edited index cannot point elsewhere
            raise LottraceError(f"{self._index} is not a map of URLs to the files lottrace stored")
        return index

    def contexts(self) -> dict[str, Any]:
        """URL -> the ``@context`` value of its registered file."""
        out = {}
        for url, name in self.entries().items():
            path = self.folder / name
            try:
                out[url] = _read_context(path, path.read_bytes())
            except OSError as exc:
                raise LottraceError(f"cannot read {path}: {exc.strerror}") from None
        return out

    def add(self, url: str, file: Path) -> None:
        """Register ``file`` (a JSON-LD document with ``@context``) as what ``url`` serves."""
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"{url!r} is not an http(s) URL")
        if url in GS1_CONTEXTS:
            raise InvalidInput(f"{url} is GS1's EPCIS context: lottrace has it built in")
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"{file}: cannot read: {exc.strerror}") from None
        context = _read_context(file, raw)
        problem = protected_problem([("$", {"@context": [next(iter(GS1_CONTEXTS)), context]})])
        if problem is not None:
            raise InvalidInput(f"{file}: {problem[1]}")
        index = self.entries()
        name = hashlib.sha256(url.encode()).hexdigest()[:32] + ".jsonld"
        self.folder.mkdir(exist_ok=True)
        _write(self.folder / name, raw)
        index[url] = name
        _write(self._index, orjson.dumps(index, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))

    def remove(self, url: str) -> None:
        index = self.entries()
        if url not in index:
            raise InvalidInput(f"{url} is not registered (lottrace epcis context list)")
        name = index.pop(url)
        _write(self._index, orjson.dumps(index, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        (self.folder / name).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[tuple[str, Path]]:
        for url, name in sorted(self.entries().items()):
            yield url, self.folder / name


#: The name lottrace gives a stored context file (in ``add``).
_STORED_NAME = re.compile(r"[0-9a-f]{32}\.jsonld")


def _read_context(path: Path, raw: bytes) -> Any:
    try:
        doc = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not valid JSON: {str(exc).split(': line')[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("@context"), dict | list):
        raise InvalidInput(f"{path}: not a JSON-LD context (an object with '@context')")
    return doc["@context"]


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        raise LottraceError(f"cannot write {path}: {exc.strerror}") from None
