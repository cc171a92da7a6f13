"""The embedded PostgreSQL: initdb, start, a streaming read replica, status and stop, run
as the server user (`binaries.as_server_user`)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from recharge_cli.local.binaries import (
    LocalServerError,
    as_server_user,
    free_port,
    last_line,
    owned_dir,
    run_user,
)
from recharge_cli.local.state import DATABASE, SUPERUSER, Layout, LocalState, replica_dsn_for


def initialised(data: Path) -> bool:
    return (data / "PG_VERSION").exists()


def init(lay: Layout, bin_dir: Path) -> None:
    """initdb (trust on the socket, scram-sha-256 over TCP) and the embedded defaults."""
    if initialised(lay.pg_data):
        return
    lay.server_dir.mkdir(parents=True, exist_ok=True)
    owned_dir(lay.pg_root, 0o700)
    owned_dir(lay.pg_data, 0o700)
    pwfile = lay.pg_root / "initdb.pw"
    password = secrets.token_urlsafe(24)
    pwfile.write_text(password + "\n")
    user = run_user()
    if user is not None:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    try:
        result = as_server_user([
            str(bin_dir / "initdb"), "-D", str(lay.pg_data), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
        ])
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(lay.pg_data, ignore_errors=True)
        raise LocalServerError(f"initdb failed: {last_line(result.stderr)}")
    pgpass = lay.home / "pgpass"
    pgpass.write_text(f"127.0.0.1:*:*:{SUPERUSER}:{password}\n")
    pgpass.chmod(0o600)
    with (lay.pg_data / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# recharge embedded defaults\n"
            "listen_addresses = '127.0.0.1'\n"
            "shared_buffers = '256MB'\n"
            "max_connections = 200\n"
            "track_functions = 'pl'\n"
            "max_wal_size = '2GB'\n"
        )


def _pg_ctl_start(bin_dir: Path, data: Path, log: Path, port: int, socket_dir: Path):
    return as_server_user([
        str(bin_dir / "pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "120",
        "-o", f"-p {port} -k {socket_dir}"])


def start(lay: Layout, state: LocalState, bin_dir: Path) -> None:
    """Start the primary on a free port (the last one when it is free)."""
    owned_dir(lay.pg_socket_dir, 0o700)
    state.pg_port = free_port(state.pg_port)
    result = _pg_ctl_start(bin_dir, lay.pg_data, lay.pg_log, state.pg_port, lay.pg_socket_dir)
    if result.returncode != 0:
        raise LocalServerError(
            f"PostgreSQL did not start (see {lay.pg_log}): {last_line(result.stderr)}"
        )


def create_database(lay: Layout, state: LocalState) -> None:
    import psycopg

    conninfo = f"host={lay.pg_socket_dir} port={state.pg_port} user={SUPERUSER} dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DATABASE}")


def start_replica(lay: Layout, state: LocalState, bin_dir: Path,
                  say: Callable[[str], None]) -> None:
    """A streaming standby of the embedded PostgreSQL (pg_basebackup -R, same binaries)."""
    if state.replica_port and running(lay.replica_data, bin_dir):
        return
    if not initialised(lay.replica_data):
        owned_dir(lay.replica_data, 0o700)
        result = as_server_user([
            str(bin_dir / "pg_basebackup"), "-D", str(lay.replica_data), "-h",
            str(lay.pg_socket_dir), "-p", str(state.pg_port), "-U", SUPERUSER, "-R",
            "-X", "stream", "-c", "fast"])
        if result.returncode != 0:
            shutil.rmtree(lay.replica_data, ignore_errors=True)
            raise LocalServerError(f"pg_basebackup failed: {last_line(result.stderr)}")
    state.replica_port = free_port(state.replica_port or None)
    result = _pg_ctl_start(bin_dir, lay.replica_data, lay.replica_log, state.replica_port,
                           lay.pg_socket_dir)
    if result.returncode != 0:
        raise LocalServerError(f"the read replica did not start (see {lay.replica_log}): "
                               f"{last_line(result.stderr)}")
    say(f"Started the embedded read replica on 127.0.0.1:{state.replica_port}")


def running(data: Path, bin_dir: Path) -> bool:
    """`pg_ctl status` of the cluster in `data`."""
    if not initialised(data):
        return False
    return as_server_user([str(bin_dir / "pg_ctl"), "status", "-D", str(data)]).returncode == 0


def stop(lay: Layout, bin_dir: Path) -> list[str]:
    """Fast shutdown of the replica, then the primary; returns what was stopped."""
    stopped = []
    for name, data in (("postgresql replica", lay.replica_data), ("postgresql", lay.pg_data)):
        if running(data, bin_dir):
            result = as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(data),
                                     "-m", "fast", "-w", "-t", "60"])
            if result.returncode != 0:
                raise LocalServerError(f"{name} did not stop: {last_line(result.stderr)}")
            stopped.append(name)
    return stopped


def postmaster_alive(lay: Layout) -> bool:
    try:
        pid = int((lay.pg_data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def replica_status(lay: Layout, state: LocalState) -> dict:
    import psycopg

    from recharge_cli import db

    found: dict = {"port": state.replica_port, "answers": False, "lag_seconds": None}
    try:
        with db.connect(replica_dsn_for(lay, state) or "", connect_timeout=3) as conn:
            found.update(answers=True, lag_seconds=db.replica_lag(conn))
    except psycopg.Error as exc:
        found["error"] = last_line(str(exc))
    return found
