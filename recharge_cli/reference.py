"""Reference data: stations, routes, recharge points, localities (reads), and the transfer
windows (`transfer-rules set`: an audited new validity period, idempotent by key)."""

from __future__ import annotations

import psycopg

from recharge_cli import db
from recharge_cli.errors import InvalidInput
from recharge_cli.inputs import Announce, check_id, idempotency_key
from recharge_cli.jsonable import Row
from recharge_cli.lifecycle import MAX_LIMIT, operator

STATION_TYPES = ("PORTAL", "TRONCAL_SENCILLA", "TRONCAL_INTERMEDIA", "CABLE", "ZONAL_PARADERO")
ROUTE_TYPES = ("TRONCAL", "ZONAL_UCE", "ALIMENTADORA", "CABLE")
MAX_ID = 2**31 - 1


def _kind(value: str | None, option: str, allowed: tuple[str, ...]) -> str | None:
    """A type option, case-insensitive; exit 2 naming the allowed values."""
    if value is None:
        return None
    kind = value.strip().upper()
    if kind not in allowed:
        raise InvalidInput(f"unknown {option} {value!r}: use {', '.join(allowed)}")
    return kind


def _text(value: str | None, option: str) -> str | None:
    """A search text: stripped, 1-100 characters."""
    if value is None:
        return None
    if not value.strip() or len(value) > 100:
        raise InvalidInput(f"{option} must be 1-100 characters")
    return value.strip()


def _page(limit: int, after: int | None) -> None:
    check_id(limit, "--limit", MAX_LIMIT)
    if after is not None and not 0 <= after <= MAX_ID:
        raise InvalidInput("--after must be an id (0 or more) from the previous page")


def stations(conn: psycopg.Connection[Row], name: str | None, kind: str | None,
             locality: str | None, limit: int, after: int | None) -> list[Row]:
    _page(limit, after)
    return db.call(conn, "public.stations_list",
                   (_text(name, "--name"), _kind(kind, "--type", STATION_TYPES),
                    _text(locality, "--locality"), limit, after))


def station(conn: psycopg.Connection[Row], station_id: int) -> Row:
    check_id(station_id, "station id", MAX_ID)
    row = db.call_one(conn, "public.station_show", (station_id,))
    assert row is not None
    return row


def routes(conn: psycopg.Connection[Row], code: str | None, kind: str | None, limit: int,
           after: int | None) -> list[Row]:
    _page(limit, after)
    return db.call(conn, "public.routes_list",
                   (_text(code, "--code"), _kind(kind, "--type", ROUTE_TYPES), limit, after))


def route(conn: psycopg.Connection[Row], route_id: int) -> Row:
    check_id(route_id, "route id", MAX_ID)
    row = db.call_one(conn, "public.route_show", (route_id,))
    assert row is not None
    return row


def points(conn: psycopg.Connection[Row], locality: str | None, limit: int,
           after: int | None) -> list[Row]:
    _page(limit, after)
    return db.call(conn, "public.points_list", (_text(locality, "--locality"), limit, after))


def localities(conn: psycopg.Connection[Row]) -> list[Row]:
    return db.call(conn, "public.localities_list")


def transfer_rules(conn: psycopg.Connection[Row]) -> list[Row]:
    return db.call(conn, "public.transfer_rules_show")


def set_transfer_rule(conn: psycopg.Connection[Row], window_minutes: int, max_transfers: int,
                      valid_from: str, who: str | None, key: str | None = None,
                      announce: Announce | None = None) -> Row:
    if not 1 <= window_minutes <= 1440:
        raise InvalidInput(f"--window-minutes must be 1 to 1440, got {window_minutes}")
    if not 0 <= max_transfers <= 10:
        raise InvalidInput(f"--max-transfers must be 0 to 10, got {max_transfers}")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.transfer_rule_set",
                   (window_minutes, max_transfers, valid_from, operator(who), key), key)
    return {**row, "idempotency_key": key}
