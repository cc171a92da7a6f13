"""Stampede-safe cached aggregates (statistics) on a `Cache`: one recomputation per expiry
across processes, under a redis-py `Lock`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from recharge_cli.cache import Cache, release
from recharge_cli.jsonable import dumps, to_jsonable

LOCK_SECONDS = 10
POLL_SECONDS = 0.02


class Aggregates:
    """Values computed from PostgreSQL and kept under `Cache` keys with their expiry.

    Values live for ttl seconds plus a grace period; during the grace period one process
    recomputes while the others serve the old value. On a cold miss the others wait for
    the one that holds the lock.
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def get(self, key: str, compute: Callable[[], Any], ttl: int,
            fresh: bool = False) -> tuple[Any, str, str]:
        """(data, source, computed_at): `compute()` only when no fresh value is cached (or
        `fresh`), by one process at a time."""
        cache = self.cache
        if not cache.reading():
            return self._computed(key, compute, ttl, store=False)
        if fresh:
            return self._computed(key, compute, ttl)
        cached = cache.get(key)  # past its expiry it is served while another recomputes
        if _fresh(cached):
            return cached["data"], "cache", cached["computed_at"]
        lock = cache.guard(lambda: cache.client.lock(f"{key}:lock", timeout=LOCK_SECONDS,
                                                     blocking=False))
        if lock is not None and cache.guard(lambda: lock.acquire(blocking=False), False):
            try:
                # the holder before us may have stored a fresh value and released the lock
                # between our GET and our acquire: look again before recomputing
                cached = cache.get(key)
                if _fresh(cached):
                    return cached["data"], "cache", cached["computed_at"]
                return self._computed(key, compute, ttl)
            finally:
                cache.guard(lambda: release(lock))
        if cached is None and lock is not None:
            cached = self._wait_for(key)
        if cached is not None:
            return cached["data"], "cache", cached["computed_at"]
        return self._computed(key, compute, ttl)

    def _wait_for(self, key: str) -> Any:
        cache = self.cache
        deadline = time.monotonic() + LOCK_SECONDS
        while time.monotonic() < deadline and cache.client is not None:
            time.sleep(POLL_SECONDS)
            cached = cache.get(key)
            if cached is not None:
                return cached
            if not cache.guard(lambda: cache.client.exists(f"{key}:lock"), 0):
                return cache.get(key)
        return None

    def _computed(self, key: str, compute: Callable[[], Any], ttl: int,
                  store: bool = True) -> tuple[Any, str, str]:
        data = to_jsonable(compute())
        computed_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        cache = self.cache
        if store and cache.client is not None:
            value = dumps({"data": data, "computed_at": computed_at,
                           "expires_at": time.time() + ttl})
            cache.guard(lambda: cache.client.set(key, value, ex=ttl * 2))
        return data, "db", computed_at


def _fresh(cached: Any) -> bool:
    return cached is not None and cached["expires_at"] > time.time()
