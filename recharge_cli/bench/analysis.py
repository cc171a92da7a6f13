"""From raw measurements to numbers: summaries per series, cache speed-ups with their
intervals, budgets, saturation points of load sweeps, SLO shares and warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recharge_cli.bench import sampling
from recharge_cli.bench.load import LoadRun
from recharge_cli.bench.runner import BASELINES, KINDS, SERIES_KINDS, TARGETS, Samples
from recharge_cli.bench.sampling import Ratio, Summary

# The performance budgets (README) that one bench run checks side by side:
# (budget, measured series, baseline series, limit, applies with Redis Cluster?).
BUDGETS = [
    ("cache hit path p50 ≤ 1.2 × raw redis-py GET p50", "balance/hit", "baseline/redis_get",
     1.2, False),
    ("cache hit path p50 ≤ 1.3 × raw cluster-client GET p50 (Redis Cluster)", "balance/hit",
     "baseline/redis_get", 1.3, True),
    ("balance from PostgreSQL p50 ≤ 1.3 × raw prepared point query p50", "balance/db",
     "baseline/pg_point_query", 1.3, None),
]
BUDGET_SAMPLES = 400  # trials per series a budget's verdict needs (README "Performance budgets")
PASS, FAIL, TOO_FEW = "pass", "fail", "not enough samples"  # a budget's status


@dataclass
class Speedups:
    """A target's cache speed-ups: ratios of medians with bootstrap 95% intervals."""

    miss_over_hit: Ratio
    db_over_hit: Ratio


@dataclass
class BudgetCheck:
    budget: str
    ratio: float
    limit: float
    status: str  # PASS, FAIL or TOO_FEW
    samples: int
    samples_needed: int

    @property
    def verdict(self) -> str:
        """How the status reads in the summary and report.md."""
        return {PASS: "pass", FAIL: "FAIL", TOO_FEW: "not enough samples"}[self.status]


@dataclass
class LoadSummary:
    """One load run: what was offered and served, and its latency (µs) from HDR."""

    target: str
    kind: str
    mode: str  # closed or open
    processes: int
    seconds: float
    offered_per_second: float | None
    achieved_per_second: float
    operations: int
    late: int
    skipped: int
    kept_up: bool
    client_busy_share: float
    p50_us: float | None = None
    p99_us: float | None = None
    p99_9_us: float | None = None
    p99_99_us: float | None = None
    max_us: float | None = None
    mean_us: float | None = None
    slower_than_slo: float | None = None
    histogram: str = ""  # the HDR histogram, encoded


@dataclass
class SaturationPoint:
    """Per target and kind of an open-loop sweep: the most operations/s it served, and
    whether it saturated (some offered rate was not kept up) or may go higher."""

    target: str
    kind: str
    saturated: bool
    ops_per_second: float
    first_rate_not_kept_up: float | None
    client_bound: bool


@dataclass
class Analysis:
    summary: dict[str, Summary]  # by series
    speedups: dict[str, Speedups]  # by target
    budgets: list[BudgetCheck]
    loads: list[LoadSummary] = field(default_factory=list)
    saturation: list[SaturationPoint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def budgets_pass(self) -> bool:
        """No budget failed (one measured from too few samples has no verdict)."""
        return all(b.status != FAIL for b in self.budgets)


def latency_percentiles(run: LoadRun) -> dict[str, float]:
    h = run.recording.latency
    if not h.get_total_count():
        return {}
    return {"p50_us": h.get_value_at_percentile(50) / 1000,
            "p99_us": h.get_value_at_percentile(99) / 1000,
            "p99_9_us": h.get_value_at_percentile(99.9) / 1000,
            "p99_99_us": h.get_value_at_percentile(99.99) / 1000,
            "max_us": h.get_max_value() / 1000, "mean_us": h.get_mean_value() / 1000}


def share_slower(values_ns: list[int] | Any, slo_ms: float) -> float:
    """Share of operations slower than `slo_ms` (a list of samples or an HDR histogram)."""
    limit = slo_ms * 1_000_000
    if isinstance(values_ns, list):
        return sum(v > limit for v in values_ns) / len(values_ns) if values_ns else 0.0
    total = values_ns.get_total_count()
    within = sum(step.count_added_in_this_iter_step for step in values_ns.get_recorded_iterator()
                 if step.value_iterated_to <= limit)
    return (total - within) / total if total else 0.0


def load_summary(run: LoadRun, slo_ms: float | None) -> LoadSummary:
    rec = run.recording
    return LoadSummary(
        run.target, run.kind, "closed" if run.offered is None else "open", run.processes,
        run.seconds, run.offered, run.achieved, rec.operations, rec.late, rec.skipped,
        run.kept_up, rec.busy_share, **latency_percentiles(run),
        slower_than_slo=None if slo_ms is None else share_slower(rec.latency, slo_ms),
        histogram=rec.latency.encode().decode())


def saturation(runs: list[LoadRun]) -> list[SaturationPoint]:
    found = []
    for target, kind in dict.fromkeys((r.target, r.kind) for r in runs if r.offered):
        series = sorted((r for r in runs if (r.target, r.kind) == (target, kind) and r.offered),
                        key=lambda r: r.offered or 0)
        failed = next((r for r in series if not r.kept_up), None)
        best = max(series, key=lambda r: r.achieved)
        found.append(SaturationPoint(
            target, kind, failed is not None, best.achieved, failed.offered if failed else None,
            any(r.client_bound for r in series if not r.kept_up)))
    return found


def budgets(summary: dict[str, Summary], cluster: bool) -> list[BudgetCheck]:
    checked = []
    for text, measured, baseline, limit, for_cluster in BUDGETS:
        if for_cluster not in (None, cluster) or measured not in summary \
                or baseline not in summary:
            continue
        ratio = summary[measured].p50_us / summary[baseline].p50_us
        samples = min(summary[measured].n, summary[baseline].n)
        status = TOO_FEW if samples < BUDGET_SAMPLES else PASS if ratio <= limit else FAIL
        checked.append(BudgetCheck(text, ratio, limit, status, samples, BUDGET_SAMPLES))
    return checked


def _warnings(samples: Samples, loads: list[LoadRun]) -> list[str]:
    warnings = [w for series, values in samples.values.items()
                for w in sampling.warnings_for(series, values)]
    return warnings + [
        f"{r.target}/{r.kind} at {r.offered:,.0f}/s: the load processes were busy on "
        f"their CPUs {r.recording.busy_share:.0%} of the time; the client, not the "
        "server, may be what could not keep up (use fewer targets per run or a "
        "bigger machine for the client)"
        for r in loads if r.offered and not r.kept_up and r.client_bound]


def analyse(samples: Samples, loads: list[LoadRun], targets: list[str], seed: int,
            cluster: bool = False, slo_ms: float | None = None) -> Analysis:
    summary = {series: sampling.summarize(values) for series, values in samples.values.items()}
    if slo_ms is not None:
        for series, values in samples.values.items():
            summary[series].slower_than_slo = share_slower(values, slo_ms)
    speedups = {}
    for target in (t for t in targets if t in TARGETS and all(
            f"{t}/{kind}" in samples.values for kind in KINDS)):  # partial runs
        hit = samples.values[f"{target}/hit"]
        speedups[target] = Speedups(
            sampling.speedup(samples.values[f"{target}/miss"], hit, seed),
            sampling.speedup(samples.values[f"{target}/db"], hit, seed))
    return Analysis(summary, speedups, budgets(summary, cluster),
                    [load_summary(r, slo_ms) for r in loads], saturation(loads),
                    _warnings(samples, loads))


def summary_rows(analysis: Analysis) -> list[dict[str, Any]]:
    """One row per series for the CSV and the screen: its latency summary and, on miss
    rows, the speed-ups (numbers)."""
    rows = []
    for series, s in analysis.summary.items():
        target, kind = series.split("/")
        row: dict[str, Any] = {"target": target, "kind": kind, **{
            k: v for k, v in vars(s).items() if v is not None}}
        if kind == "miss" and target in analysis.speedups:
            for name, sp in vars(analysis.speedups[target]).items():
                row.update({name: sp.ratio, f"{name}_ci_low": sp.ci_low,
                            f"{name}_ci_high": sp.ci_high})
        rows.append(row)
    order = {k: i for i, k in enumerate((*SERIES_KINDS, *BASELINES))}
    return sorted(rows, key=lambda r: (r["target"] == "baseline", r["target"], order[r["kind"]]))
