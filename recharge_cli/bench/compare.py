"""`recharge bench compare`: the change of every series between bench runs (results.json),
as the ratio of medians against the first run with a bootstrap 95% interval.

The raw baselines (Redis GET, a prepared PostgreSQL point query) measure the machine,
not recharge: when they moved between runs, the machine was different or busier, and
every series is also given normalised by the baseline of the path it takes; the gate
(`fail_if_slower`) then judges the normalised ratios.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recharge_cli.bench import sampling
from recharge_cli.bench.model import to_json
from recharge_cli.bench.results import Results
from recharge_cli.bench.sampling import Ratio
from recharge_cli.errors import InvalidInput

DRIFT = 0.10  # a baseline moved when its whole interval is more than 10 % away from 1
# The raw baseline(s) each kind's path goes through.
PATH_BASELINES = {"hit": ("redis_get",), "db": ("pg_point_query",),
                  "write": ("pg_point_query",), "miss": ("redis_get", "pg_point_query")}


@dataclass
class Run:
    label: str  # the report folder's name
    results: Results


def load(path: Path) -> Run:
    """A run's results.json (a folder holding one is accepted too)."""
    path = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read bench results {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("samples_ns"), dict):
        raise InvalidInput(f"{path} is not a recharge bench results.json (no samples_ns)")
    try:
        results = Results.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{path} is not a recharge bench results.json this version "
                           f"reads: {exc}") from exc
    return Run(path.parent.name or str(path), results)


@dataclass
class Row:
    """One series of a later run against the base run."""

    series: str
    base: str
    run: str
    change: str  # slower, faster, no clear change, throughput, or "only in …"
    base_p50_us: float | None = None
    p50_us: float | None = None
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    normalised_ratio: float | None = None
    normalised_ci_low: float | None = None
    normalised_ci_high: float | None = None
    judged_on: str | None = None  # raw or normalised
    base_ops_per_second: float | None = None
    ops_per_second: float | None = None

    def judged(self) -> Ratio:
        """The ratio the verdict is on (normalised where the baselines moved)."""
        if self.judged_on == "normalised":
            return Ratio(self.normalised_ratio or 0.0, self.normalised_ci_low or 0.0,
                         self.normalised_ci_high or 0.0)
        return Ratio(self.ratio or 0.0, self.ci_low or 0.0, self.ci_high or 0.0)

    def as_row(self) -> dict[str, Any]:
        """For the screen and compare.csv: the fields this row has."""
        return {k: v for k, v in to_json(self).items() if v is not None}


@dataclass
class Comparison:
    rows: list[Row] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    regressions: list[Row] = field(default_factory=list)


def verdict(low: float, high: float, threshold: float = 0.0) -> str:
    """Slower/faster only when the whole 95% interval is beyond 1 (± threshold)."""
    if low > 1 + threshold:
        return "slower"
    if high < 1 - threshold:
        return "faster"
    return "no clear change"


def _baseline_drift(first: Run, run: Run, seed: int) -> dict[str, Ratio]:
    moved = {}
    for name in ("redis_get", "pg_point_query"):
        base, other = (r.results.samples_ns.get(f"baseline/{name}") for r in (first, run))
        if base and other:
            moved[name] = sampling.speedup(other, base, seed)
    return moved


def _normaliser(kind: str, drift: dict[str, Ratio]) -> float | None:
    names = PATH_BASELINES.get(kind, ())
    if not names or any(n not in drift for n in names):
        return None
    return math.prod(drift[n].ratio for n in names) ** (1 / len(names))


def changes(runs: list[Run], fail_if_slower: float | None = None, seed: int = 0) -> Comparison:
    """Every series of every later run against the first run."""
    first, result = runs[0], Comparison()
    for run in runs[1:]:
        drift = _baseline_drift(first, run, seed)
        drifted = {n: d for n, d in drift.items() if d.ci_low > 1 + DRIFT
                   or d.ci_high < 1 / (1 + DRIFT)}
        for name, d in drifted.items():
            result.warnings.append(
                f"{run.label}: the raw baseline {name} itself moved ×{d.ratio:.2f} "
                f"[{d.ci_low:.2f}, {d.ci_high:.2f}] against {first.label}: a different "
                "or busier machine; the verdicts use ratios normalised by the baselines")
        series = sorted(set(first.results.samples_ns) | set(run.results.samples_ns))
        rows = [_row(s, first, run, drift, bool(drifted), fail_if_slower, seed) for s in series]
        rows += _mix_rows(first, run, fail_if_slower, seed)
        result.rows += rows
        result.regressions += [r for r in rows if r.change == "slower" and fail_if_slower
                               is not None and not r.series.startswith("baseline/")]
        result.rows += _load_rows(first, run)
    return result


def _row(series: str, first: Run, run: Run, drift: dict[str, Ratio], drifted: bool,
         fail_if_slower: float | None, seed: int) -> Row:
    base, other = first.results.samples_ns.get(series), run.results.samples_ns.get(series)
    if not (base and other):
        return Row(series, first.label, run.label,
                   f"only in {first.label if base else run.label}")
    ratio = sampling.speedup(other, base, seed)
    row = Row(series, first.label, run.label, "", sampling.summarize(base).p50_us,
              sampling.summarize(other).p50_us, ratio.ratio, ratio.ci_low, ratio.ci_high)
    norm = None if series.startswith("baseline/") else _normaliser(series.split("/")[1], drift)
    if norm:
        row.normalised_ratio = ratio.ratio / norm
        row.normalised_ci_low = ratio.ci_low / norm
        row.normalised_ci_high = ratio.ci_high / norm
    row.judged_on = "normalised" if norm and drifted else "raw"
    judged = row.judged()
    row.change = verdict(judged.ci_low, judged.ci_high, (fail_if_slower or 0.0) / 100)
    return row


def _load_rows(first: Run, run: Run) -> list[Row]:
    """Achieved operations/s of the load runs both runs made (same target, kind, rate)."""
    def keyed(r: Run) -> dict[tuple[Any, ...], Any]:
        return {(x.target, x.kind, x.mode, x.offered_per_second): x for x in r.results.loads}

    base, other = keyed(first), keyed(run)
    return [Row(f"{k[0]}/{k[1]}/{k[2]}" + (f"@{k[3]:g}" if k[3] else ""), first.label,
                run.label, "throughput",
                ratio=other[k].achieved_per_second / base[k].achieved_per_second,
                base_ops_per_second=base[k].achieved_per_second,
                ops_per_second=other[k].achieved_per_second)
            for k in base if k in other and base[k].achieved_per_second]


def _mix_rows(first: Run, run: Run, fail_if_slower: float | None, seed: int) -> list[Row]:
    """The p50 of each operation (and the whole mix) of each mix run both runs made (same
    mode and offered rate): ratio later/first with a bootstrap interval from the HDR
    histograms."""
    from hdrh.histogram import HdrHistogram

    a, b = first.results.mix, run.results.mix
    if a is None or b is None:
        return []
    base = {(r.mode, r.offered_per_second): r for r in a.runs()}
    other = {(r.mode, r.offered_per_second): r for r in b.runs()}
    rows = []
    for key in (k for k in base if k in other):
        x, y = base[key], other[key]
        pairs = {"mix": (x.histogram, y.histogram, x.whole, y.whole),
                 **{op: (h, y.histograms[op], x.operations[op], y.operations[op])
                    for op, h in x.histograms.items() if op in y.histograms}}
        for op, (h_base, h_other, s_base, s_other) in pairs.items():
            ratio = sampling.histogram_ratio(HdrHistogram.decode(h_other),
                                             HdrHistogram.decode(h_base), 0.5, seed)
            rows.append(Row(f"mix/{key[0]}/{op}@{key[1]:g}", first.label, run.label,
                            verdict(ratio.ci_low, ratio.ci_high, (fail_if_slower or 0.0) / 100),
                            s_base.p50_us, s_other.p50_us, ratio.ratio, ratio.ci_low,
                            ratio.ci_high, judged_on="raw"))
    return rows


def plot(comparison: Comparison, path: Path, fail_if_slower: float | None) -> Path:
    """The ratio (later/first p50) of every series with its 95% interval, sorted."""
    from recharge_cli.charts import pyplot
    from recharge_cli.report_folder import save_figure

    plt = pyplot()
    rows = sorted((r for r in comparison.rows if r.ci_low is not None),
                  key=lambda r: r.judged().ratio)
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rows) + 2))
    colors = {"slower": "#e76f51", "faster": "#2a9d8f", "no clear change": "#777777"}
    for y, r in enumerate(rows):
        point, low, high = r.judged().ratio, r.judged().ci_low, r.judged().ci_high
        ax.errorbar([point], [y], xerr=[[point - low], [high - point]], fmt="o",
                    color=colors[r.change], capsize=2, markersize=4)
        if r.judged_on == "normalised":
            ax.plot([r.ratio], [y], "x", color="black", markersize=5)
    ax.axvline(1, color="black", linewidth=0.8)
    if fail_if_slower is not None:
        ax.axvline(1 + fail_if_slower / 100, color="#e76f51", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{r.series} ({r.run})" for r in rows], fontsize=7)
    ax.set_xscale("log")
    low, high = ax.get_xlim()
    ticks = [t for t in (0.1, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 4, 10) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter("")
    ax.set_xlabel("ratio of medians, later run / base run (log; below 1 is faster), 95% interval")
    labels = [plt.Line2D([], [], color=c, marker="o", linestyle="", label=k)
              for k, c in colors.items()]
    labels.append(plt.Line2D([], [], color="black", marker="x", linestyle="",
                             label="raw ratio, where the baselines moved\n(the dot is then "
                                   "normalised by them)"))
    if fail_if_slower is not None:
        labels.append(plt.Line2D([], [], color="#e76f51", linestyle="--",
                                 label=f"gate: {fail_if_slower:g} % slower"))
    ax.legend(handles=labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    base = comparison.rows[0].base if comparison.rows else ""
    ax.set_title(f"bench compare against {base}: change of each series' median", fontsize=10)
    ax.grid(alpha=0.3, which="both", axis="x")
    fig.tight_layout()
    return save_figure(fig, path)
