"""What a new user meets first: help without a command, a database never migrated, global
options given after the command, a day that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Database, new_card, run_cli


@pytest.mark.parametrize("args", [[], ["stats"], ["cards"], ["db"]])
def test_a_group_without_a_command_prints_its_help(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.startswith("Usage: ") and "Commands:" in result.stdout


def test_a_database_never_migrated_says_to_migrate(empty_database: Database, cli_env,
                                                   monkeypatch, servers) -> None:
    from tests.conftest import create_database, drop_database

    name = create_database(servers)
    try:
        from psycopg import conninfo

        monkeypatch.setenv("RECHARGE_DSN", conninfo.make_conninfo(servers.admin_dsn, dbname=name))
        result = run_cli("balance", "--card", "1")
        assert result.exit_code == 2 and "recharge db migrate" in result.stderr
        assert result.stderr.count("\n") == 1 and "internal error" not in result.stderr
    finally:
        drop_database(servers, name)


def test_global_options_work_after_the_command(cli, conn) -> None:
    card = new_card(conn, balance=5000)
    csv_out = cli("balance", "--card", str(card), "--format", "csv", "--no-cache")
    assert csv_out.exit_code == 0
    assert csv_out.stdout.splitlines()[0].startswith("card_id,balance")
    assert csv_out.stdout.splitlines()[1].startswith(f"{card},5000") and ",db" in csv_out.stdout
    stats = cli("stats", "revenue", "--format", "csv")
    assert stats.exit_code == 0 and stats.stdout.startswith("from,to,by,recharged,reversed,net,fares")


@pytest.mark.parametrize(("value", "says"), [("2024-02-30", "no such day"),
                                              ("24-2-3", "use YYYY-MM-DD"),
                                              ("0001-01-01", "between 1970-01-01")])
def test_dates_say_what_is_wrong(cli, value: str, says: str) -> None:
    result = cli("stats", "revenue", "--from", value)
    assert result.exit_code == 2 and says in result.stderr


def test_jsonl_prints_one_object_per_line(cli, conn) -> None:
    import json

    card = new_card(conn, balance=9000)
    for at in ("2026-11-20T07:00", "2026-11-20T12:00"):
        cli("trips", "record", "--card", str(card), "--station", "5", "--at", at)
    result = cli("--format", "jsonl", "trips", "list", "--card", str(card))
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 0 and len(rows) == 2 and rows[0]["card_id"] == card
    single = cli("balance", "--card", str(card), "--format", "jsonl")
    assert json.loads(single.stdout)["balance"] == 9000 - 2 * 3550


def test_metrics_file_for_cron(cli, conn, tmp_path) -> None:
    import re

    path = tmp_path / "recharge_verify.prom"
    ok = cli("--metrics-file", str(path), "stats", "revenue")
    assert ok.exit_code == 0
    text = path.read_text()
    assert 'recharge_exit_code{command="stats"} 0' in text
    assert re.search(r'recharge_duration_seconds\{command="stats"\} \d+\.\d+', text)
    assert 'recharge_rows{command="stats"} 1' in text
    success = re.search(r"recharge_last_success_timestamp_seconds\{[^}]*\} (\S+)", text).group(1)
    failed = cli("stats", "revenue", "--from", "2024-02-30", "--metrics-file", str(path))
    assert failed.exit_code == 2
    text = path.read_text()
    assert 'recharge_exit_code{command="stats"} 2' in text and 'recharge_success{command="stats"} 0' in text
    assert f"recharge_last_success_timestamp_seconds{{command=\"stats\"}} {success}" in text
    assert cli("--metrics-file", str(tmp_path / "missing" / "x.prom"), "stats", "revenue"
               ).exit_code == 2


@pytest.mark.parametrize(("words", "expected"), [
    ("recharge stats revenue --by ", ["total", "day", "locality", "point", "channel"]),
    ("recharge stats trips --by h", ["hour"]),
    ("recharge cards list --status b", ["blocked"]),
    ("recharge bench --target stats", ["stats_revenue"]),
])
def test_the_shell_completes_choice_values(words: str, expected: list[str]) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "_RECHARGE_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
    done = subprocess.run([str(Path(sys.executable).with_name("recharge"))], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == expected, done.stderr


@pytest.mark.parametrize(("args", "allowed"), [
    (["stats", "revenue", "--by", "week"], "total, day, locality"),
    (["cards", "list", "--status", "gone"], "active, inactive, blocked, lost"),
    (["bench", "--target", "nope"], "balance, card_trips"),
])
def test_a_value_outside_the_choices_lists_them(cli, args: list[str], allowed: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and allowed in result.stderr and result.stdout == ""
    assert result.stderr.count("\n") == 1
