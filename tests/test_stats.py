"""Statistics equal independent SQL; cache, --fresh, stampede protection, prefix-only flush."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import redis

from tests import workers
from tests.conftest import Database, new_card


def test_revenue_total_matches_sql(cli, conn) -> None:
    result = cli("stats", "revenue", "--fresh").json()
    expected = conn.execute("SELECT (SELECT sum(amount) FROM recharges) AS recharged, "
                            "(SELECT sum(fare_charged) FROM trips) AS fares").fetchone()
    assert (result["recharged"], result["fares"]) == (expected["recharged"], expected["fares"])
    assert result["source"] == "db" and result["computed_at"] and result["time_zone"]


def test_revenue_by_day_and_locality_match_sql(cli, conn) -> None:
    by_day = cli("stats", "revenue", "--from", "2026-11-16", "--to", "2026-11-22", "--by", "day",
                 "--fresh").json()["rows"]
    fares = {r["d"]: r["f"] for r in conn.execute(
        "SELECT to_char(boarding_time, 'YYYY-MM-DD') AS d, sum(fare_charged) AS f FROM trips "
        "WHERE boarding_time >= '2026-11-16' AND boarding_time < '2026-11-23' GROUP BY 1")}
    assert {r["bucket"]: r["fares"] for r in by_day if r["fares"]} == fares
    by_locality = cli("stats", "revenue", "--by", "locality", "--fresh").json()["rows"]
    recharged = conn.execute(
        "SELECT sum(r.amount) AS s FROM recharges r JOIN recharge_points p USING (point_id) "
        "JOIN localities l USING (locality_id) WHERE l.name = 'Kennedy'").fetchone()["s"]
    assert next(r for r in by_locality if r["bucket"] == "Kennedy")["recharged"] == recharged


def test_trips_and_users_match_sql(cli, conn) -> None:
    total = cli("trips", "total", "--from", "2026-11-20", "--to", "2026-11-20", "--fresh").json()
    row = conn.execute("SELECT count(*) AS legs, count(*) FILTER (WHERE leg_number = 1) AS j, "
                       "count(*) FILTER (WHERE is_transfer) AS t FROM trips WHERE boarding_time "
                       ">= '2026-11-20' AND boarding_time < '2026-11-21'").fetchone()
    assert (total["legs"], total["journeys"], total["transfers"]) == (row["legs"], row["j"], row["t"])
    by_hour = cli("stats", "trips", "--by", "hour", "--fresh").json()["rows"]
    assert sum(r["legs"] for r in by_hour) == conn.execute("SELECT count(*) AS n FROM trips"
                                                          ).fetchone()["n"]
    active = cli("stats", "users", "active", "--from", "2026-11-20", "--fresh").json()
    assert active["active_users"] == conn.execute(
        "SELECT count(DISTINCT c.user_id) AS n FROM cards c JOIN trips t USING (card_id) "
        "WHERE t.boarding_time >= '2026-11-20'").fetchone()["n"]
    assert active["cards_used"] == conn.execute(  # not active_cards: that is `users count`'s
        "SELECT count(DISTINCT card_id) AS n FROM trips WHERE boarding_time >= '2026-11-20'"
    ).fetchone()["n"] and "active_cards" not in active
    count = cli("stats", "users", "count", "--fresh").json()
    assert count["users"] == conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"]
    latest = cli("stats", "users", "latest", "--limit", "3").json()["rows"]
    assert len(latest) == 3 and latest[0]["registered_at"] >= latest[1]["registered_at"]


def test_second_call_is_cached_and_fresh_sees_a_recharge(cli, conn) -> None:
    cli("stats", "revenue", "--fresh")
    cached = cli("stats", "revenue").json()
    assert cached["source"] == "cache"
    cli("recharge", "--card", str(new_card(conn)), "--amount", "5000")
    assert cli("stats", "revenue").json()["recharged"] == cached["recharged"]  # within the TTL
    fresh = cli("stats", "revenue", "--fresh").json()
    assert fresh["source"] == "db" and fresh["recharged"] == cached["recharged"] + 5000


def test_bad_dates_exit_2(cli) -> None:
    for args in (["stats", "revenue", "--from", "2026-02-30"],
                 ["stats", "trips", "--from", "2026-11-22", "--to", "2026-11-01"],
                 ["trips", "total", "--to", "yesterday"], ["stats", "revenue", "--by", "week"]):
        result = cli(*args)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, args


def test_twenty_processes_missing_together_recompute_once(database: Database) -> None:
    prefix = f"{database.prefix}stampede-{uuid.uuid4().hex[:6]}:"
    start_at = time.time() + 3
    with ProcessPoolExecutor(20, mp_context=get_context("spawn")) as pool:
        sources = list(pool.map(workers.read_statistic, [database.dsn] * 20,
                                [database.redis_url] * 20, [prefix] * 20, [start_at] * 20))
    assert sources.count("db") == 1 and sources.count("cache") == 19


def test_flush_deletes_only_the_prefix(cli, cli_env: Database) -> None:
    client = redis.Redis.from_url(cli_env.redis_url)
    foreign = f"someone-else:{uuid.uuid4().hex}"
    client.set(foreign, "keep me", ex=60)
    cli("stats", "revenue")
    assert cli("cache", "stats").json()["keys"] >= 1
    flushed = cli("cache", "flush").json()
    assert flushed["deleted"] >= 1
    assert client.get(foreign) == b"keep me"
    left = [key.decode() for key in client.scan_iter(match=cli_env.prefix + "*")]
    assert all(key.endswith((":ver", "epoch", "history")) for key in left), left  # bookkeeping
    assert cli("cache", "flush", "--all").json()["deleted"] == len(left)
    assert cli("cache", "stats").json()["keys"] == 0
    client.delete(foreign)


def test_cache_warm_precomputes(cli) -> None:
    warmed = cli("cache", "warm")
    assert warmed.exit_code == 0 and len(warmed.json()) >= 10
    assert cli("stats", "trips", "--by", "route").json()["source"] == "cache"


def test_revenue_is_net_of_a_reversal(cli, conn, tmp_path) -> None:
    """A reversal is money out on its own day and point: recharged stays gross, reversed
    counts it, net is their difference, in stats revenue, the rollups and report daily."""
    today = conn.execute("SELECT current_date::text AS d").fetchone()["d"]
    card = new_card(conn, balance=0, user_id=1)

    def point_revenue() -> dict[str, int]:
        rows = cli("stats", "revenue", "--from", today, "--to", today, "--by", "point",
                   "--fresh").json()["rows"]
        row = next((r for r in rows if r["bucket"] == "17"), None)
        return {k: row[k] if row else 0 for k in ("recharged", "reversed", "net", "recharges",
                                                  "reversals")}

    before = point_revenue()
    total_before = cli("stats", "revenue", "--fresh").json()
    kept = cli("recharge", "--card", str(card), "--amount", "4000", "--point", "17").json()
    undone = cli("recharge", "--card", str(card), "--amount", "9000", "--point", "17").json()
    reversal = cli("reverse", "--card", str(card), "--recharge", str(undone["recharge_id"]),
                   "--reason", "wrong card").json()
    assert reversal["balance"] == kept["balance"] == 4000
    after = point_revenue()
    assert {k: after[k] - before[k] for k in after} == {
        "recharged": 13000, "reversed": 9000, "net": 4000, "recharges": 2, "reversals": 1}
    total = cli("stats", "revenue", "--fresh").json()
    assert total["net"] == total["recharged"] - total["reversed"]
    assert total["net"] - total_before["net"] == 4000
    # the all-time totals equal the ledger's movements of each kind
    sums = conn.execute("SELECT sum(amount) FILTER (WHERE kind = 'recharge') AS recharged, "
                        "-sum(amount) FILTER (WHERE kind = 'correction') AS reversed FROM ledger"
                        ).fetchone()
    assert (total["recharged"], total["reversed"]) == (sums["recharged"], sums["reversed"])
    day = cli("report", "daily", "--date", today, "--out", str(tmp_path / "daily")).json()
    assert day["reversed"] >= 9000 and day["net"] == day["recharged"] - day["reversed"]
    assert cli("db", "rollup").exit_code == 0
    assert conn.execute("SELECT count(*) AS n FROM verify_rollups()").fetchone()["n"] == 0
