"""The embedded default: a private PostgreSQL 18 and Valkey (or a Valkey Cluster) under
<home>, started, stopped and inspected as one.

`binaries` finds and runs the server programs, `state` says where their files live,
`postgres`, `valkey` and `cluster` drive each kind of server. Migrating and loading the
demo data on first use is not done here (see `recharge_cli.embedded`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path

from recharge_cli.local import cluster as valkey_cluster
from recharge_cli.local import postgres
from recharge_cli.local.binaries import (
    LocalServerError,
    free_port,
    installed_pg_bin,
    last_line,
    pg_bin,
    valkey_binary,
    version,
)
from recharge_cli.local.state import (
    STATE_FILE,
    SUPERUSER,
    Layout,
    LocalState,
    dsn_for,
    layout,
    read_state,
    redis_url_for,
    replica_dsn_for,
    valkey_password,
    write_state,
)
from recharge_cli.local.valkey import Valkey

__all__ = [
    "SUPERUSER", "Layout", "LocalServerError", "LocalState", "cache_url_for", "dsn_for",
    "ensure_running", "installed_pg_bin", "layout", "purge", "read_state", "redis_url_for",
    "replica_dsn_for", "running", "start", "status", "stop", "valkey_binary",
    "valkey_password",
]


def _valkey(lay: Layout, state: LocalState | None = None) -> Valkey:
    """The single embedded Valkey (the port only matters when starting it)."""
    return Valkey(lay.valkey_dir, state.valkey_port if state else 0)


def cache_url_for(lay: Layout, state: LocalState) -> str:
    """The embedded cache: the Valkey Cluster when started with --cluster, else the Valkey."""
    if state.cluster:
        cluster = valkey_cluster.read(lay.cluster_dir)
        if cluster is not None:
            return cluster.url
    return redis_url_for(lay)


def start(home: Path, say: Callable[[str], None] = lambda _msg: None, replica: bool = False,
          cluster: bool = False) -> LocalState:
    """Start the servers that are not running (a second call is a no-op); `replica` adds a
    streaming read replica and `cluster` a Valkey Cluster, which stay part of this home."""
    lay = layout(home)
    home.mkdir(parents=True, exist_ok=True)
    state = read_state(lay.home) or LocalState(0, 0, str(lay.server_dir))
    bin_dir = pg_bin(lay.server_dir)
    if not postgres.running(lay.pg_data, bin_dir):
        if not postgres.initialised(lay.pg_data):
            say(f"Creating the embedded PostgreSQL in {lay.pg_data} …")
            postgres.init(lay, bin_dir)
        postgres.start(lay, state, bin_dir)
        say(f"Started embedded PostgreSQL on 127.0.0.1:{state.pg_port}")
    postgres.create_database(lay, state)
    _start_valkey(lay, state, say)
    if replica or state.replica_port:
        postgres.start_replica(lay, state, bin_dir, say)
    if cluster or state.cluster:
        formed = valkey_cluster.start(lay.cluster_dir, valkey_password(lay))
        state.cluster = True
        say(f"Valkey Cluster on 127.0.0.1 ports {', '.join(map(str, formed.ports))}")
    write_state(lay.home, state)
    return state


def _start_valkey(lay: Layout, state: LocalState, say: Callable[[str], None]) -> None:
    """The single Valkey, on the unix socket and a loopback port, with its password."""
    server = _valkey(lay)
    if server.pid() is not None and not server.config.exists():
        server.stop()  # started by a version without a password: restart it with one
    if server.pid() is not None:
        return
    state.valkey_port = free_port(state.valkey_port)
    server = _valkey(lay, state)
    server.start(valkey_password(lay), maxmemory="512mb", args=(
        "--unixsocket", str(lay.valkey_socket), "--unixsocketperm", "700"))
    server.wait_started(ready=lay.valkey_socket)
    say(f"Started embedded Valkey on 127.0.0.1:{state.valkey_port}")


def stop(home: Path) -> list[str]:
    """Stop every server; returns what was stopped."""
    lay = layout(home)
    stopped = []
    if postgres.initialised(lay.pg_data):
        stopped += postgres.stop(lay, pg_bin(lay.server_dir))
    if valkey_cluster.stop(lay.cluster_dir):
        stopped.append("valkey cluster")
    if _valkey(lay).stop():
        stopped.append("valkey")
    return stopped


def purge(home: Path) -> tuple[list[str], list[str]]:
    """Stop every server and delete their data, binaries copy and state. Returns what was
    stopped and the paths that were deleted."""
    lay = layout(home)
    stopped = stop(home)
    deleted = []
    for path in (lay.pg_root, lay.server_dir / "pgbin", lay.valkey_dir, lay.cluster_dir,
                 lay.home / STATE_FILE, lay.home / "pgpass", lay.home / "valkey.password"):
        if path.exists():
            deleted.append(str(path))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if lay.server_dir != lay.home and lay.server_dir.exists():
        deleted.append(str(lay.server_dir))
        shutil.rmtree(lay.server_dir, ignore_errors=True)
    return stopped, deleted


def status(home: Path) -> dict:
    """Versions, ports, data size and whether each server answers."""
    lay = layout(home)
    state = read_state(lay.home)
    info: dict = {"home": str(lay.home), "server_dir": str(lay.server_dir)}
    pg: dict = {"port": state.pg_port if state else None, "socket_dir": str(lay.pg_socket_dir),
                "answers": False, "version": None}
    valkey: dict = {"port": state.valkey_port if state else None,
                    "socket": str(lay.valkey_socket), "answers": False, "version": None}
    try:
        pg["binary_version"] = version(installed_pg_bin() / "postgres")
        valkey["binary_version"] = version(valkey_binary())
    except LocalServerError as exc:
        info["error"] = str(exc)
    if state is not None:
        pg.update(_pg_answers(lay, state))
        valkey.update(_valkey_answers(lay))
    info["data_bytes"] = _size(lay.pg_data) + _size(lay.valkey_dir)
    info["postgresql"] = pg
    info["valkey"] = valkey
    if state is not None and state.replica_port:
        info["replica"] = postgres.replica_status(lay, state)
    if state is not None and state.cluster:
        formed = valkey_cluster.read(lay.cluster_dir)
        info["cluster"] = valkey_cluster.nodes(formed) if formed else []
    return info


def _pg_answers(lay: Layout, state: LocalState) -> dict:
    import psycopg

    try:
        with psycopg.connect(dsn_for(lay, state), connect_timeout=3) as conn:
            return {"version": conn.execute("SHOW server_version").fetchone()[0], "answers": True}
    except Exception as exc:
        return {"error": last_line(str(exc))}


def _valkey_answers(lay: Layout) -> dict:
    import redis

    try:
        client = redis.Redis(unix_socket_path=str(lay.valkey_socket), socket_timeout=3,
                             password=valkey_password(lay))
        server = client.info("server")
        return {"version": server.get("valkey_version") or server.get("redis_version"),
                "answers": True}
    except Exception as exc:
        return {"error": last_line(str(exc))}


def running(home: Path) -> bool:
    """Whether the embedded PostgreSQL and Valkey of `home` both run."""
    state = read_state(home)
    return state is not None and _answers(layout(home), state)


def ensure_running(home: Path, say: Callable[[str], None]) -> tuple[LocalState, Layout]:
    """Fast path for every command: connect if up, start only when something is down."""
    lay = layout(home)
    state = read_state(lay.home)
    if state is None or not _answers(lay, state):
        state = start(home, say)
        lay = layout(home)
    return state, lay


def _answers(lay: Layout, state: LocalState) -> bool:
    """Both servers' processes are alive (a socket left by a crashed server does not count)."""
    socket_file = lay.pg_socket_dir / f".s.PGSQL.{state.pg_port}"
    return socket_file.exists() and postgres.postmaster_alive(lay) and _valkey(lay).pid() is not None


def _size(path: Path) -> int:
    total = 0
    if path.exists():
        for item in path.rglob("*"):
            with contextlib.suppress(OSError):
                if item.is_file():
                    total += item.stat().st_size
    return total
