"""A lot card's data before and after sharing its lot's graph, alternated in one run (not a test).

    python bench/web_card_ab.py --db LEDGER --lot LOT [--rounds 10] [--json]

``before``: :func:`lottrace.passport._passport_data`, each query (upstream, route, EUDR proof,
each certification) building the lot's ancestors graph itself, as before
:func:`lottrace.graph.shared_graphs`; ``after``: :func:`lottrace.passport.passport_data`,
which builds it once. Both read the same open ledger, alternately, ``--rounds`` times each,
after one untimed call of each; their answers are checked equal. Use a ledger
``bench/web_load.py --keep DIR`` kept (``DIR/served.db``) and its buyer's big export lot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from lottrace.ledger import Ledger
from lottrace.passport import _passport_data, passport_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--lot", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ms: dict[str, list[float]] = {"before": [], "after": []}
    with Ledger.reader(args.db) as ledger:
        same = _passport_data(ledger, args.lot) == passport_data(ledger, args.lot)
        for _ in range(args.rounds):
            for name, make in (("before", _passport_data), ("after", passport_data)):
                t0 = time.perf_counter()
                make(ledger, args.lot)
                ms[name].append((time.perf_counter() - t0) * 1000)
        events = ledger.head()[0]
    r = {
        "lot": args.lot,
        "events": events,
        "rounds": args.rounds,
        "nice": os.nice(0),
        "load_avg_1m": os.getloadavg()[0],
        "same_answer": same,
        **{
            f"{name}_{k}_ms": round(v, 1)
            for name, xs in ms.items()
            for k, v in (
                ("p50", statistics.median(xs)),
                ("p95", sorted(xs)[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]),
                ("min", min(xs)),
            )
        },
    }
    print(json.dumps(r, indent=1) if args.json else r)


if __name__ == "__main__":
    main()
