"""The measurement: trials of each (target, kind), interleaved in a seeded random order.

Kinds: miss (key deleted before the trial, outside the timed region, then the cached
read path), hit (the cached read path with the key present), db (the stored function
alone). Baselines in the same run: Redis PING and raw GET, PostgreSQL SELECT 1 and a
raw prepared point query. Each kind has its own pinned connection.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from recharge_cli import cards, db, stats
from recharge_cli.cache import Cache

KINDS = ("miss", "hit", "db")
BASELINES = ("redis_ping", "redis_get", "pg_select_1", "pg_point_query")


@dataclass
class Target:
    name: str
    read: Callable[[Any, Cache, int], Any]  # the cached read path
    direct: Callable[[Any, int], Any]  # the stored function alone
    keys: Callable[[Cache, int], list[str]]  # what a miss must delete
    per_card: bool


def _stat_target(name: str, statistic: str, params: dict[str, Any]) -> Target:
    spec = stats.STATISTICS[statistic]
    return Target(
        name,
        read=lambda conn, cache, _i: stats.get(conn, cache, statistic, params),
        direct=lambda conn, _i: db.call(conn, spec.function, spec.arguments(params)),
        keys=lambda cache, _i: [cache.stats_key(statistic, params)],
        per_card=False,
    )


TARGETS: dict[str, Target] = {
    "balance": Target(
        "balance",
        read=lambda conn, cache, card: cards.balances(conn, cache, [card]),
        direct=lambda conn, card: db.call(conn, "public.card_balance", (card,)),
        keys=lambda cache, card: [cache.card_key(card, "balance")],
        per_card=True),
    "card_trips": Target(
        "card_trips",
        read=lambda conn, cache, card: cards.trips(conn, cache, card, 20),
        direct=lambda conn, card: db.call(conn, "public.card_trips", (card, 20)),
        keys=lambda cache, card: [cache.card_key(card, "trips")],
        per_card=True),
    "stats_revenue": _stat_target("stats_revenue", "revenue",
                                  {"from": None, "to": None, "by": "total"}),
    "trips_total": _stat_target("trips_total", "trips", {"from": None, "to": None, "by": "total"}),
    "active_users": _stat_target("active_users", "users_active", {"from": None, "to": None}),
}


@dataclass
class Samples:
    """Raw samples per series ("target/kind" or "baseline/name"), in trial order."""

    values: dict[str, list[int]] = field(default_factory=dict)
    order: list[tuple[str, int]] = field(default_factory=list)  # (series, ns) as measured

    def add(self, series: str, ns: int) -> None:
        self.values.setdefault(series, []).append(ns)
        self.order.append((series, ns))


@dataclass
class Connections:
    pg: dict[str, psycopg.Connection[Any]]
    caches: dict[str, Cache]

    def close(self) -> None:
        for conn in self.pg.values():
            conn.close()
        for cache in self.caches.values():
            cache.close()


def open_connections(dsn: str, redis_url: str, prefix: str) -> Connections:
    pg = {kind: db.connect(dsn, application_name=f"recharge-bench-{kind}")
          for kind in (*KINDS, "baseline")}
    caches = {kind: Cache.from_url(redis_url, prefix) for kind in ("miss", "hit", "baseline")}
    caches["db"] = Cache(None, prefix)
    return Connections(pg, caches)


def _ensure_hit(spec: Target, conn: psycopg.Connection[Any], cache: Cache, card: int) -> None:
    """Outside the timed region: make sure the trial will find a fresh cached value."""
    for key in spec.keys(cache, card):
        value = cache.get(key)
        stale = value is None or (isinstance(value, dict) and "expires_at" in value
                                  and value["expires_at"] - time.time() < 5)
        if stale:
            cache.client.delete(key)
            spec.read(conn, cache, card)


def sample_cards(conn: psycopg.Connection[Any], count: int, seed: int) -> list[int]:
    rows = conn.execute("SELECT card_id FROM public.cards WHERE status = 'active' "
                        "ORDER BY hashint8(card_id + %s) LIMIT %s", (seed, count)).fetchall()
    return [r["card_id"] for r in rows]


def run(conns: Connections, targets: list[str], iterations: int, warmup: int, seed: int,
        card_ids: list[int], advance: Callable[[int], None] = lambda _n: None) -> Samples:
    """Warm up (discarded), then run every trial once in a seeded random order."""
    rng = random.Random(seed)
    trials: list[tuple[str, str]] = [(t, k) for t in targets for k in KINDS]
    trials += [("baseline", b) for b in BASELINES]
    raw_key = conns.caches["baseline"].prefix + "bench:raw"
    conns.caches["baseline"].client.set(raw_key, b"x" * 64)
    point_query = "SELECT balance, status, version FROM public.cards WHERE card_id = %s"

    def trial(target: str, kind: str, i: int) -> int:
        card = card_ids[i % len(card_ids)]
        if target == "baseline":
            client, pg = conns.caches["baseline"].client, conns.pg["baseline"]
            action: Callable[[], Any] = {
                "redis_ping": client.ping,
                "redis_get": lambda: client.get(raw_key),
                "pg_select_1": lambda: pg.execute("SELECT 1").fetchone(),
                "pg_point_query": lambda: pg.execute(point_query, (card,),
                                                     prepare=True).fetchone(),
            }[kind]
        else:
            spec = TARGETS[target]
            cache = conns.caches[kind]
            if kind == "miss":
                cache.client.delete(*spec.keys(cache, card))
                action = lambda: spec.read(conns.pg["miss"], cache, card)  # noqa: E731
            elif kind == "hit":
                _ensure_hit(spec, conns.pg["hit"], cache, card)
                action = lambda: spec.read(conns.pg["hit"], cache, card)  # noqa: E731
            else:
                action = lambda: spec.direct(conns.pg["db"], card)  # noqa: E731
        start = time.perf_counter_ns()
        action()
        return time.perf_counter_ns() - start

    for target, kind in trials:  # warm-up: connections, prepared statements, plan caches
        for i in range(warmup):
            trial(target, kind, i)
    schedule = [(t, k, i) for t, k in trials for i in range(iterations)]
    rng.shuffle(schedule)
    samples = Samples()
    gc.collect()
    gc.disable()
    try:
        for n, (target, kind, i) in enumerate(schedule, start=1):
            samples.add(f"{target}/{kind}", trial(target, kind, i))
            if n % 50 == 0:
                advance(50)
    finally:
        gc.enable()
    conns.caches["baseline"].client.delete(raw_key)
    return samples
