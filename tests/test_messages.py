"""First-contact messages: what was found and what was not, limits as they are, "did you
mean", a missing database, Redis down for a cache command, where rejects went, which
database a prompt is about, a second `local start`, what `--purge` deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path

from psycopg import conninfo

from tests.conftest import Database, new_card, run_cli
from tests.test_render import in_terminal, terminal_env


def test_several_cards_print_the_found_then_name_the_missing(cli, conn) -> None:
    a, b = new_card(conn, balance=1000), new_card(conn, balance=2000)
    result = cli("balance", "--card", str(a), "--card", "99999999", "--card", str(b),
                 "--card", "99999998")
    assert result.exit_code == 3
    assert [(r["card_id"], r["balance"]) for r in result.json()] == [(a, 1000), (b, 2000)]
    assert result.stderr.count("\n") == 1
    assert "cards 99999999, 99999998 not found" in result.stderr


def test_limits_are_stated_as_they_are(cli, conn) -> None:
    limit = cli("cards", "list", "--limit", "100000")
    assert limit.exit_code == 2 and "must be between 1 and 10,000, got 100000" in limit.stderr
    before = conn.execute("SELECT * FROM limits_show()").fetchone()
    negative = cli("limits", "set", "--min-recharge", "-1")
    assert negative.exit_code == 2 and "whole number" not in negative.stderr
    assert "--min-recharge must be between 0 and" in negative.stderr and "got -1" in negative.stderr
    assert conn.execute("SELECT * FROM limits_show()").fetchone() == before


def test_mistyped_commands_and_options_say_what_was_meant() -> None:
    command = run_cli("cardz")
    assert command.exit_code == 2 and "Did you mean 'cards'?" in command.stderr
    option = run_cli("cards", "list", "--limt", "3")
    assert option.exit_code == 2 and "Did you mean '--limit'?" in option.stderr
    assert command.stderr.count("\n") == option.stderr.count("\n") == 1


def test_a_database_that_does_not_exist_is_named(cli_env, servers, monkeypatch) -> None:
    monkeypatch.setenv("RECHARGE_DSN", conninfo.make_conninfo(servers.admin_dsn,
                                                              dbname="recharge_no_such_db"))
    result = run_cli("balance", "--card", "1")
    assert result.exit_code == 2 and result.stdout == ""
    assert 'database "recharge_no_such_db" does not exist' in result.stderr
    assert result.stderr.count("\n") == 1 and "unreachable" not in result.stderr


def test_redis_down_for_a_cache_command_is_one_line(cli) -> None:
    result = cli("--redis-url", "redis://127.0.0.1:1/0", "cache", "stats")
    assert result.exit_code == 69 and result.stderr.count("\n") == 1
    assert "error: Redis failed" in result.stderr and "warning" not in result.stderr


def test_a_bulk_run_says_where_its_rejects_went(cli, conn, tmp_path: Path) -> None:
    card = new_card(conn)
    path, rejects = tmp_path / "topups.csv", tmp_path / "rejects.csv"
    path.write_text(f"card_id,amount\n{card},1000\n99999999,1000\n99999998,1000\n")
    result = cli("recharge", "--from-csv", str(path), "--rejects", str(rejects))
    assert result.exit_code == 3 and result.json()["rejected"] == 2
    assert f"2 row(s) rejected: written to {rejects}" in result.stderr
    assert len(rejects.read_text().splitlines()) == 3


def test_the_replace_prompt_names_the_database(empty_database: Database, tmp_path: Path) -> None:
    env = terminal_env(empty_database, tmp_path / "home")
    status, shown = in_terminal(env, "db", "seed", "--scale", "0.05", "--replace", answer="n\n")
    name = conninfo.conninfo_to_dict(empty_database.dsn)["dbname"]
    assert status == 2, shown
    prompt = next(line for line in shown.splitlines() if "Continue?" in line)
    assert f"database {name} on " in prompt and "not confirmed" in shown
    with empty_database.connect() as conn:
        assert conn.execute("SELECT count(*) AS n FROM cards").fetchone()["n"] == 0


def test_a_second_local_start_says_so_and_purge_says_what_it_deleted(tmp_path: Path) -> None:
    from recharge_cli import local
    from tests.faults import cli

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECHARGE_", "PG")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env["RECHARGE_HOME"] = str(home)
    try:
        first = cli(env, "local", "start", timeout=600)
        assert first.returncode == 0, first.stderr
        assert "already running" not in first.stderr
        lay = local.layout(home)
        second = cli(env, "local", "start")
        assert second.returncode == 0 and json.loads(second.stdout)["postgresql_answers"]
        assert [line for line in second.stderr.splitlines() if "already running" in line]
    finally:
        purged = cli(env, "local", "stop", "--purge", "--yes")
    assert purged.returncode == 0, purged.stderr
    deleted = json.loads(purged.stdout)["deleted"]
    assert str(lay.pg_root) in deleted and str(lay.valkey_dir) in deleted
    said = next(line for line in purged.stderr.splitlines() if "deleted:" in line)
    assert all(path in said for path in deleted)
    assert not any(Path(path).exists() for path in deleted)
