"""Looking into the cache: what `recharge cache stats` reports about a prefix and its
server; one card's keys next to PostgreSQL's values (`cache show`) and their safe removal
(`cache evict`)."""

from __future__ import annotations

from typing import Any

import orjson
import psycopg

from recharge_cli import db
from recharge_cli.cache import CARD_KINDS, Cache
from recharge_cli.errors import NotFound
from recharge_cli.inputs import check_id
from recharge_cli.jsonable import to_jsonable

MEMORY_SAMPLE = 2000


def describe(cache: Cache) -> dict[str, Any]:
    """Keys and memory under the prefix (memory sampled past MEMORY_SAMPLE keys), hit ratio."""
    keys = 0
    sampled_bytes = 0
    for key in cache.scan_keys():
        keys += 1
        if keys <= MEMORY_SAMPLE:
            sampled_bytes += cache.client.memory_usage(key) or 0
    memory = sampled_bytes if keys <= MEMORY_SAMPLE else round(sampled_bytes / MEMORY_SAMPLE * keys)
    info = cache.server_info()
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    return {
        "prefix": cache.prefix,
        "keys": keys,
        "memory_bytes": memory,
        "memory_estimated": keys > MEMORY_SAMPLE,
        "server_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "server_hits": hits,
        "server_misses": misses,
        "server": "valkey" if "valkey_version" in info else "redis",
        "server_version": info.get("valkey_version") or info.get("redis_version"),
        "used_memory": info.get("used_memory_human"),
        "connected_clients": info.get("connected_clients"),
    }


def _card_entries(cache: Cache, card_id: int) -> dict[str, tuple[int, Any]]:
    """Each cached key kind of a card: (seconds to live, value)."""
    client = cache.client
    entries: dict[str, tuple[int, Any]] = {}
    for kind in CARD_KINDS:
        key = cache.card_key(card_id, kind)
        raw = client.hgetall(key) if kind == "fill" else client.get(key)
        if raw:
            value = (len(raw) if kind == "fill" else int(raw) if kind == "ver"
                     else orjson.loads(raw))
            entries[kind] = (int(client.ttl(key)), value)
    return entries


def _current(conn: psycopg.Connection[Any], card_ids: list[int]) -> dict[int, dict[str, Any]]:
    """PostgreSQL's balance row of each card that exists."""
    for card_id in card_ids:
        check_id(card_id, "card id")
    rows = db.call(conn, "public.card_balances", (list(dict.fromkeys(card_ids)),))
    return {row["card_id"]: row for row in rows}


def _missing(card_ids: list[int], found: dict[int, Any]) -> NotFound | None:
    absent = [str(card) for card in dict.fromkeys(card_ids) if card not in found]
    return NotFound(f"card {', '.join(absent)} not found") if absent else None


def show(conn: psycopg.Connection[Any], cache: Cache,
         card_ids: list[int]) -> tuple[list[dict[str, Any]], NotFound | None]:
    """One row per cached key of each card (TTL, value), PostgreSQL's value beside it and
    whether they agree; and the cards that do not exist."""
    current = _current(conn, card_ids)
    rows = []
    for card_id in dict.fromkeys(card_ids):
        if card_id not in current:
            continue
        pg = current[card_id]
        for kind, (ttl, value) in _card_entries(cache, card_id).items():
            if kind == "balance":
                truth: Any = {k: pg[k] for k in ("balance", "status", "version")}
                agrees = all(value.get(k) == to_jsonable(v) for k, v in truth.items() if k in value)
            elif kind == "trips":
                listed = db.call(conn, "public.card_trips", (card_id, len(value["trips"]) or 1))
                truth = [trip["trip_id"] for trip in listed[:len(value["trips"])]]
                value = [trip["trip_id"] for trip in value["trips"]]
                agrees = value == truth
            elif kind == "ver":
                truth, agrees = pg["version"], value == pg["version"]
            else:  # fill tickets of readers under way: nothing to compare
                truth, agrees = None, None
            rows.append({"card_id": card_id, "key": cache.card_key(card_id, kind),
                         "ttl_seconds": ttl, "cached": value, "postgresql": truth,
                         "agrees": agrees})
    return rows, _missing(card_ids, current)


def evict(conn: psycopg.Connection[Any], cache: Cache,
          card_ids: list[int]) -> tuple[list[dict[str, Any]], NotFound | None]:
    """Drop each card's cached balance and trips under the coherence rules of a status
    change: the version key stays, raised to PostgreSQL's, so no older write can return."""
    current = _current(conn, card_ids)
    rows = [{"card_id": card_id, "deleted": cache.card_invalidated(card_id, current[card_id]["version"])}
            for card_id in dict.fromkeys(card_ids) if card_id in current]
    return rows, _missing(card_ids, current)
