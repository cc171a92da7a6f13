"""recharge db migrate | status | seed | rollup"""

from __future__ import annotations

import typer

from recharge_cli import demo, migrations, parsers, stats
from recharge_cli.commands.options import WAIT_OPTION, YES_OPTION, lock_option
from recharge_cli.commands.shared import confirm, database_named, runtime
from recharge_cli.errors import ExitStatus

app = typer.Typer(no_args_is_help=True, help="Schema migrations and demo data.")


@app.command("migrate")
def migrate(ctx: typer.Context, lock: str | None = lock_option(), wait: float = WAIT_OPTION) -> None:
    """Apply pending migrations (idempotent: a second run applies nothing).

    \b
    Examples:
      recharge --admin-dsn service=recharge_owner db migrate
    """
    rt = runtime(ctx)
    with rt.locked(lock, wait):
        applied = migrations.migrate(rt.admin_db())
    rt.output.message(f"applied {len(applied)} migration(s)" if applied else "nothing to apply")
    rt.output.emit([{"migration": name, "state": "applied now"} for name in applied])


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Applied and pending migrations; exit 1 when an applied one was changed."""
    rt = runtime(ctx)
    states = migrations.status(rt.admin_db())
    rt.output.emit([{"migration": s.migration.name, "kind": s.migration.kind, "state": s.state}
                    for s in states])
    changed = [s.migration.name for s in states if s.state == "changed"]
    if changed:
        rt.output.error(f"applied migration(s) changed since they ran: {', '.join(changed)}")
        raise typer.Exit(ExitStatus.CHECK_FAILED)


@app.command("seed")
def seed_command(
    ctx: typer.Context,
    scale: float = typer.Option(1.0, "--scale", help="1 = 24,000 cards and ~250,000 trip legs; "
                                "40 gives ~10 M legs"),
    seed_value: int = typer.Option(42, "--seed", help="random seed (same seed and --end, same data)"),
    end: str | None = typer.Option(None, "--end", help="the data covers the 90 days before this "
                                   "day, YYYY-MM-DD (default today; never later)"),
    replace: bool = typer.Option(False, "--replace", help="empty every card, user, station and "
                                 "movement first (in the same transaction as the load)"),
    yes: bool = YES_OPTION,
    lock: str | None = lock_option(),
    wait: float = WAIT_OPTION,
) -> None:
    """Load the demo data set (server-side generation, one transaction: all or nothing).
    Into an empty database, or with --replace instead of the data there.

    \b
    Examples:
      recharge db seed --scale 1 --seed 42
      recharge db seed --scale 10 --replace --yes
    """
    rt = runtime(ctx)
    end_date = parsers.date(end, "--end")
    conn = rt.admin_db()
    if replace:
        confirm(rt, "db seed --replace", yes, database_named(conn))
    with rt.locked(lock, wait):
        migrations.migrate(conn)
        result = demo.load(conn, scale=scale, seed=seed_value, end=end_date, output=rt.output,
                           replace=replace)
    rt.output.emit(result)


@app.command("rollup")
def rollup(ctx: typer.Context, lock: str | None = lock_option("db-rollup"),
           wait: float = WAIT_OPTION) -> None:
    """Roll up everything older than ~2 hours for fast statistics; rebuild changed days."""
    rt = runtime(ctx)
    with rt.locked(lock, wait):
        result = stats.build_rollups(rt.db())
    rt.output.message(f"rolled up {result['days_built']} day(s) in {result['seconds']} s; "
                      f"rollups cover everything before {result['rolled_until']:%Y-%m-%d %H:%M} "
                      f"({result['time_zone']})")
    rt.output.emit(result)
