"""What a bench run ran on: versions, machine, row counts, parameters, git revision."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from recharge_cli.cache import Cache


def git_revision() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except OSError:
        return None


def probe(conn: Any, cache: Cache, parameters: dict[str, Any]) -> dict[str, Any]:
    import psycopg
    import redis

    counts = conn.execute("SELECT (SELECT count(*) FROM public.cards) AS cards, "
                          "(SELECT count(*) FROM public.trips) AS trips, "
                          "(SELECT count(*) FROM public.recharges) AS recharges").fetchone()
    info = cache.server_info()
    return {
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "psycopg": psycopg.__version__, "redis_py": redis.__version__,
        "postgresql": conn.execute("SHOW server_version").fetchone()["server_version"],
        "redis_server": info.get("valkey_version") or info.get("redis_version"),
        "redis_server_kind": "valkey" if "valkey_version" in info else "redis",
        "row_counts": dict(counts), "git_revision": git_revision(), "parameters": parameters,
    }
