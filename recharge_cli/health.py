"""`recharge health`: every dependency and job of a deployment checked, one result each.

A check that cannot run (its server is down) is a failed check, not an error: the report
itself is the result, so a monitor always gets one document.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from recharge_cli import db, migrations
from recharge_cli.cache import Cache, Identity, connect
from recharge_cli.errors import first_line, redact

MEMORY_FULL = 0.95  # used_memory / maxmemory at or above this fails the Redis check


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "facts": self.facts}


@dataclass(frozen=True)
class Targets:
    """What to check (the resolved settings) and how old the jobs may be."""

    dsn: str | None  # None: no PostgreSQL to check (the embedded servers never started)
    read_dsn: str | None
    redis_url: str | None
    redis_cluster: bool
    prefix: str
    max_replica_lag: float
    max_rollup_age: dt.timedelta
    max_verify_age: dt.timedelta
    not_started: str = "no PostgreSQL is configured"


def run(targets: Targets) -> list[Check]:
    checks: list[Check] = []
    with _connected(targets.dsn, targets.not_started) as (conn, problem):
        checks.append(_postgresql(conn, problem))
        identity = None
        checks.append(_guarded("schema", _schema, conn))
        jobs = functools.lru_cache(maxsize=1)(_jobs)  # one read for both job checks
        for name, job_check in (("rollup", _rollup), ("verify", _verify)):
            checks.append(_guarded(name, lambda c, check=job_check: check(jobs(c), targets), conn))
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                identity = Identity.of(db.call(conn, "public.cache_identity")[0])
    checks.append(_replica(targets))
    checks.extend(_redis(targets, identity))
    return checks


@contextlib.contextmanager
def _connected(dsn: str | None, not_started: str) -> Iterator[tuple[Any, str | None]]:
    if dsn is None:
        yield None, not_started
        return
    try:
        conn = db.connect(dsn)
    except psycopg.Error as exc:
        yield None, f"unreachable: {redact(first_line(str(exc)))}"
        return
    with conn:
        yield conn, None


def _guarded(name: str, check: Callable[[Any], Check], conn: Any) -> Check:
    if conn is None:
        return Check(name, False, "not checked: PostgreSQL is unreachable")
    try:
        return check(conn)
    except psycopg.Error as exc:
        return Check(name, False, redact(first_line(str(exc))))


def _postgresql(conn: Any, problem: str | None) -> Check:
    if conn is None:
        return Check("postgresql", False, problem or "unreachable")
    started = time.perf_counter()
    conn.execute("SELECT 1").fetchone()
    round_trip = (time.perf_counter() - started) * 1000
    version = conn.execute("SELECT current_setting('server_version') AS v").fetchone()["v"]
    return Check("postgresql", True, f"PostgreSQL {version}, {round_trip:.2f} ms round trip",
                 {"version": version, "round_trip_ms": round(round_trip, 3)})


def _schema(conn: Any) -> Check:
    states = migrations.status(conn)
    behind = [s.migration.name for s in states if s.state != "applied"]
    if behind:
        return Check("schema", False, f"{len(behind)} migration(s) not applied or changed "
                     f"({', '.join(behind[:3])}{', …' if len(behind) > 3 else ''}): run "
                     "`recharge db migrate`", {"not_applied": behind})
    return Check("schema", True, f"migrated ({len(states)} migrations)",
                 {"migrations": len(states)})


def _jobs(conn: Any) -> dict[str, Any]:
    return db.call(conn, "public.health_jobs")[0]


def _age(now: dt.datetime, then: dt.datetime) -> str:
    minutes = (now - then).total_seconds() / 60
    return f"{minutes:.0f} min ago" if minutes < 120 else f"{minutes / 60:.1f} h ago"


def _rollup(jobs: dict[str, Any], targets: Targets) -> Check:
    built = jobs["rollup_built_at"]
    if built is None:
        return Check("rollup", False, "never built: run `recharge db rollup` (cron: every 15 min)")
    facts = {"built_at": built, "age_seconds": round((jobs["now"] - built).total_seconds())}
    ok = jobs["now"] - built <= targets.max_rollup_age
    limit = f"{targets.max_rollup_age.total_seconds() / 60:g} min"
    return Check("rollup", ok, f"last built {_age(jobs['now'], built)}"
                 + ("" if ok else f", older than --max-rollup-age {limit}"), facts)


def _verify(jobs: dict[str, Any], targets: Targets) -> Check:
    finished = jobs["verify_finished_at"]
    if finished is None:
        return Check("verify", False, "never ran: run `recharge verify` (cron: nightly)")
    violations = (jobs["verify_details"] or {}).get("violations", 0)
    facts = {"finished_at": finished, "age_seconds": round((jobs["now"] - finished).total_seconds()),
             "clean": jobs["verify_ok"], "violations": violations}
    recent = jobs["now"] - finished <= targets.max_verify_age
    outcome = "clean" if jobs["verify_ok"] else f"found {violations} violation(s)"
    limit = f"{targets.max_verify_age.total_seconds() / 3600:g} h"
    return Check("verify", recent and jobs["verify_ok"],
                 f"last run {_age(jobs['now'], finished)}: {outcome}"
                 + ("" if recent else f", older than --max-verify-age {limit}"), facts)


def _replica(targets: Targets) -> Check:
    if not targets.read_dsn:
        return Check("replica", True, "none configured", {"configured": False})
    with _connected(targets.read_dsn, "") as (conn, problem):
        if conn is None:
            return Check("replica", False, problem or "unreachable", {"configured": True})
        lag = db.replica_lag(conn)
    if lag is None:
        return Check("replica", False, "the read DSN names a primary, not a replica",
                     {"configured": True})
    ok = lag <= targets.max_replica_lag
    return Check("replica", ok, f"{lag:g} s behind" + (
        "" if ok else f", more than --max-replica-lag {targets.max_replica_lag:g}"),
        {"configured": True, "lag_seconds": lag})


def _redis(targets: Targets, identity: Identity | None) -> list[Check]:
    if not targets.redis_url:
        return [Check("redis", True, "no cache configured (every read from PostgreSQL)",
                      {"configured": False})]
    from redis.exceptions import RedisClusterException, RedisError

    client = None
    try:
        client = connect(targets.redis_url, targets.redis_cluster)
        cache = Cache(client, targets.prefix, is_cluster=targets.redis_cluster)
        return [_redis_round_trip(cache), _cache_coherence(cache, identity)]
    except (RedisError, RedisClusterException, OSError) as exc:
        return [Check("redis", False, f"unreachable: {first_line(str(exc))}"),
                Check("cache", False, "not checked: Redis is unreachable")]
    finally:
        if client is not None:
            client.close()


def _redis_round_trip(cache: Cache) -> Check:
    client = cache.client
    started = time.perf_counter()
    failing: list[str] = []
    if cache.is_cluster:  # every primary answers, and the cluster sees every node well
        for node in client.get_primaries():
            client.ping(target_nodes=node)
        nodes = client.cluster_nodes()
        failing = [address for address, node in nodes.items()
                   if not node.get("connected", True) or "fail" in str(node.get("flags", ""))]
    else:
        nodes = {"": client.ping()}
    key, value = f"{cache.prefix}health:{secrets.token_hex(4)}", secrets.token_bytes(8)
    client.set(key, value, ex=30)
    read = client.get(key)
    client.delete(key)
    round_trip = (time.perf_counter() - started) * 1000
    if read != value:
        return Check("redis", False, "a value written under the prefix read back different")
    info = cache.server_info()
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    facts = {"server_version": info.get("valkey_version") or info.get("redis_version"),
             "nodes": len(nodes), "round_trip_ms": round(round_trip, 3),
             "used_memory_bytes": used, "maxmemory_bytes": limit or None}
    memory = f"{used / 2**20:.1f} MiB used" + (f" of {limit / 2**20:.0f} MiB" if limit else
                                               " (no maxmemory)")
    full = bool(limit) and used / limit >= MEMORY_FULL
    where = "PING"
    if cache.is_cluster:
        facts["failing_nodes"] = failing
        where = (f"{len(nodes)} cluster nodes" if not failing else
                 f"cluster node(s) failing: {', '.join(failing)}")
    return Check("redis", not (full or failing), f"{where}, SET/GET {round_trip:.2f} ms, {memory}"
                 + (" (nearly full)" if full else ""), facts)


def _cache_coherence(cache: Cache, identity: Identity | None) -> Check:
    if identity is None:
        return Check("cache", False, "not checked: the database's identity cannot be read")
    state = cache.coherence(identity)
    detail = {"coherent": "coherent with this database",
              "empty": "nothing cached yet under this prefix",
              "restarted": "Redis restarted or missed a write-through: the next command "
                           "empties the prefix before it serves a balance",
              "replaced": "holds copies of another state of the database (a restore, a "
                          "reseed, a recreated database): the next command empties the prefix "
                          "before it serves a balance"}[state]
    return Check("cache", True, detail, {"state": state})
