"""Set-based bulk top-ups give exactly what the row-by-row path gives: outcomes, exit
codes, balances and ledger, on a file that mixes every kind of row."""

from __future__ import annotations

import csv
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recharge_cli import bulk, cards
from recharge_cli.errors import RechargeError
from tests import faults
from tests.conftest import Database, new_card


def _twins(conn: psycopg.Connection[Any], status: str = "active", balance: int = 0) -> tuple[int, int]:
    return new_card(conn, status, balance), new_card(conn, status, balance)


def _unnamed(message: str, card: object) -> str:
    """A reject's message with its card id left out (the twin cards differ in it)."""
    return re.sub(rf"\b{card}\b", "#", message)


@pytest.mark.parametrize("chunk_rows", [bulk.CHUNK_ROWS, 3])
def test_bulk_equals_row_by_row(cli, database: Database, conn, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> None:
    """With chunks of 3 rows a card's rows fall in several chunks, applied on different
    connections: they must still apply in file order."""
    monkeypatch.setattr(bulk, "CHUNK_ROWS", chunk_rows)
    plain, repeated, full, keyed, once, other = (_twins(conn, balance=b)
                                                 for b in (0, 0, 490_000, 0, 0, 0))
    blocked = _twins(conn, status="blocked", balance=1000)
    for pair, key in ((keyed, "kept"), (once, "once"), (other, "other")):
        for card in pair:
            cards.recharge(conn, database.cache(), card, 1000, key=key)
    low, high, lost = _twins(conn), _twins(conn), _twins(conn, status="lost")
    rows = [  # (card pair or a literal, amount, key)
        (plain, "5000", "a1"), (repeated, "200000", "r1"), (repeated, "200000", "r2"),
        (repeated, "200000", "r3"),  # over the maximum balance after two
        (repeated, "5000", "r4"), (full, "20000", "f1"),  # 510,000 > 500,000
        (blocked, "5000", "b1"), (plain, "499", "low"), (plain, "200001", "high"),
        ("88888888", "5000", "nf"), ("0", "5000", "zero"), ("1", "-5", "negative"),
        (keyed, "1000", "kept"),  # a replay of the earlier recharge
        (keyed, "2000", "kept"),  # the same key with another amount: exit 5
        (plain, "3000", "a1"),  # the file's own key again, other amount: exit 5
        (plain, "5000", "a1"),  # and again with the same amount: a replay
        (plain, "7000", ""),  # a key derived from the file
        # cards that appear once in the file: each kind of outcome on the set-based path
        (once, "1000", "once"), (other, "2000", "other"), (low, "499", ""),
        (high, "200001", ""), (lost, "5000", ""), ("77777777", "5000", ""),
    ]
    csv_file = tmp_path / "mixed.csv"
    with csv_file.open("w", newline="") as fh:
        writer = csv.writer(fh)
        for target, amount, key in rows:
            card = target[0] if isinstance(target, tuple) else target
            writer.writerow([card, amount, key] if key else [card, amount])
    rejects = tmp_path / "rejects.csv"
    result = cli("recharge", "--from-csv", str(csv_file), "--rejects", str(rejects))
    with rejects.open() as fh:
        bulk_rejects = {int(r["line"]): (int(r["exit_code"]), _unnamed(r["error"], r["card_id"]))
                        for r in csv.DictReader(fh)}

    with bulk.checked(csv_file, bulk._read) as (digest, _, _):
        pass
    single_rejects: dict[int, tuple[int, str]] = {}
    ok = replayed = 0
    for line, (target, amount, key) in enumerate(rows, start=1):
        card = target[1] if isinstance(target, tuple) else target
        try:
            done = cards.recharge(conn, database.cache(), int(card), int(amount), None,
                                  key or f"csv-{digest}-{line}")
        except RechargeError as exc:
            single_rejects[line] = (int(exc.status), _unnamed(str(exc), card))
            continue
        except ValueError:
            single_rejects[line] = (2, bulk_rejects[line][1])  # the CLI parses; this test cannot
            continue
        replayed += done["replayed"]
        ok += not done["replayed"]
    assert bulk_rejects == single_rejects
    summary = result.json()
    assert (summary["ok"], summary["replayed"], summary["rejected"]) == \
        (ok, replayed, len(single_rejects))
    assert result.exit_code == single_rejects[min(single_rejects)][0]
    for pair in (plain, repeated, full, blocked, keyed, once, other, low, high, lost):
        got = conn.execute(
            "SELECT c.card_id, c.balance, c.version, count(l.*) AS entries, "
            "array_agg(l.amount ORDER BY l.entry_id) AS amounts FROM cards c "
            "LEFT JOIN ledger l USING (card_id) WHERE c.card_id = ANY(%s) GROUP BY c.card_id "
            "ORDER BY c.card_id", (list(pair),)).fetchall()
        bulk_card, single_card = ((g["balance"], g["version"], g["entries"], g["amounts"])
                                  for g in got)
        assert bulk_card == single_card, pair
    cached = cli("balance", "--card", str(repeated[0])).json()
    assert (cached["balance"], cached["source"]) == (400_000 + 5000, "cache")
    rerun = cli("recharge", "--from-csv", str(csv_file), "--rejects", str(rejects))
    assert rerun.json()["ok"] == 0 and rerun.json()["replayed"] == ok + replayed


def test_dry_run_says_what_would_happen_and_moves_nothing(cli, conn, tmp_path: Path) -> None:
    good, blocked = new_card(conn), new_card(conn, status="blocked")
    path = tmp_path / "topups.csv"
    path.write_text(f"{good},5000\n{blocked},5000\n{good},600000\n")
    before = conn.execute("SELECT count(*) AS n FROM ledger").fetchone()["n"]
    dry = cli("recharge", "--from-csv", str(path), "--dry-run")
    assert dry.exit_code == 4 and dry.json()["dry_run"] is True
    assert (dry.json()["ok"], dry.json()["rejected"]) == (1, 2)
    assert conn.execute("SELECT count(*) AS n FROM ledger").fetchone()["n"] == before
    real = cli("recharge", "--from-csv", str(path))
    assert (real.json()["ok"], real.json()["replayed"], real.json()["rejected"]) == (1, 0, 2)


def test_interrupted_run_then_rerun_applies_every_row_exactly_once(database: Database, conn,
                                                                   tmp_path: Path) -> None:
    """Ctrl-C while the second chunk waits for a card's lock: the chunks already sent
    finish (and reach the cache), none after them starts (exit 130, incomplete); the rerun
    replays what was applied and applies the rest, one movement per row."""
    size = bulk.CHUNK_ROWS
    ids = [r["card_id"] for r in conn.execute(
        "INSERT INTO cards (card_id) SELECT nextval('card_id_seq') FROM generate_series(1, %s) "
        "RETURNING card_id", (4 * size,)).fetchall()]
    path = tmp_path / "topups.csv"
    path.write_text("".join(f"{card},1000\n" for card in ids))
    env = faults.cli_env(database.dsn, database.redis_url, database.prefix, tmp_path)
    holder = database.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT 1 FROM cards WHERE card_id = %s FOR UPDATE", (ids[size + 1],))
    process = faults.spawn(env, "recharge", "--from-csv", str(path))
    with database.connect() as watcher:
        faults.wait_for_backend(watcher)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    holder.close()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    first = json.loads(stdout)
    assert not first["complete"] and 2 * size <= first["ok"] == first["rows"] < 4 * size

    def movements() -> int:
        return conn.execute("SELECT count(*) AS n FROM ledger WHERE card_id = ANY(%s)",
                            (ids,)).fetchone()["n"]

    assert movements() == first["ok"]
    last_done = json.loads(faults.cli(env, "balance", "--card", str(ids[first["ok"] - 1])).stdout)
    assert (last_done["balance"], last_done["source"]) == (1000, "cache")
    rerun = faults.cli(env, "recharge", "--from-csv", str(path))
    assert rerun.returncode == 0, rerun.stderr
    again = json.loads(rerun.stdout)
    assert (again["replayed"], again["ok"]) == (first["ok"], 4 * size - first["ok"])
    assert movements() == 4 * size
    assert conn.execute("SELECT count(*) AS n FROM cards WHERE card_id = ANY(%s) "
                        "AND balance = 1000 AND version = 1", (ids,)).fetchone()["n"] == 4 * size


def test_a_key_committed_while_the_chunk_waits_for_its_card_replays(database: Database, conn,
                                                                    tmp_path: Path) -> None:
    """A single recharge holds the card with the row's own key; the bulk chunk waits for
    the card's lock and, once that commits, sees the key: a replay, not a second movement."""
    card, other = new_card(conn), new_card(conn)
    path = tmp_path / "topups.csv"
    path.write_text(f"{other},2000\n{card},1000,desk-1\n")
    env = faults.cli_env(database.dsn, database.redis_url, database.prefix, tmp_path)
    holder = database.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM recharge_card(%s, 1000, NULL, 'desk-1')", (card,))
    process = faults.spawn(env, "recharge", "--from-csv", str(path))
    with database.connect() as watcher:
        faults.wait_for_backend(watcher)
    holder.execute("COMMIT")
    holder.close()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert (json.loads(stdout)["ok"], json.loads(stdout)["replayed"]) == (1, 1)
    assert conn.execute("SELECT count(*) AS n FROM ledger WHERE card_id = %s",
                        (card,)).fetchone()["n"] == 1


@pytest.mark.parametrize(("content", "line", "says"), [
    ("{a},1000\n3,1,000\n", 2, "thousands separator"),
    ('{a},1000\n{b},1000\n"{a},1000\n{b},1000\n', 3, "a quote is never closed"),
    ("{a},1000\n{b};1000\n", 2, "expected 2 or 3 columns"),
    ("{a},1000\n{b},1e3\n", 2, "amount must be an integer"),
    ("{a},1000\n{b},1000,bad key!\n", 2, "invalid idempotency key"),
    ('{a},1000\n{b},"10\n00"\n', 2, "spans several lines"),
])
def test_a_malformed_line_refuses_the_whole_file(cli, conn, tmp_path: Path, content: str,
                                                 line: int, says: str) -> None:
    """Every line is checked before the first chunk is sent: exit 2 naming the line, and
    nothing moves, however many good lines come before it (from a file or stdin)."""
    a, b = _twins(conn)
    text = content.format(a=a, b=b)
    path = tmp_path / "topups.csv"
    path.write_text(text)
    for result in (cli("recharge", "--from-csv", str(path)),
                   cli("recharge", "--from-csv", "-", input=text)):
        assert result.exit_code == 2, result.stderr
        errors = [text for text in result.stderr.splitlines() if "error:" in text]
        assert len(errors) == 1 and f"line {line}:" in errors[0] and says in errors[0], errors
        assert "nothing was applied" in errors[0] and result.stdout == ""
    assert conn.execute("SELECT count(*) AS n FROM ledger WHERE card_id IN (%s, %s)",
                        (a, b)).fetchone()["n"] == 0


def test_the_refusal_names_the_other_malformed_lines(cli, conn, tmp_path: Path) -> None:
    card = new_card(conn)
    path = tmp_path / "topups.csv"
    path.write_text("card_id,amount\n" + "".join(
        f"{card},{'x' if n % 3 == 0 else 1000}\n" for n in range(1, 31)))
    result = cli("recharge", "--from-csv", str(path))
    assert result.exit_code == 2
    assert "line 4: amount must be an integer, got 'x' (and 9 more malformed line(s): " \
        "7, 10, 13, 16, 19, …)" in result.stderr, result.stderr
