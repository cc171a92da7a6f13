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

CARDS_PER_BATCH = 1_000  # ~10,000 legs: a step of the progress bar
MAX_SCALE = 400
# jit: compiling the plans of the load, of its key checks and of the rollups takes longer
# than running them
LOAD_SETTINGS = {"work_mem": "64MB", "maintenance_work_mem": "256MB", "jit": "off"}


# the tables a load fills (the statistics are gathered inside the load's transaction)
LOADED_TABLES = ("stations", "routes", "recharge_points", "users", "cards", "ledger",
                 "card_status_changes", "audit_log")


def finish(conn: psycopg.Connection[Any], output: Output | None = None, *,
           analyzed: bool = False) -> dict[str, Any]:
    """What follows a load (idempotent): planner statistics and visibility maps, rollups.

    `analyzed`: the load gathered the statistics already; only the visibility maps of
    the tables it filled remain (VACUUM cannot run inside its transaction).
    """
    label = "Visibility maps and rollups" if analyzed else "Statistics and rollups"
    with (output or Output()).progress(label, total=2) as bar:
        if analyzed:
            conn.execute("VACUUM " + ", ".join(f"public.{name}" for name in LOADED_TABLES))
        else:
            conn.execute("VACUUM ANALYZE")
        bar.advance()
        for name, value in LOAD_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        try:
            rollups = stats.build_rollups(conn)
        finally:
            for name in LOAD_SETTINGS:
                conn.execute(f"RESET {name}")
        bar.advance()
    return rollups


def is_empty(conn: psycopg.Connection[Any]) -> bool:
    return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM public.cards) AS empty").fetchone()["empty"]


def load(conn: psycopg.Connection[Any], *, scale: float = 1.0, seed: int = 42,
         end: dt.date | None = None, output: Output | None = None,
         replace: bool = False) -> dict[str, Any]:
    """Load ~24,000×scale cards with recharges and trips over the 90 days before `end`
    (its midnight in the database's time zone; default today, never later).

    All rows load in ONE transaction (with `replace`, after emptying the data tables in
    that same transaction): an interrupted or failed load leaves the database exactly as
    it was, never half loaded. The movement tables' indexes and every foreign key are
    dropped for the load and restored (built and checked over whole tables) before it
    commits, with the planner statistics gathered in between. Visibility maps and rollups
    follow (`finish`); they are derived and can be rebuilt at any time.
    """
    if not (0 < scale <= MAX_SCALE) or math.isnan(scale):
        raise InvalidInput(f"--scale must be greater than 0 and at most {MAX_SCALE}")
    today = conn.execute("SELECT current_date AS today").fetchone()["today"]
    end = end or today
    if end > today:
        raise InvalidInput(f"--end {end} is after today ({today} in the database's time zone): "
                           "the demo data would lie in the future")
    output = output or Output()
    started = time.perf_counter()
    conn.execute("SET synchronous_commit = off")
    with conn.transaction():
        for name, value in LOAD_SETTINGS.items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        if replace:
            db.call(conn, "public.seed_clear")
        elif not is_empty(conn):
            raise Rejected("the database already holds data: `recharge db seed --replace --yes` "
                           "replaces it (or seed an empty database)")
        db.call(conn, "public.cache_data_replaced")  # cached copies of what was here are stale
        catalog = db.call_one(conn, "public.seed_catalog", (Decimal(str(scale)), seed, end))
        assert catalog is not None
        users, cards = int(catalog["users"]), int(catalog["cards"])
        restore = [row["statement"] for row in db.call(conn, "public.seed_suspend_keys")]
        recharges = legs = 0
        with output.progress("Seeding cards", total=cards) as bar:
            for lo in range(1, cards + 1, CARDS_PER_BATCH):
                hi = min(lo + CARDS_PER_BATCH - 1, cards)
                row = db.call_one(conn, "public.seed_activity", (lo, hi, users, seed, end))
                assert row is not None
                recharges += int(row["recharges"])
                legs += int(row["legs"])
                bar.advance(hi - lo + 1)
        with output.progress("Indexes, statistics and keys", total=len(restore)) as bar:
            for statement in restore:
                conn.execute(statement)
                bar.advance()
    conn.execute("RESET synchronous_commit")
    rollups = finish(conn, output, analyzed=True)
    seconds = time.perf_counter() - started
    return {"scale": scale, "seed": seed, "end": end, "users": users,
            "cards": cards, "recharges": recharges, "trips": legs,
            "seconds": round(seconds, 2), "rows_per_second": round((recharges + legs) / seconds),
            "rollup_days": rollups["days_built"]}
