"""Many processes on a few hot cards; a backend killed mid-transaction."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from recharge_cli import db, verify
from tests import workers
from tests.conftest import Database, new_card


def test_processes_hammering_hot_cards_keep_every_invariant(database: Database, conn) -> None:
    hot = [new_card(conn, balance=150_000) for _ in range(5)]
    shared = [(f"shared-{hot[0]}-{i}", hot[i % 5], 1000 * (i + 1)) for i in range(12)]
    with ProcessPoolExecutor(8, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(workers.hammer, database.dsn, database.redis_url, database.prefix,
                               hot, w, 60, shared) for w in range(8)]
        outcomes = [o for f in futures for o in f.result()]
    assert len(outcomes) == 480
    unexpected = [o for o in outcomes if not o["ok"] and o["status"] != 4]
    assert unexpected == []  # only business-rule rejections (e.g. above the maximum balance)
    assert sum(1 for o in outcomes if o["ok"] and o["replayed"]) >= 20
    for key, _, _ in shared:  # a shared key moved money once, whoever won the race
        assert sum(1 for o in outcomes if o["key"] == key and o["ok"] and not o["replayed"]) <= 1
    for card_id in hot:
        expected = 150_000 + sum(o["delta"] for o in outcomes
                                 if o["ok"] and not o["replayed"] and o["card_id"] == card_id)
        balance = db.call_one(conn, "public.card_balance", (card_id,))["balance"]
        assert balance == expected
        cached = database.cache().get(database.cache().card_key(card_id, "balance"))
        assert cached is None or cached["balance"] == balance
    assert verify.violations(conn) == []


def _recharge_process(database: Database, card: int, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECHARGE_DSN": database.dsn, "RECHARGE_REDIS_URL": database.redis_url,
           "RECHARGE_CACHE_PREFIX": database.prefix}
    return subprocess.run([sys.executable, "-m", "recharge_cli", "recharge", "--card", str(card),
                           "--amount", "5000", "--key", key], env=env, capture_output=True,
                          text=True, timeout=60)


def test_backend_killed_mid_recharge_then_retry_moves_money_once(database: Database, conn) -> None:
    card = new_card(conn)
    key = f"killed-{card}"
    blocker = database.connect()
    blocker.autocommit = False
    blocker.execute("SELECT * FROM cards WHERE card_id = %s FOR UPDATE", (card,))
    results: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(target=lambda: results.append(_recharge_process(database, card, key)))
    thread.start()
    victim = None
    for _ in range(200):  # wait until the recharge waits for the card's row lock
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                           "AND application_name = 'recharge' AND wait_event_type = 'Lock'"
                           ).fetchone()
        if row:
            victim = row["pid"]
            break
        time.sleep(0.05)
    assert victim is not None
    conn.execute("SELECT pg_terminate_backend(%s)", (victim,))
    thread.join(60)
    blocker.rollback()
    blocker.close()
    killed = results[0]
    assert killed.returncode in (75, 69), killed.stderr
    assert killed.stderr.count("\n") == 1 and "Traceback" not in killed.stderr
    retried = _recharge_process(database, card, key)
    assert retried.returncode == 0, retried.stderr
    replayed = _recharge_process(database, card, key)
    assert '"replayed": true' in replayed.stdout
    movements = conn.execute("SELECT count(*) AS n, sum(amount) AS total FROM ledger "
                             "WHERE card_id = %s", (card,)).fetchone()
    assert (movements["n"], movements["total"]) == (1, 5000)
