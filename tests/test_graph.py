"""Lineage graphs: the right lots, edges and kg, exact shares, and only the sub-graph is read."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from lottrace.errors import IntegrityViolation, UnknownLot
from lottrace.graph import (
    ancestor_inputs,
    ancestors_graph,
    descendants_graph,
    shares_from,
    shares_into,
    source_shares,
    timelines,
)
from lottrace.ledger import Ledger

from factories import batch, chain, drying, export, harvest, mill, qc


@pytest.fixture
def ledger(ledger_target: str) -> Any:
    """A fresh ledger on each backend."""
    with Ledger.create(ledger_target) as led:
        yield led


def _diamond() -> list[dict[str, Any]]:
    """G1 (H1 + H2) milled into M1 and M2, which meet again in export lot E with M3 (from H3)."""
    return [
        harvest("H1", 1, 1000),
        harvest("H2", 2, 500),
        harvest("H3", 3, 500),
        drying("H1", 10, 200),
        drying("H2", 11, 100),
        drying("H3", 12, 100),
        qc("G1", 15, inputs=[("H1", 200), ("H2", 100)]),
        qc("G3", 16, inputs=[("H3", 100)]),
        mill(40, [("G1", 300)], [("M1", 200, "Grade 1"), ("M2", 40, "Grade 2")], rejects_kg=50),
        mill(41, [("G3", 100)], [("M3", 75, "Grade 1")], rejects_kg=20),
        export(
            "E",
            60,
            250,
            inputs=[{"lot": "M1", "kg": 150}, {"lot": "M2", "kg": 40}, {"lot": "M3", "kg": 60}],
        ),
    ]


def test_ancestors_graph_of_a_mill_output(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    G = ancestors_graph(ledger, "M1")
    assert sorted(G.nodes) == ["G1", "H1", "H2", "M1"]
    assert {(u, v): d["kg"] for u, v, d in G.edges(data=True)} == {
        ("H1", "G1"): 200.0,
        ("H2", "G1"): 100.0,
        ("G1", "M1"): 300.0,
    }
    assert G.graph == {"lot": "M1", "direction": "up"}
    assert G.nodes["M1"]["kg"] == 200.0
    assert G.nodes["M1"]["drawn_kg"] == 200.0  # exported
    assert G.nodes["M1"]["stage_name"] == "export"
    assert G.nodes["G1"]["inflow_kg"] == 300.0
    assert G.nodes["H1"]["inflow_kg"] == 0.0
    assert "timeline" not in G.nodes["M1"]


def test_descendants_graph_follows_a_dry_mill_split(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    G = descendants_graph(ledger, "H2")
    assert sorted(G.nodes) == ["G1", "H2", "M1", "M2"]
    assert sorted(G.edges) == [("G1", "M1"), ("G1", "M2"), ("H2", "G1")]
    # H1's link into G1 is not an edge here, but it counts in G1's inflow
    assert G.nodes["G1"]["inflow_kg"] == 300.0
    assert G.graph["direction"] == "down"


def test_merges_of_merges_reach_every_harvest(ledger: Ledger) -> None:
    ledger.append(
        batch(
            *(harvest(f"H{i}", i, 1000) for i in range(1, 5)),
            *(drying(f"H{i}", 10 + i, 200) for i in range(1, 5)),
            qc("G1", 20, inputs=[("H1", 200), ("H2", 200)]),
            qc("G2", 21, inputs=[("H3", 200), ("H4", 200)]),
            qc("HQ", 25, stage="hq_qc", inputs=[("G1", 400), ("G2", 400)]),
            qc("HQ2", 26, stage="hq_qc", inputs=[("HQ", 800)]),
        )
    )
    G = ancestors_graph(ledger, "HQ2")
    assert sorted(n for n in G if G.in_degree(n) == 0) == ["H1", "H2", "H3", "H4"]
    assert nx.shortest_path_length(G, "H3", "HQ2") == 3
    assert shares_into(G, "HQ2") == {f"H{i}": Fraction(1, 4) for i in range(1, 5)}


def test_timelines_are_in_time_order_with_roles(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    tl = timelines(ledger, ["G1", "H1", "NOPE"])
    assert [(e.event.type, e.role) for e in tl["G1"]] == [
        ("gatherer_qc", "output"),
        ("dry_mill", "input"),
    ]
    assert [(e.event.type, e.role) for e in tl["H1"]] == [
        ("harvest", "output"),
        ("drying", "subject"),
        ("gatherer_qc", "input"),
    ]
    assert tl["NOPE"] == []
    G = ancestors_graph(ledger, "G1", timelines=True)
    assert [e.event.type for e in G.nodes["H2"]["timeline"]] == ["harvest", "drying", "gatherer_qc"]


def test_own_types_keep_only_a_lots_own_events_of_those_types(ledger: Ledger) -> None:
    ledger.append(batch(*_diamond()))
    full = ancestors_graph(ledger, "E", timelines=True)
    only = ancestors_graph(ledger, "E", timelines=True, own_types=("harvest", "gatherer_qc"))
    assert set(only) == set(full)
    for code in full:
        want = [
            (e.seq, e.role)
            for e in full.nodes[code]["timeline"]
            if e.role != "input" and e.event.type in ("harvest", "gatherer_qc")
        ]
        assert [(e.seq, e.role) for e in only.nodes[code]["timeline"]] == want
    assert [e.event.type for e in only.nodes["H1"]["timeline"]] == ["harvest"]  # not drying
    assert [e.role for e in only.nodes["G1"]["timeline"]] == ["output"]  # not the mill draw
    assert timelines(ledger, ["M1"], own_types=())["M1"] == []


def test_diamond_shares_are_exact(ledger: Ledger) -> None:
    ledger.append(batch(*_diamond()))
    G = ancestors_graph(ledger, "E")
    # G1 reaches E through M1 (150/250) and M2 (40/250): 19/25 of E
    assert nx.has_path(G, "G1", "M1") and nx.has_path(G, "G1", "M2")
    shares = shares_into(G, "E")
    assert shares == {"H1": Fraction(38, 75), "H2": Fraction(19, 75), "H3": Fraction(6, 25)}
    assert sum(shares.values()) == 1

    down = descendants_graph(ledger, "H1")
    assert shares_from(down, "H1") == {
        "H1": Fraction(1),
        "G1": Fraction(2, 3),
        "M1": Fraction(2, 3),
        "M2": Fraction(2, 3),
        "E": Fraction(38, 75),
    }


def test_unknown_lots_raise(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    with pytest.raises(UnknownLot, match="no lot 'NOPE'"):
        ancestors_graph(ledger, "NOPE")
    with pytest.raises(UnknownLot):
        descendants_graph(ledger, "M9")
    assert UnknownLot.exit_code == 2


def test_networkx_errors_are_lottrace_errors(ledger: Ledger) -> None:
    """An unknown node and a cycle in a graph given to the shares: never a networkx error."""
    ledger.append(batch(*chain()))
    G = ancestors_graph(ledger, "M1")
    for shares in (shares_into, shares_from):
        with pytest.raises(UnknownLot, match="no lot 'X' in the lineage graph of 'M1'"):
            shares(G, "X")
        with pytest.raises(UnknownLot, match=r"no lot 'X' in the lineage graph$"):
            shares(nx.DiGraph(), "X")
    looped = nx.DiGraph()
    looped.add_edge("H1", "A", kg=10.0)
    looped.add_edge("A", "B", kg=10.0)
    looped.add_edge("B", "A", kg=5.0)
    looped.add_edge("B", "E", kg=15.0)
    for shares, lot in ((shares_into, "E"), (shares_from, "H1")):
        with pytest.raises(IntegrityViolation, match="lineage cycle through lots A, B,"):
            shares(looped, lot)
    assert shares_into(looped, "H1") == {"H1": 1}  # a cycle elsewhere in G is not walked
    assert shares_from(looped, "E") == {"E": 1}
    inputs = {v: {u: looped.edges[u, v]["kg"] for u in looped.pred[v]} for v in looped}
    with pytest.raises(IntegrityViolation, match="lineage cycle through lots A, B,"):
        source_shares(inputs, "E")


def test_the_three_share_paths_agree_on_a_diamond(ledger: Ledger) -> None:
    """One rule, read up (graph and plain dicts) and down, gives one share for each pair.

    H1 reaches E by two routes (through M1 and M2), and E also takes M3 (from H3).
    """
    ledger.append(batch(*_diamond()))
    up = shares_into(ancestors_graph(ledger, "E"), "E")
    fast = source_shares(ancestor_inputs(ledger, "E"), "E")
    assert {k: Fraction(n, d) for k, (n, d) in fast.items()} == up
    assert up == {"H1": Fraction(38, 75), "H2": Fraction(19, 75), "H3": Fraction(6, 25)}
    for source, share in up.items():
        down = shares_from(descendants_graph(ledger, source), source)
        assert down["E"] == share, source
    down = shares_from(descendants_graph(ledger, "G1"), "G1")
    assert down["E"] == Fraction(19, 25)  # 150/250 through M1 + 40/250 through M2
    assert list(down) == ["G1", "M1", "M2", "E"] or list(down) == ["G1", "M2", "M1", "E"]


def _unrelated(n: int) -> list[dict[str, Any]]:
    """n lineages of two harvests merged at a gatherer, none touching the target."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        events += [harvest(f"U{i}A", 1, 300), harvest(f"U{i}B", 1, 300)]
    events += [qc(f"U{i}G", 5, inputs=[(f"U{i}A", 300), (f"U{i}B", 300)]) for i in range(n)]
    return events


def _lineage_rows(led: Ledger) -> dict[str, int]:
    """Rows the lineage reads return while building M1's and H1's graphs."""
    rows = {"links": 0, "states": 0, "events": 0}
    links, states, events = led.lineage_links, led.lots_states, led.lots_events

    def count_links(code: str, *, direction: str) -> Any:
        out = links(code, direction=direction)
        rows["links"] += len(out)
        return out

    def count_states(codes: Any) -> Any:
        out = states(codes)
        rows["states"] += len(out)
        return out

    def count_events(codes: Any) -> Any:
        for row in events(codes):
            rows["events"] += 1
            yield row

    led.lineage_links = count_links  # type: ignore[method-assign]
    led.lots_states = count_states  # type: ignore[method-assign]
    led.lots_events = count_events  # type: ignore[method-assign]
    ancestors_graph(led, "M1", timelines=True)
    descendants_graph(led, "H1", timelines=True)
    return rows


def test_one_lot_graph_reads_only_its_lineage(tmp_path: Path) -> None:
    """Rows returned by the lineage reads do not grow with unrelated lineages."""
    counts = {}
    for n in (5, 500):
        with Ledger.create(tmp_path / f"{n}.db") as led:
            led.append(batch(*_unrelated(n), *chain()))
            counts[n] = _lineage_rows(led)
    # up from M1: 3 links, 4 lots, 2 + 2 + 3 + 3 (lot, event) rows;
    # down from H1: 3 links (H1->G1, G1->M1, G1->M2), 4 lots, 3 + 2 + 2 + 1 rows
    assert counts[5] == counts[500] == {"links": 6, "states": 8, "events": 18}
