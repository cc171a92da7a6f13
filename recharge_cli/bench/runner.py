"""The measurement: trials of each (target, kind), interleaved in a seeded random order.

Kinds: miss (key deleted before the trial, outside the timed region, then the cached
read path), hit (the cached read path with the key present), db (the stored function
alone). Baselines in the same run: Redis PING and raw GET, PostgreSQL SELECT 1 and a
raw prepared point query. Each series has its own pinned connection. The `recharge` write
target (kind `write`) recharges scratch cards created for the run, each with its own key.
"""

from __future__ import annotations

import gc
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from recharge_cli import cards, db, interrupts, stats
from recharge_cli.cache import Cache

KINDS = ("miss", "hit", "db")
WRITE_KIND = "write"  # the `recharge` target's only kind
SERIES_KINDS = (*KINDS, WRITE_KIND)
BASELINES = ("redis_ping", "redis_get", "pg_select_1", "pg_point_query")


@dataclass
class Target:
    name: str
    read: Callable[[Any, Cache, int], Any]  # the cached read path
    direct: Callable[[Any, int], Any]  # the stored function alone
    keys: Callable[[Cache, int], list[str]]  # what a miss must delete


def _stat_target(name: str, statistic: str, params: dict[str, Any]) -> Target:
    spec = stats.STATISTICS[statistic]
    return Target(
        name,
        read=lambda conn, cache, _i: stats.get(conn, cache, statistic, params),
        direct=lambda conn, _i: db.call(conn, spec.function, spec.arguments(params)),
        keys=lambda cache, _i: [cache.stats_key(statistic, params)],
    )


TARGETS: dict[str, Target] = {
    "balance": Target(
        "balance",
        read=lambda conn, cache, card: cards.balances(conn, cache, [card]),
        direct=lambda conn, card: db.call(conn, "public.card_balance", (card,)),
        keys=lambda cache, card: [cache.card_key(card, "balance")]),
    "card_trips": Target(
        "card_trips",
        read=lambda conn, cache, card: cards.trips(conn, cache, card, 20),
        direct=lambda conn, card: db.call(conn, "public.card_trips", (card, 20)),
        keys=lambda cache, card: [cache.card_key(card, "trips")]),
    "stats_revenue": _stat_target("stats_revenue", "revenue",
                                  {"from": None, "to": None, "by": "total"}),
    "trips_total": _stat_target("trips_total", "trips", {"from": None, "to": None, "by": "total"}),
    "active_users": _stat_target("active_users", "users_active", {"from": None, "to": None}),
}


WRITE_TARGET = "recharge"
WRITE_AMOUNT = 1_000  # the minimum recharge: a scratch card takes hundreds before its maximum
WRITES_PER_CARD = 400
MAX_WARM_CARDS = 1_000  # a hit load run caches at most this many cards' keys before it starts
ALL_TARGETS = (*TARGETS, WRITE_TARGET)


def kinds_of(target: str) -> list[tuple[str, str]]:
    """The (target, kind) series one target produces."""
    return [(target, WRITE_KIND)] if target == WRITE_TARGET else [(target, k) for k in KINDS]


def write(conn: psycopg.Connection[Any], cache: Cache, card: int) -> Any:
    """One timed write: a real recharge with its own idempotency key."""
    return cards.recharge(conn, cache, card, WRITE_AMOUNT, key=f"bench-{uuid.uuid4().hex}")


@dataclass
class ScratchCards:
    """Cards created for the write target; afterwards their balances must equal the writes."""

    card_ids: list[int]

    @classmethod
    def create(cls, conn: psycopg.Connection[Any], writes: int) -> ScratchCards:
        count = max(1, math.ceil(writes / WRITES_PER_CARD))
        rows = conn.execute(
            "INSERT INTO public.cards (card_id, status) "
            "SELECT nextval('public.card_id_seq'), 'active' FROM generate_series(1, %s) "
            "RETURNING card_id", (count,)).fetchall()
        return cls([r["card_id"] for r in rows])

    def retire(self, conn: psycopg.Connection[Any]) -> None:
        """Set the scratch cards inactive (later runs and statistics of use skip them)."""
        if self.card_ids:
            conn.execute("UPDATE public.cards SET status = 'inactive' "
                         "WHERE card_id = ANY(%s) AND status <> 'inactive'", (self.card_ids,))

    def check(self, conn: psycopg.Connection[Any], writes: int) -> dict[str, Any]:
        """The database holds exactly the writes that reported success: balances and recharge
        rows agree, and each card's balance is the sum of its recharges. Then retire the
        cards (inactive) so later runs skip them."""
        row = conn.execute(
            "SELECT coalesce(sum(c.balance), 0) AS balance, "
            "       (SELECT count(*) FROM public.recharges r WHERE r.card_id = ANY(%(ids)s)) AS recharges, "
            "       count(*) FILTER (WHERE c.balance <> coalesce(r.total, 0)) AS balance_mismatches "
            "FROM public.cards c LEFT JOIN (SELECT card_id, sum(amount) AS total "
            "     FROM public.recharges WHERE card_id = ANY(%(ids)s) GROUP BY card_id) r "
            "     ON r.card_id = c.card_id "
            "WHERE c.card_id = ANY(%(ids)s)", {"ids": self.card_ids}).fetchone()
        self.retire(conn)
        expected = writes * WRITE_AMOUNT
        return {"scratch_cards": len(self.card_ids), "writes": writes, "recharges": row["recharges"],
                "expected_balance": expected, "balance": int(row["balance"]),
                "balance_mismatches": row["balance_mismatches"],
                "ok": (row["balance"], row["recharges"], row["balance_mismatches"])
                == (expected, writes, 0)}


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


def open_connections(dsn: str, redis_url: str, prefix: str, targets: list[str],
                     cluster: bool = False) -> Connections:
    """One PostgreSQL connection per series: a backend that just ran an aggregate or a write
    answers its next point query more slowly, so no series shares one with another."""
    series = [f"{t}/{k}" for t in targets for _, k in kinds_of(t)] + ["baseline"]
    pg = {name: db.connect(dsn, application_name=f"recharge-bench-{name}") for name in series}
    caches = {kind: Cache.from_url(redis_url, prefix, cluster=cluster)
              for kind in ("miss", "hit", "baseline")}
    caches["db"] = Cache(None, prefix)
    return Connections(pg, caches)


def _ensure_hit(spec: Target, conn: psycopg.Connection[Any], cache: Cache, card: int) -> None:
    """Outside the timed region: make sure the trial will find a fresh cached value."""
    for key in spec.keys(cache, card):
        value = cache.get(key)
        stale = value is None or (isinstance(value, dict) and "expires_at" in value
                                  and value["expires_at"] - time.time() < 5)
        if stale:
            cache.delete(key)
            spec.read(conn, cache, card)


def operation(conn: psycopg.Connection[Any], cache: Cache, target: str, kind: str,
              card_ids: list[int]) -> tuple[Callable[[int], Any], Callable[[int], Any]]:
    """Operation i of a load run on `card_ids` and what follows it outside its latency: a
    miss deletes the next operation's keys; a hit run starts with its keys cached."""
    def card(i: int) -> int:
        return card_ids[i % len(card_ids)]

    def nothing(_i: int) -> None:
        return None

    if target == WRITE_TARGET:
        return (lambda i: write(conn, cache, card(i))), nothing
    spec = TARGETS[target]
    if kind == "db":
        return (lambda i: spec.direct(conn, card(i))), nothing
    if kind == "hit":
        for card_id in card_ids[:MAX_WARM_CARDS]:
            _ensure_hit(spec, conn, cache, card_id)
        return (lambda i: spec.read(conn, cache, card(i))), nothing
    cache.delete(*spec.keys(cache, card(0)))
    return (lambda i: spec.read(conn, cache, card(i))), \
        (lambda i: cache.delete(*spec.keys(cache, card(i + 1))))


def sample_cards(conn: psycopg.Connection[Any], count: int, seed: int) -> list[int]:
    rows = conn.execute("SELECT card_id FROM public.cards WHERE status = 'active' "
                        "ORDER BY hashint8(card_id + %s) LIMIT %s", (seed, count)).fetchall()
    return [r["card_id"] for r in rows]


# The row `balance` shows (the columns card_balance returns), read directly: the anchor of
# the db path, so that their ratio is what the stored function adds, not more columns.
POINT_QUERY = ("SELECT card_id, balance, status, version, last_movement_at FROM public.cards "
               "WHERE card_id = %s")


def _action(conns: Connections, target: str, kind: str, card: int, scratch_card: int,
            raw_key: str) -> Callable[[], Any]:
    """What one trial times; what it needs first (a deleted or a fresh key) is done here,
    outside the timed region."""
    if target == WRITE_TARGET:
        return lambda: write(conns.pg[f"{target}/{kind}"], conns.caches["hit"], scratch_card)
    if target == "baseline":
        client, pg = conns.caches["baseline"], conns.pg["baseline"]
        return {
            "redis_ping": client.ping,
            "redis_get": lambda: client.raw_get(raw_key),
            "pg_select_1": lambda: pg.execute("SELECT 1").fetchone(),
            "pg_point_query": lambda: pg.execute(POINT_QUERY, (card,), prepare=True).fetchone(),
        }[kind]
    spec, cache, pg = TARGETS[target], conns.caches[kind], conns.pg[f"{target}/{kind}"]
    if kind == "miss":
        cache.delete(*spec.keys(cache, card))
    elif kind == "hit":
        _ensure_hit(spec, pg, cache, card)
    else:
        return lambda: spec.direct(pg, card)
    return lambda: spec.read(pg, cache, card)


def run(conns: Connections, targets: list[str], iterations: int, warmup: int, seed: int,
        card_ids: list[int], scratch: list[int], samples: Samples,
        advance: Callable[[int], None] = lambda _n: None) -> None:
    """Warm up (discarded), then run every trial once in a seeded random order, into
    `samples` (which keeps what was measured when an interrupt ends the run early)."""
    rng = random.Random(seed)
    trials = [pair for t in targets for pair in kinds_of(t)]
    trials += [("baseline", b) for b in BASELINES]
    raw_key = conns.caches["baseline"].prefix + "bench:raw"
    conns.caches["baseline"].raw_set(raw_key, b"x" * 64)

    def trial(target: str, kind: str, i: int) -> int:
        action = _action(conns, target, kind, card_ids[i % len(card_ids)],
                         scratch[i % len(scratch)] if scratch else 0, raw_key)
        start = time.perf_counter_ns()
        action()
        elapsed = time.perf_counter_ns() - start
        if interrupts.pending():  # Ctrl-C held while a write finished: stop here
            raise KeyboardInterrupt
        return elapsed

    for target, kind in trials:  # warm-up: connections, prepared statements, plan caches
        for i in range(warmup):
            trial(target, kind, i)
    schedule = [(t, k, i) for t, k in trials for i in range(iterations)]
    rng.shuffle(schedule)
    gc.collect()
    gc.disable()
    try:
        for n, (target, kind, i) in enumerate(schedule, start=1):
            samples.add(f"{target}/{kind}", trial(target, kind, i))
            if n % 50 == 0:
                advance(50)
    finally:
        gc.enable()
    conns.caches["baseline"].delete(raw_key)
