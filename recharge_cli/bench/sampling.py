"""Summaries of raw samples (ns): percentiles, bootstrap intervals of ratios, and warnings about
suspicious samples as hyperfine gives them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass
class Summary:
    """A series' latency in microseconds."""

    n: int
    min_us: float
    p50_us: float
    p90_us: float
    p95_us: float
    p99_us: float
    max_us: float
    mean_us: float
    sd_us: float
    slower_than_slo: float | None = None  # share of samples slower than --slo-ms


@dataclass
class Ratio:
    """A ratio with its bootstrap 95% interval."""

    ratio: float
    ci_low: float
    ci_high: float


def summarize(samples_ns: list[int]) -> Summary:
    """n, min, p50, p90, p95, p99, max, mean ± sd, in microseconds."""
    us = np.asarray(samples_ns, dtype=np.float64) / 1000.0
    p50, p90, p95, p99 = (float(v) for v in np.percentile(us, PERCENTILES))
    return Summary(int(us.size), float(us.min()), p50, p90, p95, p99, float(us.max()),
                   float(us.mean()), float(us.std(ddof=1)) if us.size > 1 else 0.0)


def speedup(slow_ns: list[int], fast_ns: list[int], seed: int = 0,
            resamples: int = 2000) -> Ratio:
    """Ratio of medians slow/fast with a percentile-bootstrap 95% interval."""
    rng = np.random.default_rng(seed)
    slow, fast = np.asarray(slow_ns, dtype=np.float64), np.asarray(fast_ns, dtype=np.float64)
    point = float(np.median(slow) / np.median(fast))
    boot_slow = np.median(rng.choice(slow, (resamples, slow.size)), axis=1)
    boot_fast = np.median(rng.choice(fast, (resamples, fast.size)), axis=1)
    low, high = np.percentile(boot_slow / boot_fast, [2.5, 97.5])
    return Ratio(point, float(low), float(high))


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


def histogram_buckets(hist: Any) -> tuple[np.ndarray, np.ndarray]:
    """An HDR histogram's recorded values and their counts."""
    steps = [(s.value_iterated_to, s.count_added_in_this_iter_step)
             for s in hist.get_recorded_iterator()]
    values, counts = zip(*steps, strict=True) if steps else ((), ())
    return np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.int64)


def _boot_quantiles(hist: Any, q: float, rng: np.random.Generator, resamples: int
                    ) -> tuple[float, np.ndarray]:
    values, counts = histogram_buckets(hist)
    n = int(counts.sum())
    point = values[np.searchsorted(np.cumsum(counts), q * n)]
    boot = np.cumsum(rng.multinomial(n, counts / n, size=resamples), axis=1)
    at = (boot < q * n).sum(axis=1)  # the first bucket whose cumulative count reaches q·n
    return float(point), values[np.minimum(at, values.size - 1)]


def histogram_ratio(slow: Any, fast: Any, q: float = 0.5, seed: int = 0,
                    resamples: int = 2000) -> Ratio:
    """Ratio of the q-quantiles slow/fast of two HDR histograms with a percentile-bootstrap
    95% interval (each resample a multinomial draw of the same number of operations)."""
    rng = np.random.default_rng(seed)
    slow_point, slow_boot = _boot_quantiles(slow, q, rng, resamples)
    fast_point, fast_boot = _boot_quantiles(fast, q, rng, resamples)
    low, high = np.percentile(slow_boot / fast_boot, [2.5, 97.5])
    return Ratio(slow_point / fast_point, float(low), float(high))


def mean_ratio(slow: list[float], fast: list[float], seed: int = 0,
               resamples: int = 2000) -> Ratio:
    """Ratio of means slow/fast (e.g. per-interval rates) with a percentile-bootstrap 95%
    interval. A resample whose fast mean is 0 (every interval it drew saw nothing move, as
    in a run of a few seconds) has no ratio and is left out of the interval."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(slow, dtype=np.float64), np.asarray(fast, dtype=np.float64)
    point = float(a.mean() / b.mean()) if b.mean() else float("inf")
    boot_a = rng.choice(a, (resamples, a.size)).mean(axis=1)
    boot_b = rng.choice(b, (resamples, b.size)).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = boot_a / boot_b
    ratios = ratios[np.isfinite(ratios)]
    if not ratios.size:
        return Ratio(point, point, point)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return Ratio(point, float(low), float(high))
