"""Deforestation evidence: per-plot risk results as ``eudr_finding`` events, and their resolutions.

External analyses (FAO's Whisp, Global Forest Watch exports, a consultant's
table) say, per plot, whether it shows forest loss after the EUDR cut-off
date. :func:`read_findings` reads their CSV or GeoJSON output into dated
``eudr_finding`` events naming the dataset and its version;
``eudr_resolution`` events close a finding with the evidence that answers it
(shade-grown agroforestry is not forest under the regulation, say).

A finding is open unless resolved or superseded: the latest result of one
dataset for one plot replaces that dataset's earlier ones. A lot carries the
worst open finding of the plots upstream of it (:func:`lot_findings`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import InvalidEvent, InvalidInput, UnknownEvent
from .events import Harvest, RiskFinding, RiskResolution, parse_event
from .graph import ancestors_graph
from .ledger import Ledger
from .plot_registry import registry, void_ids
from .rules import time_key

__all__ = [
    "FIELD_NAMES",
    "RISK_ORDER",
    "import_findings",
    "lot_findings",
    "open_findings",
    "read_findings",
    "resolve_finding",
]

JSON = dict[str, Any]

#: Risk classes, worst last.
RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
#: Risk words read as a class (Whisp writes ``more_info_needed``).
RISK_WORDS = {
    "low": "low",
    "medium": "medium",
    "more_info_needed": "medium",
    "more info needed": "medium",
    "high": "high",
}
#: Source column (or property) names read for each field, first found wins.
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "plot_id": ("plot_id", "plotId", "external_id", "ProductionPlace"),
    "risk": ("risk", "risk_pcrop", "EUDR_risk"),
    "time": ("analysis_date", "date"),
    "dataset": ("dataset",),
    "dataset_version": ("dataset_version", "whisp_version", "version"),
}
#: Indicator columns: a column starting with one of these whose value is yes/true/1.
INDICATOR_PREFIXES = ("Ind_", "ind_")


def _pick(row: dict[str, Any], name: str) -> Any:
    for key in FIELD_NAMES[name]:
        v = row.get(key)
        if v is not None and str(v).strip() != "":
            return str(v).strip()
    return None


def _finding(
    where: str,
    row: dict[str, Any],
    *,
    dataset: str | None,
    version: str | None,
    date: str | None,
    site: str,
) -> RiskFinding:
    def need(name: str, value: Any, option: str) -> Any:
        if value is None:
            cols = ", ".join(FIELD_NAMES[name])
            raise InvalidEvent(f"{name}: missing (a column {cols}, or {option})", where=where)
        return value

    plot_id = need("plot_id", _pick(row, "plot_id"), "no option")
    word = need("risk", _pick(row, "risk"), "no option")
    risk = RISK_WORDS.get(word.lower())
    if risk is None:
        raise InvalidEvent(
            f"risk: {word!r} is not one of {', '.join(sorted(RISK_WORDS))}", where=where
        )
    when = need("time", _pick(row, "time") or date, "--date")
    if len(when) == 10:
        when += "T00:00:00+00:00"
    indicators = sorted(
        k
        for k, v in row.items()
        if k.startswith(INDICATOR_PREFIXES) and str(v).strip().lower() in ("yes", "true", "1")
    )
    body: JSON = {
        "type": "eudr_finding",
        "time": when,
        "site": site,
        "plot_id": plot_id,
        "risk": risk,
        "dataset": need("dataset", _pick(row, "dataset") or dataset, "--dataset"),
        "dataset_version": need(
            "dataset_version", _pick(row, "dataset_version") or version, "--dataset-version"
        ),
        "source": where,
    }
    if indicators:
        body["indicators"] = indicators
    ev = parse_event(body, where=where)
    assert isinstance(ev, RiskFinding)
    return ev


def read_findings(
    path: Path,
    *,
    dataset: str | None = None,
    version: str | None = None,
    date: str | None = None,
    site: str = "hq:registry",
) -> list[tuple[str, RiskFinding]]:
    """``eudr_finding`` events from a CSV file or a GeoJSON FeatureCollection of results.

    Every row is read first; the first bad one raises naming file, line (or
    feature) and field.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path.name}: not UTF-8 text") from None
    kw: JSON = {"dataset": dataset, "version": version, "date": date, "site": site}
    out: list[tuple[str, RiskFinding]] = []
    if path.suffix.lower() in (".geojson", ".json"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name}:{exc.lineno}: not valid JSON: {exc.msg}") from None
        features = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(features, list):
            raise InvalidInput(f"{path.name}:1: features: not a GeoJSON FeatureCollection")
        for i, feat in enumerate(features):
            where = f"{path.name}:features[{i}]"
            props = feat.get("properties") if isinstance(feat, dict) else None
            if not isinstance(props, dict):
                raise InvalidInput(f"{where}: properties: missing")
            out.append((where, _finding(where, props, **kw)))
        return out
    reader = csv.DictReader(io.StringIO(text, newline=""))
    for row in reader:
        where = f"{path.name}:{reader.line_num}"
        clean = {(k or "").strip(): v for k, v in row.items() if k is not None}
        out.append((where, _finding(where, clean, **kw)))
    return out


def import_findings(ledger: Ledger, paths: Iterable[Path], **kw: Any) -> JSON:
    """Append the findings of these files, all or nothing; ``added`` and ``duplicates``.

    Every plot named must be in the plot registry.
    """
    read: list[tuple[str, RiskFinding]] = []
    for p in paths:
        read.extend(read_findings(p, **kw))
    known = registry(ledger)
    for where, ev in read:  # a typo would otherwise never block anything
        if ev.plot_id not in known:
            raise InvalidEvent(
                f"plot_id: {ev.plot_id} is not in the plot registry (see lottrace plots list)",
                where=where,
            )
    report = ledger.append(read)
    return {"added": report.added, "duplicates": report.duplicates}


def resolve_finding(
    ledger: Ledger,
    finding: str,
    *,
    evidence: str,
    document: str | None = None,
    note: str | None = None,
    site: str = "hq:registry",
    time: str | None = None,
) -> JSON:
    """Append an ``eudr_resolution`` of a finding named by its event id or a prefix of it."""
    ids = [s.event_id for s in ledger.events_of_types(["eudr_finding"])]
    matches = [i for i in ids if i.startswith(finding.lower())] if len(finding) >= 8 else []
    if len(matches) != 1:
        raise UnknownEvent(
            f"no eudr_finding {finding}" if not matches else f"{finding} names several findings"
        )
    body: JSON = {
        "type": "eudr_resolution",
        "time": time or datetime.now(UTC).replace(microsecond=0).isoformat(),
        "site": site,
        "finding": matches[0],
        "evidence": evidence,
    }
    for k, v in (("document", document), ("note", note)):
        if v is not None:
            body[k] = v
    ev = parse_event(body, where="resolution")
    ledger.append([("resolution", ev)])
    return {"finding": matches[0], "evidence": evidence}


def open_findings(ledger: Ledger, as_of: str | None = None) -> dict[str, list[JSON]]:
    """Open findings by plot id, worst first: neither resolved nor superseded by a later
    result of the same dataset for the plot."""
    void = void_ids(ledger)
    latest: dict[tuple[str, str], tuple[str, int, str, RiskFinding]] = {}
    resolved: dict[str, JSON] = {}
    for s in ledger.events_of_types(["eudr_finding", "eudr_resolution"]):
        if s.void or s.event_id in void:
            continue
        key = time_key(s.event.time)
        if as_of is not None and key > as_of:
            continue
        ev = s.event
        if isinstance(ev, RiskFinding):
            k = (ev.plot_id, ev.dataset)
            if k not in latest or (key, s.seq) > latest[k][:2]:
                latest[k] = (key, s.seq, s.event_id, ev)
        elif isinstance(ev, RiskResolution):
            resolved[ev.finding] = {"evidence": ev.evidence, "event_id": s.event_id}
    out: dict[str, list[JSON]] = {}
    for _key, _seq, eid, ev in latest.values():
        if eid in resolved:
            continue
        out.setdefault(ev.plot_id, []).append(
            {
                "event_id": eid,
                "plot_id": ev.plot_id,
                "risk": ev.risk,
                "dataset": ev.dataset,
                "dataset_version": ev.dataset_version,
                "date": ev.time.date().isoformat(),
                "indicators": list(ev.indicators or []),
            }
        )
    for rows in out.values():
        rows.sort(key=lambda r: (-RISK_ORDER[r["risk"]], r["dataset"]))
    return out


def lot_findings(ledger: Ledger, lot: str, as_of: str | None = None) -> JSON:
    """The open findings of the plots upstream of a lot, and the worst of them.

    Returns ``lot``, ``risk`` (the worst open finding's class, or None when
    none is open) and ``findings`` (each with ``plot_id``, ``producer``,
    ``risk``, ``dataset``, ``dataset_version``, ``date``, ``event_id``), worst first.
    """
    G = ancestors_graph(ledger, lot, timelines=True)
    producers: dict[str, str] = {}
    for code in G:
        for e in G.nodes[code].get("timeline", []):
            if e.role == "output" and isinstance(e.event, Harvest):
                producers[e.event.plot.id] = e.event.producer
    found = open_findings(ledger, as_of)
    rows = [
        {**f, "producer": producers[pid]} for pid in sorted(producers) for f in found.get(pid, [])
    ]
    rows.sort(key=lambda r: (-RISK_ORDER[r["risk"]], r["plot_id"], r["dataset"]))
    return {"lot": lot, "risk": rows[0]["risk"] if rows else None, "findings": rows}
