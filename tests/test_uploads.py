"""Validator uploads (`trips record --from-csv`) charge exactly what the same taps cost one
by one through `trips record --at`, card by card in boarding-time order: fares, transfers
within the window, credit, anonymous cards paying every leg, offline taps judged as of
their boarding time, rejects, replays and conflicting keys."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recharge_cli import cards, uploads
from recharge_cli.errors import RechargeError
from tests.conftest import Database, new_card

LEG = ("station_id", "route_id", "boarding_time", "fare_charged", "is_transfer", "leg_number",
       "balance_after")


def _twins(conn: psycopg.Connection[Any], balance: int, user_id: int | None) -> tuple[int, int]:
    return new_card(conn, balance=balance, user_id=user_id), new_card(conn, balance=balance,
                                                                      user_id=user_id)


def _unnamed(message: str, card: object) -> str:
    """A reject's message with its card id left out (the twin cards differ in it)."""
    return re.sub(rf"\b{card}\b", "#", message)


def _legs(conn: psycopg.Connection[Any], card: int) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT * FROM trips WHERE card_id = %s ORDER BY boarding_time, trip_id",
                        (card,)).fetchall()
    return [tuple(r[k] for k in LEG) for r in rows]


def test_upload_equals_taps_one_by_one(cli, database: Database, conn, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The file lists each card's taps out of order and splits them over chunks and staging
    batches of 3 rows; each twin card gets the same taps one by one in boarding-time order."""
    monkeypatch.setattr(uploads, "STAGE_ROWS", 3)
    monkeypatch.setattr(uploads, "CHUNK_TAPS", 3)
    base = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(microsecond=0)

    def at(minutes: float) -> str:
        return (base + dt.timedelta(minutes=minutes)).isoformat()

    rider = _twins(conn, 20_000, user_id=1)        # transfers, then a new journey
    anonymous = _twins(conn, 20_000, user_id=None)  # pays every leg, no credit
    credit = _twins(conn, 4_000, user_id=2)         # rides on credit, then is refused
    blocked = _twins(conn, 20_000, user_id=3)       # blocked now: earlier taps still count
    keyed = _twins(conn, 20_000, user_id=4)         # keys given in the file
    for card in keyed:
        cards.record_trip(conn, database.cache(), card, 5, None, at(-600), key="given")
    rows = [  # (card pair or a literal, station, route, minutes after base, key)
        (rider, "160", "300", 20, ""), (rider, "5", "", 0, ""), (rider, "5", "1", 150, ""),
        (rider, "6", "", 45, ""),
        (anonymous, "5", "", 0, ""), (anonymous, "160", "300", 10, ""),
        (anonymous, "6", "", 30, ""),
        (credit, "5", "", 0, ""), (credit, "5", "", 300, ""), (credit, "5", "", 600, ""),
        (credit, "5", "", 900, ""),
        (blocked, "5", "", 0, ""),
        (keyed, "5", "", -600, "given"),   # a replay of the single tap made before
        (keyed, "6", "", -600, "given"),   # the same key, another station: exit 5
        (keyed, "5", "", 60, "fresh"), (keyed, "7", "", 70, "fresh"),  # and within the file
        ("88888888", "5", "", 0, ""),      # no such card: exit 3
        (rider, "99999", "", 400, ""),     # no such station: exit 3
        (rider, "5", "", -60 * 24 * 40, ""),  # older than max_tap_age_days: exit 4
    ]
    # blocked after its first tap (made then, uploaded later) and before its second
    for card in blocked:
        cli("cards", "block", "--card", str(card))
    rows.append((blocked, "5", "", 2 * 24 * 60 + 2, ""))  # boarded after the block: refused

    csv_file = tmp_path / "validator.csv"
    with csv_file.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["card_id", "station_id", "route_id", "boarding_time"])
        for target, station, route, minutes, key in rows:
            card = target[0] if isinstance(target, tuple) else target
            writer.writerow([card, station, route, at(minutes)] + ([key] if key else []))
    rejects = tmp_path / "rejects.csv"
    result = cli("trips", "record", "--from-csv", str(csv_file), "--rejects", str(rejects))
    with rejects.open() as fh:
        upload_rejects = {int(r["line"]): (int(r["exit_code"]), _unnamed(r["error"], r["card_id"]))
                          for r in csv.DictReader(fh)}

    with uploads.checked(csv_file, uploads.read) as (digest, _, _):
        pass
    single_rejects: dict[int, tuple[int, str]] = {}
    ok = replayed = 0
    numbered = list(enumerate(rows, start=2))  # line 1 is the header
    # one by one, in boarding-time order per card (then file order)
    for line, (target, station, route, minutes, key) in sorted(numbered, key=lambda n: n[1][3]):
        card = target[1] if isinstance(target, tuple) else int(target)
        try:
            done = cards.record_trip(conn, database.cache(), card, int(station),
                                     int(route) if route else None, at(minutes),
                                     key or f"csv-{digest}-{line}")
        except RechargeError as exc:
            single_rejects[line] = (int(exc.status), _unnamed(str(exc), card))
            continue
        replayed += done["replayed"]
        ok += not done["replayed"]
    assert upload_rejects == single_rejects
    assert {code for code, _ in single_rejects.values()} == {3, 4, 5}
    summary = result.json()
    assert (summary["ok"], summary["replayed"], summary["rejected"]) == \
        (ok, replayed, len(single_rejects))
    assert result.exit_code == single_rejects[min(single_rejects)][0]
    for pair in (rider, anonymous, credit, blocked, keyed):
        uploaded, single = pair
        assert _legs(conn, uploaded) == _legs(conn, single), pair
        balances = conn.execute("SELECT card_id, balance FROM cards WHERE card_id = ANY(%s)",
                                (list(pair),)).fetchall()
        assert len({b["balance"] for b in balances}) == 1, pair
    # the rider's journey: 07:00 paid, +20 and +45 free transfers, +150 a new journey
    assert [leg[3:6] for leg in _legs(conn, rider[0])[-4:]] == [
        (3550, False, 1), (0, True, 2), (0, True, 3), (3550, False, 1)]
    assert [leg[3] for leg in _legs(conn, anonymous[0])] == [3550, 3550, 3550]
    assert _legs(conn, credit[0])[-1][6] == 4000 - 3 * 3550  # two trips on credit, then refused
    cached = cli("balance", "--card", str(rider[0])).json()
    assert cached["source"] == "cache" and cached["balance"] == _legs(conn, rider[0])[-1][6]
    assert conn.execute("SELECT count(*) AS n FROM verify_ledger()").fetchone()["n"] == 0
    # the staged rows are gone; a rerun replays every charged tap and charges nothing
    assert conn.execute("SELECT count(*) AS n FROM tap_uploads").fetchone()["n"] == 0
    rerun = cli("trips", "record", "--from-csv", str(csv_file), "--rejects", str(rejects))
    assert rerun.json()["ok"] == 0 and rerun.json()["replayed"] == ok + replayed


def test_a_malformed_line_refuses_the_whole_upload(cli, conn, tmp_path: Path) -> None:
    card = new_card(conn, balance=10_000)
    before = conn.execute("SELECT count(*) AS n FROM ledger").fetchone()["n"]
    for bad, says in ((f"{card},5,,2026-13-01T07:00", "boarding_time"),
                      (f"{card},5,2026-12-01T07:00", "expected 4 or 5 columns"),
                      (f"{card},five,,2026-12-01T07:00", "station_id must be an integer")):
        path = tmp_path / "bad.csv"
        path.write_text(f"{card},5,,{dt.date.today()}T06:00\n{bad}\n")
        result = cli("trips", "record", "--from-csv", str(path))
        assert result.exit_code == 2 and "line 2" in result.stderr and says in result.stderr
        assert "nothing was applied" in result.stderr and result.stdout == ""
    assert conn.execute("SELECT count(*) AS n FROM ledger").fetchone()["n"] == before


def test_dry_run_and_stdin(cli, conn, tmp_path: Path) -> None:
    card = new_card(conn, balance=10_000)
    today = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    text = "".join(f"{card},5,,{(today + dt.timedelta(minutes=m)).isoformat()}\n"
                   for m in (0, 150))
    path = tmp_path / "day.csv"
    path.write_text(text)
    dry = cli("trips", "record", "--from-csv", str(path), "--dry-run")
    assert dry.exit_code == 0 and dry.json()["ok"] == 2 and dry.json()["dry_run"] is True
    assert conn.execute("SELECT count(*) AS n FROM trips WHERE card_id = %s", (card,)
                        ).fetchone()["n"] == 0
    piped = cli("trips", "record", "--from-csv", "-", input=text)
    assert piped.exit_code == 0 and piped.json()["ok"] == 2
    assert piped.json()["fares_charged"] == 2 * 3550
    assert conn.execute("SELECT balance FROM cards WHERE card_id = %s", (card,)
                        ).fetchone()["balance"] == 10_000 - 2 * 3550


def test_upload_options_do_not_mix(cli, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("")
    for args in (["--card", "1"], ["--at", "2026-12-01T07:00"], ["--key", "k"]):
        result = cli("trips", "record", "--from-csv", str(path), *args)
        assert result.exit_code == 2 and "cannot be combined" in result.stderr
    assert cli("trips", "record", "--card", "1", "--station", "5", "--dry-run").exit_code == 2
