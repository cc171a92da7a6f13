"""Recharge, balance and trips through the CLI on real servers."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from recharge_cli import cards, db
from recharge_cli.cache import Cache
from recharge_cli.jsonable import dumps, to_jsonable
from tests.conftest import Database, new_card


def ledger_sum(conn: psycopg.Connection[Any], card_id: int) -> int:
    return conn.execute("SELECT coalesce(sum(amount), 0) AS s FROM ledger WHERE card_id = %s",
                        (card_id,)).fetchone()["s"]


def test_cached_json_is_the_rendered_json() -> None:
    """What the cache stores reads back as what the renderer prints: ISO times in UTC,
    integral decimals as integers, other decimals as strings."""
    bogota = dt.timezone(dt.timedelta(hours=-5))
    value = {"at": dt.datetime(2026, 11, 30, 10, 5, 3, 12, tzinfo=bogota),
             "on": dt.datetime(2026, 11, 30, 10, 5, 3, tzinfo=dt.UTC),
             "day": dt.date(2026, 2, 1), "revenue": Decimal("3100"), "share": Decimal("0.25"),
             "rows": [(1, "Usaquén"), None], 7: True}
    assert json.loads(dumps(value)) == json.loads(json.dumps(to_jsonable(value)))
    assert json.loads(dumps(value))["at"] == "2026-11-30T15:05:03.000012+00:00"  # in UTC


def test_recharge_prints_the_contract_fields(cli, card: int) -> None:
    result = cli("recharge", "--card", str(card), "--amount", "5000")
    assert result.exit_code == 0, result.stderr
    body = result.json()
    assert {"card_id", "amount", "balance", "recharge_id", "idempotency_key", "replayed"} <= set(body)
    assert (body["card_id"], body["amount"], body["balance"], body["replayed"]) == (card, 5000, 5000, False)
    assert body["idempotency_key"] in result.stderr  # the generated key is told to the user


def test_same_key_replays_and_other_parameters_conflict(cli, conn, card: int) -> None:
    first = cli("recharge", "--card", str(card), "--amount", "7000", "--key", f"k-{card}")
    again = cli("recharge", "--card", str(card), "--amount", "7000", "--key", f"k-{card}")
    assert again.exit_code == 0
    assert again.json()["replayed"] is True
    assert again.json()["recharge_id"] == first.json()["recharge_id"]
    assert again.json()["balance"] == 7000
    clash = cli("recharge", "--card", str(card), "--amount", "8000", "--key", f"k-{card}")
    assert clash.exit_code == 5 and clash.stdout == ""
    assert clash.stderr.count("\n") == 1
    assert ledger_sum(conn, card) == 7000


def test_balance_is_cache_aside(cli, card: int) -> None:
    cli("recharge", "--card", str(card), "--amount", "3000")
    first = cli("balance", "--card", str(card)).json()
    second = cli("balance", "--card", str(card)).json()
    assert second["source"] == "cache" and second["balance"] == 3000
    assert first["balance"] == 3000
    uncached = cli("--no-cache", "balance", "--card", str(card)).json()
    assert uncached["source"] == "db" and uncached["balance"] == 3000
    cli("recharge", "--card", str(card), "--amount", "2000")
    assert cli("balance", "--card", str(card)).json()["balance"] == 5000  # written through


def test_balance_of_several_cards_and_unknown_card(cli, conn) -> None:
    a, b = new_card(conn, balance=1000), new_card(conn, balance=2000)
    rows = cli("balance", "--card", str(a), "--card", str(b)).json()
    assert [(r["card_id"], r["balance"]) for r in rows] == [(a, 1000), (b, 2000)]
    missing = cli("balance", "--card", "88888888")
    assert missing.exit_code == 3 and "88888888" in missing.stderr


def test_trip_charges_fare_then_transfer(cli, conn) -> None:
    """The rules valid at the boarding time: 3,550 since 2026-01-14, transfers free within
    125 minutes (at most two) for a personalised card."""
    card = new_card(conn, balance=20_000, user_id=1)
    first = cli("trips", "record", "--card", str(card), "--station", "5", "--route", "1",
                "--at", "2026-11-23T07:00:00")
    assert first.exit_code == 0, first.stderr
    assert (first.json()["fare_charged"], first.json()["is_transfer"]) == (3550, False)
    second = cli("trips", "record", "--card", str(card), "--station", "500", "--route", "300",
                 "--at", "2026-11-23T07:30:00").json()
    assert (second["fare_charged"], second["is_transfer"], second["leg_number"]) == (0, True, 2)
    assert second["transfer_group"] == first.json()["trip_id"]
    third = cli("trips", "record", "--card", str(card), "--station", "3", "--route", "150",
                "--at", "2026-11-23T08:00:00").json()
    assert (third["fare_charged"], third["leg_number"]) == (0, 3)
    fourth = cli("trips", "record", "--card", str(card), "--station", "4", "--route", "2",
                 "--at", "2026-11-23T08:10:00").json()  # a third transfer: a new journey
    assert (fourth["fare_charged"], fourth["is_transfer"]) == (3550, False)
    late = cli("trips", "record", "--card", str(card), "--station", "500", "--route", "300",
               "--at", "2026-11-23T10:20:00").json()  # 130 minutes: outside the window
    assert (late["fare_charged"], late["is_transfer"]) == (3550, False)
    too_old = cli("trips", "record", "--card", str(card), "--station", "5",
                  "--at", "2025-06-01T07:00:00")  # beyond limits.max_tap_age_days (30)
    assert too_old.exit_code == 4 and "older than 30 days" in too_old.stderr
    for bad in ("0", "3651"):
        assert cli("limits", "set", "--max-tap-age-days", bad).exit_code == 2
    assert cli("limits", "set", "--max-tap-age-days", "3650").json()["max_tap_age_days"] == 3650
    try:
        earlier = cli("trips", "record", "--card", str(card), "--station", "5",
                      "--at", "2025-06-01T07:00:00").json()  # charged by the 2025 rules
    finally:
        assert cli("limits", "set", "--max-tap-age-days", "30").exit_code == 0
    assert earlier["fare_charged"] == 3200
    assert earlier["balance"] == ledger_sum(conn, card) == 20_000 - 3 * 3550 - 3200
    listed = cli("trips", "list", "--card", str(card), "--limit", "2")
    assert [t["trip_id"] for t in listed.json()] == [late["trip_id"], fourth["trip_id"]]


def test_anonymous_cards_pay_every_leg(cli, conn) -> None:
    card = new_card(conn, balance=10_000)
    for at in ("2026-11-23T07:00:00", "2026-11-23T07:20:00"):
        leg = cli("trips", "record", "--card", str(card), "--station", "5", "--at", at).json()
        assert (leg["fare_charged"], leg["is_transfer"]) == (3550, False)


def test_credit_allowance_and_status_rules(cli, conn) -> None:
    anonymous = new_card(conn, balance=3000)  # no user: no credit
    refused = cli("trips", "record", "--card", str(anonymous), "--station", "5",
                  "--at", "2026-11-23T07:00")
    assert refused.exit_code == 4 and "anonymous card gets no credit" in refused.stderr
    assert cli("balance", "--card", str(anonymous)).json()["balance"] == 3000
    cli("recharge", "--card", str(anonymous), "--amount", "550")
    exact = cli("trips", "record", "--card", str(anonymous), "--station", "5",
                "--at", "2026-11-23T07:00")
    assert exact.exit_code == 0 and exact.json()["balance"] == 0
    card = new_card(conn, balance=3000, user_id=1)
    ok = cli("trips", "record", "--card", str(card), "--station", "5", "--at", "2026-11-23T07:00")
    assert ok.exit_code == 0 and ok.json()["balance"] == -550  # on credit
    ok2 = cli("trips", "record", "--card", str(card), "--station", "6", "--at", "2026-11-23T10:00")
    assert ok2.exit_code == 0 and ok2.json()["balance"] == -4100
    refused = cli("trips", "record", "--card", str(card), "--station", "7",
                  "--at", "2026-11-23T13:00")
    assert refused.exit_code == 4 and "insufficient" in refused.stderr
    empty = new_card(conn, user_id=1)  # two trips on credit at the current fare, not three
    for at, balance in (("2026-11-23T07:00", -3550), ("2026-11-23T10:00", -7100)):
        leg = cli("trips", "record", "--card", str(empty), "--station", "5", "--at", at)
        assert leg.exit_code == 0 and leg.json()["balance"] == balance, leg.stderr
    assert cli("trips", "record", "--card", str(empty), "--station", "5",
               "--at", "2026-11-23T13:00").exit_code == 4
    blocked = new_card(conn, status="blocked", balance=5000)
    assert cli("recharge", "--card", str(blocked), "--amount", "5000").exit_code == 4
    assert cli("trips", "record", "--card", str(blocked), "--station", "5").exit_code == 4
    assert cli("trips", "record", "--card", str(card), "--station", "99999").exit_code == 3


def test_recharge_limits(cli, conn) -> None:
    card = new_card(conn, balance=200_000)
    cli("recharge", "--card", str(card), "--amount", "200000")
    cli("recharge", "--card", str(card), "--amount", "50000")
    assert cli("recharge", "--card", str(card), "--amount", "499").exit_code == 4
    assert cli("recharge", "--card", str(card), "--amount", "200001").exit_code == 4
    over = cli("recharge", "--card", str(card), "--amount", "60000")
    assert over.exit_code == 4 and "maximum balance" in over.stderr
    assert ledger_sum(conn, card) == 450_000


def test_trips_replay_with_same_key(cli, conn) -> None:
    card = new_card(conn, balance=10_000)
    args = ("trips", "record", "--card", str(card), "--station", "5", "--key", f"t-{card}")
    first, again = cli(*args), cli(*args)
    assert again.json()["replayed"] and again.json()["trip_id"] == first.json()["trip_id"]
    assert ledger_sum(conn, card) == 10_000 - 3550


def test_bulk_csv_is_idempotent_and_reports_rejects(cli, conn, tmp_path: Path) -> None:
    good, blocked = new_card(conn), new_card(conn, status="blocked")
    csv_file = tmp_path / "topups-2026-11-24.csv"
    csv_file.write_text(f"card_id,amount,key\n{good},5000\n{good},3000,mykey-{good}\n"
                        f"{blocked},5000\n88888888,5000\n{good},0\n")
    rejects = tmp_path / "rejects.csv"
    first = cli("recharge", "--from-csv", str(csv_file), "--rejects", str(rejects))
    assert first.exit_code == 4
    assert first.json() == {"rows": 5, "ok": 2, "replayed": 0, "rejected": 3,
                            "amount_recharged": 8000, "complete": True, "dry_run": False}
    assert len(rejects.read_text().strip().splitlines()) == 4  # header + 3
    again = cli("recharge", "--from-csv", str(csv_file))
    assert again.json()["replayed"] == 2 and again.json()["ok"] == 0
    assert again.stderr.count("\n") == 3  # one line per rejected row
    assert ledger_sum(conn, good) == 8000


def test_stale_set_race_cannot_put_an_old_balance_back(database: Database, conn) -> None:
    """A reader that read the balance before a write stores it only after the write's
    commit and cache update: the version check must refuse the stale value."""
    card = new_card(conn, balance=1000)
    reader_cache, writer_cache = database.cache(), database.cache()
    read_done, write_done = threading.Event(), threading.Event()
    original_fill = reader_cache.card_fill

    def slow_fill(items, tickets, ttl):
        items = list(items)
        read_done.set()
        assert write_done.wait(10)  # the write commits and updates the cache meanwhile
        original_fill(items, tickets, ttl)

    reader_cache.card_fill = slow_fill  # type: ignore[method-assign]
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.extend(
        cards.balances(database.connect(), reader_cache, [card])))
    reader.start()
    assert read_done.wait(10)
    with database.connect() as writer:
        cards.recharge(writer, writer_cache, card, 4000)
    write_done.set()
    reader.join(10)
    assert seen[0]["balance"] == 1000  # the reader saw the old value...
    cached = Cache.get(writer_cache, writer_cache.card_key(card, "balance"))
    assert cached["balance"] == 5000  # ...but could not put it back
    fresh = cards.balances(database.connect(), database.cache(), [card])[0]
    assert (fresh["balance"], fresh["source"]) == (5000, "cache")


def test_redis_down_reads_from_postgres_with_one_warning(cli, conn, monkeypatch) -> None:
    card = new_card(conn, balance=2500)
    monkeypatch.setenv("RECHARGE_REDIS_URL", "redis://127.0.0.1:1/0")
    result = cli("balance", "--card", str(card), "--card", str(card))
    assert result.exit_code == 0
    assert [r["source"] for r in result.json()] == ["db", "db"]
    assert result.stderr.count("warning:") == 1 and "Redis" in result.stderr
    wrote = cli("recharge", "--card", str(card), "--amount", "1000")
    assert wrote.exit_code == 0 and wrote.json()["balance"] == 3500
    assert db.call_one(conn, "public.card_balance", (card,))["balance"] == 3500


def test_a_reader_that_stops_reading_is_no_failure(cli_env, conn, card: int) -> None:
    """`recharge recharge … | head -0`: the money moved, so the command must not say it
    failed; the closed pipe is the reader's choice (exit 0, no traceback)."""
    import subprocess
    import sys

    command = [str(Path(sys.executable).with_name("recharge")), "recharge", "--card", str(card),
               "--amount", "1000", "--key", "closed-pipe"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(60) == 0, stderr
    assert "Traceback" not in stderr and "error" not in stderr
    row = conn.execute("SELECT balance FROM cards WHERE card_id = %s", (card,)).fetchone()
    assert row["balance"] == 1000


def test_a_cluster_setting_against_a_plain_redis_degrades_like_a_redis_outage(
        cli, monkeypatch, card: int) -> None:
    assert cli("balance", "--card", str(card)).json()["source"] == "db"
    assert cli("balance", "--card", str(card)).json()["source"] == "cache"  # cached: 0
    monkeypatch.setenv("RECHARGE_REDIS_CLUSTER", "1")
    moved = cli("recharge", "--card", str(card), "--amount", "1000")
    assert moved.exit_code == 0 and "going on without the cache" in moved.stderr
    assert cli("balance", "--card", str(card)).json()["balance"] == 1000
    assert cli("cache", "stats").exit_code == 69  # the cache itself is the job: unavailable
    monkeypatch.delenv("RECHARGE_REDIS_CLUSTER")
    after = cli("balance", "--card", str(card)).json()  # the stale cached 0 is not served
    assert (after["balance"], after["source"]) == (1000, "db")


def test_a_flush_cannot_let_a_late_write_through_put_an_older_balance_back(
        database: Database, conn) -> None:
    """Writer A commits, then stalls before its write-through; writer B commits after it and
    writes through; `cache flush` runs; A's write-through arrives last. The flush keeps the
    card's version, so A's older balance is refused (with the version deleted it would be
    served until its TTL ran out)."""
    card = new_card(conn, balance=1000)
    late_cache, writer_cache = database.cache(), database.cache()
    committed, flushed = threading.Event(), threading.Event()
    original = late_cache.card_written

    def stalled(*args: Any, **kwargs: Any) -> None:
        committed.set()
        assert flushed.wait(10)
        original(*args, **kwargs)

    late_cache.card_written = stalled  # type: ignore[method-assign]
    late = threading.Thread(target=lambda: cards.recharge(database.connect(), late_cache,
                                                          card, 2000))
    late.start()
    assert committed.wait(10)
    with database.connect() as writer:
        assert cards.recharge(writer, writer_cache, card, 4000)["balance"] == 7000
    assert writer_cache.flush() >= 1
    flushed.set()
    late.join(10)
    assert Cache.get(writer_cache, writer_cache.card_key(card, "balance")) is None
    fresh = cards.balances(database.connect(), database.cache(), [card])[0]
    assert fresh["balance"] == 7000
