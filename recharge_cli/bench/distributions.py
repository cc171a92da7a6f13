"""Which card an operation of a mix reads: YCSB's request distributions over n items.

- uniform: every item equally likely;
- zipfian: YCSB's ZipfianGenerator (Gray et al., "Quickly generating billion-record
  synthetic databases", SIGMOD 1994), constant θ (0.99 by default): rank 0 the most
  popular. YCSB's ScrambledZipfianGenerator spreads the popular ranks over the key space
  by hashing them; here the items are already in a fixed pseudo-random order (the cards
  sorted by a hash of their id), so rank r is simply item r — the same scrambling without
  the hash's collisions, which keeps the rank frequencies exactly those of the generator;
- latest: YCSB's SkewedLatestGenerator: zipfian ranks counted back from the newest item
  (the items in newest-first order, so rank r is again item r);
- hotspot: YCSB's HotspotIntegerGenerator with its defaults: 80 % of the operations go to
  a hot set of 20 % of the items, uniformly within each set.

Vectorised with numpy (YCSB has no Python library; the generator is a few lines).
"""

from __future__ import annotations

import numpy as np

DISTRIBUTIONS = ("uniform", "zipfian", "latest", "hotspot")
ZIPF_THETA = 0.99  # YCSB's ZIPFIAN_CONSTANT
HOT_DATA_FRACTION = 0.2  # YCSB's hotspotdatafraction default
HOT_OPERATION_FRACTION = 0.8  # YCSB's hotspotopnfraction default


def zeta(n: int, theta: float) -> float:
    """Σ_{i=1..n} 1/i^θ."""
    return float(np.sum(np.arange(1, n + 1, dtype=np.float64) ** -theta))


class Zipfian:
    """YCSB's ZipfianGenerator over ranks 0 … n-1."""

    def __init__(self, n: int, theta: float = ZIPF_THETA) -> None:
        if n < 1 or not 0 < theta < 1:
            raise ValueError("a zipfian needs n ≥ 1 items and 0 < θ < 1")
        self.n, self.theta = n, theta
        self.zetan = zeta(n, theta)
        self.alpha = 1.0 / (1.0 - theta)
        self.eta = (1 - (2.0 / n) ** (1 - theta)) / (1 - zeta(2, theta) / self.zetan) \
            if n > 2 else 1.0

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        u = rng.random(size)
        uz = u * self.zetan
        ranks = (self.n * (self.eta * u - self.eta + 1) ** self.alpha).astype(np.int64)
        ranks = np.where(uz < 1.0 + 0.5 ** self.theta, 1, ranks)
        ranks = np.where(uz < 1.0, 0, ranks)
        return np.minimum(ranks, self.n - 1)

    def law(self) -> np.ndarray:
        """The Zipf law 1/(r+1)^θ / ζ(n, θ) that the generator approximates."""
        return np.arange(1, self.n + 1, dtype=np.float64) ** -self.theta / self.zetan

    def probabilities(self) -> np.ndarray:
        """What `draw` gives each rank exactly: u below 1/ζ is rank 0, below (1 + 0.5^θ)/ζ
        rank 1, and the rest ⌊n (ηu − η + 1)^α⌋ (at most n − 1): rank k the u between
        where that expression reaches k and k + 1."""
        p = np.zeros(self.n)
        first = min(1.0, 1 / self.zetan)
        p[0] = first
        if self.n == 1:
            return p
        floor = min(1.0, (1 + 0.5 ** self.theta) / self.zetan)
        p[1] = floor - first
        k = np.arange(1, self.n, dtype=np.float64)
        reach = np.clip(((k / self.n) ** (1 / self.alpha) - 1 + self.eta) / self.eta, floor, 1.0)
        p += np.diff(np.concatenate([[floor], reach, [1.0]]))
        return p


def draw(distribution: str, n: int, size: int, rng: np.random.Generator,
         theta: float = ZIPF_THETA) -> np.ndarray:
    """`size` item indices in [0, n) drawn by `distribution`."""
    if distribution in ("zipfian", "latest"):
        return Zipfian(n, theta).draw(rng, size)
    if distribution == "hotspot":
        hot = max(1, int(n * HOT_DATA_FRACTION))
        in_hot = rng.random(size) < HOT_OPERATION_FRACTION
        cold = rng.integers(hot, n, size) if n > hot else rng.integers(0, hot, size)
        return np.where(in_hot, rng.integers(0, hot, size), cold)
    if distribution == "uniform":
        return rng.integers(0, n, size)
    raise ValueError(f"unknown distribution {distribution!r}")
