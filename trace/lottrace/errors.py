"""The exceptions lottrace raises, all under one root.

Every error a user can cause is a :class:`LottraceError`. The command line
catches that root once, prints ``Error: <message>`` on one line and exits
non-zero; a Python caller can catch the root or any child::

    LottraceError                 root: anything lottrace reports to a user
    ├── InvalidInput              a file cannot be read at all (missing, binary, encoding)
    │   ├── BadRows               an import's bad rows, each one listed in ``problems``
    │   └── TooBig                a file over what may be read (rows, columns, inflated size)
    ├── InvalidEvent              one record is broken: bad JSON or CSV, or a bad field
    │   └── RuleViolation         a well-formed event breaks a ledger rule
    ├── UnknownLot                a query names a lot the ledger has never seen
    ├── UnknownEvent              a query names an event id the ledger lacks
    ├── LedgerError               the ledger file is missing, busy or not ours
    ├── UnsafeOutput              an output file would overwrite the ledger
    └── IntegrityViolation        ``verify`` found the log edited behind our back

Messages name where the problem is: ``FILE:LINE: field 'kg': ...`` for input
problems, so a quality manager can open the spreadsheet at the right row.
"""

from __future__ import annotations

__all__ = [
    "BadRows",
    "IntegrityViolation",
    "InvalidEvent",
    "InvalidInput",
    "LedgerError",
    "LottraceError",
    "RuleViolation",
    "TooBig",
    "UnknownEvent",
    "UnknownLot",
    "UnsafeOutput",
]


class LottraceError(Exception):
    """Root of every error lottrace reports to a user.

    ``exit_code`` is what the command line exits with: 1 for bad data or a
    failed check, 2 for a usage problem such as an unknown lot.
    """

    exit_code = 1


class InvalidInput(LottraceError):
    """A file cannot be read: unknown format, bad encoding, broken JSON or CSV."""


class BadRows(InvalidInput):
    """Several rows of one import are bad; nothing was written.

    ``problems`` holds each one (an :class:`InvalidEvent` naming its file,
    line and field, or the first :class:`RuleViolation`), in file and line
    order. The message counts them; a face shows each problem, then it.
    """

    def __init__(self, problems: list[LottraceError]) -> None:
        self.problems = problems
        self.rows = len({getattr(e, "where", "") or id(e) for e in problems})
        #: What went wrong, counted: ``3 bad rows``, ``6 problems in 5 rows``.
        self.counted = (
            f"{len(problems)} bad rows"
            if self.rows == len(problems)
            else f"{len(problems)} problems in {self.rows} rows"
        )
        super().__init__(f"{self.counted}; nothing was written")


class TooBig(InvalidInput):
    """A file holds more than a reader accepts (rows, columns, or a workbook that inflates
    beyond a bound); ``field`` names the part of the request it came in (the server's 413)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        self.field = field
        super().__init__(message)


class InvalidEvent(LottraceError):
    """An event does not match the data contract (a missing or malformed field)."""

    def __init__(
        self,
        message: str,
        *,
        where: str = "",
        field: str = "",
        problems: list[tuple[str, str, object]] | None = None,
    ) -> None:
        self.where = where
        self.field = field
        #: Every problem of the record, ``(field, words, value given)``, when
        #: more than the one in the message is known (an event's model checks).
        self.problems = problems or []
        super().__init__(f"{where}: {message}" if where else message)


class RuleViolation(InvalidEvent):
    """A well-formed event breaks a ledger rule; ``rule`` names which one."""

    def __init__(self, message: str, *, rule: str, where: str = "", field: str = "") -> None:
        self.rule = rule
        named = f"field '{field}': " if field else ""
        super().__init__(f"[{rule}] {named}{message}", where=where, field=field)


class UnknownLot(LottraceError):
    """A command names a lot code that is not in the ledger."""

    exit_code = 2


class UnknownEvent(LottraceError):
    """A command names an event id that is not in the ledger."""

    exit_code = 2


class LedgerError(LottraceError):
    """The ledger file cannot be used: missing, locked too long, or not a lottrace ledger."""


class UnsafeOutput(LottraceError):
    """A file to write is the ledger, or its ``-wal``, ``-shm`` or ``-journal`` (by name, link or inode)."""

    exit_code = 2


class IntegrityViolation(LottraceError):
    """The log was changed outside lottrace (or broke one of its constraints); ``seq`` is the first bad row."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)
