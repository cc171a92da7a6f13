"""What a movement costs in WAL and in stored bytes, against a pgbench TPC-B transaction on
the same server (budgets: WAL per recharge ≤ 1.2 × TPC-B's,
per tap ≤ 1.6 ×; stored bytes per movement with its key ≤ 400). The counts are
deterministic: WAL record bytes by
`pg_waldump --stats` (full-page images excluded), stored bytes by the database's growth
over bulk rows after VACUUM.

    python tests/perf/wal_per_movement.py [--operations 2000] [--rows 20000]

It runs on private embedded servers in a temporary home (no other session writes WAL
there), removed afterwards. Exit 1 when a budget fails.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from recharge_cli import db, local, migrations

BUDGETS = {"recharge": 1.2, "tap": 1.6}
MAX_STORED_BYTES = 400
_TOTAL = re.compile(r"^Total\s+(\d+)\s+(\d+)\s", re.M)


def wal_record_bytes(bin_dir: Path, wal_dir: Path, start: str, end: str) -> tuple[int, int]:
    """(records, record bytes without full-page images) between two LSNs."""
    out = subprocess.run([str(bin_dir / "pg_waldump"), "--stats", "-p", str(wal_dir), "-s", start,
                          "-e", end], check=True, capture_output=True, text=True).stdout
    found = _TOTAL.search(out)
    assert found, out
    return int(found.group(1)), int(found.group(2))


def measured(conn: psycopg.Connection[Any], bin_dir: Path, wal_dir: Path,
             action: Callable[[], None]) -> tuple[int, int]:
    start = conn.execute("SELECT pg_current_wal_insert_lsn()::text AS l").fetchone()["l"]
    action()
    end = conn.execute("SELECT pg_current_wal_insert_lsn()::text AS l").fetchone()["l"]
    conn.execute("SELECT pg_switch_wal()")  # the range's last segment complete on disk
    return wal_record_bytes(bin_dir, wal_dir, start, end)


def prepared_database(admin: psycopg.Connection[Any], dsn: str, cards: int) -> psycopg.Connection[Any]:
    name = f"wal_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")
    conn = db.connect(conninfo.make_conninfo(dsn, dbname=name))
    migrations.migrate(conn)
    conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
    conn.execute("INSERT INTO stations VALUES (1, 'Portal', 'PORTAL', 99)")
    conn.execute("INSERT INTO cards (card_id) SELECT generate_series(1, %s)", (cards,))
    conn.execute("VACUUM ANALYZE")
    return conn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=2000, help="recharges, taps and "
                        "TPC-B transactions measured")
    parser.add_argument("--rows", type=int, default=20_000, help="bulk rows for stored bytes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="recharge-wal-") as folder:
        home = Path(folder)
        state = local.start(home)
        lay = local.layout(home)
        bin_dir, wal_dir = local.installed_pg_bin(), lay.pg_data / "pg_wal"
        dsn = local.dsn_for(lay, state)
        try:
            with psycopg.connect(conninfo.make_conninfo(dsn, dbname="postgres"),
                                 autocommit=True) as admin:
                admin.execute("ALTER SYSTEM SET autovacuum = off")  # no WAL but ours
                admin.execute("SELECT pg_reload_conf()")
                return run(admin, dsn, bin_dir, wal_dir, args.operations, args.rows)
        finally:
            local.purge(home)


def run(admin: psycopg.Connection[Any], dsn: str, bin_dir: Path, wal_dir: Path, n: int,
        rows: int) -> int:
    conn = prepared_database(admin, dsn, max(n, rows))
    per_op: dict[str, tuple[float, float]] = {}

    def recharges() -> None:
        for card in range(1, n + 1):
            db.call(conn, "public.recharge_card", (card, 10_000, None, f"wal-r-{card}"))

    def taps() -> None:  # one leg per card: no transfer, the general fare
        for card in range(1, n + 1):
            db.call(conn, "public.record_trip", (card, 1, None, None, f"wal-t-{card}"))

    for name, action in (("recharge", recharges), ("tap", taps)):
        records, size = measured(conn, bin_dir, wal_dir, action)
        per_op[name] = (records / n, size / n)

    bench_db = f"pgbench_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {bench_db}")
    params = conninfo.conninfo_to_dict(dsn)
    target = ["-h", str(params["host"]), "-p", str(params["port"]), "-U", str(params["user"]),
              bench_db]
    subprocess.run([str(bin_dir / "pgbench"), "-i", "-q", "-s", "1", *target], check=True,
                   capture_output=True)
    with db.connect(conninfo.make_conninfo(dsn, dbname=bench_db)) as bench:
        bench.execute("VACUUM ANALYZE")
        records, size = measured(bench, bin_dir, wal_dir, lambda: subprocess.run(
            [str(bin_dir / "pgbench"), "-n", "-c", "1", "-t", str(n), *target], check=True,
            capture_output=True))
    tpcb = (records / n, size / n)
    failed = False
    print(f"pgbench TPC-B transaction: {tpcb[1]:.0f} WAL record bytes in {tpcb[0]:.1f} records")
    for name, (count, size) in per_op.items():
        ratio = size / tpcb[1]
        ok = ratio <= BUDGETS[name]
        failed |= not ok
        print(f"{name}: {size:.0f} WAL record bytes in {count:.1f} records, {ratio:.2f} × TPC-B "
              f"(budget ≤ {BUDGETS[name]} ×: {'pass' if ok else 'FAIL'})")

    def bulk_recharges() -> None:
        for start in range(1, rows + 1, 5000):
            cards = list(range(start, min(start + 5000, rows + 1)))
            conn.execute("SELECT count(*) FROM public.recharge_bulk(NULL, %s, %s, %s, %s)",
                         (list(range(len(cards))), cards, [20_000] * len(cards),
                          [f"wal-b-{card}" for card in cards]))

    def bulk_taps() -> None:  # (one call per tap: each a leg on its own card)
        for card in range(1, rows + 1):
            conn.execute("SELECT count(*) FROM public.record_trip(%s, 1, NULL, NULL, %s)",
                         (card, f"wal-bt-{card}"))

    for name, action in (("bulk recharge", bulk_recharges), ("tap", bulk_taps)):
        stored = stored_bytes(conn, rows, action)
        ok = stored <= MAX_STORED_BYTES
        failed |= not ok
        print(f"stored per {name} with its key: {stored:.0f} bytes (budget ≤ "
              f"{MAX_STORED_BYTES}: {'pass' if ok else 'FAIL'})")
    return 1 if failed else 0


def stored_bytes(conn: psycopg.Connection[Any], rows: int, action: Callable[[], None]) -> float:
    """Database growth per row over `rows` movements on distinct cards, after VACUUM."""
    size = "SELECT pg_database_size(current_database()) AS b"
    conn.execute("VACUUM")
    before = conn.execute(size).fetchone()["b"]
    action()
    conn.execute("VACUUM")
    return (conn.execute(size).fetchone()["b"] - before) / rows


if __name__ == "__main__":
    sys.exit(main())
