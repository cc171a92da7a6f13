"""The figures of a bench run (matplotlib, Agg backend, imported only here). Each function
returns one figure; the exporters save it. Every figure says what ran in its title, labels
its axes with units and has a legend that covers every series without hiding data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recharge_cli.bench.runner import SERIES_KINDS
from recharge_cli.charts import pyplot

if TYPE_CHECKING:
    from recharge_cli.bench.session import RunResult

MIX_COLORS = {"cached": "#2a9d8f", "no_cache": "#264653"}
COLORS = {"hit": "#2a9d8f", "miss": "#e76f51", "db": "#264653", "write": "#8a5a9e"}
BASELINE_COLOR = "#cccccc"
BASELINE_STYLES = {"baseline/redis_get": ":", "baseline/pg_point_query": "--"}


def _what_ran(result: RunResult) -> str:
    return result.environment.what_ran()


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
        for base, style in ((b, s) for b, s in BASELINE_STYLES.items() if b in us):
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
        patch.set_facecolor(COLORS.get(name.split("/")[1], BASELINE_COLOR))
        patch.set_alpha(0.55)
    ax.set_xticks(range(1, len(series) + 1), series, rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (µs, log)")
    ax.set_title(f"Latency per target and kind, {result.spec.iterations} trials each (box p25–p75, "
                 f"black line the median, whiskers 1.5 IQR)\n{_what_ran(result)}", fontsize=9)
    ax.grid(alpha=0.3, axis="y", which="both")
    drawn = {name.split("/")[1]: COLORS[name.split("/")[1]] for name in series
             if not name.startswith("baseline/")}
    if any(name.startswith("baseline/") for name in series):
        drawn["baselines"] = BASELINE_COLOR
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.55) for c in drawn.values()]
    ax.legend(handles, drawn.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
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


@dataclass(frozen=True)
class CurvePoint:
    """One open-loop run on a throughput–latency curve."""

    offered: float
    p50_us: float
    p99_us: float
    achieved: float
    kept_up: bool


def _plot_curve(latency: Any, served: Any, points: list[CurvePoint], color: str,
                name: str) -> None:
    """One series: p50 (solid) and p99 (dashed) above, achieved below; hollow past saturation."""
    points = sorted(points, key=lambda p: p.offered)
    xs = [p.offered for p in points]
    for axis, ys, style, label in ((latency, [p.p50_us for p in points], "o-", "p50"),
                                   (latency, [p.p99_us for p in points], "s--", "p99"),
                                   (served, [p.achieved for p in points], "o-", "achieved")):
        axis.plot(xs, ys, style, color=color, label=f"{name} {label}")
        past = [(x, y) for x, y, p in zip(xs, ys, points, strict=True) if not p.kept_up]
        if past:
            axis.plot(*zip(*past, strict=True), style[0], markersize=11, color=color,
                      markerfacecolor="white", markeredgewidth=1.5, zorder=3)


def _curve_axes(latency: Any, served: Any, points: list[CurvePoint]) -> None:
    """The offered rates as ticks of both axes below (achieved ≤ offered), the diagonal of
    a path that keeps up, log scales for a wide sweep, labels and legends."""
    offered = sorted({p.offered for p in points})
    served.plot(offered, offered, color="grey", linewidth=1, linestyle=":",
                label="offered (kept up)")
    if any(not p.kept_up for p in points):
        served.plot([], [], "o", color="grey", markerfacecolor="white", markersize=9,
                    label="past saturation (not kept up)")
    if offered and offered[-1] > 10 * offered[0]:
        served.set_xscale("log")
        served.set_yscale("log")
    for axis in (served.xaxis, served.yaxis):
        axis.set_ticks(offered, [f"{t:,.0f}" for t in offered], fontsize=9)
        axis.set_minor_formatter("")
    latency.set_yscale("log")
    latency.set_ylabel("latency from intended start\n(µs, log)")
    served.set_ylabel("achieved operations/s")
    served.set_xlabel("offered load (operations/s" + (", log)" if served.get_xscale() == "log"
                                                     else ")"))
    for axis in (latency, served):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _curve_figure(series: dict[str, tuple[str, list[CurvePoint]]], title: str) -> Any:
    plt = pyplot()
    fig, (latency, served) = plt.subplots(2, 1, figsize=(9, 7), sharex=True,
                                          gridspec_kw={"height_ratios": (3, 2)})
    for name, (color, points) in series.items():
        if points:
            _plot_curve(latency, served, points, color, name)
    _curve_axes(latency, served, [p for _, points in series.values() for p in points])
    latency.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def curve(result: RunResult, target: str) -> Any:
    """Throughput–latency of one target's open-loop sweep against the offered rate (so the
    curve never folds back): above, p50 (solid) and p99 (dashed); below, the operations/s
    achieved, on the diagonal while the path keeps up. One colour per kind; runs that did
    not keep up (past saturation) are hollow, and the offered rates are the x ticks."""
    rows = [r for r in result.analysis.loads if r.target == target and r.mode == "open"
            and r.p50_us and r.p99_us and r.offered_per_second]
    series = {kind: (COLORS[kind], [CurvePoint(r.offered_per_second, r.p50_us, r.p99_us,
                                               r.achieved_per_second, r.kept_up)
                                    for r in rows if r.kind == kind])
              for kind in SERIES_KINDS}
    spec = result.spec
    return _curve_figure(series, f"{target}: throughput–latency, open loop, {spec.processes} "
                         f"processes, {spec.duration:g} s per rate\n{_what_ran(result)}")


def mix_curve(result: RunResult) -> Any:
    """Throughput–latency of the whole mix, cached and without the cache, as `curve` draws
    one target's."""
    mix, spec = result.mix, result.spec
    assert mix is not None
    series = {mode.replace("_", " "): (MIX_COLORS[mode], [
        CurvePoint(r.offered_per_second, r.whole.p50_us, r.whole.p99_us,
                   r.whole.achieved_per_second, r.kept_up) for r in runs if r.whole.operations])
        for mode, runs in (("cached", mix.cached), ("no_cache", mix.no_cache))}
    weights = ", ".join(f"{k}={v}" for k, v in mix.weights.items())
    return _curve_figure(series, f"mix {weights}\n{mix.distribution} cards, throughput–latency, "
                         f"open loop, {spec.processes} processes, {spec.duration:g} s per "
                         f"rate\n{_what_ran(result)}")


def _rate(rate: float | None) -> str:
    """A short label of an offered rate (1k = 1,000 operations/s), or "closed" (loop)."""
    if rate is None:
        return "closed"
    return f"{rate / 1000:.3g}k" if rate >= 1000 else f"{rate:.3g}"


def timeseries(result: RunResult) -> Any:
    """Per second of every load run, one after the other: throughput and p99. Each run is
    labelled below by its offered rate (or "closed"), each target above its runs."""
    plt = pyplot()
    width = max(11.0, 0.4 * len(result.loads))  # room for every run's label at 9 pt
    fig, (ops, p99) = plt.subplots(2, 1, figsize=(width, 6.5), sharex=True)
    offset, ticks, groups = 0, [], []
    for run in result.loads:
        series = run.per_second()
        xs = [offset + second for second, _, _ in series]
        color = COLORS[run.kind]
        ops.plot(xs, [n for _, n, _ in series], color=color, marker=".", label=run.kind)
        p99.plot(xs, [p for _, _, p in series], color=color, marker=".", label=run.kind)
        end = offset + max((second for second, _, _ in series), default=0)
        ticks.append(((offset + end) / 2, _rate(run.offered)))
        if groups and groups[-1][0] == run.target:
            groups[-1][2] = end
        else:
            groups.append([run.target, offset, end])
        for ax in (ops, p99):
            ax.axvline(offset - 1, color="grey", linewidth=0.5)
        offset = end + 2
    for target, start, end in groups:
        ops.axvline(start - 1, color="black", linewidth=1)
        ops.annotate(target, ((start + end) / 2, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                     fontsize=9)
    for ax in (ops, p99):
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=9)
    ops.set_ylabel("operations in the second", fontsize=9)
    p99.set_ylabel("p99 (µs, log)", fontsize=9)
    p99.set_yscale("log")
    p99.set_xticks([x for x, _ in ticks], [t for _, t in ticks], fontsize=9)
    p99.set_xlabel("load runs in the order they ran, each over its seconds: below, the offered "
                   "operations/s (1k = 1,000) or closed loop; above, the target", fontsize=9)
    _legend_below(fig, [ops])
    fig.suptitle(f"Per-second throughput and p99 of every load run, {result.spec.processes} "
                 f"processes — {_what_ran(result)}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
