"""What a command runs against: settings resolved to live PostgreSQL and Redis connections.

With no PostgreSQL setting anywhere, the embedded servers are started on first use,
migrated, and loaded with the demo data once (announced on stderr).
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recharge_cli.errors import ServiceUnavailable, first_line, translate
from recharge_cli.render import Output
from recharge_cli.settings import Settings

if TYPE_CHECKING:
    import psycopg

    from recharge_cli.cache import Cache, Identity


@dataclass
class Runtime:
    settings: Settings
    output: Output
    _conn: Any = None
    _others: dict[str, Any] = field(default_factory=dict)
    _cache: Any = None
    _resolved: Settings | None = None
    _closers: list[Any] = field(default_factory=list)
    _replica_too_far: bool = False
    command: str | None = None  # the sub-command run (for --metrics-file)
    metrics_file: Path | None = None

    def ensure_servers(self) -> Settings:
        """Settings with a concrete DSN. With the embedded default this starts the servers
        that are down, migrates and loads the demo data on first use (`embedded.ready`)."""
        if self._resolved is None:
            self._resolved = self._ready_embedded() if self.settings.embedded else self.settings
        return self._resolved


    def db(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None:
            self._conn = self._connect(self.ensure_servers().dsn or "")
        return self._conn

    def more_db(self) -> psycopg.Connection[dict[str, Any]]:
        """One more connection to the primary, for work done side by side (bulk chunks)."""
        return self._connect(self.ensure_servers().dsn or "")

    def _connect(self, dsn: str) -> psycopg.Connection[dict[str, Any]]:
        import psycopg

        from recharge_cli import db

        try:
            conn = db.connect(dsn)
        except psycopg.Error as exc:
            error = translate(exc, reaching="PostgreSQL")
            if error is None:
                raise
            raise error from exc
        self._closers.append(conn)
        return conn

    def locked(self, name: str | None, wait: float = 0.0) -> AbstractContextManager[None]:
        """Hold run lock `name` (`--lock`) on the primary for a block; exit 75 if taken."""
        from recharge_cli import locks

        return locks.held(self.db(), name, wait)

    def admin_db(self) -> psycopg.Connection[dict[str, Any]]:
        """A connection as the schema owner (`--admin-dsn`) for migrations, seeding and bench;
        the application connection when no admin DSN is set."""
        return self._other("admin", self.ensure_servers().admin_dsn)

    def read_db(self) -> psycopg.Connection[dict[str, Any]]:
        """A connection for statistics: the read replica when one is set and no further
        behind than --max-replica-lag, else the primary (with a warning). Card balances,
        trips lists and writes always use the primary (read-your-writes)."""
        servers = self.ensure_servers()
        if not servers.read_dsn or self._replica_too_far:
            return self.db()
        replica = self._other("read", servers.read_dsn)
        from recharge_cli import db

        lag = db.replica_lag(replica)
        if lag is not None and lag > servers.max_replica_lag:
            self._replica_too_far = True
            self.output.warn(f"the read replica is {lag:g} s behind (more than "
                             f"--max-replica-lag {servers.max_replica_lag:g}); statistics "
                             "read from the primary")
            return self.db()
        return replica

    def _other(self, role: str, dsn: str | None) -> psycopg.Connection[dict[str, Any]]:
        """One extra connection per role when its DSN is set, else the primary connection."""
        if not dsn:
            return self.db()
        if role not in self._others:
            self._others[role] = self._connect(dsn)
        return self._others[role]

    def cache(self, check: bool = True, required: bool = False) -> Cache:
        """The cache; disabled (every read from PostgreSQL) with --no-cache or no Redis set.
        Checked against the database before it is handed out (README "Cache and
        freshness"), so before the command reads or writes anything; the cache commands
        that only look at or delete keys skip that (`check=False`: the first cached read or
        write-through still checks). `required` (cache commands, where Redis is the job): no
        Redis is one error line, exit 69, instead of a warning that the command goes on
        without it."""
        if self._cache is None:
            from recharge_cli.cache import Cache

            servers = self.ensure_servers()
            url = servers.redis_url if servers.cache_enabled else None

            def warn(text: str) -> None:
                self.output.warn(text, "redis")

            self._cache = Cache.from_url(url, servers.cache_prefix, cluster=servers.redis_cluster,
                                         warn=(lambda _text: None) if required else warn,
                                         identity=self._cache_identity,
                                         bump_epoch=self._bump_cache_epoch)
            self._cache.warn = warn
            self._closers.append(self._cache)
        if required and self._cache.unreachable:
            raise ServiceUnavailable(f"Redis failed: {self._cache.unreachable}")
        if required and not self._cache.enabled:
            raise ServiceUnavailable("no Redis is configured (or --no-cache is set)")
        if check:
            self._cache.check()
        return self._cache

    def _cache_identity(self) -> Identity:
        from recharge_cli import db
        from recharge_cli.cache import Identity

        row = db.call_one(self.db(), "public.cache_identity")
        assert row is not None
        return Identity.of(row)

    def _record_cache_history(self) -> None:
        """A process that wrote through leaves the history it reached as seen, so a restore
        to a point before its writes is noticed by the next process."""
        import psycopg

        if self._cache is not None and self._cache.wrote and self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._cache.record_history(self._cache_identity())

    def _bump_cache_epoch(self) -> None:
        """After a write-through failed: make every process empty the cache before using it.
        The write itself committed, so a failure here is a warning, never an error."""
        import psycopg

        from recharge_cli import db

        try:
            db.call(self.db(), "public.cache_epoch_bump")
        except psycopg.Error as exc:
            self.output.warn(f"could not record that the cache may be stale ({first_line(str(exc))}); "
                             "run `recharge cache flush` once Redis answers", "epoch")

    def close(self) -> None:
        """Close every connection. An interrupt met while closing (a connection cancelling
        the query the interrupt cut short) changes nothing: the command's exit status is
        decided already."""
        with contextlib.suppress(Exception, KeyboardInterrupt):
            self._record_cache_history()
        for item in reversed(self._closers):
            with contextlib.suppress(Exception, KeyboardInterrupt):
                item.close()
        self._closers.clear()
        self._conn = self._cache = None
        self._others.clear()

    def _ready_embedded(self) -> Settings:
        from recharge_cli import embedded

        return embedded.ready(self.settings, self.output)

