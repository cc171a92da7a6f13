"""recharge trips record | list"""

from __future__ import annotations

from pathlib import Path

import typer

from recharge_cli import cards, parsers, uploads
from recharge_cli.commands.options import (
    CARD,
    DAY_FROM,
    DAY_TO,
    FRESH,
    KEY,
    WAIT_OPTION,
    card_option,
    lock_option,
    whole_number,
)
from recharge_cli.commands.shared import announce_key, finish_bulk, runtime, show_statistic
from recharge_cli.errors import InvalidInput
from recharge_cli.inputs import writable_file

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
    card: int | None = card_option(None),
    station: int | None = typer.Option(None, "--station", parser=whole_number,
                                       help="boarding station id"),
    route: int | None = typer.Option(None, "--route", parser=whole_number, help="route id"),
    at: str | None = typer.Option(None, "--at", help="boarding time, ISO 8601 (default: now)"),
    key: str | None = KEY,
    from_csv: Path | None = typer.Option(None, "--from-csv", help="validator upload: a CSV file "
                                         f"with columns {uploads.COLUMNS}; - reads stdin"),
    rejects: Path | None = typer.Option(None, "--rejects", help="upload: write rejected rows "
                                        "here as CSV instead of stderr"),
    dry_run: bool = typer.Option(False, "--dry-run", help="upload: apply every rule, report "
                                 "what would happen, move nothing"),
    lock: str | None = lock_option(),
    wait: float = WAIT_OPTION,
) -> None:
    """A boarding tap: charges the fare (or transfer fare) and records the leg; with
    --from-csv, every tap of a validator's upload, each card's taps in boarding-time order.

    A tap is judged as of its boarding time: charged if the card was usable then (even if
    it was blocked, lost or replaced since: a replaced card's tap is charged to its
    replacement), refused if it was not, or if it is older than the taps age limit.
    Uploads hold the lock 'trips-upload' unless --lock names another ('' for none).

    \b
    Examples:
      recharge trips record --card 789 --station 5 --route 1
      recharge trips record --card 789 --station 5 --at 2026-11-23T07:45
      recharge trips record --from-csv validator-17.csv --rejects rejected.csv [--dry-run]
    """
    rt = runtime(ctx)
    if from_csv is not None:
        if any(v is not None for v in (card, station, route, at, key)):
            raise InvalidInput("--from-csv cannot be combined with --card, --station, --route, "
                               "--at or --key")
        if rejects is not None:
            writable_file(rejects, "--rejects")
        with rt.locked("trips-upload" if lock is None else lock, wait):
            summary = uploads.record_file(rt.more_db, rt.cache(), from_csv, rejects, rt.output,
                                          dry_run)
        finish_bulk(rt, summary, rejects)
    if card is None or station is None:
        raise InvalidInput("--card and --station are required (or use --from-csv)")
    if dry_run or rejects is not None:
        raise InvalidInput("--dry-run and --rejects go with --from-csv")
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
