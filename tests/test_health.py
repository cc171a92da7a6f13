"""`recharge health` on real servers: healthy, each dependency failing in turn (one JSON
document and exit 1 every time, never 69), and the jobs' ages; `cache show` and `cache
evict` on a card whose cached balance disagrees with PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from psycopg import conninfo

from recharge_cli import db
from tests.conftest import Database, Servers, create_database, drop_database, new_card, run_cli


def _health(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(*args, "health")
    document = json.loads(result.stdout)  # one document whatever failed
    assert document["ok"] == (result.exit_code == 0), result.stdout
    assert result.exit_code in (0, 1)
    return result.exit_code, {check["check"]: check for check in document["checks"]}


def test_healthy_once_the_jobs_have_run(cli_env: Database) -> None:
    assert run_cli("verify").exit_code == 0 and run_cli("db", "rollup").exit_code == 0
    status, checks = _health()
    assert status == 0, checks
    assert list(checks) == ["postgresql", "schema", "rollup", "verify", "replica", "redis", "cache"]
    assert checks["verify"]["facts"]["clean"] is True
    assert checks["redis"]["facts"]["round_trip_ms"] > 0
    table = run_cli("--format", "table", "health")
    assert table.exit_code == 0 and len(table.stdout.strip().splitlines()) == 2 + len(checks)


def test_old_jobs_fail_their_checks(cli_env: Database, conn) -> None:
    assert run_cli("verify").exit_code == 0 and run_cli("db", "rollup").exit_code == 0
    conn.execute("UPDATE job_runs SET finished_at = now() - interval '30 hours'")
    conn.execute("UPDATE rollup_state SET built_at = now() - interval '2 hours'")
    try:
        status, checks = _health()
        assert status == 1 and not checks["verify"]["ok"] and not checks["rollup"]["ok"]
        assert "older than --max-verify-age 26 h" in checks["verify"]["detail"]
        relaxed = run_cli("health", "--max-verify-age", "48", "--max-rollup-age", "180")
        assert relaxed.exit_code == 0, relaxed.stdout
    finally:
        assert run_cli("verify").exit_code == 0 and run_cli("db", "rollup").exit_code == 0
    assert run_cli("health", "--max-rollup-age", "0").exit_code == 2


@pytest.fixture
def unmigrated(servers: Servers) -> Any:
    name = create_database(servers)
    yield conninfo.make_conninfo(servers.admin_dsn, dbname=name)
    drop_database(servers, name)


def test_an_unmigrated_database(cli_env: Database, unmigrated: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHARGE_DSN", unmigrated)
    status, checks = _health()
    assert status == 1 and checks["postgresql"]["ok"] and not checks["schema"]["ok"]
    assert "run `recharge db migrate`" in checks["schema"]["detail"]
    assert not checks["rollup"]["ok"] and not checks["cache"]["ok"]


def test_redis_down_and_postgresql_down(cli_env: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    status, checks = _health("--redis-url", "redis://127.0.0.1:1/0")
    assert status == 1 and checks["postgresql"]["ok"]
    assert not checks["redis"]["ok"] and "unreachable" in checks["redis"]["detail"]
    monkeypatch.setenv("RECHARGE_DSN", "postgresql://postgres@127.0.0.1:1/none")
    status, checks = _health()
    assert status == 1 and not checks["postgresql"]["ok"] and checks["redis"]["ok"]
    assert checks["schema"]["detail"] == "not checked: PostgreSQL is unreachable"


def test_cache_show_then_evict_a_card_that_disagrees(cli_env: Database, conn) -> None:
    card = new_card(conn, balance=5000)
    assert run_cli("balance", "--card", str(card)).json()["balance"] == 5000  # cached now
    # another writer (not through this tool) moves money: the cache lags by up to its TTL
    db.call(conn, "public.recharge_card", (card, 1000, None, f"outside-{card}"))
    shown = run_cli("cache", "show", "--card", str(card))
    assert shown.exit_code == 0, shown.stderr
    rows = {row["key"].rsplit(":", 1)[1]: row for row in shown.json()}
    assert rows["balance"]["cached"]["balance"] == 5000 and rows["balance"]["agrees"] is False
    assert rows["balance"]["postgresql"]["balance"] == 6000
    assert 0 < rows["balance"]["ttl_seconds"] <= 300
    evicted = run_cli("cache", "evict", "--card", str(card), "--card", "99999999")
    assert evicted.exit_code == 3 and "card 99999999 not found" in evicted.stderr
    assert evicted.json() == [{"card_id": card, "deleted": 1}]
    after = {row["key"].rsplit(":", 1)[1]: row for row in
             run_cli("cache", "show", "--card", str(card)).json()}
    assert "balance" not in after and after["ver"]["agrees"] is True  # the version stays
    assert run_cli("balance", "--card", str(card)).json()["balance"] == 6000
    assert run_cli("cache", "show", "--card", "0").exit_code == 2
