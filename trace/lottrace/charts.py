"""Charts of where lots wait, drawn with matplotlib into a PNG or SVG file.

:func:`plot_delays` draws the distribution of every leg's hours (a box or a
violin per leg, worst median first); :func:`plot_bottlenecks` draws the
excess lot-hours of the worst routes, in total and month by month, so that a
road that is bad only in the rains shows. The data come from
:mod:`lottrace.queries` (:func:`~lottrace.delays.leg_hours`,
:func:`~lottrace.delays.bottlenecks`, :func:`~lottrace.delays.excess_by_month`).

matplotlib is an optional extra (``pip install 'lottrace[plot]'``); without
it every function raises :class:`~lottrace.errors.LottraceError` with that
hint. Figures are drawn with the Agg canvas, never a window, and files are
reproducible: SVG text stays text (so leg names can be searched) and carries
no date.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .delays import bottlenecks, excess_by_month, leg_hours
from .errors import InvalidInput, LottraceError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .ledger import Ledger

__all__ = ["FORMATS", "INSTALL_HINT", "check_plot_path", "plot_bottlenecks", "plot_delays"]

#: File suffixes a chart can be written as.
FORMATS = (".png", ".svg")
INSTALL_HINT = "charts need matplotlib: pip install 'lottrace[plot]'"

_RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "lottrace"}
_ARROW = " → "


def check_plot_path(path: Path) -> None:
    """Fail early, before any work, if `path` is not .png/.svg or matplotlib is missing."""
    if path.suffix.lower() not in FORMATS:
        raise InvalidInput(
            f"{path}: a chart is written as .png or .svg, not {path.suffix or 'no suffix'!r}"
        )
    _figure_class()


def plot_delays(
    ledger: Ledger,
    path: Path,
    *,
    by: str = "stage",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    style: str = "box",
) -> list[str]:
    """Draw each leg's distribution of hours into `path`; return the legs' labels, worst first.

    `by`, `since` and `until` group and filter the legs as
    :func:`~lottrace.delays.delays` does; `style` is ``box`` or ``violin``.
    A leg with a single lot is drawn as a point.
    """
    if style not in ("box", "violin"):
        raise ValueError(f"style must be 'box' or 'violin', not {style!r}")
    check_plot_path(path)
    groups = leg_hours(ledger, by=by, since=since, until=until)
    labels = [_leg_label(g) for g in groups]
    fig = _new_figure(width=9, height=1.2 + 0.45 * max(len(groups), 1))
    ax = fig.add_subplot()
    if not groups:
        ax.text(0.5, 0.5, "no legs in this window", ha="center", va="center")
        ax.set_axis_off()
    else:
        # worst first means at the top; matplotlib counts positions from the bottom
        data = [g["hours"] for g in reversed(groups)]
        positions = list(range(1, len(data) + 1))
        if style == "violin":
            wide = [i for i, d in enumerate(data) if len(d) > 1]
            if wide:
                ax.violinplot(
                    [data[i] for i in wide],
                    positions=[positions[i] for i in wide],
                    orientation="horizontal",
                    showmedians=True,
                )
            for i, d in enumerate(data):
                if len(d) == 1:
                    ax.plot(d, [positions[i]], "o", color="C0")
        else:
            ax.boxplot(data, positions=positions, orientation="horizontal", widths=0.6)
        ax.set_yticks(positions, list(reversed(labels)))
        ax.set_xlabel("hours on the leg")
        ax.grid(axis="x", alpha=0.3)
    window = _window(since, until)
    ax.set_title(f"How long lots wait on each leg, worst first{window}")
    _save(fig, path)
    return labels


def plot_bottlenecks(
    ledger: Ledger,
    path: Path,
    *,
    top: int = 10,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> list[str]:
    """Draw the `top` routes' excess lot-hours, in total and by month; return the routes' labels.

    Left: one bar per route, worst at the top (the ranking of
    :func:`~lottrace.delays.bottlenecks`). Right: the same excess stacked by
    the month the legs ended.
    """
    check_plot_path(path)
    ranked = bottlenecks(ledger, top=top, since=since, until=until)
    monthly = excess_by_month(ledger, top=top, since=since, until=until)
    labels = [_route_label(r) for r in ranked]
    fig = _new_figure(width=13, height=1.8 + 0.45 * max(len(ranked), 1))
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.3])
    window = _window(since, until)
    fig.suptitle(f"Lot-hours lost above the usual time for each leg{window}")
    if not ranked:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no route exceeds its baseline", ha="center", va="center")
            ax.set_axis_off()
        _save(fig, path)
        return labels
    ys = list(range(len(ranked)))[::-1]  # rank 1 at the top
    colours = [f"C{i % 10}" for i in range(len(ranked))]
    left.barh(ys, [r["excess_hours"] for r in ranked], color=colours)
    left.set_yticks(ys, labels)
    left.set_xlabel("excess lot-hours")
    left.set_title("by route")
    left.grid(axis="x", alpha=0.3)

    months = sorted({r["month"] for r in monthly})
    xs = list(range(len(months)))
    bottom = [0.0] * len(months)
    for i, route in enumerate(ranked):
        by_month = {r["month"]: r["excess_hours"] for r in monthly if r["rank"] == route["rank"]}
        heights = [by_month.get(m, 0.0) for m in months]
        right.bar(xs, heights, bottom=bottom, color=colours[i])
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    right.set_xticks(xs, months)
    right.set_ylabel("excess lot-hours")
    right.set_title("by month the legs ended (colours as on the left)")
    right.grid(axis="y", alpha=0.3)
    _save(fig, path)
    return labels


def _leg_label(group: dict[str, Any]) -> str:
    label = group["from"] + _ARROW + group["to"]
    if "from_site" in group:
        label += f"\n{group['from_site']}{_ARROW}{group['to_site']}"
    if "month" in group:
        label += f" {group['month']}"
    return f"{label} (n={len(group['hours'])})"


def _route_label(row: dict[str, Any]) -> str:
    return f"{row['from_site']}{_ARROW}{row['to_site']}\n{row['from']}{_ARROW}{row['to']}"


def _window(since: datetime | str | None, until: datetime | str | None) -> str:
    if since is None and until is None:
        return ""
    return f" ({since or '…'} to {until or '…'})"


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise LottraceError(INSTALL_HINT) from None
    return Figure


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with rc_context(_RC):
        fig = _figure_class()(figsize=(width, min(height, 40)), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    from matplotlib import rc_context

    fmt = path.suffix.lower().lstrip(".")
    metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    try:
        with rc_context(_RC):
            fig.savefig(path, format=fmt, metadata=metadata, dpi=120)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot write: {exc.strerror or exc}") from None
