"""Summaries of raw samples (ns): percentiles, bootstrap intervals of ratios, and warnings about
suspicious samples as hyperfine gives them."""

from __future__ import annotations

from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def summarize(samples_ns: list[int]) -> dict[str, Any]:
    """n, min, p50, p90, p95, p99, max, mean ± sd, in microseconds."""
    us = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    p = np.percentile(us, PERCENTILES)
    return {"n": int(us.size), "min_us": float(us.min()),
            **{f"p{q}_us": float(v) for q, v in zip(PERCENTILES, p, strict=True)},
            "max_us": float(us.max()), "mean_us": float(us.mean()),
            "sd_us": float(us.std(ddof=1)) if us.size > 1 else 0.0}


def speedup(slow_ns: list[int], fast_ns: list[int], seed: int = 0,
            resamples: int = 2000) -> dict[str, float]:
    """Ratio of medians slow/fast with a percentile-bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    slow, fast = np.asarray(slow_ns, dtype=np.float64), np.asarray(fast_ns, dtype=np.float64)
    point = float(np.median(slow) / np.median(fast))
    boot_slow = np.median(rng.choice(slow, (resamples, slow.size)), axis=1)
    boot_fast = np.median(rng.choice(fast, (resamples, fast.size)), axis=1)
    low, high = np.percentile(boot_slow / boot_fast, [2.5, 97.5])
    return {"ratio": point, "ci_low": float(low), "ci_high": float(high)}


def warnings_for(label: str, samples_ns: list[int]) -> list[str]:
    """Suspicious samples, as hyperfine warns about them."""
    found = []
    data = np.asarray(samples_ns, dtype=np.float64)
    n = data.size
    if n < 100:
        found.append(f"{label}: only {n} samples; p99 is not meaningful below 100")
    head = max(1, n // 10)
    if n >= 20 and np.median(data[:head]) > 2 * np.median(data[head:]):
        found.append(f"{label}: the first samples were much slower than the rest "
                     "(caches or connections still warming; raise --warmup)")
    q1, q3 = np.percentile(data, [25, 75])
    outliers = np.count_nonzero(data > q3 + 3 * (q3 - q1))
    if n >= 20 and outliers / n > 0.05:
        found.append(f"{label}: {outliers / n:.0%} of samples are far outliers "
                     "(other load on the machine?)")
    return found
