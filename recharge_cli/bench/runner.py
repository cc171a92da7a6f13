"""The measurement: trials of each (target, kind), interleaved in a seeded random order.

Every measured thing is a `Target` bound to its own PostgreSQL connection and cache:
`prepare(kind, card)` runs outside the timed region, `call(kind, card)` is what is timed,
for the latency trials, the load runs and the mixes alike.

Kinds of a read target: miss (key deleted first, then the cached read path), hit (the
cached read path with the key present), db (the stored function alone); in a mix,
cached and no_cache (the read path with the cache, or with the cache disabled). The write
targets (kind `write`): `recharge` (recharge_card) and `tap` (record_trip), each write with
its own key, on scratch cards created for the run. The baselines are a target too: Redis
PING and a raw GET through the Redis client itself, PostgreSQL SELECT 1 and a raw prepared
point query.
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
WRITE_KIND = "write"  # a write target's only kind
SERIES_KINDS = (*KINDS, WRITE_KIND)
BASELINES = ("redis_ping", "redis_get", "pg_select_1", "pg_point_query")
WRITE_TARGET = "recharge"
TAP_TARGET = "tap"
WRITE_AMOUNT = 1_000  # the minimum recharge: a scratch card takes hundreds before its maximum
WRITES_PER_CARD = 400
MAX_WARM_CARDS = 1_000  # a hit load run caches at most this many cards' keys before it starts
FRESH_SECONDS = 5  # a hit trial refreshes a statistic due to expire sooner than this


@dataclass(frozen=True)
class ReadPath:
    """A read: the cached path (returns its source, "cache" or "db"), the stored function
    alone, and the keys a miss must delete."""

    read: Callable[[psycopg.Connection[Any], Cache, int, float], str]
    direct: Callable[[psycopg.Connection[Any], int], Any]
    keys: Callable[[Cache, int], list[str]]


def _statistic(statistic: str, params: dict[str, Any]) -> ReadPath:
    spec = stats.STATISTICS[statistic]

    def read(conn: psycopg.Connection[Any], cache: Cache, _card: int, ttl_scale: float) -> str:
        ttl = max(1, round(spec.ttl * ttl_scale))
        return stats.get(conn, cache, statistic, params, ttl=ttl)["source"]

    return ReadPath(read, lambda conn, _i: db.call(conn, spec.function, spec.arguments(params)),
                    lambda cache, _i: [cache.stats_key(statistic, params)])


TARGETS: dict[str, ReadPath] = {
    "balance": ReadPath(
        lambda conn, cache, card, _s: cards.balances(conn, cache, [card])[0]["source"],
        lambda conn, card: db.call(conn, "public.card_balance", (card,)),
        lambda cache, card: [cache.card_key(card, "balance")]),
    "card_trips": ReadPath(
        lambda conn, cache, card, _s: cards.trips(conn, cache, card, 20)["source"],
        lambda conn, card: db.call(conn, "public.card_trips", (card, 20)),
        lambda cache, card: [cache.card_key(card, "trips")]),
    "stats_revenue": _statistic("revenue", {"from": None, "to": None, "by": "total"}),
    "trips_total": _statistic("trips", {"from": None, "to": None, "by": "total"}),
    "active_users": _statistic("users_active", {"from": None, "to": None}),
}
ALL_TARGETS = (*TARGETS, WRITE_TARGET)


def kinds_of(target: str) -> list[tuple[str, str]]:
    """The (target, kind) series one target produces."""
    return [(target, WRITE_KIND)] if target in (WRITE_TARGET, TAP_TARGET) \
        else [(target, k) for k in KINDS]


class Target:
    """One measured thing on its own connection and cache."""

    name: str

    def prepare(self, kind: str, card: int) -> None:
        """What operation `card` needs first, outside its latency."""

    def call(self, kind: str, card: int) -> Any:
        raise NotImplementedError


@dataclass
class ReadTarget(Target):
    name: str
    path: ReadPath
    conn: psycopg.Connection[Any]
    cache: Cache
    ttl_scale: float = 1.0

    def prepare(self, kind: str, card: int) -> None:
        if kind == "miss":
            self._delete(card)
        elif kind == "hit":
            self._ensure_fresh(card)

    def call(self, kind: str, card: int) -> Any:
        """The stored function alone (db), else the read path: its source."""
        if kind == "db":
            return self.path.direct(self.conn, card)
        return self.path.read(self.conn, self.cache, card, self.ttl_scale)

    def _delete(self, card: int) -> None:
        if self.cache.client is not None:
            for key in self.path.keys(self.cache, card):  # one by one: Cluster slots differ
                self.cache.client.delete(key)

    def _ensure_fresh(self, card: int) -> None:
        """A fresh cached value for the trial: read it in unless present and not due to
        expire within FRESH_SECONDS."""
        for key in self.path.keys(self.cache, card):
            value = self.cache.get(key)
            stale = value is None or (isinstance(value, dict) and "expires_at" in value
                                      and value["expires_at"] - time.time() < FRESH_SECONDS)
            if stale:
                self._delete(card)
                self.path.read(self.conn, self.cache, card, self.ttl_scale)


@dataclass
class WriteTarget(Target):
    """A real write with its own idempotency key; `call` returns the new row's id."""

    name: str
    conn: psycopg.Connection[Any]
    cache: Cache
    station: int = 0  # where a tap boards

    def call(self, kind: str, card: int) -> int:
        key = f"bench-{uuid.uuid4().hex}"
        if self.name == TAP_TARGET:
            return cards.record_trip(self.conn, self.cache, card, self.station, key=key)["trip_id"]
        return cards.recharge(self.conn, self.cache, card, WRITE_AMOUNT, key=key)["recharge_id"]


# The row `balance` shows (the columns card_balance returns), read directly: the anchor of
# the db path, so that their ratio is what the stored function adds, not more columns.
POINT_QUERY = ("SELECT card_id, balance, status, version, last_movement_at FROM public.cards "
               "WHERE card_id = %s")


@dataclass
class BaselineTarget(Target):
    """The raw baselines, through the Redis client and the connection themselves."""

    conn: psycopg.Connection[Any]
    redis: Any  # the Redis (or Redis Cluster) client
    raw_key: str
    name: str = "baseline"

    def call(self, kind: str, card: int) -> Any:
        if kind == "redis_ping":
            return self.redis.ping()
        if kind == "redis_get":
            return self.redis.get(self.raw_key)
        if kind == "pg_select_1":
            return self.conn.execute("SELECT 1").fetchone()
        return self.conn.execute(POINT_QUERY, (card,), prepare=True).fetchone()


def target(name: str, conn: psycopg.Connection[Any], cache: Cache, *, station: int = 0,
           ttl_scale: float = 1.0) -> Target:
    """The target `name` bound to a connection and a cache (a disabled one: without it)."""
    if name in (WRITE_TARGET, TAP_TARGET):
        return WriteTarget(name, conn, cache, station)
    return ReadTarget(name, TARGETS[name], conn, cache, ttl_scale)


@dataclass
class WriteCheck:
    """Every write that reported success exists exactly once, and nothing else was written
    to the scratch cards: their balances are their recharges less their fares."""

    scratch_cards: int
    recharges_reported: int
    taps_reported: int
    funding_recharges: int  # made before the run (a tap card needs a balance)
    recharges_found: int
    taps_found: int
    missing_or_duplicated: int
    balance_mismatches: int
    ok: bool


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

    def check(self, conn: psycopg.Connection[Any], writes: int) -> WriteCheck:
        """The database holds exactly the writes that reported success, read through the
        `recharges` relation: as many recharges as writes, of WRITE_AMOUNT each, and every
        card's balance the sum of its recharges. Then retire the cards (inactive)."""
        row = conn.execute(
            "SELECT (SELECT count(*) FROM public.recharges r WHERE r.card_id = ANY(%(ids)s)) "
            "         AS recharges, "
            "       (SELECT count(*) FROM public.recharges r WHERE r.card_id = ANY(%(ids)s) "
            "          AND r.amount <> %(amount)s) AS other_amounts, "
            "       count(*) FILTER (WHERE c.balance <> coalesce(r.total, 0)) AS mismatches "
            "FROM public.cards c LEFT JOIN (SELECT card_id, sum(amount) AS total "
            "     FROM public.recharges WHERE card_id = ANY(%(ids)s) GROUP BY card_id) r "
            "     ON r.card_id = c.card_id "
            "WHERE c.card_id = ANY(%(ids)s)", {"ids": self.card_ids, "amount": WRITE_AMOUNT}
        ).fetchone()
        self.retire(conn)
        off = abs(row["recharges"] - writes) + row["other_amounts"]
        return WriteCheck(len(self.card_ids), writes, 0, 0, row["recharges"], 0, off,
                          row["mismatches"], ok=off == 0 and row["mismatches"] == 0)


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


def operation(conn: psycopg.Connection[Any], cache: Cache, target_name: str, kind: str,
              card_ids: list[int]) -> tuple[Callable[[int], Any], Callable[[int], Any]]:
    """Operation i of a load run on `card_ids` and what follows it outside its latency: a
    miss deletes the next operation's keys; a hit run starts with its keys cached."""
    measured = target(target_name, conn, cache)

    def card(i: int) -> int:
        return card_ids[i % len(card_ids)]

    if kind == "hit":
        for card_id in card_ids[:MAX_WARM_CARDS]:
            measured.prepare(kind, card_id)
    elif kind == "miss":
        measured.prepare(kind, card(0))
    after: Callable[[int], Any] = (lambda i: measured.prepare(kind, card(i + 1))) \
        if kind == "miss" else (lambda _i: None)
    return (lambda i: measured.call(kind, card(i))), after


def sample_cards(conn: psycopg.Connection[Any], count: int, seed: int) -> list[int]:
    rows = conn.execute("SELECT card_id FROM public.cards WHERE status = 'active' "
                        "ORDER BY hashint8(card_id + %s) LIMIT %s", (seed, count)).fetchall()
    return [r["card_id"] for r in rows]


def run(conns: Connections, targets: list[str], iterations: int, warmup: int, seed: int,
        card_ids: list[int], scratch: list[int], samples: Samples,
        advance: Callable[[int], None] = lambda _n: None) -> None:
    """Warm up (discarded), then run every trial once in a seeded random order, into
    `samples` (which keeps what was measured when an interrupt ends the run early)."""
    rng = random.Random(seed)
    redis = conns.caches["baseline"].client
    raw_key = conns.caches["baseline"].prefix + "bench:raw"
    redis.set(raw_key, b"x" * 64)
    measured: dict[tuple[str, str], Target] = {
        (t, k): target(t, conns.pg[f"{t}/{k}"], conns.caches["hit" if k == WRITE_KIND else k])
        for name in targets for t, k in kinds_of(name)}
    baseline = BaselineTarget(conns.pg["baseline"], redis, raw_key)
    measured.update({("baseline", b): baseline for b in BASELINES})

    def trial(series: tuple[str, str], i: int) -> int:
        kind = series[1]
        card = (scratch[i % len(scratch)] if scratch else 0) if kind == WRITE_KIND \
            else card_ids[i % len(card_ids)]
        measured[series].prepare(kind, card)
        start = time.perf_counter_ns()
        measured[series].call(kind, card)
        elapsed = time.perf_counter_ns() - start
        if interrupts.pending():  # Ctrl-C held while a write finished: stop here
            raise KeyboardInterrupt
        return elapsed

    for series in measured:  # warm-up: connections, prepared statements, plan caches
        for i in range(warmup):
            trial(series, i)
    schedule = [(series, i) for series in measured for i in range(iterations)]
    rng.shuffle(schedule)
    gc.collect()
    gc.disable()
    try:
        for n, (series, i) in enumerate(schedule, start=1):
            samples.add("/".join(series), trial(series, i))
            if n % 50 == 0:
                advance(50)
    finally:
        gc.enable()
    redis.delete(raw_key)
