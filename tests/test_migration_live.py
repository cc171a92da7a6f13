"""Migration 0019 (one row per movement) carries a live database's data while recharges keep
arriving: each write waits and succeeds, or fails with a retryable error (exit 75) and
succeeds on retry with its key; nothing is lost or doubled, and verify is clean after.

The database is first built as it was before 0019, from the repository's history: the
migrations and functions of the revision before it, with demo data and keyed operations
made through the old functions."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recharge_cli import db, demo, migrations
from recharge_cli.errors import ExitStatus, from_database

from .conftest import SEED_END, Database, own_database

BEFORE_0019 = "d072f88"  # the last revision with separate recharges, trips and key rows
ROOT = Path(__file__).resolve().parents[1]
WRITERS = 4


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout


def old_schema() -> list[tuple[str, str, str]]:
    """(name, kind, sql) of every migration and function file as of BEFORE_0019."""
    try:
        _git("cat-file", "-e", f"{BEFORE_0019}^{{commit}}")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"the repository's history (revision {BEFORE_0019}) is not available")
    found = []
    for kind, folder in (("versioned", "migrations"), ("repeatable", "functions")):
        names = _git("ls-tree", "--name-only", f"{BEFORE_0019}:sql/{folder}").split()
        for name in sorted(n for n in names if n.endswith(".sql")):
            found.append((f"{folder}/{name}", kind,
                          _git("show", f"{BEFORE_0019}:sql/{folder}/{name}")))
    return found


def install(conn: psycopg.Connection[Any], files: list[tuple[str, str, str]]) -> None:
    """Apply files the way `db migrate` records them."""
    conn.execute(migrations._CREATE_TABLE)
    for name, kind, sql in files:
        with conn.transaction():
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (name, kind, checksum) VALUES (%s, %s, %s)",
                         (name, kind, hashlib.sha256(sql.encode()).hexdigest()))


@dataclass
class Writer:
    """Recharges one card with fresh keys until told to stop, retrying a retryable failure
    with the same key, as an operator (or cron) does after exit 75."""

    database: Database
    card_id: int
    stop: threading.Event
    succeeded: list[tuple[str, int]] = field(default_factory=list)  # (key, recharge_id)
    retried: list[str] = field(default_factory=list)
    calls: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    unexpected: list[str] = field(default_factory=list)

    def run(self) -> None:
        with db.connect(self.database.dsn) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                key = f"live-{self.card_id}-{n}"
                while True:
                    started = time.monotonic()
                    try:
                        row = conn.execute("SELECT * FROM recharge_card(%s, 500, NULL, %s)",
                                           (self.card_id, key)).fetchone()
                    except psycopg.Error as exc:
                        self.calls.append((started, time.monotonic()))
                        mapped = from_database(exc)
                        if mapped is None or mapped.status != ExitStatus.TEMPORARY:
                            self.unexpected.append(f"{key}: {exc.sqlstate} {exc}")
                            return
                        self.retried.append(key)
                        time.sleep(0.02)
                        continue
                    self.calls.append((started, time.monotonic()))
                    self.succeeded.append((key, row["recharge_id"]))
                    break
                time.sleep(0.005)  # a steady stream, far from any card's maximum balance


def old_operations(conn: psycopg.Connection[Any], cards: list[int]) -> dict[str, Any]:
    """Keyed movements and a status change made through the old functions."""
    a, b, c = cards[:3]
    done = {
        "recharge": conn.execute("SELECT * FROM recharge_card(%s, 7000, 12, 'old-recharge')",
                                 (a,)).fetchone(),
        "trip": conn.execute("SELECT * FROM record_trip(%s, 5, NULL, NULL, 'old-trip')",
                             (a,)).fetchone(),
        "undo": conn.execute("SELECT * FROM recharge_card(%s, 3000, 12, 'old-undo-me')",
                             (b,)).fetchone(),
    }
    done["reverse"] = conn.execute(
        "SELECT * FROM recharge_reverse(%s, %s, 'typo', 'test', 'old-reverse')",
        (b, done["undo"]["recharge_id"])).fetchone()
    done["block"] = conn.execute(
        "SELECT * FROM card_set_status(%s, 'block', 'stolen', 'test', 'old-block')", (c,)).fetchone()
    done["replace"] = conn.execute(
        "SELECT * FROM card_replace(%s, 'new card', 'test', 'old-replace')", (c,)).fetchone()
    return done


def test_migration_carries_the_data_while_recharges_keep_arriving(servers) -> None:
    files = old_schema()
    with own_database(servers, seeded=False, migrate=False) as database, database.connect() as conn:
        install(conn, files)
        demo.load(conn, scale=0.3, seed=7, end=dt.date.fromisoformat(SEED_END))
        personalised = [r["card_id"] for r in conn.execute(
            "SELECT card_id FROM cards WHERE status = 'active' AND user_id IS NOT NULL "
            "AND balance < 50000 ORDER BY card_id LIMIT %s", (WRITERS + 3,)).fetchall()]
        writers_cards, old_cards = personalised[:WRITERS], personalised[WRITERS:]
        old = old_operations(conn, old_cards)
        before = conn.execute("SELECT count(*) AS entries, sum(amount) AS total FROM ledger"
                              ).fetchone()

        stop = threading.Event()
        writers = [Writer(database, card, stop) for card in writers_cards]
        threads = [threading.Thread(target=w.run) for w in writers]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        with db.connect(database.dsn) as migrating:
            migration_started = time.monotonic()
            applied = migrations.migrate(migrating)
            migration_ended = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)

        assert "migrations/0019_one_row_per_movement.sql" in applied
        assert not [u for w in writers for u in w.unexpected]
        overlapping = [c for w in writers for c in w.calls
                       if c[0] < migration_ended and c[1] > migration_started]
        assert overlapping, "no write was under way while the migration ran"
        # writers that waited at their card lock met the changed schema: exit 75, then their
        # retry with the same key succeeded (checked below)
        assert any(w.retried for w in writers)
        # every write that reported success exists exactly once, with its key
        for w in writers:
            keys = [k for k, _ in w.succeeded]
            rows = conn.execute(
                "SELECT idempotency_key, entry_id, kind, amount FROM ledger "
                "WHERE card_id = %s AND idempotency_key LIKE 'live-%%'", (w.card_id,)).fetchall()
            assert sorted(r["idempotency_key"] for r in rows) == sorted(keys)
            assert all(r["kind"] == "recharge" and r["amount"] == 500 for r in rows)
            # a recharge reported before the migration was renumbered; the map names it
            renumbered = {r["recharge_id"]: r["entry_id"] for r in conn.execute(
                "SELECT recharge_id, entry_id FROM recharge_ids_before_0019 WHERE card_id = %s",
                (w.card_id,)).fetchall()}
            by_key = {r["idempotency_key"]: r["entry_id"] for r in rows}
            for key, reported in w.succeeded:
                assert by_key[key] in (reported, renumbered.get(reported))
        successes = sum(len(w.succeeded) for w in writers)
        after = conn.execute("SELECT count(*) AS entries, sum(amount) AS total FROM ledger"
                             ).fetchone()
        assert after["entries"] == before["entries"] + successes
        assert after["total"] == before["total"] + 500 * successes
        assert conn.execute("SELECT * FROM verify_ledger()").fetchall() == []

        # the keys of the old operations replay through the new functions, with the same money
        a, b, c = old_cards[:3]
        again = conn.execute("SELECT * FROM recharge_card(%s, 7000, 12, 'old-recharge')",
                             (a,)).fetchone()
        assert again["replayed"] and again["balance"] == old["recharge"]["balance"]
        assert again["recharge_id"] == conn.execute(
            "SELECT entry_id FROM recharge_ids_before_0019 WHERE card_id = %s AND recharge_id = %s",
            (a, old["recharge"]["recharge_id"])).fetchone()["entry_id"]
        trip = conn.execute("SELECT * FROM record_trip(%s, 5, NULL, NULL, 'old-trip')",
                            (a,)).fetchone()
        assert trip["replayed"] and trip["fare_charged"] == old["trip"]["fare_charged"]
        assert trip["balance"] == old["trip"]["balance"]
        undo = conn.execute("SELECT * FROM recharge_reverse(%s, %s, 'typo', 'test', 'old-reverse')",
                            (b, again_id(conn, b, old["undo"]["recharge_id"]))).fetchone()
        assert undo["replayed"] and undo["amount"] == 3000
        assert undo["balance"] == old["reverse"]["balance"]
        block = conn.execute("SELECT * FROM card_set_status(%s, 'block', 'stolen', 'test', "
                             "'old-block')", (c,)).fetchone()
        assert block["replayed"] and block["status"] == "blocked"
        moved = conn.execute("SELECT * FROM card_replace(%s, 'new card', 'test', 'old-replace')",
                             (c,)).fetchone()
        assert moved["replayed"] and moved["new_card_id"] == old["replace"]["new_card_id"]
        assert moved["amount_moved"] == old["replace"]["amount_moved"]
        with pytest.raises(psycopg.Error) as clash:
            conn.execute("SELECT * FROM recharge_card(%s, 9000, 12, 'old-recharge')", (a,))
        assert clash.value.sqlstate == "RC005"
        conn.rollback()
        # nothing is left of the second rows
        assert conn.execute("SELECT count(*) AS n FROM idempotency_keys WHERE operation <> 'status'"
                            ).fetchone()["n"] == 0
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'trips'"
                            ).fetchone()["relkind"] == "v"


def again_id(conn: psycopg.Connection[Any], card: int, recharge_id: int) -> int:
    return conn.execute("SELECT entry_id FROM recharge_ids_before_0019 "
                        "WHERE card_id = %s AND recharge_id = %s", (card, recharge_id)
                        ).fetchone()["entry_id"]
