"""Provenance, recall, EUDR, certification and delay answers on hand-built lineages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lottrace.certificates import Registry
from lottrace.compliance import certify, eudr
from lottrace.delays import Leg, bottlenecks, delays, legs, stuck
from lottrace.errors import UnknownLot
from lottrace.events import event_id, parse_event
from lottrace.ledger import Ledger
from lottrace.provenance import downstream, tree, upstream
from lottrace.timeline import timeline
from lottrace.views import format_tree

from factories import batch, chain, correction, drying, export, harvest, mill, qc, t


@pytest.fixture
def ledger(ledger_target: str) -> Any:
    """A fresh ledger on each backend: every query answers the same on both."""
    with Ledger.create(ledger_target) as led:
        yield led


def dispatch(lot: str, day: int, hour: int, site: str, to_site: str) -> dict[str, Any]:
    return {"type": "dispatch", "time": t(day, hour), "site": site, "lot": lot, "to_site": to_site}


def arrival(lot: str, day: int, hour: int, site: str) -> dict[str, Any]:
    return {"type": "arrival", "time": t(day, hour), "site": site, "lot": lot}


def plot(pid: str, geometry: dict[str, Any] | None, area_ha: float = 2.0) -> dict[str, Any]:
    d: dict[str, Any] = {"id": pid, "area_ha": area_ha}
    if geometry is not None:
        d["geometry"] = geometry
    return d


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


SQUARE = {
    "type": "Polygon",
    "coordinates": [
        [
            [-78.91893012, -5.31826449],
            [-78.91639751, -5.31895512],
            [-78.91582049, -5.31800438],
            [-78.91893012, -5.31826449],
        ]
    ],
}


def diamond() -> list[dict[str, Any]]:
    """G1 (H1 + H2) is milled into M1 and M2, which meet again in export lot E with M3 (H3)."""
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
            container="MSKU1234565",
            ico_mark="30/0145/0123",
            vessel="Nordsee Trader",
            buyer="Elbkaffee",
            destination="Hamburg",
            inputs=[{"lot": "M1", "kg": 150}, {"lot": "M2", "kg": 40}, {"lot": "M3", "kg": 60}],
        ),
    ]


# --------------------------------------------------------------------------- upstream


def test_upstream_of_a_mill_output(ledger: Ledger) -> None:
    events = chain()
    events[0]["certifications"] = ["organic"]
    events[0]["variety"] = "Caturra"
    events[0]["women_producer"] = True
    ledger.append(batch(*events))
    up = upstream(ledger, "M1")
    assert list(up) == ["lot", "lots", "producers", "plots", "harvests", "qc", "shares", "voided"]
    assert up["lot"] == "M1"
    assert up["lots"] == ["G1", "H1", "H2"]
    assert up["producers"] == ["PRD-H1", "PRD-H2"]
    assert up["harvests"] == [
        {
            "lot": "H1",
            "producer": "PRD-H1",
            "plot_id": "PLOT-H1",
            "time": "2025-05-01T08:00:00-05:00",
            "kg": 1000.0,
            "variety": "Caturra",
            "process": None,
            "certifications": ["organic"],
            "women_producer": True,
        },
        {
            "lot": "H2",
            "producer": "PRD-H2",
            "plot_id": "PLOT-H2",
            "time": "2025-05-02T08:00:00-05:00",
            "kg": 500.0,
            "variety": None,
            "process": None,
            "certifications": [],
            "women_producer": None,
        },
    ]
    assert up["plots"][0] == {
        "producer": "PRD-H1",
        "plot_id": "PLOT-H1",
        "area_ha": 2.0,
        "altitude_m": None,
        "geometry": {"type": "Point", "coordinates": [-79.136615, -5.194686]},
        "lots": ["H1"],
    }
    assert [(q["lot"], q["stage"], q["result"], q["moisture_pct"]) for q in up["qc"]] == [
        ("G1", "gatherer_qc", "accepted", 11.0)
    ]
    assert up["shares"] == [
        {"producer": "PRD-H1", "share": 2 / 3, "kg": 133.333, "lots": ["H1"]},
        {"producer": "PRD-H2", "share": 1 / 3, "kg": 66.667, "lots": ["H2"]},
    ]
    assert up["voided"] == []


def test_merges_of_merges_and_a_mill_split_share_the_kg(ledger: Ledger) -> None:
    ledger.append(
        batch(
            harvest("H1", 1, 1000),
            harvest("H2", 2, 500),
            harvest("H3", 3, 800),
            harvest("H4", 4, 400),
            drying("H1", 10, 200),
            drying("H2", 11, 100),
            drying("H3", 12, 160),
            drying("H4", 13, 80),
            qc("G1", 15, inputs=[("H1", 200), ("H2", 100)]),
            qc("G2", 16, inputs=[("H3", 160), ("H4", 80)]),
            qc("HQ1", 20, stage="hq_qc", inputs=[("G1", 300), ("G2", 240)], cup_score=84.5),
            mill(30, [("HQ1", 540)], [("M1", 400, "Grade 1"), ("M2", 30, "Grade 2")]),
        )
    )
    for lot, kg in (("M1", 400), ("M2", 30)):
        up = upstream(ledger, lot)
        assert up["lots"] == ["G1", "G2", "H1", "H2", "H3", "H4", "HQ1"]
        shares = {s["producer"]: s["share"] for s in up["shares"]}
        assert shares == pytest.approx(
            {"PRD-H1": 10 / 27, "PRD-H3": 8 / 27, "PRD-H2": 5 / 27, "PRD-H4": 4 / 27}, abs=1e-15
        )
        assert [s["producer"] for s in up["shares"]] == ["PRD-H1", "PRD-H3", "PRD-H2", "PRD-H4"]
        assert sum(s["kg"] for s in up["shares"]) == pytest.approx(kg, abs=0.002)
        assert sum(s["share"] for s in up["shares"]) == pytest.approx(1.0)
    assert [(q["lot"], q["stage"], q["cup_score"]) for q in up["qc"]] == [
        ("G1", "gatherer_qc", None),
        ("G2", "gatherer_qc", None),
        ("HQ1", "hq_qc", 84.5),
    ]


def test_diamond_counts_both_paths(ledger: Ledger) -> None:
    ledger.append(batch(*diamond()))
    up = upstream(ledger, "E")
    # E = 150 kg M1 + 40 kg M2 + 60 kg M3; G1 reaches it through M1 and M2: 19/25
    assert [(s["producer"], s["share"], s["kg"]) for s in up["shares"]] == [
        ("PRD-H1", 38 / 75, 126.667),
        ("PRD-H2", 19 / 75, 63.333),
        ("PRD-H3", 6 / 25, 60.0),
    ]
    assert sum(s["kg"] for s in up["shares"]) == pytest.approx(250.0, abs=0.001)


def test_a_correction_that_removes_a_link_is_honoured_and_listed(ledger: Ledger) -> None:
    wrong = qc("G1", 15, inputs=[("H1", 200), ("H2", 100)])
    wrong_id = event_id(parse_event(wrong))
    ledger.append(batch(*chain()[:4], wrong))
    assert upstream(ledger, "G1")["producers"] == ["PRD-H1", "PRD-H2"]
    # H2 never went into G1: void the merge and log it again without H2
    ledger.append(batch(correction(wrong_id, day=16), qc("G1", 16, inputs=[("H1", 200)])))
    up = upstream(ledger, "G1")
    assert up["lots"] == ["H1"]
    assert up["producers"] == ["PRD-H1"]
    assert up["shares"] == [{"producer": "PRD-H1", "share": 1.0, "kg": 200.0, "lots": ["H1"]}]
    assert up["voided"] == [wrong_id]
    down = downstream(ledger, "H2")
    assert (down["lots"], down["voided"]) == ([], [wrong_id])
    assert tree(ledger, "G1")["voided"] == [wrong_id]
    assert certify(ledger, "G1", "organic")["voided"] == [wrong_id]
    assert timeline(ledger, "G1")["voided"] == [wrong_id]


def test_unknown_origin_is_a_producer_none_share(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    _lose_inputs(ledger, "G1")
    shares = upstream(ledger, "M1")["shares"]
    assert shares == [{"producer": None, "share": 1.0, "kg": 200.0, "lots": ["G1"]}]


def _lose_inputs(ledger: Ledger, lot: str) -> None:
    """Drop a lot's input links from the derived table, as a partial or damaged ledger would.

    The rules never let a lot be created without a harvest or input lots, so
    unknown origin can only come from a ledger whose derived tables lost rows.
    """
    mark = "%s" if type(ledger.store).__name__ == "PostgresStorage" else "?"
    ledger.conn.execute(f"DELETE FROM links WHERE dst = {mark}", [lot])


# --------------------------------------------------------------------------- downstream


def test_downstream_finds_exports_and_the_recalled_share(ledger: Ledger) -> None:
    ledger.append(batch(*diamond()))
    down = downstream(ledger, "H1")
    assert list(down) == ["lot", "lots", "exports", "voided"]
    assert down["lots"] == ["E", "G1", "M1", "M2"]
    (x,) = down["exports"]
    assert {k: x[k] for k in ("lot", "container", "ico_mark", "vessel", "buyer")} == {
        "lot": "E",
        "container": "MSKU1234565",
        "ico_mark": "30/0145/0123",
        "vessel": "Nordsee Trader",
        "buyer": "Elbkaffee",
    }
    assert (x["destination"], x["kg"], x["time"]) == ("Hamburg", 250.0, "2025-06-29T08:00:00-05:00")
    assert x["share"] == 38 / 75
    assert x["kg_from_lot"] == 126.667
    assert downstream(ledger, "G3")["exports"][0]["kg_from_lot"] == 60.0


def test_downstream_of_a_lot_exported_in_two_shipments(ledger: Ledger) -> None:
    events = chain()
    events[-1] = export("M1", 60, 120, container="AAAU1111111")
    ledger.append(batch(*events, export("M1", 70, 80, container="BBBU2222222")))
    down = downstream(ledger, "H2")
    assert down["lots"] == ["G1", "M1", "M2"]
    assert [(x["lot"], x["container"], x["kg"], x["kg_from_lot"]) for x in down["exports"]] == [
        ("M1", "AAAU1111111", 120.0, 40.0),
        ("M1", "BBBU2222222", 80.0, 26.667),
    ]


# --------------------------------------------------------------------------- tree


def test_tree_nests_inputs_and_marks_a_repeated_lot(ledger: Ledger) -> None:
    ledger.append(batch(*diamond()))
    root = tree(ledger, "E")
    assert (root["lot"], root["kg"], root["stage"], root["link_kg"]) == ("E", 250.0, "export", None)
    assert [c["lot"] for c in root["children"]] == ["M1", "M2", "M3"]
    m1, m2, _ = root["children"]
    assert m1["link_kg"] == 150.0
    assert m1["children"][0]["lot"] == "G1" and not m1["children"][0]["repeated"]
    assert m1["children"][0]["checkpoints"] == [
        {
            "stage": "gatherer_qc",
            "time": "2025-05-15T08:00:00-05:00",
            "site": "gatherer:G1",
            "result": "accepted",
            "kg": 300.0,
        }
    ]
    assert [c["lot"] for c in m1["children"][0]["children"]] == ["H1", "H2"]
    assert m2["children"][0]["lot"] == "G1"
    assert m2["children"][0]["repeated"] is True
    assert m2["children"][0]["children"] == []
    text = format_tree(root)
    assert "\n        G1  300 kg  gatherer_qc  (300 kg into M2)  (shown above)\n" in text
    assert text.count("H1  200 kg") == 1


# --------------------------------------------------------------------------- eudr


def test_eudr_compliant_lot(ledger: Ledger) -> None:
    ledger.append(
        batch(
            harvest("H1", 1, 1000, plot=plot("P1", point(-78.84621149, -5.62895449))),
            harvest("H2", 2, 500, plot=plot("P2", SQUARE, area_ha=1.7), producer="PRD-H2"),
            harvest(
                "H3", 3, 500, plot=plot("P1", point(-78.84621149, -5.62895449)), producer="PRD-H1"
            ),
            harvest("H4", 4, 500, plot=plot("P4", point(-79.012345, -5.123456), area_ha=4.0)),
            *(drying(f"H{i}", 10 + i, 100) for i in range(1, 5)),
            qc("G1", 20, inputs=[(f"H{i}", 100) for i in range(1, 5)]),
        )
    )
    fc, problems = eudr(ledger, "G1")
    assert problems == []
    assert fc["type"] == "FeatureCollection"
    assert [f["properties"]["ProductionPlace"] for f in fc["features"]] == ["P1", "P2", "P4"]
    p1 = fc["features"][0]
    assert p1 == {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [-78.846211, -5.628954]},
        "properties": {
            "ProducerName": "PRD-H1",
            "ProducerCountry": "PE",
            "ProductionPlace": "P1",
            "Area": 2.0,
        },
    }
    ring = fc["features"][1]["geometry"]["coordinates"][0]
    assert ring[0] == [-78.91893, -5.318264] == ring[-1]
    assert ring[1] == [-78.916398, -5.318955]
    for f in fc["features"]:
        c = f["geometry"]["coordinates"]
        for lon, lat in [c] if f["geometry"]["type"] == "Point" else c[0]:
            assert lon == round(lon, 6) and lat == round(lat, 6)
    # six decimals kept, not fewer: the input had eight
    assert [len(repr(x).split(".")[1]) for x in p1["geometry"]["coordinates"]] == [6, 6]


def test_eudr_problems_name_the_lot_and_producer(ledger: Ledger) -> None:
    ledger.append(
        batch(
            harvest("H1", 1, 1000, plot=plot("P1", None)),
            harvest("H2", 2, 500, plot=plot("P2", point(-79.1234567, -5.1), area_ha=6.5)),
            harvest("H3", 3, 500),
            *(drying(f"H{i}", 10 + i, 100) for i in range(1, 4)),
            qc("G1", 20, inputs=[("H1", 100), ("H2", 100)]),
            qc("G2", 21, inputs=[("H3", 100)]),
            qc("HQ", 25, stage="hq_qc", inputs=[("G1", 200), ("G2", 100)]),
        )
    )
    _lose_inputs(ledger, "G2")
    fc, problems = eudr(ledger, "HQ")
    assert [(p["lot"], p["producer"], p["plot_id"], p["problem"]) for p in problems] == [
        ("H1", "PRD-H1", "P1", "no-geometry"),
        ("H2", "PRD-H2", "P2", "point-over-4ha"),
        ("G2", None, None, "unknown-origin"),
    ]
    assert problems[0]["message"] == (
        "lot H1: producer PRD-H1: plot P1 has no geometry (point or polygon)"
    )
    assert "lot H2: producer PRD-H2: plot P2 is 6.5 ha" in problems[1]["message"]
    assert problems[2]["message"].startswith("lot G2: producer unknown:")
    # the plot without geometry is still a feature, with a null geometry (RFC 7946 allows it)
    first = fc["features"][0]
    assert (first["properties"]["ProductionPlace"], first["geometry"]) == ("P1", None)
    assert fc["features"][1]["geometry"]["coordinates"] == [-79.123457, -5.1]


# --------------------------------------------------------------------------- certify


def test_certify_pass_and_fail(ledger: Ledger) -> None:
    events = chain()
    events[0]["certifications"] = ["organic"]
    events[1]["certifications"] = ["fairtrade", "organic"]
    ledger.append(batch(*events))
    ok = certify(ledger, "M1", "organic")
    assert (ok["certified"], ok["harvests"], ok["breaking"]) == (True, 2, [])
    bad = certify(ledger, "M1", "fairtrade")
    assert bad["certified"] is False
    assert bad["breaking"] == [
        {
            "lot": "H1",
            "producer": "PRD-H1",
            "plot_id": "PLOT-H1",
            "certifications": ["organic"],
            "reason": "not certified",
        }
    ]
    assert certify(ledger, "H2", "fairtrade")["certified"] is True


def test_certify_fails_a_lot_of_unknown_origin(ledger: Ledger) -> None:
    events = chain()
    events[0]["certifications"] = events[1]["certifications"] = ["organic"]
    ledger.append(batch(*events))
    _lose_inputs(ledger, "G1")
    result = certify(ledger, "M1", "organic")
    assert result["certified"] is False
    assert [(b["lot"], b["reason"]) for b in result["breaking"]] == [("G1", "unknown origin")]


# --------------------------------------------------------------------------- delays


def trucked_chain() -> list[dict[str, Any]]:
    """chain(), with G1 trucked from the gatherer to the mill: 36 h on the road."""
    events = chain()
    return [
        *events[:5],
        dispatch("G1", 35, 8, "gatherer:G1", "mill:M1"),
        arrival("G1", 36, 20, "mill:M1"),
        *events[5:],
    ]


def test_legs_have_exact_hours(ledger: Ledger) -> None:
    ledger.append(batch(*trucked_chain()))
    got = [(g.lot, g.from_stage, g.from_site, g.to_stage, g.to_site, g.hours) for g in legs(ledger)]
    assert got == [
        ("G1", "gatherer_qc", "gatherer:G1", "dry_mill", "mill:M1", 600.0),
        ("H1", "harvest", "farm:H1", "drying", "farm:X", 216.0),
        ("H1", "drying", "farm:X", "gatherer_qc", "gatherer:G1", 120.0),
        ("H2", "harvest", "farm:H2", "drying", "farm:X", 216.0),
        ("H2", "drying", "farm:X", "gatherer_qc", "gatherer:G1", 96.0),
        ("M1", "dry_mill", "mill:M1", "export", "port:PAITA", 480.0),
    ]
    g1 = next(iter(legs(ledger)))
    assert isinstance(g1, Leg)
    assert (g1.transit_hours, g1.wait_hours) == (36.0, 564.0)
    assert (g1.start, g1.end) == ("2025-05-15T13:00:00.000000Z", "2025-06-09T13:00:00.000000Z")


def test_delays_by_stage_site_and_month(ledger: Ledger) -> None:
    ledger.append(batch(*trucked_chain()))
    rows = delays(ledger)
    assert rows == [
        {"from": "harvest", "to": "drying", "count": 2, "mean_hours": 216.0, "p50_hours": 216.0,
         "p90_hours": 216.0, "max_hours": 216.0, "wait_hours": None, "transit_hours": None},
        {"from": "drying", "to": "gatherer_qc", "count": 2, "mean_hours": 108.0, "p50_hours": 108.0,
         "p90_hours": 117.6, "max_hours": 120.0, "wait_hours": None, "transit_hours": None},
        {"from": "gatherer_qc", "to": "dry_mill", "count": 1, "mean_hours": 600.0,
         "p50_hours": 600.0, "p90_hours": 600.0, "max_hours": 600.0, "wait_hours": 564.0,
         "transit_hours": 36.0},
        {"from": "dry_mill", "to": "export", "count": 1, "mean_hours": 480.0, "p50_hours": 480.0,
         "p90_hours": 480.0, "max_hours": 480.0, "wait_hours": None, "transit_hours": None},
    ]  # fmt: skip
    by_site = delays(ledger, by="site")
    assert [(r["from"], r["from_site"], r["to_site"], r["count"]) for r in by_site][:3] == [
        ("harvest", "farm:H1", "farm:X", 1),
        ("harvest", "farm:H2", "farm:X", 1),
        ("drying", "farm:X", "gatherer:G1", 2),
    ]
    by_month = delays(ledger, by="month")
    assert [(r["month"], r["from"], r["to"], r["count"]) for r in by_month] == [
        ("2025-05", "harvest", "drying", 2),
        ("2025-05", "drying", "gatherer_qc", 2),
        ("2025-06", "gatherer_qc", "dry_mill", 1),
        ("2025-06", "dry_mill", "export", 1),
    ]
    june = delays(ledger, since="2025-06-01", until="2025-06-29T13:00:00+00:00")
    assert [(r["from"], r["to"]) for r in june] == [("gatherer_qc", "dry_mill")]
    with pytest.raises(ValueError, match="by must be"):
        delays(ledger, by="week")


def test_a_partial_export_ends_a_leg_but_starts_none(ledger: Ledger) -> None:
    events = chain()
    events[-1] = export("M1", 60, 120)
    ledger.append(batch(*events, export("M1", 70, 80)))
    m1 = [(g.from_stage, g.to_stage, g.hours) for g in legs(ledger) if g.lot == "M1"]
    assert m1 == [("dry_mill", "export", 480.0), ("dry_mill", "export", 720.0)]


def test_a_dispatch_without_arrival_is_on_the_road_until_the_leg_ends(ledger: Ledger) -> None:
    events = chain()
    ledger.append(batch(*events[:5], dispatch("G1", 39, 8, "gatherer:G1", "mill:M1"), *events[5:]))
    g1 = next(g for g in legs(ledger) if g.lot == "G1")
    assert (g1.hours, g1.transit_hours, g1.wait_hours) == (600.0, 24.0, 576.0)


def bottleneck_lineages() -> list[dict[str, Any]]:
    """Five drying -> gatherer_qc legs: route A 24 h and 24 h, B 48 h and 240 h, C 72 h."""
    routes = [("A", 24), ("A", 24), ("B", 48), ("B", 240), ("C", 72)]
    events: list[dict[str, Any]] = []
    for i, (route, hours) in enumerate(routes):
        lot = f"L{i}"
        events += [
            harvest(lot, 1, 1000),
            drying(lot, 5, 200),
            qc(f"G{i}", 0, inputs=[(lot, 200)], site=f"gatherer:{route}", time=t(5, 8 + hours)),
        ]
    return events


def test_bottlenecks_rank_routes_by_excess_over_the_leg_median(ledger: Ledger) -> None:
    ledger.append(batch(*bottleneck_lineages()))
    rows = bottlenecks(ledger)
    # pooled drying -> gatherer_qc legs: 24, 24, 48, 72, 240; the median is 48
    assert [(r["rank"], r["to_site"], r["baseline_hours"], r["excess_hours"]) for r in rows] == [
        (1, "gatherer:B", 48.0, 192.0),
        (2, "gatherer:C", 48.0, 24.0),
    ]
    assert rows[0]["count"] == 2 and rows[0]["mean_hours"] == 144.0
    assert rows[0]["from"] == "drying" and rows[0]["from_site"] == "farm:X"
    assert [r["to_site"] for r in bottlenecks(ledger, top=1)] == ["gatherer:B"]


def test_stuck_lots_at_a_fixed_time(ledger: Ledger) -> None:
    ledger.append(
        batch(
            *chain(),
            harvest("H3", 20, 800),
            drying("H3", 30, 160),
            harvest("H4", 50, 500),
        )
    )
    # p90 after harvest (-> drying, legs of 216, 216 and 240 h): 235.2 h; after drying
    # (-> gatherer_qc, 96 and 120 h): 117.6 h; after dry_mill (-> export): 480 h.
    # M2 (30 kg) was never exported; H1, H2, G1 and M1 were used up.
    rows = stuck(ledger, t(62))
    assert [(r["lot"], r["stage"], r["next"], r["age_hours"], r["p90_hours"]) for r in rows] == [
        ("H3", "drying", "gatherer_qc", 768.0, 117.6),
        ("M2", "dry_mill", "export", 528.0, 480.0),
        ("H4", "harvest", "drying", 288.0, 235.2),
    ]
    assert rows[1] == {
        "lot": "M2",
        "stage": "dry_mill",
        "site": "mill:M1",
        "time": "2025-06-09T13:00:00+00:00",
        "age_hours": 528.0,
        "next": "export",
        "p90_hours": 480.0,
        "over_hours": 48.0,
        "kg_left": 30.0,
        "last_qc": None,
    }
    assert [r["lot"] for r in stuck(ledger, "2025-06-24T13:00:00+00:00")] == ["H3"]
    assert [r["lot"] for r in stuck(ledger, t(62), min_kg=50)] == ["H3", "H4"]


def test_timeline_names_the_input_that_arrived_last(ledger: Ledger) -> None:
    ledger.append(batch(*chain()))
    tl = timeline(ledger, "M1")
    assert [(s["lot"], s["stage"], s["hours"]) for s in tl["steps"]] == [
        ("H2", "harvest", None),
        ("H2", "drying", 216.0),
        ("G1", "gatherer_qc", 96.0),
        ("M1", "dry_mill", 600.0),
        ("M1", "export", 480.0),
    ]
    assert [(m["lot"], m["critical"]) for m in tl["merges"]] == [("M1", "G1"), ("G1", "H2")]
    assert tl["merges"][1]["inputs"] == [
        {"lot": "H2", "kg": 100.0, "ready": "2025-05-11T08:00:00-05:00", "ready_stage": "drying",
         "ready_site": "farm:X", "waited_hours": 96.0, "slack_hours": 0.0},
        {"lot": "H1", "kg": 200.0, "ready": "2025-05-10T08:00:00-05:00", "ready_stage": "drying",
         "ready_site": "farm:X", "waited_hours": 120.0, "slack_hours": 24.0},
    ]  # fmt: skip
    assert tl["total_hours"] == 1392.0
    assert tl["slowest"] == {
        "lot": "M1",
        "from": "gatherer_qc",
        "to": "dry_mill",
        "from_site": "gatherer:G1",
        "to_site": "mill:M1",
        "hours": 600.0,
    }


def test_timeline_counts_an_arrival_as_the_input_being_ready(ledger: Ledger) -> None:
    events = chain()
    late = arrival("H1", 14, 20, "gatherer:G1")  # H1 reached the gatherer after H2 was dried
    ledger.append(batch(*events[:4], late, *events[4:]))
    tl = timeline(ledger, "M1")
    merge = tl["merges"][1]
    assert merge["critical"] == "H1"
    assert [(i["lot"], i["ready_stage"], i["slack_hours"]) for i in merge["inputs"]] == [
        ("H1", "arrival", 0.0),
        ("H2", "drying", 84.0),
    ]
    assert [s["stage"] for s in tl["steps"]][:4] == ["harvest", "drying", "arrival", "gatherer_qc"]


# --------------------------------------------------------------------------- errors and cost

LOT_QUERIES: dict[str, Callable[[Ledger, str], Any]] = {
    "upstream": upstream,
    "downstream": downstream,
    "tree": tree,
    "eudr": eudr,
    # the certificate registry is one scan of the log's type column, read apart
    # (certificates.registry); the one-lot part is what the probe measures
    "certify": lambda led, lot: certify(led, lot, "organic", registry=Registry()),
    "timeline": timeline,
}


@pytest.mark.parametrize("name", list(LOT_QUERIES))
def test_unknown_lot_raises(ledger: Ledger, name: str) -> None:
    ledger.append(batch(*chain()))
    with pytest.raises(UnknownLot, match="no lot 'M9'"):
        LOT_QUERIES[name](ledger, "M9")


def _unrelated(n: int) -> list[dict[str, Any]]:
    """n lineages of two harvests merged at a gatherer, none touching the target."""
    events: list[dict[str, Any]] = []
    for i in range(n):
        events += [harvest(f"U{i}A", 1, 300), harvest(f"U{i}B", 1, 300)]
    events += [qc(f"U{i}G", 5, inputs=[(f"U{i}A", 300), (f"U{i}B", 300)]) for i in range(n)]
    return events


@pytest.fixture(scope="module")
def small_and_large(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same target lineage (the diamond) beside 20 and beside 2,000 unrelated lineages."""
    ledgers = []
    for n in (20, 2000):
        led = Ledger.create(tmp_path_factory.mktemp("cost") / f"{n}.db")
        led.append(batch(*_unrelated(n), *diamond()))
        ledgers.append(led)
    yield ledgers
    for led in ledgers:
        led.close()


def _cost(ledger: Ledger, query: Callable[[Ledger], Any]) -> tuple[int, int]:
    """SQLite virtual-machine steps and statements one query runs: work done, not time taken."""
    steps = statements = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    def statement(_sql: str) -> None:
        nonlocal statements
        statements += 1

    ledger.conn.set_progress_handler(step, 1)
    ledger.conn.set_trace_callback(statement)
    try:
        query(ledger)
    finally:
        ledger.conn.set_progress_handler(None, 1)
        ledger.conn.set_trace_callback(None)
    return steps, statements


@pytest.mark.parametrize("name", list(LOT_QUERIES))
@pytest.mark.parametrize("lot", ["E", "H1"])
def test_one_lot_query_does_not_read_unrelated_lineages(
    small_and_large: list[Ledger], name: str, lot: str
) -> None:
    small, large = small_and_large
    assert large.stats()["lots"] - small.stats()["lots"] == 3 * 1980
    query = LOT_QUERIES[name]
    s_steps, s_statements = _cost(small, lambda led: query(led, lot))
    l_steps, l_statements = _cost(large, lambda led: query(led, lot))
    assert l_statements == s_statements
    assert l_steps <= s_steps * 1.02 + 50, (s_steps, l_steps)


def test_the_cost_probe_sees_a_whole_log_scan(small_and_large: list[Ledger]) -> None:
    """The probe above can fail: delays by site reads every leg, and its cost grows with the
    log (by stage, it counts legs from leg_days: days and bands, not legs)."""
    small, large = small_and_large

    def by_site(ledger: Ledger) -> Any:
        return delays(ledger, by="site")

    s_steps, _ = _cost(small, by_site)
    l_steps, _ = _cost(large, by_site)
    assert l_steps > 50 * s_steps
