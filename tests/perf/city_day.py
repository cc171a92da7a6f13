"""A city's day through the tool: validator uploads and recharge-point files, from files to
verified, rolled-up statistics, with each stage's time, rows/s and bytes added, and the
upload rate against pgbench's TPC-B tps on the same server (budgets: uploads ≥ 5 × TPC-B
tps; a city's day of 3.5 M taps and 300 k recharges ≤ 15 min on two cores; incremental
verify after a day ≤ 60 s). It ends with one line of budget verdicts and exits 1 when a
budget fails. Each stage's line gives its peak RSS too (memory flat in the file size).

    python tests/perf/city_day.py --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        --redis-url redis://127.0.0.1:6379/0 [--scale 4] [--taps 350000 --recharges 30000]

The defaults are a city's shape at a tenth of its size; `--taps 3500000 --recharges 300000
--scale 40` is the full size. It creates a database of its own (dropped afterwards unless
--keep), seeds it with `db seed --scale`, and generates yesterday's day, deterministic for
a --seed: journeys follow the demo's transfer patterns (18 % two legs, 2 % three, on
personalised cards) and its weekday time-of-day curve; the taps arrive in --files files by
validator group, plus one late file of taps from every group, out of order; recharges come
in one file per channel. Every stage runs the real command, as cron would.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis
from bulk_throughput import pgbench_tps  # (the same TPC-B anchor: this folder's script)
from psycopg import conninfo

RECHARGE = [sys.executable, "-m", "recharge_cli"]
# weekday journeys by hour (the demo's curve, 20_seed.sql)
HOURS = [1, 1, 1, 1, 4, 14, 22, 20, 11, 7, 6, 6, 7, 7, 6, 7, 11, 19, 17, 10, 6, 4, 3, 2]
# the service of a first leg and the stations and routes of each (as the demo's ids)
SERVICES = {"TRONCAL": ((1, 149), (1, 120)), "ZONAL_UCE": ((154, 7700), (221, 558)),
            "ALIMENTADORA": ((1, 9), (121, 220))}


def journeys(rng: random.Random, cards: list[tuple[int, bool]], taps: int,
             day: dt.date) -> list[tuple[int, int, int | None, dt.datetime]]:
    """About `taps` legs: (card, station, route, boarding time)."""
    legs: list[tuple[int, int, int | None, dt.datetime]] = []
    midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
    hours = [h for h, weight in enumerate(HOURS) for _ in range(weight)]
    while len(legs) < taps:
        card, personalised = rng.choice(cards)
        draw = rng.random()
        count = 1 if not personalised or draw >= 0.20 else (2 if draw < 0.18 else 3)
        at = midnight + dt.timedelta(hours=rng.choice(hours), seconds=rng.randrange(3600))
        service = rng.choices(list(SERVICES), weights=(40, 40, 18))[0]
        for _ in range(count):
            (s_lo, s_hi), (r_lo, r_hi) = SERVICES[service]
            legs.append((card, rng.randint(s_lo, s_hi), rng.randint(r_lo, r_hi), at))
            at += dt.timedelta(minutes=rng.randint(5, 45))
            service = "TRONCAL" if service != "TRONCAL" else rng.choice(("ZONAL_UCE",
                                                                         "ALIMENTADORA"))
            if at.date() != day:
                break
    return legs[:taps]


def write_files(folder: Path, rng: random.Random, legs: list, recharges: list,
                files: int) -> list[tuple[str, Path, int]]:
    """(kind, path, rows): tap files by validator group (station), in boarding order, a late
    file taking 3 % of every group's taps in random order; recharge files by channel."""
    groups: list[list] = [[] for _ in range(files)]
    late = []
    for leg in legs:
        (late if rng.random() < 0.03 else groups[leg[1] % files]).append(leg)
    for group in groups:
        group.sort(key=lambda leg: leg[3])
    rng.shuffle(late)
    out = []
    for n, group in enumerate([*groups, late]):
        path = folder / (f"validators-{n:02d}.csv" if n < files else "validators-late.csv")
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["card_id", "station_id", "route_id", "boarding_time"])
            writer.writerows((c, s, r if r else "", at.isoformat()) for c, s, r, at in group)
        out.append(("taps", path, len(group)))
    for channel, points in (("station_kiosk", (1, 153)), ("retail", (154, 390)),
                            ("online", (391, 400))):
        chosen = [r for r in recharges if r[2] == channel]
        path = folder / f"recharges-{channel}.csv"
        with path.open("w", newline="") as fh:
            csv.writer(fh).writerows((c, amount) for c, amount, _ in chosen)
        out.append((f"recharges@{rng.randint(*points)}", path, len(chosen)))
    return out


def size(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def stage(name: str, conn: psycopg.Connection, rows: int, command: list[str], env: dict) -> None:
    """Run one command as cron would; print its time, rate, bytes added and peak RSS."""
    before, started = size(conn), time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak = 0  # the child's VmHWM (its rusage would count this big process's pages)
        while child.poll() is None:
            with contextlib.suppress(OSError, ValueError, IndexError):  # (a zombie has none)
                status = Path(f"/proc/{child.pid}/status").read_text()
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().strip(), err.read().strip()
    if child.returncode not in (0, 4):  # 4: some rows rejected by a rule (counted below)
        sys.exit(f"{name} failed ({child.returncode}): {stderr[-500:]}")
    rate = f"{rows / seconds:,.0f} rows/s" if rows else ""
    print(f"{name:<28} {seconds:8.1f} s  {rate:>16}  +{(size(conn) - before) / 1e6:8.1f} MB"
          f"  RSS {peak / 1024:5.0f} MB"
          + (f"  {stdout[:160]}" if stdout.startswith("{") else ""), flush=True)
    STAGES[name] = seconds


STAGES: dict[str, float] = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True, help="a database to create the others from")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--scale", type=float, default=4, help="the card base (db seed --scale)")
    parser.add_argument("--taps", type=int, default=350_000)
    parser.add_argument("--recharges", type=int, default=30_000)
    parser.add_argument("--files", type=int, default=8, help="validator groups")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    suffix = uuid.uuid4().hex[:8]
    names = {"day": f"recharge_cityday_{suffix}", "pgbench": f"recharge_cityday_pgb_{suffix}"}
    dsn = {k: conninfo.make_conninfo(args.dsn, dbname=v) for k, v in names.items()}
    env = {**os.environ, "RECHARGE_DSN": dsn["day"], "RECHARGE_REDIS_URL": args.redis_url,
           "RECHARGE_CACHE_PREFIX": f"recharge:cityday:{suffix}:"}
    with psycopg.connect(args.dsn, autocommit=True) as admin:
        for name in names.values():
            admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(dsn["day"], autocommit=True) as conn, \
                tempfile.TemporaryDirectory(prefix="recharge-cityday-") as folder:
            stage(f"db seed --scale {args.scale:g}", conn, 0,
                  [*RECHARGE, "db", "seed", "--scale", str(args.scale), "--yes"], env)
            subprocess.run([*RECHARGE, "verify", "--full"], env=env, check=True,
                           capture_output=True)  # the checkpoint the day's verify starts from
            day = dt.date.today() - dt.timedelta(days=1)
            rng = random.Random(args.seed)
            started = time.perf_counter()
            cards = [(r[0], r[1]) for r in conn.execute(
                "SELECT card_id, user_id IS NOT NULL FROM cards WHERE status = 'active' "
                "ORDER BY card_id").fetchall()]
            legs = journeys(rng, cards, args.taps, day)
            amounts = (5_000, 10_000, 20_000, 50_000)
            recharges = [(rng.choice(cards)[0], rng.choice(amounts),
                          rng.choices(("station_kiosk", "retail", "online"), (50, 40, 10))[0])
                         for _ in range(args.recharges)]
            files = write_files(Path(folder), rng, legs, recharges, args.files)
            print(f"{'generate the day':<28} {time.perf_counter() - started:8.1f} s  "
                  f"{len(legs):,} taps in {args.files + 1} files, {len(recharges):,} recharges "
                  f"in 3 files ({day})")
            day_started = time.perf_counter()
            for kind, path, rows in [f for f in files if f[0] != "taps"]:
                point = kind.split("@")[1]
                stage(f"recharge --from-csv {path.stem[10:]}", conn, rows,
                      [*RECHARGE, "recharge", "--from-csv", str(path), "--point", point,
                       "--rejects", str(path.with_suffix(".rejects"))], env)
            taps_seconds = 0.0
            for _, path, rows in [f for f in files if f[0] == "taps"]:
                stage(f"trips record {path.stem}", conn, rows,
                      [*RECHARGE, "trips", "record", "--from-csv", str(path),
                       "--rejects", str(path.with_suffix(".rejects"))], env)
                taps_seconds += STAGES[f"trips record {path.stem}"]
            stage("db rollup", conn, 0, [*RECHARGE, "db", "rollup"], env)
            stage("verify (incremental)", conn, len(legs) + len(recharges),
                  [*RECHARGE, "verify"], env)
            stage("stats revenue --fresh", conn, 0, [*RECHARGE, "stats", "revenue", "--fresh",
                                                     "--from", str(day), "--to", str(day)], env)
            stage("report daily", conn, 0, [*RECHARGE, "report", "daily", "--date", str(day),
                                            "--out", str(Path(folder) / "report")], env)
            whole = time.perf_counter() - day_started
            tps = pgbench_tps(dsn["pgbench"])
            upload_rate = len(legs) / taps_seconds
            print(f"\nthe day, files to verified statistics: {whole:,.1f} s "
                  f"({len(legs):,} taps, {len(recharges):,} recharges)")
            verify_seconds = STAGES["verify (incremental)"]
            full_size = args.taps >= 3_500_000 and args.recharges >= 300_000
            verdicts = {"uploads ≥ 5 × TPC-B": upload_rate >= 5 * tps,
                        "incremental verify ≤ 60 s": verify_seconds <= 60}
            if full_size:
                verdicts["a city's day ≤ 15 min"] = whole <= 900
            print(f"uploads: {upload_rate:,.0f} taps/s; pgbench TPC-B-like {tps:,.0f} tps with 8 "
                  f"clients: {upload_rate / tps:.2f} ×")
            print(f"incremental verify after the day: {verify_seconds:.1f} s")
            if not full_size:
                print(f"(not the full size: scaled to 3.5 M taps the day would take about "
                      f"{whole * 3_500_000 / max(len(legs), 1) / 60:,.1f} min if it scaled "
                      "linearly; the 15-minute budget is judged at the full size only)")
            print("budgets: " + "; ".join(f"{name}: {'pass' if ok else 'FAIL'}"
                                          for name, ok in verdicts.items()))
            failed = not all(verdicts.values())
    finally:
        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(match=f"{env['RECHARGE_CACHE_PREFIX']}*", count=1000):
            client.delete(key)
        with psycopg.connect(args.dsn, autocommit=True) as admin:
            for key, name in names.items():
                if not (args.keep and key == "day"):
                    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
