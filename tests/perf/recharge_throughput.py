"""Recharge throughput with N concurrent clients next to pgbench's TPC-B-like number on the
same server (DESIGN §9), plus in-process p50 of `recharge` and `balance`.

    python tests/perf/recharge_throughput.py --dsn postgresql://postgres@127.0.0.1:5432/bench \
        --redis-url redis://127.0.0.1:6379/0 [--clients 8] [--seconds 15]

It writes real recharges (1,000 pesos each, fresh keys) to active cards of the target
database: point it at a benchmark copy, never at production.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import time
import uuid
from multiprocessing import get_context

from psycopg import conninfo

from recharge_cli import cards, db
from recharge_cli.cache import Cache


def client(dsn: str, redis_url: str, prefix: str, card_ids: list[int], seconds: float,
           worker: int) -> int:
    conn = db.connect(dsn)
    cache = Cache.from_url(redis_url, prefix)
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        card = card_ids[(worker * 7919 + done) % len(card_ids)]
        cards.recharge(conn, cache, card, 1000, key=f"perf-{uuid.uuid4().hex}")
        done += 1
    return done


def pgbench_tps(dsn: str, clients: int, seconds: int) -> float | None:
    if shutil.which("pgbench") is None:
        return None
    params = conninfo.conninfo_to_dict(dsn)
    name = f"pgbench_{uuid.uuid4().hex[:8]}"
    admin = db.connect(dsn)
    admin.execute(f"CREATE DATABASE {name}")
    args = []
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
        if params.get(key):
            args += [flag, str(params[key])]
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(clients), *args, name], check=True,
                       capture_output=True)
        out = subprocess.run(["pgbench", "-c", str(clients), "-j", "2", "-T", str(seconds),
                              *args, name], check=True, capture_output=True, text=True).stdout
        return float(re.search(r"tps = ([\d.]+)", out).group(1))
    finally:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    prefix = f"recharge:perf:{uuid.uuid4().hex[:6]}:"
    conn = db.connect(args.dsn)
    cache = Cache.from_url(args.redis_url, prefix)
    card_ids = [r["card_id"] for r in conn.execute(
        "SELECT card_id FROM cards WHERE status = 'active' AND balance < 300000 "
        "ORDER BY card_id LIMIT 2000").fetchall()]

    def p50(action, n=300) -> float:
        samples = []
        for _ in range(n):
            start = time.perf_counter_ns()
            action()
            samples.append(time.perf_counter_ns() - start)
        return statistics.median(samples) / 1000

    recharge_p50 = p50(lambda: cards.recharge(conn, cache, card_ids[0], 1000,
                                              key=f"perf-{uuid.uuid4().hex}"), 200)
    balance_p50 = p50(lambda: cards.balances(conn, Cache(None, prefix), [card_ids[1]]))
    cached_p50 = p50(lambda: cards.balances(conn, cache, [card_ids[1]]))
    print(f"in-process p50: recharge {recharge_p50:.0f} µs, balance (db) {balance_p50:.0f} µs, "
          f"balance (cache hit) {cached_p50:.0f} µs")
    with get_context("spawn").Pool(args.clients) as pool:
        started = time.monotonic()
        counts = pool.starmap(client, [(args.dsn, args.redis_url, prefix, card_ids, args.seconds, w)
                                       for w in range(args.clients)])
        elapsed = time.monotonic() - started
    print(f"recharges: {sum(counts) / elapsed:.0f}/s with {args.clients} client processes "
          f"({sum(counts)} in {elapsed:.1f} s)")
    tps = pgbench_tps(args.dsn, args.clients, int(args.seconds))
    print(f"pgbench TPC-B-like: {tps:.0f} tps with {args.clients} clients" if tps else
          "pgbench not found")
    cache.flush()


if __name__ == "__main__":
    main()
