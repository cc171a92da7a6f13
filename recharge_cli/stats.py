"""Statistics: stored-function aggregates behind the stampede-safe aggregate cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import psycopg

from recharge_cli import db
from recharge_cli.aggregates import Aggregates
from recharge_cli.cache import Cache
from recharge_cli.errors import InvalidInput
from recharge_cli.jsonable import Row


@dataclass(frozen=True)
class Statistic:
    """A named statistic: its stored function and the parameters it takes (in order), how it
    is grouped, whether it lists rows, and how long it stays fresh."""

    name: str
    function: str
    groupings: tuple[str, ...]
    ttl: int
    parameters: tuple[str, ...] = ("from", "to")
    listing: bool = False  # a list of rows even without --by (else one row, shown as an object)

    @property
    def dated(self) -> bool:
        return "from" in self.parameters

    def arguments(self, params: Row) -> tuple[Any, ...]:
        """The stored function's arguments for these parameters."""
        return tuple(params.get(name) for name in self.parameters)

    def one_object(self, params: Row) -> bool:
        """Whether the result is one row, shown as an object (a total, or a single count)."""
        return params.get("by") == "total" or not (self.groupings or self.listing)


STATISTICS = {
    "revenue": Statistic("revenue", "public.stats_revenue",
                         ("total", "day", "locality", "point", "channel"), 60, ("from", "to", "by")),
    "trips": Statistic("trips", "public.stats_trips",
                       ("total", "day", "hour", "locality", "route", "beneficiary"), 60,
                       ("from", "to", "by")),
    "users_count": Statistic("users_count", "public.stats_users_count", (), 300, ()),
    "users_active": Statistic("users_active", "public.stats_users_active", (), 300),
    "users_latest": Statistic("users_latest", "public.stats_users_latest", (), 60, ("limit",),
                              listing=True),
}
# What `cache warm` precomputes: the statistics operators and reports read all day.
COMMON = [("revenue", {"by": "total"}), ("revenue", {"by": "day"}),
          ("revenue", {"by": "locality"}), ("trips", {"by": "total"}),
          ("trips", {"by": "day"}), ("trips", {"by": "hour"}), ("trips", {"by": "locality"}),
          ("trips", {"by": "route"}), ("users_count", {}), ("users_active", {}),
          ("users_latest", {"limit": 10})]


def compute(conn: psycopg.Connection[Row], name: str, params: Row) -> Row:
    """Run the statistic's stored function now; rows plus the database's time zone."""
    stat = STATISTICS[name]
    rows = db.call(conn, stat.function, stat.arguments(params))
    return {"rows": rows, "time_zone": db.time_zone(conn), "replica_lag": db.replica_lag(conn)}


def get(conn: psycopg.Connection[Row], cache: Cache, name: str, params: Row,
        fresh: bool = False, ttl: int | None = None) -> Row:
    """A statistic as one object: parameters, rows, time zone, source, computed_at. `ttl`
    replaces the statistic's own (a benchmark's shortened expiry)."""
    stat = STATISTICS[name]
    if stat.groupings and params.get("by") not in stat.groupings:
        raise InvalidInput(f"--by must be one of {', '.join(stat.groupings)}")
    data, source, computed_at = Aggregates(cache).get(cache.stats_key(name, params),
                                                      partial(compute, conn, name, params),
                                                      ttl or stat.ttl, fresh=fresh)
    result: Row = {"statistic": name, **params}
    rows = data["rows"]
    if stat.one_object(params):
        result.update({k: v for k, v in rows[0].items() if k != "bucket"})
    else:
        result["rows"] = rows
    result.update({"time_zone": data["time_zone"], "source": source, "computed_at": computed_at})
    if data.get("replica_lag") is not None:  # computed on a read replica this far behind
        result["replica_lag_seconds"] = data["replica_lag"]
    return result


def build_rollups(conn: psycopg.Connection[Row]) -> Row:
    """Roll up everything older than ~2 hours and rebuild dirty days (sql/functions/25)."""
    started = time.perf_counter()
    row = db.call_one(conn, "public.rollup_build")
    assert row is not None
    return {**row, "seconds": round(time.perf_counter() - started, 2)}
