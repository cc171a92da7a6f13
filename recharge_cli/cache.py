"""Cache-aside on Redis: key schema, version-checked card writes, stampede-safe aggregates.

Keys: `<prefix>{card:<id>}:balance`, `<prefix>{card:<id>}:trips`, `<prefix>{card:<id>}:ver`
and `<prefix>stats:<name>:<params>`. The `{…}` hash tag keeps a card's keys in one
Redis Cluster slot. Card keys are written only after COMMIT, and only when their
version is not older than the newest one written (`:ver`), so a slow reader can
never put an old balance back over a newer one.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from recharge_cli.render import Output, to_jsonable

BALANCE_TTL = 300
TRIPS_TTL = 300
VERSION_TTL = 86_400
LOCK_MS = 10_000
POLL_SECONDS = 0.02

# Set a card's data key unless a newer version was already written.
_SET_IF_CURRENT = """
local newest = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) < newest then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""
# After a committed write: record the version, write the balance through, and drop the
# trip list when the write added a trip. Older versions arriving late change nothing.
_CARD_WRITTEN = """
local newest = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= newest then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
if ARGV[5] == '1' then redis.call('DEL', KEYS[3]) end
return 1
"""
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Cache:
    """A Redis client bound to a key prefix; disabled (all misses) when client is None."""

    def __init__(self, client: Any, prefix: str, output: Output | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.output = output or Output()
        self._scripts: dict[str, Any] = {}

    @classmethod
    def from_url(cls, url: str | None, prefix: str, output: Output | None = None) -> Cache:
        if not url:
            return cls(None, prefix, output)
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1,
                                      retry=Retry(NoBackoff(), 0), decode_responses=False)
        return cls(client, prefix, output)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    # keys -----------------------------------------------------------------
    def card_key(self, card_id: int, kind: str) -> str:
        return f"{self.prefix}{{card:{card_id}}}:{kind}"

    def stats_key(self, name: str, params: dict[str, Any]) -> str:
        encoded = ",".join(f"{k}={to_jsonable(v)}" for k, v in sorted(params.items())
                           if v is not None)
        return f"{self.prefix}stats:{name}:{encoded or 'all'}"

    # plumbing ---------------------------------------------------------------
    def _guard(self, action: Callable[[], Any], default: Any = None) -> Any:
        """Run a Redis call; on connection trouble warn once and carry on without the cache."""
        if self.client is None:
            return default
        import redis

        try:
            return action()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self.output.warn(f"Redis is unreachable ({_short(exc)}); reading from PostgreSQL",
                             once_key="redis-down")
            self.client = None
            return default

    def _script(self, source: str) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self.client.register_script(source)
        return self._scripts[source]

    def get_many(self, keys: list[str]) -> list[Any]:
        raw = self._guard(lambda: self.client.mget(keys), [None] * len(keys))
        return [None if item is None else json.loads(item) for item in raw]

    def get(self, key: str) -> Any:
        raw = self._guard(lambda: self.client.get(key))
        return None if raw is None else json.loads(raw)

    # cards ------------------------------------------------------------------
    def card_reads(self, items: Iterable[tuple[int, str, int, Any]], ttl: int) -> None:
        """Store what a reader got from PostgreSQL: (card_id, kind, version, payload)."""
        items = list(items)
        if not items or self.client is None:
            return
        script = self._script(_SET_IF_CURRENT)

        def store() -> None:
            pipe = self.client.pipeline(transaction=False)
            for card_id, kind, version, payload in items:
                script(keys=[self.card_key(card_id, "ver"), self.card_key(card_id, kind)],
                       args=[version, _dumps(payload), ttl], client=pipe)
            pipe.execute()

        self._guard(store)

    def card_written(self, card_id: int, version: int, balance: dict[str, Any],
                     trips_changed: bool) -> None:
        """After COMMIT: write the new balance through and drop stale trip lists."""
        script = self._script(_CARD_WRITTEN) if self.client is not None else None
        self._guard(lambda: script(
            keys=[self.card_key(card_id, "ver"), self.card_key(card_id, "balance"),
                  self.card_key(card_id, "trips")],
            args=[version, _dumps(balance), BALANCE_TTL, VERSION_TTL,
                  "1" if trips_changed else "0"]))

    # aggregates ---------------------------------------------------------------
    def aggregate(self, key: str, compute: Callable[[], Any], ttl: int,
                  fresh: bool = False) -> tuple[Any, str, str]:
        """(data, source, computed_at) with one recomputation per expiry across processes.

        Values live for ttl seconds plus a grace period; during the grace period one
        process recomputes while the others serve the old value. On a cold miss the
        others wait for the one that holds the lock.
        """
        if self.client is None:
            return self._computed(key, compute, ttl, store=False)
        if fresh:
            return self._computed(key, compute, ttl)
        cached = self.get(key)
        if cached is not None and cached["expires_at"] > time.time():
            return cached["data"], "cache", cached["computed_at"]
        if self._lock(key):
            # the holder before us may have stored a fresh value and released the lock
            # between our GET and our SET NX: look again before recomputing
            cached = self.get(key)
            if cached is not None and cached["expires_at"] > time.time():
                self._release(key)
                return cached["data"], "cache", cached["computed_at"]
            return self._computed(key, compute, ttl, release=True)
        if cached is None:
            cached = self._wait_for(key)
        if cached is not None:
            return cached["data"], "cache", cached["computed_at"]
        return self._computed(key, compute, ttl)

    def _lock(self, key: str) -> bool:
        self._token = secrets.token_hex(8)
        return bool(self._guard(lambda: self.client.set(f"{key}:lock", self._token, nx=True,
                                                        px=LOCK_MS), True))

    def _wait_for(self, key: str) -> Any:
        deadline = time.monotonic() + LOCK_MS / 1000
        while time.monotonic() < deadline and self.client is not None:
            time.sleep(POLL_SECONDS)
            cached = self.get(key)
            if cached is not None:
                return cached
            if not self._guard(lambda: self.client.exists(f"{key}:lock"), 0):
                return self.get(key)
        return None

    def _computed(self, key: str, compute: Callable[[], Any], ttl: int, store: bool = True,
                  release: bool = False) -> tuple[Any, str, str]:
        data = to_jsonable(compute())
        computed_at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        if store and self.client is not None:
            value = _dumps({"data": data, "computed_at": computed_at,
                            "expires_at": time.time() + ttl})
            self._guard(lambda: self.client.set(key, value, ex=ttl * 2))
            if release:
                self._release(key)
        return data, "db", computed_at

    def _release(self, key: str) -> None:
        """Drop our recompute lock (only if it is still ours)."""
        script = self._script(_RELEASE_LOCK)
        self._guard(lambda: script(keys=[f"{key}:lock"], args=[self._token]))

    # administration -------------------------------------------------------------
    def scan_keys(self) -> Iterable[bytes]:
        if self.client is None:
            return []
        pattern = self.prefix.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
        return self.client.scan_iter(match=pattern, count=1000)

    def flush(self) -> int:
        """Delete only this prefix's keys (SCAN + UNLINK); returns how many."""
        deleted = 0
        batch: list[bytes] = []
        for key in self.scan_keys():
            batch.append(key)
            if len(batch) >= 1000:
                deleted += self.client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted


def _dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
