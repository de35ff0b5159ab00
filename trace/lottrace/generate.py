"""A deterministic, realistic season generator: synthetic events for demos, benchmarks and tests.

``generate(producers=N, seasons=S, seed=K)`` yields plain event dicts in the
public format, ready for ``lottrace import``. What it models:

- producers grouped into cooperatives (400 to 1,800 families each) in Peru's
  coffee regions, each cooperative with its local gatherers (acopios), its
  headquarters (HQ), a regional dry mill, and exports through Paita;
- each producer picks 4 to 7 times between April and October (most in June
  and July); every picking is a harvest lot from a plot with a point, or a
  polygon for plots over 4 ha;
- drying on the farm, trucking to the gatherer, a weekly gatherer QC that
  merges the week's lots; wet lots are rejected, re-dried at the gatherer and
  re-inspected before they may join a collection lot;
- the HQ blends collection lots every two weeks (merges of merges), puts a few
  blends on hold and re-inspects them, trucks them to the dry mill, which
  splits each into graded lots; Grade 1 lots are merged again into
  container-sized export lots shipped from Paita;
- the rainy season (November to April, and its tail in May and October)
  slows the roads of the gatherers and cooperatives flagged as rainy-road.

It streams: one cooperative-season is generated, time-sorted and yielded at
a time, so memory depends on the largest cooperative, never on ``producers``.
The same arguments always give the same events, byte for byte; a
cooperative's events do not depend on how many other cooperatives there are.

>>> evs = list(generate(producers=3, seed=1, coop_size=(3, 3)))
>>> evs[0]["type"], evs[0]["site"].split(":")[0]
('harvest', 'farm')
>>> sorted({e["type"] for e in evs})[:4]
['arrival', 'dispatch', 'dry_mill', 'drying']
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

__all__ = ["COOP_SIZE", "LAST_YEAR", "generate", "generate_lines", "write_jsonl"]

#: The range of cooperative sizes, in producer families.
COOP_SIZE = (400, 1800)
#: The newest season generated: seasons are LAST_YEAR - S + 1 .. LAST_YEAR.
LAST_YEAR = 2025

# (code, name, mill site, centre lon, lat): the coffee regions and where their parchment is milled.
_REGIONS = (
    ("CAJ", "Cajamarca", "mill:JAEN-1", -78.85, -5.62),
    ("AMA", "Amazonas", "mill:JAEN-1", -78.18, -5.95),
    ("SMA", "San Martin", "mill:CHICLAYO-1", -76.95, -6.40),
    ("PIU", "Piura", "mill:CHICLAYO-1", -79.72, -4.95),
    ("JUN", "Junin", "mill:LIMA-1", -75.05, -11.10),
    ("PAS", "Pasco", "mill:LIMA-1", -75.30, -10.55),
    ("CUS", "Cusco", "mill:LIMA-1", -72.65, -12.90),
    ("PUN", "Puno", "mill:LIMA-1", -69.35, -13.95),
)
_VARIETIES = ("Caturra", "Catimor", "Typica", "Bourbon", "Catuai", "Pache", "Geisha")
_BUYERS = (
    ("Hamburg", "Elbkaffee Rohkaffee-Import GmbH"),
    ("Antwerp", "Flandria Green Coffee NV"),
    ("New York", "Hudson Green Coffee Inc."),
    ("Yokohama", "Minato Coffee Trading K.K."),
    ("Oakland", "Bay Specialty Importers LLC"),
)
_MINUTE = timedelta(minutes=1)
_DAY = 24 * 60
_HOUR = 60


@dataclass(frozen=True, slots=True)
class _Coop:
    index: int
    code: str
    region: str
    mill: str
    lon: float
    lat: float
    producers: int
    gatherers: tuple[tuple[str, bool], ...]  #: (site id, on a rainy road)
    rainy_road: bool  #: HQ-to-mill road slowed by the rains
    certifications: tuple[str, ...]


def _rainy_factor(month: int) -> float:
    """How much slower a rainy road is in this month (1.0: not at all)."""
    if month in (1, 2, 3, 4, 11, 12):
        return 4.0
    if month in (5, 10):
        return 2.0
    return 1.0


def _coops(producers: int, seed: int, coop_size: tuple[int, int]) -> Iterator[_Coop]:
    """The cooperatives, each drawn from its own seed, until they hold ``producers``."""
    left, i = producers, 0
    while left > 0:
        r = random.Random(f"{seed}:coop:{i}")
        size = min(left, r.randint(*coop_size))
        code, _name, mill, lon, lat = _REGIONS[r.randrange(len(_REGIONS))]
        n_gatherers = max(1, round(size / r.uniform(60, 110)))
        gatherers = tuple(
            (f"gatherer:{code}{i:04d}-G{g:02d}", r.random() < 0.3) for g in range(n_gatherers)
        )
        certs = r.choice((("organic", "fairtrade"), ("fairtrade",), ("organic",), ()))
        yield _Coop(
            i,
            f"{code}{i:04d}",
            code,
            mill,
            lon + r.uniform(-0.4, 0.4),
            lat + r.uniform(-0.4, 0.4),
            size,
            gatherers,
            r.random() < 0.4,
            certs,
        )
        left -= size
        i += 1


class _Season:
    """One cooperative's season: builds every event, then hands them out in time order."""

    def __init__(self, coop: _Coop, year: int, seed: int):
        self.coop = coop
        self.year = year
        self.r = random.Random(f"{seed}:season:{year}:{coop.index}")
        self.base = datetime.fromisoformat(f"{year}-01-01T00:00:00-05:00")
        self.events: list[tuple[int, int, bytes]] = []
        self.yy = f"{year % 100:02d}"

    # --------------------------------------------------------------- helpers

    def ts(self, minute: int) -> str:
        return (self.base + minute * _MINUTE).isoformat()

    def month(self, minute: int) -> int:
        return (self.base + minute * _MINUTE).month

    def road(self, start: int, hours: float, rainy: bool) -> int:
        """Arrival minute of a truck leaving at ``start`` on a road of ``hours``."""
        factor = _rainy_factor(self.month(start)) if rainy else 1.0
        return start + max(30, int(hours * factor * _HOUR * self.r.uniform(0.8, 1.3)))

    def emit(self, minute: int, event: dict[str, Any]) -> None:
        event["time"] = self.ts(minute)
        body = orjson.dumps(event)
        self.events.append((minute, len(self.events), body))

    def at(self, day: int, hour: int, spread_min: int = 120) -> int:
        return day * _DAY + hour * _HOUR + self.r.randrange(spread_min)

    # --------------------------------------------------------------- the chain

    def build(self) -> list[tuple[int, int, bytes]]:
        c = self.coop
        arrived: dict[int, list[tuple[int, str, float, bool]]] = {}  # gatherer -> lots
        april1 = (datetime(self.year, 4, 1) - datetime(self.year, 1, 1)).days
        for p in range(c.producers):
            self.producer(p, april1, arrived)
        collections = self.gatherers(arrived)
        hq_lots = self.hq(collections)
        g1 = self.mill(hq_lots)
        self.exports(g1)
        self.events.sort()
        return self.events

    def producer(
        self, p: int, april1: int, arrived: dict[int, list[tuple[int, str, float, bool]]]
    ) -> None:
        c, r = self.coop, self.r
        pr = random.Random(f"plot:{c.code}:{p}")  # the plot stays the same every season
        g = pr.randrange(len(c.gatherers))
        gsite, grainy = c.gatherers[g]
        farm = f"farm:{c.code}-P{p:05d}"
        area = round(pr.lognormvariate(0.6, 0.6), 1) + 0.3
        lon = round(c.lon + pr.uniform(-0.15, 0.15), 6)
        lat = round(c.lat + pr.uniform(-0.15, 0.15), 6)
        if area > 4:
            geometry: dict[str, Any] = {"type": "Polygon", "coordinates": [_ring(pr, lon, lat)]}
        else:
            geometry = {"type": "Point", "coordinates": [lon, lat]}
        plot = {
            "id": f"{c.code}-P{p:05d}",
            "geometry": geometry,
            "area_ha": area,
            "altitude_m": pr.randrange(900, 2200, 10),
        }
        variety = pr.choice(_VARIETIES)
        women = pr.random() < 0.12
        certs = list(c.certifications)
        if women:
            certs.append("cafe_femenino")
        passes = r.randint(4, 7)
        # Pickings from April to October, most in June and July.
        days = sorted(april1 + int(r.triangular(0, 213, 85)) for _ in range(passes))
        for k, day in enumerate(days, 1):
            lot = f"{c.code}-{self.yy}-H{p:05d}-{k}"
            t = self.at(day, 13, 300)
            cherry = round(r.uniform(150, 1500) * min(2.5, area / 2 + 0.5), 1)
            harvest: dict[str, Any] = {
                "type": "harvest",
                "site": farm,
                "lot": lot,
                "producer": f"{c.code}-{p:05d}",
                "plot": plot,
                "kg": cherry,
                "variety": variety,
                "process": "washed",
            }
            if certs:
                harvest["certifications"] = certs
            if women:
                harvest["women_producer"] = True
            self.emit(t, harvest)
            wet = r.random() < 0.05  # dried in the rain: rejected at the gatherer
            dry_end = self.at(day + r.randint(9, 18), 10)
            kg = round(cherry * r.uniform(0.19, 0.23), 1)
            self.emit(
                dry_end,
                {
                    "type": "drying",
                    "site": farm,
                    "lot": lot,
                    "kg": kg,
                    "method": "covered" if r.random() < 0.8 else "raised_bed",
                    "moisture_pct": round(
                        r.uniform(13.6, 15.8) if wet else r.uniform(10.4, 12.6), 1
                    ),
                    "started": self.ts(day * _DAY + 7 * _HOUR + _DAY),
                },
            )
            leave = self.at(day + r.randint(19, 22), 6, 180)
            arrive = self.road(leave, r.uniform(1.5, 5), grainy)
            self.emit(
                leave,
                {
                    "type": "dispatch",
                    "site": farm,
                    "lot": lot,
                    "to_site": gsite,
                    "vehicle": "mule and pickup",
                },
            )
            self.emit(arrive, {"type": "arrival", "site": gsite, "lot": lot, "from_site": farm})
            arrived.setdefault(g, []).append((arrive, lot, kg, wet))

    def gatherers(
        self, arrived: dict[int, list[tuple[int, str, float, bool]]]
    ) -> list[tuple[int, str, float, bool]]:
        """Weekly QC at each gatherer; returns (arrival at HQ, lot, kg, rainy) per collection."""
        c, r = self.coop, self.r
        out = []
        for g, lots in sorted(arrived.items()):
            gsite, grainy = c.gatherers[g]
            lots.sort()
            week0 = lots[0][0] // (7 * _DAY) + 1
            retry: list[tuple[int, str, float]] = []  # lots re-inspected, ready at minute
            i, w = 0, week0
            while i < len(lots) or retry:
                qc = w * 7 * _DAY + 9 * _HOUR  # every week, 9:00
                batch: list[tuple[str, float]] = []
                while i < len(lots) and lots[i][0] < qc:
                    _t, lot, kg, wet = lots[i]
                    i += 1
                    if wet:
                        batch_time = qc + r.randrange(1, 60)
                        kg2 = round(kg * r.uniform(0.95, 0.98), 1)
                        self.emit(
                            batch_time, _qc("gatherer_qc", gsite, lot, "rejected", kg, r, wet=True)
                        )
                        redry = qc + r.randint(3, 4) * _DAY
                        self.emit(
                            redry,
                            {
                                "type": "drying",
                                "site": gsite,
                                "lot": lot,
                                "kg": kg2,
                                "method": "mechanical",
                                "moisture_pct": round(r.uniform(11, 12.4), 1),
                            },
                        )
                        again = redry + _DAY
                        self.emit(again, _qc("gatherer_qc", gsite, lot, "accepted", kg2, r))
                        retry.append((again, lot, kg2))
                    else:
                        batch.append((lot, kg))
                batch += [(lot, kg) for t, lot, kg in retry if t < qc]
                retry = [x for x in retry if x[0] >= qc]
                if batch:
                    code = f"{c.code}-{self.yy}-G{g:02d}-{w - week0 + 1:03d}"
                    total = sum(kg for _, kg in batch)
                    kg = round(total * r.uniform(0.992, 1.0), 1)
                    ev = _qc("gatherer_qc", gsite, code, "accepted", kg, r)
                    ev["inputs"] = [{"lot": lot, "kg": k} for lot, k in batch]
                    t = qc + 2 * _HOUR + r.randrange(60)
                    self.emit(t, ev)
                    leave = t + r.randint(1, 4) * _DAY
                    hq = f"hq:{c.code}"
                    self.emit(
                        leave, {"type": "dispatch", "site": gsite, "lot": code, "to_site": hq}
                    )
                    arrive = self.road(leave, r.uniform(3, 10), grainy)
                    self.emit(
                        arrive, {"type": "arrival", "site": hq, "lot": code, "from_site": gsite}
                    )
                    out.append((arrive, code, kg, grainy))
                w += 1
        return out

    def hq(self, collections: list[tuple[int, str, float, bool]]) -> list[tuple[int, str, float]]:
        """Blend collection lots every two weeks, at most eight a blend; returns ready HQ lots."""
        c, r = self.coop, self.r
        hq = f"hq:{c.code}"
        collections.sort()
        out = []
        n, i = 0, 0
        while i < len(collections):
            fortnight = collections[i][0] // (14 * _DAY) + 1
            qc = fortnight * 14 * _DAY + 10 * _HOUR
            ready = []
            while i < len(collections) and collections[i][0] < qc:
                ready.append(collections[i])
                i += 1
            for j in range(0, len(ready), 8):
                part = ready[j : j + 8]
                n += 1
                code = f"{c.code}-{self.yy}-HQ-{n:04d}"
                kg = round(sum(x[2] for x in part) * r.uniform(0.995, 1.0), 1)
                t = qc + j * 10
                hold = r.random() < 0.03
                ev = _qc("hq_qc", hq, code, "hold" if hold else "accepted", kg, r, cup=True)
                ev["inputs"] = [{"lot": x[1], "kg": x[2]} for x in part]
                if hold:
                    ev["reason"] = "Cup shows a phenolic note; held for a second cupping."
                self.emit(t, ev)
                if hold:
                    t += 3 * _DAY
                    self.emit(t, _qc("hq_qc", hq, code, "accepted", kg, r, cup=True))
                out.append((t, code, kg))
        return out

    def mill(self, hq_lots: list[tuple[int, str, float]]) -> list[tuple[int, str, float]]:
        """Truck each HQ lot to the dry mill and split it into grades; returns Grade 1 lots."""
        c, r = self.coop, self.r
        hq = f"hq:{c.code}"
        out = []
        for n, (t, lot, kg) in enumerate(hq_lots, 1):
            leave = t + r.randint(2, 10) * _DAY
            self.emit(
                leave,
                {"type": "dispatch", "site": hq, "lot": lot, "to_site": c.mill, "vehicle": "truck"},
            )
            arrive = self.road(leave, r.uniform(8, 20), c.rainy_road)
            self.emit(arrive, {"type": "arrival", "site": c.mill, "lot": lot, "from_site": hq})
            run = arrive + r.randint(1, 6) * _DAY
            g1, g2, mcm = (
                round(kg * r.uniform(a, b), 1) for a, b in ((0.6, 0.66), (0.07, 0.1), (0.03, 0.05))
            )
            base = f"{c.mill.split(':')[1]}-{self.yy}-{c.code}-{n:04d}"
            self.emit(
                run,
                {
                    "type": "dry_mill",
                    "site": c.mill,
                    "inputs": [{"lot": lot, "kg": kg}],
                    "outputs": [
                        {"lot": f"{base}-G1", "kg": g1, "grade": "Grade 1 SHB"},
                        {"lot": f"{base}-G2", "kg": g2, "grade": "Grade 2"},
                        {"lot": f"{base}-MCM", "kg": mcm, "grade": "MCM"},
                    ],
                    "rejects_kg": round(kg - g1 - g2 - mcm, 1),
                },
            )
            out.append((run, f"{base}-G1", g1))
        return out

    def exports(self, g1: list[tuple[int, str, float]]) -> None:
        """Merge Grade 1 lots into container lots (275 bags of 69 kg) and ship them from Paita."""
        c, r = self.coop, self.r
        container = 275 * 69.0
        g1.sort()
        part: list[tuple[int, str, float]] = []
        n = 0
        for j, lot in enumerate(g1):
            part.append(lot)
            if sum(x[2] for x in part) < container and j < len(g1) - 1:
                continue
            total = sum(x[2] for x in part)
            bags = math.floor(total / 69)
            if bags == 0:
                break
            excess = round(total - bags * 69, 1)
            n += 1
            code = f"EXP-{self.yy}-{c.code}-{n:03d}"
            ready = 0
            for t, glot, _kg in part:
                leave = t + r.randint(1, 5) * _DAY
                self.emit(
                    leave,
                    {"type": "dispatch", "site": c.mill, "lot": glot, "to_site": "port:PAITA"},
                )
                arrive = self.road(leave, r.uniform(4, 14), False)
                self.emit(
                    arrive,
                    {"type": "arrival", "site": "port:PAITA", "lot": glot, "from_site": c.mill},
                )
                ready = max(ready, arrive)
            drawn = _less(excess, [x[2] for x in part])
            inputs = [{"lot": x[1], "kg": kg} for x, kg in zip(part, drawn, strict=True)]
            destination, buyer = _BUYERS[r.randrange(len(_BUYERS))]
            self.emit(
                ready + r.randint(1, 4) * _DAY,
                {
                    "type": "export",
                    "site": "port:PAITA",
                    "lot": code,
                    "kg": round(sum(drawn), 1),
                    "bags": bags,
                    "bag_kg": 69.0,
                    "container": f"LTRU{r.randrange(10**7):07d}",
                    "destination": destination,
                    "buyer": buyer,
                    "inputs": inputs,
                },
            )
            part = []


def _less(excess: float, kgs: list[float]) -> list[float]:
    """``kgs`` with ``excess`` kg left out, from the last lot first, each keeping 0.1 kg or more.

    The odd kilos of a container (less than a bag) stay at the mill. The last
    lot usually keeps them all; a last lot smaller than that (a ledger of a
    few hundred thousand producers has some) gives what it can and the lots
    before it the rest, so no lot is drawn a negative weight.

    >>> _less(20.0, [300.0, 150.0])
    [300.0, 130.0]
    >>> _less(20.0, [300.0, 5.0])
    [284.9, 0.1]
    """
    out = list(kgs)
    for i in reversed(range(len(out))):
        take = min(excess, round(out[i] - 0.1, 1))
        if take > 0:
            out[i] = round(out[i] - take, 1)
            excess = round(excess - take, 1)
        if excess <= 0:
            break
    return out


def _qc(
    kind: str,
    site: str,
    lot: str,
    result: str,
    kg: float,
    r: random.Random,
    *,
    wet: bool = False,
    cup: bool = False,
) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "type": kind,
        "site": site,
        "lot": lot,
        "result": result,
        "kg": kg,
        "moisture_pct": round(r.uniform(13.6, 15.8) if wet else r.uniform(10.5, 12.5), 1),
        "water_activity": round(r.uniform(0.68, 0.75) if wet else r.uniform(0.55, 0.64), 2),
        "defects": {"cat1": r.randint(0, 2), "cat2": r.randint(2, 12)},
        "yield_pct": round(r.uniform(74, 81), 1),
    }
    if cup:
        ev["cup_score"] = round(r.uniform(82, 87.5) * 4) / 4
    if wet:
        ev["reason"] = "Wet parchment after drying in the rain: re-dry at the gatherer."
    return ev


def _ring(r: random.Random, lon: float, lat: float) -> list[list[float]]:
    """A closed ring of six corners around (lon, lat), about 200-300 m across."""
    pts = []
    for k in range(6):
        a = 2 * math.pi * k / 6 + r.uniform(-0.3, 0.3)
        d = r.uniform(0.0009, 0.0014)
        pts.append([round(lon + d * math.cos(a), 6), round(lat + d * math.sin(a), 6)])
    return [*pts, pts[0]]


def generate_lines(
    producers: int, *, seasons: int = 1, seed: int = 0, coop_size: tuple[int, int] = COOP_SIZE
) -> Iterator[bytes]:
    """Every event as one JSON line (without the newline), in import order."""
    if producers < 1 or seasons < 1:
        raise ValueError("producers and seasons must be at least 1")
    for year in range(LAST_YEAR - seasons + 1, LAST_YEAR + 1):
        for coop in _coops(producers, seed, coop_size):
            for _t, _n, body in _Season(coop, year, seed).build():
                yield body


def generate(
    producers: int, *, seasons: int = 1, seed: int = 0, coop_size: tuple[int, int] = COOP_SIZE
) -> Iterator[dict[str, Any]]:
    """Every event as a plain dict, in import order (see the module docstring)."""
    for line in generate_lines(producers, seasons=seasons, seed=seed, coop_size=coop_size):
        yield orjson.loads(line)


def write_jsonl(
    path: str | Path,
    producers: int,
    *,
    seasons: int = 1,
    seed: int = 0,
    max_events: int | None = None,
    coop_size: tuple[int, int] = COOP_SIZE,
) -> int:
    """Write the events to a JSON Lines file; return how many were written.

    ``max_events`` stops early: a prefix of the stream imports cleanly too,
    because every event only refers to events before it.
    """
    n = 0
    with open(path, "wb") as f:
        for line in generate_lines(producers, seasons=seasons, seed=seed, coop_size=coop_size):
            if max_events is not None and n >= max_events:
                break
            f.write(line + b"\n")
            n += 1
    return n
