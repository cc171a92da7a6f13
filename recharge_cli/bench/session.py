"""One bench run from start to finish: what to run (RunSpec) in, typed results (RunResult)
out. The latency trials, then the load runs (closed loop, one open-loop rate, or a sweep
of rates), then the analysis; scratch cards and keys are cleaned up whatever happens."""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from recharge_cli.bench import analysis, environment, load, runner
from recharge_cli.bench.mix import Mixer, MixResult, MixSpec
from recharge_cli.bench.results import Progress
from recharge_cli.render import Output

OPEN_LOOP_PROCESSES = 4  # load processes of an open-loop run unless --concurrency says


@dataclass(frozen=True)
class RunSpec:
    targets: list[str]
    iterations: int = 100
    warmup: int = 10
    seed: int = 1
    concurrency: int = 0  # load processes; 0 = no closed-loop run
    duration: float = 5.0  # seconds of each load run
    rates: list[float] = field(default_factory=list)  # open-loop operations/s, one run each
    slo_ms: float | None = None
    cluster: bool = False
    mix: MixSpec | None = None  # a weighted mix instead of the targets one by one

    @property
    def processes(self) -> int:
        return self.concurrency or (OPEN_LOOP_PROCESSES if self.rates else 0)

    @property
    def trials(self) -> int:
        """Timed latency trials: every series of every target, and the baselines (none in a
        mix run)."""
        if self.mix:
            return 0
        return self.iterations * (sum(len(runner.kinds_of(t)) for t in self.targets)
                                  + len(runner.BASELINES))

    def load_runs(self) -> list[tuple[str, str, float | None]]:
        """(target, kind, offered rate or None for a closed loop) of every load run."""
        if not self.processes or self.mix:
            return []
        rates: list[float | None] = list(self.rates) or [None]
        return [(target, kind, rate) for target in self.targets
                for _, kind in runner.kinds_of(target) for rate in rates]


@dataclass
class RunResult:
    spec: RunSpec
    started: dt.datetime
    samples: runner.Samples
    loads: list[load.LoadRun]
    analysis: analysis.Analysis
    environment: environment.Environment
    write_check: runner.WriteCheck | None = None
    partial: bool = False  # interrupted: what was measured before the interrupt
    mix: MixResult | None = None

    def progress(self) -> Progress:
        """Trials and load runs done, and planned (they differ in a partial run)."""
        if self.spec.mix:
            done = len(self.mix.runs()) if self.mix else 0
            return Progress(0, 0, done, len(self.spec.rates) * len(self.spec.mix.modes))
        return Progress(len(self.samples.order), self.spec.trials, len(self.loads),
                        len(self.spec.load_runs()))

    def progress_text(self) -> str:
        """"523 of 1,300 timed trials, 2 of 8 load runs" (load runs only when planned)."""
        done = self.progress()
        if self.spec.mix:
            return f"{done.load_runs} of {done.load_runs_planned} mix runs"
        return (f"{done.trials:,} of {done.trials_planned:,} timed trials" + (
            f", {done.load_runs} of {done.load_runs_planned} load runs"
            if done.load_runs_planned else ""))


def run(spec: RunSpec, conn: psycopg.Connection[Any], dsn: str, redis_url: str,
        cache_prefix: str, output: Output) -> RunResult:
    """Run the bench; `conn` belongs to the schema owner (scratch cards, row counts)."""
    from recharge_cli import demo

    if demo.is_empty(conn):
        output.message("The database is empty: loading the demo data set first …")
        demo.load(conn, output=output)
    started = dt.datetime.now(dt.UTC)
    prefix = f"{cache_prefix}bench:{started:%H%M%S%f}:"
    if spec.mix:
        return _run_mix(spec, spec.mix, conn, dsn, redis_url, prefix, started, output)
    conns = runner.open_connections(dsn, redis_url, prefix, spec.targets, spec.cluster)
    scratch = runner.ScratchCards([])
    plan = spec.load_runs()
    if runner.WRITE_TARGET in spec.targets:
        scratch = runner.ScratchCards.create(conn, spec.iterations + spec.warmup + (
            load.scratch_cards_needed(spec.processes, spec.duration, spec.rates)
            * runner.WRITES_PER_CARD if plan else 0))
        output.message(f"the recharge target writes to {len(scratch.card_ids)} new scratch "
                       "card(s), retired (inactive) afterwards")
    samples, partial = runner.Samples(), False
    loads: list[load.LoadRun] = []
    try:
        card_ids = runner.sample_cards(conn, max(10, min(spec.iterations, 1000)), spec.seed)
        try:
            with output.progress("Latency trials", total=spec.trials) as bar:
                runner.run(conns, spec.targets, spec.iterations, spec.warmup, spec.seed,
                           card_ids, scratch.card_ids, samples, bar.advance)
            _load_runs(spec, plan, dsn, redis_url, prefix, card_ids, scratch.card_ids, loads,
                       output)
        except KeyboardInterrupt:
            for cache in conns.caches.values():  # a trial's reply may be left unread
                cache.discard_connections()
            if not samples.values:
                raise  # nothing measured: nothing to report
            partial = True
        write_check = None
        if scratch.card_ids and not partial:  # an interrupted write's outcome is not counted
            writes = spec.iterations + spec.warmup + sum(
                r.recording.operations for r in loads if r.target == runner.WRITE_TARGET)
            write_check = scratch.check(conn, writes)
        return RunResult(spec, started, samples, loads,
                         analysis.analyse(samples, loads, spec.targets, spec.seed,
                                          spec.cluster, spec.slo_ms),
                         environment.probe(conn, conns.caches["baseline"],
                                           {**asdict(spec), "processes": spec.processes}),
                         write_check, partial)
    finally:  # also on errors and interrupts: no scratch card is left active
        with contextlib.suppress(psycopg.Error):
            scratch.retire(conn)
        conns.caches["baseline"].flush()
        conns.close()


def _load_runs(spec: RunSpec, plan: list[tuple[str, str, float | None]], dsn: str,
               redis_url: str, prefix: str, card_ids: list[int], scratch: list[int],
               runs: list[load.LoadRun], output: Output) -> None:
    """Every load run of the plan, appended to `runs` as it ends."""
    if not plan:
        return
    mode = (f"open loop at {', '.join(f'{r:,.0f}' for r in spec.rates)} operations/s"
            if spec.rates else "closed loop")
    output.message(f"load: {len(plan)} run(s), {mode}, {spec.processes} processes × "
                   f"{spec.duration:g} s each …")
    base = load.Endpoint(dsn, redis_url, prefix, spec.cluster)
    with load.pool(spec.processes) as pool, output.progress("Load runs", total=len(plan)) as bar:
        load.warm(pool, spec.processes)
        for n, (target, kind, rate) in enumerate(plan):
            cards = scratch if target == runner.WRITE_TARGET else card_ids
            jobs = load.jobs(base, target, kind, cards, spec.processes, spec.duration, rate,
                             spec.seed * 1_000 + n * spec.processes)
            runs.append(load.LoadRun(target, kind, spec.processes, spec.duration, rate,
                                     load.run(jobs, pool)))
            bar.advance(1)


def _run_mix(spec: RunSpec, mix: MixSpec, conn: psycopg.Connection[Any], dsn: str,
             redis_url: str, prefix: str, started: dt.datetime, output: Output) -> RunResult:
    """The mix at every rate, cached and (unless skipped) uncached in turn; the scratch
    cards checked, then retired whatever happens."""
    from recharge_cli.cache import Cache

    mixer = Mixer(mix, list(spec.rates), spec.duration, spec.processes, spec.seed,
                  load.Endpoint(dsn, redis_url, prefix, spec.cluster))
    modes = " then ".join(m.replace("_", " ") for m in mix.modes)
    output.message(f"mix {', '.join(f'{k}={v}' for k, v in mix.weights.items())}, "
                   f"{mix.distribution} cards, at {', '.join(f'{r:,.0f}' for r in spec.rates)} "
                   f"operations/s ({modes} at each), {spec.processes} processes × "
                   f"{spec.duration:g} s …")
    cache = Cache.from_url(redis_url, prefix, cluster=spec.cluster)
    partial = False
    try:
        try:
            with output.progress("Mix runs", total=len(spec.rates) * len(mix.modes)) as bar:
                mixer.run(conn, bar.advance)
        except KeyboardInterrupt:
            if not mixer.runs:
                raise
            partial = True
        if mixer.scratch.card_ids:
            output.message(f"the writes went to {len(mixer.scratch.card_ids)} new scratch "
                           "card(s), retired (inactive) afterwards")
        result = mixer.result(None if partial else conn)
        return RunResult(spec, started, runner.Samples(), [], analysis.analyse(
                             runner.Samples(), [], [], spec.seed, spec.cluster, spec.slo_ms),
                         environment.probe(conn, cache, {**asdict(spec),
                                                         "processes": spec.processes}),
                         None, partial, result)
    finally:
        with contextlib.suppress(psycopg.Error):
            mixer.scratch.retire(conn)
        cache.flush()
        cache.close()
