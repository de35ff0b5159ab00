"""The fast query paths give exactly what the straightforward ones gave.

``upstream`` reads harvest and QC fields straight from the stored JSON and
computes shares in integers, with no pydantic models, networkx graph or
``Fraction`` arithmetic. The reference implementations below are the
straightforward versions (models, graph, exact fractions), kept here to
compare against on generated ledgers and on the demo ledger (which has
corrections and unknown origins).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from lottrace.demo import build_demo
from lottrace.events import Harvest, parse_event
from lottrace.generate import generate
from lottrace.graph import ancestors_graph, source_shares
from lottrace.ledger import Ledger
from lottrace.queries import upstream
from lottrace.rules import time_key

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
