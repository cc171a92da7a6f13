"""The demo load against its anchor: `recharge db seed --scale S` (rows = recharges + trip
legs, over the whole command: rollups and statistics included) in rows/s, divided by the
rows/s of `pgbench -i -s 10` (100,000 pgbench_accounts rows per scale unit) on the same
server, both measured in each run (budget: ratio ≥ 0.1).

    python tests/perf/seed_throughput.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        [--scale 1] [--runs 3]

It creates (and drops) databases of its own on that server.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import conninfo

from recharge_cli import db, migrations

PGBENCH = Path("/usr/lib/postgresql/15/bin/pgbench")
PGBENCH_SCALE = 10


def pgbench_init_rate(dsn: str) -> float:
    """Rows/s of `pgbench -i` (its generation, vacuum and primary keys)."""
    parts = conninfo.conninfo_to_dict(dsn)
    started = time.perf_counter()
    subprocess.run([str(PGBENCH), "-h", parts.get("host", "127.0.0.1"),
                    "-p", str(parts.get("port", 5432)), "-U", parts.get("user", "postgres"),
                    "-i", "-q", "-s", str(PGBENCH_SCALE), parts["dbname"]],
                   check=True, capture_output=True)
    return PGBENCH_SCALE * 100_000 / (time.perf_counter() - started)


def seed_rate(dsn: str, scale: float) -> tuple[int, float]:
    """Rows (recharges + legs) and rows/s of `recharge db seed` as a whole process."""
    with db.connect(dsn) as conn:
        migrations.migrate(conn)
    script = str(Path(sys.executable).parent / "recharge")
    started = time.perf_counter()
    out = subprocess.run([script, "--format", "json", "db", "seed", "--scale", str(scale)],
                         env={**os.environ, "RECHARGE_DSN": dsn}, check=True, capture_output=True,
                         stdin=subprocess.DEVNULL, text=True).stdout
    seconds = time.perf_counter() - started
    result = json.loads(out)
    rows = int(result["recharges"]) + int(result["trips"])
    return rows, rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True, help="a database to create the others from")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prefix", default="recharge_perf_",
                        help="prefix of the databases it creates (and drops)")
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        for run in range(args.runs):
            names = [f"{args.prefix}seed_{suffix}_{run}", f"{args.prefix}pgbi_{suffix}_{run}"]
            try:
                for name in names:
                    admin.execute(f"CREATE DATABASE {name}")
                seed_dsn, pgbench_dsn = (conninfo.make_conninfo(args.dsn, dbname=n) for n in names)
                pgbench = pgbench_init_rate(pgbench_dsn)
                rows, rate = seed_rate(seed_dsn, args.scale)
                print(f"run {run + 1}: pgbench -i -s {PGBENCH_SCALE} {pgbench:,.0f} rows/s; "
                      f"db seed --scale {args.scale:g} {rows:,} rows at {rate:,.0f} rows/s; "
                      f"ratio {rate / pgbench:.3f} (budget ≥ 0.1): "
                      f"{'pass' if rate / pgbench >= 0.1 else 'FAIL'}", flush=True)
            finally:
                for name in names:
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
