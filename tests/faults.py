"""Private servers that tests may kill, pause, fill up or restart (never the shared ones)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from recharge_cli import local


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Valkey:
    """A valkey-server child process on a loopback port."""

    port: int
    folder: Path
    args: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> Valkey:
        self.process = subprocess.Popen(
            [str(local.valkey_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.folder), "--save", "", "--appendonly", "no", *self.args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if self.client().ping():
                    return self
            time.sleep(0.02)
        raise RuntimeError("valkey-server did not start")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)


@contextmanager
def valkey(folder: Path, *args: str) -> Iterator[Valkey]:
    folder.mkdir(parents=True, exist_ok=True)
    server = Valkey(free_port(), folder, args).start()
    try:
        yield server
    finally:
        server.kill()


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`recharge …` as a real process (no terminal, no stdin)."""
    return subprocess.run([sys.executable, "-m", "recharge_cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "recharge_cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def cli_env(dsn: str, redis_url: str, prefix: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECHARGE_", "PG")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(RECHARGE_DSN=dsn, RECHARGE_REDIS_URL=redis_url, RECHARGE_CACHE_PREFIX=prefix,
               RECHARGE_HOME=str(home))
    return env


def wait_for_backend(conn: psycopg.Connection[Any], application: str = "recharge",
                     timeout: float = 20) -> int:
    """The pid of a backend of `application` that waits for a lock (a write under way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock' LIMIT 1", (application,)).fetchone()
        if row:
            return int(row["pid"] if isinstance(row, dict) else row[0])
        time.sleep(0.02)
    raise AssertionError("no backend of the command is waiting for the card's lock")
