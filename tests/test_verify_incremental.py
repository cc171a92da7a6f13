"""`recharge verify` checks what changed since its last clean run (a checkpoint kept in the
database); `--full` checks everything. Both find what they must, and the checkpoint moves
only after a clean run."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from recharge_cli import cards, verify
from tests.conftest import Database, new_card


def _checkpoint(conn: psycopg.Connection[Any]) -> int | None:
    row = conn.execute("SELECT entry_id FROM verify_checkpoint").fetchone()
    return row["entry_id"] if row else None


def _names(run: verify.Run) -> set[tuple[int, str]]:
    return {(v["invariant"], v["check_name"]) for v in run.violations}


def test_incremental_verify_follows_the_checkpoint(empty_database: Database) -> None:
    cache = empty_database.cache()
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations VALUES (5, 'Portal', 'PORTAL', 99)")
        first, second = (new_card(conn, balance=20_000) for _ in range(2))
        initial = verify.run(conn)  # no checkpoint yet: everything
        assert initial.full and initial.violations == []
        assert initial.checkpoint == _checkpoint(conn) and initial.checkpoint > 0

        cards.recharge(conn, cache, first, 5_000, key="more")
        cards.record_trip(conn, cache, second, 5, key="tap")
        later = verify.run(conn)
        assert not later.full and later.since_entry == initial.checkpoint
        assert later.violations == [] and later.checkpoint == _checkpoint(conn)
        assert later.checkpoint > initial.checkpoint

        # an entry that does not chain to its card's previous one, written by hand
        conn.execute("INSERT INTO ledger (card_id, kind, amount, balance_after, created_at) "
                     "VALUES (%s, 'recharge', 1000, 99999, now())", (first,))
        conn.execute("UPDATE cards SET balance = 99999 WHERE card_id = %s", (first,))
        broken = verify.run(conn)
        assert (2, "entry balance chains to the previous entry") in _names(broken)
        assert (5, "total balances equal recharged minus fares minus reversed") in _names(broken)
        assert broken.checkpoint is None and _checkpoint(conn) == later.checkpoint
        # the next run starts from the same checkpoint and finds it again
        assert _names(verify.run(conn)) == _names(broken)
        assert (2, "entry balance chains to the previous entry") in _names(verify.run(conn, full=True))


def test_a_balance_changed_by_hand_on_a_quiet_card(empty_database: Database) -> None:
    """No movement touched the card: the totals show it, --full names the card."""
    with empty_database.connect() as conn:
        quiet = new_card(conn, balance=10_000)
        assert verify.run(conn).violations == []
        conn.execute("UPDATE cards SET balance = balance + 1 WHERE card_id = %s", (quiet,))
        incremental = verify.run(conn)
        assert _names(incremental) == {
            (5, "total balances equal recharged minus fares minus reversed")}
        full = verify.run(conn, full=True)
        assert {(v["invariant"], v["card_id"]) for v in full.violations} >= {(1, quiet)}


def test_verify_cli_reports_its_scope(cli, conn) -> None:
    everything = cli("verify", "--full")
    assert everything.exit_code == 0 and "checked everything" in everything.stderr
    card = new_card(conn, balance=5_000)
    cli("recharge", "--card", str(card), "--amount", "1000")
    since = cli("verify")
    assert since.exit_code == 0 and "checked what changed after entry" in since.stderr
    assert [r["holds"] for r in since.json()] == [True] * len(verify.INVARIANTS)


def test_the_checkpoint_never_passes_an_entry_still_being_written(
        empty_database: Database, monkeypatch) -> None:
    """A recharge whose transaction is still open holds the checkpoint back; once it commits,
    the next run checks it."""
    monkeypatch.setattr(verify, "HORIZON_WAIT_SECONDS", 0.3)
    with empty_database.connect() as conn, empty_database.connect() as writer:
        card = new_card(conn, balance=1_000)
        assert verify.run(conn).checkpoint is not None
        with writer.transaction():
            writer.execute("SELECT * FROM recharge_card(%s, 5000, NULL, 'open')", (card,))
            held = verify.run(conn)
            assert held.violations == [] and held.checkpoint is None
        after = verify.run(conn)
        entry = conn.execute("SELECT entry_id FROM ledger WHERE idempotency_key = 'open'"
                             ).fetchone()["entry_id"]
        assert after.violations == [] and after.checkpoint >= entry


def test_a_rollup_of_a_touched_day_is_checked_side_by_side(empty_database: Database) -> None:
    """The touched days' rollups, checked on a second connection in the run's snapshot,
    find what the one-connection run finds."""
    cache = empty_database.cache()
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations VALUES (5, 'Portal', 'PORTAL', 99)")
        card = new_card(conn, balance=20_000)
        assert verify.run(conn).violations == []
        earlier = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)  # (a day rolled up)
        cards.record_trip(conn, cache, card, 5, at=earlier, key="tap")
        conn.execute("SELECT rollup_build()")
        assert verify.run(conn, connect=empty_database.connect).violations == []
        cards.record_trip(conn, cache, card, 5, at=earlier + dt.timedelta(hours=1), key="tap-2")
        conn.execute("SELECT rollup_build()")
        changed = conn.execute("UPDATE daily_trips SET fares = fares + 100 WHERE dimension = 'hour'")
        assert changed.rowcount >= 1
        alone = verify.run(conn)
        side_by_side = verify.run(conn, connect=empty_database.connect)
        assert _names(alone) == _names(side_by_side) == {(6, "rollup equals recomputation")}
        assert alone.checkpoint is None and side_by_side.checkpoint is None
