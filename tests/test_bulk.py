"""Set-based bulk top-ups give exactly what the row-by-row path gives: outcomes, exit
codes, balances and ledger, on a file that mixes every kind of row."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg

from recharge_cli import bulk, cards
from recharge_cli.errors import RechargeError
from tests.conftest import Database, new_card


def _twins(conn: psycopg.Connection[Any], status: str = "active", balance: int = 0) -> tuple[int, int]:
    return new_card(conn, status, balance), new_card(conn, status, balance)


def test_bulk_equals_row_by_row(cli, database: Database, conn, tmp_path: Path) -> None:
    plain, repeated, full, keyed = (_twins(conn, balance=b) for b in (0, 0, 490_000, 0))
    blocked = _twins(conn, status="blocked", balance=1000)
    cards.recharge(conn, database.cache(), keyed[0], 1000, key="kept")
    cards.recharge(conn, database.cache(), keyed[1], 1000, key="kept")
    rows = [  # (card pair or a literal, amount, key)
        (plain, "5000", "a1"), (repeated, "200000", "r1"), (repeated, "200000", "r2"),
        (repeated, "200000", "r3"),  # over the maximum balance after two
        (repeated, "5000", "r4"), (full, "20000", "f1"),  # 510,000 > 500,000
        (blocked, "5000", "b1"), (plain, "499", "low"), (plain, "200001", "high"),
        ("88888888", "5000", "nf"), ("0", "5000", "zero"), ("abc", "5000", "bad"),
        (keyed, "1000", "kept"),  # a replay of the earlier recharge
        (keyed, "2000", "kept"),  # the same key with another amount: exit 5
        (plain, "3000", "a1"),  # the file's own key again, other amount: exit 5
        (plain, "5000", "a1"),  # and again with the same amount: a replay
        (plain, "7000", ""),  # a key derived from the file
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
        bulk_rejects = {int(r["line"]): int(r["exit_code"]) for r in csv.DictReader(fh)}

    digest, _, _ = bulk._digest(csv_file)
    single_rejects: dict[int, int] = {}
    ok = replayed = 0
    for line, (target, amount, key) in enumerate(rows, start=1):
        card = target[1] if isinstance(target, tuple) else target
        try:
            done = cards.recharge(conn, database.cache(), int(card), int(amount), None,
                                  key or f"csv-{digest}-{line}")
        except (RechargeError, ValueError) as exc:
            single_rejects[line] = exc.status if isinstance(exc, RechargeError) else 2
            continue
        replayed += done["replayed"]
        ok += not done["replayed"]
    assert bulk_rejects == single_rejects
    summary = result.json()
    assert (summary["ok"], summary["replayed"], summary["rejected"]) == \
        (ok, replayed, len(single_rejects))
    assert result.exit_code == single_rejects[min(single_rejects)]
    for pair in (plain, repeated, full, blocked, keyed):
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
