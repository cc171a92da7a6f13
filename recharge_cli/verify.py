"""`recharge verify`: the ledger invariants, checked by sql/functions/30_verify.sql."""

from __future__ import annotations

from typing import Any

import psycopg

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
}


def violations(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return db.call(conn, "public.verify_ledger")


def record(conn: psycopg.Connection[Any], found: list[dict[str, Any]]) -> None:
    """Keep this run's outcome for `recharge health`."""
    from psycopg.types.json import Jsonb

    db.call(conn, "public.job_record", ("verify", not found, Jsonb({"violations": len(found)})))


def summary(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per invariant: holds or how many violations."""
    counts: dict[int, int] = {}
    for row in found:
        counts[row["invariant"]] = counts.get(row["invariant"], 0) + 1
    return [{"invariant": n, "description": text, "holds": n not in counts,
             "violations": counts.get(n, 0)} for n, text in INVARIANTS.items()]
