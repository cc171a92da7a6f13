"""PNG plots of one bench run (matplotlib, Agg backend, imported only here)."""

from __future__ import annotations

from pathlib import Path

from recharge_cli.bench.runner import SERIES_KINDS, Samples
from recharge_cli.charts import pyplot

COLORS = {"hit": "#2a9d8f", "miss": "#e76f51", "db": "#264653", "write": "#8a5a9e"}


def draw_all(out: Path, samples: Samples) -> list[Path]:
    import numpy as np

    plt = pyplot()

    targets = sorted({s.split("/")[0] for s in samples.values if not s.startswith("baseline/")})
    us = {s: np.asarray(v) / 1000.0 for s, v in samples.values.items()}
    paths = [out / "ecdf.png", out / "box.png", out / "timeline.png"]

    cols = min(3, len(targets))
    rows = -(-len(targets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    for ax in axes.flat[len(targets):]:
        ax.set_visible(False)
    for ax, target in zip(axes.flat, targets, strict=False):
        for kind in (k for k in SERIES_KINDS if f"{target}/{k}" in us):
            data = np.sort(us[f"{target}/{kind}"])
            ax.step(data, np.arange(1, data.size + 1) / data.size, where="post",
                    label=kind, color=COLORS[kind])
        for base, style in (("baseline/redis_get", ":"), ("baseline/pg_point_query", "--")):
            ax.axvline(np.median(us[base]), color="grey", linestyle=style, linewidth=1,
                       label=base.split("/")[1] + " p50")
        ax.set_xscale("log")
        ax.set_title(target)
        ax.set_xlabel("latency (µs, log)")
        ax.grid(alpha=0.3, which="both")
    for row in axes:
        row[0].set_ylabel("fraction of samples ≤ x")
    axes.flat[len(targets) - 1].legend(fontsize=7, loc="lower right")
    fig.suptitle("Latency ECDF: hit vs miss vs db (and writes)")
    fig.tight_layout()
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(targets) * 3), 4.5))
    series = [f"{t}/{k}" for t in targets for k in SERIES_KINDS if f"{t}/{k}" in us] + sorted(
        s for s in us if s.startswith("baseline/"))
    box = ax.boxplot([us[s] for s in series], patch_artist=True, showfliers=True,
                     flierprops={"markersize": 2})
    for patch, name in zip(box["boxes"], series, strict=True):
        patch.set_facecolor(COLORS.get(name.split("/")[1], "#cccccc"))
    ax.set_xticks(range(1, len(series) + 1), series, rotation=60, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("latency (µs, log)")
    ax.set_title("Latency per target and kind")
    ax.grid(alpha=0.3, axis="y", which="both")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4))
    for kind in SERIES_KINDS:
        points = [(i, ns / 1000.0) for i, (s, ns) in enumerate(samples.order)
                  if s.endswith(f"/{kind}") and not s.startswith("baseline/")]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.scatter(xs, ys, s=3, label=kind, color=COLORS[kind], alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("trial (measurement order)")
    ax.set_ylabel("latency (µs, log)")
    ax.set_title("Samples over time (drift, warm-up or interference show here)")
    ax.legend(markerscale=4)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(paths[2], dpi=110)
    plt.close(fig)
    return paths
