"""recharge health"""

from __future__ import annotations

import datetime as dt

import typer

from recharge_cli import health
from recharge_cli.commands.shared import runtime
from recharge_cli.errors import ExitStatus


def health_command(
    ctx: typer.Context,
    max_rollup_age: float = typer.Option(60, "--max-rollup-age", min=1, help="minutes since "
                                         "the last `db rollup` before the check fails"),
    max_verify_age: float = typer.Option(26, "--max-verify-age", min=1, help="hours since the "
                                         "last `verify` before the check fails"),
) -> None:
    """Check every dependency and job: PostgreSQL, the schema, Redis (every Cluster node),
    the replica's lag, the last rollup and verify, the cache's coherence. Exit 0 only when
    every check passes, else 1 (also when a server is down: the report is the result).

    \b
    Examples:
      recharge health
      recharge --metrics-file /var/lib/node_exporter/recharge_health.prom health > /dev/null
    """
    rt = runtime(ctx)
    settings = rt.settings
    not_started = "no PostgreSQL is configured"
    if settings.embedded:  # check the embedded servers as they are: never start them
        from recharge_cli import embedded, local

        state = local.read_state(settings.home)
        not_started = "the embedded servers were never started: run `recharge local start`"
        if state is not None:
            settings = embedded.settings_for(settings, local.layout(settings.home), state)
    targets = health.Targets(
        settings.dsn, settings.read_dsn,
        settings.redis_url if settings.cache_enabled else None, settings.redis_cluster,
        settings.cache_prefix, settings.max_replica_lag,
        dt.timedelta(minutes=max_rollup_age), dt.timedelta(hours=max_verify_age), not_started)
    checks = health.run(targets)
    passed = all(check.ok for check in checks)
    if rt.output.resolved_format == "json":
        rt.output.emit({"ok": passed, "checks": [check.as_row() for check in checks]})
    else:
        rt.output.emit([{k: v for k, v in check.as_row().items() if k != "facts"}
                        for check in checks])
    if not passed:
        failed = [f"{check.name} ({check.detail})" for check in checks if not check.ok]
        rt.output.error(f"{len(failed)} check(s) failed: {'; '.join(failed)}")
        raise typer.Exit(ExitStatus.CHECK_FAILED)
