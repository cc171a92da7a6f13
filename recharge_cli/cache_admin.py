"""What `recharge cache stats` reports about a prefix and its server."""

from __future__ import annotations

from typing import Any

from recharge_cli.cache import Cache

MEMORY_SAMPLE = 2000


def describe(cache: Cache) -> dict[str, Any]:
    """Keys and memory under the prefix (memory sampled past MEMORY_SAMPLE keys), hit ratio."""
    keys = 0
    sampled_bytes = 0
    for key in cache.scan_keys():
        keys += 1
        if keys <= MEMORY_SAMPLE:
            sampled_bytes += cache.memory_usage(key)
    memory = sampled_bytes if keys <= MEMORY_SAMPLE else round(sampled_bytes / MEMORY_SAMPLE * keys)
    info = cache.server_info()
    hits, misses = info.get("keyspace_hits", 0), info.get("keyspace_misses", 0)
    return {
        "prefix": cache.prefix,
        "keys": keys,
        "memory_bytes": memory,
        "memory_estimated": keys > MEMORY_SAMPLE,
        "server_hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
        "server_hits": hits,
        "server_misses": misses,
        "server": "valkey" if "valkey_version" in info else "redis",
        "server_version": info.get("valkey_version") or info.get("redis_version"),
        "used_memory": info.get("used_memory_human"),
        "connected_clients": info.get("connected_clients"),
    }
