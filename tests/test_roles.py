"""Least privilege: the application role can run every command through the API functions and
cannot touch a table directly; migrations need the owner (`--admin-dsn`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, errors

from tests.conftest import Database, new_card, run_cli


@pytest.fixture
def app_dsn(database: Database) -> Iterator[str]:
    """A login role that is a member of recharge_app, removed afterwards (roles are cluster-wide)."""
    role = f"recharge_test_app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN IN ROLE recharge_app")
    try:
        yield conninfo.make_conninfo(database.dsn, user=role)
    finally:
        with psycopg.connect(database.dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def test_the_application_role_cannot_write_tables(app_dsn: str, conn) -> None:
    card = new_card(conn, balance=5_000)
    with psycopg.connect(app_dsn, autocommit=True) as app:
        for statement in (f"UPDATE cards SET balance = 1000000 WHERE card_id = {card}",
                          f"INSERT INTO ledger (card_id, kind, amount) VALUES ({card}, 'correction', 1)",
                          "DELETE FROM idempotency_keys", "SELECT count(*) FROM cards",
                          "SELECT * FROM revenue_rows('-infinity', 'infinity')"):
            with pytest.raises(errors.InsufficientPrivilege):
                app.execute(statement)
    row = conn.execute("SELECT balance FROM cards WHERE card_id = %s", (card,)).fetchone()
    assert row["balance"] == 5_000


def test_every_command_works_as_the_application_role(app_dsn: str, cli_env: Database, conn,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECHARGE_DSN", app_dsn)
    card = str(new_card(conn, balance=20_000))
    station = str(conn.execute("SELECT min(station_id) AS s FROM stations").fetchone()["s"])
    commands = [
        ["recharge", "--card", card, "--amount", "1000", "--key", f"app-{card}"],
        ["balance", "--card", card], ["recharges", "--card", card],
        ["trips", "record", "--card", card, "--station", station], ["trips", "list", "--card", card],
        ["trips", "total", "--from", "2026-11-20"], ["stats", "revenue", "--by", "locality", "--fresh"],
        ["stats", "trips", "--by", "route", "--fresh"], ["stats", "users", "count", "--fresh"],
        ["stats", "users", "active", "--fresh"], ["stats", "users", "latest"],
        ["cache", "warm"], ["cache", "stats"], ["verify"], ["db", "rollup"], ["db", "status"],
        ["report", "daily", "--date", "2026-11-20", "--out", str(tmp_path), "--no-plot"],
    ]
    for command in commands:
        result = run_cli(*command)
        assert result.exit_code == 0, (command, result.stderr)
    csv_file = tmp_path / "topups.csv"
    csv_file.write_text(f"card_id,amount\n{card},1000\n")
    assert run_cli("recharge", "--from-csv", str(csv_file)).exit_code == 0
    fare = run_cli("trips", "list", "--card", card).json()[0]["fare_charged"]
    balance = conn.execute("SELECT balance FROM cards WHERE card_id = %s", (card,)).fetchone()["balance"]
    assert balance == 20_000 + 1_000 + 1_000 - fare

    # schema changes need the owner: as the application role migrate fails (exit 1) …
    assert run_cli("db", "migrate").exit_code != 0
    # … and works when the owner is given with --admin-dsn (nothing pending: exit 0)
    result = run_cli("--admin-dsn", cli_env.dsn, "db", "migrate")
    assert result.exit_code == 0, result.stderr
