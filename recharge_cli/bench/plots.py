"""The figures of a bench run (matplotlib, Agg backend, imported only here). Each function
returns one figure; the exporters save it. Every figure says what ran in its title, labels
its axes with units and has a legend that covers every series without hiding data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recharge_cli.bench.runner import SERIES_KINDS
from recharge_cli.charts import pyplot

if TYPE_CHECKING:
    from recharge_cli.bench.session import RunResult

COLORS = {"hit": "#2a9d8f", "miss": "#e76f51", "db": "#264653", "write": "#8a5a9e"}
BASELINE_STYLES = {"baseline/redis_get": ":", "baseline/pg_point_query": "--"}


def _what_ran(result: RunResult) -> str:
    env = result.environment
    return (f"PostgreSQL {env['postgresql']}, {env['redis_server_kind']} {env['redis_server']}, "
            f"{env['cpu_count']} CPUs")


def _targets(result: RunResult) -> list[str]:
    return [t for t in result.spec.targets
            if any(f"{t}/{k}" in result.samples.values for k in SERIES_KINDS)]


def _grid(plt: Any, count: int, width: float, height: float) -> tuple[Any, Any]:
    cols = min(3, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 1.2),
                             squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def _legend_below(fig: Any, axes: Any) -> None:
    """One legend for the whole figure, under the plots: every series, no curve covered."""
    handles: dict[str, Any] = {}
    for ax in getattr(axes, "flat", axes):
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=min(6, len(handles)),
               fontsize=8, frameon=False)


def ecdf(result: RunResult) -> Any:
    import numpy as np
    from matplotlib.ticker import NullFormatter

    plt = pyplot()
    us = {s: np.asarray(v) / 1000.0 for s, v in result.samples.values.items()}
    targets = _targets(result)
    fig, axes = _grid(plt, len(targets), 4.6, 3.4)
    for ax, target in zip(axes.flat, targets, strict=False):
        for kind in (k for k in SERIES_KINDS if f"{target}/{k}" in us):
            data = np.sort(us[f"{target}/{kind}"])
            ax.step(data, np.arange(1, data.size + 1) / data.size, where="post", label=kind,
                    color=COLORS[kind])
        for base, style in BASELINE_STYLES.items():
            ax.axvline(np.median(us[base]), color="grey", linestyle=style, linewidth=1,
                       label=f"{base.split('/')[1]} p50")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short ranges
        ax.set_title(target)
        ax.set_xlabel("latency (µs, log)")
        ax.set_ylabel("fraction of trials ≤ x")
        ax.grid(alpha=0.3, which="both")
    _legend_below(fig, axes)
    fig.suptitle(f"Latency ECDF per target, {result.spec.iterations} trials per series "
                 f"(one at a time) — {_what_ran(result)}")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def box(result: RunResult) -> Any:
    import numpy as np

    plt = pyplot()
    us = {s: np.asarray(v) / 1000.0 for s, v in result.samples.values.items()}
    series = [f"{t}/{k}" for t in _targets(result) for k in SERIES_KINDS if f"{t}/{k}" in us]
    series += sorted(s for s in us if s.startswith("baseline/"))
    fig, ax = plt.subplots(figsize=(max(8, 0.55 * len(series) + 2), 5))
    parts = ax.boxplot([us[s] for s in series], patch_artist=True, showfliers=True,
                       flierprops={"markersize": 2, "alpha": 0.4},
                       medianprops={"color": "black", "linewidth": 2})
    for patch, name in zip(parts["boxes"], series, strict=True):
        patch.set_facecolor(COLORS.get(name.split("/")[1], "#cccccc"))
        patch.set_alpha(0.55)
    ax.set_xticks(range(1, len(series) + 1), series, rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (µs, log)")
    ax.set_title(f"Latency per target and kind, {result.spec.iterations} trials each (box p25–p75, "
                 f"black line the median, whiskers 1.5 IQR)\n{_what_ran(result)}", fontsize=9)
    ax.grid(alpha=0.3, axis="y", which="both")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in COLORS.values()]
    ax.legend(handles, COLORS.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def timeline(result: RunResult) -> Any:
    plt = pyplot()
    targets = _targets(result)
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 1.9 * len(targets) + 1.3),
                             sharex=True, squeeze=False)
    for ax, target in zip(axes.flat, targets, strict=True):
        for kind in SERIES_KINDS:
            points = [(i, ns / 1000.0) for i, (s, ns) in enumerate(result.samples.order)
                      if s == f"{target}/{kind}"]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, s=3, label=kind, color=COLORS[kind], alpha=0.6)
        ax.set_yscale("log")
        ax.set_ylabel(f"{target}\nµs (log)", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    axes.flat[-1].set_xlabel("trial number (measurement order, all targets interleaved)")
    _legend_below(fig, axes)
    fig.suptitle("Latency of each trial in measurement order, one row per target "
                 "(drift, warm-up or interference show here)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def curve(result: RunResult, target: str) -> Any:
    """Throughput–latency of one target's open-loop sweep: p50 (solid) and p99 (dashed)
    against achieved operations/s, one colour per kind, the saturation point marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    rows = [r for r in result.analysis.loads if r["target"] == target and r["mode"] == "open"]
    for kind in SERIES_KINDS:
        points = sorted((r for r in rows if r["kind"] == kind and r.get("p50_us")),
                        key=lambda r: r["offered_per_second"])
        if not points:
            continue
        xs = [r["achieved_per_second"] for r in points]
        ax.plot(xs, [r["p50_us"] for r in points], "o-", color=COLORS[kind], label=f"{kind} p50")
        ax.plot(xs, [r["p99_us"] for r in points], "s--", color=COLORS[kind], alpha=0.8,
                label=f"{kind} p99")
        sat = next(s for s in result.analysis.saturation
                   if (s["target"], s["kind"]) == (target, kind))
        if sat["saturated"]:
            ax.axvline(sat["ops_per_second"], color=COLORS[kind], linestyle=":", linewidth=1.2,
                       label=f"{kind} saturates ≈ {sat['ops_per_second']:,.0f}/s")
        else:
            ax.plot([], [], " ", label=f"{kind} kept up to {sat['ops_per_second']:,.0f}/s")
    ax.set_yscale("log")
    achieved = [r["achieved_per_second"] for r in rows if r["achieved_per_second"]]
    if achieved and max(achieved) > 10 * min(achieved):
        ax.set_xscale("log")
        ticks = sorted({r["offered_per_second"] for r in rows})  # the offered rates
        ax.set_xticks(ticks, [f"{t:,.0f}" for t in ticks])
        ax.xaxis.set_minor_formatter("")
    ax.set_xlabel("achieved throughput (operations/s" + (", log)" if ax.get_xscale() == "log"
                                                        else ")"))
    ax.set_ylabel("latency from intended start (µs, log)")
    spec = result.spec
    ax.set_title(f"{target}: throughput–latency, open loop, {spec.processes} processes, "
                 f"{spec.duration:g} s per rate\n{_what_ran(result)}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def timeseries(result: RunResult) -> Any:
    """Per second of every load run, one after the other: throughput and p99."""
    plt = pyplot()
    fig, (ops, p99) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    offset, ticks = 0, []
    for run in result.loads:
        series = run.per_second()
        xs = [offset + second for second, _, _ in series]
        color = COLORS[run.kind]
        ops.plot(xs, [n for _, n, _ in series], color=color, marker=".", label=run.kind)
        p99.plot(xs, [p for _, _, p in series], color=color, marker=".", label=run.kind)
        ticks.append((offset, f"{run.target}/{run.kind}"
                      + (f" @{run.offered:,.0f}/s" if run.offered else "")))
        offset += max((second for second, _, _ in series), default=0) + 2
    for ax in (ops, p99):
        for x, _ in ticks:
            ax.axvline(x - 1, color="grey", linewidth=0.5)
        ax.grid(alpha=0.3, which="both")
    ops.set_ylabel("operations in the second")
    p99.set_ylabel("p99 (µs, log)")
    p99.set_yscale("log")
    p99.set_xticks([x for x, _ in ticks], [t for _, t in ticks], rotation=70, ha="right",
                   fontsize=6)
    p99.set_xlabel("load runs in the order they ran (each: its seconds)")
    _legend_below(fig, [ops])
    fig.suptitle(f"Per-second throughput and p99 of every load run, {result.spec.processes} "
                 f"processes — {_what_ran(result)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
