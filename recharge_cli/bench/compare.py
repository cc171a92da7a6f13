"""`recharge bench compare`: the change of every series between bench runs (results.json),
as the ratio of medians against the first run with a bootstrap 95% interval, and one plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recharge_cli.bench import statistics
from recharge_cli.charts import pyplot
from recharge_cli.errors import InvalidInput


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


def changes(runs: list[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """One row per series and later run: p50s and the ratio later/first with its interval."""
    first, rows = runs[0], []
    for series, base in first["samples_ns"].items():
        for run in runs[1:]:
            other = run["samples_ns"].get(series)
            if not other:
                continue
            ratio = statistics.speedup(other, base, seed)
            rows.append({"series": series, "base": first["label"], "run": run["label"],
                         "base_p50_us": round(statistics.summarize(base)["p50_us"], 1),
                         "p50_us": round(statistics.summarize(other)["p50_us"], 1),
                         "ratio": round(ratio["ratio"], 3), "ci_low": round(ratio["ci_low"], 3),
                         "ci_high": round(ratio["ci_high"], 3),
                         "change": verdict(ratio)})
    for target, base in (first.get("throughput") or {}).items():
        for run in runs[1:]:
            other = (run.get("throughput") or {}).get(target)
            if other:
                rows.append({"series": f"{target}/throughput", "base": first["label"],
                             "run": run["label"], "base_ops_per_second": round(base["ops_per_second"]),
                             "ops_per_second": round(other["ops_per_second"]),
                             "ratio": round(other["ops_per_second"] / base["ops_per_second"], 3)})
    return rows


def verdict(ratio: dict[str, float]) -> str:
    """Slower/faster only when the whole 95% interval is on one side of 1."""
    if ratio["ci_low"] > 1:
        return "slower"
    if ratio["ci_high"] < 1:
        return "faster"
    return "no clear change"


def plot(runs: list[dict[str, Any]], path: Path) -> Path:
    """Median latency per series and run (log axis), whiskers from p25 to p75."""
    import numpy as np

    plt = pyplot()

    series = list(runs[0]["samples_ns"])
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(series) * len(runs) + 1.5))
    offsets = np.linspace(-0.3, 0.3, len(runs)) if len(runs) > 1 else [0.0]
    for offset, run in zip(offsets, runs, strict=True):
        ys, p50, low, high = [], [], [], []
        for y, name in enumerate(series):
            values = run["samples_ns"].get(name)
            if values:
                q25, q50, q75 = np.percentile(np.asarray(values) / 1000.0, [25, 50, 75])
                ys.append(y + offset)
                p50.append(q50)
                low.append(q50 - q25)
                high.append(q75 - q50)
        ax.errorbar(p50, ys, xerr=[low, high], fmt="o", markersize=4, capsize=2,
                    label=run["label"])
    ax.set_yticks(range(len(series)), series, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("latency p50 (µs, log); whiskers p25–p75")
    ax.set_title("bench compare")
    ax.grid(alpha=0.3, which="both", axis="x")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
