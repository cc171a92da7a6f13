"""`recharge report daily` on the demo data: figures equal SQL, files written, verify gates the exit."""

from __future__ import annotations

import csv
from pathlib import Path

from recharge_cli.locks import LOCK_CLASS
from recharge_cli.verify import INVARIANTS
from tests.conftest import new_card

DAY = "2026-11-20"
IN_DAY = "%(col)s >= '2026-11-20'::date::timestamptz AND %(col)s < '2026-11-21'::date::timestamptz"


def test_daily_report_figures_equal_sql(cli, conn, tmp_path: Path) -> None:
    out = tmp_path / "daily"
    result = cli("report", "daily", "--date", DAY, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    body = result.json()
    trips = conn.execute(
        "SELECT count(*) AS legs, count(*) FILTER (WHERE is_transfer) AS transfers, "
        "sum(fare_charged) AS fares FROM trips WHERE " + IN_DAY % {"col": "boarding_time"}).fetchone()
    money = conn.execute("SELECT coalesce(sum(amount), 0) AS recharged, count(*) AS n FROM recharges "
                         "WHERE " + IN_DAY % {"col": "recharged_at"}).fetchone()
    assert (body["legs"], body["transfers"], body["fares"]) == (trips["legs"], trips["transfers"],
                                                                trips["fares"])
    assert (body["recharged"], body["recharges"]) == (money["recharged"], money["n"])
    assert body["verify_violations"] == 0 and body["legs"] > 1_000

    top = conn.execute("SELECT station_id, count(*) AS legs FROM trips WHERE "
                       + IN_DAY % {"col": "boarding_time"}
                       + " GROUP BY station_id ORDER BY legs DESC, station_id LIMIT 1").fetchone()
    stations = list(csv.DictReader((out / "stations.csv").open()))
    assert (int(stations[0]["station_id"]), int(stations[0]["legs"])) == (top["station_id"], top["legs"])
    days = list(csv.DictReader((out / "days.csv").open()))
    assert [d["day"] for d in days][-1] == DAY and len(days) == 8
    statuses = {r["status"]: int(r["cards"]) for r in csv.DictReader((out / "cards_by_status.csv").open())}
    assert statuses["lost"] == conn.execute("SELECT count(*) AS n FROM cards WHERE status = 'lost'"
                                            ).fetchone()["n"]
    for png in ("days.png", "stations.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    assert f"# Daily report {DAY}" in text and "**clean**" in text and "](days.png)" in text
    assert f"| trip legs | {trips['legs']:,} |" in text


def test_daily_report_exits_1_when_verify_fails(cli, conn, tmp_path: Path) -> None:
    conn.execute("UPDATE entity_counts SET users = users + 1")
    try:
        result = cli("report", "daily", "--date", DAY, "--out", str(tmp_path), "--no-plot")
    finally:
        conn.execute("UPDATE entity_counts SET users = users - 1")
    assert result.exit_code == 1 and "verify found 1 violation" in result.stderr
    text = (tmp_path / "report.md").read_text()
    assert "**failed**: 1 violation(s) of 1 invariant(s)" in text
    assert "| totals agree " in text and "| failed   |" in text


def test_daily_report_md_reads_the_same_everywhere(cli, tmp_path: Path) -> None:
    """verify as clean/failed (never True), the transfer share as one percentage in both
    tables, and the day named once in the JSON."""
    result = cli("report", "daily", "--date", DAY, "--out", str(tmp_path), "--no-plot")
    body = result.json()
    assert "day" not in body and body["date"] == DAY
    text = (tmp_path / "report.md").read_text()
    assert "True" not in text and "False" not in text
    verify = text.split("## Verify")[1].split("##")[0]
    assert verify.count("| clean ") == len(INVARIANTS) and "| result " in verify
    share = f"{body['transfer_share']:.1%}"
    assert f"| transfer share | {share} |" in text
    last_day = next(line for line in text.splitlines() if line.startswith(f"| {DAY} "))
    assert last_day.rstrip(" |").endswith(share)
    assert str(body["transfer_share"]) not in text  # no raw fraction anywhere
    days = list(csv.DictReader((tmp_path / "days.csv").open()))
    assert float(days[-1]["transfer_share"]) == body["transfer_share"]  # the CSV keeps numbers


def test_daily_report_takes_its_lock_by_default(cli, conn, tmp_path: Path) -> None:
    conn.execute("SELECT pg_advisory_lock(%s, hashtext('report-daily'))", (LOCK_CLASS,))
    try:
        assert cli("report", "daily", "--date", DAY, "--out", str(tmp_path)).exit_code == 75
        assert cli("report", "daily", "--date", DAY, "--out", str(tmp_path), "--no-plot",
                   "--lock", "").exit_code == 0
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s, hashtext('report-daily'))", (LOCK_CLASS,))
    assert cli("report", "daily", "--date", "2026-13-01").exit_code == 2


def test_daily_report_counts_the_days_status_changes(cli, conn, tmp_path: Path) -> None:
    today = conn.execute("SELECT current_date AS d").fetchone()["d"].isoformat()
    before = conn.execute("SELECT count(*) AS n FROM card_status_changes WHERE new_status = 'lost' "
                          "AND changed_at >= current_date::timestamptz").fetchone()["n"]
    card = new_card(conn)
    conn.execute("UPDATE cards SET status = 'lost' WHERE card_id = %s", (card,))
    conn.execute("UPDATE cards SET status = 'lost' WHERE card_id = %s", (card,))  # no change: not counted
    assert cli("report", "daily", "--date", today, "--out", str(tmp_path), "--no-plot").exit_code == 0
    rows = {r["status"]: r for r in csv.DictReader((tmp_path / "cards_by_status.csv").open())}
    assert int(rows["lost"]["changed_to_on_day"]) == before + 1


def test_a_day_without_data_warns_and_keeps_every_csv_header(cli, tmp_path) -> None:
    result = cli("report", "daily", "--date", "2030-01-01", "--out", str(tmp_path / "r"),
                 "--no-plot", "--lock", "")
    assert result.exit_code == 0
    assert "in the future" in result.stderr and "no trips and no recharges" in result.stderr
    assert (tmp_path / "r" / "points.csv").read_text().startswith("point_id,point,locality")
    assert (tmp_path / "r" / "stations.csv").read_text().startswith("station_id,station")
