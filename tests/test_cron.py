"""Unattended runs: run locks (exit 75), redacted passwords, README cron lines as cron runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from recharge_cli import local
from recharge_cli.locks import LOCK_CLASS
from tests.conftest import Database, Servers

README = Path(__file__).parent.parent / "README.md"


def _start(database: Database, *args: str, stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[str]:
    env = {**os.environ, "RECHARGE_DSN": database.dsn, "RECHARGE_REDIS_URL": database.redis_url,
           "RECHARGE_CACHE_PREFIX": database.prefix}
    return subprocess.Popen([sys.executable, "-m", "recharge_cli", *args], env=env, text=True,
                            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_second_run_under_the_same_lock_exits_75_at_once(database: Database, conn) -> None:
    # the first run holds lock "warm" while it waits for its (bulk) input on stdin
    first = _start(database, "recharge", "--from-csv", "-", "--lock", "warm", stdin=subprocess.PIPE)
    deadline = time.monotonic() + 30
    held = "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = %s"
    while conn.execute(held, (LOCK_CLASS,)).fetchone()["n"] == 0:
        assert time.monotonic() < deadline and first.poll() is None, "the first run never took the lock"
        time.sleep(0.05)
    started = time.monotonic()
    second = _start(database, "cache", "warm", "--lock", "warm")
    _, err = second.communicate(timeout=60)
    assert second.returncode == 75, err
    assert "lock 'warm' is held by another run" in err and err.count("\n") == 1
    assert time.monotonic() - started < 10  # process start-up included; no waiting
    waiting = _start(database, "cache", "warm", "--lock", "warm", "--wait", "30")
    time.sleep(1.0)
    first.communicate(input="", timeout=60)  # empty file: nothing to do, lock released
    assert first.returncode == 0
    _, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert _start(database, "cache", "warm", "--lock", "warm").wait(timeout=60) == 0


def test_two_concurrent_cache_warm_runs(database: Database, conn) -> None:
    """The first warm holds lock 'warm' while it is held up on a table lock; the second
    exits 75 at once; the first then finishes with exit 0."""
    blocker = psycopg.connect(database.dsn)
    blocker.execute("LOCK TABLE daily_revenue IN ACCESS EXCLUSIVE MODE")  # stalls stats_revenue
    try:
        first = _start(database, "cache", "warm", "--lock", "warm")
        deadline = time.monotonic() + 30
        waiting = ("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                   "AND datname = current_database() AND application_name = 'recharge'")
        while conn.execute(waiting).fetchone()["n"] == 0:
            assert time.monotonic() < deadline and first.poll() is None, "the first warm never started"
            time.sleep(0.05)
        started = time.monotonic()
        second = _start(database, "cache", "warm", "--lock", "warm")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 75 and "lock 'warm' is held by another run" in err, err
        assert time.monotonic() - started < 10
    finally:
        blocker.rollback()
        blocker.close()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err


@pytest.mark.parametrize("where", ["127.0.0.1:1", "no-such-host.invalid:5432"])
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_dsn_password_never_appears(where: str, debug: list[str], cli_env: Database) -> None:
    secret = "Sup3r-Secret-Pw"
    for command in (["balance", "--card", "1"], ["db", "status"], ["stats", "revenue"]):
        process = subprocess.run(
            [sys.executable, "-m", "recharge_cli", *debug, "--dsn", f"postgresql://app:{secret}@{where}/x",
             *command], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert process.returncode == 69, process.stderr
        assert secret not in process.stdout + process.stderr
        assert "unreachable" in process.stderr


def test_password_redacted_in_a_wrong_database_error(cli_env: Database) -> None:
    secret = "An0ther-Secret"
    dsn = conninfo.make_conninfo(cli_env.dsn, password=secret, dbname="recharge_no_such_db")
    process = subprocess.run([sys.executable, "-m", "recharge_cli", "--debug", "--dsn", dsn, "db",
                              "status"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert process.returncode == 2 and 'database "recharge_no_such_db" does not exist' in process.stderr
    assert secret not in process.stdout + process.stderr


def test_a_wrong_password_is_refused_and_never_shown(servers: Servers, database: Database) -> None:
    """The embedded server checks passwords on TCP (scram-sha-256); the external one in CI
    trusts every connection, so this runs on the embedded setup only."""
    if servers.embedded_home is None:
        pytest.skip("the external test server does not check passwords")
    state = local.read_state(servers.embedded_home)
    assert state is not None
    role, right, wrong = f"recharge_test_pw_{uuid.uuid4().hex[:8]}", "Right-Pw-123", "Wr0ng-Pw-456"
    with psycopg.connect(database.dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{right}' IN ROLE recharge_app")
    try:
        dbname = conninfo.conninfo_to_dict(database.dsn)["dbname"]
        for debug in ([], ["--debug"]):
            dsn = f"postgresql://{role}:{wrong}@127.0.0.1:{state.pg_port}/{dbname}"
            process = subprocess.run([sys.executable, "-m", "recharge_cli", *debug, "--dsn", dsn,
                                      "balance", "--card", "1"], capture_output=True, text=True,
                                     timeout=60, stdin=subprocess.DEVNULL)
            assert process.returncode == 69 and "password authentication failed" in process.stderr
            assert wrong not in process.stdout + process.stderr
        good = subprocess.run([sys.executable, "-m", "recharge_cli", "--dsn",
                               f"postgresql://{role}:{right}@127.0.0.1:{state.pg_port}/{dbname}",
                               "stats", "users", "count"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL,
                              env={**os.environ, "RECHARGE_NO_CACHE": "1"})
        assert good.returncode == 0, good.stderr
    finally:
        with psycopg.connect(database.dsn, autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


def _cron_lines() -> list[str]:
    block = README.read_text().split("```cron", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines()
            if line.strip() and not line.startswith("#") and ("verify" in line or "rollup" in line
                                                               or "cache warm" in line)]


def test_readme_cron_lines_run_as_cron_would(database: Database, tmp_path: Path) -> None:
    """No terminal, cron's minimal environment, `cd /`, the installed console script; the
    node_exporter textfile directory is a temporary one."""
    script = Path(sys.executable).parent / "recharge"
    lines = _cron_lines()
    assert len(lines) == 4 and any("verify --full" in line for line in lines)  # nightly, weekly
    for line in lines:
        command = line.split(None, 5)[5].replace("\\%", "%")
        command = command.replace("/opt/recharge/.venv/bin/recharge", str(script))
        command = command.replace("service=recharge", f"'{database.dsn}'")
        command = re.sub(r"redis://127\.0\.0\.1:6379/0", database.redis_url, command)
        command = command.replace("/var/lib/node_exporter/textfile", str(tmp_path))
        command = f"RECHARGE_CACHE_PREFIX={database.prefix} " + command.replace("cd / && ", "")
        process = subprocess.run(["/bin/sh", "-c", f"cd / && {command}"], capture_output=True, text=True,
                                 timeout=300, stdin=subprocess.DEVNULL,
                                 env={"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "HOME": "/nonexistent",
                                      "LOGNAME": "cron"})
        assert process.returncode == 0, (line, process.stderr)
        assert process.stderr == ""  # --quiet: nothing to mail when all is well
    assert "recharge_success{command=\"verify\"} 1" in (tmp_path / "recharge_verify.prom").read_text()
