"""Card operations: each is one stored-function call, then the cache after COMMIT."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from recharge_cli import db
from recharge_cli.cache import BALANCE_TTL, TRIPS_TTL, Cache
from recharge_cli.errors import InvalidInput, NotFound, Rejected
from recharge_cli.inputs import MAX_BIGINT, MAX_INTEGER, Announce, check_id, idempotency_key
from recharge_cli.inputs import whole_number as whole_number  # bulk reads CSV numbers here
from recharge_cli.jsonable import Row


class CardsNotFound(NotFound):
    """Some of the cards asked for do not exist; `found` has the others' rows, in order."""

    def __init__(self, absent: list[int], found: list[Row]) -> None:
        names = ", ".join(map(str, absent))
        super().__init__(f"card {names} not found" if len(absent) == 1 else
                         f"cards {names} not found")
        self.found = found


def balance_payload(row: Row) -> Row:
    """What `balance` shows for a card right after a movement (written through the cache)."""
    return {"card_id": row["card_id"], "balance": row["balance"], "status": "active",
            "version": row["version"], "last_movement_at": _at(row)}


def check_recharge(card_id: int, amount: int, point_id: int | None) -> None:
    """The checks a recharge passes before it is sent (exit 2, or 4 above any limit)."""
    check_id(card_id, "card id")
    if amount <= 0:
        raise InvalidInput(f"amount must be a positive whole number of pesos, got {amount}")
    if amount > MAX_BIGINT:
        raise Rejected(f"amount {amount} is outside the recharge limits")
    if point_id is not None:
        check_id(point_id, "point id", MAX_INTEGER)


def _at(row: Row) -> Any:
    return row.get("recharged_at") or row.get("boarding_time")


def recharge(conn: psycopg.Connection[Row], cache: Cache, card_id: int, amount: int,
             point_id: int | None = None, key: str | None = None,
             announce: Announce | None = None) -> Row:
    check_recharge(card_id, amount, point_id)
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.recharge_card", (card_id, amount, point_id, key), key)
    if not row["replayed"]:
        cache.card_written(card_id, row["version"], balance_payload(row), trips_changed=False)
    return {"card_id": row["card_id"], "amount": row["amount"], "balance": row["balance"],
            "recharge_id": row["recharge_id"], "recharged_at": row["recharged_at"],
            "idempotency_key": key, "replayed": row["replayed"]}


def record_trip(conn: psycopg.Connection[Row], cache: Cache, card_id: int, station_id: int,
                route_id: int | None = None, at: dt.datetime | str | None = None,
                key: str | None = None, announce: Announce | None = None) -> Row:
    check_id(card_id, "card id")
    check_id(station_id, "station id", MAX_INTEGER)
    if route_id is not None:
        check_id(route_id, "route id", MAX_INTEGER)
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.record_trip", (card_id, station_id, route_id, at, key), key)
    if not row["replayed"]:  # (the card charged: a replaced card's replacement)
        cache.card_written(row["card_id"], row["version"], balance_payload(row),
                           trips_changed=True)
    result = {k: v for k, v in row.items() if k != "version"}
    result["idempotency_key"] = key
    return result


def balances(conn: psycopg.Connection[Row], cache: Cache, card_ids: list[int]) -> list[Row]:
    """Balances in the order asked, from the cache where present (cache-aside)."""
    for card_id in card_ids:
        check_id(card_id, "card id")
    unique = list(dict.fromkeys(card_ids))
    cached, tickets = cache.card_lookup(unique, "balance")
    found = {c: {**hit, "source": "cache"} for c, hit in cached.items()}
    missing = [c for c in unique if c not in found]
    if missing:
        rows = (db.call(conn, "public.card_balances", (missing,)) if len(missing) > 1
                else db.call(conn, "public.card_balance", (missing[0],)))
        cache.card_fill(((r["card_id"], "balance", r["version"], r) for r in rows), tickets,
                        BALANCE_TTL)
        found.update({r["card_id"]: {**r, "source": "db"} for r in rows})
    absent = [c for c in unique if c not in found]
    if absent:
        raise CardsNotFound(absent, [found[c] for c in card_ids if c in found])
    return [found[c] for c in card_ids]


def trips(conn: psycopg.Connection[Row], cache: Cache, card_id: int, limit: int = 20) -> Row:
    """A card's latest legs. The first page is cache-aside, versioned with the card."""
    check_id(card_id, "card id")
    check_id(limit, "limit", 10_000)
    cached, tickets = cache.card_lookup([card_id], "trips")
    hit = cached.get(card_id)
    if hit is not None and (hit["complete"] or len(hit["trips"]) >= limit):
        return {"trips": hit["trips"][:limit], "source": "cache"}
    version_row = db.call_one(conn, "public.card_balance", (card_id,))
    if version_row is None:
        raise NotFound(f"card {card_id} not found")
    rows = db.call(conn, "public.card_trips", (card_id, limit))
    # A short list holds all of the card's trips and answers any limit.
    payload = {"trips": rows, "complete": len(rows) < limit}
    cache.card_fill([(card_id, "trips", version_row["version"], payload)], tickets, TRIPS_TTL)
    return {"trips": rows, "source": "db"}


def recharges(conn: psycopg.Connection[Row], card_id: int, limit: int = 20) -> list[Row]:
    check_id(card_id, "card id")
    check_id(limit, "limit", 10_000)
    return db.call(conn, "public.card_recharges", (card_id, limit))
