"""Code run in separate processes by the concurrency tests."""

from __future__ import annotations

import random
from typing import Any

from recharge_cli import cards, db
from recharge_cli.cache import Cache
from recharge_cli.errors import RechargeError, from_database


def hammer(dsn: str, redis_url: str, prefix: str, card_ids: list[int], worker: int,
           operations: int, shared: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """Mixed recharges and trips on hot cards; ~20% reuse a key from the shared pool."""
    import psycopg

    rng = random.Random(worker)
    conn = db.connect(dsn)
    cache = Cache.from_url(redis_url, prefix)
    outcomes = []
    for n in range(operations):
        if rng.random() < 0.2:
            key, card_id, amount = rng.choice(shared)
            kind = "recharge"
        else:
            card_id = rng.choice(card_ids)
            key = f"w{worker}-{n}"
            kind = rng.choice(["recharge", "trip"])
            amount = rng.randrange(1000, 20001, 1000)
        try:
            if kind == "recharge":
                result = cards.recharge(conn, cache, card_id, amount, key=key)
                delta = result["amount"]
            else:
                result = cards.record_trip(conn, cache, card_id, station_id=rng.randint(1, 7700),
                                           key=key)
                delta = -result["fare_charged"]
            outcomes.append({"card_id": card_id, "key": key, "delta": delta, "ok": True,
                             "replayed": result["replayed"]})
        except (RechargeError, psycopg.Error) as exc:
            error = exc if isinstance(exc, RechargeError) else from_database(exc)
            outcomes.append({"card_id": card_id, "key": key, "ok": False,
                             "status": int(error.status) if error else 1, "error": str(exc)})
    conn.close()
    cache.close()
    return outcomes


def read_statistic(dsn: str, redis_url: str, prefix: str, start_at: float) -> str:
    """Wait for a common start time, then read one statistic; returns its source."""
    import time

    from recharge_cli import stats

    conn = db.connect(dsn)
    cache = Cache.from_url(redis_url, prefix)
    time.sleep(max(0.0, start_at - time.time()))
    result = stats.get(conn, cache, "trips", {"from": None, "to": None, "by": "locality"})
    conn.close()
    cache.close()
    return result["source"]
