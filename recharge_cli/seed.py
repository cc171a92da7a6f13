"""The demo data set, generated server-side by the functions in sql/functions/20_seed.sql."""

from __future__ import annotations

import datetime as dt
import math
import time
from decimal import Decimal
from typing import Any

import psycopg

from recharge_cli import db, stats
from recharge_cli.errors import InvalidInput, Rejected
from recharge_cli.render import Output

CARDS_PER_BATCH = 12_000
MAX_SCALE = 400


def finish(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """What follows a load (idempotent): planner statistics and visibility maps, rollups."""
    conn.execute("VACUUM ANALYZE")
    return stats.build_rollups(conn)


def is_empty(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM public.cards) AS empty").fetchone()["empty"]


def seed(conn: psycopg.Connection[Any], *, scale: float = 1.0, seed: int = 42,
         end: dt.date | None = None, output: Output | None = None,
         replace: bool = False) -> dict[str, Any]:
    """Load ~24,000×scale cards with three years of recharges and a week of trips.

    All rows load in ONE transaction (with `replace`, after emptying the data tables in
    that same transaction): an interrupted or failed load leaves the database exactly as
    it was, never half loaded. Statistics and rollups follow (`finish`); they are derived
    and can be rebuilt at any time.
    """
    if not (0 < scale <= MAX_SCALE) or math.isnan(scale):
        raise InvalidInput(f"--scale must be greater than 0 and at most {MAX_SCALE}")
    end = end or dt.date.today()
    output = output or Output()
    started = time.perf_counter()
    conn.execute("SET synchronous_commit = off")
    with conn.transaction():
        if replace:
            db.call(conn, "public.seed_clear")
        elif not is_empty(conn):
            raise Rejected("the database already holds data: `recharge db seed --replace --yes` "
                           "replaces it (or seed an empty database)")
        catalog = db.call_one(conn, "public.seed_catalog", (Decimal(str(scale)), seed, end))
        assert catalog is not None
        cards = int(catalog["cards"])
        recharges = legs = 0
        batches = [(lo, min(lo + CARDS_PER_BATCH - 1, cards))
                   for lo in range(1, cards + 1, CARDS_PER_BATCH)]
        with output.progress("Seeding cards", total=cards) as bar:
            for lo, hi in batches:
                row = db.call_one(conn, "public.seed_activity", (lo, hi, seed, end))
                assert row is not None
                recharges += int(row["recharges"])
                legs += int(row["legs"])
                bar.advance(hi - lo + 1)
    conn.execute("RESET synchronous_commit")
    rollups = finish(conn)
    seconds = time.perf_counter() - started
    return {"scale": scale, "seed": seed, "end": end, "users": int(catalog["users"]),
            "cards": cards, "recharges": recharges, "trips": legs,
            "seconds": round(seconds, 2), "rows_per_second": round((recharges + legs) / seconds),
            "rollup_days": rollups["days_built"]}
