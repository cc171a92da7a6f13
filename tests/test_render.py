"""Terminal rendering: ids never grouped, readable records at 80 columns, nested rows as
tables, one timestamp format from PostgreSQL and the cache alike, a cut table says so."""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from decimal import Decimal
from typing import Any

import pytest

from recharge_cli import db
from recharge_cli.render import Output
from tests.conftest import Database, new_card

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def rendered(data: Any, monkeypatch: pytest.MonkeyPatch, columns: int = 80) -> tuple[str, str]:
    """What `emit` prints on a terminal `columns` wide: (stdout, stderr) without styles."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("NO_COLOR", "1")
    out, err = Terminal(), Terminal()
    Output(stdout=out, stderr=err).emit(data)
    return ANSI.sub("", out.getvalue()), err.getvalue()


def in_terminal(env: dict[str, str], *args: str, columns: int = 80, answer: str = "") -> tuple[int, str]:
    """`recharge …` in a real pseudo-terminal `columns` wide (stdin, stdout and stderr),
    `answer` typed in: (exit status, everything it showed)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "recharge_cli", *args], stdin=slave,
                               stdout=slave, stderr=slave, close_fds=True,
                               env={**env, "COLUMNS": str(columns), "NO_COLOR": "1"})
    os.close(slave)
    if answer:
        os.write(master, answer.encode())
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return process.wait(timeout=120), ANSI.sub("", shown.decode().replace("\r\n", "\n"))


def terminal_env(database: Database, home: Any) -> dict[str, str]:
    from tests.faults import cli_env

    return cli_env(database.dsn, database.redis_url, database.prefix, home)


def test_identifiers_ports_and_years_are_never_grouped(monkeypatch) -> None:
    record = {"recharge_id": 67254, "card_id": 24003, "postgresql_port": 34565, "year": 2026,
              "version": 1234, "amount": 50000, "balance": Decimal("131499"), "rows": 25000}
    out, _ = rendered(record, monkeypatch)
    for plain in ("67254", "24003", "34565", "2026", "1234"):
        assert re.search(rf"│ {plain} +│", out), out
    for grouped in ("50,000", "131,499", "25,000"):
        assert grouped in out
    rows, _ = rendered([record, {**record, "recharge_id": 67255}], monkeypatch, columns=200)
    assert "67255" in rows and "67,25" not in rows and "131,499" in rows


def test_a_record_keeps_its_labels_and_nests_its_rows_at_80_columns(cli_env, conn, tmp_path) -> None:
    card = new_card(conn, balance=9000)
    for hour in (7, 12):
        at = dt.datetime(2026, 11, 20, hour, tzinfo=dt.UTC)
        db.call(conn, "public.record_trip", (card, 5, None, at, f"trip-{card}-{hour}"))
    status, shown = in_terminal(terminal_env(cli_env, tmp_path), "cards", "show", "--card", str(card))
    assert status == 0, shown
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    for label in ("card_id", "user_id", "status", "balance", "version", "issued_at",
                  "last_movement_at", "movements"):
        assert re.search(rf"│ {label} +│", shown), shown
    assert "[{" not in shown and "3 rows, below" in shown
    header = next(line for line in shown.splitlines() if "entry_id" in line)
    assert all(name in header for name in ("kind", "amount", "balance_after", "created_at"))
    assert re.search(r"│ \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 │", shown) and "warning" not in shown


def test_timestamps_are_written_one_way_from_postgresql_and_from_the_cache(cli, conn,
                                                                           monkeypatch) -> None:
    card = new_card(conn, balance=9000)
    cli("trips", "record", "--card", str(card), "--station", "5", "--at", "2026-11-20T07:00:05.25")
    from_db = cli("trips", "list", "--card", str(card))
    from_cache = cli("trips", "list", "--card", str(card))
    assert "source: db" in from_db.stderr and "source: cache" in from_cache.stderr
    assert from_db.json() == from_cache.json()
    monkeypatch.setenv("PGTZ", "America/Bogota")  # another session time zone, the same instant
    assert cli("--no-cache", "trips", "list", "--card", str(card)).json() == from_cache.json()
    assert from_cache.json()[0]["boarding_time"] == "2026-11-20T07:00:05.250000+00:00"
    at = dt.datetime(2026, 11, 20, 2, 0, 5, 250000, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    from_postgresql, _ = rendered([{"boarding_time": at}], monkeypatch)
    from_json, _ = rendered([{"boarding_time": json.loads(json.dumps(from_cache.json()))[0]
                              ["boarding_time"]}], monkeypatch)
    assert from_postgresql == from_json and "2026-11-20T07:00:05+00:00" in from_json


def test_nested_objects_are_field_lines_not_json(monkeypatch) -> None:
    out, _ = rendered([{"audit_id": 1, "details": {"to": "blocked", "from": "active"}}], monkeypatch)
    assert "to: blocked" in out and "from: active" in out and "{" not in out


def test_a_table_cut_at_the_terminal_edge_says_so_once(monkeypatch) -> None:
    wide = [{f"column_{n}": 1000 * n for n in range(20)} for _ in range(3)]
    _, err = rendered(wide, monkeypatch)
    assert err.count("\n") == 1 and "cut" in err and "--format csv" in err
    _, narrow = rendered(wide, monkeypatch, columns=400)
    assert narrow == ""
    _, small = rendered([{"card_id": 1, "balance": 2}], monkeypatch)
    assert small == ""
