"""Process start-up budget: `recharge balance --card N` as a whole process against
`python -c "import psycopg, redis"`, median of N runs each, interleaved.

    python tests/perf/startup.py --dsn postgresql://postgres@127.0.0.1:5432/bench \
        --redis-url redis://127.0.0.1:6379/0 [--runs 20] [--card 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--card", default="1")
    args = parser.parse_args()
    env = {**os.environ, "RECHARGE_DSN": args.dsn, "RECHARGE_REDIS_URL": args.redis_url}
    script = str(Path(sys.executable).parent / "recharge")
    commands = {"import psycopg, redis": [sys.executable, "-c", "import psycopg, redis"],
                "recharge balance": [script, "balance", "--card", args.card]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs + 1):  # the first round warms the page cache and is dropped
        for name, command in commands.items():
            times[name].append(wall(command, env))
    medians = {name: statistics.median(t[1:]) * 1000 for name, t in times.items()}
    for name, ms in medians.items():
        print(f"{name:<22} median {ms:7.1f} ms")
    ratio = medians["recharge balance"] / medians["import psycopg, redis"]
    print(f"ratio {ratio:.2f} (budget ≤ 1.3): {'pass' if ratio <= 1.3 else 'FAIL'}")


if __name__ == "__main__":
    main()
