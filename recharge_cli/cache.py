"""Cache-aside on Redis or a Redis Cluster: the guarded client, key schema, coherence and the
card keys (statistics are in `aggregates`, inspection in `cache_admin`). Any Redis failure
degrades to PostgreSQL; it never fails a command.

Keys: `<prefix>{card:<id>}:balance|trips|ver|fill` and `<prefix>stats:<name>:<params>`; the
`{…}` hash tag keeps a card's keys in one Cluster slot, so every script touches one slot.

Why a cached balance is never older than PostgreSQL's (see README "Cache and freshness"):
- Writers write through after COMMIT with a version check (`:ver`), so an older version
  never replaces a newer one.
- A reader that missed takes a ticket (`:fill`) BEFORE it asks PostgreSQL and may store
  what it read only while the ticket exists: `cache flush` deletes tickets with the data,
  so a read that started before a flush can never store afterwards.
- When a write-through fails (Redis down, slow, refusing), the writer bumps the cache epoch
  in PostgreSQL. Before it uses the cache (and before a write command writes) a process
  compares the database's identity (the epoch, system identifier, database OID and
  timeline) and each primary's run id (which changes when Redis restarts, loads an older
  snapshot or fails over to a replica) with the marker kept in Redis, and the database's
  history (WAL position, sequences) with the highest the cache has seen (`history`); on
  any difference, or a history that went back (a restore, a lagging replica promoted), it
  deletes the prefix's keys before using the cache (one process does, the others read
  PostgreSQL meanwhile). Processes that wrote raise the highest seen as they finish.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from recharge_cli import cache_scripts as scripts
from recharge_cli.errors import first_line
from recharge_cli.jsonable import dumps, to_jsonable

BALANCE_TTL = 300
TRIPS_TTL = 300
VERSION_TTL = 86_400
FILL_TTL_MS = 10_000
SCAN_BATCH = 1000

WRITE_BATCH = 500  # cards per script call on a single node
CARD_KINDS = ("balance", "trips", "ver", "fill")


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class Identity:
    """The database a cache holds copies of (PostgreSQL's `cache_identity()`)."""

    database: str  # epoch, generation, system identifier, database OID, timeline: equal
    wal_position: int  # never lower than the cache has seen, or stale
    history: int  # the schema's sequences summed: the same

    @classmethod
    def of(cls, row: dict[str, Any]) -> Identity:
        """From a row of `cache_identity()`."""
        return cls(f"{row['epoch']}:{row['generation']}:{row['system_identifier']}:"
                   f"{row['database_oid']}:{row['timeline']}", int(row["wal_position"]),
                   int(row["history"]))


class Cache:
    """A Redis client bound to a key prefix; disabled (all misses) when client is None.

    `warn` reports degradations (once each); `identity` reads the database's identity and
    `bump_epoch` raises its epoch after a failed write-through (both optional: without them
    the coherence checks are off, as in benchmarks of the raw paths).
    """

    def __init__(self, client: Any, prefix: str, warn: Callable[[str], None] = _quiet,
                 identity: Callable[[], Identity] | None = None,
                 bump_epoch: Callable[[], None] | None = None, is_cluster: bool = False) -> None:
        self.client = client
        self.is_cluster = is_cluster
        self.prefix = prefix
        self.warn = warn
        self._identity = identity
        self._bump_epoch = bump_epoch
        self._checked = identity is None
        self._stale_recorded = False
        self.wrote = False  # a write-through of this process reached Redis
        self._reads_off = False
        self._scripts: dict[str, Any] = {}
        self.unreachable: str | None = None  # why the client could not be made, if it could not

    @classmethod
    def from_url(cls, url: str | None, prefix: str, *, cluster: bool = False,
                 warn: Callable[[str], None] = _quiet,
                 identity: Callable[[], Identity] | None = None,
                 bump_epoch: Callable[[], None] | None = None) -> Cache:
        if not url:
            return cls(None, prefix, warn)
        from redis.exceptions import RedisClusterException, RedisError

        try:
            client = connect(url, cluster)
        except (RedisError, RedisClusterException) as exc:  # a cluster client connects at once
            cache = cls(None, prefix, warn, identity, bump_epoch, cluster)
            cache.unreachable = first_line(exc)
            warn(f"Redis cannot be used ({cache.unreachable}); going on without the cache")
            return cache
        return cls(client, prefix, warn, identity, bump_epoch, cluster)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def discard_connections(self) -> None:
        """Close the pooled connections (the next command opens a new one): an interrupt
        that fell between a command and its reply leaves that reply unread on its
        connection, to be taken for the next command's."""
        if self.client is None:
            return
        if self.is_cluster:
            self.client.disconnect_connection_pools()
        else:
            self.client.connection_pool.disconnect()

    # keys -----------------------------------------------------------------
    def card_key(self, card_id: int, kind: str) -> str:
        return f"{self.prefix}{{card:{card_id}}}:{kind}"

    def stats_key(self, name: str, params: dict[str, Any]) -> str:
        encoded = ",".join(f"{k}={to_jsonable(v)}" for k, v in sorted(params.items())
                           if v is not None)
        return f"{self.prefix}stats:{name}:{encoded or 'all'}"

    # plumbing ---------------------------------------------------------------
    def guard(self, action: Callable[[], Any], default: Any = None, writing: bool = False) -> Any:
        """Run a Redis call. On any Redis failure warn once, go on without the cache, and
        after a failed write-through make sure no process trusts the cache unchecked."""
        if self.client is None or not self._ready():
            if writing:
                self._record_stale()
            return default
        import redis

        try:
            result = action()
        except (redis.RedisError, OSError) as exc:
            self._degrade(exc, writing)
            return default
        except KeyboardInterrupt:
            self.discard_connections()
            raise
        self.wrote = self.wrote or writing
        return result

    def _degrade(self, exc: BaseException, writing: bool) -> None:
        self.warn(f"Redis failed ({first_line(str(exc) or type(exc).__name__)}); reading from "
                  "PostgreSQL")
        self.client = None
        if writing:
            self._record_stale()

    def _record_stale(self) -> None:
        """A committed write did not reach Redis: raise the epoch (once per process)."""
        if self._bump_epoch is not None and not self._stale_recorded:
            self._stale_recorded = True
            self._bump_epoch()

    def check(self) -> None:
        """The coherence check now, if not done yet: before a write, so that the write's own
        WAL and sequence values cannot hide a database that went back in time."""
        if self.client is not None:
            self._ready()

    def _ready(self) -> bool:
        """Before the first use: the coherence check (see the module's docstring)."""
        if self._checked:
            return True
        self._checked = True
        import redis

        assert self._identity is not None
        try:
            identity = self._identity()
            state, markers = self._state(identity)
            if state == "coherent":
                self._history_holds(identity)  # raise the history seen
            elif not self._reset(dict(markers), identity, keep_versions=state == "restarted")[0]:
                # another process is cleaning: read PostgreSQL meanwhile, but keep writing
                # through (version-checked) so no write of ours leaves a stale balance
                self._reads_off = True
        except (redis.RedisError, OSError) as exc:
            self._degrade(exc, writing=False)
        return self.client is not None

    def _state(self, identity: Identity) -> tuple[str, list[tuple[str, str]]]:
        """How the cache stands to the database now (read-only), and the markers it should
        have: `coherent`; `empty` (no marker yet); `restarted` (the epoch or a primary's
        run id changed: Redis lost or missed writes, the card versions still hold); or
        `replaced` (the database changed or went back in time: versions may restart lower,
        so they go too)."""
        markers = self._markers(identity.database)
        found = [self.client.get(marker) for marker, _ in markers]
        if all(value is None for value in found):
            return "empty", markers
        wal, history = self.client.hmget(f"{self.prefix}history", "wal", "history")
        went_back = ((wal is not None and int(wal) > identity.wal_position)
                     or (history is not None and int(history) > identity.history))
        if went_back or any(value is None or _database_of(value.decode()) != _database_of(expected)
                            for value, (_, expected) in zip(found, markers, strict=True)):
            return "replaced", markers
        if any(value != expected.encode() for value, (_, expected) in zip(found, markers,
                                                                          strict=True)):
            return "restarted", markers
        return "coherent", markers

    def _history_holds(self, identity: Identity) -> bool:
        """Whether the database's history is no shorter than the cache has seen (and if so,
        record it as seen)."""
        return bool(self._script(scripts.HISTORY)(keys=[f"{self.prefix}history"],
                                           args=[identity.wal_position, identity.history]))

    def coherence(self, identity: Identity) -> str:
        """`_state` for `health` (a process that uses the cache repairs any but `coherent`)."""
        return self._state(identity)[0]

    def record_history(self, identity: Identity) -> None:
        """As a process that wrote finishes: the history its writes reached, as seen."""
        self.guard(lambda: self._history_holds(identity))

    def _markers(self, database: str) -> list[tuple[str, str]]:
        """(marker key, expected value) per primary: the database's identity and that
        primary's run id."""
        if not self.is_cluster:
            return [(f"{self.prefix}epoch", f"{database}:{self.client.info('server')['run_id']}")]
        markers = []
        for node in self.client.get_primaries():
            run_id = self.client.info("server", target_nodes=node)["run_id"]
            markers.append((self._key_on(node, "epoch"), f"{database}:{run_id}"))
        return markers

    def _key_on(self, node: Any, name: str) -> str:
        """A key of this prefix that the Cluster stores on `node`."""
        for n in range(100_000):
            key = f"{self.prefix}{{{name}:{n}}}"
            if self.client.get_node_from_key(key) == node:
                return key
        raise AssertionError(f"no key of {self.prefix!r} maps to {node}")

    def _reset(self, markers: dict[str, str], identity: Identity,
               keep_versions: bool) -> tuple[bool, int]:
        """Delete the prefix's keys (but the card versions, with `keep_versions`) and write
        fresh markers and history, unless another process holds the reset lock. Returns
        (done, keys deleted)."""
        lock = self.client.lock(f"{self.prefix}reset-lock", timeout=60, blocking=False)
        if not lock.acquire(blocking=False):
            return False, 0
        try:
            deleted = self._delete_prefix(_is_version if keep_versions else None)
            for marker, value in markers.items():
                self.client.set(marker, value)
            self._history_holds(identity)
            return True, deleted
        finally:
            release(lock)

    def _script(self, source: str) -> Any:
        if source not in self._scripts:
            self._scripts[source] = self.client.register_script(source)
        return self._scripts[source]

    def reading(self) -> bool:
        """Whether reads may use the cache now (after the first-use check)."""
        return self.client is not None and self._ready() and not self._reads_off

    def get(self, key: str) -> Any:
        if not self.reading():
            return None
        raw = self.guard(lambda: self.client.get(key))
        return None if raw is None else orjson.loads(raw)

    # cards ------------------------------------------------------------------
    def card_lookup(self, card_ids: list[int], kind: str) -> tuple[dict[int, Any], dict[int, str]]:
        """Cached values of the cards' `kind` key, and a fill ticket for each miss (taken
        before the caller reads PostgreSQL)."""
        if not card_ids or not self.reading():
            return {}, {}
        keys = [self.card_key(card_id, kind) for card_id in card_ids]
        if len(keys) == 1:
            raw = [self.guard(lambda: self.client.get(keys[0]))]
        elif self.is_cluster:
            raw = self.guard(lambda: self.client.mget_nonatomic(keys), [None] * len(keys))
        else:
            raw = self.guard(lambda: self.client.mget(keys), [None] * len(keys))
        found = {c: orjson.loads(v) for c, v in zip(card_ids, raw, strict=True) if v is not None}
        missing = [c for c in card_ids if c not in found]
        if not missing or self.client is None:
            return found, {}
        tickets = {card_id: secrets.token_hex(8) for card_id in missing}
        script = self._script(scripts.RESERVE)

        def reserve() -> None:
            for card_id, ticket in tickets.items():  # one slot each
                script(keys=[self.card_key(card_id, "fill")], args=[ticket, FILL_TTL_MS])

        self.guard(reserve)
        return found, tickets if self.client is not None else {}

    def card_fill(self, items: Iterable[tuple[int, str, int, Any]], tickets: dict[int, str],
                  ttl: int) -> None:
        """Store what a reader got from PostgreSQL: (card_id, kind, version, payload)."""
        items = [item for item in items if item[0] in tickets]
        if not items or self.client is None:
            return
        script = self._script(scripts.FILL)

        def store() -> None:
            for card_id, kind, version, payload in items:
                script(keys=[self.card_key(card_id, "ver"), self.card_key(card_id, kind),
                             self.card_key(card_id, "fill")],
                       args=[version, dumps(payload), ttl, tickets[card_id]])

        self.guard(store)

    def card_written(self, card_id: int, version: int, balance: dict[str, Any],
                     trips_changed: bool) -> None:
        """After COMMIT: write the new balance through and drop stale trip lists."""
        self.guard(lambda: self._write_cards([(card_id, version, balance)], trips_changed),
                    writing=True)

    def cards_written(self, items: list[tuple[int, int, dict[str, Any]]],
                      trips_changed: bool = False) -> None:
        """card_written for many cards (card_id, version, balance) after one COMMIT: one
        script call per WRITE_BATCH cards on a single node; card by card (one slot each)
        on a Cluster."""
        if items:
            self.guard(lambda: self._write_cards(items, trips_changed), writing=True)

    def _write_cards(self, items: list[tuple[int, int, dict[str, Any]]],
                     trips_changed: bool) -> None:
        script = self._script(scripts.CARDS_WRITTEN)
        batch = 1 if self.is_cluster else WRITE_BATCH
        for start in range(0, len(items), batch):
            keys: list[str] = []
            args: list[Any] = [BALANCE_TTL, VERSION_TTL]
            for card_id, version, balance in items[start:start + batch]:
                keys += (self.card_key(card_id, "ver"), self.card_key(card_id, "balance"),
                         self.card_key(card_id, "trips"))
                args += (version, dumps(balance), "1" if trips_changed else "0")
            script(keys=keys, args=args)

    def card_invalidated(self, card_id: int, version: int) -> int:
        """After COMMIT of a change that is not a plain balance movement (or to evict a
        card): drop the card's data keys (readers refill from PostgreSQL); how many."""
        return int(self.guard(lambda: self._script(scripts.CARD_INVALIDATED)(
            keys=[self.card_key(card_id, "ver"), self.card_key(card_id, "balance"),
                  self.card_key(card_id, "trips")],
            args=[version, VERSION_TTL]), 0, writing=True))

    # the prefix and its server: the coherence reset and `cache flush` delete alike -------
    def scan_keys(self) -> Iterable[bytes]:
        """Every key under the prefix (on every primary of a Cluster)."""
        if self.client is None:
            return []
        return self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=SCAN_BATCH)

    def server_info(self) -> dict[str, Any]:
        """INFO of the server (summed counters of a Cluster's primaries)."""
        if not self.is_cluster:
            return self.client.info()
        infos = list(self.client.info(target_nodes=self.client.PRIMARIES).values())
        merged = dict(infos[0])
        for key in ("keyspace_hits", "keyspace_misses", "connected_clients"):
            merged[key] = sum(int(info.get(key, 0)) for info in infos)
        return merged

    def flush(self, everything: bool = False) -> int:
        """Delete only this prefix's keys (SCAN + UNLINK); returns how many. The card
        versions and the coherence markers stay unless `everything`: they hold no data, and
        a version deleted under a write-through still under way would let it put an older
        balance back."""
        if self.client is None:
            return 0
        return self._delete_prefix(None if everything else self._is_bookkeeping)

    def _is_bookkeeping(self, key: bytes) -> bool:
        name = key[len(self.prefix.encode()):]
        return _is_version(key) or name in (b"epoch", b"history") or name.startswith(b"{epoch:")

    def _delete_prefix(self, keep: Callable[[bytes], bool] | None = None) -> int:
        deleted = 0
        batch: list[bytes] = []
        for key in self.scan_keys():
            if keep is not None and keep(key):
                continue
            batch.append(key)
            if len(batch) >= SCAN_BATCH:
                deleted += self._unlink(batch)
                batch.clear()
        if batch:
            deleted += self._unlink(batch)
        return deleted

    def _unlink(self, keys: list[bytes]) -> int:
        if not self.is_cluster:
            return int(self.client.unlink(*keys))
        return sum(int(self.client.unlink(key)) for key in keys)  # keys of many slots


def connect(url: str, cluster: bool = False) -> Any:
    """A redis-py client with short timeouts, no retries and the shortest handshake (RESP2,
    no client-name or maintenance-notification commands before the first command)."""
    from redis.backoff import NoBackoff
    from redis.driver_info import DriverInfo
    from redis.maint_notifications import MaintNotificationsConfig
    from redis.retry import Retry

    options: dict[str, Any] = {
        "socket_timeout": 2, "socket_connect_timeout": 1, "decode_responses": False,
        "protocol": 2, "driver_info": DriverInfo(name=None, lib_version=None),
    }
    if cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 1), **options)
    import redis

    # One connection held by the client instead of a pool round per command: a third less
    # client CPU per call (a process uses its cache from one thread at a time; the client
    # locks it anyway, and reconnects on the next command after an error).
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), single_connection_client=True,
                                maint_notifications_config=MaintNotificationsConfig(enabled=False),
                                **options)


def _is_version(key: bytes) -> bool:
    return key.endswith(b":ver")


def _database_of(marker: str) -> list[str]:
    """What a marker says of the data itself: generation, system identifier, database OID
    and timeline (the epoch and the run id aside)."""
    return marker.split(":")[1:5]


def release(lock: Any) -> None:
    """Release a lock we hold; one that expired meanwhile is simply gone."""
    from redis.exceptions import LockError

    with contextlib.suppress(LockError):
        lock.release()


def _glob_escape(text: str) -> str:
    """`text` as a literal in a Redis MATCH pattern (backslash first)."""
    for special in ("\\", "[", "]", "*", "?"):
        text = text.replace(special, "\\" + special)
    return text
