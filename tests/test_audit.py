"""An audit trail that says who: every row has the declared operator and the database login
(`db_user`); `audit list --after` pages by cursor and `--follow` tails rows as they commit,
in audit-id order even when transactions commit out of that order."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from recharge_cli import db, migrations
from tests import faults
from tests.conftest import (
    Database,
    Invocation,
    Servers,
    create_database,
    drop_database,
    own_database,
    run_cli,
)

OPERATOR = "ana.desk"


@dataclass
class Trail:
    """A database of its own, and a login role in a group of operators (as DEPLOYMENT.md
    sets them up) that does the audited actions."""

    database: Database
    role: str
    role_dsn: str

    def owner(self) -> psycopg.Connection[dict[str, Any]]:
        return self.database.connect()

    def env(self, home: Path) -> dict[str, str]:
        """The environment of a `recharge` process that logs in as the operator's role."""
        return faults.cli_env(self.role_dsn, self.database.redis_url, self.database.prefix, home)


@pytest.fixture(scope="module")
def trail(servers: Servers) -> Iterator[Trail]:
    suffix = uuid.uuid4().hex[:8]
    group, role = f"recharge_test_operators_{suffix}", f"recharge_test_ana_{suffix}"
    with own_database(servers, seeded=False) as database:
        with database.connect() as admin:
            admin.execute(f"CREATE ROLE {group} NOLOGIN IN ROLE recharge_app")
            admin.execute(f"CREATE ROLE {role} LOGIN IN ROLE {group}")
        try:
            yield Trail(database, role, conninfo.make_conninfo(database.dsn, user=role))
        finally:  # roles are cluster-wide: leave none behind
            with database.connect() as admin:
                admin.execute(f"DROP ROLE {role}")
                admin.execute(f"DROP ROLE {group}")


@pytest.fixture
def cli(trail: Trail, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Invocation]:
    """`recharge …` in this process, logged in as the operator's role."""
    for name in list(os.environ):
        if name.startswith(("RECHARGE_", "PG")) or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)
    for name, value in trail.env(tmp_path).items():
        monkeypatch.setenv(name, value)
    return run_cli


def ok(result: Invocation) -> Any:
    assert result.exit_code == 0, result.stderr
    return result.json()


def last_audit_id(trail: Trail) -> int:
    with trail.owner() as conn:
        return conn.execute("SELECT coalesce(max(audit_id), 0) AS n FROM audit_log").fetchone()["n"]


def audit_since(trail: Trail, after: int) -> list[dict[str, Any]]:
    with trail.owner() as conn:
        return conn.execute("SELECT * FROM audit_log WHERE audit_id > %s ORDER BY audit_id",
                            (after,)).fetchall()


def slow_audit_row(trail: Trail) -> tuple[psycopg.Connection[dict[str, Any]], int]:
    """An audit row inserted by a transaction left open: its id is drawn, not yet committed."""
    slow = trail.owner()
    slow.autocommit = False
    row = slow.execute("INSERT INTO audit_log (card_id, operator, action, details) "
                       "VALUES (0, 'slow', 'limits', '{}') RETURNING audit_id").fetchone()
    return slow, row["audit_id"]


def set_credit(cli: Callable[..., Invocation], amount: int) -> None:
    ok(cli("limits", "set", "--credit-allowance", str(amount), "--operator", OPERATOR))


def test_every_audited_action_records_the_login_role(trail: Trail, cli) -> None:
    """Status changes (by the trigger, inside SECURITY DEFINER functions), limits and fares,
    users, issue, reversal and replacement: each row names the role that logged in, not the
    owner the functions run as; a change typed by hand names whoever typed it."""
    start = last_audit_id(trail)
    as_operator = ("--operator", OPERATOR)
    user = ok(cli("users", "add", "--document", f"CC{uuid.uuid4().int % 10**10}", "--name",
                  "Ana Gómez", *as_operator))["user_id"]
    card = ok(cli("cards", "issue", "--user", str(user), *as_operator))["card_id"]
    topped = ok(cli("recharge", "--card", str(card), "--amount", "10000"))
    ok(cli("reverse", "--card", str(card), "--recharge", str(topped["recharge_id"]),
           "--reason", "wrong card", *as_operator))
    ok(cli("recharge", "--card", str(card), "--amount", "5000"))
    ok(cli("cards", "block", "--card", str(card), "--reason", "reported stolen", *as_operator))
    ok(cli("cards", "unblock", "--card", str(card), *as_operator))
    ok(cli("cards", "lost", "--card", str(card), *as_operator))
    new_card = ok(cli("cards", "replace", "--card", str(card), *as_operator))["new_card_id"]
    ok(cli("fares", "set", "--code", "CABLE", "--amount", "3900", "--from", "2099-01-01",
           *as_operator))
    set_credit(cli, 7000)

    rows = audit_since(trail, start)
    assert {r["action"] for r in rows} == {"user", "issue", "reverse", "status", "replace",
                                           "fare", "limits"}
    assert {r["db_user"] for r in rows} == {trail.role}
    assert {r["operator"] for r in rows} == {OPERATOR}
    listed = ok(cli("audit", "list", "--card", str(card)))
    assert {(r["operator"], r["db_user"]) for r in listed} == {(OPERATOR, trail.role)}
    assert [r["action"] for r in listed][:2] == ["replace", "status"]

    with trail.owner() as owner:  # by hand, as the owner: the trigger still says who
        owner.execute("UPDATE cards SET status = 'blocked' WHERE card_id = %s", (new_card,))
        me = owner.execute("SELECT session_user AS me").fetchone()["me"]
    by_hand = audit_since(trail, rows[-1]["audit_id"])
    assert [(r["action"], r["operator"], r["db_user"]) for r in by_hand] == [("status", me, me)]


def test_rows_from_before_the_migration_have_no_db_user(servers: Servers) -> None:
    """Rows written before 0017 keep NULL (unknown: nobody recorded the login); rows written
    after it always name one."""
    name = create_database(servers)
    try:
        with db.connect(conninfo.make_conninfo(servers.admin_dsn, dbname=name)) as conn:
            conn.execute(migrations._CREATE_TABLE)  # what 0005 grants on
            files = [m for m in migrations.available() if m.kind == "versioned"]
            for migration in files:
                if migration.name.startswith("migrations/0017_"):
                    break
                conn.execute(migration.sql)
            conn.execute("INSERT INTO audit_log (card_id, operator, action, details) "
                         "VALUES (0, 'before', 'limits', '{}')")
            conn.execute(next(m.sql for m in files if m.name.startswith("migrations/0017_")))
            conn.execute("INSERT INTO audit_log (card_id, operator, action, details) "
                         "VALUES (0, 'after', 'limits', '{}')")
            rows = conn.execute("SELECT operator, db_user, session_user AS me FROM audit_log "
                                "ORDER BY audit_id").fetchall()
            assert [(r["operator"], r["db_user"]) for r in rows] == \
                [("before", None), ("after", rows[0]["me"])]
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("INSERT INTO audit_log (card_id, operator, action, details, db_user) "
                             "VALUES (0, 'nobody', 'limits', '{}', NULL)")
    finally:
        drop_database(servers, name)


def test_after_is_a_cursor_oldest_first(trail: Trail, cli) -> None:
    start = last_audit_id(trail)
    for amount in (7001, 7002, 7003, 7004, 7005):
        set_credit(cli, amount)
    newest = ok(cli("audit", "list", "--limit", "2"))
    assert [r["details"]["set"]["credit_allowance"] for r in newest] == [7005, 7004]
    assert set(newest[0]) == {"audit_id", "at", "card_id", "operator", "db_user", "action",
                              "reason", "details"}

    sizes, seen, after = [], [], start
    while page := ok(cli("audit", "list", "--after", str(after), "--limit", "2")):
        sizes.append(len(page))
        seen += [r["audit_id"] for r in page]
        after = page[-1]["audit_id"]
    assert sizes == [2, 2, 1]
    assert seen == [r["audit_id"] for r in audit_since(trail, start)]
    assert ok(cli("audit", "list", "--after", str(after + 1000))) == []

    lines = cli("audit", "list", "--after", str(start), "--limit", "3", "--format", "jsonl")
    assert lines.exit_code == 0, lines.stderr
    assert [json.loads(line)["audit_id"] for line in lines.stdout.splitlines()] == seen[:3]

    card = ok(cli("cards", "issue", "--operator", OPERATOR))["card_id"]
    ok(cli("cards", "block", "--card", str(card), "--operator", OPERATOR))
    mine = ok(cli("audit", "list", "--card", str(card), "--after", str(start)))
    assert [r["action"] for r in mine] == ["issue", "status"]


def test_bad_audit_options(cli) -> None:
    for args in (["--after", "-1"], ["--after", "x"], ["--limit", "0"], ["--card", "0"],
                 ["--follow", "--format", "json"]):
        result = cli("audit", "list", *args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
        assert result.stdout == ""


def test_a_page_never_passes_an_id_still_in_flight(trail: Trail, cli) -> None:
    """A transaction draws an audit id, another draws the next and commits first: the page
    after the cursor stops before the first (a cursor moved past the second would skip it),
    then gives both in id order once the first commits; an id rolled back is passed over."""
    start = last_audit_id(trail)
    slow, slow_id = slow_audit_row(trail)
    try:
        set_credit(cli, 7100)
        fast_id = last_audit_id(trail)
        assert fast_id > slow_id
        assert ok(cli("audit", "list", "--after", str(start))) == []
        slow.commit()
    finally:
        slow.close()
    both = ok(cli("audit", "list", "--after", str(start)))
    assert [(r["audit_id"], r["operator"]) for r in both] == [(slow_id, "slow"), (fast_id, OPERATOR)]

    slow, rolled_back = slow_audit_row(trail)
    slow.rollback()
    slow.close()
    set_credit(cli, 7101)
    deadline = time.monotonic() + 30  # a long transaction elsewhere on the server holds it back
    while not (page := ok(cli("audit", "list", "--after", str(fast_id)))):
        assert time.monotonic() < deadline, "the page never passed a rolled-back id"
    assert [r["audit_id"] for r in page] == [rolled_back + 1]


def test_follow_streams_rows_as_they_commit_and_ends_on_ctrl_c(trail: Trail, cli,
                                                               tmp_path: Path) -> None:
    """`audit list --follow` in its own process, off a terminal (JSONL, flushed row by row):
    the newest row first, then a row committed by another process, held back while a lower
    id is still in flight and then given after it; Ctrl-C ends it with exit 130 and one
    line."""
    set_credit(cli, 7200)
    newest = last_audit_id(trail)
    env = trail.env(tmp_path)
    process = faults.spawn(env, "audit", "list", "--follow", "--limit", "1")
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],  # type: ignore[union-attr]
                     daemon=True).start()

    def next_row(timeout: float = 30) -> dict[str, Any]:
        return json.loads(lines.get(timeout=timeout))

    try:
        assert next_row()["audit_id"] == newest
        slow, slow_id = slow_audit_row(trail)
        try:
            other = faults.cli(env, "limits", "set", "--credit-allowance", "7201",
                               "--operator", OPERATOR)
            assert other.returncode == 0, other.stderr
            time.sleep(1.5)  # several polls: the committed row waits for the lower id
            assert lines.empty()
            slow.commit()
        finally:
            slow.close()
        first, second = next_row(), next_row()
        assert (first["audit_id"], first["operator"]) == (slow_id, "slow")
        assert (second["audit_id"], second["operator"], second["db_user"]) == \
            (slow_id + 1, OPERATOR, trail.role)
        assert second["details"]["set"]["credit_allowance"] == 7201
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and "interrupted" in stderr, stderr
