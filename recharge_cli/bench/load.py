"""Load runs: N processes (not threads: the client side is Python-bound and would
serialise on the GIL) run one target and kind for a fixed time, all starting together.
A process may run several clients, each a thread with its own connections (as pgbench
-j runs several of its -c clients per thread): fewer processes than clients switch less
between processes on a machine with few cores.

Closed loop: each process runs the operation back to back (throughput at a given
concurrency; queueing behind a slow operation is hidden, since nothing is sent meanwhile).
Open loop (`rate`): each process follows a Poisson schedule of rate/N operations per
second (as pgbench -R does) and every latency is measured from the operation's intended
start, so time spent queued behind a stall counts (no coordinated omission). An operation
started more than LATE_NS after its intended start is counted late; one already more than
SKIP_AFTER_NS behind schedule is skipped and counted, and so is one still unsent when the
run's time is up (a run never overruns its time).

Latencies go into HDR histograms (mergeable across processes), and per second of the run
into one small histogram each, for the time series of throughput and p99.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

from hdrh.histogram import HdrHistogram

from recharge_cli.bench import runner

START_DELAY = 1.0  # seconds for every (warm) process to connect and cache keys before the clock starts
LOWEST_NS, HIGHEST_NS = 1, 60_000_000_000  # 1 ns … 60 s, 3 significant digits
LATE_NS = 1_000_000  # started more than 1 ms after its intended start
SKIP_AFTER_NS = 1_000_000_000  # more than 1 s behind schedule: skipped, as pgbench -L does
BUSY_CLIENT = 0.9  # a process busy on its CPU this share of the run could not have sent more


def histogram(digits: int = 3) -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, digits)


@dataclass
class Recording:
    """What one process (or, merged, all of them) saw in one load run."""

    latency: HdrHistogram = field(default_factory=histogram)
    per_second: dict[int, HdrHistogram] = field(default_factory=dict)
    operations: int = 0
    late: int = 0
    skipped: int = 0
    busy_share: float = 0.0  # client CPU time / wall time (max over processes when merged)
    parts: dict[str, HdrHistogram] = field(default_factory=dict)  # by operation, in a mix

    def record(self, second: int, latency_ns: int, label: str | None = None) -> None:
        latency_ns = min(max(latency_ns, LOWEST_NS), HIGHEST_NS)
        self.latency.record_value(latency_ns)
        if label is not None:
            self.parts.setdefault(label, histogram()).record_value(latency_ns)
        if second not in self.per_second:
            self.per_second[second] = histogram(2)
        self.per_second[second].record_value(latency_ns)
        self.operations += 1

    def encode(self) -> dict[str, Any]:
        """A picklable, JSON-able form (HDR's compressed base64 encoding)."""
        return {"latency": self.latency.encode().decode(), "operations": self.operations,
                "late": self.late, "skipped": self.skipped, "busy_share": self.busy_share,
                "per_second": {s: h.encode().decode() for s, h in self.per_second.items()},
                "parts": {k: h.encode().decode() for k, h in self.parts.items()}}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> Recording:
        return cls(HdrHistogram.decode(data["latency"]),
                   {int(s): HdrHistogram.decode(h) for s, h in data["per_second"].items()},
                   data["operations"], data["late"], data["skipped"], data["busy_share"],
                   {k: HdrHistogram.decode(h) for k, h in data.get("parts", {}).items()})

    def merge(self, other: Recording) -> None:
        self.latency.add(other.latency)
        for second, h in other.per_second.items():
            if second in self.per_second:
                self.per_second[second].add(h)
            else:
                self.per_second[second] = h
        self.operations += other.operations
        self.late += other.late
        self.skipped += other.skipped
        self.busy_share = max(self.busy_share, other.busy_share)
        for label, h in other.parts.items():
            self.parts.setdefault(label, histogram()).add(h)


def drive(operation: Callable[[int], Any], seconds: float,
          rate: float | None = None, start_ns: int | None = None, seed: int = 0,
          after: Callable[[int], Any] = lambda _i: None,
          label: Callable[[int], str | None] = lambda _i: None,
          by_arrival: bool = False) -> Recording:
    """Run `operation(i)` for `seconds` from `start_ns` (perf_counter_ns): back to back
    (closed loop) or on a Poisson schedule of `rate` per second (open loop). `after(i)`
    runs once operation i is timed (outside its latency; in an open loop it may delay the
    next start, which then counts). `label(i)` names operation i's part of a mix. With
    `by_arrival`, i counts the schedule's arrivals, skipped ones included (operation i is
    the i-th arrival's, as planned); else the operations sent."""
    rec = Recording()
    start_ns = start_ns or time.perf_counter_ns()
    time.sleep(max(0.0, (start_ns - time.perf_counter_ns()) / 1e9))
    deadline = start_ns + int(seconds * 1e9)
    rng = random.Random(seed)
    cpu_start, wall_start = time.process_time_ns(), time.perf_counter_ns()
    intended, i = start_ns, 0
    while True:
        if rate:
            intended += int(rng.expovariate(rate) * 1e9)
            if intended >= deadline:
                break
            now = time.perf_counter_ns()
            if now < intended:
                time.sleep((intended - now) / 1e9)
            elif now - intended > SKIP_AFTER_NS or now >= deadline:
                rec.skipped += 1  # too far behind, or due but the run is over: never sent
                i += by_arrival
                continue
            began = time.perf_counter_ns()
            rec.late += began - intended > LATE_NS
        else:
            intended = began = time.perf_counter_ns()
            if began >= deadline:
                break
        operation(i)
        rec.record((intended - start_ns) // 1_000_000_000, time.perf_counter_ns() - intended,
                   label(i))
        after(i)
        i += 1
    wall = time.perf_counter_ns() - wall_start
    rec.busy_share = (time.process_time_ns() - cpu_start) / wall if wall else 0.0
    return rec


@dataclass(frozen=True)
class Endpoint:
    """Where a load process connects, and the cache prefix of the run."""

    dsn: str
    redis_url: str
    prefix: str
    cluster: bool = False


@dataclass(frozen=True)
class Job:
    """One process's share of a load run (picklable: it crosses to a spawned process)."""

    endpoint: Endpoint
    target: str
    kind: str
    cards: list[int]
    start_at: float  # time.time() when the clock starts
    seconds: float
    rate: float | None  # this process's operations/s; None = closed loop
    seed: int
    clients: int = 1  # client threads in this process, each with its own connections


def _run_job(job: Job) -> dict[str, Any]:
    """In a load process: its clients, each on its own slice of the process's cards and
    share of its rate (and its own schedule: the first client's is the process's); their
    recordings merged."""
    rate = job.rate / job.clients if job.rate else None
    with ThreadPoolExecutor(job.clients) as threads:
        futures = [threads.submit(_run_client, job, job.cards[n::job.clients] or job.cards, rate,
                                  job.seed + 1_000 * n) for n in range(job.clients)]
        merged = Recording()
        for future in futures:
            merged.merge(future.result())
    return merged.encode()


def _run_client(job: Job, cards: list[int], rate: float | None, seed: int) -> Recording:
    """One client: connect, warm the keys, then drive the operation."""
    from recharge_cli import db
    from recharge_cli.cache import Cache

    where = job.endpoint
    conn = db.connect(where.dsn, application_name=f"recharge-bench-load-{job.target}")
    cache = Cache.from_url(where.redis_url, where.prefix, cluster=where.cluster)
    try:
        operation, after = runner.operation(conn, cache, job.target, job.kind, cards)
        start_ns = time.perf_counter_ns() + int((job.start_at - time.time()) * 1e9)
        return drive(operation, job.seconds, rate, start_ns, seed, after)
    finally:
        conn.close()
        cache.close()


@dataclass
class LoadRun:
    """One target and kind under one load: closed loop, or open loop at an offered rate."""

    target: str
    kind: str
    processes: int
    seconds: float
    offered: float | None  # operations/s offered (open loop); None = closed loop
    recording: Recording

    @property
    def achieved(self) -> float:
        return self.recording.operations / self.seconds

    @property
    def kept_up(self) -> bool:
        """Did it serve the offered load? A path that cannot falls ever further behind its
        schedule, so its operations end up skipped (more than 1 s late, or still due when the
        run's time is up); at most 1 % skipped is a busy machine's odd stall, not saturation.
        (The achieved rate alone would not do: a Poisson schedule of 5 s at 250/s offers
        1,250 ± 35 operations.)"""
        rec = self.recording
        return self.offered is None or rec.skipped <= 0.01 * (rec.operations + rec.skipped)

    def per_second(self) -> list[tuple[int, int, float]]:
        """(second of the run, operations, p99 in µs) for each second."""
        return [(second, h.get_total_count(), h.get_value_at_percentile(99) / 1000)
                for second, h in sorted(self.recording.per_second.items())]

    @property
    def client_bound(self) -> bool:
        """A load process was busy on its CPU nearly all the time: the client, not the
        server, may be what limited the throughput."""
        return self.recording.busy_share >= BUSY_CLIENT


def scratch_cards_needed(processes: int, seconds: float, rates: list[float]) -> int:
    """Enough scratch cards for the write target: the offered rates, or the fastest closed
    loop we could plausibly see (2,000/s per process), none reaching its maximum balance."""
    writes = sum(rates) * seconds * 1.2 if rates else processes * seconds * 2_000
    return int(writes) // runner.WRITES_PER_CARD + processes


def run(jobs: list[Job], pool: ProcessPoolExecutor) -> Recording:
    """Every process's job at once; their recordings merged."""
    merged = Recording()
    for future in [pool.submit(_run_job, job) for job in jobs]:
        merged.merge(Recording.decode(future.result()))
    return merged


def _ignore_interrupts() -> None:
    """In a new load process: Ctrl-C is the parent's to handle (it stops the processes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def pool(processes: int) -> Iterator[ProcessPoolExecutor]:
    """The load processes; on an error or an interrupt they are stopped at once, not waited
    for (a run under way would otherwise finish its seconds first)."""
    executor = ProcessPoolExecutor(processes, mp_context=get_context("spawn"),
                                   initializer=_ignore_interrupts)
    try:
        yield executor
    except BaseException:
        workers = list((executor._processes or {}).values())  # no public way before 3.14
        for worker in workers:
            worker.terminate()
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            worker.join(1.0)
        raise
    executor.shutdown()


def _ready(seconds: float) -> None:
    """In a new load process: import what a job needs, then hold the process a moment so
    that every process of the pool takes one of these calls."""
    from recharge_cli import cache, db  # noqa: F401

    time.sleep(seconds)


def warm(executor: ProcessPoolExecutor, processes: int) -> None:
    """Start every process of the pool before the first timed run (spawning and importing
    take longer than START_DELAY)."""
    for future in [executor.submit(_ready, 0.3) for _ in range(processes)]:
        future.result()


def jobs(endpoint: Endpoint, target: str, kind: str, cards: list[int], processes: int,
         seconds: float, rate: float | None, seed: int, clients: int = 1) -> list[Job]:
    """Split one load run over the processes (of `clients` clients each): each its own slice
    of the cards and of the rate."""
    start_at = time.time() + START_DELAY
    return [Job(endpoint, target=target, kind=kind, cards=cards[n::processes] or cards,
                start_at=start_at, seconds=seconds, rate=rate / processes if rate else None,
                seed=seed + n, clients=clients)
            for n in range(processes)]
