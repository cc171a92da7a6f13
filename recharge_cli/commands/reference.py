"""recharge stations list|show | routes list|show | points list | localities list |
transfer-rules show|set"""

from __future__ import annotations

import typer

from recharge_cli import parsers, reference
from recharge_cli.commands.options import KEY, OPERATOR, VALID_FROM, choice, whole_number
from recharge_cli.commands.shared import announce_key, runtime

stations = typer.Typer(no_args_is_help=True, help="Stations: search by name, type, locality.")
routes = typer.Typer(no_args_is_help=True, help="Routes: trunk, feeder, zonal, cable.")
points = typer.Typer(no_args_is_help=True, help="Recharge points and their networks.")
localities = typer.Typer(no_args_is_help=True, help="Bogotá's localities.")
transfer_rules = typer.Typer(no_args_is_help=True,
                             help="Transfer windows by validity period (set is audited).")

LIMIT = typer.Option(50, "--limit", parser=whole_number, help="rows per page (1-10000)")
AFTER = typer.Option(None, "--after", parser=whole_number,
                     help="the last id of the previous page (keyset paging)")
LOCALITY = typer.Option(None, "--locality", help="locality id or name (accents ignored)")


@stations.command("list")
def stations_list(ctx: typer.Context,
                  name: str | None = typer.Option(None, "--name", help="part of the name; "
                                                  "accents and case ignored"),
                  kind: str | None = choice(None, "--type", reference.STATION_TYPES,
                                            "station type"),
                  locality: str | None = LOCALITY, limit: int = LIMIT,
                  after: int | None = AFTER) -> None:
    """Stations by id (example: recharge stations list --name "calle 26").

    Pass the last station_id shown as --after for the next page."""
    rt = runtime(ctx)
    rt.output.emit(reference.stations(rt.db(), name, kind, locality, limit, after))


@stations.command("show")
def stations_show(ctx: typer.Context,
                  station: int = typer.Option(..., "--station", parser=whole_number,
                                              help="station id")) -> None:
    """One station: its routes (with taps), recharge points and taps today."""
    rt = runtime(ctx)
    rt.output.emit(reference.station(rt.db(), station))


@routes.command("list")
def routes_list(ctx: typer.Context,
                code: str | None = typer.Option(None, "--code", help="code or its start, "
                                                "case ignored (e.g. T01)"),
                kind: str | None = choice(None, "--type", reference.ROUTE_TYPES, "route type"),
                limit: int = LIMIT, after: int | None = AFTER) -> None:
    """Routes by id; pass the last route_id shown as --after for the next page."""
    rt = runtime(ctx)
    rt.output.emit(reference.routes(rt.db(), code, kind, limit, after))


@routes.command("show")
def routes_show(ctx: typer.Context,
                route: int = typer.Option(..., "--route", parser=whole_number,
                                          help="route id")) -> None:
    """One route: the stations its taps boarded at (where known) and its taps today."""
    rt = runtime(ctx)
    rt.output.emit(reference.route(rt.db(), route))


@points.command("list")
def points_list(ctx: typer.Context, locality: str | None = LOCALITY, limit: int = LIMIT,
                after: int | None = AFTER) -> None:
    """Recharge points by id with their channel (station_kiosk, retail, online)."""
    rt = runtime(ctx)
    rt.output.emit(reference.points(rt.db(), locality, limit, after))


@localities.command("list")
def localities_list(ctx: typer.Context) -> None:
    """Localities with their number of stations and recharge points."""
    rt = runtime(ctx)
    rt.output.emit(reference.localities(rt.db()))


@transfer_rules.command("show")
def transfer_rules_show(ctx: typer.Context) -> None:
    """Every transfer window period, the one in force, and the transfer fares it used."""
    rt = runtime(ctx)
    rt.output.emit(reference.transfer_rules(rt.db()))


@transfer_rules.command("set")
def transfer_rules_set(ctx: typer.Context,
                       window_minutes: int = typer.Option(..., "--window-minutes",
                                                          parser=whole_number,
                                                          help="minutes from a journey's first "
                                                          "tap in which a tap is a transfer"),
                       max_transfers: int = typer.Option(..., "--max-transfers",
                                                         parser=whole_number,
                                                         help="transfers per journey"),
                       valid_from: str = VALID_FROM,
                       operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """Add a transfer window period from --from on (audited; never rewrites a period that
    trips used)."""
    rt = runtime(ctx)
    start = parsers.time(valid_from, "--from")
    assert start is not None
    rt.output.emit(reference.set_transfer_rule(rt.db(), window_minutes, max_transfers, start,
                                               operator, key, announce_key(rt)))
