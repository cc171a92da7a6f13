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
from recharge_cli.errors import InvalidInput

DRIFT = 0.10  # a baseline moved when its whole interval is more than 10 % away from 1
# The raw baseline(s) each kind's path goes through.
PATH_BASELINES = {"hit": ("redis_get",), "db": ("pg_point_query",),
                  "write": ("pg_point_query",), "miss": ("redis_get", "pg_point_query")}


def load(path: Path) -> dict[str, Any]:
    """A run's results.json (a folder holding one is accepted too)."""
    path = path / "results.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read bench results {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("samples_ns"), dict):
        raise InvalidInput(f"{path} is not a recharge bench results.json (no samples_ns)")
    data["label"] = path.parent.name or str(path)
    return data


@dataclass
class Comparison:
    rows: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    regressions: list[dict[str, Any]] = field(default_factory=list)


def verdict(low: float, high: float, threshold: float = 0.0) -> str:
    """Slower/faster only when the whole 95% interval is beyond 1 (± threshold)."""
    if low > 1 + threshold:
        return "slower"
    if high < 1 - threshold:
        return "faster"
    return "no clear change"


def _baseline_drift(first: dict[str, Any], run: dict[str, Any], seed: int
                    ) -> dict[str, dict[str, float]]:
    moved = {}
    for name in ("redis_get", "pg_point_query"):
        base, other = (r["samples_ns"].get(f"baseline/{name}") for r in (first, run))
        if base and other:
            moved[name] = sampling.speedup(other, base, seed)
    return moved


def _normaliser(kind: str, drift: dict[str, dict[str, float]]) -> float | None:
    names = PATH_BASELINES.get(kind, ())
    if not names or any(n not in drift for n in names):
        return None
    return math.prod(drift[n]["ratio"] for n in names) ** (1 / len(names))


def changes(runs: list[dict[str, Any]], fail_if_slower: float | None = None,
            seed: int = 0) -> Comparison:
    """Every series of every later run against the first run."""
    first, result = runs[0], Comparison()
    for run in runs[1:]:
        drift = _baseline_drift(first, run, seed)
        drifted = {n: d for n, d in drift.items() if d["ci_low"] > 1 + DRIFT
                   or d["ci_high"] < 1 / (1 + DRIFT)}
        for name, d in drifted.items():
            result.warnings.append(
                f"{run['label']}: the raw baseline {name} itself moved ×{d['ratio']:.2f} "
                f"[{d['ci_low']:.2f}, {d['ci_high']:.2f}] against {first['label']}: a different "
                "or busier machine; the verdicts use ratios normalised by the baselines")
        for series in sorted(set(first["samples_ns"]) | set(run["samples_ns"])):
            row = _row(series, first, run, drift, bool(drifted), fail_if_slower, seed)
            result.rows.append(row)
            if row["change"] == "slower" and fail_if_slower is not None \
                    and not series.startswith("baseline/"):
                result.regressions.append(row)
        result.rows += _load_rows(first, run)
        for row in _mix_rows(first, run, fail_if_slower, seed):
            result.rows.append(row)
            if row["change"] == "slower" and fail_if_slower is not None:
                result.regressions.append(row)
    return result


def _row(series: str, first: dict[str, Any], run: dict[str, Any],
         drift: dict[str, dict[str, float]], drifted: bool, fail_if_slower: float | None,
         seed: int) -> dict[str, Any]:
    base, other = first["samples_ns"].get(series), run["samples_ns"].get(series)
    row: dict[str, Any] = {"series": series, "base": first["label"], "run": run["label"]}
    if not (base and other):
        return {**row, "change": f"only in {first['label'] if base else run['label']}"}
    ratio = sampling.speedup(other, base, seed)
    row.update({"base_p50_us": sampling.summarize(base)["p50_us"],
                "p50_us": sampling.summarize(other)["p50_us"], **ratio})
    kind = series.split("/")[1]
    norm = None if series.startswith("baseline/") else _normaliser(kind, drift)
    if norm:
        row.update({"normalised_ratio": ratio["ratio"] / norm,
                    "normalised_ci_low": ratio["ci_low"] / norm,
                    "normalised_ci_high": ratio["ci_high"] / norm})
    row["judged_on"] = "normalised" if norm and drifted else "raw"
    prefix = "normalised_" if row["judged_on"] == "normalised" else ""
    row["change"] = verdict(row[f"{prefix}ci_low"], row[f"{prefix}ci_high"],
                            (fail_if_slower or 0.0) / 100)
    return row


def _load_rows(first: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    """Achieved operations/s of the load runs both runs made (same target, kind, rate)."""
    def keyed(r: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
        return {(x["target"], x["kind"], x["mode"], x["offered_per_second"]): x
                for x in r.get("loads") or []}

    base, other = keyed(first), keyed(run)
    return [{"series": f"{k[0]}/{k[1]}/{k[2]}" + (f"@{k[3]:g}" if k[3] else ""),
             "base": first["label"], "run": run["label"],
             "base_ops_per_second": base[k]["achieved_per_second"],
             "ops_per_second": other[k]["achieved_per_second"],
             "ratio": other[k]["achieved_per_second"] / base[k]["achieved_per_second"],
             "change": "throughput"}
            for k in base if k in other and base[k]["achieved_per_second"]]


def _mix_rows(first: dict[str, Any], run: dict[str, Any], fail_if_slower: float | None,
              seed: int) -> list[dict[str, Any]]:
    """The p50 of each operation (and the whole mix) of each mix run both runs made (same
    mode and offered rate): ratio later/first with a bootstrap interval from the HDR
    histograms."""
    from hdrh.histogram import HdrHistogram

    from recharge_cli.bench.mix import MixResult

    if not (first.get("mix") and run.get("mix")):
        return []
    def keyed(data: dict[str, Any]) -> dict[tuple[str, float], Any]:
        return {(r.mode, r.offered_per_second): r for r in MixResult.from_json(data).runs()}

    base, other = keyed(first["mix"]), keyed(run["mix"])
    rows = []
    for key in (k for k in base if k in other):
        b, o = base[key], other[key]
        pairs = {"mix": (b.histogram, o.histogram),
                 **{op: (h, o.histograms[op]) for op, h in b.histograms.items()
                    if op in o.histograms}}
        for op, (h_base, h_other) in pairs.items():
            ratio = sampling.histogram_ratio(HdrHistogram.decode(h_other),
                                             HdrHistogram.decode(h_base), 0.5, seed)
            rows.append({"series": f"mix/{key[0]}/{op}@{key[1]:g}", "base": first["label"],
                         "run": run["label"], "base_p50_us": b.operations.get(op, b.whole).p50_us,
                         "p50_us": o.operations.get(op, o.whole).p50_us, **ratio,
                         "judged_on": "raw",
                         "change": verdict(ratio["ci_low"], ratio["ci_high"],
                                           (fail_if_slower or 0.0) / 100)})
    return rows


def plot(comparison: Comparison, path: Path, fail_if_slower: float | None) -> Path:
    """The ratio (later/first p50) of every series with its 95% interval, sorted."""
    from recharge_cli.charts import pyplot
    from recharge_cli.report_folder import save_figure

    plt = pyplot()
    def judged(r: dict[str, Any]) -> tuple[float, float, float]:
        prefix = "normalised_" if r["judged_on"] == "normalised" else ""
        return r[f"{prefix}ratio"], r[f"{prefix}ci_low"], r[f"{prefix}ci_high"]

    rows = sorted((r for r in comparison.rows if "ci_low" in r), key=lambda r: judged(r)[0])
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rows) + 2))
    colors = {"slower": "#e76f51", "faster": "#2a9d8f", "no clear change": "#777777"}
    for y, r in enumerate(rows):
        point, low, high = judged(r)
        ax.errorbar([point], [y], xerr=[[point - low], [high - point]], fmt="o",
                    color=colors[r["change"]], capsize=2, markersize=4)
        if r["judged_on"] == "normalised":
            ax.plot([r["ratio"]], [y], "x", color="black", markersize=5)
    ax.axvline(1, color="black", linewidth=0.8)
    if fail_if_slower is not None:
        ax.axvline(1 + fail_if_slower / 100, color="#e76f51", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['series']} ({r['run']})" for r in rows], fontsize=7)
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
    base = comparison.rows[0]["base"] if comparison.rows else ""
    ax.set_title(f"bench compare against {base}: change of each series' median", fontsize=10)
    ax.grid(alpha=0.3, which="both", axis="x")
    fig.tight_layout()
    return save_figure(fig, path)
