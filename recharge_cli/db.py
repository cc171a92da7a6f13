"""PostgreSQL connections and calls to the stored functions (SQL itself lives in sql/)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from recharge_cli.jsonable import Row


def connect(dsn: str, *, connect_timeout: int = 5, prepare_threshold: int | None = 5,
            application_name: str = "recharge") -> psycopg.Connection[Row]:
    """An autocommit connection: each stored-function call is its own transaction."""
    conn = psycopg.connect(dsn, autocommit=True, row_factory=dict_row,
                           connect_timeout=connect_timeout, application_name=application_name)
    conn.prepare_threshold = prepare_threshold
    return conn


def call(conn: psycopg.Connection[Row], function: str, args: Sequence[Any] = ()) -> list[Row]:
    """`SELECT * FROM function(args…)`: one round trip, rows as dicts. Results come in
    binary, which both sides convert faster than text (timestamps most of all)."""
    placeholders = ", ".join(["%s"] * len(args))
    return conn.execute(f"SELECT * FROM {function}({placeholders})", tuple(args),
                        binary=True).fetchall()


def time_zone(conn: psycopg.Connection[Row]) -> str:
    """The session's time zone: the one days and dates in statistics are counted in."""
    row = conn.execute("SELECT current_setting('TimeZone') AS tz").fetchone()
    assert row is not None
    return row["tz"]


def replica_lag(conn: psycopg.Connection[Row]) -> float | None:
    """Seconds a streaming replica's data is behind its primary (0 when it has replayed all
    it received); None on a primary."""
    row = conn.execute(
        "SELECT CASE WHEN pg_is_in_recovery() THEN CASE "
        "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
        "ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END "
        "END::float8 AS lag").fetchone()
    return None if row is None or row["lag"] is None else round(float(row["lag"]), 3)


def call_one(conn: psycopg.Connection[Row], function: str, args: Sequence[Any] = ()) -> Row | None:
    rows = call(conn, function, args)
    return rows[0] if rows else None


def write(conn: psycopg.Connection[Row], function: str, args: Sequence[Any], key: str) -> Row:
    """One write (a stored function that moves money or changes a card), idempotent by `key`.

    Ctrl-C/SIGTERM wait until the answer is in, so the outcome is always known to us; a
    connection lost after sending is OutcomeUnknown (exit 75) naming the key to retry with.
    """
    from recharge_cli import interrupts
    from recharge_cli.errors import outcome_unknown

    try:
        with interrupts.deferred():
            row = call_one(conn, function, args)
    except psycopg.Error as exc:
        error = outcome_unknown(exc, key)
        if error is None:
            raise
        raise error from exc
    assert row is not None, f"{function} returned no row"
    return row
