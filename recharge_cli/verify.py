"""`recharge verify`: the ledger invariants, checked by sql/functions/30_verify.sql."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from recharge_cli import db

INVARIANTS = {
    1: "balance = sum of ledger entries",
    2: "each entry's balance chains to the card's previous entry (one row per movement)",
    3: "balances within [-credit allowance, maximum balance]",
    4: "one operation per idempotency key",
    5: "totals agree (balances = recharged - fares - reversed)",
    6: "counts and rollups = recomputation from base tables",
    7: "a reversal reverses one recharge, whole and at most once",
    8: "replacement entries sum to zero; a replaced card holds 0",
    9: "every status change has its audit row",
    10: "time coherence: owners register before their cards are issued, cards are issued before "
        "their movements, nothing lies in the future",
    11: "benefit trips: granted = used + lapsed + left, per card and month",
}


# How long a run waits for older transactions to end before it checks what they wrote.
HORIZON_WAIT_SECONDS = 10.0


@dataclass
class Run:
    """One verify run: its violations and what it covered."""

    violations: list[dict[str, Any]]
    full: bool
    since_entry: int  # entries after this one were checked (0: all)
    checkpoint: int | None  # where the checkpoint moved to (None: it did not move)


def violations(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every invariant over everything (verify --full's checks, without the checkpoint)."""
    return db.call(conn, "public.verify_ledger")


def run(conn: psycopg.Connection[Any], full: bool = False,
        connect: Callable[[], psycopg.Connection[Any]] | None = None) -> Run:
    """Check what changed since the last clean run (everything with `full`, or when there
    was none), in one consistent snapshot; a clean run moves the checkpoint to the horizon
    up to which every entry is final. With `connect`, the touched days' rollups are checked
    on a second connection in the same snapshot, side by side with the rest."""
    horizon = db.call_one(conn, "public.verify_horizon", (HORIZON_WAIT_SECONDS,))
    last = db.call_one(conn, "public.verify_checkpoint")
    full = full or last is None
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if full:
            found = db.call(conn, "public.verify_ledger")
        else:
            assert last is not None
            since = (last["entry_id"], last["cards_up_to"])
            if connect is None:
                found = db.call(conn, "public.verify_changes", since)
            else:
                snapshot = conn.execute("SELECT pg_export_snapshot() AS id").fetchone()
                assert snapshot is not None
                with ThreadPoolExecutor(1, "recharge-verify") as pool:
                    rollups = pool.submit(_touched_rollups, connect, snapshot["id"], since[0])
                    found = db.call(conn, "public.verify_changes", (*since, False))
                    found += rollups.result()
        high = horizon and horizon["verify_horizon"]
        moved = None
        if not found and high is not None:
            db.call(conn, "public.verify_checkpoint_set", (high, full))
            moved = high
    return Run(found, full, 0 if full else int(last["entry_id"]), moved)


def _touched_rollups(connect: Callable[[], psycopg.Connection[Any]], snapshot: str,
                     entry: int) -> list[dict[str, Any]]:
    with connect() as conn, conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        return db.call(conn, "public.verify_touched_rollups", (entry,))


def record(conn: psycopg.Connection[Any], found: list[dict[str, Any]],
           details: dict[str, Any] | None = None) -> None:
    """Keep this run's outcome for `recharge health`."""
    from psycopg.types.json import Jsonb

    db.call(conn, "public.job_record", ("verify", not found,
                                        Jsonb({"violations": len(found), **(details or {})})))


def summary(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per invariant: holds or how many violations."""
    counts: dict[int, int] = {}
    for row in found:
        counts[row["invariant"]] = counts.get(row["invariant"], 0) + 1
    return [{"invariant": n, "description": text, "holds": n not in counts,
             "violations": counts.get(n, 0)} for n, text in INVARIANTS.items()]
