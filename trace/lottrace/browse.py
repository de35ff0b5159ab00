"""The browsable ledger: Datasette metadata for a lottrace file.

A ledger is a plain SQLite file, so ``datasette lottrace.db`` can browse it.
:func:`datasette_metadata` gives Datasette what it cannot guess: what each
table and column means, and canned queries (:data:`CANNED_QUERIES`) that
answer the usual questions in SQL alone:

``lot_upstream``
    A lot and every lot it came from, with its share (the fraction of the lot that
    came through it, multiplied along links and added over paths, as
    :func:`lottrace.graph.shares_into` defines it) and, for a harvest lot, its
    producer and plot. A recursive CTE over ``links``.
``lot_downstream``
    Every lot made from a lot (the recall question), recursive over ``links``.
``bottlenecks``
    Routes ranked by lot-hours above the median of the same stage-to-stage
    leg, as :func:`lottrace.delays.bottlenecks`.
``stuck_lots``
    Lots with kg left whose latest checkpoint is older than the p90 of the
    leg that usually follows it, as :func:`lottrace.delays.stuck`.

The SQL here is the one place these queries are written; lottrace itself
never runs it (its own queries live in :mod:`lottrace.ledger`), but the tests
run every canned query against the sample season and check that it returns
what the library's queries return. The table descriptions are checked
against the real schema, so a new column cannot go undescribed.
"""

from __future__ import annotations

from typing import Any

from .events import STAGE_ORDER

__all__ = ["CANNED_QUERIES", "TABLES", "datasette_metadata"]

JSON = dict[str, Any]

_STAGES = ", ".join(f"('{name}', {n})" for name, n in STAGE_ORDER.items())
_STAGE_LIST = ", ".join(f"{n} = {name}" for name, n in STAGE_ORDER.items())

#: Each table of a ledger file: its description and one line per column.
TABLES: dict[str, JSON] = {
    "events": {
        "description": "The event log: one row per checkpoint, append-only (triggers abort "
        "UPDATE and DELETE), hash-chained. Everything else is derived from it.",
        "columns": {
            "seq": "Position in the log: 1, 2, 3 ...",
            "event_id": "sha256 of the canonical body: the event's content address.",
            "type": "Event type: harvest, drying, gatherer_qc, hq_qc, dry_mill, export, "
            "dispatch, arrival or correction.",
            "time": "When it happened, as a UTC sort key (the body keeps the local offset).",
            "lot": "The lot the event is about (empty for dry_mill and correction).",
            "body": "The event as canonical JSON: every field (json_extract(body, '$.kg')).",
            "prev_hash": "The hash of the row before (the first row: sha256 of the ledger id).",
            "hash": "sha256(prev_hash || event_id): the chain. The last row's is the head hash.",
        },
        "facets": ["type"],
        "sort_desc": "seq",
    },
    "meta": {
        "description": "Fixed facts about this ledger file.",
        "columns": {
            "key": "ledger_id: a random id whose hash starts the chain; demo: set in demo ledgers.",
            "value": "Its value.",
        },
    },
    "lots": {
        "description": "Derived: each lot's current state, folded from its non-void events.",
        "columns": {
            "lot": "The lot code.",
            "created_by": "event_id of the event that created the lot.",
            "stage": f"Highest stage reached: {_STAGE_LIST}.",
            "first_time": "Its first event's time (UTC sort key).",
            "last_time": "Its latest event's time (UTC sort key).",
            "kg": "Its weight: as formed, or as last weighed.",
            "drawn_kg": "kg drawn from it into other lots or exported; kg - drawn_kg is left.",
            "last_qc": "The result of its latest QC: accepted, rejected or hold.",
            "last_site": "Where its latest event happened.",
            "last_event": "event_id of its latest event.",
            "n_events": "How many events name it.",
            "base_kg": "The lowest weight ever stated for it (0 for a foreign id never weighed): "
            "a restatement may exceed it by the 2 % scale tolerance.",
        },
        "label_column": "lot",
        "facets": ["last_qc", "stage"],
    },
    "event_lots": {
        "description": "Derived: one row per (lot, event): every lot's timeline.",
        "columns": {
            "lot": "The lot code.",
            "time": "The event's time (UTC sort key).",
            "type": "The event's type.",
            "seq": "The event's row in events.",
            "role": "subject (about the lot), output (formed it) or input (drew kg from it).",
            "site": "Where the event happened.",
        },
        "facets": ["type", "role"],
    },
    "links": {
        "description": "Derived: every kg link from an input lot to the lot it went into. "
        "A dry mill's input links to each grade it made with its whole kg.",
        "columns": {
            "dst": "The lot formed.",
            "src": "The input lot.",
            "seq": "The forming event's row in events.",
            "kg": "kg drawn from src by that event.",
            "time": "When dst was formed (UTC sort key).",
        },
    },
    "voided": {
        "description": "Derived: events voided by a correction, per lot they named.",
        "columns": {
            "event_id": "The voided event.",
            "lot": "A lot it named.",
            "by_event_id": "The correction that voided it.",
            "reason": "did_not_occur or incorrect_data.",
        },
    },
    "legs": {
        "description": (
            "Derived: every lot's legs (from one of its stage checkpoints to the next, or "
            "to an event drawing from it), kept on append; what delays and bottlenecks read."
        ),
        "columns": {
            "lot": "The lot.",
            "n": "The leg's place among the lot's legs (0, 1, ...).",
            "from_stage": "The checkpoint the leg starts at.",
            "from_site": "Where it starts.",
            "start_time": "When it starts (UTC sort key).",
            "to_stage": "The event the leg ends at.",
            "to_site": "Where it ends.",
            "end_time": "When it ends (UTC sort key; indexed).",
            "hours": "How long it took.",
            "transit_hours": "Dispatch-to-arrival hours within it, or null without a dispatch.",
        },
    },
    "leg_days": {
        "description": (
            "Derived: the legs counted by the day they end (UTC), stage pair and 4-hour band "
            "of hours, kept with the legs; what delays by stage or month reads."
        ),
        "columns": {
            "day": "The day the legs end (YYYY-MM-DD, UTC).",
            "from_stage": "The checkpoint the legs start at.",
            "to_stage": "The event the legs end at.",
            "band": "The band of hours: floor(hours / 4).",
            "n": "How many legs.",
            "us": "Their durations' sum, in microseconds.",
            "trucked": "How many of them had a dispatch.",
            "transit_us": "The trucked legs' dispatch-to-arrival microseconds.",
            "wait_us": "The trucked legs' other microseconds.",
        },
    },
    "sources": {
        "description": "Part of the log, append-only: the chains of the ledgers merged into "
        "this one (lottrace merge), a row for each row of each source. "
        "An event two sources held is stored once in events and has a row here for each.",
        "columns": {
            "ledger_id": "The source ledger's id (its chain starts from the hash of it).",
            "seq": "The row's number in the source ledger.",
            "event_id": "The event (its row in events).",
            "hash": "The source's chain hash at that row (verify --source recomputes it).",
        },
    },
    "_sqlite_migrations": {
        "description": "The schema migrations applied to this file (sqlite-utils).",
        "columns": {
            "id": "Row id.",
            "migration_set": "Always 'lottrace'.",
            "name": "The migration.",
            "applied_at": "When it was applied.",
        },
        "hidden": True,
    },
}

# MATERIALIZED (SQLite 3.35+) computes a CTE once where SQLite would otherwise
# recompute it for each use: it makes stuck_lots five times faster.
# Legs, as lottrace.queries defines them: from a lot's own stage checkpoint (the
# event that formed it counts; an export of part of it does not) to its next
# stage event that is not the one forming it. Hours from the UTC sort keys.
_LEGS = f"""stages(type, n) AS (VALUES {_STAGES}),
starts AS (
  SELECT lot, time, seq, type, site FROM event_lots
  WHERE type IN (SELECT type FROM stages)
    AND (role = 'output' OR (role = 'subject' AND type != 'export'))
),
legs AS MATERIALIZED (
  SELECT e.lot, s.type AS from_stage, s.site AS from_site, s.time AS start,
         e.type AS to_stage, e.site AS to_site, e.time AS "end",
         (julianday(e.time) - julianday(s.time)) * 24 AS hours
  FROM event_lots e
  JOIN starts s ON s.lot = e.lot AND s.seq = (
    SELECT s2.seq FROM starts s2
    WHERE s2.lot = e.lot AND (s2.time < e.time OR (s2.time = e.time AND s2.seq < e.seq))
    ORDER BY s2.time DESC, s2.seq DESC LIMIT 1)
  WHERE e.type IN (SELECT type FROM stages) AND e.role != 'output'
)"""

# Each leg's rank among the legs of the same stage pair, for percentiles that
# interpolate linearly between the closest ranks (numpy's default).
_RANKED = """ranked AS (
  SELECT from_stage, to_stage, hours,
         ROW_NUMBER() OVER (PARTITION BY from_stage, to_stage ORDER BY hours) - 1 AS i,
         COUNT(*) OVER (PARTITION BY from_stage, to_stage) AS n
  FROM window_legs
)"""

# Each walk carries the lots on its path (between ASCII record separators, which
# no id holds) and never steps onto one of them again: a ledger holding a lineage
# cycle (written before lottrace refused them) gets an answer, not an endless query.
_UPSTREAM = """WITH RECURSIVE up(lot, share, depth, path) AS (
  SELECT :lot, 1.0, 0, char(30) || :lot || char(30)
  UNION ALL
  SELECT l.src, up.share * l.kg / (SELECT SUM(t.kg) FROM links t WHERE t.dst = l.dst),
         up.depth + 1, up.path || l.src || char(30)
  FROM up JOIN links l ON l.dst = up.lot
  WHERE instr(up.path, char(30) || l.src || char(30)) = 0
)
SELECT up.lot, MIN(up.depth) AS depth,
       CASE lots.stage {stage_names} END AS stage,
       ROUND(SUM(up.share), 6) AS share,
       ROUND(SUM(up.share) * (SELECT kg FROM lots WHERE lot = :lot), 3) AS kg_in_lot,
       json_extract(h.body, '$.producer') AS producer,
       json_extract(h.body, '$.plot.id') AS plot_id,
       json_extract(h.body, '$.women_producer') AS women_producer,
       json_extract(h.body, '$.certifications') AS certifications
FROM up
JOIN lots ON lots.lot = up.lot
LEFT JOIN events h ON h.event_id = lots.created_by AND h.type = 'harvest'
GROUP BY up.lot
ORDER BY depth, share DESC, up.lot""".replace(
    "{stage_names}", " ".join(f"WHEN {n} THEN '{name}'" for name, n in STAGE_ORDER.items())
)

_DOWNSTREAM = """WITH RECURSIVE down(lot, depth, path) AS (
  SELECT :lot, 0, char(30) || :lot || char(30)
  UNION
  SELECT l.dst, down.depth + 1, down.path || l.dst || char(30)
  FROM down JOIN links l ON l.src = down.lot
  WHERE instr(down.path, char(30) || l.dst || char(30)) = 0
)
SELECT down.lot, MIN(down.depth) AS depth, lots.kg, lots.kg - lots.drawn_kg AS kg_left,
       lots.last_site,
       (SELECT json_group_array(json_extract(e.body, '$.container'))
        FROM event_lots el JOIN events e ON e.seq = el.seq
        WHERE el.lot = down.lot AND el.type = 'export' AND el.role != 'input') AS containers
FROM down JOIN lots ON lots.lot = down.lot
WHERE down.depth > 0
GROUP BY down.lot
ORDER BY depth, down.lot"""

_BOTTLENECKS = f"""WITH {_LEGS},
window_legs AS (
  SELECT * FROM legs
  WHERE (:since = '' OR "end" >= :since) AND (:until = '' OR "end" < :until)
),
{_RANKED},
baseline AS (
  SELECT from_stage, to_stage, AVG(hours) AS hours FROM ranked
  WHERE i IN ((n - 1) / 2, n / 2)
  GROUP BY from_stage, to_stage
)
SELECT w.from_site, w.to_site, w.from_stage AS "from", w.to_stage AS "to",
       COUNT(*) AS legs,
       ROUND(AVG(w.hours), 3) AS mean_hours,
       ROUND(MAX(w.hours), 3) AS max_hours,
       ROUND(b.hours, 3) AS baseline_hours,
       ROUND(SUM(MAX(0, w.hours - b.hours)), 3) AS excess_hours
FROM window_legs w
JOIN baseline b ON b.from_stage = w.from_stage AND b.to_stage = w.to_stage
JOIN stages sf ON sf.type = w.from_stage
JOIN stages st ON st.type = w.to_stage
GROUP BY w.from_stage, w.to_stage, w.from_site, w.to_site
HAVING SUM(MAX(0, w.hours - b.hours)) > 1e-9
ORDER BY excess_hours DESC, sf.n, st.n, w.from_site, w.to_site"""

_STUCK = f"""WITH {_LEGS},
window_legs AS (SELECT * FROM legs),
{_RANKED},
pairs AS (
  SELECT from_stage, to_stage, COUNT(*) AS n, (COUNT(*) - 1) * 0.9 AS pos
  FROM legs GROUP BY from_stage, to_stage
),
follows AS (
  SELECT p.from_stage, p.to_stage, p.n, p.pos FROM pairs p JOIN stages sp ON sp.type = p.to_stage
  WHERE NOT EXISTS (
    SELECT 1 FROM pairs q JOIN stages sq ON sq.type = q.to_stage
    WHERE q.from_stage = p.from_stage AND (q.n > p.n OR (q.n = p.n AND sq.n < sp.n)))
),
p90 AS MATERIALIZED (
  SELECT f.from_stage, f.to_stage,
         lo.hours + (hi.hours - lo.hours) * (f.pos - CAST(f.pos AS INTEGER)) AS hours
  FROM follows f
  JOIN ranked lo ON lo.from_stage = f.from_stage AND lo.to_stage = f.to_stage
    AND lo.i = CAST(f.pos AS INTEGER)
  JOIN ranked hi ON hi.from_stage = f.from_stage AND hi.to_stage = f.to_stage
    AND hi.i = MIN(CAST(f.pos AS INTEGER) + 1, f.n - 1)
),
latest AS (
  SELECT l.lot, l.kg - l.drawn_kg AS kg_left, l.kg, l.last_qc, el.type, el.time, el.site
  FROM lots l JOIN event_lots el ON el.lot = l.lot AND el.seq = (
    SELECT e2.seq FROM event_lots e2
    WHERE e2.lot = l.lot AND e2.role != 'input' AND e2.type IN (SELECT type FROM stages)
    ORDER BY e2.time DESC, e2.seq DESC LIMIT 1)
  WHERE l.kg - l.drawn_kg > 1e-6 * max(1.0, l.kg)
),
aged AS (
  SELECT latest.*,
         (julianday(COALESCE(NULLIF(:as_of, ''), 'now')) - julianday(latest.time)) * 24 AS age
  FROM latest
)
SELECT a.lot, a.type AS stage, a.site, a.time,
       ROUND(a.age, 3) AS age_hours, p.to_stage AS "next",
       ROUND(p.hours, 3) AS p90_hours, ROUND(a.age - p.hours, 3) AS over_hours,
       ROUND(a.kg_left, 3) AS kg_left, a.last_qc
FROM aged a JOIN p90 p ON p.from_stage = a.type
WHERE a.type != 'export' AND a.age > p.hours
  AND a.kg_left >= CAST(COALESCE(NULLIF(:min_kg, ''), '0') AS REAL)
ORDER BY a.time, a.lot"""

#: Datasette's canned queries: name to title, description, SQL and named parameters.
CANNED_QUERIES: dict[str, JSON] = {
    "lot_upstream": {
        "title": "Where a lot came from",
        "description": "The lot (depth 0) and every lot it came from, nearest first, with "
        "the share of :lot "
        "that came through it and its kg in :lot; harvest lots name their producer, plot, "
        "women_producer flag and certifications. Shares of the harvest lots sum to 1.",
        "sql": _UPSTREAM,
        "params": ["lot"],
    },
    "lot_downstream": {
        "title": "Where a lot went (recall)",
        "description": "Every lot made from :lot, with its kg, kg left, last site and the "
        "containers it was exported in.",
        "sql": _DOWNSTREAM,
        "params": ["lot"],
    },
    "bottlenecks": {
        "title": "Bottlenecks: routes that lose the most lot-hours",
        "description": "Each route (stage to stage, site to site) with the lot-hours its legs "
        "spent above the median of the same stage-to-stage leg, worst first. Optional "
        ":since and :until (dates, UTC) keep the legs ending in [since, until).",
        "sql": _BOTTLENECKS,
        "params": ["since", "until"],
    },
    "stuck_lots": {
        "title": "Stuck lots",
        "description": "Lots with kg left whose latest checkpoint is older than the p90 of "
        "the leg that usually follows it, oldest first. :as_of is the moment to measure at "
        "(a date or ISO time; empty: now, UTC); :min_kg ignores smaller remainders.",
        "sql": _STUCK,
        "params": ["as_of", "min_kg"],
    },
}


def datasette_metadata(database: str = "lottrace") -> JSON:
    """Datasette metadata for a ledger served as `database` (its file name without ``.db``).

    >>> meta = datasette_metadata("season")
    >>> sorted(meta["databases"]["season"]["queries"])
    ['bottlenecks', 'lot_downstream', 'lot_upstream', 'stuck_lots']
    >>> meta["databases"]["season"]["tables"]["links"]["columns"]["kg"]
    'kg drawn from src by that event.'
    """
    return {
        "title": "lottrace ledger",
        "description": "A coffee traceability ledger: an append-only, hash-chained event log "
        "(events) and the tables derived from it. Start with the canned queries.",
        "databases": {
            database: {
                "description": "One lottrace ledger file.",
                "tables": TABLES,
                "queries": CANNED_QUERIES,
            }
        },
    }
