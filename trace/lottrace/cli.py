"""The ``lottrace`` command line: parse arguments, call one library function, print.

Every command reads the ledger path from ``--db`` (or ``LOTTRACE_DB``, or
``./lottrace.db``). Errors are caught once, in :class:`_Group`, and printed as
one line; exit code 1 means bad data or a failed check, 2 a usage problem.
Heavy modules (pydantic, networkx) are imported inside the commands so that
``lottrace --help`` starts fast.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from .errors import BadRows, InvalidInput, LottraceError

if TYPE_CHECKING:
    from .contexts import ContextRegistry
    from .ledger import AppendReport, Ledger

__all__ = ["cli", "main"]


class _Group(click.Group):
    """The error boundary: a LottraceError becomes one line on stderr and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BadRows as exc:
            _list_bad_rows(exc)
            ctx.exit(exc.exit_code)
        except LottraceError as exc:
            click.echo(f"Error: {shown(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except BrokenPipeError:  # `lottrace history X | head`: the reader left
            sys.stderr.close()
            ctx.exit(0)
        except KeyboardInterrupt:
            click.echo("Interrupted: nothing from the unfinished batch was written.", err=True)
            ctx.exit(130)
        except OSError as exc:  # the system refused a read or write: a full disk, a bad folder
            if os.environ.get("LOTTRACE_DEBUG"):
                raise
            _drop_unwritable_stdout()
            click.echo(f"Error: {_os_error(exc)}", err=True)
            ctx.exit(1)
        except Exception as exc:
            if os.environ.get("LOTTRACE_DEBUG"):
                raise
            click.echo(
                f"Error: internal error {type(exc).__name__}: {exc} "
                "(please report it; LOTTRACE_DEBUG=1 shows the traceback)",
                err=True,
            )
            ctx.exit(3)


def _os_error(exc: OSError) -> str:
    """An OS error as one line: what failed, on which file (never a traceback)."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{exc.filename}: {what}"
    return f"cannot write the output: {what}"


def _drop_unwritable_stdout() -> None:
    """If stdout itself failed (``> /dev/full``), point it at /dev/null so the exit flush is quiet."""
    try:
        sys.stdout.flush()
    except OSError:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, sys.stdout.fileno())
            os.close(null)
        except (OSError, ValueError):  # no real file descriptor (a test runner's stdout)
            pass


def check_output(path: Path, db: Path | str) -> Path:
    """Refuse to write ``path`` if it is the ledger ``db`` or its ``-wal``/``-shm``/``-journal``,
    or any other SQLite database (another ledger the user forgot was there). A ledger on a
    PostgreSQL server (``db`` a URI) is no file: only the second check applies.

    Compared by resolved name (through symlinks) and, where both exist, by
    device and inode (hard links). Every option naming a file lottrace
    writes goes through here, before anything is written.
    """
    from .errors import UnsafeOutput

    try:
        out_real = os.path.realpath(path)
        out_stat: os.stat_result | None = os.stat(path)
    except (OSError, ValueError):
        out_stat = None
        out_real = os.path.abspath(path)
    files: list[tuple[str, Path]] = []
    if isinstance(db, Path):  # a ledger file (a URI names a server's database)
        files = [
            (x, db.with_name(db.name + x) if x else db) for x in ("", "-wal", "-shm", "-journal")
        ]
    for suffix, target in files:
        same = os.path.realpath(target) == out_real
        if not same and out_stat is not None:
            try:
                st = os.stat(target)
            except (OSError, ValueError):
                continue
            same = (st.st_dev, st.st_ino) == (out_stat.st_dev, out_stat.st_ino)
        if same:
            what = f"the ledger {db}" + (f"'s {suffix[1:]} file" if suffix else "")
            raise UnsafeOutput(
                f"{path} is {what}: writing it would destroy the ledger; choose another file"
            )
    if out_stat is not None and _is_sqlite(path):  # another ledger, or another program's data
        raise UnsafeOutput(
            f"{path} is an SQLite database (a ledger?): lottrace never writes over one; "
            "choose another file"
        )
    return path


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


class _OutputPath(click.Path):
    """A file lottrace writes: checked by :func:`check_output` against the ``--db`` ledger."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        db = ctx.find_root().params.get("db") if ctx is not None else None
        if isinstance(db, Path) and isinstance(path, Path):
            check_output(path, db)
        return path


#: Characters never printed as they are: controls (C0, DEL, C1), line and
#: paragraph separators, bidi controls and invisible characters. A ledger
#: written before lottrace refused them in input may hold some.
_UNSHOWN = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]"
)
#: The same, less what JSON already escapes (C0).
_UNSHOWN_JSON = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060\u2066-\u2069\ufeff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def shown(text: str) -> str:
    r"""``text`` safe for a terminal and one line: every character of :data:`_UNSHOWN` escaped.

    >>> shown("lot A\x1b[2J\nB\u202e")
    'lot A\\x1b[2J\\x0aB\\u202e'
    """
    return _UNSHOWN.sub(_escape, text)


def _shown_data(data: Any) -> Any:
    """``data`` with every string :func:`shown`, for printing to people."""
    if isinstance(data, str):
        return shown(data)
    if isinstance(data, dict):
        return {k: _shown_data(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_shown_data(v) for v in data]
    return data


def _dumps(data: Any) -> str:
    import json

    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return _UNSHOWN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)  # still the same JSON


class _LedgerTarget(click.Path):
    """``--db``: a ledger file (a :class:`Path`), or a ``postgresql://`` URI (kept as text)."""

    def __init__(self) -> None:
        super().__init__(dir_okay=False, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and "://" in value:
            from .storage import is_server_uri

            if is_server_uri(value):
                return value
            self.fail(
                f"{value!r} is neither a file nor a postgresql:// (or postgres://) URI",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


def _registry_if_any(ctx: click.Context) -> ContextRegistry | None:
    """The partners' contexts registered for the ``--db`` ledger: the folder beside a ledger
    file, or for a PostgreSQL ledger the folder ``LOTTRACE_CONTEXTS`` names (None without it)."""
    from .contexts import ContextRegistry

    db = ctx.obj["db"]
    if isinstance(db, Path):
        return ContextRegistry(db)
    folder = os.environ.get("LOTTRACE_CONTEXTS", "").strip()
    return ContextRegistry(folder=folder) if folder else None


def _registry(ctx: click.Context) -> ContextRegistry:
    """:func:`_registry_if_any`, or an error saying how to give a PostgreSQL ledger one."""
    registry = _registry_if_any(ctx)
    if registry is not None:
        return registry
    raise LottraceError(
        "a PostgreSQL ledger has no folder beside it for partners' contexts: "
        "set LOTTRACE_CONTEXTS to a folder to keep them in"
    )


def _shown_db(ctx: click.Context) -> str:
    """``--db`` as messages show it: a URI without its password."""
    from .storage import display_uri

    db = ctx.obj["db"]
    return str(db) if isinstance(db, Path) else display_uri(db)


def _open(ctx: click.Context, *, write: bool = False, upgrade: bool = True) -> Ledger:
    """The ledger, read-only unless the command writes to it (a read changes no event or
    derived row; an older ledger's schema is upgraded first unless ``upgrade`` is off)."""
    from .ledger import Ledger

    if write:
        return Ledger(ctx.obj["db"])
    return Ledger.reader(ctx.obj["db"], upgrade=upgrade)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
plot_option = click.option(
    "--plot",
    type=_OutputPath(),
    metavar="FILE",
    help="Also draw a chart into FILE (.png or .svg); needs lottrace[plot].",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lottrace")
@click.option(
    "--db",
    type=_LedgerTarget(),
    metavar="FILE|URI",
    envvar="LOTTRACE_DB",
    default="lottrace.db",
    show_default=True,
    help="The ledger file, or a postgresql:// URI (or set LOTTRACE_DB).",
)
@click.pass_context
def cli(ctx: click.Context, db: Path | str) -> None:
    """lottrace: a traceability ledger for coffee lots.

    Log every checkpoint from harvest to export as an immutable event, then
    ask where a lot came from, where it went, and where it waited.

    \b
    Start here:
      lottrace demo            build a ledger from the bundled sample season
      lottrace init            create an empty ledger (./lottrace.db)
      lottrace import FILE     add a JSON Lines, JSON or CSV file of events
      lottrace history LOT     a lot's checkpoints, in time order
    """
    ctx.ensure_object(dict)
    ctx.obj["db"] = db


# --------------------------------------------------------------------------- ledger


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create an empty ledger (or bring an old one's schema up to date)."""
    from .ledger import Ledger

    db = ctx.obj["db"]
    existed = db.exists() if isinstance(db, Path) else None
    with Ledger.create(db) as ledger:
        n = ledger.stats()["events"]
    verb = {True: "opened existing", False: "created", None: "ready:"}[existed]
    click.echo(f"{verb} ledger {ledger.path} ({n} events)")


def _print_report(report: AppendReport, as_json: bool, max_warnings: int = 20) -> None:
    if as_json:
        d = report.as_dict()
        d["warning_list"] = [str(w) for w in report.warnings]
        click.echo(_dumps(d))
        return
    for w in report.warnings[:max_warnings]:
        click.echo(shown(str(w)), err=True)
    if report.warning_count > max_warnings:
        click.echo(f"... and {report.warning_count - max_warnings} more warnings", err=True)
    for name, n in report.voided_again_in.items():
        one = n == 1
        click.echo(
            f"note: {n} event{'' if one else 's'} in {shown(name)} {'was' if one else 'were'} "
            f"voided by a correction earlier; {'it stays' if one else 'they stay'} void",
            err=True,
        )
    click.echo(
        f"added {report.added}, duplicates skipped {report.duplicates}, "
        f"warnings {report.warning_count}"
    )


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--type", "default_type", help="Event type for rows that have no 'type' column.")
@click.option(
    "--encoding",
    help="Text encoding of CSV files, e.g. cp1252 or latin-1. Default: UTF-8, or cp1252 if not UTF-8.",
)
@click.option(
    "--delimiter",
    type=click.Choice([",", ";", "tab"]),
    help="CSV delimiter. Default: detected from the header row.",
)
@click.option(
    "--map",
    "map_path",
    type=click.Path(path_type=Path),
    help="A column map (TOML): the sheet's columns, values, time zone and date order, defaults.",
)
@click.option(
    "--suggest-map",
    is_flag=True,
    help="Print a column map for the file's header (TOML, to stdout) and import nothing.",
)
@click.option("--sheet", help="The sheet of an .xlsx workbook to read. Default: the first.")
@json_option
@click.pass_context
def import_(
    ctx: click.Context,
    files: Sequence[Path],
    default_type: str | None,
    encoding: str | None,
    delimiter: str | None,
    map_path: Path | None,
    suggest_map: bool,
    sheet: str | None,
    as_json: bool,
) -> None:
    """Add events from JSON Lines, JSON array or CSV files, all or nothing.

    Every file is checked against the data contract and the ledger rules in
    one transaction: any bad row rejects the whole batch. Each row that
    breaks the data contract is listed with its file, line, field and
    reason; a broken ledger rule stops at the first. Events already in the
    ledger are skipped and counted.

    Spreadsheet exports are welcome: ';' or tab delimiters with decimal
    commas (12,5), Windows (cp1252 / Latin-1) text, Spanish stage names in
    the type column (cosecha, secado, acopio ...). Sheets with their own
    column names (Fecha, Peso (kg), Lotes de origen ...) and Excel .xlsx
    files are read through a column map: --map, or the one --suggest-map
    prints, which is used as it is when every column is recognised.
    """
    from .importing import ReadOptions, import_files
    from .sheets import suggested_toml

    def note(message: str) -> None:
        click.echo(f"note: {message}", err=True)

    if suggest_map:
        for path in files:
            toml = suggested_toml(
                path, encoding=encoding, delimiter=delimiter, sheet=sheet, on_note=note
            )
            click.echo(toml, nl=False)
        return

    def used_map(name: str, toml: str) -> None:
        click.echo(f"note: {name}: every column recognised; read with this map:", err=True)
        click.echo(toml, err=True, nl=False)

    options = ReadOptions(default_type, encoding, delimiter, map_path, sheet)
    total = sum(p.stat().st_size for p in files if p.is_file())
    show_bar = sys.stderr.isatty() and total > 1_000_000 and not as_json
    with (
        click.progressbar(length=total, label="importing", file=sys.stderr)
        if show_bar
        else _NoBar() as bar,
        _open(ctx, write=True) as ledger,
    ):
        report = import_files(
            ledger, files, options, on_note=note, on_map=used_map, progress=bar.update
        )
    _print_report(report, as_json)


@cli.command()
@click.argument("type")
@click.option("--lang", type=click.Choice(["es", "en"]), default="es", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="The file to write (.xlsx for Excel, CSV otherwise). Default: CSV to stdout.",
)
def template(type: str, lang: str, output: Path | None) -> None:
    """Write an empty sheet for one checkpoint TYPE: its columns and a row of examples.

    Fill it in (replace the example row), then: lottrace import FILE --suggest-map
    > map.toml, add the site defaults, and lottrace import FILE --map map.toml.
    """
    from .sheets import template_csv, write_template

    if output is None:
        click.echo(template_csv(type, lang), nl=False)
        return
    write_template(type, output, lang)
    click.echo(f"wrote {output}", err=True)


def _list_bad_rows(exc: BadRows, limit: int = 50) -> None:
    """Every problem of every bad row on stderr, one line each, then what they come to."""
    what = "bad rows" if exc.rows == len(exc.problems) else "problems"
    for problem in exc.problems[:limit]:
        click.echo(shown(str(problem)), err=True)
    if len(exc.problems) > limit:
        click.echo(f"... and {len(exc.problems) - limit} more {what}", err=True)
    click.echo(f"Error: {shown(exc.counted)} (listed above); nothing was written", err=True)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int) -> None:
        pass


# `lottrace log` options: (option, field path, help). Dotted paths nest, as in CSV headers.
_LOG_FIELDS: list[tuple[str, str, str]] = [
    ("--lot", "lot", "Lot code."),
    ("--site", "site", "Where: kind:ID, e.g. gatherer:SIG-03 (or set LOTTRACE_SITE)."),
    ("--actor", "actor", "Who is logging (or set LOTTRACE_ACTOR)."),
    ("--note", "note", "Free text."),
    ("--kg", "kg", "Kilograms."),
    ("--producer", "producer", "harvest: producer id or name."),
    ("--plot", "plot.id", "harvest: plot id."),
    ("--lon", "plot.lon", "harvest: plot longitude (WGS84)."),
    ("--lat", "plot.lat", "harvest: plot latitude (WGS84)."),
    ("--area-ha", "plot.area_ha", "harvest: plot area in hectares."),
    ("--altitude", "plot.altitude_m", "harvest: plot altitude in metres."),
    ("--variety", "variety", "harvest: e.g. Caturra."),
    ("--process", "process", "harvest: washed, natural or honey."),
    ("--method", "method", "drying: covered, open, raised_bed or mechanical."),
    ("--started", "started", "drying: when drying started."),
    ("--result", "result", "QC: accepted, rejected or hold."),
    ("--moisture", "moisture_pct", "Moisture, %."),
    ("--water-activity", "water_activity", "QC: water activity, 0-1."),
    ("--cat1", "defects.cat1", "QC: category 1 defects per 350 g."),
    ("--cat2", "defects.cat2", "QC: category 2 defects per 350 g."),
    ("--cup-score", "cup_score", "QC: SCA cup score."),
    ("--yield-pct", "yield_pct", "QC: exportable yield of parchment, %."),
    ("--inspector", "inspector", "QC: inspector."),
    (
        "--reason",
        "reason",
        "QC: why rejected or on hold; correction: did_not_occur or incorrect_data.",
    ),
    ("--rejects-kg", "rejects_kg", "dry_mill: kg removed."),
    ("--container", "container", "export: container number."),
    ("--bags", "bags", "export: number of bags."),
    ("--bag-kg", "bag_kg", "export: kg per bag (69 in Peru)."),
    ("--ico-mark", "ico_mark", "export: ICO mark."),
    ("--vessel", "vessel", "export: vessel."),
    ("--destination", "destination", "export: destination."),
    ("--buyer", "buyer", "export: buyer."),
    ("--to-site", "to_site", "dispatch: where the truck is headed."),
    ("--from-site", "from_site", "arrival: where it came from."),
    ("--vehicle", "vehicle", "dispatch: truck plate or carrier."),
    ("--corrects", "corrects", "correction: the event id it voids."),
]
_LOG_ENV = {"site": "LOTTRACE_SITE", "actor": "LOTTRACE_ACTOR"}
#: What `log` asks for when a required field is missing: "field (what it is)".
_LOG_HELP = {
    path: f"{path} ({re.sub(r' [(]or set [A-Z_]+[)]', '', help_).rstrip('.')})"
    for _opt, path, help_ in _LOG_FIELDS
} | {
    "inputs": "inputs (input lots: LOT=KG|LOT=KG)",
    "outputs": "outputs (dry_mill: output lots: LOT=KG=GRADE|...)",
}


def _log_options(f: Any) -> Any:
    for opt, path, help_ in reversed(_LOG_FIELDS):
        dest = "f_" + path.replace(".", "__")
        f = click.option(opt, dest, envvar=_LOG_ENV.get(path), help=help_)(f)
    return f


@cli.command()
@click.argument("type")
@click.option(
    "--time",
    "time_",
    help="When, ISO-8601 with offset. Default: now, local offset (in a terminal, asked).",
)
@_log_options
@click.option("--cert", "certs", multiple=True, help="harvest: a certification (repeatable).")
@click.option(
    "--women-producer", is_flag=True, default=None, help="harvest: a women producer's micro-lot."
)
@click.option(
    "--input", "inputs", multiple=True, metavar="LOT=KG", help="An input lot (repeatable)."
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="LOT=KG=GRADE",
    help="dry_mill: an output lot (repeatable).",
)
@click.option(
    "--set",
    "extra",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Any other field; dotted names nest.",
)
@click.option(
    "--lang",
    type=click.Choice(["en", "es"]),
    envvar="LOTTRACE_LANG",
    default="en",
    show_default=True,
    help="Prompts and messages in English or Spanish (or set LOTTRACE_LANG).",
)
@click.option("--yes", "-y", is_flag=True, help="In a terminal, save without asking to confirm.")
@json_option
@click.pass_context
def log(
    ctx: click.Context,
    /,
    type: str,
    time_: str | None,
    certs: tuple[str, ...],
    women_producer: bool | None,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    extra: tuple[str, ...],
    lang: str,
    yes: bool,
    as_json: bool,
    **fields: str | None,
) -> None:
    """Log one checkpoint event of TYPE, as typed at the field.

    TYPE is harvest, drying, gatherer_qc, hq_qc, dry_mill, export, dispatch,
    arrival or correction, or its Spanish name: cosecha, secado, acopio,
    sede, trilla, exportacion, despacho, llegada, correccion. Numbers may use
    a decimal comma (12,5). In a terminal it asks for the time and each
    required field not given, checking each answer as it is typed (the site
    among the known ones for TYPE, numbers and their ranges), asks for a
    harvest's plot location, then shows the event and asks to save it.
    Otherwise a missing field is an error. It prints the stored event id and
    the event.

    \b
    Example:
      lottrace log drying --lot APR-0231-H1 --site farm:APR-P0231 \\
          --kg 212.5 --method covered --moisture 11.5
    """
    from .events import canonical_json, event_id
    from .fieldlog import describe_event, resolve_type, say

    type = resolve_type(type)
    if type in ("epcis", "master_data", "epcis_header"):
        raise click.BadParameter(
            "foreign EPCIS events come in with 'lottrace epcis import FILE', not from the field",
            param_hint="TYPE",
        )
    row: dict[str, str] = {"type": type}
    if time_ is not None:
        row["time"] = time_
    for key, value in fields.items():
        if value is not None:
            row[key[2:].replace("__", ".")] = value
    if certs:
        row["certifications"] = "|".join(certs)
    if women_producer:
        row["women_producer"] = "true"
    if inputs:
        row["inputs"] = "|".join(inputs)
    if outputs:
        row["outputs"] = "|".join(outputs)
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not FIELD=VALUE", param_hint="--set")
        row[key.strip()] = value
    where = "lottrace log"
    asked: list[str] = []
    if _interactive():
        asked = _ask_missing(ctx, row, where, lang)
    row.setdefault("time", datetime.now().astimezone().isoformat(timespec="seconds"))
    ev = _parse_logged(row, where, asked, lang)
    lines = describe_event(ev, lang)
    width = max(len(k) for k, _ in lines)
    confirmed = asked and not yes
    if confirmed:
        click.echo(say(lang, "summary"))
        for key, value in lines:
            click.echo(f"  {key.ljust(width)}  {shown(str(value))}")
        if not _confirm(lang):
            click.echo(say(lang, "not_saved"), err=True)
            ctx.exit(1)
    with _open(ctx, write=True) as ledger:
        report = ledger.append([(where, ev)])
    eid = event_id(ev)
    if as_json:
        import orjson

        click.echo(
            _dumps(
                {
                    "event_id": eid,
                    "added": report.added == 1,
                    "warnings": [str(w) for w in report.warnings],
                    "event": orjson.loads(canonical_json(ev)),
                }
            )
        )
        return
    for w in report.warnings:
        click.echo(str(w), err=True)
    if report.added:
        click.echo(
            say(lang, "logged", type=ev.type, lot=ev.subject or "", eid=eid).replace("  ", " ")
        )
    elif report.voided_again:
        click.echo(say(lang, "voided_again", eid=eid))
    else:
        click.echo(say(lang, "duplicate", eid=eid))
    if confirmed:  # the person has just read it
        return
    for key, value in lines:
        click.echo(f"  {key.ljust(width)}  {shown(str(value))}")


def _confirm(lang: str) -> bool:
    """Ask to save: Enter, y/yes (or s/sí in Spanish) saves; n/no does not."""
    from .fieldlog import say

    choices = "S/n" if lang == "es" else "Y/n"
    while True:
        answer = click.prompt(
            f"{say(lang, 'confirm')} [{choices}]", default="", show_default=False
        ).strip()
        if answer.lower() in ("", "y", "yes", "s", "si", "sí"):
            return True
        if answer.lower() in ("n", "no"):
            return False


def _interactive() -> bool:
    """Whether `lottrace log` may ask for missing fields: only when a person is typing."""
    return sys.stdin.isatty()


def _known_sites(ctx: click.Context) -> list[str]:
    """The ledger's sites, most used first; none if there is no ledger yet."""
    from .ledger import Ledger

    path = ctx.obj["db"]
    if isinstance(path, Path) and not path.exists():
        return []
    try:
        with Ledger.reader(path) as ledger:
            return ledger.sites()
    except LottraceError:
        return []


def _ask_missing(ctx: click.Context, row: dict[str, str], where: str, lang: str) -> list[str]:
    """In a terminal: check what was given, then ask for what is missing, each answer checked.

    A given value that cannot be right fails at once (before any question);
    a typed answer that cannot be right is asked again, saying why. Returns the
    fields asked.
    """
    from .errors import InvalidEvent
    from .fieldlog import (
        ASKED_IF_MISSING,
        AnswerError,
        check_answer,
        field_help,
        missing_fields,
        say,
        suitable_sites,
    )

    type_ = row["type"]
    sites = suitable_sites(type_, _known_sites(ctx)) if "site" not in row else []
    for key, value in list(row.items()):
        if key == "type":
            continue
        try:
            row[key] = check_answer(type_, key, value, lang)
        except AnswerError as exc:
            raise InvalidEvent(say(lang, "field", field=key, msg=exc), where=where) from None

    def ask(key: str, prompt: str, *, required: bool = True, default: str | None = None) -> bool:
        while True:
            text = click.prompt(
                prompt, default=default if default is not None else ("" if not required else None),
                show_default=default is not None,
            ).strip()  # fmt: skip
            if not text and not required:
                return False
            try:
                row[key] = check_answer(type_, key, text, lang, known=sites)
            except AnswerError as exc:
                click.echo(say(lang, "field", field=key, msg=exc), err=True)
                continue
            asked.append(key)
            return True

    asked: list[str] = []
    if "time" not in row:
        now = datetime.now().astimezone().isoformat(timespec="seconds")
        ask("time", say(lang, "ask_time"), default=now)
    for key in missing_fields(type_, row):
        if key == "site" and sites:
            listed = ", ".join(f"{i} {s}" for i, s in enumerate(sites, 1))
            click.echo(say(lang, "known_sites", type=type_, sites=listed))
        ask(key, field_help(key, _LOG_HELP.get(key, key), lang, type_))
    for key in ASKED_IF_MISSING.get(type_, []):
        if key not in row:
            help_ = field_help(key, _LOG_HELP.get(key, key), lang)
            ask(key, f"{help_} [{say(lang, 'optional')}]", required=False)
    located = "plot.lon" in row or "plot.geometry" in row or "plot" in row
    if type_ == "harvest" and not located:
        if ask("plot.lon", say(lang, "ask_lon"), required=False):
            ask("plot.lat", say(lang, "ask_lat"))
        else:
            click.echo(say(lang, "no_location", plot=row.get("plot.id", "?")), err=True)
    return asked


def _parse_logged(row: dict[str, str], where: str, asked: list[str], lang: str) -> Any:
    """Validate a `log` row (numbers may have a decimal comma).

    A value typed at a prompt that breaks the contract is asked for again
    (up to three times); everything else fails as an import would.
    """
    from .errors import InvalidEvent
    from .fieldform import event_from_row
    from .fieldlog import field_help

    for attempt in range(3):
        try:
            return event_from_row(row, where)
        except InvalidEvent as exc:
            again = [
                k for k in asked if exc.field == k or exc.field.startswith(k.split(".")[0] + ".")
            ]
            if not again or attempt == 2:
                raise
            click.echo(f"{exc}", err=True)
            for key in again:
                row[key] = click.prompt(field_help(key, _LOG_HELP.get(key, key), lang)).strip()
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- queries


def _kg(kg: float | None) -> str:
    return f"{kg:g}" if kg is not None else ""


def _event_history(ctx: click.Context, some_id: str, as_json: bool) -> None:
    """``history --event-id``: the events an id names, with all their ids."""
    from tabulate import tabulate

    from .provenance import find_events

    with _open(ctx) as ledger:
        found = find_events(ledger, some_id)
    if as_json:
        click.echo(_dumps({"id": some_id, "events": found}))
        return
    rows = [
        (
            e["time"],
            e["type"] + (" (void)" if e["void"] else ""),
            shown(e["site"]),
            e["event_id"],
            e.get("hash_id") or "",
            shown(e.get("partner_event_id") or ""),
        )
        for e in found
    ]
    click.echo(
        tabulate(
            rows, headers=["time", "event", "site", "event id", "Event Hash ID", "partner eventID"]
        )
    )


def _event_summary(ev: Any) -> str:
    bits = []
    for name in ("result", "producer", "moisture_pct", "cup_score", "container", "reason"):
        v = getattr(ev, name, None)
        if v is not None:
            bits.append(f"{name}={v}")
    if getattr(ev, "plot", None) is not None:
        bits.append(f"plot={ev.plot.id}")
    if ev.drawn:
        bits.append("from " + ", ".join(f"{i.lot} ({i.kg:g} kg)" for i in ev.drawn))
    if getattr(ev, "outputs", None):
        bits.append("into " + ", ".join(f"{o.lot} {o.grade} ({o.kg:g} kg)" for o in ev.outputs))
    return "; ".join(bits)


@cli.command()
@click.argument("lot", required=False)
@json_option
@click.option("--no-tree", is_flag=True, help="Leave out the upstream tree.")
@click.option(
    "--event-id",
    metavar="ID",
    help="Instead of a lot: the events this id names (a lottrace event id, an EPCIS Event "
    "Hash ID or a partner's eventID).",
)
@click.pass_context
def history(
    ctx: click.Context, lot: str | None, as_json: bool, no_tree: bool, event_id: str | None
) -> None:
    """A lot's own checkpoints in time order.

    Besides the events about LOT itself, it lists the event that formed it
    (output) and every event that drew from it into another lot (input), with
    the kg drawn. When LOT was formed from other lots, the full upstream tree
    follows, indented, with each checkpoint's time, site and QC result.
    With --event-id ID instead of LOT: the events that id names.
    """
    from tabulate import tabulate

    from .provenance import history as history_of
    from .provenance import tree
    from .views import format_tree

    if (lot is None) == (event_id is None):
        raise click.UsageError("give a LOT or --event-id ID")
    if event_id is not None:
        _event_history(ctx, event_id, as_json)
        return
    assert lot is not None

    if as_json:
        _query(ctx, history_of, lot, as_json=True, with_tree=not no_tree)
        return
    with _open(ctx) as ledger:
        events = ledger.lot_events(lot)
        voided = ledger.voided_for_lot(lot)
        upstream_tree = tree(ledger, lot) if not no_tree else None
    has_inputs = bool(upstream_tree and upstream_tree.get("children"))
    rows = [
        (
            e.event.time.isoformat(),
            e.event.type + ("" if e.role == "subject" else f" ({e.role})"),
            shown(e.event.site),
            _kg(e.event.kg_for(lot)),
            shown(_event_summary(e.event)),
            e.event_id[:12],
        )
        for e in events
    ]
    click.echo(f"lot {shown(lot)}")
    click.echo(tabulate(rows, headers=["time", "event", "site", "kg", "details", "event id"]))
    if voided:
        click.echo(f"{len(voided)} voided event(s) not shown: " + ", ".join(v[:12] for v in voided))
    if has_inputs and upstream_tree is not None:
        click.echo(f"\nupstream of {shown(lot)}:")
        click.echo(format_tree(_shown_data(upstream_tree), indent="  "))


def _full_hash(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value):
        raise click.BadParameter(
            "needs the full 64-character head hash that 'lottrace verify --anchor' printed"
        )
    return value


@cli.command()
@click.option(
    "--anchor", is_flag=True, help="Print only the head hash, to publish or send to buyers."
)
@click.option(
    "--expect",
    metavar="HASH",
    callback=lambda _c, _p, v: _full_hash(v),
    help="Also check that the log still contains this head hash (all 64 characters).",
)
@click.option(
    "--source",
    metavar="LEDGER_ID",
    help="Prove instead the chain of one ledger merged into this one (lottrace merge).",
)
@json_option
@click.pass_context
def verify(
    ctx: click.Context, anchor: bool, expect: str | None, source: str | None, as_json: bool
) -> None:
    """Prove the ledger: every event id, the hash chain, the schema and every derived
    table (refolded from the log); exit 1 naming the first difference. Never writes.

    With --source, prove one merged source's chain inside this ledger: its head is
    the one that source's own verify prints."""
    if source is not None and expect is not None:
        raise click.UsageError("--expect and --source: one at a time")
    with _open(ctx, upgrade=False) as ledger:
        if source is not None:
            result = ledger.verify_source(source)
        else:
            result = ledger.verify(expect=expect)
    if source is not None and not (anchor or as_json):
        click.echo(f"ok: source {source}: {result.events} events, chain intact, head {result.head}")
    elif anchor:
        click.echo(result.head)
    elif as_json:
        click.echo(_dumps({"ok": True, "events": result.events, "head": result.head}))
    else:
        extra = f", contains {expect[:12]}..." if expect else ""
        click.echo(f"ok: {result.events} events, chain intact{extra}, head {result.head}")


@cli.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Counts by event type, lots, and the time span of the log."""
    from tabulate import tabulate

    with _open(ctx) as ledger:
        s = ledger.stats()
    if as_json:
        click.echo(_dumps(s))
        return
    click.echo(tabulate(sorted(s["by_type"].items()), headers=["type", "events"]))
    span = f"from {s['first_time']} to {s['last_time']}" if s["events"] else "no events yet"
    click.echo(
        f"\n{s['events']} events, {s['lots']} lots, {s['voided']} voided\n{span}\nhead {s['head']}"
    )


@cli.command()
@click.pass_context
def rebuild(ctx: click.Context) -> None:
    """Rebuild the derived tables (lots, links, indexes) from the log alone, and put back
    the schema lottrace made (dropping triggers, views or indexes that are not its own)."""
    with _open(ctx, write=True) as ledger:
        n = ledger.rebuild()
    for what in ledger.repaired:
        click.echo(f"schema: {what}")
    click.echo(f"rebuilt derived tables from {n} events")


@cli.command()
@click.argument("src", type=_LedgerTarget())
@click.argument("dst", type=_LedgerTarget())
@json_option
def copy(src: Path | str, dst: Path | str, as_json: bool) -> None:
    """Copy the ledger SRC into a new, empty ledger DST, keeping ids, order and the chain.

    Each is a ledger file or a postgresql:// URI, so a cooperative's file can
    move to a PostgreSQL server and back. SRC is verified first, DST after.
    """
    from .copying import copy_ledger

    report = copy_ledger(src, dst)
    if as_json:
        click.echo(_dumps(report.__dict__))
        return
    click.echo(
        f"copied {report.events} events from {report.source} to {report.target}; "
        f"both verify, head {report.head}"
    )


@cli.command()
@click.argument("sources", nargs=-1, required=True, type=_LedgerTarget())
@click.option(
    "--into",
    "into",
    required=True,
    type=_LedgerTarget(),
    help="The platform's ledger (a file or a postgresql:// URI; created if missing).",
)
@json_option
def merge(sources: tuple[Path | str, ...], into: Path | str, as_json: bool) -> None:
    """Merge cooperatives' ledgers SOURCES into one platform ledger, by content id.

    Each source is verified, then its events pass the same rules as any event;
    one held already is stored once, and every source that had it is
    remembered. Each source's chain is kept: prove it with
    'lottrace --db INTO verify --source LEDGER_ID'.
    """
    from .merging import merge_ledgers

    reports = merge_ledgers(list(sources), into)
    if as_json:
        click.echo(_dumps([r.__dict__ for r in reports]))
        return
    for r in reports:
        click.echo(
            f"merged {r.source} (ledger {r.ledger_id}): {r.events} events, {r.added} added, "
            f"{r.duplicates} held already; source head {r.head}"
        )


@cli.command()
@click.argument("type", required=False)
@click.option(
    "--write",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every schema file into FOLDER.",
)
@click.pass_context
def schema(ctx: click.Context, type: str | None, folder: Path | None) -> None:
    """Print the JSON Schema of one event TYPE, or of the whole union."""
    from .events import EVENT_MODELS
    from .schemas import event_schema, schema_files, union_schema, write_schemas

    if folder is not None:
        for name in schema_files():
            check_output(folder / name, ctx.obj["db"])
        for p in write_schemas(folder):
            click.echo(f"wrote {p}")
        return
    if type is not None and type not in EVENT_MODELS:
        raise click.BadParameter(
            f"{type!r}; expected one of {', '.join(EVENT_MODELS)}", param_hint="TYPE"
        )
    click.echo(_dumps(event_schema(type) if type else union_schema()))


# --------------------------------------------------------------------------- provenance


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    from tabulate import tabulate

    def cell(v: Any) -> Any:
        if isinstance(v, float):
            return f"{v:,.3f}".rstrip("0").rstrip(".")
        if isinstance(v, list):
            return ", ".join(str(x) for x in v)
        return "" if v is None else v

    return str(tabulate([[cell(r.get(c)) for c in columns] for r in rows], headers=columns))


def _query(ctx: click.Context, query: Any, *args: Any, as_json: bool, **kw: Any) -> Any:
    """Run one query on the ledger; with --json print it and return None."""
    with _open(ctx) as ledger:
        data = query(ledger, *args, **kw)
    if as_json:
        click.echo(_dumps(data))
        return None
    return _shown_data(data)


def _voided_note(data: dict[str, Any]) -> None:
    if data.get("voided"):
        click.echo(
            f"\n{len(data['voided'])} voided event(s) left out: "
            + ", ".join(v[:12] for v in data["voided"])
        )


@cli.command()
@click.argument("lot")
@json_option
@click.pass_context
def upstream(ctx: click.Context, lot: str, as_json: bool) -> None:
    """Where LOT came from: every ancestor lot back to the harvests.

    Lists each producer's share of the lot's kg (following the kg on every
    link through merges and splits), their plots, the harvests, and every QC
    result on the way.
    """
    from .provenance import upstream as query

    data = _query(ctx, query, lot, as_json=as_json)
    if data is None:
        return
    click.echo(
        f"lot {lot}: {len(data['lots'])} ancestor lots, {len(data['producers'])} producers, "
        f"{len(data['harvests'])} harvests, {len(data['qc'])} QC results\n"
    )
    shares = sorted(data["shares"], key=lambda r: -r["share"])
    for r in shares:
        r["share %"] = round(100 * r["share"], 2)
    click.echo(_table(shares, ["producer", "share %", "kg", "lots"]))
    click.echo("")
    click.echo(
        _table(data["qc"], ["time", "stage", "site", "lot", "result", "moisture_pct", "cup_score"])
    )
    _voided_note(data)


@cli.command()
@click.argument("lot")
@json_option
@click.pass_context
def downstream(ctx: click.Context, lot: str, as_json: bool) -> None:
    """Where LOT went: every descendant lot and every export (the recall query), with the
    due diligence statements in force on them."""
    from .dds import carry_statements
    from .provenance import downstream

    def query(ledger: Any, code: str) -> Any:
        return carry_statements(ledger, downstream(ledger, code))

    data = _query(ctx, query, lot, as_json=as_json)
    if data is None:
        return
    click.echo(f"lot {lot} went into {len(data['lots'])} lots and {len(data['exports'])} exports\n")
    click.echo(
        _table(
            data["exports"],
            [
                "time",
                "lot",
                "container",
                "ico_mark",
                "vessel",
                "buyer",
                *(["buyer_name"] if any(x.get("buyer_name") for x in data["exports"]) else []),
                "destination",
                "kg_from_lot",
                *(["statements"] if data["statements"] else []),
            ],
        )
    )
    _voided_note(data)


@cli.command()
@click.argument("lot")
@click.option(
    "-o",
    "--output",
    type=_OutputPath(),
    help="Write the GeoJSON here.",
)
@click.option("--check", is_flag=True, help="Only report whether the lot can be proven.")
@click.option("--as-of", help="The plot registry and findings as of this date or time.")
@click.pass_context
def eudr(ctx: click.Context, lot: str, output: Path | None, check: bool, as_of: str | None) -> None:
    """EU Deforestation Regulation geolocation file (TRACES GeoJSON) for an export lot.

    One feature per contributing plot, WGS84 [lon, lat] with six decimals, the
    Commission's property names (ProducerName, ProducerCountry,
    ProductionPlace, Area). Exits 1, naming each offending lot, producer and
    plot, when any contributing plot has no geometry, a plot over 4 ha is only
    a point, a geometry TRACES would reject (see plots check), an open
    high-risk deforestation finding, or an input of unknown origin: a single
    one makes the whole lot non-compliant.
    """
    from .compliance import geojson_text
    from .dds import proof
    from .plot_registry import as_of_key

    with _open(ctx) as ledger:
        collection, problems = proof(ledger, lot, as_of_key(as_of))
    for pr in problems:
        click.echo(f"not provable: {shown(pr['message'])}", err=True)
    if problems:
        raise LottraceError(
            f"lot {lot} cannot be proven EUDR-compliant: {len(problems)} problem(s)"
        )
    n = len(collection["features"])
    if check:
        click.echo(f"lot {lot}: EUDR geolocation complete for {n} plots")
    elif output is not None:
        try:
            output.write_text(geojson_text(collection) + "\n", encoding="utf-8")
        except OSError as exc:
            raise LottraceError(f"cannot write {output}: {exc.strerror}") from None
        click.echo(f"wrote {output}: {n} plots")
    else:
        click.echo(geojson_text(collection))


@cli.command()
@click.argument("lot")
@click.option(
    "--scheme",
    required=True,
    type=click.Choice(["organic", "fairtrade", "rainforest", "cafe_femenino"]),
)
@json_option
@click.pass_context
def certify(ctx: click.Context, lot: str, scheme: str, as_json: bool) -> None:
    """Does every harvest in LOT carry the SCHEME certification (and, where the ledger
    records certificates, one valid on its date)? Exits 1 if not."""
    from .compliance import certify as query

    with _open(ctx) as ledger:
        data = query(ledger, lot, scheme)
    if as_json:
        click.echo(_dumps(data))
    elif data["certified"]:
        click.echo(f"lot {shown(lot)}: all {data['harvests']} contributing harvests are {scheme}")
    else:
        breaking = _shown_data(data["breaking"])
        click.echo(_table(breaking, list(breaking[0].keys())))
    if not data["certified"]:
        raise LottraceError(f"lot {lot} is not physically traceable as {scheme}")


@cli.command()
@click.argument("lot")
@json_option
@click.pass_context
def timeline(ctx: click.Context, lot: str, as_json: bool) -> None:
    """The critical path of LOT: at each merge, which input arrived last."""
    from .timeline import timeline as query

    data = _query(ctx, query, lot, as_json=as_json)
    if data is None:
        return
    click.echo(_table(data["steps"], ["time", "lot", "stage", "site", "hours"]))
    click.echo(f"\ntotal {data['total_hours']:,.1f} h")
    for m in data["merges"]:
        click.echo(f"at {m['stage']} {m['lot']} ({m['site']}), the last input was {m['critical']}")
    _voided_note(data)


# --------------------------------------------------------------------------- delay


def _when(value: str | None) -> str | None:
    from .delays import window_bound

    if value is None:
        return None
    try:
        window_bound(value)  # as the server and the web app take it
    except InvalidInput as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@cli.command()
@click.option(
    "--by", type=click.Choice(["stage", "site", "month"]), default="stage", show_default=True
)
@click.option(
    "--since", callback=lambda _c, _p, v: _when(v), help="Only legs ending on or after this date."
)
@click.option(
    "--until", callback=lambda _c, _p, v: _when(v), help="Only legs ending before this date."
)
@json_option
@plot_option
@click.option(
    "--plot-style",
    type=click.Choice(["box", "violin"]),
    default="box",
    show_default=True,
    help="How --plot draws each leg's hours.",
)
@click.pass_context
def delays(
    ctx: click.Context,
    by: str,
    since: str | None,
    until: str | None,
    as_json: bool,
    plot: Path | None,
    plot_style: str,
) -> None:
    """How long lots wait on each leg: count, mean, p50, p90 and max hours.

    With --plot, also draw each leg's distribution of hours, worst first.
    """
    from .delays import delays as query

    _check_plot(plot)
    rows = _query(ctx, query, by=by, since=since, until=until, as_json=as_json)
    if rows is not None:
        _delays_table(rows, by)
    if plot is not None:
        kw = {"by": by, "since": since, "until": until, "style": plot_style}
        _draw(ctx, "plot_delays", plot, as_json, "legs", **kw)


def _delays_table(rows: list[dict[str, Any]], by: str) -> None:
    keys = (
        ["from", "to"]
        + (["from_site", "to_site"] if by == "site" else [])
        + (["month"] if by == "month" else [])
    )
    if any(r.get("from_site_name") or r.get("to_site_name") for r in rows):
        keys += ["from_site_name", "to_site_name"]  # from partners' master data
    split = (
        ["wait_hours", "transit_hours"]
        if any(r.get("transit_hours") is not None for r in rows)
        else []
    )
    click.echo(
        _table(rows, [*keys, "count", "mean_hours", "p50_hours", "p90_hours", "max_hours", *split])
    )


@cli.command()
@click.option("--top", type=click.IntRange(1), default=10, show_default=True)
@json_option
@plot_option
@click.pass_context
def bottlenecks(ctx: click.Context, top: int, as_json: bool, plot: Path | None) -> None:
    """Routes ranked by lot-hours lost above the typical time for that leg.

    The baseline of a leg (say gatherer_qc -> hq_qc) is its median over all
    routes; a route's excess is the sum of the hours its lots spent above it.
    With --plot, also draw each route's excess, in total and by month.
    """
    from .delays import bottlenecks as query

    _check_plot(plot)
    rows = _query(ctx, query, top=top, as_json=as_json)
    if rows is not None:
        click.echo(
            _table(
                rows,
                [
                    "rank",
                    "from_site",
                    "to_site",
                    "from",
                    "to",
                    "count",
                    "baseline_hours",
                    "p50_hours",
                    "excess_hours",
                ],
            )
        )
    if plot is not None:
        _draw(ctx, "plot_bottlenecks", plot, as_json, "routes", top=top)


def _check_plot(plot: Path | None) -> None:
    """Before any work: the chart's suffix is right and matplotlib is there."""
    if plot is not None:
        from .charts import check_plot_path

        check_plot_path(plot)


def _draw(ctx: click.Context, name: str, plot: Path, as_json: bool, what: str, **kw: Any) -> None:
    from . import charts

    with _open(ctx) as ledger:
        labels = getattr(charts, name)(ledger, plot, **kw)
    worst = f", worst: {shown(labels[0].splitlines()[0])}" if labels else ""
    click.echo(f"wrote {plot}: {len(labels)} {what}{worst}", err=as_json)


@cli.command()
@click.option("--as-of", "as_of", callback=lambda _c, _p, v: _when(v), help="Default: now.")
@json_option
@click.pass_context
def stuck(ctx: click.Context, as_of: str | None, as_json: bool) -> None:
    """Lots waiting longer than the p90 of the leg that normally follows, oldest first."""
    from .delays import stuck as query

    when = as_of or datetime.now().astimezone().isoformat(timespec="seconds")
    rows = _query(ctx, query, when, as_json=as_json)
    if rows is None:
        return
    click.echo(
        _table(rows, ["lot", "stage", "site", "time", "age_hours", "next", "p90_hours", "kg_left"])
    )


@cli.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="lottrace-demo.db",
    show_default=True,
    help="The demo ledger file.",
)
@click.pass_context
def demo(ctx: click.Context, out: Path) -> None:
    """Build a ledger from the bundled sample season and show an export lot."""
    from .demo import build_demo

    source = ctx.parent.get_parameter_source("db") if ctx.parent else None
    if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
        click.echo(
            f"note: the demo builds its own ledger {out} (--out), never {_shown_db(ctx)}, "
            "so a real ledger gets no sample events",
            err=True,
        )
    result = build_demo(out)
    click.echo(
        f"demo ledger {out}: {result.report.added} events added, {result.report.duplicates + result.report.voided_again} already there"
    )
    click.echo(f"sample files: {', '.join(result.files)}\n")
    ctx.obj["db"] = out
    ctx.invoke(history, lot=result.export_lot, as_json=False)
    click.echo("\nGo on with:")
    steps = [
        (f"upstream {result.export_lot}", "producers and their shares"),
        (f"eudr {result.export_lot} --check", "EUDR geolocation proof"),
        ("bottlenecks", "where lots wait"),
        ("verify", "nothing was changed"),
    ]
    width = max(len(c) for c, _ in steps)
    for command, why in steps:
        click.echo(f"  lottrace --db {out} {command.ljust(width)}  # {why}")
    click.echo(
        f"  export LOTTRACE_DB={out}   # then drop --db\n  (docs/getting-started.md walks through the rest)"
    )


# --------------------------------------------------------------------------- generate


@cli.command()
@click.option("--producers", type=click.IntRange(min=1), required=True, help="Producer families.")
@click.option(
    "--seasons",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Seasons, ending with 2025's.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed gives the same file."
)
@click.option(
    "-o",
    "--out",
    type=_OutputPath(),
    required=True,
    help="The JSON Lines file to write.",
)
def generate(producers: int, seasons: int, seed: int, out: Path) -> None:
    """Write a synthetic, realistic season of events for demos, tests and benchmarks.

    Cooperatives, gatherers, HQs, dry mills and Paita; harvests from April to
    October; rejects and re-inspections; merges and mill splits; slow roads in
    the rains. It streams, so memory stays flat however many producers.
    """
    from .generate import write_jsonl

    n = write_jsonl(out, producers, seasons=seasons, seed=seed)
    click.echo(
        f"wrote {n} events to {out} ({producers} producers, {seasons} season(s), seed {seed})"
    )


# --------------------------------------------------------------------------- epcis


@cli.group()
def epcis() -> None:
    """GS1 EPCIS 2.0 JSON-LD and XML: export, import, and Event Hash IDs (docs/epcis.md)."""


@epcis.command("export")
@click.option("--lot", help="Only the events of this lot.")
@click.option(
    "--event-id",
    metavar="ID",
    help="Only the events this id names: a lottrace event id, an Event Hash ID or a "
    "partner's eventID (with their corrections).",
)
@click.option("--upstream", is_flag=True, help="With --lot: also every lot it was formed from.")
@click.option(
    "--since", callback=lambda _c, _p, v: _when(v), help="Only events on or after this date."
)
@click.option(
    "--gs1-prefix",
    envvar="LOTTRACE_GS1_PREFIX",
    metavar="PREFIX.ITEM",
    help="GS1 company prefix and item reference of your GTIN (13 digits, e.g. 7751234.012345): "
    "lots become LGTINs. Or set LOTTRACE_GS1_PREFIX.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonld", "xml"]),
    default="jsonld",
    show_default=True,
    help="EPCIS 2.0 JSON-LD, or the EPCIS XML binding.",
)
@click.option(
    "--xml-version",
    type=click.Choice(["2.0", "1.2"]),
    help="With --format xml: EPCIS 2.0 (the default) or 1.2 XML (1.2 has no AssociationEvent, "
    "sensor data, persistentDisposition or certificationInfo).",
)
@click.option(
    "-o",
    "--output",
    type=_OutputPath(),
    required=True,
    help="The EPCIS file to write.",
)
@click.pass_context
def epcis_export(
    ctx: click.Context,
    lot: str | None,
    event_id: str | None,
    upstream: bool,
    since: str | None,
    gs1_prefix: str | None,
    fmt: str,
    xml_version: str | None,
    output: Path,
) -> None:
    """Write the ledger's events as an EPCIS 2.0 document, each with its Event Hash ID."""
    from .epcis import Identifiers, export_document
    from .epcis_xml import document_to_xml

    if upstream and lot is None:
        raise click.BadParameter("--upstream needs --lot", param_hint="--upstream")
    if xml_version is not None and fmt != "xml":
        raise click.BadParameter("--xml-version needs --format xml", param_hint="--xml-version")
    if event_id is not None and lot is not None:
        raise click.BadParameter("give --lot or --event-id, not both", param_hint="--event-id")
    with _open(ctx) as ledger:
        doc = export_document(
            ledger,
            lot=lot,
            upstream=upstream,
            since=since,
            ids=Identifiers(gs1_prefix or None),
            event_id=event_id,
        )
    if fmt == "xml":
        data = document_to_xml(doc, version=xml_version or "2.0")
    else:
        data = (_dumps(doc) + "\n").encode()
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise LottraceError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}: {len(doc['epcisBody']['eventList'])} EPCIS events")


@epcis.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option
@click.pass_context
def epcis_import(ctx: click.Context, files: Sequence[Path], as_json: bool) -> None:
    """Add the events of EPCIS 2.0 JSON-LD documents, all or nothing.

    Documents lottrace exported come back as the same coffee events; events
    of other documents are kept as 'epcis' events whose lot lineage joins
    upstream and downstream; their master data and header (sender, receiver,
    SBDH) as 'master_data' and 'epcis_header' events. Each document is
    checked first: a problem rejects the whole batch, naming its JSON path.
    """
    from .epcis import load_document
    from .importing import import_documents

    registry = _registry_if_any(ctx)
    contexts = registry.contexts() if registry else {}
    docs = [(str(p), load_document(str(p), contexts=contexts)) for p in files]
    with _open(ctx, write=True) as ledger:
        report = import_documents(ledger, docs)
    _print_report(report, as_json)


@epcis.command("hash")
@click.argument("file", type=click.Path(path_type=Path))
@json_option
@click.pass_context
def epcis_hash(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Print the CBV 2.0 Event Hash ID of every event of an EPCIS JSON-LD document.

    One line per event, in document order. The document is not checked
    beyond what the hash needs, so partners can hash drafts too. Contexts
    registered beside the ledger (--db) are used.
    """
    from .epcis import load_document
    from .epcis_check import document_hashes

    registry = _registry_if_any(ctx)
    contexts = registry.contexts() if registry else {}
    doc = load_document(str(file), check=False, contexts=contexts)
    hashes = document_hashes(doc, where=str(file))
    if as_json:
        click.echo(_dumps(hashes))
    else:
        for h in hashes:
            click.echo(h)


@epcis.group("context")
def epcis_context() -> None:
    """Local copies of partners' JSON-LD contexts, so their documents import offline.

    They are kept in a folder beside the ledger (LEDGER.contexts/); lottrace
    never fetches a URL.
    """


@epcis_context.command("add")
@click.argument("url")
@click.argument("file", type=click.Path(path_type=Path))
@click.pass_context
def epcis_context_add(ctx: click.Context, url: str, file: Path) -> None:
    """Register FILE (a JSON-LD document with '@context') as the context URL serves."""

    registry = _registry(ctx)
    registry.add(url, file)
    click.echo(f"registered {url} in {registry.folder}")


@epcis_context.command("list")
@json_option
@click.pass_context
def epcis_context_list(ctx: click.Context, as_json: bool) -> None:
    """The registered contexts: URL and the local copy."""

    entries = [(url, str(path)) for url, path in _registry(ctx)]
    if as_json:
        click.echo(_dumps([{"url": u, "file": f} for u, f in entries]))
        return
    for url, path in entries:
        click.echo(f"{shown(url)}  {path}")


@epcis_context.command("remove")
@click.argument("url")
@click.pass_context
def epcis_context_remove(ctx: click.Context, url: str) -> None:
    """Forget the context registered for URL."""

    registry = _registry(ctx)
    registry.remove(url)
    click.echo(f"removed {url}")


# --------------------------------------------------------------------------- passport


@cli.command()
@click.argument("lot")
@click.option(
    "-o",
    "--output",
    type=_OutputPath(),
    help="The HTML file to write. Default: LOT.html (unsafe characters as _).",
)
@click.option(
    "--lang", type=click.Choice(["en", "es"]), default="en", show_default=True, help="Language."
)
@click.option(
    "--url",
    envvar="LOTTRACE_PASSPORT_URL",
    help="The passport's public URL, for its QR code; {lot} becomes the lot code "
    "(or set LOTTRACE_PASSPORT_URL). Without it, no QR code.",
)
@click.option(
    "--farm-gate-share",
    is_flag=True,
    help="Add one aggregate line, the farm-gate price as a % of FOB (the cooperative's choice; "
    "payments never appear).",
)
@click.option("--fx", multiple=True, metavar="CUR=RATE", help="For --farm-gate-share: PEN=0.27.")
@click.pass_context
def passport(
    ctx: click.Context,
    lot: str,
    output: Path | None,
    lang: str,
    url: str | None,
    farm_gate_share: bool = False,
    fx: tuple[str, ...] = (),
) -> None:
    """A lot passport for buyers: one self-contained HTML file that works offline.

    The export and its containers, a timeline from the harvests to the port,
    producers and shares (women producers' micro-lots named), a map of the
    plots, QC results, certifications, the EUDR check and the ledger head hash.
    """
    from .passport import passport as render
    from .passport import passport_url

    link = passport_url(url, lot) if url else None
    assume = None
    if farm_gate_share:
        from .statement import assumptions

        assume = assumptions(fx, "0.8", None)
    with _open(ctx) as ledger:
        page = render(ledger, lot, lang=lang, url=link, farm_gate=assume)
    out = output or check_output(
        Path(re.sub(r"[^A-Za-z0-9._-]", "_", lot) + ".html"), ctx.obj["db"]
    )
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise LottraceError(f"cannot write {out}: {exc.strerror}") from None
    qr = f"QR code for {link}" if link else "no QR code: no --url"
    click.echo(f"wrote {out}: passport of lot {lot} in {lang}; {qr}")


# --------------------------------------------------------------------------- datasette


@cli.command("datasette-metadata")
@click.option(
    "-o",
    "--output",
    type=_OutputPath(),
    help="Write the metadata JSON here instead of printing it.",
)
@click.pass_context
def datasette_metadata(ctx: click.Context, output: Path | None) -> None:
    """Datasette metadata for the ledger: table and column descriptions, canned queries.

    \b
    Then browse the ledger with:
      datasette lottrace.db --metadata metadata.json
    The queries answer a lot's upstream and downstream, bottlenecks and stuck lots.
    """
    from .browse import datasette_metadata as metadata

    if not isinstance(ctx.obj["db"], Path):
        raise LottraceError("Datasette reads SQLite files: datasette-metadata needs --db FILE")
    name = ctx.obj["db"].stem
    text = _dumps(metadata(name)) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LottraceError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {output}: run datasette {ctx.obj['db']} --metadata {output}")


# --------------------------------------------------------------------------- the server


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--max-body-mb",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="The largest request body accepted (413 beyond it).",
)
@click.option(
    "--cors",
    "cors",
    multiple=True,
    metavar="ORIGIN",
    help="An origin browsers may call the API from (repeatable). Default: none.",
)
@click.option(
    "--public-url",
    metavar="URL",
    help="The server's address as passports' QR codes name it, e.g. https://trace.coop.pe.",
)
@click.option(
    "--pool-size",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="A ledger on PostgreSQL: the most connections the server holds open.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str,
    port: int,
    max_body_mb: int,
    cors: tuple[str, ...],
    public_url: str | None,
    pool_size: int,
) -> None:
    """Serve the ledger over HTTP: EPCIS 2.0 capture and query, lottrace's API, passports.

    Every request needs a token (lottrace users add). Behind a TLS reverse
    proxy for anything beyond this computer: see docs/deploying.md.
    """
    import logging

    import uvicorn

    from .server import create_app

    app = create_app(
        ctx.obj["db"],
        max_body_bytes=max_body_mb * 1_000_000,
        cors_origins=cors,
        public_url=public_url,
        pool_size=pool_size,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    click.echo(f"serving {ctx.obj['db']} on http://{host}:{port}", err=True)
    # uvicorn's access log names full URLs; lottrace logs each request's route instead.
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning")


@cli.group()
def users() -> None:
    """Users of the served ledger: add (prints a token once), list, revoke."""


@users.command("add")
@click.argument("name")
@click.option("--org", required=True, help="The user's organisation.")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["field", "qc", "analyst", "buyer", "admin"]),
    help="What the user may do (see docs/deploying.md).",
)
@click.option(
    "--owner",
    is_flag=True,
    help="ORG runs this ledger: its users read all of it (set with the first user).",
)
@click.pass_context
def users_add(ctx: click.Context, name: str, org: str, role: str, owner: bool) -> None:
    """Add a user and print its token, once: it is stored only as a hash."""
    from .access import AccessFile

    _open(ctx).close()  # the ledger must exist
    token = AccessFile(ctx.obj["db"]).add_user(name, org=org, role=role, owner=owner)
    click.echo(token)
    click.echo(
        f"added {shown(name)} ({shown(org)}, {role}); the token above is shown only now: "
        "send it as 'Authorization: Bearer TOKEN'",
        err=True,
    )


@users.command("list")
@json_option
@click.pass_context
def users_list(ctx: click.Context, as_json: bool) -> None:
    """The users, their organisations and roles (never their tokens)."""
    from .access import AccessFile

    rows = AccessFile(ctx.obj["db"]).users()
    if as_json:
        click.echo(_dumps(rows))
        return
    click.echo(
        _table(
            [{**r, "revoked": r.get("revoked", "")} for r in rows],
            ["name", "org", "role", "created", "revoked"],
        )
    )


# --------------------------------------------------------------------------- EUDR plots


@cli.group()
def plots() -> None:
    """The plot registry: plots as events, read from GeoJSON, KML or CSV, and checked."""


@plots.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--site", default="hq:registry", show_default=True, help="Where it is recorded.")
@click.option("--time", "when", help="The records' time (ISO with offset). Default: now.")
@json_option
@click.pass_context
def plots_import(
    ctx: click.Context, files: Sequence[Path], site: str, when: str | None, as_json: bool
) -> None:
    """Register or update plots from GeoJSON FeatureCollections, KML or CSV (lat/lon or wkt).

    All files are read first: one bad record names its file, line or feature, and
    field, and nothing is written. A plot whose record is unchanged is skipped.
    """
    from .plot_registry import import_plots

    with _open(ctx, write=True) as ledger:
        report = import_plots(ledger, files, site=site, time=when)
    if as_json:
        click.echo(_dumps(report))
    else:
        click.echo(f"plots added {report['added']}, unchanged {report['unchanged']}")


@plots.command("list")
@click.option("--as-of", help="The registry as of this date or time (default: now).")
@json_option
@click.pass_context
def plots_list(ctx: click.Context, as_of: str | None, as_json: bool) -> None:
    """The plot registry as of a date: each plot's record in force."""
    from .plot_registry import as_of_key, registry

    with _open(ctx) as ledger:
        rows = [p.as_dict() for p in registry(ledger, as_of_key(as_of)).values()]
    rows.sort(key=lambda r: (r["producer"], r["plot_id"]))
    if as_json:
        click.echo(_dumps(rows))
        return
    for r in rows:
        r["geometry"] = r["geometry"]["type"] if r["geometry"] else None
        r["lots"] = len(r["lots"])
    click.echo(
        _table(rows, ["producer", "plot_id", "geometry", "area_ha", "since", "versions", "lots"])
    )


@plots.command("check")
@click.option("--as-of", help="Check the registry as of this date or time (default: now).")
@json_option
@click.pass_context
def plots_check(ctx: click.Context, as_of: str | None, as_json: bool) -> None:
    """What the EU information system would reject, per plot; exits 1 if anything.

    Precision under six decimals, swapped longitude and latitude, rings not
    closed, self-intersections, holes, spikes, a point for a plot over 4 ha,
    area off the declared area, overlaps between producers, duplicate
    geometries; each with every lot it blocks.
    """
    from .geometry import check_plots
    from .plot_registry import as_of_key

    with _open(ctx) as ledger:
        problems = check_plots(ledger, as_of_key(as_of))
    if as_json:
        click.echo(_dumps(problems))
    elif problems:
        click.echo(_table(problems, ["producer", "plot_id", "code", "message", "lots"]))
    else:
        click.echo("no problems")
    if problems:
        raise LottraceError(f"{len(problems)} plot problem(s)")


# --------------------------------------------------------------------------- EUDR findings


@cli.group()
def findings() -> None:
    """Deforestation evidence: per-plot risk results (Whisp, GFW ...) and their resolutions."""


@findings.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dataset", help="The analysis, e.g. whisp (unless a dataset column names it).")
@click.option("--dataset-version", help="Its version (unless a dataset_version column does).")
@click.option("--date", help="The analysis date (unless an analysis_date column gives it).")
@click.option("--site", default="hq:registry", show_default=True, help="Where it is recorded.")
@json_option
@click.pass_context
def findings_import(
    ctx: click.Context,
    files: Sequence[Path],
    dataset: str | None,
    dataset_version: str | None,
    date: str | None,
    site: str,
    as_json: bool,
) -> None:
    """Add per-plot risk results from CSV or GeoJSON files (docs/guide-buyer.md lists the
    columns), all or nothing."""
    from .findings import import_findings

    with _open(ctx, write=True) as ledger:
        report = import_findings(
            ledger, files, dataset=dataset, version=dataset_version, date=date, site=site
        )
    if as_json:
        click.echo(_dumps(report))
    else:
        click.echo(f"findings added {report['added']}, duplicates skipped {report['duplicates']}")


@findings.command("resolve")
@click.argument("finding")
@click.option(
    "--evidence",
    required=True,
    type=click.Choice(
        ["agroforestry", "not_forest", "before_cutoff", "field_visit", "false_positive"]
    ),
    help="What answers the finding.",
)
@click.option("--document", help="The evidence document (file, URL or archive reference).")
@click.option("--note", help="Free text.")
@click.option("--site", default="hq:registry", show_default=True, help="Where it is recorded.")
@click.option("--time", "when", help="When it was resolved (ISO with offset). Default: now.")
@click.pass_context
def findings_resolve(
    ctx: click.Context,
    finding: str,
    evidence: str,
    document: str | None,
    note: str | None,
    site: str,
    when: str | None,
) -> None:
    """Close FINDING (its event id, or 8 or more of its first characters) with evidence."""
    from .findings import resolve_finding

    with _open(ctx, write=True) as ledger:
        done = resolve_finding(
            ledger, finding, evidence=evidence, document=document, note=note, site=site, time=when
        )
    click.echo(f"resolved finding {done['finding'][:12]} ({evidence})")


@findings.command("list")
@click.argument("lot", required=False)
@click.option("--as-of", help="As of this date or time (default: now).")
@json_option
@click.pass_context
def findings_list(ctx: click.Context, lot: str | None, as_of: str | None, as_json: bool) -> None:
    """Open findings: of the plots upstream of LOT (with the worst), or of every plot."""
    from .findings import lot_findings, open_findings
    from .plot_registry import as_of_key

    with _open(ctx) as ledger:
        if lot is not None:
            data = lot_findings(ledger, lot, as_of_key(as_of))
        else:
            rows = [f for fs in open_findings(ledger, as_of_key(as_of)).values() for f in fs]
            data = {"lot": None, "risk": None, "findings": sorted(rows, key=lambda r: r["plot_id"])}
    if as_json:
        click.echo(_dumps(data))
        return
    if lot is not None:
        click.echo(f"lot {lot}: worst open finding: {data['risk'] or 'none'}")
    for r in data["findings"]:
        r["event_id"] = r["event_id"][:12]
    click.echo(
        _table(
            data["findings"], ["plot_id", "risk", "dataset", "dataset_version", "date", "event_id"]
        )
    )


@users.command("revoke")
@click.argument("name")
@click.pass_context
def users_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a user's token: its next request is refused (401)."""
    from .access import AccessFile

    AccessFile(ctx.obj["db"]).revoke(name)
    click.echo(f"revoked {shown(name)}")


@users.command("site")
@click.argument("site")
@click.option("--org", required=True, help="The organisation the site belongs to.")
@click.pass_context
def users_site(ctx: click.Context, site: str, org: str) -> None:
    """Declare that SITE belongs to ORG, not to the ledger's owner (who writes there)."""
    from .access import AccessFile

    AccessFile(ctx.obj["db"]).set_site(site, org)
    click.echo(f"site {shown(site)} belongs to {shown(org)}")


@cli.command()
@click.argument("lot")
@click.option("--private", is_flag=True, help="Make the lot's passport private again.")
@click.pass_context
def publish(ctx: click.Context, lot: str, private: bool) -> None:
    """Make LOT's passport public on the server (its QR code opens without a token)."""
    from .access import AccessFile

    with _open(ctx) as ledger:
        ledger.require_lot(lot)
    AccessFile(ctx.obj["db"]).publish(lot, public=not private)
    click.echo(f"the passport of {shown(lot)} is {'private' if private else 'public'}")


# --------------------------------------------------------------------------- claims and money


@cli.command()
@click.argument("lot")
@json_option
@click.pass_context
def claims(ctx: click.Context, lot: str, as_json: bool) -> None:
    """The claims LOT holds (organic, Café Femenino ...), and why it lacks the others."""
    from .claims import claims as query

    data = _query(ctx, query, lot, as_json=as_json)
    if data is None:
        return
    held = ", ".join(data["held"]) or "none"
    click.echo(f"lot {data['lot']} holds: {held}")
    if data["declared"]:
        click.echo(f"declared a claim lot for: {', '.join(data['declared'])}")
    for row in data["not_held"]:
        at = f" (dropped at {', '.join(row['dropped_at'])})" if row["dropped_at"] else ""
        click.echo(f"not {row['claim']}{at}: {row['reason']}")


@cli.group()
def certificates() -> None:
    """Certificates recorded in the ledger (``certificate`` events)."""


@certificates.command("expiring")
@click.option("--within", default="60d", show_default=True, help="A span: 60d, 8w.")
@click.option("--today", metavar="DATE", help="Count from this date (YYYY-MM-DD), not today.")
@json_option
@click.pass_context
def certificates_expiring(
    ctx: click.Context, within: str, today: str | None, as_json: bool
) -> None:
    """Certificates whose last valid day falls within --within (and those just expired)."""
    from .certificates import expiring, parse_day, parse_within

    data = _query(ctx, expiring, parse_within(within), parse_day(today, "--today"), as_json=as_json)
    if data is None:
        return
    cols = ["valid_to", "days_left", "scheme", "number", "holder", "issued_by"]
    if data["certificates"]:
        click.echo(_table(data["certificates"], cols))
    else:
        click.echo(f"no certificate expires within {data['within_days']} days of {data['today']}")
    if data["expired"]:
        click.echo(f"\nexpired in the last {data['within_days']} days:")
        click.echo(_table(data["expired"], cols))


@cli.command()
@click.argument("lot")
@json_option
@click.pass_context
def premiums(ctx: click.Context, lot: str, as_json: bool) -> None:
    """The premiums LOT earned: each producer's share by the kilos that reached it, paid, owed."""
    from .money import premiums as query

    data = _query(ctx, query, lot, as_json=as_json)
    if data is None:
        return
    cur = data["currency"]
    for c in data["contracts"]:
        lines = ", ".join(f"{x['kind']} {x['rate']}/{x['per']} = {x['amount']}" for x in c["lines"])
        click.echo(f"contract {c['contract']} on {c['kg']:g} kg: {lines}")
    click.echo(f"received {data['received']} {cur}\n")
    from tabulate import tabulate

    cols = ["producer", "kg", "premium", "paid", "owed"]
    rows = [
        [r["producer"], f"{r['kg']:,.3f}", r["premium"], r["paid"], r["owed"]]
        for r in data["producers"]
    ]
    click.echo(
        tabulate(rows, headers=cols, disable_numparse=True, colalign=("left",) + ("right",) * 4)
    )
    t = data["totals"]
    click.echo(f"\ntotal premium {t['premium']} {cur}, paid {t['paid']}, owed {t['owed']}")
    if data["unallocated"]["lots"]:
        u = data["unallocated"]
        click.echo(f"unknown origin ({', '.join(u['lots'])}): {u['premium']} {cur} not allocated")
    click.echo(f"rounding: {data['rounding']}")


@cli.command("producer-statement")
@click.argument("producer")
@click.option("--season", required=True, help="The season, e.g. 2025.")
@click.option("-o", "--output", type=_OutputPath(), help="Write the HTML statement here.")
@click.option(
    "--fx",
    multiple=True,
    metavar="CUR=RATE",
    help="An exchange rate to the export price's currency, e.g. PEN=0.27 (repeatable).",
)
@click.option(
    "--green-ratio",
    default="0.8",
    show_default=True,
    help="Kg of green coffee per kg of parchment bought (farm-gate price per kg green).",
)
@click.option(
    "--living-income",
    metavar="AMOUNT CUR",
    help="A living-income benchmark for the season, e.g. '12000 PEN': the gap is shown.",
)
@json_option
@click.pass_context
def producer_statement(
    ctx: click.Context,
    producer: str,
    season: str,
    output: Path | None,
    fx: tuple[str, ...],
    green_ratio: str,
    living_income: str | None,
    as_json: bool,
) -> None:
    """A producer's season statement in Spanish (HTML that prints well), or --json for analysts.

    Deliveries, purchases with prices and deductions, premium shares,
    payments and the balance; with --json also the farm-gate price as a share
    of each export lot's FOB price and the gap to --living-income.
    """
    from .statement import assumptions, render_html, statement

    if output is None and not as_json:
        raise click.UsageError("give -o FILE.html for the statement, or --json")
    assume = assumptions(fx, green_ratio, living_income)
    with _open(ctx) as ledger:
        data = statement(ledger, producer, season, assume)
    if output is not None:
        try:
            output.write_text(render_html(data), encoding="utf-8")
        except OSError as exc:
            raise LottraceError(f"cannot write {output}: {exc.strerror}") from None
    if as_json:
        click.echo(_dumps(data))
    else:
        click.echo(f"wrote {output}: statement of producer {shown(producer)} for {season}")


# --------------------------------------------------------------------------- EUDR statements


@cli.command()
@click.argument("lot")
@click.option("--operator", required=True, help="The operator's name.")
@click.option("--operator-id", help="The operator's EORI number.")
@click.option("--operator-country", default="PE", show_default=True, help="ISO 3166-1 alpha-2.")
@click.option(
    "--activity",
    type=click.Choice(["export", "import", "domestic"]),
    default="export",
    show_default=True,
)
@click.option(
    "--hs-code",
    type=click.Choice(["090111", "090112", "090121", "090122", "090190"]),
    default="090111",
    show_default=True,
    help="HS subheading of 0901.",
)
@click.option("--description", help="Description of the goods (default from the HS code).")
@click.option("--as-of", help="Build it as of this date or time (default: now).")
@click.option("-o", "--output", type=_OutputPath(), help="Write the statement JSON here.")
@click.option(
    "--request",
    type=_OutputPath(),
    help="Also write the EU information system request body here (a dry run; never sent).",
)
@click.pass_context
def dds(
    ctx: click.Context,
    lot: str,
    operator: str,
    operator_id: str | None,
    operator_country: str,
    activity: str,
    hs_code: str,
    description: str | None,
    as_of: str | None,
    output: Path | None,
    request: Path | None,
) -> None:
    """A due diligence statement for LOT, built from the ledger (exits 1 if not provable).

    Operator and activity, HS code, description, net mass, countries of
    production, the TRACES geolocation, the production period from the
    harvests, and the reference and verification numbers of the statements
    in force upstream. lottrace never sends it: record what the information
    system answers with 'lottrace statement record'.
    """
    from .compliance import geojson_text
    from .dds import request_body, statement
    from .plot_registry import as_of_key

    with _open(ctx) as ledger:
        stmt = statement(
            ledger,
            lot,
            operator=operator,
            operator_id=operator_id,
            operator_country=operator_country,
            activity=activity,
            hs_code=hs_code,
            description=description,
            as_of=as_of_key(as_of),
        )
    # coordinates with six decimals; characters a terminal would act on escaped, as _dumps does
    text = _UNSHOWN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", geojson_text(stmt)) + "\n"
    for path, body in ((output, text), (request, _dumps(request_body(stmt)) + "\n")):
        if path is None:
            continue
        try:
            path.write_text(body, encoding="utf-8")
        except OSError as exc:
            raise LottraceError(f"cannot write {path}: {exc.strerror}") from None
    if output is None:
        click.echo(text, nl=False)
        return
    c = stmt["commodity"]
    period = c["production_period"] or {"start": "?", "end": "?"}
    click.echo(
        f"wrote {output}: lot {lot}, {c['net_mass_kg']:g} kg, {c['plots']} plots "
        f"({c['area_ha']:g} ha), harvested {period['start']} to {period['end']}, "
        f"{len(stmt['upstream_statements'])} upstream statements"
    )
    if request is not None:
        click.echo(f"wrote {request}: request body (dry run, not sent)")


@cli.group()
def statement() -> None:
    """Due diligence statements' life: submitted, amended, withdrawn, rejected."""


@statement.command("record")
@click.argument("status", type=click.Choice(["submitted", "amended", "withdrawn", "rejected"]))
@click.argument("lots", nargs=-1, required=True)
@click.option("--operator", help="The operator who filed it (as given to 'lottrace dds').")
@click.option("--reference", help="The reference number the information system gave.")
@click.option("--verification", help="The verification number it gave.")
@click.option("--message", help="The authority's message (for a rejection).")
@click.option("--site", default="hq:registry", show_default=True, help="Where it is recorded.")
@click.option("--time", "when", help="When (ISO with offset). Default: now.")
@click.pass_context
def statement_record(
    ctx: click.Context,
    status: str,
    lots: Sequence[str],
    operator: str | None,
    reference: str | None,
    verification: str | None,
    message: str | None,
    site: str,
    when: str | None,
) -> None:
    """Record what happened to the statement covering LOTS."""
    from .dds import record_status

    with _open(ctx, write=True) as ledger:
        done = record_status(
            ledger,
            status,
            list(lots),
            operator=operator,
            reference=reference,
            verification=verification,
            message=message,
            site=site,
            time=when,
        )
    ref = f" {done['reference']}" if done["reference"] else ""
    click.echo(f"statement{ref} {status}: {', '.join(lots)}")


@statement.command("list")
@click.argument("lot", required=False)
@click.option("--as-of", help="As of this date or time (default: now).")
@json_option
@click.pass_context
def statement_list(ctx: click.Context, lot: str | None, as_of: str | None, as_json: bool) -> None:
    """Statements and their latest status (of LOT and the lots downstream, if given)."""
    from .dds import statement_list

    with _open(ctx) as ledger:
        rows = statement_list(ledger, lot, as_of)
    if as_json:
        click.echo(_dumps(rows))
        return
    click.echo(_table(rows, ["reference", "verification", "status", "operator", "lots"]))


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="lottrace")
