"""Where the embedded servers' files live and what `local.json` records of them."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from urllib.parse import quote

from recharge_cli.local import valkey
from recharge_cli.local.binaries import reachable, run_user

DATABASE = "recharge"
SUPERUSER = "postgres"
STATE_FILE = "local.json"
SHARED_ROOT = Path("/var/lib/recharge")


@dataclass
class LocalState:
    pg_port: int
    valkey_port: int
    server_dir: str
    seeded: bool = False
    migrations: str = ""
    replica_port: int = 0  # a streaming read replica runs (local start --replica)
    cluster: bool = False  # a Valkey Cluster replaces the single Valkey (--cluster)


_STATE_FIELDS = {f.name for f in fields(LocalState)}


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
        return self.valkey_dir / valkey.PID_FILE


def layout(home: Path) -> Layout:
    """Server files live in <home>, unless root's PostgreSQL user cannot reach it."""
    home = home.resolve()
    state = read_state(home)
    if state is not None:
        return Layout(home, Path(state.server_dir))
    user = run_user()
    if user is None or reachable(home, user):
        return Layout(home, home)
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Layout(home, SHARED_ROOT / digest)


def read_state(home: Path) -> LocalState | None:
    path = home / STATE_FILE
    if not path.exists():
        return None
    try:
        recorded = json.loads(path.read_text())
        # a field an older version recorded and this one no longer keeps is dropped
        return LocalState(**{k: v for k, v in recorded.items() if k in _STATE_FIELDS})
    except (ValueError, TypeError, AttributeError):
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


def redis_url_for(lay: Layout) -> str:
    """The unix-socket URL of the embedded Valkey, with its password (URL-quoted)."""
    return f"unix://:{quote(valkey_password(lay), safe='')}@{lay.valkey_socket}"


def valkey_password(lay: Layout) -> str:
    """The embedded Valkey's password, made once and kept in <home> with mode 0600."""
    path = lay.home / "valkey.password"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
