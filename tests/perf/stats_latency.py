"""Uncached latency of every statistic (the stored function alone, as `--fresh` runs it)
on the target database, for the growth budget of issue "Statistics" (≤ 100 ms p50 at 10×).

    python tests/perf/stats_latency.py --dsn postgresql://postgres@127.0.0.1:5432/bench [--runs 15]

Read-only. Run `recharge db rollup` first to measure the rolled-up path; `--from/--to`
narrow the window.
"""

from __future__ import annotations

import argparse
import statistics
import time

from recharge_cli import db, stats

CASES = [("revenue", {"by": by}) for by in ("total", "day", "locality")] + \
        [("trips", {"by": by}) for by in ("total", "day", "hour", "locality", "route")] + \
        [("users_active", {}), ("users_count", {})]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--from", dest="date_from", type=stats.dt.date.fromisoformat)
    parser.add_argument("--to", dest="date_to", type=stats.dt.date.fromisoformat)
    args = parser.parse_args()
    conn = db.connect(args.dsn)
    legs = conn.execute("SELECT count(*) AS n FROM public.trips").fetchone()["n"]
    print(f"{legs:,} trip legs; p50 of {args.runs} runs after one warm-up")
    for name, params in CASES:
        if stats.STATISTICS[name].dated:
            params = {"from": args.date_from, "to": args.date_to, **params}
        samples = []
        for run in range(args.runs + 1):
            started = time.perf_counter_ns()
            stats.compute(conn, name, params)
            if run:
                samples.append((time.perf_counter_ns() - started) / 1e6)
        label = f"{name} {params.get('by', '')}".strip()
        print(f"{label:<22} p50 {statistics.median(samples):8.2f} ms   max {max(samples):8.2f} ms")


if __name__ == "__main__":
    main()
