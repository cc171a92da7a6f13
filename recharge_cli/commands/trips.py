"""recharge trips record | list"""

from __future__ import annotations

import typer

from recharge_cli import cards
from recharge_cli.commands import parsers
from recharge_cli.commands.options import (
    CARD,
    DAY_FROM,
    DAY_TO,
    FRESH,
    KEY,
    WAIT_OPTION,
    lock_option,
    whole_number,
)
from recharge_cli.commands.shared import announce_key, runtime, show_statistic

app = typer.Typer(no_args_is_help=True, help="Record, list and total trips.")


@app.command("total")
def total(ctx: typer.Context, date_from: str | None = DAY_FROM, date_to: str | None = DAY_TO,
          fresh: bool = FRESH) -> None:
    """Trip totals (legs, journeys, transfers, completed, fares)."""
    show_statistic(runtime(ctx), "trips", {**parsers.window(date_from, date_to), "by": "total"},
                   fresh)


@app.command("record")
def record(
    ctx: typer.Context,
    card: int = CARD,
    station: int = typer.Option(..., "--station", parser=whole_number, help="boarding station id"),
    route: int | None = typer.Option(None, "--route", parser=whole_number, help="route id"),
    at: str | None = typer.Option(None, "--at", help="boarding time, ISO 8601 (default: now)"),
    key: str | None = KEY,
    lock: str | None = lock_option(),
    wait: float = WAIT_OPTION,
) -> None:
    """A boarding tap: charges the fare (or transfer fare) and records the leg.

    \b
    Examples:
      recharge trips record --card 789 --station 5 --route 1
      recharge trips record --card 789 --station 5 --at 2026-11-23T07:45
    """
    rt = runtime(ctx)
    with rt.locked(lock, wait):
        result = cards.record_trip(rt.db(), rt.cache(), card, station, route, parsers.time(at),
                                   key, announce_key(rt))
    rt.output.emit(result)


@app.command("list")
def list_trips(
    ctx: typer.Context,
    card: int = CARD,
    limit: int = typer.Option(20, "--limit", parser=whole_number, help="how many legs, newest first"),
) -> None:
    """A card's latest trip legs (cache-aside).

    \b
    Examples:
      recharge trips list --card 789 --limit 10
    """
    rt = runtime(ctx)
    result = cards.trips(rt.db(), rt.cache(), card, limit)
    rt.output.message(f"source: {result['source']}")
    rt.output.emit(result["trips"])
