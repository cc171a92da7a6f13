"""Bulk top-ups against their anchor: `recharge recharge --from-csv` with ROWS rows on
distinct cards, in rows/s, divided by pgbench's TPC-B-like tps with 8 clients on the same
server, both measured in this run (budget: ratio ≥ 5).

    python tests/perf/bulk_throughput.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        --redis-url redis://127.0.0.1:6379/0 [--rows 20000] [--runs 3]

It creates (and drops) two databases of its own on that server (named `--db-prefix`…,
default `recharge_perf_`), and a key prefix (`--key-prefix`, default `recharge:perf:`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import conninfo

from recharge_cli import db, migrations
from recharge_cli.cache import Cache

PGBENCH = Path("/usr/lib/postgresql/15/bin/pgbench")


def pgbench_tps(dsn: str) -> float:
    parts = conninfo.conninfo_to_dict(dsn)
    args = [str(PGBENCH), "-h", parts.get("host", "127.0.0.1"), "-p", str(parts.get("port", 5432)),
            "-U", parts.get("user", "postgres"), parts["dbname"]]
    subprocess.run([*args[:-1], "-i", "-q", "-s", "8", args[-1]], check=True, capture_output=True)
    out = subprocess.run([*args[:-1], "-c", "8", "-j", "2", "-T", "10", args[-1]], check=True,
                         capture_output=True, text=True).stdout
    return float(re.search(r"tps = ([0-9.]+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True, help="a database to create the others from")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db-prefix", default="recharge_perf_",
                        help="prefix of the two databases it creates")
    parser.add_argument("--key-prefix", default="recharge:perf:", help="prefix of its Redis keys")
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    names = {"bulk": f"{args.db_prefix}bulk_{suffix}", "pgbench": f"{args.db_prefix}pgb_{suffix}"}
    prefix = f"{args.key_prefix}{suffix}:"
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        for name in names.values():
            admin.execute(f"CREATE DATABASE {name}")
    try:
        dsn = {k: conninfo.make_conninfo(args.dsn, dbname=v) for k, v in names.items()}
        with db.connect(dsn["bulk"]) as conn:
            migrations.migrate(conn)
            conn.execute("INSERT INTO cards (card_id) SELECT generate_series(1, %s)",
                         (args.rows * args.runs,))
        tps = pgbench_tps(dsn["pgbench"])
        env = {**os.environ, "RECHARGE_DSN": dsn["bulk"], "RECHARGE_REDIS_URL": args.redis_url,
               "RECHARGE_CACHE_PREFIX": prefix}
        script = str(Path(sys.executable).parent / "recharge")
        with tempfile.TemporaryDirectory() as folder:
            for run in range(args.runs):
                path = Path(folder) / f"topups-{run}.csv"
                first = run * args.rows + 1
                path.write_text("".join(f"{card},5000\n" for card in range(first, first + args.rows)))
                started = time.perf_counter()
                subprocess.run([script, "recharge", "--from-csv", str(path)], env=env, check=True,
                               stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
                seconds = time.perf_counter() - started
                rate = args.rows / seconds
                print(f"run {run + 1}: {args.rows:,} rows in {seconds:.2f} s = {rate:,.0f} rows/s; "
                      f"pgbench TPC-B 8 clients {tps:,.0f} tps; ratio {rate / tps:.2f} "
                      f"(budget ≥ 5): {'pass' if rate / tps >= 5 else 'FAIL'}")
    finally:
        Cache.from_url(args.redis_url, prefix).flush(everything=True)
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            for name in names.values():
                admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
