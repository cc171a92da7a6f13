"""What several command groups do alike through the run's `Runtime`: find it, announce a
generated idempotency key, confirm a destructive action, name the database, show a
statistic."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer

from recharge_cli.errors import InvalidInput
from recharge_cli.runtime import Runtime

STATISTIC_META = ("statistic", "source", "computed_at", "time_zone", "replica_lag_seconds")


def runtime(ctx: typer.Context) -> Runtime:
    return ctx.find_root().obj


def announce_key(rt: Runtime) -> Callable[[str], None]:
    """Prints a generated idempotency key on stderr (even with --quiet) before the write is
    sent, so that an unclear outcome can always be retried with the same key."""
    return lambda key: rt.output.message(
        f"idempotency key: {key} (retry with --key {key} if the outcome is unclear)", always=True)


def confirm(rt: Runtime, action: str, yes: bool, target: str) -> None:
    """Ask before destroying data (`target` says which): a prompt on a terminal; off a
    terminal refuse (exit 2) unless --yes was given."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"{action} destroys data in {target}: add --yes to confirm (no "
                           "terminal to ask on)")
    if not typer.confirm(f"{action} destroys data in {target}. Continue?", default=False, err=True):
        raise InvalidInput(f"{action}: not confirmed, nothing was changed")


def database_named(conn: Any) -> str:
    """Which database a connection reaches, for a prompt (never its password)."""
    info = conn.info
    return f"database {info.dbname} on {info.host}:{info.port} (user {info.user})"


def show_statistic(rt: Runtime, name: str, params: dict[str, Any], fresh: bool) -> None:
    """Compute (or read from cache) one statistic and render it."""
    from recharge_cli import stats

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
        rt.output.emit({k: v for k, v in result.items() if k not in STATISTIC_META})


def finish_bulk(rt: Runtime, summary: Any, rejects: Path | None) -> NoReturn:
    """A bulk run's summary row, then its exit: the first rejected line's code, 75 when it
    stopped early (a rerun of the same file finishes it), 130 when interrupted."""
    from recharge_cli.errors import RechargeError

    rt.output.emit(summary.as_row())
    if rejects is not None and summary.rejected:
        rt.output.error(f"{summary.rejected:,} row(s) rejected: written to {rejects}")
    if summary.stopped is not None:
        raise RechargeError(f"stopped after {summary.rows} row(s): {summary.stopped}; "
                            "rerun the same file to finish it (applied rows replay)",
                            summary.stopped.status)
    raise typer.Exit(summary.exit_status)
