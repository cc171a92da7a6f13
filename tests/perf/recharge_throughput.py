"""Recharge throughput with N concurrent clients next to pgbench's TPC-B-like number on the
same server (the README budget), plus in-process p50 of `recharge` and `balance`.

    python tests/perf/recharge_throughput.py --dsn postgresql://postgres@127.0.0.1:5432/bench \
        --redis-url redis://127.0.0.1:6379/0 [--clients 8] [--jobs 2] [--seconds 15]

The clients run as pgbench's do: `--jobs` processes (pgbench -j: the pgbench runs below use the
same) of clients/jobs client threads each, every client with its own connections and the
real recharge path.

It writes real recharges (1,000 pesos each, fresh keys) to scratch cards it creates (and
pgbench's to active cards) in the target database: point it at a benchmark copy, never at
production. Also runs pgbench with recharge_card itself, to separate server from client cost.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid

from psycopg import conninfo

from recharge_cli import cards, db
from recharge_cli.bench import load, runner
from recharge_cli.cache import Cache

# The stored function alone under pgbench: the server side of a recharge, without Python.
RECHARGE_SCRIPT = """\\set card random(1, {top})
SELECT * FROM public.recharge_card((SELECT card_id FROM public.cards WHERE status = 'active'
    AND balance < 400000 AND card_id >= :card ORDER BY card_id LIMIT 1), 1000, NULL,
    'pgbench-' || :client_id || '-' || md5(random()::text));
"""
# A boarding tap (a trunk station, no route) the same way.
TAP_SCRIPT = """\\set card random(1, {top})
SELECT * FROM public.record_trip(coalesce((SELECT card_id FROM public.cards WHERE status = 'active'
    AND balance > 20000 AND card_id >= :card ORDER BY card_id LIMIT 1), (SELECT card_id
    FROM public.cards WHERE status = 'active' AND balance > 20000 ORDER BY card_id LIMIT 1)),
    1 + :card % 149, NULL, NULL, 'pgbench-t-' || :client_id || '-' || md5(random()::text));
"""
# Budgets: the stored functions under pgbench against TPC-B's tps, and the Python path.
SERVER_BUDGETS = {"recharge_card": 1.3, "record_trip": 1.0}


def pgbench_tps(dsn: str, clients: int, jobs: int, seconds: int,
                script: str | None = None) -> float | None:
    """TPC-B-like tps on a scratch database, or with `script` on the target database."""
    if shutil.which("pgbench") is None:
        return None
    params = conninfo.conninfo_to_dict(dsn)
    args = []
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user")):
        if params.get(key):
            args += [flag, str(params[key])]
    if script:
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as fh:
            fh.write(script)
            fh.flush()
            out = subprocess.run(["pgbench", "-n", "-c", str(clients), "-j", str(jobs), "-T", str(seconds),
                                  "-f", fh.name, *args, str(params.get("dbname"))], check=True,
                                 capture_output=True, text=True).stdout
        return float(re.search(r"tps = ([\d.]+)", out).group(1))
    name = f"pgbench_{uuid.uuid4().hex[:8]}"
    admin = db.connect(dsn)
    admin.execute(f"CREATE DATABASE {name}")
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", str(clients), *args, name], check=True,
                       capture_output=True)
        out = subprocess.run(["pgbench", "-c", str(clients), "-j", str(jobs), "-T", str(seconds),
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
    parser.add_argument("--jobs", type=int, default=2, help="processes the clients run in")
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    if args.clients % args.jobs:
        parser.error("--clients must be a multiple of --jobs")
    prefix = f"recharge:perf:{uuid.uuid4().hex[:6]}:"
    conn = db.connect(args.dsn)
    cache = Cache.from_url(args.redis_url, prefix)
    try:
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
        scratch = runner.ScratchCards.create(conn, load.scratch_cards_needed(
            args.clients, args.seconds, []) * runner.WRITES_PER_CARD)
        base = load.Endpoint(args.dsn, args.redis_url, prefix)
        with load.pool(args.jobs) as pool:
            load.warm(pool, args.jobs)
            recording = load.run(load.jobs(base, runner.WRITE_TARGET, runner.WRITE_KIND,
                                           scratch.card_ids, args.jobs, args.seconds, None, 1,
                                           clients=args.clients // args.jobs), pool)
        per_second = recording.operations / args.seconds
        check = scratch.check(conn, recording.operations)
        print(f"recharges: {per_second:.0f}/s with {args.clients} clients in {args.jobs} "
              f"processes (p50 "
              f"{recording.latency.get_value_at_percentile(50) / 1000:.0f} µs, p99 "
              f"{recording.latency.get_value_at_percentile(99) / 1000:.0f} µs; write check "
              f"{'ok' if check.ok else 'FAILED'})")
        top = conn.execute("SELECT max(card_id) AS top FROM public.cards WHERE status = 'active' "
                           "AND balance < 400000").fetchone()["top"]
        own = {name: pgbench_tps(args.dsn, args.clients, args.jobs, int(args.seconds),
                                 script.format(top=top))
               for name, script in (("recharge_card", RECHARGE_SCRIPT),
                                    ("record_trip", TAP_SCRIPT))}
        tps = pgbench_tps(args.dsn, args.clients, args.jobs, int(args.seconds))
        if tps and all(own.values()):
            print(f"pgbench TPC-B-like: {tps:.0f} tps with {args.clients} clients")
            for name, value in own.items():
                ratio = value / tps
                print(f"pgbench running {name} itself: {value:.0f} tps, {ratio:.2f} × TPC-B "
                      f"(budget ≥ {SERVER_BUDGETS[name]} ×: "
                      f"{'pass' if ratio >= SERVER_BUDGETS[name] else 'FAIL'})")
            print(f"recharges through the Python path: {per_second / tps:.2f} × TPC-B (budget "
                  f"≥ 1.0 ×: {'pass' if per_second >= tps else 'FAIL'})")
        else:
            print("pgbench not found")
    finally:  # the cache keys of this run, even when it fails
        cache.flush(everything=True)  # its prefix is its own: versions and markers too


if __name__ == "__main__":
    main()
