"""A seeded, replayable chaos test in the spirit of Jepsen's bank test: clients make random
recharges, taps, validator uploads, status changes, reversals, personalisations and benefit
grants with fresh and repeated keys while an
injector kills backends, restarts PostgreSQL, kills, pauses and restores Redis and flushes
the cache. Afterwards every
invariant holds, every reported success exists exactly once, every 75 converges when
retried with its key, and every cached balance equals PostgreSQL.

RECHARGE_CHAOS_SEED replays a run; RECHARGE_CHAOS_SECONDS makes it longer (CI: 20 s)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recharge_cli import cards, local
from recharge_cli.render import Output
from recharge_cli.runtime import Runtime
from recharge_cli.settings import resolve
from tests.conftest import Servers, embedded_servers, own_database
from tests.faults import Valkey, valkey
from tests.workers import chaos_client, chaos_operation, exit_status

CARDS = 8
WORKERS = 3
FAULTS = ("terminate_backends", "kill_backend", "restart_postgres", "kill_redis",
          "restore_redis_snapshot", "pause_redis", "flush_cache")


@pytest.fixture
def chaos_servers(tmp_path: Path) -> Iterator[tuple[Servers, Valkey]]:
    with embedded_servers(tmp_path / "home") as servers, valkey(tmp_path / "valkey") as redis_server:
        yield Servers(servers.admin_dsn, redis_server.url, servers.embedded_home), redis_server


def _backends(conn: psycopg.Connection[Any]) -> list[int]:
    return [r["pid"] for r in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'recharge' "
        "AND pid <> pg_backend_pid() AND datname = current_database()").fetchall()]


def _crash_postmaster(home: Path) -> None:
    """SIGQUIT (immediate shutdown) to the embedded postmaster, SIGKILL if it lingers."""
    data = local.layout(home).pg_data
    pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def _inject(fault: str, rng: random.Random, home: Path, dsn: str, redis_server: Valkey) -> None:
    if fault in ("terminate_backends", "kill_backend"):
        try:
            with psycopg.connect(dsn, autocommit=True, row_factory=psycopg.rows.dict_row,
                                 connect_timeout=5) as conn:
                pids = _backends(conn)
                if pids and fault == "terminate_backends":
                    conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) pid",
                                 (pids,))
                elif pids:
                    with contextlib.suppress(ProcessLookupError):  # its client just left
                        os.kill(rng.choice(pids), signal.SIGKILL)  # the server crash-restarts
        except psycopg.OperationalError:
            pass  # still recovering from the previous fault
    elif fault == "restart_postgres":
        try:
            local.stop(home)
        except local.LocalServerError:  # a fast shutdown too slow under load: crash it
            _crash_postmaster(home)
        time.sleep(rng.uniform(0.2, 1.0))
        local.start(home)
    elif fault == "kill_redis":
        redis_server.kill()
        time.sleep(rng.uniform(0.2, 1.0))
        (redis_server.folder / "dump.rdb").unlink(missing_ok=True)
        redis_server.start()
    elif fault == "restore_redis_snapshot":
        redis_server.client().save()
        time.sleep(rng.uniform(0.3, 1.5))  # writes go on after the snapshot...
        redis_server.kill()
        redis_server.start()  # ...and are lost: older balances are back
    elif fault == "pause_redis":
        redis_server.pause()
        time.sleep(rng.uniform(0.5, 3.0))
        redis_server.resume()
    elif fault == "flush_cache":
        rt = Runtime(settings=resolve(dsn=dsn, redis_url=redis_server.url), output=Output(quiet=True))
        try:
            rt.cache(check=False).flush()  # as `cache flush` does: PostgreSQL may be down
        finally:
            rt.close()


def test_chaos(chaos_servers: tuple[Servers, Valkey]) -> None:
    servers, redis_server = chaos_servers
    seed = int(os.environ.get("RECHARGE_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    seconds = float(os.environ.get("RECHARGE_CHAOS_SECONDS") or 20)
    print(f"chaos seed {seed} ({seconds:.0f} s); replay: RECHARGE_CHAOS_SEED={seed}")
    rng = random.Random(seed)
    assert servers.embedded_home is not None
    with own_database(servers, seeded=False) as database:
        with database.connect() as conn:
            conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
            conn.execute("INSERT INTO stations VALUES (1, 'Portal', 'PORTAL', 99)")
            conn.execute("INSERT INTO cards (card_id) SELECT generate_series(1, %s)", (CARDS,))
            # two users a personalisation can give a card to, both with monthly free trips
            conn.execute("INSERT INTO users (user_id, document, full_name, registered_at, "
                         "disability, sisben_group) VALUES (1, 'CC1', 'Uno', now() - interval "
                         "'1 year', true, 'A'), (2, 'CC2', 'Dos', now() - interval '1 year', "
                         "false, 'B')")
        card_ids = list(range(1, CARDS + 1))
        prefix = database.prefix
        os.environ["RECHARGE_CACHE_PREFIX"] = prefix
        stop_at = time.time() + seconds
        injected: Counter[str] = Counter()
        with ProcessPoolExecutor(WORKERS, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(chaos_client, database.dsn, redis_server.url, prefix, card_ids,
                                   seed, w, stop_at) for w in range(WORKERS)]
            time.sleep(2)
            while time.time() < stop_at - 1:
                fault = rng.choice(FAULTS)
                _inject(fault, rng, servers.embedded_home, database.dsn, redis_server)
                injected[fault] += 1
                time.sleep(rng.uniform(0.3, 1.5))
            outcomes = [o for f in futures for o in f.result(timeout=seconds + 120)]
        del os.environ["RECHARGE_CACHE_PREFIX"]
        statuses = Counter(o["status"] for o in outcomes)
        succeeded = Counter(o["kind"] for o in outcomes if o["status"] == 0)
        print(f"operations {len(outcomes)}: statuses {dict(statuses)}; succeeded "
              f"{dict(succeeded)}; faults {dict(injected)}")
        assert succeeded["upload"] and succeeded["grant"]
        assert set(statuses) <= {0, 4, 69, 75}, [o for o in outcomes if o["status"] not in
                                                  (0, 4, 69, 75)][:3]
        assert statuses[0] > 0

        settings = resolve(dsn=database.dsn, redis_url=redis_server.url,
                           env={"RECHARGE_CACHE_PREFIX": prefix})
        rt = Runtime(settings=settings, output=Output(quiet=True))
        # every 75 converges when retried with its key (a 69 never reached the server)
        for outcome in outcomes:
            if outcome["status"] in (69, 75):
                try:
                    retried = chaos_operation(rt, outcome["kind"], outcome["card_id"],
                                              outcome["amount"], outcome["key"])
                except Exception as exc:
                    assert exit_status(exc) == 4, (outcome, exc)  # a rule decided, consistently
                else:
                    outcome.update(retried, status=0)
        conn = rt.db()
        assert conn.execute("SELECT count(*) AS n FROM verify_ledger()").fetchone()["n"] == 0
        # every reported success exists exactly once, under its key
        for outcome in (o for o in outcomes if o["status"] == 0):
            if outcome["kind"] in ("personalise", "grant"):  # no movement of the card's money
                continue
            if outcome["kind"] in ("block", "unblock"):  # a status change's key: its own table
                key = conn.execute("SELECT * FROM idempotency_keys WHERE card_id = %s AND "
                                   "idempotency_key = %s", (outcome["card_id"], outcome["key"])
                                   ).fetchone()
                assert key is not None and key["operation"] == "status", outcome
                continue
            # a movement is one ledger row that carries its key
            entries = conn.execute("SELECT entry_id, kind FROM ledger WHERE card_id = %s AND "
                                   "idempotency_key = %s", (outcome["card_id"], outcome["key"])
                                   ).fetchall()
            column = {"recharge": "recharge_id", "trip": "trip_id", "upload": "trip_id",
                      "reverse": "entry_id"}[outcome["kind"]]
            kind = {"recharge": "recharge", "trip": "fare", "upload": "fare",
                    "reverse": "correction"}[outcome["kind"]]
            assert [(e["entry_id"], e["kind"]) for e in entries] == \
                [(outcome[column], kind)], outcome
        # every cached balance equals PostgreSQL (through the read path, then raw)
        read = cards.balances(conn, rt.cache(), card_ids)
        truth = {r["card_id"]: r["balance"] for r in conn.execute(
            "SELECT card_id, balance FROM cards").fetchall()}
        assert {r["card_id"]: r["balance"] for r in read} == truth
        cache = rt.cache()
        for card_id in card_ids:
            cached = cache.get(cache.card_key(card_id, "balance"))
            assert cached is None or cached["balance"] == truth[card_id], (card_id, cached)
        rt.close()
