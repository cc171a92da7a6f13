"""One valkey-server process in a folder of its own: the single embedded Valkey and each
Valkey Cluster node.

The folder holds the config file (mode 0600: the password never goes on a command line,
which `ps` shows to all), the pid file and the log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from recharge_cli.local.binaries import LocalServerError, last_line, valkey_binary

PID_FILE = "valkey.pid"


@dataclass(frozen=True)
class Valkey:
    folder: Path
    port: int

    @property
    def pidfile(self) -> Path:
        return self.folder / PID_FILE

    @property
    def config(self) -> Path:
        return self.folder / "valkey.conf"

    @property
    def log(self) -> Path:
        return self.folder / "valkey.log"

    def pid(self) -> int | None:
        """The pid of the running server (None: not running, or a stale pid file)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"valkey-server" in cmdline else None

    def start(self, password: str, *, maxmemory: str, args: tuple[str, ...] = (),
              masterauth: bool = False) -> None:
        """Start the server daemonized on 127.0.0.1:`port` with `password` (and as the
        password for its primary with `masterauth`); `args` adds options."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        self.pidfile.unlink(missing_ok=True)
        fd = os.open(self.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"requirepass {password}\n" + (f"masterauth {password}\n" if masterauth else ""))
        result = subprocess.run([
            str(valkey_binary()), str(self.config), "--port", str(self.port),
            "--bind", "127.0.0.1", *args, "--dir", str(self.folder),
            "--daemonize", "yes", "--pidfile", str(self.pidfile), "--logfile", str(self.log),
            "--save", "", "--appendonly", "no", "--maxmemory", maxmemory,
            "--maxmemory-policy", "allkeys-lru",
        ], capture_output=True, text=True, cwd="/")
        if result.returncode != 0:
            raise LocalServerError(f"Valkey did not start: {last_line(result.stderr or result.stdout)}")

    def wait_started(self, ready: Path | None = None, seconds: float = 10) -> None:
        """Until the pid file names a live server (and `ready` exists, when given)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.pid() and (ready is None or ready.exists()):
                return
            time.sleep(0.02)
        raise LocalServerError(f"Valkey did not start (see {self.log})")

    def stop(self, grace: float = 15) -> bool:
        """SIGTERM (SIGKILL after `grace` seconds); whether one was running."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.02)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return pid is not None
