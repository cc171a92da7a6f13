"""Closed-loop throughput: N processes (not threads: the client side is Python-bound and
would serialise on the GIL) each run one target back to back for a fixed time, all
starting together. Reads take the cached read path (keys stay warm, so mostly hits);
the write target recharges scratch cards, each process its own slice.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

from recharge_cli import db
from recharge_cli.bench import runner
from recharge_cli.bench.statistics import summarize
from recharge_cli.cache import Cache

START_DELAY = 2.0  # seconds for every process to import and connect before the clock starts


def _client(dsn: str, redis_url: str, prefix: str, target: str, card_ids: list[int],
            start_at: float, seconds: float, cluster: bool) -> list[int]:
    """One closed-loop client: latencies (ns) of the operations finished in the window."""
    conn = db.connect(dsn, application_name=f"recharge-bench-load-{target}")
    cache = Cache.from_url(redis_url, prefix, cluster=cluster)
    operation = runner.write if target == runner.WRITE_TARGET else runner.TARGETS[target].read
    latencies: list[int] = []
    time.sleep(max(0.0, start_at - time.time()))
    deadline = time.perf_counter_ns() + int(seconds * 1e9)
    i = 0
    while (start := time.perf_counter_ns()) < deadline:
        operation(conn, cache, card_ids[i % len(card_ids)])
        latencies.append(time.perf_counter_ns() - start)
        i += 1
    conn.close()
    cache.close()
    return latencies


def scratch_cards_needed(processes: int, seconds: float) -> int:
    """Enough scratch cards for the fastest write rate we could plausibly see (2,000/s per
    process) without any card reaching its maximum balance."""
    return processes * (int(seconds * 2_000) // runner.WRITES_PER_CARD + 1)


def run(dsn: str, redis_url: str, prefix: str, targets: list[str], processes: int,
        seconds: float, card_ids: list[int], scratch: list[int],
        cluster: bool = False) -> dict[str, Any]:
    """Per target: operations/s over the window and latency under load."""
    results: dict[str, Any] = {}
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        for target in targets:
            pool_cards = scratch if target == runner.WRITE_TARGET else card_ids
            start_at = time.time() + START_DELAY
            futures = [pool.submit(_client, dsn, redis_url, prefix, target,
                                   pool_cards[n::processes] or pool_cards, start_at, seconds,
                                   cluster)
                       for n in range(processes)]
            latencies = [ns for f in futures for ns in f.result()]
            results[target] = {"processes": processes, "seconds": seconds,
                               "operations": len(latencies),
                               "ops_per_second": len(latencies) / seconds,
                               **summarize(latencies)}
    return results
