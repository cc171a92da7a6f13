"""Settings resolved as: command-line flag > environment variable > config file > embedded default."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from recharge_cli.errors import InvalidInput, first_line

DEFAULT_PREFIX = "recharge:v1:"
REDIS_SCHEMES = ("redis", "rediss", "unix")
# Keys a config file may hold, with their TOML type.
CONFIG_TYPES: dict[str, type | tuple[type, ...]] = {
    "dsn": str, "admin_dsn": str, "read_dsn": str, "redis_url": str, "redis_cluster": bool,
    "no_cache": bool, "max_replica_lag": (int, float), "cache_prefix": str}
_TYPE_NAMES: dict[Any, str] = {bool: "true/false value", (int, float): "number of seconds"}
# libpq variables that name a server; any of them means "not the embedded default".
LIBPQ_SERVER_VARS = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGSERVICE", "PGUSER")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to reach its servers. `dsn is None` means embedded."""

    home: Path
    dsn: str | None = None
    admin_dsn: str | None = None
    read_dsn: str | None = None
    redis_url: str | None = None
    redis_cluster: bool = False
    max_replica_lag: float = 30.0
    cache_enabled: bool = True
    cache_prefix: str = DEFAULT_PREFIX

    @property
    def embedded(self) -> bool:
        return self.dsn is None

    def with_servers(self, dsn: str, redis_url: str | None, read_dsn: str | None = None,
                     redis_cluster: bool = False) -> Settings:
        """The same settings pointing at concrete servers (used once the embedded ones run);
        a Redis or replica setting of the user's own wins."""
        if self.redis_url:
            redis_url, redis_cluster = self.redis_url, self.redis_cluster
        return replace(self, dsn=dsn, redis_url=redis_url, redis_cluster=redis_cluster,
                       read_dsn=self.read_dsn or read_dsn)


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("RECHARGE_HOME"):
        return Path(env["RECHARGE_HOME"]).expanduser()
    data_home = env.get("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(data_home).expanduser() / "recharge"


def load_config(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise InvalidInput(f"config file not found: {path}")
        return {}
    try:
        with path.open("rb") as fh:
            values = tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
        raise InvalidInput(f"cannot read config file {path}: {first_line(str(exc))} "
                           "(it must be UTF-8 TOML, e.g. dsn = \"postgresql://…\")") from exc
    for name, value in values.items():
        expected = CONFIG_TYPES.get(name)
        if expected is not None and not isinstance(value, expected):
            raise InvalidInput(f"config file {path}: {name} must be a "
                               f"{_TYPE_NAMES.get(expected, 'string')}, "
                               f"got {value!r}")
    return values


def resolve(
    *,
    dsn: str | None = None,
    admin_dsn: str | None = None,
    read_dsn: str | None = None,
    redis_url: str | None = None,
    redis_cluster: bool = False,
    max_replica_lag: float | None = None,
    no_cache: bool = False,
    config: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting by precedence; flags are the keyword arguments."""
    env = os.environ if env is None else env
    home = default_home(env)
    config_path = config or (Path(env["RECHARGE_CONFIG"]) if env.get("RECHARGE_CONFIG") else None)
    file_values = load_config(config_path or home / "config.toml", required=config_path is not None)
    unknown = set(file_values) - set(CONFIG_TYPES)
    if unknown:
        raise InvalidInput(f"unknown setting(s) in config file: {', '.join(sorted(unknown))}")

    def pick(name: str, flag: Any, env_names: tuple[str, ...]) -> Any:
        if flag not in (None, False):
            return flag
        for env_name in env_names:
            if env.get(env_name):
                return env[env_name]
        if name in file_values:
            return file_values[name]
        return None

    chosen_dsn = pick("dsn", dsn, ("RECHARGE_DSN", "DATABASE_URL"))
    if chosen_dsn is None and any(env.get(var) for var in LIBPQ_SERVER_VARS):
        chosen_dsn = ""  # libpq reads PG* variables, ~/.pgpass and service files itself
    chosen_redis = pick("redis_url", redis_url, ("RECHARGE_REDIS_URL", "REDIS_URL"))
    if chosen_redis is not None:
        validate_redis_url(str(chosen_redis))
    no_cache_value = pick("no_cache", no_cache, ("RECHARGE_NO_CACHE",))
    cluster_value = pick("redis_cluster", redis_cluster, ("RECHARGE_REDIS_CLUSTER",))
    lag_value = pick("max_replica_lag", max_replica_lag, ("RECHARGE_MAX_REPLICA_LAG",))
    prefix = pick("cache_prefix", None, ("RECHARGE_CACHE_PREFIX",)) or DEFAULT_PREFIX
    return Settings(
        home=home,
        dsn=None if chosen_dsn is None else str(chosen_dsn),
        admin_dsn=pick("admin_dsn", admin_dsn, ("RECHARGE_ADMIN_DSN",)),
        read_dsn=pick("read_dsn", read_dsn, ("RECHARGE_READ_DSN",)),
        redis_url=None if chosen_redis is None else str(chosen_redis),
        redis_cluster=_truthy(cluster_value),
        max_replica_lag=_seconds(lag_value, "max replica lag", Settings.max_replica_lag),
        cache_enabled=not _truthy(no_cache_value),
        cache_prefix=str(prefix),
    )


def validate_redis_url(url: str) -> None:
    from urllib.parse import urlsplit

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in REDIS_SCHEMES:
        raise InvalidInput(
            f"invalid Redis URL scheme {scheme or '(none)'!r}: use redis://, rediss:// or unix://"
        )
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError as exc:
        raise InvalidInput(f"invalid Redis URL: the port must be a number from 1 to 65535 "
                           f"(e.g. redis://localhost:6379/0): {exc}") from exc
    if scheme != "unix" and not parts.hostname:
        raise InvalidInput("invalid Redis URL: no host (e.g. redis://localhost:6379/0)")
    if scheme == "unix" and not parts.path:
        raise InvalidInput("invalid Redis URL: no socket path (e.g. unix:///run/redis.sock)")


def _seconds(value: Any, what: str, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError as exc:
        raise InvalidInput(f"{what} must be a number of seconds, got {value!r}") from exc
    if not 0 <= seconds <= 86_400:
        raise InvalidInput(f"{what} must be between 0 and 86400 seconds, got {value!r}")
    return seconds


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")
