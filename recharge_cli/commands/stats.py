"""recharge stats revenue | trips | users …, recharge trips total"""

from __future__ import annotations

from typing import Any

import typer

from recharge_cli import stats
from recharge_cli.commands import choice, parsers, runtime
from recharge_cli.runtime import Runtime

app = typer.Typer(no_args_is_help=True, help="Revenue, trips and users statistics.")
users_app = typer.Typer(no_args_is_help=True)
app.add_typer(users_app, name="users", help="User counts, active users, latest registrations.")

FROM = typer.Option(None, "--from", help="first day, YYYY-MM-DD (default: all data)")
TO = typer.Option(None, "--to", help="last day, inclusive, YYYY-MM-DD (default: all data)")
FRESH = typer.Option(False, "--fresh", help="recompute now and refresh the cache")
META = ("statistic", "source", "computed_at", "time_zone", "replica_lag_seconds")


def show(rt: Runtime, name: str, params: dict[str, Any], fresh: bool) -> None:
    """Compute (or read from cache) one statistic and render it."""
    result = stats.get(rt.read_db(), rt.cache(), name, params, fresh=fresh)
    if rt.output.resolved_format == "json":
        rt.output.emit(result)
        return
    lag = result.get("replica_lag_seconds")
    rt.output.message(f"{name}: source {result['source']}, computed at {result['computed_at']}, "
                      f"time zone {result['time_zone']}"
                      + ("" if lag is None else f", on a replica {lag:g} s behind"))
    if "rows" in result:
        rt.output.emit(result["rows"])
    else:
        rt.output.emit({k: v for k, v in result.items() if k not in META})


def dated(date_from: str | None, date_to: str | None) -> dict[str, Any]:
    first, last = parsers.date_range(date_from, date_to)
    return {"from": first, "to": last}


@app.command("revenue")
def revenue(ctx: typer.Context, date_from: str | None = FROM, date_to: str | None = TO,
            by: str = choice("total", "--by", stats.STATISTICS["revenue"].groupings,
                             "one total, or per day, locality, recharge point or channel"),
            fresh: bool = FRESH) -> None:
    """Money in by recharges (recharged, gross), reversals of recharges (reversed), their
    difference (net), and fares charged for trips (fares).

    --by point and --by channel (station_kiosk, retail, online) settle the recharges per
    recharge point and per network; fares are not collected there (empty).

    \b
    Examples:
      recharge stats revenue
      recharge stats revenue --from 2026-11-01 --to 2026-11-30 --by day --format csv
      recharge stats revenue --by channel
    """
    show(runtime(ctx), "revenue", {**dated(date_from, date_to), "by": by}, fresh)


@app.command("trips")
def trips(ctx: typer.Context, date_from: str | None = FROM, date_to: str | None = TO,
          by: str = choice("total", "--by", stats.STATISTICS["trips"].groupings,
                           "one total, or per day, hour, locality, route or beneficiary "
                           "(general, older_adult, disability, poverty: who paid the leg)"),
          fresh: bool = FRESH) -> None:
    """Trip legs, journeys, transfers and completed journeys.

    \b
    Examples:
      recharge stats trips --by locality --from 2026-11-23
    """
    show(runtime(ctx), "trips", {**dated(date_from, date_to), "by": by}, fresh)


def trips_total(ctx: typer.Context, date_from: str | None = FROM, date_to: str | None = TO,
                fresh: bool = FRESH) -> None:
    """Trip totals (legs, journeys, transfers, completed, fares)."""
    show(runtime(ctx), "trips", {**dated(date_from, date_to), "by": "total"}, fresh)


@users_app.command("count")
def users_count(ctx: typer.Context, fresh: bool = FRESH) -> None:
    """Registered users, users with cards, cards and active cards."""
    show(runtime(ctx), "users_count", {}, fresh)


@users_app.command("active")
def users_active(ctx: typer.Context, date_from: str | None = FROM, date_to: str | None = TO,
                 fresh: bool = FRESH) -> None:
    """Distinct users with an active card that boarded in the window."""
    show(runtime(ctx), "users_active", dated(date_from, date_to), fresh)


@users_app.command("latest")
def users_latest(ctx: typer.Context,
                 limit: int = typer.Option(10, "--limit", min=1, max=1000, help="how many"),
                 fresh: bool = FRESH) -> None:
    """The latest registered users."""
    show(runtime(ctx), "users_latest", {"limit": limit}, fresh)
