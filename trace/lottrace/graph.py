"""Lineage graphs of lots, built from the ledger: only the part a query needs.

A lineage graph is a :class:`networkx.DiGraph` whose nodes are lot codes and
whose edges run from an input lot to the lot it went into, in the direction
coffee flows. :func:`ancestors_graph` holds a lot and everything it came
from, :func:`descendants_graph` a lot and everything it went into. Each is
fetched with one recursive query over the ledger's ``links`` table, so asking
about one lot costs the size of its lineage, never the size of the log.
Corrections are already honoured: a voided event's links are not in the
ledger's derived tables, so they are not in the graph either.

:func:`ancestor_inputs` and :func:`source_shares` are the exception: the
same links and shares as plain dicts and integers, without a networkx graph,
because importing networkx and building the graph cost more than the rest of
the hottest query (``lottrace upstream``, which needs the shares only). The
shares themselves are computed in one place, ``_spread``: the graph path
(:func:`shares_into`, :func:`shares_from`) gives it networkx's topological
order of the lot's ancestors or descendants, the fast path the standard
library's (:mod:`graphlib`). No networkx error leaves this module: an
unknown lot is :class:`~lottrace.errors.UnknownLot`, a cycle an
:class:`~lottrace.errors.IntegrityViolation` naming its lots.

Node attributes (from the ledger's ``lots`` table)
    ``kg``, ``drawn_kg``, ``stage`` (number, see ``STAGE_ORDER``),
    ``stage_name``, ``created_by``, ``first_time``, ``last_time``,
    ``last_qc``, ``last_site``, ``last_event``, ``n_events``;
    ``inflow_kg``: the kg on all links into the lot (0 for a harvest lot);
    ``timeline``: the lot's events, when asked for (see :func:`timelines`).
Edge attributes
    ``kg``: the kg drawn from the input by the event that formed the output
    (a dry mill's input feeds every grade it makes, so each of those edges
    carries the whole input); ``seqs``: the ledger rows of the linking events;
    ``time``: when the output was formed (a UTC sort key).

>>> import os, tempfile
>>> from lottrace.demo import build_demo
>>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
>>> _ = build_demo(path)
>>> with Ledger(path) as ledger:
...     G = ancestors_graph(ledger, "EXP-25-CEC-01")
>>> sorted(G.predecessors("EXP-25-CEC-01"))
['MILL-25-0433-G1']
>>> G.edges["MILL-25-0433-G1", "EXP-25-CEC-01"]["kg"]
1035.0
>>> sorted(n for n in G if G.in_degree(n) == 0)  # the harvests it came from
['CEC-25-H0112-1', 'CEC-25-H0127-1', 'CEC-25-H0145-1', 'CEC-25-H0203-1', 'CEC-25-H0218-1']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from fractions import Fraction
from graphlib import CycleError, TopologicalSorter
from math import gcd
from typing import Any

from .errors import IntegrityViolation, LottraceError, UnknownLot
from .events import STAGE_ORDER
from .ledger import Ledger, StoredEvent
from .rules import FOREIGN_STAGE, LotState

__all__ = [
    "ancestor_inputs",
    "ancestors_graph",
    "descendants_graph",
    "shared_graphs",
    "shares_from",
    "shares_into",
    "source_shares",
    "timelines",
]

_STAGE_NAMES = {v: k for k, v in STAGE_ORDER.items()} | {FOREIGN_STAGE: "epcis"}

#: Within :func:`shared_graphs`: each lot's ancestors graph with timelines, built once.
_SHARED: ContextVar[dict[tuple[int, tuple[int, str], str], Any] | None] = ContextVar(
    "lottrace_shared_graphs", default=None
)


@contextmanager
def shared_graphs() -> Iterator[None]:
    """Within the block, :func:`ancestors_graph` of one lot with ``timelines`` (all its
    events) is built once per ledger and head, and the same graph handed to every query that
    asks: for one answer made of several queries of one lot (a passport asks for its
    upstream, route, EUDR proof and each certification). The graph is read-only to them.
    """
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def ancestors_graph(
    ledger: Ledger, lot: str, *, timelines: bool = False, own_types: Iterable[str] | None = None
) -> Any:
    """The lineage graph of `lot` and every lot it was formed from.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.
    timelines : bool, optional (default False)
        Also load each lot's events into the node attribute ``timeline``.
    own_types : iterable of str, optional
        With `timelines`, load only each lot's own events (not draws) of
        these types: a query that needs only harvests and QC parses only those.

    Returns
    -------
    networkx.DiGraph
        Nodes are `lot` and its ancestors, edges run from input lot to formed
        lot (see the module docstring for the attributes). ``G.graph`` holds
        ``lot`` and ``direction="up"``.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     G = ancestors_graph(ledger, "MILL-25-0433-G1", timelines=True)
    >>> sorted(G.predecessors("MILL-25-0433-G1"))
    ['CEC-25-HQ-022']
    >>> G.nodes["MILL-25-0433-G1"]["kg"], G.nodes["MILL-25-0433-G1"]["stage_name"]
    (1083.0, 'dry_mill')
    >>> [(e.event.type, e.role) for e in G.nodes["MILL-25-0433-G1"]["timeline"]]
    [('dry_mill', 'output'), ('export', 'input')]

    See Also
    --------
    descendants_graph, timelines
    """
    shared = _SHARED.get()
    if shared is None or not timelines or own_types is not None:
        return _lineage(ledger, lot, "up", timelines, own_types)
    key = (id(ledger), ledger.head(), lot)
    if key not in shared:
        shared[key] = _lineage(ledger, lot, "up", True, None)
    return shared[key]


def descendants_graph(ledger: Ledger, lot: str, *, timelines: bool = False) -> Any:
    """The lineage graph of `lot` and every lot formed from it, down to exports.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lot : str
        A lot code in the ledger.
    timelines : bool, optional (default False)
        Also load each lot's events into the node attribute ``timeline``.

    Returns
    -------
    networkx.DiGraph
        Nodes are `lot` and its descendants, edges run from input lot to
        formed lot. Links into a descendant from lots outside the lineage are
        not edges, but they count in its ``inflow_kg``, so
        :func:`shares_from` can tell how much of it came from `lot`.
        ``G.graph`` holds ``lot`` and ``direction="down"``.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     G = descendants_graph(ledger, "APR-25-H0231-1")
    >>> import networkx as nx
    >>> list(nx.topological_sort(G))
    ['APR-25-H0231-1', 'APR-25-G-SIG03-07', 'APR-25-HQ-014', 'MILL-25-0412-G1', 'MILL-25-0412-G2', 'MILL-25-0412-MCM', 'EXP-25-APR-02']
    >>> G.nodes["EXP-25-APR-02"]["inflow_kg"]  # of which 483 kg came through this lineage
    1242.0

    See Also
    --------
    ancestors_graph, shares_from
    """
    return _lineage(ledger, lot, "down", timelines, None)


def timelines(
    ledger: Ledger, lots: Iterable[str], *, own_types: Iterable[str] | None = None
) -> dict[str, list[StoredEvent]]:
    """Each lot's non-void events in time order, in one query.

    Parameters
    ----------
    ledger : Ledger
        An open ledger.
    lots : iterable of str
        Lot codes; codes the ledger does not know get an empty list.
    own_types : iterable of str, optional
        Keep only each lot's own events (roles ``output`` and ``subject``)
        of these types.

    Returns
    -------
    dict
        Lot code to its events. Each :class:`~lottrace.ledger.StoredEvent`
        has a ``role``: ``output`` for the event that formed the lot,
        ``subject`` for its own checkpoints (drying, QC, dispatch, arrival,
        export), ``input`` for an event that drew kg from it into another lot.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     tl = timelines(ledger, ["APR-25-HQ-014"])
    >>> [(e.event.type, e.event.site, e.role) for e in tl["APR-25-HQ-014"]]
    [('hq_qc', 'hq:APROCASSI', 'output'), ('dispatch', 'hq:APROCASSI', 'subject'), ('arrival', 'mill:CHICLAYO-1', 'subject'), ('dry_mill', 'mill:CHICLAYO-1', 'input')]
    """
    codes = list(dict.fromkeys(lots))
    out: dict[str, list[StoredEvent]] = {code: [] for code in codes}
    rows = (
        ledger.lots_events(codes)
        if own_types is None
        else ledger.lots_events(codes, own_types=own_types)
    )
    for code, stored in rows:
        out[code].append(stored)
    return out


def shares_into(G: Any, lot: str) -> dict[str, Fraction]:
    """The fraction of `lot` that came from each of its source lots.

    The share of an input lot in a formed lot is the kg on its link divided
    by the kg on all links into the formed lot: a dry mill's outputs share
    the mill's inputs pro rata. Shares multiply along a path and add up over
    paths, so a lot that reaches `lot` by two routes (a diamond) counts
    through both. A source is a lot with no input lots in `G`: a harvest, or
    a lot of unknown origin. The shares are exact fractions summing to 1.

    Parameters
    ----------
    G : networkx.DiGraph
        A lineage graph holding all of `lot`'s ancestors, as from
        :func:`ancestors_graph`.
    lot : node in `G`

    Returns
    -------
    dict
        Source lot code to its exact share (a :class:`fractions.Fraction`).

    Raises
    ------
    UnknownLot
        If `lot` is not a node of `G`.
    IntegrityViolation
        If `lot`'s ancestors in `G` hold a cycle (named).

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.DiGraph()
    >>> G.add_edge("H1", "G1", kg=200.0)
    >>> G.add_edge("H2", "G1", kg=100.0)
    >>> G.add_edge("G1", "M1", kg=300.0)  # milled into two grades:
    >>> G.add_edge("G1", "M2", kg=300.0)  # each carries the whole input
    >>> G.add_edge("M1", "E", kg=150.0)
    >>> G.add_edge("M2", "E", kg=25.0)    # G1 reaches E by two paths
    >>> G.add_edge("H3", "E", kg=75.0)
    >>> shares = shares_into(G, "E")
    >>> {k: str(v) for k, v in sorted(shares.items())}
    {'H1': '7/15', 'H2': '7/30', 'H3': '3/10'}
    >>> sum(shares.values())
    Fraction(1, 1)

    See Also
    --------
    shares_from, source_shares
    """
    import networkx as nx  # not at the top: `lottrace upstream` never needs it

    order = _order(G, lot, nx.ancestors)
    order.reverse()  # `lot` first, each lot after every lot it went into
    pred = G.pred
    share = _spread(lot, order, lambda v: _split({u: d["kg"] for u, d in pred[v].items()}))
    return {u: Fraction(n, d) for u, (n, d) in share.items() if not pred[u]}


def shares_from(G: Any, lot: str) -> dict[str, Fraction]:
    """The fraction of each descendant of `lot` that came from `lot`.

    The same rule as :func:`shares_into`, read the other way: a formed lot
    takes from each input the input's share times link kg / all link kg into
    it (the node attribute ``inflow_kg``, which counts links from lots outside
    `G` too; without it, the kg on its edges in `G`). `lot` itself has share 1.

    Parameters
    ----------
    G : networkx.DiGraph
        A lineage graph holding `lot`'s descendants, as from
        :func:`descendants_graph`.
    lot : node in `G`

    Returns
    -------
    dict
        Lot code to its exact share (a :class:`fractions.Fraction`), in
        topological order from `lot`.

    Raises
    ------
    UnknownLot
        If `lot` is not a node of `G`.
    IntegrityViolation
        If `lot`'s descendants in `G` hold a cycle (named).

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.DiGraph()
    >>> G.add_edge("H1", "G1", kg=200.0)
    >>> G.add_edge("G1", "E", kg=300.0)
    >>> G.nodes["G1"]["inflow_kg"] = 300.0  # 100 kg came from another harvest
    >>> G.nodes["E"]["inflow_kg"] = 400.0   # and 100 kg from another lot
    >>> {k: str(v) for k, v in shares_from(G, "H1").items()}
    {'H1': '1', 'G1': '2/3', 'E': '1/2'}

    See Also
    --------
    shares_into
    """
    import networkx as nx  # not at the top: `lottrace upstream` never needs it

    order = _order(G, lot, nx.descendants)
    inflow: dict[str, Fraction] = {}

    def into(w: str) -> Fraction:  # the kg on all links into w
        if w not in inflow:
            stated = G.nodes[w].get("inflow_kg")
            inflow[w] = (
                Fraction(stated)
                if stated
                else sum((Fraction(d["kg"]) for d in G.pred[w].values()), Fraction(0))
            )
        return inflow[w]

    def links(v: str) -> list[tuple[str, int, int]]:
        out = []
        for w, d in G.succ[v].items():
            f = Fraction(d["kg"]) / into(w)
            out.append((w, f.numerator, f.denominator))
        return out

    share = _spread(lot, order, links)
    return {v: Fraction(*share[v]) for v in order if v in share}


def ancestor_inputs(ledger: Ledger, lot: str) -> dict[str, dict[str, float]]:
    """The input lots of `lot` and of each of its ancestors, with kg: no graph object.

    The same links as :func:`ancestors_graph`'s edges, summed the same way
    (in ledger order, as floats), as plain dicts: ``{lot: {input lot: kg}}``,
    holding only lots formed from inputs. For callers that need only the
    shares, such as :func:`lottrace.provenance.upstream`: building a networkx
    graph costs more than the rest of that answer.

    Raises
    ------
    UnknownLot
        If `lot` is not in the ledger.

    Examples
    --------
    >>> import os, tempfile
    >>> from lottrace.demo import build_demo
    >>> path = os.path.join(tempfile.mkdtemp(), "demo.db")
    >>> _ = build_demo(path)
    >>> with Ledger(path) as ledger:
    ...     inputs = ancestor_inputs(ledger, "EXP-25-CEC-01")
    >>> inputs["EXP-25-CEC-01"]
    {'MILL-25-0433-G1': 1035.0}
    """
    ledger.require_lot(lot)
    inputs: dict[str, dict[str, float]] = {}
    for src, dst, kg in ledger.ancestor_link_kgs(lot):
        into = inputs.setdefault(dst, {})
        if src in into:
            into[src] += kg
        else:
            into[src] = kg
    return inputs


def source_shares(inputs: dict[str, dict[str, float]], lot: str) -> dict[str, tuple[int, int]]:
    """The exact share of `lot` that came from each of its source lots, as integer pairs.

    :func:`shares_into` over plain dicts (``{lot: {input lot: kg}}``, as from
    :func:`ancestor_inputs`), without a networkx graph: the fast path of
    ``lottrace upstream``. Importing networkx alone costs that command more
    than a third of its run, and building the graph more than the rest of
    the answer, so the order comes from the standard library's
    :class:`graphlib.TopologicalSorter` over the formed lots (sources need no
    place in it), and the arithmetic is the same function :func:`shares_into`
    and :func:`shares_from` use. Each share is ``(numerator, denominator)``
    in lowest terms, so ``n / d`` is the float nearest to it, exactly what
    ``float(Fraction(n, d))`` gives, at a fraction of the cost of
    :class:`fractions.Fraction` arithmetic. Lots of `inputs` that do not
    reach `lot` are ignored, but a cycle among them is named too.

    Raises
    ------
    IntegrityViolation
        If `inputs` hold a lineage cycle (named).

    Examples
    --------
    >>> inputs = {"G1": {"H1": 200.0, "H2": 100.0}, "M1": {"G1": 300.0},
    ...           "M2": {"G1": 300.0}, "E": {"M1": 150.0, "M2": 25.0, "H3": 75.0}}
    >>> sorted(source_shares(inputs, "E").items())
    [('H1', (7, 15)), ('H2', (7, 30)), ('H3', (3, 10))]
    """
    formed = {v: [u for u in srcs if inputs.get(u)] for v, srcs in inputs.items() if srcs}
    try:
        order = list(TopologicalSorter(formed).static_order())
    except CycleError as exc:
        raise _cycle_error(sorted(set(exc.args[1])), []) from None
    order.reverse()  # `lot` first, each lot after every lot it went into
    share = _spread(lot, order, lambda v: _split(inputs[v]))
    return {u: s for u, s in share.items() if not inputs.get(u)}


_Links = Callable[[str], Iterable[tuple[str, int, int]]]


def _spread(lot: str, order: Iterable[str], links: _Links) -> dict[str, tuple[int, int]]:
    """The one share computation: `lot`'s share handed along links, exactly, in integers.

    `lot` has share 1. Each lot of `order` that was reached hands its share
    on along its ``links(v)``: ``(w, n, d)`` gives `w` the share times
    ``n / d``, the fraction of the formed lot that its link carries. Shares
    reaching a lot add up over routes, so `order` must list a lot only after
    every lot that hands it a share (a topological order); lots reached but
    not in `order` only receive. :func:`shares_into` and :func:`source_shares`
    hand shares up from a lot to its inputs, :func:`shares_from` down to what
    a lot went into; all three give their order and links and call this.

    Returns every lot reached, `lot` first, each share ``(n, d)`` in lowest
    terms (as integer pairs: much cheaper than :class:`fractions.Fraction`).
    """
    share: dict[str, tuple[int, int]] = {lot: (1, 1)}
    for v in order:
        if v not in share:
            continue  # not reached from `lot`
        a, b = share[v]
        g = gcd(a, b)
        a, b = a // g, b // g
        share[v] = (a, b)
        for u, k, total in links(v):
            num, den = a * k, b * total
            if u in share:
                n0, d0 = share[u]
                share[u] = (n0 * den + num * d0, d0 * den)
            else:
                share[u] = (num, den)
    for v, (a, b) in share.items():
        g = gcd(a, b)
        if g != 1:
            share[v] = (a // g, b // g)
    return share


def _split(kgs: dict[str, float]) -> Iterable[tuple[str, int, int]]:
    """Each input's fraction of the lot formed from `kgs` (input lot to kg): its kg over their sum.

    Exact: each float kg is a binary fraction, so scaled to the largest
    denominator (a power of two, which all the others divide) every kg is an
    integer ``k`` and the fraction is ``(u, k, total)``.
    """
    if len(kgs) <= 1:  # a source hands on nothing; one input takes the whole share
        return [(u, 1, 1) for u in kgs]
    ratios = [(u, kg.as_integer_ratio()) for u, kg in kgs.items()]
    scale = max(d for _, (_, d) in ratios)
    ints = [(u, n * (scale // d)) for u, (n, d) in ratios]
    total = sum(k for _, k in ints)
    return [(u, k, total) for u, k in ints]


def _order(G: Any, lot: str, reach: Callable[[Any, str], set[str]]) -> list[str]:
    """`lot` and the lots ``reach(G, lot)`` finds in `G`, in networkx's topological order.

    Where networkx's errors become lottrace's, so none leaves this module:
    `lot` missing from `G` is :class:`UnknownLot`, a cycle (networkx's
    ``NetworkXUnfeasible``) an :class:`IntegrityViolation` naming its lots,
    any other networkx error a :class:`LottraceError`.
    """
    import networkx as nx  # not at the top: `lottrace upstream` never needs it

    if lot not in G:
        of = G.graph.get("lot")
        named = f" of {of!r}" if of is not None and of != lot else ""
        raise UnknownLot(f"no lot {lot!r} in the lineage graph{named}")
    try:
        sub = G.subgraph(reach(G, lot) | {lot})
        try:
            return list(nx.topological_sort(sub))
        except nx.NetworkXUnfeasible:
            cycle = nx.find_cycle(sub)
            raise _cycle_error(sorted({u for u, *_ in cycle}), []) from None
    except nx.NetworkXException as exc:
        raise LottraceError(f"the lineage graph of {lot!r}: {exc}") from None


def _cycle_error(lots: list[str], events: list[str]) -> IntegrityViolation:
    """A lineage cycle found by a walk: a ledger written before lottrace refused them."""
    named = f" (events {', '.join(e[:12] + '...' for e in events)})" if events else ""
    shown = ", ".join(lots[:6]) + (" ..." if len(lots) > 6 else "")
    return IntegrityViolation(
        f"the ledger holds a lineage cycle through lots {shown}{named}, written before "
        "lottrace refused cycles; void one of its events with a correction"
    )


def _lineage(
    ledger: Ledger,
    lot: str,
    direction: str,
    with_timelines: bool,
    own_types: Iterable[str] | None,
) -> Any:
    ledger.require_lot(lot)
    import networkx as nx  # not at the top: `lottrace upstream` never needs it

    G = nx.DiGraph(lot=lot, direction=direction)
    G.add_node(lot)
    for src, dst, kg, seq, t in ledger.lineage_links(lot, direction=direction):
        if G.has_edge(src, dst):
            data = G.edges[src, dst]
            data["kg"] += kg
            data["seqs"].append(seq)
        else:
            G.add_edge(src, dst, kg=kg, seqs=[seq], time=t)
    if not nx.is_directed_acyclic_graph(G):
        cycle = nx.find_cycle(G)
        seqs = sorted({q for u, v, *_ in cycle for q in G.edges[u, v]["seqs"]})
        raise _cycle_error(sorted({u for u, *_ in cycle}), ledger.event_ids_at(seqs))
    for code, st in ledger.lots_states(G.nodes).items():
        G.nodes[code].update(_state_attrs(st))
    if direction == "up":  # every link into an ancestor is an edge of G
        inflow = {n: sum(kg for _, _, kg in G.in_edges(n, data="kg")) for n in G}
    else:
        inflow = ledger.link_inflows(G.nodes)
    for n in G:
        G.nodes[n]["inflow_kg"] = float(inflow.get(n, 0.0))
    if with_timelines:
        for code, events in timelines(ledger, G.nodes, own_types=own_types).items():
            G.nodes[code]["timeline"] = events
    return G


def _state_attrs(st: LotState) -> dict[str, Any]:
    attrs = {name: getattr(st, name) for name in LotState._fields if name != "lot"}
    attrs["stage_name"] = _STAGE_NAMES.get(st.stage, str(st.stage))
    return attrs
