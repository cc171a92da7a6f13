"""`recharge bench --mix`: a weighted mix of operations, open loop, on skewed cards — and the
same mix without the cache, in turn, on the same schedule.

Every (offered rate, mode) is one load run of N processes. Which operation the i-th send
of a process is, and which card it touches, is drawn in advance from the run's seed, so the
cached and the uncached run of a rate send the same operations to the same cards at the
same intended times (the Poisson schedule's seed is shared too). Reads pick cards by the
distribution (distributions.py); the writes (`tap`: a boarding through `record_trip`;
`recharge`: through `recharge_card`) go round-robin to scratch cards created for the run,
each card given no more writes than its balance allows, and retired afterwards.

*cached* runs the application's read paths (cache-aside, statistics under their TTLs,
shortened by `ttl_scale`, nothing deleted to force a miss); *no_cache* runs the same paths
with the cache disabled, as a deployment without Redis would.

PostgreSQL's load is read from its statistics while each run goes: calls and server time
from pg_stat_statements where it is loaded, else from pg_stat_database (transactions and
`active_time`); per operation from pg_stat_user_functions (calls and `total_time` of each
operation's stored function) where `track_functions` counts them.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from recharge_cli.bench import distributions, load, runner, sampling
from recharge_cli.bench.model import from_json, to_json
from recharge_cli.bench.runner import WriteCheck
from recharge_cli.bench.sampling import Ratio
from recharge_cli.errors import InvalidInput

READS = ("balance", "card_trips", "stats_revenue", "trips_total", "active_users")
WRITES = ("tap", "recharge")
OPERATIONS = (*READS, *WRITES)
MODES = ("cached", "no_cache")
STATISTICS = {"stats_revenue": "revenue", "trips_total": "trips",
              "active_users": "users_active"}  # operation → the statistic it reads
# Each operation's own stored function(s), by which pg_stat_user_functions is attributed.
# (card_trips' miss path also reads the card's version through card_balance, which counts
# under balance.)
FUNCTIONS = {"balance": ("card_balance", "card_balances"), "card_trips": ("card_trips",),
             "stats_revenue": ("stats_revenue",), "trips_total": ("stats_trips",),
             "active_users": ("stats_users_active",), "tap": ("record_trip",),
             "recharge": ("recharge_card",)}
TAP_FUNDING = (200_000, 200_000)  # recharges that fund a tap card before the run
APPLICATION = "recharge-bench-mix"


def parse(text: str) -> dict[str, int]:
    """`balance=70,tap=15,…`: whole, non-negative weights of known operations, at least one
    of them positive. A mistake is one line (exit 2)."""
    weights: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        name, sep, weight = part.partition("=")
        name, weight = name.strip(), weight.strip()
        if not sep or not name:
            raise InvalidInput(f"invalid --mix {text!r}: write OP=WEIGHT,… e.g. "
                               "balance=70,tap=15,recharge=15")
        if name not in OPERATIONS:
            raise InvalidInput(f"invalid --mix: unknown operation {name!r}; choose from "
                               f"{', '.join(OPERATIONS)}")
        if name in weights:
            raise InvalidInput(f"invalid --mix: {name} is given twice")
        if not (weight.isascii() and weight.isdigit()):
            raise InvalidInput(f"invalid --mix: the weight of {name} must be a whole number "
                               f"≥ 0, not {weight!r}")
        weights[name] = int(weight)
    if not any(weights.values()):
        raise InvalidInput("invalid --mix: every weight is 0; give at least one a positive weight")
    return {k: v for k, v in weights.items() if v}


@dataclass(frozen=True)
class MixSpec:
    weights: dict[str, int]
    distribution: str = "zipfian"
    zipf_theta: float = distributions.ZIPF_THETA
    ttl_scale: float = 1.0
    no_cache_baseline: bool = True

    @property
    def modes(self) -> tuple[str, ...]:
        return MODES if self.no_cache_baseline else MODES[:1]

    def shares(self) -> dict[str, float]:
        total = sum(self.weights.values())
        return {op: w / total for op, w in self.weights.items()}


# --- the plan: what each process of each run sends --------------------------------------

@dataclass(frozen=True)
class Job:
    """One process's share of one mix run (picklable: it crosses to a spawned process)."""

    endpoint: load.Endpoint
    cached: bool
    names: tuple[str, ...]
    ops: list[int]  # index into names of the i-th send
    cards: list[int]  # card of the i-th send
    station: int  # where taps board
    start_at: float
    seconds: float
    rate: float
    seed: int
    ttl_scale: float


def sends_bound(rate: float, seconds: float) -> int:
    """Sends to plan for a Poisson schedule of rate × seconds: its mean plus ten standard
    deviations (a schedule never reaches it; were it reached, the plan would start over)."""
    mean = rate * seconds
    return int(mean + 10 * math.sqrt(mean) + 20)


def plan_sends(spec: MixSpec, read_cards: list[int], rate: float, seconds: float,
               processes: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per process: the operation (index into spec.weights) and the read card of each send."""
    names, shares = list(spec.weights), np.asarray(list(spec.shares().values()))
    ops, cards = [], []
    for n in range(processes):
        rng = np.random.default_rng([seed, n])
        size = sends_bound(rate / processes, seconds)
        ops.append(rng.choice(len(names), size=size, p=shares))
        index = distributions.draw(spec.distribution, len(read_cards), size, rng,
                                   spec.zipf_theta)
        cards.append(np.asarray(read_cards, dtype=np.int64)[index])
    return ops, cards


def assign_writes(names: list[str], ops: np.ndarray, cards: np.ndarray,
                  pools: dict[str, list[int]], per_card: dict[str, int]) -> np.ndarray:
    """Give each write of one job a scratch card of its own pool, round-robin over just
    enough cards that none takes more than `per_card` writes; the pools are consumed."""
    cards = cards.copy()
    for op in WRITES:
        if op not in names:
            continue
        where = np.flatnonzero(ops == names.index(op))
        needed = max(1, math.ceil(where.size / per_card[op]))
        mine, pools[op][:] = pools[op][:needed], pools[op][needed:]
        cards[where] = np.asarray(mine, dtype=np.int64)[np.arange(where.size) % needed]
    return cards


def write_cards_needed(names: list[str], ops: np.ndarray, per_card: dict[str, int]
                       ) -> dict[str, int]:
    return {op: max(1, math.ceil(int(np.count_nonzero(ops == names.index(op))) / per_card[op]))
            for op in WRITES if op in names}


# --- in a load process ------------------------------------------------------------------

def run_job(job: Job) -> JobOutcome:
    """In a load process: connect, then send the planned operations on the schedule, each
    through its target (the read path with the cache, or with the cache disabled)."""
    from recharge_cli import db
    from recharge_cli.cache import Cache

    mode = "cached" if job.cached else "no_cache"
    where = job.endpoint
    conn = db.connect(where.dsn, application_name=f"{APPLICATION}-{mode}")
    cache = (Cache.from_url(where.redis_url, where.prefix, cluster=where.cluster) if job.cached
             else Cache(None, where.prefix))
    targets = {op: runner.target(op, conn, cache, station=job.station, ttl_scale=job.ttl_scale)
               for op in job.names}
    hits = dict.fromkeys(READS, 0)
    misses = dict.fromkeys(READS, 0)
    written: list[tuple[str, int, int]] = []  # (operation, card, recharge_id or trip_id)

    def operation(i: int) -> None:
        op, card = job.names[job.ops[i % len(job.ops)]], job.cards[i % len(job.cards)]
        outcome = targets[op].call(mode, card)
        if op in WRITES:
            written.append((op, card, outcome))
        else:
            (hits if outcome == "cache" else misses)[op] += 1

    try:
        start_ns = time.perf_counter_ns() + int((job.start_at - time.time()) * 1e9)
        rec = load.drive(operation, job.seconds, job.rate, start_ns, job.seed,
                         label=lambda i: job.names[job.ops[i % len(job.ops)]],
                         by_arrival=True)
    finally:
        conn.close()
        cache.close()
    return JobOutcome(rec.encode(), hits, misses, written)


@dataclass(frozen=True)
class JobOutcome:
    """What a load process hands back (picklable: the recording in its HDR encoding)."""

    recording: dict[str, Any]
    hits: dict[str, int]
    misses: dict[str, int]
    written: list[tuple[str, int, int]]


# --- PostgreSQL's load --------------------------------------------------------------------

@dataclass(frozen=True)
class PgCounters:
    """Cumulative counters at one moment: the whole database's, and per operation."""

    at: float
    calls: float
    seconds: float
    by_operation: dict[str, tuple[float, float]]  # op → (calls, seconds)


class PgLoad:
    """Reads PostgreSQL's cumulative statistics of this database."""

    def __init__(self, conn: psycopg.Connection[Any], operations: list[str]) -> None:
        self.conn, self.operations = conn, operations
        self.source = "pg_stat_statements" if self._statements() else "pg_stat_database"
        tracked = conn.execute("SELECT current_setting('track_functions') AS t").fetchone()
        self.per_operation = tracked is not None and tracked["t"] != "none"

    def _statements(self) -> bool:
        """pg_stat_statements is usable: preloaded and its extension in this database."""
        row = self.conn.execute(
            "SELECT current_setting('shared_preload_libraries') LIKE '%%pg_stat_statements%%' "
            "AND EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') "
            "AS usable").fetchone()
        return bool(row and row["usable"])

    def read(self) -> PgCounters:
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        if self.source == "pg_stat_statements":
            row = self.conn.execute(
                "SELECT coalesce(sum(calls), 0) AS calls, coalesce(sum(total_exec_time "
                "+ total_plan_time), 0) / 1000 AS seconds FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT xact_commit + xact_rollback AS calls, active_time / 1000 AS seconds "
                "FROM pg_stat_database WHERE datname = current_database()").fetchone()
        assert row is not None
        by_op: dict[str, tuple[float, float]] = {}
        if self.per_operation:
            funcs = {r["funcname"]: (r["calls"], r["total_time"] / 1000) for r in self.conn.execute(
                "SELECT funcname, calls, total_time FROM pg_stat_user_functions "
                "WHERE schemaname = 'public'").fetchall()}
            by_op = {op: (sum(funcs.get(f, (0, 0))[0] for f in FUNCTIONS[op]),
                          sum(funcs.get(f, (0, 0))[1] for f in FUNCTIONS[op]))
                     for op in self.operations}
        return PgCounters(time.monotonic(), float(row["calls"]), float(row["seconds"]), by_op)

    def settle(self, timeout: float = 5.0) -> None:
        """Wait for the load's backends to end: a backend reports its last counters as it
        exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.conn.execute("SELECT count(*) AS n FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND application_name LIKE %s",
                                    (f"{APPLICATION}%",)
                                    ).fetchone()
            if row is None or not row["n"]:
                return
            time.sleep(0.05)


# --- the typed results ---------------------------------------------------------------------

@dataclass
class OperationSummary:
    """One operation (or the whole mix) in one run."""

    operations: int
    share: float  # of the run's operations
    achieved_per_second: float
    p50_us: float
    p99_us: float
    p99_9_us: float
    max_us: float
    mean_us: float
    hit_ratio: float | None  # cached reads only
    pg_calls_per_second: float | None
    pg_cpu_seconds_per_op: float | None


@dataclass
class MixRunSummary:
    """One mix run: one mode at one offered rate."""

    mode: str
    offered_per_second: float
    seconds: float
    processes: int
    late: int
    skipped: int
    kept_up: bool
    client_busy_share: float
    whole: OperationSummary
    operations: dict[str, OperationSummary]
    pg_interval_calls_per_second: list[float]  # the database's, per sampled interval
    pg_interval_cpu_per_second: list[float]
    histogram: str  # the whole mix's HDR histogram, encoded
    histograms: dict[str, str]  # per operation


@dataclass
class Saving:
    """What the cache saved at one offered rate: uncached / cached. PostgreSQL's load is
    compared per operation (calls and server time for each operation of the mix), so a run
    that could not keep up and sent fewer operations is not mistaken for a lighter one."""

    offered_per_second: float
    latency_p50: Ratio
    latency_p99: Ratio
    pg_calls_per_op: Ratio
    pg_cpu_per_op: Ratio
    pg_load_removed: float  # 1 − cached / uncached calls per operation
    operations_p50: dict[str, Ratio]


@dataclass
class MixResult:
    weights: dict[str, int]
    distribution: str
    zipf_theta: float
    ttl_scale: float
    statistics_ttl_seconds: dict[str, int]
    cards: int
    pg_source: str
    pg_per_operation_source: str | None
    cached: list[MixRunSummary]
    no_cache: list[MixRunSummary]
    saving: list[Saving]
    write_check: WriteCheck | None = None

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MixResult:
        return from_json(cls, data)

    def runs(self) -> list[MixRunSummary]:
        return [*self.cached, *self.no_cache]


def _percentiles(h: Any) -> dict[str, float]:
    if not h.get_total_count():
        return {"p50_us": 0.0, "p99_us": 0.0, "p99_9_us": 0.0, "max_us": 0.0, "mean_us": 0.0}
    return {"p50_us": h.get_value_at_percentile(50) / 1000,
            "p99_us": h.get_value_at_percentile(99) / 1000,
            "p99_9_us": h.get_value_at_percentile(99.9) / 1000,
            "max_us": h.get_max_value() / 1000, "mean_us": h.get_mean_value() / 1000}


@dataclass
class RawRun:
    """What one run left, before it is summarised."""

    mode: str
    rate: float
    seconds: float
    processes: int
    recording: load.Recording
    hits: dict[str, int]
    misses: dict[str, int]
    written: list[tuple[str, int, int]]
    counters: list[PgCounters]

    def summary(self, per_operation: bool) -> MixRunSummary:
        rec, first, last = self.recording, self.counters[0], self.counters[-1]
        total = max(1, rec.operations)

        def pg(calls: float, seconds: float, ops: int) -> tuple[float, float | None]:
            return calls / self.seconds, (seconds / ops if ops else None)

        calls, cpu = pg(last.calls - first.calls, last.seconds - first.seconds, rec.operations)
        whole = OperationSummary(rec.operations, 1.0, rec.operations / self.seconds,
                                 **_percentiles(rec.latency), hit_ratio=self._hit_ratio(READS),
                                 pg_calls_per_second=calls, pg_cpu_seconds_per_op=cpu)
        operations = {}
        for op, h in rec.parts.items():
            n = h.get_total_count()
            op_calls: float | None = None
            op_cpu: float | None = None
            if per_operation:
                (c0, s0), (c1, s1) = first.by_operation[op], last.by_operation[op]
                op_calls, op_cpu = pg(c1 - c0, s1 - s0, n)
            operations[op] = OperationSummary(
                n, n / total, n / self.seconds, **_percentiles(h),
                hit_ratio=self._hit_ratio((op,)) if op in READS else None,
                pg_calls_per_second=op_calls, pg_cpu_seconds_per_op=op_cpu)
        # Per-second samples while the run went, without its first second and the wait for
        # its backends to exit: backends report their counters about once a second, so the
        # edges hold only part of a second's calls.
        during = self.counters[1:-1]
        if len(during) < 3:
            during = self.counters
        steps = list(itertools.pairwise(during))
        rates = [(b.calls - a.calls) / (b.at - a.at) for a, b in steps if b.at > a.at]
        cpus = [(b.seconds - a.seconds) / (b.at - a.at) for a, b in steps if b.at > a.at]
        skipped_ok = rec.skipped <= 0.01 * (rec.operations + rec.skipped)
        return MixRunSummary(self.mode, self.rate, self.seconds, self.processes, rec.late,
                             rec.skipped, skipped_ok, rec.busy_share, whole, operations,
                             rates, cpus, rec.latency.encode().decode(),
                             {op: h.encode().decode() for op, h in rec.parts.items()})

    def _hit_ratio(self, ops: tuple[str, ...]) -> float | None:
        if self.mode != "cached":
            return None
        hits = sum(self.hits.get(op, 0) for op in ops)
        seen = hits + sum(self.misses.get(op, 0) for op in ops)
        return hits / seen if seen else None


def saving(cached: RawRun, uncached: RawRun, cached_summary: MixRunSummary,
           uncached_summary: MixRunSummary, seed: int) -> Saving:
    def hist(run: RawRun, op: str | None = None) -> Any:
        return run.recording.latency if op is None else run.recording.parts[op]

    # From the per-second samples of calls (and server time) while each run went: the ratio
    # of their means and its interval, scaled by the exact ratio of the runs' operations/s
    # into a ratio per operation.
    per_op = cached_summary.whole.achieved_per_second / uncached_summary.whole.achieved_per_second

    def pg(uncached_series: list[float], cached_series: list[float]) -> Ratio:
        boot = sampling.mean_ratio(uncached_series or [0.0], cached_series or [0.0], seed)
        return Ratio(boot.ratio * per_op, boot.ci_low * per_op, boot.ci_high * per_op)

    calls = pg(uncached_summary.pg_interval_calls_per_second,
               cached_summary.pg_interval_calls_per_second)
    cpu = pg(uncached_summary.pg_interval_cpu_per_second,
             cached_summary.pg_interval_cpu_per_second)
    removed = 1 - 1 / calls.ratio if calls.ratio else 0.0
    shared = [op for op in cached.recording.parts if op in uncached.recording.parts]
    return Saving(
        cached.rate,
        sampling.histogram_ratio(hist(uncached), hist(cached), 0.5, seed),
        sampling.histogram_ratio(hist(uncached), hist(cached), 0.99, seed),
        calls, cpu, removed,
        {op: sampling.histogram_ratio(hist(uncached, op), hist(cached, op), 0.5, seed)
         for op in shared})


# --- scratch cards and the write check -------------------------------------------------------

@dataclass
class Scratch:
    """Cards created for the mix's writes, one pool per write operation."""

    pools: dict[str, list[int]] = field(default_factory=dict)
    funding: int = 0  # recharges made before the run (tap cards need a balance)

    @property
    def card_ids(self) -> list[int]:
        return [c for pool in self.pools.values() for c in pool]

    @classmethod
    def create(cls, conn: psycopg.Connection[Any], needed: dict[str, int]) -> Scratch:
        """The cards (active, anonymous); each tap card funded by real recharges."""
        from recharge_cli import cards
        from recharge_cli.cache import Cache

        scratch = cls()
        for op, count in needed.items():
            rows = conn.execute(
                "INSERT INTO public.cards (card_id, status) "
                "SELECT nextval('public.card_id_seq'), 'active' FROM generate_series(1, %s) "
                "RETURNING card_id", (count,)).fetchall()
            scratch.pools[op] = [r["card_id"] for r in rows]
        no_cache = Cache(None, "")
        for card in scratch.pools.get("tap", []):
            for amount in TAP_FUNDING:
                cards.recharge(conn, no_cache, card, amount, key=f"bench-mix-{uuid.uuid4().hex}")
                scratch.funding += 1
        return scratch

    def retire(self, conn: psycopg.Connection[Any]) -> None:
        if self.card_ids:
            conn.execute("UPDATE public.cards SET status = 'inactive' "
                         "WHERE card_id = ANY(%s) AND status <> 'inactive'", (self.card_ids,))

    def check(self, conn: psycopg.Connection[Any], written: list[tuple[str, int, int]]
              ) -> WriteCheck:
        """Through `recharges` and `trips`: each reported (card, recharge_id) or (card,
        trip_id) is there exactly once, the scratch cards hold nothing else, and each
        card's balance is its recharges less its fares."""
        kinds, card_ids, ids = ([w[i] for w in written] for i in range(3))
        row = conn.execute(
            "WITH reported(kind, card_id, id) AS (SELECT * FROM unnest(%(kinds)s::text[], "
            "     %(cards)s::bigint[], %(ids)s::bigint[])) "
            "SELECT (SELECT count(*) FROM public.recharges r WHERE r.card_id = ANY(%(scratch)s)) "
            "         AS recharges, "
            "       (SELECT count(*) FROM public.trips t WHERE t.card_id = ANY(%(scratch)s)) "
            "         AS taps, "
            "       (SELECT count(*) FROM reported p WHERE CASE p.kind "
            "          WHEN 'recharge' THEN (SELECT count(*) FROM public.recharges r "
            "               WHERE r.card_id = p.card_id AND r.recharge_id = p.id) "
            "          ELSE (SELECT count(*) FROM public.trips t "
            "               WHERE t.card_id = p.card_id AND t.trip_id = p.id) END <> 1) "
            "         + (SELECT count(*) - count(DISTINCT (kind, card_id, id)) FROM reported) "
            "         AS missing, "
            "       (SELECT count(*) FROM public.cards c WHERE c.card_id = ANY(%(scratch)s) "
            "          AND c.balance <> (SELECT coalesce(sum(r.amount), 0) FROM public.recharges r "
            "                            WHERE r.card_id = c.card_id) "
            "                         - (SELECT coalesce(sum(t.fare_charged), 0) FROM public.trips t "
            "                            WHERE t.card_id = c.card_id)) AS mismatches",
            {"kinds": kinds, "cards": card_ids, "ids": ids, "scratch": self.card_ids}).fetchone()
        assert row is not None
        recharges, taps = kinds.count("recharge"), kinds.count("tap")
        return WriteCheck(len(self.card_ids), recharges, taps, self.funding, row["recharges"],
                          row["taps"], row["missing"], row["mismatches"],
                          ok=(row["recharges"], row["taps"], row["missing"], row["mismatches"])
                          == (recharges + self.funding, taps, 0, 0))


# --- one whole mix: every rate, each mode in turn ---------------------------------------------

def read_cards(conn: psycopg.Connection[Any], distribution: str, seed: int,
               limit: int = 1_000_000) -> list[int]:
    """The active cards reads choose from, in rank order: newest first for `latest`, else a
    fixed pseudo-random order (so that the popular ranks are spread over the cards)."""
    order = "card_id DESC" if distribution == "latest" else "hashint8(card_id + %(seed)s)"
    rows = conn.execute(f"SELECT card_id FROM public.cards WHERE status = 'active' "
                        f"ORDER BY {order} LIMIT %(limit)s", {"seed": seed, "limit": limit}
                        ).fetchall()
    if not rows:
        raise InvalidInput("the mix needs active cards to read: run `recharge db seed` first")
    return [r["card_id"] for r in rows]


def taps_per_card(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(station taps board at, taps a funded card can pay at the dearest fare)."""
    row = conn.execute(
        "SELECT (SELECT station_id FROM public.stations WHERE station_type <> 'CABLE' "
        "        ORDER BY station_id LIMIT 1) AS station, "
        "       (SELECT max(amount) FROM public.fares WHERE valid_to IS NULL OR valid_to > now()) "
        "        AS fare").fetchone()
    if row is None or row["station"] is None or not row["fare"]:
        raise InvalidInput("the tap operation needs a station and a valid fare: load the "
                           "reference data (`recharge db seed`)")
    return row["station"], sum(TAP_FUNDING) // row["fare"]


@dataclass
class Mixer:
    """Runs a mix: plans every run, creates the scratch cards, then runs each rate in each
    mode in turn; `runs` keeps what finished (an interrupt keeps the runs before it)."""

    spec: MixSpec
    rates: list[float]
    seconds: float
    processes: int
    seed: int
    endpoint: load.Endpoint
    runs: list[RawRun] = field(default_factory=list)
    scratch: Scratch = field(default_factory=Scratch)
    cards: int = 0  # the cards reads choose from
    pg_source: str = ""
    pg_per_operation: bool = False

    def run(self, conn: psycopg.Connection[Any],
            advance: Callable[[int], None] = lambda _n: None) -> None:
        names = list(self.spec.weights)
        readable = read_cards(conn, self.spec.distribution, self.seed)
        self.cards = len(readable)
        station, per_tap_card = taps_per_card(conn) if "tap" in names else (0, 1)
        per_card = {"tap": per_tap_card, "recharge": runner.WRITES_PER_CARD}
        plans = [plan_sends(self.spec, readable, rate, self.seconds, self.processes,
                            self.seed * 1_000 + r) for r, rate in enumerate(self.rates)]
        needed: dict[str, int] = {}
        for ops, _ in plans:
            for process_ops in ops:
                for op, n in write_cards_needed(names, process_ops, per_card).items():
                    needed[op] = needed.get(op, 0) + n * len(self.spec.modes)
        self.scratch = Scratch.create(conn, needed)
        pools = {op: list(cards) for op, cards in self.scratch.pools.items()}
        pg = PgLoad(conn, names)
        self.pg_source = pg.source
        self.pg_per_operation = pg.per_operation
        with load.pool(self.processes) as pool:
            load.warm(pool, self.processes)
            for r, (rate, (ops, cards)) in enumerate(zip(self.rates, plans, strict=True)):
                for mode in self.spec.modes:
                    jobs = [Job(self.endpoint, cached=mode == "cached", names=tuple(names),
                                ops=ops[n].tolist(),
                                cards=assign_writes(names, ops[n], cards[n], pools,
                                                    per_card).tolist(),
                                station=station, start_at=time.time() + load.START_DELAY,
                                seconds=self.seconds, rate=rate / self.processes,
                                seed=self.seed * 1_000 + r * self.processes + n,
                                ttl_scale=self.spec.ttl_scale)
                            for n in range(self.processes)]
                    self.runs.append(self._run(pool, pg, mode, rate, jobs))
                    advance(1)

    def _run(self, pool: concurrent.futures.ProcessPoolExecutor, pg: PgLoad, mode: str,
             rate: float, jobs: list[Job]) -> RawRun:
        """One run, PostgreSQL's counters read when it starts, every second, and at the end."""
        futures = [pool.submit(run_job, job) for job in jobs]
        time.sleep(max(0.0, jobs[0].start_at - time.time()))
        counters = [pg.read()]
        pending = set(futures)
        while pending:
            _, pending = concurrent.futures.wait(pending, timeout=1.0)
            if pending:
                counters.append(pg.read())
        pg.settle()
        counters.append(pg.read())
        merged = load.Recording()
        hits = dict.fromkeys(READS, 0)
        misses = dict.fromkeys(READS, 0)
        written: list[tuple[str, int, int]] = []
        for future in futures:
            part = future.result()
            merged.merge(load.Recording.decode(part.recording))
            for op in READS:
                hits[op] += part.hits[op]
                misses[op] += part.misses[op]
            written += part.written
        return RawRun(mode, rate, self.seconds, self.processes, merged, hits, misses, written,
                      counters)

    def result(self, conn: psycopg.Connection[Any] | None) -> MixResult:
        """The summaries (and, given `conn`, the write check) of the runs that finished."""
        from recharge_cli import stats

        summaries = [run.summary(self.pg_per_operation) for run in self.runs]
        by_rate: dict[float, dict[str, tuple[RawRun, MixRunSummary]]] = {}
        for run, summary in zip(self.runs, summaries, strict=True):
            by_rate.setdefault(run.rate, {})[run.mode] = (run, summary)
        savings = [saving(pair["cached"][0], pair["no_cache"][0], pair["cached"][1],
                          pair["no_cache"][1], self.seed)
                   for pair in by_rate.values() if len(pair) == 2]
        written = [w for run in self.runs for w in run.written]
        check = self.scratch.check(conn, written) if conn is not None and self.scratch.card_ids \
            else None
        ttls = {op: max(1, round(stats.STATISTICS[STATISTICS[op]].ttl * self.spec.ttl_scale))
                for op in self.spec.weights if op in STATISTICS}
        return MixResult(
            dict(self.spec.weights), self.spec.distribution, self.spec.zipf_theta,
            self.spec.ttl_scale, ttls, self.cards, self.pg_source,
            "pg_stat_user_functions" if self.pg_per_operation else None,
            [s for s in summaries if s.mode == "cached"],
            [s for s in summaries if s.mode == "no_cache"], savings, check)
