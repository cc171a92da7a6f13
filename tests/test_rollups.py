"""Daily rollups: statistics read closed days from them and stay exact when old days change."""

from __future__ import annotations

from typing import Any

import psycopg

from recharge_cli.verify import INVARIANTS
from tests.conftest import new_card

DAY_TOTALS = ("SELECT count(*) AS legs, coalesce(sum(fare_charged), 0) AS fares FROM trips "
              "WHERE boarding_time >= %(day)s::date::timestamptz "
              "AND boarding_time < (%(day)s::date + 1)::timestamptz")


def day_totals(conn: psycopg.Connection[Any], day: str) -> tuple[int, int]:
    row = conn.execute(DAY_TOTALS, {"day": day}).fetchone()
    return row["legs"], row["fares"]


def test_seeded_days_are_rolled_up_and_verified(cli, conn) -> None:
    state = conn.execute("SELECT rolled_until, time_zone FROM rollup_state").fetchone()
    assert state["rolled_until"].date().isoformat() >= "2026-11-23"
    assert conn.execute("SELECT count(*) AS n FROM daily_trips WHERE day = '2026-11-20'"
                        ).fetchone()["n"] > 0
    result = cli("verify")
    assert result.exit_code == 0, result.stderr
    assert {"invariant": 6, "description": INVARIANTS[6], "holds": True,
            "violations": 0} in result.json()


def test_backdated_trip_marks_its_day_dirty_until_rebuilt(cli, conn) -> None:
    card = new_card(conn, balance=10_000)
    before = cli("trips", "total", "--from", "2026-11-19", "--to", "2026-11-19", "--fresh").json()
    station = conn.execute("SELECT station_id FROM stations ORDER BY station_id LIMIT 1"
                           ).fetchone()["station_id"]
    trip = cli("trips", "record", "--card", str(card), "--station", str(station),
               "--at", "2026-11-19T08:30:00").json()
    assert conn.execute("SELECT count(*) AS n FROM rollup_dirty WHERE day = '2026-11-19'"
                        ).fetchone()["n"] == 1
    after = cli("trips", "total", "--from", "2026-11-19", "--to", "2026-11-19", "--fresh").json()
    assert (after["legs"], after["fares"]) == (before["legs"] + 1, before["fares"] + trip["fare_charged"])
    assert (after["legs"], after["fares"]) == day_totals(conn, "2026-11-19")
    assert cli("verify").exit_code == 0

    rebuilt = cli("db", "rollup").json()
    assert rebuilt["days_built"] >= 1
    assert conn.execute("SELECT count(*) AS n FROM rollup_dirty WHERE day = '2026-11-19'"
                        ).fetchone()["n"] == 0  # days not closed yet may stay dirty
    again = cli("trips", "total", "--from", "2026-11-19", "--to", "2026-11-19", "--fresh").json()
    assert (again["legs"], again["fares"]) == (after["legs"], after["fares"])
    assert cli("verify").exit_code == 0


def test_verify_reports_a_rollup_that_disagrees(cli, conn) -> None:
    tamper = ("UPDATE daily_trips SET legs = legs + %s, journeys = journeys + %s "
              "WHERE day = '2026-11-18' AND dimension = 'hour' AND key = 9")
    conn.execute(tamper, (1, 1))
    try:  # (a day no new movement touched: the whole check finds it, the incremental one not)
        result = cli("verify", "--full")
        assert result.exit_code == 1
        assert "invariant 6" in result.stderr and "2026-11-18 daily_trips hour 9" in result.stderr
    finally:
        conn.execute(tamper, (-1, -1))
    assert cli("verify", "--full").exit_code == 0


def test_another_time_zone_scans_the_base_tables(conn) -> None:
    conn.execute("SET TimeZone = 'America/Bogota'")
    row = conn.execute("SELECT * FROM stats_trips('2026-11-20', '2026-11-20', 'total')").fetchone()
    assert (row["legs"], row["fares"]) == day_totals(conn, "2026-11-20")


def test_user_and_card_counts_follow_writes(cli, conn) -> None:
    before = cli("stats", "users", "count", "--fresh").json()
    card = new_card(conn)
    conn.execute("UPDATE cards SET status = 'lost' WHERE card_id = %s", (card,))
    new_card(conn)
    after = cli("stats", "users", "count", "--fresh").json()
    assert (after["cards"], after["active_cards"]) == (before["cards"] + 2, before["active_cards"] + 1)
    row = conn.execute("SELECT count(*) AS cards, count(*) FILTER (WHERE status = 'active') AS active "
                       "FROM cards").fetchone()
    assert (after["cards"], after["active_cards"]) == (row["cards"], row["active"])
    conn.execute("UPDATE entity_counts SET cards = cards + 1")
    try:
        result = cli("verify")
        assert result.exit_code == 1 and "entity count equals recomputation" in result.stderr
    finally:
        conn.execute("UPDATE entity_counts SET cards = cards - 1")
