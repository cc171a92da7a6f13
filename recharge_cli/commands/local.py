"""recharge local start | stop | status"""

from __future__ import annotations

import typer

from recharge_cli import embedded, local
from recharge_cli.commands.options import YES_OPTION
from recharge_cli.commands.shared import confirm, runtime
from recharge_cli.errors import ExitStatus

app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL and Valkey.")


@app.command("start")
def start(
    ctx: typer.Context,
    replica: bool = typer.Option(False, "--replica", help="add a streaming read replica that "
                                 "statistics read from"),
    cluster: bool = typer.Option(False, "--cluster", help="use a 3-primary, 3-replica Valkey "
                                 "Cluster as the cache"),
) -> None:
    """Start the embedded servers (a no-op when they run), migrate, load the demo data once.
    --replica and --cluster add the scaled-out topology on this machine; they stay until
    local stop."""
    rt = runtime(ctx)
    if local.running(rt.settings.home):
        rt.output.message(f"the embedded servers of {rt.settings.home} were already running")
    embedded.ready(rt.settings, rt.output, start_all=True, replica=replica, cluster=cluster)
    rt.output.emit(_summary(local.status(rt.settings.home)))


@app.command("stop")
def stop(
    ctx: typer.Context,
    purge: bool = typer.Option(False, "--purge", help="also delete the embedded data"),
    yes: bool = YES_OPTION,
) -> None:
    """Stop the embedded servers (--purge also deletes their data: asks first)."""
    rt = runtime(ctx)
    home = rt.settings.home
    deleted = None
    if purge:
        confirm(rt, "local stop --purge", yes, str(home))
        stopped, deleted = local.purge(home)
    else:
        stopped = local.stop(home)
    rt.output.message(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    if deleted is not None:
        rt.output.message(f"deleted: {', '.join(deleted)}" if deleted else "nothing to delete")
    rt.output.emit({"stopped": stopped} | ({} if deleted is None else {"deleted": deleted}))


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Versions, ports, data size, and whether each server answers (exit 0 only if both do)."""
    rt = runtime(ctx)
    info = local.status(rt.settings.home)
    rt.output.emit(_summary(info))
    if not (info["postgresql"]["answers"] and info["valkey"]["answers"]):
        raise typer.Exit(ExitStatus.UNAVAILABLE)


def _summary(info: dict) -> dict:
    pg, valkey = info["postgresql"], info["valkey"]
    return {
        "home": info["home"],
        "server_dir": info["server_dir"],
        "postgresql_answers": pg["answers"],
        "postgresql_version": pg.get("version") or pg.get("binary_version"),
        "postgresql_port": pg["port"],
        "postgresql_socket_dir": pg["socket_dir"],
        "valkey_answers": valkey["answers"],
        "valkey_version": valkey.get("version") or valkey.get("binary_version"),
        "valkey_port": valkey["port"],
        "valkey_socket": valkey["socket"],
        "data_bytes": info["data_bytes"],
        "replica": info.get("replica"),
        "cluster_nodes": info.get("cluster"),
    }
