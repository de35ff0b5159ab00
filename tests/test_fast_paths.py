"""The fast query paths give exactly what the straightforward ones gave.

``upstream`` reads harvest and QC fields straight from the stored JSON and
computes shares in integers, with no pydantic models, networkx graph or
``Fraction`` arithmetic; the delay queries walk the ``event_lots`` key in
its own order (no sort) into plain tuples. The reference implementations
below are the straightforward versions (models, graph, exact fractions; a
sorted scan into :class:`Leg` objects and per-leg statistics), kept here to
compare against on generated ledgers and on the demo ledger (which has
corrections and unknown origins).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from math import ceil, floor, fsum
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from lottrace.delays import Leg, bottlenecks, delays, leg_hours, legs, stuck
from lottrace.demo import build_demo
from lottrace.events import STAGE_ORDER, Harvest, parse_event
from lottrace.generate import generate
from lottrace.graph import ancestors_graph, source_shares
from lottrace.ledger import Ledger
from lottrace.provenance import upstream
from lottrace.rules import time_key

from factories import batch, drying, harvest, qc, t

_QC_TYPES = ("gatherer_qc", "hq_qc")
_QC_FIELDS = ("kg", "moisture_pct", "water_activity", "defects", "cup_score", "yield_pct", "reason")


def _ref_shares(G: Any, lot: str) -> dict[str, Fraction]:
    keep = nx.ancestors(G, lot) | {lot}
    share: dict[str, Fraction] = {lot: Fraction(1)}
    sources: dict[str, Fraction] = {}
    for node in reversed(list(nx.topological_sort(G.subgraph(keep)))):
        f = share.get(node)
        if f is None:
            continue
        preds = [(u, Fraction(G.edges[u, node]["kg"])) for u in G.predecessors(node)]
        if not preds:
            sources[node] = f
            continue
        total = sum(kg for _, kg in preds)
        for u, kg in preds:
            share[u] = share.get(u, Fraction(0)) + f * kg / total
    return sources


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _ref_upstream(ledger: Ledger, lot: str) -> dict[str, Any]:
    """upstream through pydantic models, a networkx graph and Fractions."""
    G = ancestors_graph(ledger, lot, timelines=True)
    harvests: dict[str, Harvest] = {}
    for code in G:
        for e in G.nodes[code].get("timeline", []):
            if e.role == "output" and isinstance(e.event, Harvest):
                harvests[code] = e.event
    by_producer: dict[str | None, tuple[Fraction, list[str]]] = {}
    for source, f in _ref_shares(G, lot).items():
        h = harvests.get(source)
        producer = h.producer if h is not None else None
        total, lots = by_producer.get(producer, (Fraction(0), []))
        by_producer[producer] = (total + f, [*lots, source])
    lot_kg = Fraction(G.nodes[lot].get("kg", 0.0))
    shares = [
        {"producer": p, "share": float(f), "kg": round(float(f * lot_kg), 3), "lots": sorted(lots)}
        for p, (f, lots) in sorted(by_producer.items(), key=lambda kv: (-kv[1][0], kv[0] or ""))
    ]
    in_time = sorted(harvests.items(), key=lambda kv: (time_key(kv[1].time), kv[0]))
    plots: dict[tuple[str, str], dict[str, Any]] = {}
    for code, h in in_time:
        row = plots.setdefault(
            (h.producer, h.plot.id),
            {
                "producer": h.producer,
                "plot_id": h.plot.id,
                "area_ha": None,
                "altitude_m": None,
                "geometry": None,
                "lots": [],
            },
        )
        row["lots"].append(code)
        for name in ("area_ha", "altitude_m"):
            if getattr(h.plot, name) is not None:
                row[name] = getattr(h.plot, name)
        if h.plot.geometry is not None:
            row["geometry"] = h.plot.geometry.model_dump()
    own = [
        (code, e)
        for code in G
        for e in G.nodes[code].get("timeline", [])
        if e.role != "input" and e.event.type in _QC_TYPES
    ]
    own.sort(key=lambda ce: (time_key(ce[1].event.time), ce[1].seq, ce[0]))
    return {
        "lot": lot,
        "lots": sorted(n for n in G if n != lot),
        "producers": sorted({h.producer for h in harvests.values()}),
        "plots": [plots[k] for k in sorted(plots)],
        "harvests": [
            {
                "lot": code,
                "producer": h.producer,
                "plot_id": h.plot.id,
                "time": h.time.isoformat(),
                "kg": h.kg,
                "variety": h.variety,
                "process": h.process,
                "certifications": list(h.certifications or []),
                "women_producer": h.women_producer,
            }
            for code, h in in_time
        ],
        "qc": [
            {
                "lot": code,
                "stage": e.event.type,
                "time": e.event.time.isoformat(),
                "site": e.event.site,
                "result": getattr(e.event, "result", None),
                **{k: _plain(getattr(e.event, k, None)) for k in _QC_FIELDS},
            }
            for code, e in own
        ],
        "shares": shares,
        "voided": ledger.voided_for_lots(G.nodes),
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fast") / "g.db"
    with Ledger.create(path) as ledger:
        events = generate(producers=400, seed=11, coop_size=(40, 90))
        ledger.append((f"gen:{i}", parse_event(e)) for i, e in enumerate(events, 1))
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fast") / "demo.db"
    build_demo(path)
    return path


def _formed_lots(ledger: Ledger) -> list[str]:
    """Every lot formed from other lots, the exports and mill grades first."""
    rows = ledger.conn.execute(
        "SELECT DISTINCT dst FROM links ORDER BY dst LIKE 'EXP%' DESC, dst LIKE 'MILL%' DESC, dst"
    ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("which", ["generated", "demo"])
def test_upstream_equals_the_model_graph_fraction_reference(
    which: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(which)
    with Ledger(path) as ledger:
        lots = _formed_lots(ledger)
        assert len(lots) > 10
        sql = "SELECT lot FROM event_lots WHERE type = 'harvest' LIMIT 1"
        harvest = ledger.conn.execute(sql).fetchone()[0]
        checked = 0
        for lot in [*lots[:150], harvest]:
            assert upstream(ledger, lot) == _ref_upstream(ledger, lot), lot
            checked += 1
        assert checked > 10
        big = max(lots[:150], key=lambda x: len(upstream(ledger, x)["lots"]))
        assert len(upstream(ledger, big)["shares"]) > 3  # a real blend was compared


def test_source_shares_are_exact_through_diamonds_and_odd_kg() -> None:
    inputs = {
        "G1": {"H1": 0.1, "H2": 0.2},
        "M1": {"G1": 119.237},
        "M2": {"G1": 119.237},
        "E": {"M1": 1 / 3, "M2": 25.0, "H3": 75.5},
    }
    got = {k: Fraction(n, d) for k, (n, d) in source_shares(inputs, "E").items()}
    G = nx.DiGraph()
    for dst, srcs in inputs.items():
        for src, kg in srcs.items():
            G.add_edge(src, dst, kg=kg)
    assert got == _ref_shares(G, "E")
    assert sum(got.values()) == 1
    assert source_shares({}, "H") == {"H": (1, 1)}


# --------------------------------------------------------------------------- delays


def _hours(a: str, b: str) -> float:
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() / 3600


def _ref_legs(ledger: Ledger) -> list[Leg]:
    """Legs from the sorted scan (``Ledger.leg_rows``), one row at a time."""
    out: list[Leg] = []
    current: str | None = None
    start: tuple[str, str, str] | None = None
    marks: list[tuple[str, str]] = []
    for lot, key, kind, role, site in ledger.leg_rows():
        if lot != current:
            current, start, marks = lot, None, []
        if kind not in STAGE_ORDER:
            if start is not None and role == "subject":
                marks.append((kind, key))
            continue
        if start is not None and role != "output":
            transit: float | None = None
            dispatched: str | None = None
            for mk, mkey in marks:
                if mk == "dispatch" and dispatched is None:
                    dispatched = mkey
                elif mk == "arrival" and dispatched is not None:
                    transit = (transit or 0.0) + _hours(dispatched, mkey)
                    dispatched = None
            if dispatched is not None:
                transit = (transit or 0.0) + _hours(dispatched, key)
            out.append(
                Leg(
                    lot,
                    start[1],
                    start[2],
                    start[0],
                    kind,
                    site,
                    key,
                    _hours(start[0], key),
                    transit,
                )
            )
            marks = []
        if role == "output" or (role == "subject" and kind != "export"):
            start, marks = (key, kind, site), []
    return out


def _q(xs: list[float], q: float) -> float:
    pos = (len(xs) - 1) * q
    lo, hi = floor(pos), ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _stats(group: list[Leg]) -> dict[str, Any]:
    xs = sorted(g.hours for g in group)
    trucked = [g for g in group if g.transit_hours is not None]
    waits = [g.hours - g.transit_hours for g in trucked if g.transit_hours is not None]
    transits = [g.transit_hours for g in trucked if g.transit_hours is not None]
    # means are exact: whole microseconds, here from the legs' own start and end times
    us = sum(_us_between(g.start, g.end) for g in group)
    return {
        "count": len(xs),
        "mean_hours": round(us / len(xs) / _US, 3),
        "p50_hours": round(_q(xs, 0.5), 3),
        "p90_hours": round(_q(xs, 0.9), 3),
        "max_hours": round(xs[-1], 3),
        "wait_hours": round(_exact(waits) / len(waits) / _US, 3) if waits else None,
        "transit_hours": round(_exact(transits) / len(transits) / _US, 3) if transits else None,
    }


_US = 3_600_000_000


def _us_between(start: str, end: str) -> int:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)) // timedelta(
        microseconds=1
    )


def _exact(hours: list[float]) -> int:
    """Whole microseconds of hours that were whole microseconds (each within float error)."""
    total = 0
    for h in hours:
        us = Fraction(h) * _US
        assert abs(us - round(us)) < Fraction(1, 100), us
        total += round(us)
    return total


def _ref_delays(all_legs: list[Leg], by: str) -> list[dict[str, Any]]:
    groups: dict[tuple[str, ...], list[Leg]] = {}
    for g in all_legs:
        key: tuple[str, ...] = (g.from_stage, g.to_stage)
        if by == "site":
            key += (g.from_site, g.to_site)
        elif by == "month":
            key = (g.end[:7], *key)
        groups.setdefault(key, []).append(g)

    def order(k: tuple[str, ...]) -> tuple[Any, ...]:
        if by == "month":
            return (k[0], STAGE_ORDER[k[1]], STAGE_ORDER[k[2]])
        return (STAGE_ORDER[k[0]], STAGE_ORDER[k[1]], *k[2:])

    rows = []
    for key in sorted(groups, key=order):
        if by == "month":
            head: dict[str, Any] = {"month": key[0], "from": key[1], "to": key[2]}
        else:
            head = {"from": key[0], "to": key[1]}
            if by == "site":  # names from master data: these ledgers have none
                head.update(from_site=key[2], to_site=key[3])
                head.update(from_site_name=None, to_site_name=None)
        rows.append(head | _stats(groups[key]))
    return rows


def _ref_bottlenecks(all_legs: list[Leg], top: int) -> list[dict[str, Any]]:
    routes: dict[tuple[str, str, str, str], list[Leg]] = {}
    for g in all_legs:
        routes.setdefault((g.from_stage, g.to_stage, g.from_site, g.to_site), []).append(g)
    pooled: dict[tuple[str, str], list[float]] = {}
    for key, group in routes.items():
        pooled.setdefault(key[:2], []).extend(g.hours for g in group)
    baseline = {pair: _q(sorted(h), 0.5) for pair, h in pooled.items()}
    rows = []
    for key, group in routes.items():
        base = baseline[key[:2]]
        excess = fsum(max(0.0, g.hours - base) for g in group)  # exact, as lottrace sums
        if excess <= 1e-9:
            continue
        rows.append(
            {
                "from": key[0],
                "to": key[1],
                "from_site": key[2],
                "to_site": key[3],
                **_stats(group),
                "baseline_hours": round(base, 3),
                "excess_hours": round(excess, 3),
            }
        )
    rows.sort(
        key=lambda r: (
            -r["excess_hours"],
            STAGE_ORDER[r["from"]],
            STAGE_ORDER[r["to"]],
            r["from_site"],
            r["to_site"],
        )
    )
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows[:top]


@pytest.mark.parametrize("which", ["generated", "demo"])
def test_delays_and_bottlenecks_equal_the_sorted_scan_reference(
    which: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(which)
    with Ledger(path) as ledger:
        ref = _ref_legs(ledger)
        assert len(ref) > 50 and any(g.transit_hours for g in ref)
        assert list(legs(ledger)) == ref
        for by in ("stage", "site", "month"):
            assert delays(ledger, by=by) == _ref_delays(ref, by), by
        for top in (1, 10, 100_000):
            assert bottlenecks(ledger, top=top) == _ref_bottlenecks(ref, top), top
        mid = sorted(g.end for g in ref)[len(ref) // 2]
        since = datetime.fromisoformat(mid).replace(tzinfo=None).isoformat()
        window = [g for g in ref if g.end >= time_key(datetime.fromisoformat(mid))]
        assert delays(ledger, by="site", since=since) == _ref_delays(window, "site")
        assert bottlenecks(ledger, since=since) == _ref_bottlenecks(window, 10)
        assert [len(g["hours"]) for g in leg_hours(ledger)]
        assert isinstance(stuck(ledger, "2026-01-01"), list)


@pytest.mark.parametrize("last", [True, False])
def test_events_of_one_lot_at_one_time_count_in_log_order(tmp_path: Path, last: bool) -> None:
    """The key orders a lot's events at one time by type; legs need them by seq."""
    same = t(10)
    events = [
        *([] if last else [harvest("Z9"), drying("Z9", 11)]),  # a lot after H1 in the key
        harvest("H1"),
        drying("H1", 10),  # logged first ...
        {"type": "dispatch", "time": same, "site": "farm:X", "lot": "H1", "to_site": "gatherer:G1"},
        {"type": "arrival", "time": t(11), "site": "gatherer:G1", "lot": "H1"},
        qc("G1", 12, inputs=[("H1", 200.0)]),
    ]
    with Ledger.create(tmp_path / "tie.db") as ledger:
        ledger.append(batch(*events))
        scan = [
            (r[2], r[3])
            for r in ledger.leg_scan()
            if r[0] == "H1" and r[1] == time_key(datetime.fromisoformat(same))
        ]
        assert [k for k, _ in scan] == ["dispatch", "drying"]  # ... but the key puts it second
        assert list(legs(ledger)) == _ref_legs(ledger)
        got = [
            (g.from_stage, g.to_stage, g.hours, g.transit_hours)
            for g in legs(ledger)
            if g.lot == "H1"
        ]
        assert got == [("harvest", "drying", 216.0, None), ("drying", "gatherer_qc", 48.0, 24.0)]
        assert delays(ledger, by="site") == _ref_delays(_ref_legs(ledger), "site")
        # bottlenecks finds hours without the dispatch, then walks H1 again for its truck
        assert bottlenecks(ledger, top=100) == _ref_bottlenecks(_ref_legs(ledger), 100)


def test_upstream_times_as_the_models_give_them(tmp_path: Path) -> None:
    """Times in UTC ("Z") and with fractions are stored one way and shown another."""
    events = [
        harvest("H1", time="2025-05-01T13:00:00Z"),
        harvest("H2", time="2025-05-01T08:00:00.25-05:00", certifications=["organic"]),
        harvest("H3", time="2025-05-01T08:00:00+05:30", women_producer=True),
        qc(
            "G1",
            12,
            inputs=[("H1", 100.0), ("H2", 0.1), ("H3", 1 / 3)],
            defects={"cat1": 1, "cat2": 4},
        ),
    ]
    events[-1]["time"] = "2025-05-12T13:00:00.123456Z"
    with Ledger.create(tmp_path / "times.db") as ledger:
        ledger.append(batch(*events))
        got = upstream(ledger, "G1")
        assert got == _ref_upstream(ledger, "G1")
        assert [h["time"] for h in got["harvests"]] == [
            "2025-05-01T08:00:00+05:30",
            "2025-05-01T13:00:00+00:00",
            "2025-05-01T08:00:00.250000-05:00",
        ]
        assert got["qc"][0]["time"] == "2025-05-12T13:00:00.123456+00:00"


@pytest.mark.parametrize("enabled", [True, False])
def test_bottlenecks_leave_the_garbage_collector_as_they_found_it(
    demo: Path, enabled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import lottrace.delays as queries

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("scan failed")

    with Ledger(demo) as ledger:
        was = gc.isenabled()
        try:
            if not enabled:
                gc.disable()
            assert bottlenecks(ledger)
            assert gc.isenabled() is enabled
            monkeypatch.setattr(queries, "_grouped_legs", broken)
            with pytest.raises(RuntimeError):  # restored when the scan fails too
                bottlenecks(ledger)
            assert gc.isenabled() is enabled
        finally:
            if was:
                gc.enable()
