"""lottrace: a traceability ledger for coffee lots.

Every checkpoint of a lot's journey, from harvest to export at Paita, is an
immutable event in an append-only, hash-chained log, checked against the
rules an auditor would apply. The library's public API is what ``__all__``
names::

    from lottrace import Ledger, import_files, upstream

    with Ledger.create("season.db") as ledger:
        report = import_files(ledger, ["harvests.csv", "qc.jsonl"])
        print(report.added, report.duplicates)
        print(upstream(ledger, "APR-25-X0001")["producers"])

The modules, from the bottom up (each imports only those below it;
docs/architecture.md draws the map):

- :mod:`lottrace.errors`      the exception tree (:class:`LottraceError` and its children)
- :mod:`lottrace.events`      the event models, their canonical JSON and ids
- :mod:`lottrace.rules`       the rules checked on append, and how an event folds into a lot's state
- :mod:`lottrace.storage`     the storage interface, and the SQLite backend (all the SQL)
- :mod:`lottrace.ledger`      the ledger: append, verify, rebuild, reads
- :mod:`lottrace.graph`       lineage sub-graphs of one lot, and kg shares
- :mod:`lottrace.provenance`, :mod:`lottrace.compliance`, :mod:`lottrace.delays`,
  :mod:`lottrace.timeline`    the answers
- :mod:`lottrace.importing`, :mod:`lottrace.epcis`, :mod:`lottrace.passport`  the services
- :mod:`lottrace.cli`         the ``lottrace`` command

Importing :mod:`lottrace` loads nothing heavy: each name is imported from its
module the first time it is used. Where a module and its main function share
a name (:func:`lottrace.delays.delays`, :func:`lottrace.timeline.timeline`,
:func:`lottrace.passport.passport`), import the function from its module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module it lives in.
_EXPORTS = {
    "LottraceError": "errors",
    "InvalidInput": "errors",
    "InvalidEvent": "errors",
    "RuleViolation": "errors",
    "BadRows": "errors",
    "UnknownLot": "errors",
    "UnknownEvent": "errors",
    "LedgerError": "errors",
    "UnsafeOutput": "errors",
    "IntegrityViolation": "errors",
    "parse_event": "events",
    "event_id": "events",
    "Ledger": "ledger",
    "AppendReport": "ledger",
    "VerifyReport": "ledger",
    "StoredEvent": "ledger",
    "Storage": "storage",
    "ReadOptions": "importing",
    "import_files": "importing",
    "import_records": "importing",
    "import_documents": "importing",
    "upstream": "provenance",
    "downstream": "provenance",
    "tree": "provenance",
    "find_events": "provenance",
    "eudr": "compliance",
    "certify": "compliance",
    "legs": "delays",
    "bottlenecks": "delays",
    "stuck": "delays",
}

__all__ = [
    "AppendReport",
    "BadRows",
    "IntegrityViolation",
    "InvalidEvent",
    "InvalidInput",
    "Ledger",
    "LedgerError",
    "LottraceError",
    "ReadOptions",
    "RuleViolation",
    "Storage",
    "StoredEvent",
    "UnknownEvent",
    "UnknownLot",
    "UnsafeOutput",
    "VerifyReport",
    "__version__",
    "bottlenecks",
    "certify",
    "downstream",
    "eudr",
    "event_id",
    "find_events",
    "import_documents",
    "import_files",
    "import_records",
    "legs",
    "parse_event",
    "stuck",
    "tree",
    "upstream",
]

if TYPE_CHECKING:
    from .compliance import certify, eudr
    from .delays import bottlenecks, legs, stuck
    from .errors import (
        BadRows,
        IntegrityViolation,
        InvalidEvent,
        InvalidInput,
        LedgerError,
        LottraceError,
        RuleViolation,
        UnknownEvent,
        UnknownLot,
        UnsafeOutput,
    )
    from .events import event_id, parse_event
    from .importing import ReadOptions, import_documents, import_files, import_records
    from .ledger import AppendReport, Ledger, StoredEvent, VerifyReport
    from .provenance import downstream, find_events, tree, upstream
    from .storage import Storage


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lottrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
