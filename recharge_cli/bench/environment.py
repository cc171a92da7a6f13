"""What a bench run ran on: versions, machine, row counts, parameters, git revision."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recharge_cli.cache import Cache


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except OSError:
        return None


@dataclass
class Environment:
    python: str
    platform: str
    cpu_count: int | None
    psycopg: str
    redis_py: str
    postgresql: str
    redis_server: str | None
    redis_server_kind: str
    row_counts: dict[str, int]
    git_revision: str | None
    parameters: dict[str, Any]  # the run's options, as given

    def what_ran(self) -> str:
        return (f"PostgreSQL {self.postgresql}, {self.redis_server_kind} {self.redis_server}, "
                f"{self.cpu_count} CPUs")


def probe(conn: Any, cache: Cache, parameters: dict[str, Any]) -> Environment:
    import psycopg
    import redis

    counts = conn.execute("SELECT (SELECT count(*) FROM public.cards) AS cards, "
                          "(SELECT count(*) FROM public.trips) AS trips, "
                          "(SELECT count(*) FROM public.recharges) AS recharges").fetchone()
    info = cache.server_info()
    return Environment(
        platform.python_version(), platform.platform(), os.cpu_count(), psycopg.__version__,
        redis.__version__, conn.execute("SHOW server_version").fetchone()["server_version"],
        info.get("valkey_version") or info.get("redis_version"),
        "valkey" if "valkey_version" in info else "redis", dict(counts), git_revision(),
        parameters)
