"""Reference data (stations, routes, points, localities), transfer-rules, and revenue per
recharge point and channel: found, not found (3), bad options (2), paging, accent-insensitive
search, every output format; transfer-rules set audited and refusing to rewrite a used period."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from recharge_cli import db
from tests.conftest import Database, new_card, run_cli


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in rows]


def test_station_names_are_the_published_ones(cli) -> None:
    portals = cli("stations", "list", "--type", "portal").json()
    assert names(portals) == ["Portal Norte", "Portal Suba", "Portal 80", "Portal Eldorado",
                              "Portal Américas", "Portal Sur", "Portal Tunal", "Portal Usme",
                              "Portal 20 de Julio"]
    cable = cli("stations", "list", "--type", "CABLE").json()
    assert names(cable) == ["Tunal", "Juan Pablo II", "Manitas", "Mirador del Paraíso"]
    assert {r["locality"] for r in cable} == {"Ciudad Bolívar"}


def test_station_name_search_ignores_accents_and_case(cli) -> None:
    assert "Calle 26" in names(cli("stations", "list", "--name", "calle 26").json())
    for query in ("bogota", "BOGOTÁ", "Bogotá"):
        assert names(cli("stations", "list", "--name", query).json()) == [
            "Concejo de Bogotá", "Ciudad Universitaria - Lotería de Bogotá"]
    assert names(cli("stations", "list", "--name", "paraiso").json()) == ["Mirador del Paraíso"]
    assert cli("stations", "list", "--name", "no such station").json() == []
    for literal in ("%", "_", "\\"):  # taken as they are, not as patterns
        assert cli("stations", "list", "--name", literal).json() == []


def test_station_filters_by_locality_name_or_id(cli, conn) -> None:
    by_name = cli("stations", "list", "--locality", "ciudad bolivar", "--limit", "10000").json()
    by_id = cli("stations", "list", "--locality", "19", "--limit", "10000").json()
    expected = [r["station_id"] for r in conn.execute(
        "SELECT station_id FROM stations WHERE locality_id = 19 ORDER BY station_id")]
    assert [r["station_id"] for r in by_name] == [r["station_id"] for r in by_id] == expected
    trunk_suba = cli("stations", "list", "--locality", "Suba", "--type", "troncal_sencilla",
                     "--name", "suba").json()
    assert names(trunk_suba)[:2] == ["Suba - Calle 95", "Suba - Calle 100"]


@pytest.mark.parametrize("command", [("stations", "list"), ("routes", "list"),
                                     ("points", "list")])
def test_keyset_paging_with_after(cli, command: tuple[str, str]) -> None:
    every = cli(*command, "--limit", "12").json()
    first = cli(*command, "--limit", "5").json()
    id_column = next(k for k in first[0] if k.endswith("_id"))
    second = cli(*command, "--limit", "7", "--after", str(first[-1][id_column])).json()
    assert first + second == every
    assert cli(*command, "--after", "2147483647").json() == []


def test_station_show_has_routes_points_and_taps_today(cli, conn) -> None:
    shown = cli("stations", "show", "--station", "35").json()
    assert (shown["name"], shown["locality"]) == ("Calle 26", "Santa Fe")
    assert shown["recharge_points"] == [{"point_id": 35, "name": "Taquilla Calle 26",
                                         "channel": "station_kiosk"}]
    routes = {r["route_id"]: r["taps"] for r in conn.execute(
        "SELECT route_id, count(*) AS taps FROM trips WHERE station_id = 35 "
        "AND route_id IS NOT NULL GROUP BY 1")}
    assert {r["route_id"]: r["taps"] for r in shown["routes"]} == routes and routes
    card = new_card(conn, balance=20_000)
    before = cli("stations", "show", "--station", "152").json()["taps_today"]
    assert cli("trips", "record", "--card", str(card), "--station", "152",
               "--route", "559").exit_code == 0
    assert cli("stations", "show", "--station", "152").json()["taps_today"] == before + 1


def test_routes_list_and_show(cli, conn) -> None:
    assert [r["code"] for r in cli("routes", "list", "--code", "c").json()] == ["C559", "C560"]
    assert [r["route_id"] for r in cli("routes", "list", "--type", "cable").json()] == [559, 560]
    assert cli("routes", "list", "--code", "T00", "--limit", "3").json()[0]["code"] == "T001"
    shown = cli("routes", "show", "--route", "559").json()
    stations = {r["station_id"]: r["taps"] for r in conn.execute(
        "SELECT station_id, count(*) AS taps FROM trips WHERE route_id = 559 GROUP BY 1")}
    assert {s["station_id"]: s["taps"] for s in shown["stations"]} == stations
    assert {s["name"] for s in shown["stations"]} <= {"Tunal", "Juan Pablo II", "Manitas",
                                                      "Mirador del Paraíso"}


def test_points_and_localities(cli, conn) -> None:
    points = cli("points", "list", "--limit", "10000").json()
    assert {p["channel"] for p in points} == {"station_kiosk", "retail", "online"}
    assert all((p["channel"] == "online") == (p["locality"] is None) for p in points)
    in_kennedy = cli("points", "list", "--locality", "kennedy", "--limit", "10000").json()
    assert [p["point_id"] for p in in_kennedy] == [r["point_id"] for r in conn.execute(
        "SELECT point_id FROM recharge_points WHERE locality_id = 8 ORDER BY point_id")]
    localities = cli("localities", "list").json()
    assert [r["locality_id"] for r in localities] == [*range(1, 21), 99]
    assert next(r for r in localities if r["name"] == "Sumapaz")["stations"] == 0
    assert sum(r["stations"] for r in localities) == conn.execute(
        "SELECT count(*) AS n FROM stations").fetchone()["n"]


@pytest.mark.parametrize("command", [
    ("stations", "list", "--name", "portal"), ("routes", "list", "--type", "CABLE"),
    ("points", "list", "--limit", "4"), ("localities", "list"), ("transfer-rules", "show")])
def test_every_list_in_every_format(cli, command: tuple[str, ...]) -> None:
    rows = cli(*command, "--format", "json").json()
    assert rows
    jsonl = cli(*command, "--format", "jsonl").stdout.splitlines()
    assert [json.loads(line) for line in jsonl] == rows
    table = list(csv.DictReader(io.StringIO(cli(*command, "--format", "csv").stdout)))
    assert len(table) == len(rows) and list(table[0]) == list(rows[0])
    result = cli(*command, "--format", "table")
    assert result.exit_code == 0 and list(rows[0])[1] in result.stdout  # a column heading


@pytest.mark.parametrize("args", [
    ("stations", "show", "--station", "999999"), ("routes", "show", "--route", "999999"),
    ("stations", "list", "--locality", "Atlántida"), ("points", "list", "--locality", "77")])
def test_not_found_is_exit_3(cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 3 and result.stdout == ""
    assert "not found" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [
    ("stations", "list", "--type", "BUS"), ("stations", "list", "--limit", "0"),
    ("stations", "list", "--limit", "abc"), ("stations", "list", "--after", "-1"),
    ("stations", "list", "--name", " "), ("stations", "show"),
    ("stations", "show", "--station", "0"), ("routes", "list", "--type", "METRO"),
    ("routes", "show", "--route", "x"), ("points", "list", "--limit", "10001"),
    ("transfer-rules", "set", "--window-minutes", "0", "--max-transfers", "2",
     "--from", "2030-01-01"),
    ("transfer-rules", "set", "--window-minutes", "90", "--max-transfers", "11",
     "--from", "2030-01-01"),
    ("transfer-rules", "set", "--window-minutes", "90", "--max-transfers", "2",
     "--from", "someday"),
    ("stats", "revenue", "--by", "network")])
def test_bad_options_are_exit_2(cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr


@pytest.fixture
def own_cli(empty_database: Database, cli_env: Database,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The CLI on a database of its own (transfer windows are shared state)."""
    monkeypatch.setenv("RECHARGE_DSN", empty_database.dsn)
    monkeypatch.setenv("RECHARGE_CACHE_PREFIX", empty_database.prefix)
    yield run_cli


def test_transfer_rules_set_adds_an_audited_period(own_cli) -> None:
    periods = own_cli("transfer-rules", "show").json()
    assert [(p["window_minutes"], p["in_force"]) for p in periods] == [(110, False), (125, True)]
    args = ("transfer-rules", "set", "--window-minutes", "90", "--max-transfers", "1",
            "--from", "2031-02-01T00:00:00-05:00", "--operator", "ana", "--key", "tw-1")
    first = own_cli(*args).json()
    assert (first["window_minutes"], first["max_transfers"], first["replayed"]) == (90, 1, False)
    assert own_cli(*args).json()["replayed"] is True
    periods = own_cli("transfer-rules", "show").json()
    assert [p["window_minutes"] for p in periods] == [110, 125, 90]
    assert periods[1]["valid_to"] == periods[2]["valid_from"] and periods[2]["valid_to"] is None
    audit = [a for a in own_cli("audit", "list").json() if a["action"] == "transfer"]
    assert len(audit) == 1 and audit[0]["operator"] == "ana"
    assert audit[0]["details"]["window_minutes"] == 90
    assert audit[0]["details"]["before"]["window_minutes"] == 125
    other = own_cli("transfer-rules", "set", "--window-minutes", "80", "--max-transfers", "1",
                    "--from", "2031-03-01", "--key", "tw-1")
    assert other.exit_code == 5
    earlier = own_cli("transfer-rules", "set", "--window-minutes", "80", "--max-transfers", "1",
                      "--from", "2031-01-01")
    assert earlier.exit_code == 4 and "must start after" in earlier.stderr


def test_transfer_rules_set_never_rewrites_a_period_trips_used(own_cli,
                                                               empty_database: Database) -> None:
    with empty_database.connect() as conn:
        conn.execute("INSERT INTO stations (station_id, name, station_type, locality_id) "
                     "VALUES (1, 'Portal Norte', 'PORTAL', 1)")
        card = new_card(conn, balance=10_000, user_id=None)
        db.call(conn, "public.record_trip", (card, 1, None, None, "tap-1"))
        boarded = conn.execute("SELECT boarding_time FROM trips").fetchone()["boarding_time"]
    before = own_cli("transfer-rules", "show").json()
    start = (boarded.replace(microsecond=0)).isoformat()
    refused = own_cli("transfer-rules", "set", "--window-minutes", "60", "--max-transfers", "1",
                      "--from", start)
    assert refused.exit_code == 4 and "cannot be rewritten" in refused.stderr
    assert own_cli("transfer-rules", "show").json() == before
    assert not [a for a in own_cli("audit", "list").json() if a["action"] == "transfer"]


def _sql_sums(conn, group: str) -> dict[str, int]:
    return {r["bucket"]: r["recharged"] for r in conn.execute(
        f"SELECT coalesce({group}, 'unknown') AS bucket, sum(r.amount) AS recharged "
        "FROM recharges r LEFT JOIN recharge_points p USING (point_id) GROUP BY 1")}


def test_revenue_by_point_and_channel_equal_sql(cli, conn) -> None:
    card = new_card(conn)
    for point in ("391", "12", None):  # online, a station kiosk, no point
        assert cli("recharge", "--card", str(card), "--amount", "7000",
                   *(("--point", point) if point else ())).exit_code == 0
    for rolled in (False, True):
        if rolled:  # the same sums from the rollups as from the live scan
            db.call(conn, "public.rollup_build")
            assert db.call(conn, "public.verify_rollups") == []
        by_point = cli("stats", "revenue", "--by", "point", "--fresh").json()["rows"]
        assert {r["bucket"]: r["recharged"] for r in by_point} == _sql_sums(
            conn, "r.point_id::text")
        assert [r["bucket"] for r in by_point][:3] == ["1", "2", "3"]
        assert all(r["fares"] is None and r["legs"] is None for r in by_point)
        by_channel = cli("stats", "revenue", "--by", "channel", "--fresh").json()["rows"]
        assert {r["bucket"]: r["recharged"] for r in by_channel} == _sql_sums(conn, "p.channel")
        assert {r["bucket"] for r in by_channel} == {"online", "retail", "station_kiosk",
                                                     "unknown"}
    total = cli("stats", "revenue", "--fresh").json()["recharged"]
    assert sum(r["recharged"] for r in by_channel) == total
