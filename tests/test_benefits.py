"""Monthly free trips: the grant (idempotent per user and month, lapses first, skips users
without an active personalised card), taps spending a trip before the rider's money,
replacements moving the trips, the money reports and verify's benefit invariant. Each test
has a database of its own: a grant reaches every eligible user of its database."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from recharge_cli import benefits, cards, lifecycle, verify
from recharge_cli.cache import Cache
from tests.conftest import Database, run_cli


def _month(conn: psycopg.Connection[Any], months_back: int = 0) -> dt.date:
    return conn.execute("SELECT (date_trunc('month', now()) - make_interval(months => %s))::date "
                        "AS m", (months_back,)).fetchone()["m"]


def _user(conn: psycopg.Connection[Any], document: str, **eligibility: Any) -> int:
    """A user registered ten years ago (so every card issued to them comes after)."""
    columns = ", ".join(["user_id", "document", "full_name", "registered_at", *eligibility])
    values = ", ".join(["nextval('user_id_seq')", "%s", "'Test User'",
                        "now() - interval '10 years'", *(["%s"] * len(eligibility))])
    return conn.execute(f"INSERT INTO users ({columns}) VALUES ({values}) RETURNING user_id",
                        (document, *eligibility.values())).fetchone()["user_id"]


def _nocache() -> Cache:
    return Cache(None, "recharge:test:none:")  # (these tests look at PostgreSQL only)


def _card(conn: psycopg.Connection[Any], user_id: int | None, balance: int = 20_000) -> int:
    card = lifecycle.issue(conn, user_id, "test")["card_id"]
    if balance:
        cards.recharge(conn, _nocache(), card, balance)
    return card


@pytest.fixture
def town(empty_database: Database):
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations VALUES (5, 'Portal', 'PORTAL', 99), "
                     "(160, 'Paradero', 'ZONAL_PARADERO', 99)")
        conn.execute("INSERT INTO routes VALUES (300, 'Z300', 'ZONAL_UCE')")
        yield conn


def test_the_grant_loads_each_eligible_users_trips_once(town) -> None:
    conn = town
    month = _month(conn)
    older = _user(conn, "CC1", birth_date=dt.date(1950, 5, 1), sisben_group="B")  # 6 trips
    disabled = _user(conn, "CC2", disability=True, sisben_group="A")               # 12 trips
    poor_no_card = _user(conn, "CC3", sisben_group="A")                            # 7, skipped
    _user(conn, "CC4", sisben_group="D")                                           # none
    anonymous_only = _user(conn, "CC5", disability=True)                           # 1, skipped
    old_card, newest = _card(conn, older), _card(conn, older)
    disabled_card = _card(conn, disabled)
    _card(conn, None)
    blocked = _card(conn, anonymous_only)
    lifecycle.set_status(conn, _nocache(), blocked, "block", None, "test")

    dry = benefits.grant(conn, month, dry_run=True)
    assert (dry["granted"], dry["trips_granted"], dry["dry_run"]) == (2, 18, True)
    assert conn.execute("SELECT count(*) AS n FROM ledger WHERE kind = 'benefit_grant'"
                        ).fetchone()["n"] == 0
    done = benefits.grant(conn, month)
    assert (done["granted"], done["trips_granted"], done["replayed"]) == (2, 18, 0)
    assert sorted(done["skipped_users"]) == sorted([poor_no_card, anonymous_only])
    held = {r["card_id"]: (r["benefit_trips"], r["benefit_criterion"]) for r in conn.execute(
        "SELECT card_id, benefit_trips, benefit_criterion FROM cards "
        "WHERE benefit_trips IS NOT NULL").fetchall()}
    assert held == {newest: (6, "older_adult"), disabled_card: (12, "disability")}
    assert old_card not in held  # the user's newest active card holds them
    again = benefits.grant(conn, month)
    assert (again["granted"], again["replayed"], again["trips_granted"]) == (0, 2, 0)
    assert conn.execute("SELECT count(*) AS n FROM ledger WHERE kind = 'benefit_grant'"
                        ).fetchone()["n"] == 2
    with pytest.raises(psycopg.Error, match="current month") as refused:
        benefits.grant(conn, _month(conn, 1))
    assert refused.value.sqlstate == "RC004"
    assert verify.run(conn, full=True).violations == []


def test_a_tap_spends_a_trip_before_the_riders_money(town) -> None:
    conn = town
    user = _user(conn, "CC10", birth_date=dt.date(1955, 1, 1))  # no Sisbén: 1 trip
    card = _card(conn, user, balance=10_000)
    conn.execute("UPDATE cards SET issued_at = now() - interval '1 day' WHERE card_id = %s",
                 (card,))
    benefits.grant(conn, _month(conn))
    shown = lifecycle.show(conn, card, 5)
    assert shown["benefit_trips"] == 1 and shown["benefit_expires"].day >= 28
    now = dt.datetime.now(dt.UTC)
    # (this month's taps: three hours ago is still this month unless the month just began)
    start = max(now - dt.timedelta(hours=3), now.replace(day=1, hour=0, minute=0, second=0))
    paid = cards.record_trip(conn, _nocache(), card, 5, at=start.isoformat(), key="first")
    assert (paid["paid_by"], paid["fare_charged"], paid["balance"]) == ("benefit", 0, 10_000)
    transfer = cards.record_trip(conn, _nocache(), card, 160, 300,
                                 at=(start + dt.timedelta(minutes=5)).isoformat(), key="second")
    assert (transfer["paid_by"], transfer["fare_charged"]) == ("transfer", 0)
    assert lifecycle.show(conn, card, 1)["benefit_trips"] == 0  # the transfer spent none
    later = max(start + dt.timedelta(minutes=130), now).isoformat()  # a new journey
    own = cards.record_trip(conn, _nocache(), card, 5, at=later, key="third")
    assert (own["paid_by"], own["fare_charged"], own["balance"]) == ("balance", 3550, 6_450)
    replay = cards.record_trip(conn, _nocache(), card, 5, key="first")
    assert replay["replayed"] and replay["paid_by"] == "benefit"
    legs = conn.execute("SELECT paid_by, benefit, fare_charged FROM trips WHERE card_id = %s "
                        "ORDER BY trip_id", (card,)).fetchall()
    assert [(r["paid_by"], r["benefit"]) for r in legs] == [
        ("benefit", "older_adult"), ("transfer", "older_adult"), ("balance", None)]
    revenue = conn.execute("SELECT * FROM stats_revenue(NULL, NULL, 'total')").fetchone()
    assert (revenue["fares"], revenue["benefit_fares"]) == (3550, 3550)  # never in recharged
    assert revenue["recharged"] == 10_000
    by = {r["bucket"]: r["legs"] for r in conn.execute(
        "SELECT * FROM stats_trips(NULL, NULL, 'beneficiary')").fetchall()}
    assert by == {"older_adult": 2, "general": 1}
    assert verify.run(conn, full=True).violations == []


def test_replacement_moves_the_trips_and_a_new_month_lapses_them(town) -> None:
    conn = town
    user = _user(conn, "CC20", disability=True, sisben_group="C4")  # 8 trips
    card = _card(conn, user)
    benefits.grant(conn, _month(conn))
    cards.record_trip(conn, _nocache(), card, 5, key="ride")
    lifecycle.set_status(conn, _nocache(), card, "lost", None, "test")
    moved = lifecycle.replace(conn, _nocache(), card, "lost", "test")
    new = moved["new_card_id"]
    assert lifecycle.show(conn, new, 1)["benefit_trips"] == 7
    assert lifecycle.show(conn, card, 1)["benefit_trips"] == 0
    assert benefits.grant(conn, _month(conn))["replayed"] == 1  # granted on the old card
    assert verify.run(conn, full=True).violations == []

    # last month's trips that a card still holds lapse when this month's grant runs (a
    # grant of last month written by hand: a grant only ever loads the current month)
    other = _card(conn, _user(conn, "CC21", birth_date=dt.date(1940, 1, 1), sisben_group="A"))
    last = _month(conn, 1)
    conn.execute("INSERT INTO ledger (card_id, kind, amount, balance_after, created_at, trips, "
                 "trips_month, idempotency_key, benefit) VALUES (%s, 'benefit_grant', 0, 20000, "
                 "now(), 8, %s, 'benefits-last', 'older_adult')", (other, last))
    conn.execute("UPDATE cards SET benefit_trips = 8, benefit_month = %s, "
                 "benefit_criterion = 'older_adult' WHERE card_id = %s", (last, other))
    done = benefits.grant(conn, _month(conn))
    assert (done["cards_lapsed"], done["trips_lapsed"], done["granted"]) == (1, -8, 1)
    trips = conn.execute("SELECT kind, trips, trips_month FROM ledger WHERE card_id = %s "
                         "AND trips IS NOT NULL ORDER BY entry_id", (other,)).fetchall()
    assert [(t["kind"], t["trips"], t["trips_month"]) for t in trips] == [
        ("benefit_grant", 8, last), ("benefit_lapse", -8, last),
        ("benefit_grant", 8, _month(conn))]
    assert verify.run(conn, full=True).violations == []
    conn.execute("UPDATE cards SET benefit_trips = benefit_trips + 1 WHERE card_id = %s", (other,))
    found = {v["invariant"] for v in verify.run(conn, full=True).violations}
    assert found == {11}


def test_benefits_grant_on_the_command_line(town, empty_database: Database,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECHARGE_DSN", empty_database.dsn)
    monkeypatch.setenv("RECHARGE_REDIS_URL", empty_database.redis_url)
    monkeypatch.setenv("RECHARGE_CACHE_PREFIX", empty_database.prefix)
    _user(town, "CC30", sisben_group="B")
    month = _month(town).strftime("%Y-%m")
    result = run_cli("--format", "json", "benefits", "grant", "--month", month)
    assert result.exit_code == 0 and result.json()["skipped"] == 1
    assert "no active personalised card" in result.stderr
    for bad, code in (("2026-13", 2), ("next", 2), (_month(town, 1).strftime("%Y-%m"), 4)):
        refused = run_cli("benefits", "grant", "--month", bad)
        assert refused.exit_code == code and refused.stderr.count("error:") == 1


def test_an_upload_spends_trips_as_the_same_taps_one_by_one(town, empty_database: Database,
                                                           tmp_path, monkeypatch) -> None:
    """Twin beneficiaries (2 trips each), one of each pair's cards since replaced (its taps,
    made before, charge the replacement): the upload charges and spends what the same taps
    cost one by one."""
    conn = town
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(minutes=150)
    if start < now.replace(day=1, hour=0, minute=0, second=0):
        pytest.skip("the month began less than 150 minutes ago")
    pairs = []
    for pair in range(2):
        cards_ = []
        for twin in range(2):
            card = _card(conn, _user(conn, f"CC4{pair}{twin}", disability=True,
                                     sisben_group="D"))
            conn.execute("UPDATE cards SET issued_at = now() - interval '1 day' "
                         "WHERE card_id = %s", (card,))
            cards_.append(card)
        pairs.append(cards_)
    benefits.grant(conn, _month(conn))
    charged = {card: card for pair in pairs for card in pair}
    for card in pairs[1]:
        lifecycle.set_status(conn, _nocache(), card, "lost", None, "test")
        charged[card] = lifecycle.replace(conn, _nocache(), card, "lost", "test")["new_card_id"]
    legs = [(5, None, 0), (160, 300, 5), (5, None, 130), (160, 300, 140), (5, None, 145)]
    upload = tmp_path / "taps.csv"
    upload.write_text("".join(f"{pair[0]},{station},{route or ''},"
                              f"{(start + dt.timedelta(minutes=m)).isoformat()}\n"
                              for pair in pairs for station, route, m in reversed(legs)))
    monkeypatch.setenv("RECHARGE_DSN", empty_database.dsn)
    monkeypatch.setenv("RECHARGE_REDIS_URL", empty_database.redis_url)
    monkeypatch.setenv("RECHARGE_CACHE_PREFIX", empty_database.prefix)
    result = run_cli("--format", "json", "trips", "record", "--from-csv", str(upload))
    assert result.exit_code == 0 and result.json()["ok"] == 2 * len(legs), result.stderr
    for pair in pairs:
        for n, (station, route, m) in enumerate(legs):
            cards.record_trip(conn, _nocache(), pair[1], station, route,
                              at=(start + dt.timedelta(minutes=m)).isoformat(), key=f"one-{n}")

    def spent(card: int) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in conn.execute(
            "SELECT station_id, boarding_time, fare_charged, leg_number, balance_after, "
            "paid_by, benefit FROM trips WHERE card_id = %s ORDER BY boarding_time",
            (charged[card],)).fetchall()]

    for uploaded, single in pairs:
        assert spent(uploaded) == spent(single)
        assert [leg[5] for leg in spent(uploaded)].count("benefit") == 2
        assert lifecycle.show(conn, charged[uploaded], 1)["benefit_trips"] == 0
    assert verify.run(conn, full=True).violations == []
