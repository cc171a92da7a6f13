"""Migrations, demo data, invariants, unreachable servers, the embedded servers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recharge_cli import db, demo, local, migrations, verify
from recharge_cli.errors import InvalidInput
from tests.conftest import SEED_END, Database, run_cli

INVARIANTS_SQL = """
SELECT
  (SELECT count(*) FROM cards c WHERE c.balance <>
      (SELECT coalesce(sum(l.amount), 0) FROM ledger l WHERE l.card_id = c.card_id)) AS bad_balances,
  (SELECT count(*) FROM recharges r WHERE (SELECT count(*) FROM ledger l
      WHERE l.card_id = r.card_id AND l.entry_id = r.recharge_id AND l.kind = 'recharge'
        AND l.amount = r.amount) <> 1) AS bad_recharges,
  (SELECT count(*) FROM trips t WHERE (SELECT count(*) FROM ledger l
      WHERE l.card_id = t.card_id AND l.entry_id = t.trip_id AND l.kind = 'fare'
        AND l.amount = -t.fare_charged) <> 1) AS bad_trips,
  (SELECT count(*) FROM cards, limits WHERE balance > max_balance
      OR balance < -credit_allowance) AS out_of_limits,
  (SELECT sum(balance) FROM cards) AS total_balance,
  (SELECT sum(amount) FROM recharges) - (SELECT sum(fare_charged) FROM trips) AS expected_total
"""


def test_migrate_twice_applies_nothing_the_second_time(empty_database: Database) -> None:
    with empty_database.connect() as conn:
        assert migrations.migrate(conn) == []
        assert all(s.state == "applied" for s in migrations.status(conn))


def test_changed_migration_is_an_error(empty_database: Database, monkeypatch) -> None:
    with empty_database.connect() as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' "
                     "WHERE name = 'migrations/0001_schema.sql'")
    monkeypatch.setenv("RECHARGE_DSN", empty_database.dsn)
    monkeypatch.setenv("RECHARGE_REDIS_URL", empty_database.redis_url)
    monkeypatch.setenv("RECHARGE_CACHE_PREFIX", empty_database.prefix)
    status = run_cli("db", "status")
    assert status.exit_code == 1
    assert "0001_schema.sql" in status.stderr and "changed" in status.stderr
    assert {"migration": "migrations/0001_schema.sql", "kind": "versioned",
            "state": "changed"} in status.json()
    migrate = run_cli("db", "migrate")
    assert migrate.exit_code == 1
    assert migrate.stderr.count("\n") == 1 and "forward-only" in migrate.stderr


def test_demo_data_shape(conn: psycopg.Connection[Any]) -> None:
    counts = conn.execute("""
        SELECT (SELECT count(*) FROM localities) AS localities,
               (SELECT count(*) FROM stations) AS stations,
               (SELECT count(*) FROM routes) AS routes,
               (SELECT count(*) FROM fares WHERE valid_from < '2090-01-01') AS fares,  -- the demo's
               (SELECT count(*) FROM users) AS users,
               (SELECT count(*) FROM cards WHERE card_id <= 24000) AS cards,
               (SELECT count(*) FROM recharges WHERE card_id <= 24000) AS recharges,
               (SELECT count(*) FROM trips WHERE card_id <= 24000) AS legs,
               (SELECT avg((is_transfer)::int) FROM trips WHERE card_id <= 24000) AS transfer_share,
               (SELECT avg((status = 'active')::int) FROM cards WHERE card_id <= 24000) AS active
    """).fetchone()
    assert counts["localities"] == 21  # Bogotá's 20 and Soacha
    assert 7_500 <= counts["stations"] <= 7_900
    assert 540 <= counts["routes"] <= 580
    assert counts["fares"] == 7
    assert counts["users"] == 25_000 and counts["cards"] == 24_000
    assert 60_000 <= counts["recharges"] <= 75_000
    assert 240_000 <= counts["legs"] <= 265_000
    assert 0.16 <= counts["transfer_share"] <= 0.20
    assert 0.86 <= counts["active"] <= 0.90
    fares = {(r["code"], r["valid_from"].date().isoformat()): r["amount"]
             for r in conn.execute("SELECT code, amount, valid_from FROM fares")}
    assert fares[("STANDARD", "2026-01-14")] == fares[("CABLE", "2026-01-14")] == 3550
    assert fares[("STANDARD", "2025-01-18")] == 3200 and fares[("STANDARD", "2024-02-12")] == 2950
    assert fares[("TRANSFER_FREE", "2024-02-12")] == 0


def test_invariants_hold_after_seed(conn: psycopg.Connection[Any]) -> None:
    row = conn.execute(INVARIANTS_SQL).fetchone()
    assert row["bad_balances"] == row["bad_recharges"] == row["bad_trips"] == 0
    assert row["out_of_limits"] == 0
    assert row["total_balance"] == row["expected_total"]
    assert verify.violations(conn) == []


def test_verify_detects_a_broken_balance(empty_database: Database) -> None:
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO cards (card_id, balance) VALUES (1, 500)")
        found = verify.violations(conn)
    assert {(v["invariant"], v["card_id"], v["expected"], v["actual"]) for v in found} >= {
        (1, 1, 0, 500)}
    assert any(v["invariant"] == 5 for v in found)


def test_seed_is_deterministic(empty_database: Database, servers) -> None:
    from tests.conftest import _database_dsn, create_database, drop_database

    digest_sql = ("SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY card_id, trip_id)) FROM trips t)"
                  " || (SELECT md5(string_agg(r::text, ',' ORDER BY card_id, recharge_id)) FROM recharges r)"
                  " || (SELECT md5(string_agg(l::text, ',' ORDER BY card_id, entry_id)) FROM ledger l)"
                  " || (SELECT md5(string_agg(c::text, ',' ORDER BY card_id)) FROM cards c) AS d")
    other = create_database(servers)
    try:
        digests = []
        for dsn in (empty_database.dsn, _database_dsn(servers, other)):
            with psycopg.connect(dsn, autocommit=True) as conn:
                from recharge_cli import db, demo

                wrapped = db.connect(dsn)
                migrations.migrate(wrapped)
                import datetime as dt

                demo.load(wrapped, scale=0.02, seed=7, end=dt.date(2026, 1, 31))
                wrapped.close()
                digests.append(conn.execute(digest_sql).fetchone()[0])
        assert digests[0] == digests[1] and digests[0] is not None
    finally:
        drop_database(servers, other)


def test_closed_port_exits_69_with_one_line(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECHARGE_DSN", "postgresql://app:hunter2@127.0.0.1:1/recharge")
    monkeypatch.setenv("RECHARGE_HOME", str(tmp_path))
    for args in (["balance", "--card", "1"], ["db", "migrate"], ["verify"],
                 ["recharge", "--card", "1", "--amount", "5000"], ["--debug", "verify"]):
        result = run_cli(*args)
        assert result.exit_code == 69, result.stderr
        assert "hunter2" not in result.stderr + result.stdout
        if "--debug" not in args:
            assert result.stderr.count("\n") == 1 and "unreachable" in result.stderr
        assert result.stdout == ""


def test_local_start_status_stop(tmp_path: Path) -> None:
    """The embedded servers' life cycle in a home of its own (as root or not)."""
    home = tmp_path / "home"
    env = {**os.environ, "RECHARGE_HOME": str(home)}
    for var in ("RECHARGE_DSN", "DATABASE_URL", "PGHOST", "PGDATABASE", "PGPORT"):
        env.pop(var, None)
    try:
        state = local.start(home)
        assert local.start(home).pg_port == state.pg_port  # a second start is a no-op
        info = local.status(home)
        assert info["postgresql"]["answers"] and info["valkey"]["answers"]
        assert info["postgresql"]["version"].startswith("18")
        assert state.pg_port not in (5432, 6379) and state.valkey_port not in (5432, 6379)
        lay = local.layout(home)
    finally:
        stopped = local.stop(home)
    assert set(stopped) == {"postgresql", "valkey"}
    ours = subprocess.run(["pgrep", "-af", f"{lay.pg_data}|{lay.valkey_dir}"],
                          capture_output=True, text=True).stdout
    assert ours.strip() == ""
    assert not local.status(home)["postgresql"]["answers"]
    local.purge(home)
    assert not lay.pg_data.exists()


def test_local_stop_handles_stale_valkey_pidfile(tmp_path: Path) -> None:
    home = tmp_path / "home"
    lay = local.layout(home)
    lay.valkey_dir.mkdir(parents=True)
    lay.valkey_pidfile.write_text("999999\n")
    assert local.stop(home) == []
    assert not lay.valkey_pidfile.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the root-only code path")
def test_postgres_runs_unprivileged_when_root(servers) -> None:
    if servers.embedded_home is None:
        pytest.skip("embedded servers are not in use")
    lay = local.layout(servers.embedded_home)
    owner = lay.pg_data.stat().st_uid
    assert owner != 0


LEG = "station_id, service, boarding_time, fare_id, transfer_group, leg_number"
MALFORMED_ROWS = [  # (table, columns, values) each breaking one rule of the schema's checks
    ("cards", "card_id", "0"),
    ("cards", "card_id, status", "nextval('card_id_seq'), 'frozen'"),
    ("cards", "card_id, version", "nextval('card_id_seq'), -1"),
    ("cards", "card_id, replaced_by", "77, 77"),
    ("ledger", "card_id, kind, amount, created_at, balance_after",
     "{card}, 'bonus', 100, now(), 0"),
    ("ledger", "card_id, kind, amount, created_at, balance_after",
     "{card}, 'recharge', 0, now(), 0"),
    ("ledger", "card_id, kind, amount, created_at, balance_after, station_id",
     "{card}, 'recharge', 100, now(), 0, 1"),
    ("ledger", f"card_id, kind, amount, created_at, balance_after, {LEG}",
     "{card}, 'fare', 100, now(), 0, 1, 'TRONCAL', now(), 1, 1, 1"),
    ("ledger", f"card_id, kind, amount, created_at, balance_after, {LEG}",
     "{card}, 'fare', -100, now(), 0, 1, 'BUS', now(), 1, 1, 1"),
    ("ledger", "card_id, kind, amount, created_at, balance_after, station_id, service",
     "{card}, 'fare', -100, now(), 0, 1, 'TRONCAL'"),
    ("ledger", f"card_id, kind, amount, created_at, balance_after, point_id, {LEG}",
     "{card}, 'fare', -100, now(), 0, 1, 1, 'TRONCAL', now(), 1, 1, 1"),
    ("ledger", "card_id, kind, amount, created_at, balance_after",
     "{card}, 'correction', -100, now(), 0"),
    ("ledger", "card_id, kind, amount, counterpart_card_id, created_at, balance_after",
     "{card}, 'transfer', 100, {card}, now(), 0"),
    ("ledger", "card_id, kind, amount, created_at, balance_after, idempotency_key",
     "{card}, 'recharge', 100, now(), 0, 'two words'"),
    ("ledger", "card_id, kind, amount, created_at, balance_after, idempotency_key",
     "{card}, 'recharge', 100, now(), 0, repeat('k', 129)"),
    ("idempotency_keys", "idempotency_key, operation, card_id, request, result",
     "'two words', 'status', {card}, '{{}}', '{{}}'"),
    ("idempotency_keys", "idempotency_key, operation, card_id, request, result",
     "repeat('k', 129), 'status', {card}, '{{}}', '{{}}'"),
    ("idempotency_keys", "idempotency_key, operation, card_id, request",
     "'k-3', 'status', {card}, '{{}}'"),
    ("idempotency_keys", "idempotency_key, operation, card_id, request, result",
     "'k-4', 'recharge', {card}, '{{}}', '{{}}'"),
]


def test_schema_checks_refuse_malformed_rows(empty_database: Database) -> None:
    """Each rule of the cards, ledger and idempotency-key checks, broken alone, is refused;
    the same tables accept a well-formed recharge."""
    with empty_database.connect() as conn:
        card = conn.execute("INSERT INTO cards (card_id) VALUES (nextval('card_id_seq')) "
                            "RETURNING card_id").fetchone()["card_id"]
        conn.execute("SELECT recharge_id FROM recharge_card(%s, 5000, NULL, 'ok-1')", (card,))
        for table, columns, values in MALFORMED_ROWS:
            sql = f"INSERT INTO {table} ({columns}) VALUES ({values})"
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(sql.format(card=card))
        assert verify.violations(conn) == []


def test_demo_data_is_coherent_in_time(conn: psycopg.Connection[Any]) -> None:
    """Users register before their cards are issued, cards are issued before their
    movements, and everything lies before the seed's end (its midnight): nothing in the
    future of the load."""
    row = conn.execute("""
        WITH moves AS (SELECT card_id, boarding_time AS at FROM trips
                       UNION ALL SELECT card_id, recharged_at FROM recharges
                       UNION ALL SELECT card_id, created_at FROM ledger
                       UNION ALL SELECT card_id, changed_at FROM card_status_changes)
        SELECT (SELECT count(*) FROM users WHERE user_id <= 25000
                AND registered_at >= %(end)s::date) AS late_users,
               (SELECT count(*) FROM cards c JOIN users u USING (user_id)
                WHERE c.card_id <= 24000 AND c.issued_at < u.registered_at) AS before_owner,
               (SELECT count(*) FROM moves m JOIN cards c USING (card_id)
                WHERE c.card_id <= 24000 AND m.at < c.issued_at) AS before_issue,
               (SELECT count(*) FROM moves m WHERE m.card_id <= 24000
                AND m.at >= %(end)s::date) AS after_end,
               (SELECT max(at) FROM moves WHERE card_id <= 24000) AS last_movement,
               (SELECT corr(user_id, extract(epoch FROM registered_at)) FROM users
                WHERE user_id <= 25000) AS registration_order
    """, {"end": SEED_END}).fetchone()
    assert (row["late_users"], row["before_owner"], row["before_issue"], row["after_end"]) == \
        (0, 0, 0, 0)
    assert row["last_movement"].date().isoformat() < SEED_END  # the period runs up to its end
    assert row["registration_order"] > 0.99  # users register in the order of their ids


def test_seed_refuses_an_end_in_the_future(empty_database: Database) -> None:
    with db.connect(empty_database.dsn) as conn:
        today = conn.execute("SELECT current_date AS d").fetchone()["d"]
        with pytest.raises(InvalidInput, match="future"):
            demo.load(conn, scale=0.01, end=today + dt.timedelta(days=1))
        assert demo.is_empty(conn)


def test_verify_names_incoherent_times(empty_database: Database, monkeypatch) -> None:
    """A user registered in the future, a card issued before its owner registered, a card
    issued after its recharge: `verify` exits 1 naming invariant 10 for each."""
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO users (user_id, document, full_name, registered_at) "
                     "VALUES (1, 'CC1', 'Late User', now() + interval '1 day')")
        conn.execute("INSERT INTO cards (card_id, user_id) VALUES (1, 1), (2, NULL)")
        conn.execute("SELECT recharge_card(2, 5000, NULL, 'early-1')")
        conn.execute("UPDATE cards SET issued_at = now() + interval '1 minute' WHERE card_id = 2")
        found = {(v["invariant"], v["check_name"], v["card_id"]) for v in verify.violations(conn)}
    assert found == {(10, "user registered in the future", None),
                     (10, "card issued before its owner registered", 1),
                     (10, "recharge before its card was issued", 2)}  # one row per movement
    monkeypatch.setenv("RECHARGE_DSN", empty_database.dsn)
    monkeypatch.setenv("RECHARGE_REDIS_URL", empty_database.redis_url)
    monkeypatch.setenv("RECHARGE_CACHE_PREFIX", empty_database.prefix)
    result = run_cli("--format", "json", "verify")
    assert result.exit_code == 1
    assert "violation of invariant 10 (recharge before its card was issued): card 2" in result.stderr
    coherence = next(r for r in result.json() if r["invariant"] == 10)
    assert (coherence["holds"], coherence["violations"]) == (False, 3)


def test_verify_allows_the_boarding_clock_skew(empty_database: Database) -> None:
    """A boarding time a few minutes ahead (within limits.max_future_minutes, the clock skew
    validators may have) is coherent, and so is anything else that close; beyond, it is in
    the future."""
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO stations (station_id, name, station_type, locality_id) "
                     "VALUES (1, 'Portal 1', 'PORTAL', 1)")
        conn.execute("INSERT INTO users (user_id, document, full_name, registered_at) "
                     "VALUES (1, 'CC1', 'Early User', now() + interval '4 minutes')")
        conn.execute("INSERT INTO cards (card_id) VALUES (1)")
        conn.execute("SELECT recharge_card(1, 5000, NULL, 'skew-1')")
        conn.execute("SELECT record_trip(1, 1, NULL, now() + interval '4 minutes', 'skew-2')")
        assert verify.violations(conn) == []
        conn.execute("UPDATE users SET registered_at = now() + interval '6 minutes'")
        assert [(v["invariant"], v["check_name"]) for v in verify.violations(conn)] == [
            (10, "user registered in the future")]


def test_a_tap_before_its_card_was_issued_is_refused(cli, conn) -> None:
    card = conn.execute("INSERT INTO cards (card_id, issued_at) VALUES (nextval('card_id_seq'), "
                        "'2026-11-20T12:00Z') RETURNING card_id").fetchone()["card_id"]
    cli("recharge", "--card", str(card), "--amount", "10000")
    early = cli("trips", "record", "--card", str(card), "--station", "5", "--at", "2026-11-20T11:00Z")
    assert early.exit_code == 4 and "before card" in early.stderr and "was issued" in early.stderr
    later = cli("trips", "record", "--card", str(card), "--station", "5", "--at", "2026-11-20T13:00Z")
    assert later.exit_code == 0, later.stderr


def test_a_changed_function_file_runs_the_later_ones_again(empty_database: Database) -> None:
    """A function file that drops and re-creates a function (its result type changed) takes
    its grant with it: the grants file after it runs again, even when it did not change."""
    with empty_database.connect() as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'changed' "
                     "WHERE name = 'functions/10_cards.sql'")
        conn.execute("DROP FUNCTION record_trip(bigint, integer, integer, timestamptz, text)")
        conn.execute("CREATE FUNCTION record_trip(bigint, integer, integer, timestamptz, text) "
                     "RETURNS integer LANGUAGE sql AS 'SELECT 1'")  # as an older version had it
        applied = migrations.migrate(conn)
        assert "functions/10_cards.sql" in applied and "functions/90_grants.sql" in applied
        granted = conn.execute(
            "SELECT has_function_privilege('recharge_app', "
            "'record_trip(bigint, integer, integer, timestamptz, text)', 'EXECUTE') AS ok"
        ).fetchone()["ok"]
        assert granted
        assert migrations.migrate(conn) == []
