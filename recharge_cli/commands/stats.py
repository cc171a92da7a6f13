"""recharge stats revenue | trips | users …, recharge trips total"""

from __future__ import annotations

import typer

from recharge_cli import parsers, stats
from recharge_cli.commands.options import DAY_FROM as FROM
from recharge_cli.commands.options import DAY_TO as TO
from recharge_cli.commands.options import FRESH, choice
from recharge_cli.commands.shared import runtime
from recharge_cli.commands.shared import show_statistic as show

app = typer.Typer(no_args_is_help=True, help="Revenue, trips and users statistics.")
users_app = typer.Typer(no_args_is_help=True)
app.add_typer(users_app, name="users", help="User counts, active users, latest registrations.")

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
    show(runtime(ctx), "revenue", {**parsers.window(date_from, date_to), "by": by}, fresh)


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
    show(runtime(ctx), "trips", {**parsers.window(date_from, date_to), "by": by}, fresh)


@users_app.command("count")
def users_count(ctx: typer.Context, fresh: bool = FRESH) -> None:
    """Registered users, users with cards, cards and active cards."""
    show(runtime(ctx), "users_count", {}, fresh)


@users_app.command("active")
def users_active(ctx: typer.Context, date_from: str | None = FROM, date_to: str | None = TO,
                 fresh: bool = FRESH) -> None:
    """Distinct users with an active card that boarded in the window."""
    show(runtime(ctx), "users_active", parsers.window(date_from, date_to), fresh)


@users_app.command("latest")
def users_latest(ctx: typer.Context,
                 limit: int = typer.Option(10, "--limit", min=1, max=1000, help="how many"),
                 fresh: bool = FRESH) -> None:
    """The latest registered users."""
    show(runtime(ctx), "users_latest", {"limit": limit}, fresh)
