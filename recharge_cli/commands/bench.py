"""recharge bench"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from recharge_cli.commands import runtime
from recharge_cli.errors import InvalidInput, ServiceUnavailable


def bench(
    ctx: typer.Context,
    iterations: int = typer.Option(100, "--iterations", min=2, help="timed trials per target and kind"),
    warmup: int = typer.Option(10, "--warmup", min=0, help="discarded trials per target and kind"),
    target: list[str] = typer.Option(None, "--target", help="balance, card_trips, stats_revenue, "
                                     "trips_total, active_users (repeat; default all)"),
    seed: int = typer.Option(1, "--seed", help="seed of the trial order and card sample"),
    out: Path | None = typer.Option(None, "--out", help="report folder (default "
                                    "reports/<UTC time>)"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip the PNG plots"),
) -> None:
    """Cached vs uncached latency of each target, with baselines, plots and a report."""
    from recharge_cli import seed as demo
    from recharge_cli.bench import report, runner

    rt = runtime(ctx)
    targets = target or list(runner.TARGETS)
    unknown = [t for t in targets if t not in runner.TARGETS]
    if unknown:
        raise InvalidInput(f"unknown --target {', '.join(unknown)}; choose from "
                           f"{', '.join(runner.TARGETS)}")
    servers = rt.servers()
    if not servers.redis_url:
        raise ServiceUnavailable("bench needs Redis: set --redis-url or RECHARGE_REDIS_URL")
    conn = rt.db()
    if demo.is_empty(conn):
        rt.output.message("The database is empty: loading the demo data set first …")
        demo.seed(conn, output=rt.output)
    out = out or Path("reports") / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"{servers.cache_prefix}bench:{dt.datetime.now(dt.UTC):%H%M%S%f}:"
    conns = runner.open_connections(servers.dsn or "", servers.redis_url, prefix)
    try:
        card_ids = runner.sample_cards(conn, max(10, min(iterations, 1000)), seed)
        total = iterations * (len(targets) * len(runner.KINDS) + len(runner.BASELINES))
        with rt.output.progress("Benchmarking", total=total) as bar:
            samples = runner.run(conns, targets, iterations, warmup, seed, card_ids, bar.advance)
        analysis = report.analyse(samples, targets, seed)
        params = {"iterations": iterations, "warmup": warmup, "targets": targets, "seed": seed,
                  "cards_sampled": len(card_ids)}
        env = report.environment(conn, conns.caches["baseline"].client, params)
        files = report.write(out, samples, analysis, env, plots=not no_plot)
    finally:
        conns.caches["baseline"].flush()
        conns.close()
    for warning in analysis["warnings"]:
        rt.output.warn(warning)
    rt.output.message(f"report written to {out}/ ({', '.join(f.name for f in files)})")
    if rt.output.resolved_format == "json":
        rt.output.emit({"out": str(out), "rows": report.summary_rows(analysis),
                        "speedups": analysis["speedups"], "budgets": analysis["budgets"],
                        "warnings": analysis["warnings"]})
    else:
        rt.output.emit(report.summary_rows(analysis))
        for b in analysis["budgets"]:
            rt.output.message(f"{'pass' if b['pass'] else 'FAIL'}: {b['budget']} "
                              f"(measured {b['ratio']:.2f})")


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
