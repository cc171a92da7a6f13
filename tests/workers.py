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


def chaos_client(dsn: str, redis_url: str, prefix: str, card_ids: list[int], seed: int,
                 worker: int, stop_at: float) -> list[dict[str, Any]]:
    """Random recharges and taps with fresh and repeated keys until `stop_at`, through the
    command's own runtime (connections, cache epoch); each outcome with its exit status."""
    import time

    from recharge_cli.render import Output
    from recharge_cli.runtime import Runtime
    from recharge_cli.settings import resolve

    rng = random.Random(seed * 1000 + worker)
    settings = resolve(dsn=dsn, redis_url=redis_url, env={"RECHARGE_CACHE_PREFIX": prefix})
    used: list[tuple[str, str, int, int]] = []
    outcomes: list[dict[str, Any]] = []
    rt: Runtime | None = None
    n = 0
    while time.time() < stop_at:
        n += 1
        if used and rng.random() < 0.2:
            key, kind, card_id, amount = rng.choice(used)
        else:
            kind = rng.choice(["recharge"] * 8 + ["trip"] * 4 + ["upload"] * 2
                              + ["block", "unblock", "unblock", "reverse", "personalise",
                                 "grant"])
            key, card_id = f"c{seed}-w{worker}-{n}", rng.choice(card_ids)
            amount = rng.randrange(1000, 30001, 1000)
            if kind == "upload":  # the tap's boarding time, a second ago, as a Unix time
                amount = int(time.time()) - 1
            elif kind == "personalise":  # to one of the two users the test registered
                amount = 1 + rng.randrange(2)
            if kind == "reverse":  # one of this worker's recharges that succeeded
                done = [o for o in outcomes if o["kind"] == "recharge" and o["status"] == 0]
                if not done:
                    continue
                chosen = rng.choice(done)
                card_id, amount = chosen["card_id"], chosen["recharge_id"]
            used.append((key, kind, card_id, amount))
        rt = rt or Runtime(settings=settings, output=Output(quiet=True))
        outcome: dict[str, Any] = {"key": key, "kind": kind, "card_id": card_id,
                                   "amount": amount}
        try:
            outcome.update(chaos_operation(rt, kind, card_id, amount, key), status=0)
        except Exception as exc:
            outcome.update(status=exit_status(exc), error=str(exc).splitlines()[0][:200])
            rt.close()
            rt = None
            time.sleep(0.05)
        outcomes.append(outcome)
    if rt is not None:
        rt.close()
    return outcomes


def chaos_operation(rt: Any, kind: str, card_id: int, amount: int, key: str) -> dict[str, Any]:
    """One operation; for a reversal `amount` holds the recharge_id to reverse, for an upload
    the tap's boarding time (a Unix time), for a personalisation the user."""
    import datetime as dt
    import tempfile
    from pathlib import Path

    from recharge_cli import benefits, desk, lifecycle, uploads
    from recharge_cli.render import Output

    if kind == "upload":  # a validator's upload of one tap, with its key
        at = dt.datetime.fromtimestamp(amount, dt.UTC).isoformat()
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{key}.csv"
            path.write_text(f"{card_id},1,,{at},{key}\n")
            summary = uploads.record_file(rt.more_db, rt.cache(), path, None, Output(quiet=True))
        if summary.stopped is not None:
            raise summary.stopped
        if summary.rejected:
            raise RechargeError("the upload's tap was rejected", summary.first_failure)
        row = rt.db().execute("SELECT entry_id FROM ledger WHERE card_id = %s AND "
                              "idempotency_key = %s", (card_id, key)).fetchone()
        return {"trip_id": row["entry_id"], "replayed": summary.replayed == 1}
    if kind == "personalise":
        row = desk.personalise(rt.db(), rt.cache(), card_id, amount, "chaos", key)
        return {"user_id": row["user_id"], "replayed": row["replayed"]}
    if kind == "grant":  # the month's benefit trips (idempotent per user and month)
        month = dt.date.today().replace(day=1)
        summary = benefits.grant(rt.db(), month)
        return {"granted": summary["granted"], "replayed": summary["replayed"] > 0}
    if kind == "recharge":
        row = cards.recharge(rt.db(), rt.cache(), card_id, amount, key=key)
        return {"recharge_id": row["recharge_id"], "replayed": row["replayed"]}
    if kind == "trip":
        row = cards.record_trip(rt.db(), rt.cache(), card_id, station_id=1, key=key)
        return {"trip_id": row["trip_id"], "replayed": row["replayed"]}
    if kind == "reverse":
        row = lifecycle.reverse(rt.db(), rt.cache(), card_id, amount, None, "chaos", key)
        return {"entry_id": row["reversal_id"], "replayed": row["replayed"]}
    row = lifecycle.set_status(rt.db(), rt.cache(), card_id, kind, None, "chaos", key)
    return {"status_now": row["status"], "replayed": row["replayed"]}


def exit_status(exc: BaseException) -> int:
    """The exit status the command would give for `exc` (as the CLI's error handler maps)."""
    import psycopg

    if isinstance(exc, RechargeError):
        return int(exc.status)
    error = from_database(exc) if isinstance(exc, psycopg.Error) else None
    return int(error.status) if error is not None else 1
