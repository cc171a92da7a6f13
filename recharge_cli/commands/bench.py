"""recharge bench [compare]"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import typer

from recharge_cli.commands import runtime, writable_folder
from recharge_cli.errors import InvalidInput, RechargeError

app = typer.Typer(invoke_without_command=True, help="Cached vs uncached latency, throughput, "
                  "reports; `bench compare` runs.")


def _default_out(kind: str = "") -> Path:
    return Path("reports") / f"{kind}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"


@app.callback()
def bench(
    ctx: typer.Context,
    iterations: int = typer.Option(100, "--iterations", min=2, help="timed trials per target and kind"),
    warmup: int = typer.Option(10, "--warmup", min=0, help="discarded trials per target and kind"),
    target: list[str] = typer.Option(None, "--target", help="balance, card_trips, stats_revenue, "
                                     "trips_total, active_users, recharge (repeat; default: all "
                                     "but recharge, which writes)"),
    seed: int = typer.Option(1, "--seed", help="seed of the trial order and card sample"),
    concurrency: int = typer.Option(0, "--concurrency", min=0, max=256,
                                    help="also run each target closed-loop in N processes"),
    duration: float = typer.Option(5.0, "--duration", min=0.5, max=600,
                                   help="seconds of each --concurrency run"),
    out: Path | None = typer.Option(None, "--out", help="report folder (default "
                                    "reports/<UTC time>)"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip the PNG plots"),
) -> None:
    """Cached vs uncached latency of each target, with baselines, plots and a report."""
    if ctx.invoked_subcommand:
        return
    import psycopg

    from recharge_cli import seed as demo
    from recharge_cli.bench import load, report, runner

    rt = runtime(ctx)
    targets = target or list(runner.TARGETS)
    unknown = [t for t in targets if t not in runner.ALL_TARGETS]
    if unknown:
        raise InvalidInput(f"unknown --target {', '.join(unknown)}; choose from "
                           f"{', '.join(runner.ALL_TARGETS)}")
    out = writable_folder(out or _default_out(), "--out")
    servers = rt.servers()
    if not servers.redis_url:
        raise InvalidInput("bench compares the Redis cache with PostgreSQL and needs Redis: give "
                           "--redis-url or RECHARGE_REDIS_URL")
    conn = rt.admin_db()  # scratch cards, raw baseline queries: the schema owner
    if demo.is_empty(conn):
        rt.output.message("The database is empty: loading the demo data set first …")
        demo.seed(conn, output=rt.output)
    prefix = f"{servers.cache_prefix}bench:{dt.datetime.now(dt.UTC):%H%M%S%f}:"
    dsn = servers.admin_dsn or servers.dsn or ""
    conns = runner.open_connections(dsn, servers.redis_url, prefix, servers.redis_cluster)
    scratch = runner.ScratchCards([])
    if runner.WRITE_TARGET in targets:
        writes = iterations + warmup + (load.scratch_cards_needed(concurrency, duration)
                                        * runner.WRITES_PER_CARD if concurrency else 0)
        scratch = runner.ScratchCards.create(conn, writes)
        rt.output.message(f"the recharge target writes to {len(scratch.card_ids)} new scratch "
                          "card(s), retired (inactive) afterwards")
    try:
        card_ids = runner.sample_cards(conn, max(10, min(iterations, 1000)), seed)
        total = iterations * (sum(len(runner.kinds_of(t)) for t in targets) + len(runner.BASELINES))
        with rt.output.progress("Benchmarking", total=total) as bar:
            samples = runner.run(conns, targets, iterations, warmup, seed, card_ids,
                                 scratch.card_ids, bar.advance)
        throughput = {}
        if concurrency:
            rt.output.message(f"throughput: {concurrency} processes × {duration:g} s per target …")
            throughput = load.run(dsn, servers.redis_url, prefix, targets,
                                  concurrency, duration, card_ids, scratch.card_ids,
                                  servers.redis_cluster)
        analysis = report.analyse(samples, targets, seed)
        analysis["throughput"] = throughput
        if scratch.card_ids:
            done = iterations + warmup + throughput.get(runner.WRITE_TARGET, {}).get("operations", 0)
            analysis["write_check"] = scratch.check(conn, done)
        params = {"iterations": iterations, "warmup": warmup, "targets": targets, "seed": seed,
                  "redis_cluster": servers.redis_cluster,
                  "cards_sampled": len(card_ids), "concurrency": concurrency,
                  "duration": duration if concurrency else None}
        env = report.environment(conn, conns.caches["baseline"], params)
        files = report.write(out, samples, analysis, env, plots=not no_plot)
    finally:  # also on errors and interrupts: no scratch card is left active
        with contextlib.suppress(psycopg.Error):
            scratch.retire(conn)
        conns.caches["baseline"].flush()
        conns.close()
    for warning in analysis["warnings"]:
        rt.output.warn(warning)
    rt.output.message(f"report written to {out}/ ({', '.join(f.name for f in files)})")
    if rt.output.resolved_format == "json":
        rt.output.emit({"out": str(out), "rows": report.summary_rows(analysis),
                        "speedups": analysis["speedups"], "budgets": analysis["budgets"],
                        "throughput": throughput, "write_check": analysis.get("write_check"),
                        "warnings": analysis["warnings"]})
    else:
        rt.output.emit(report.summary_rows(analysis))
        for name, t in throughput.items():
            rt.output.message(f"throughput {name}: {t['ops_per_second']:,.0f} ops/s with "
                              f"{t['processes']} processes (p50 {t['p50_us']:,.0f} µs, "
                              f"p99 {t['p99_us']:,.0f} µs)")
        for b in analysis["budgets"]:
            rt.output.message(f"{'pass' if b['pass'] else 'FAIL'}: {b['budget']} "
                              f"(measured {b['ratio']:.2f})")
    check = analysis.get("write_check")
    if check and not check["ok"]:
        raise RechargeError(f"write check failed: scratch balances {check['balance']} != "
                            f"{check['expected_balance']} expected, {check['ledger_mismatches']} "
                            "card(s) whose balance differs from the ledger")


@app.command("compare")
def compare(
    ctx: typer.Context,
    results: list[Path] = typer.Argument(..., help="two or more results.json files (or their "
                                         "report folders); the first is the base"),
    out: Path | None = typer.Option(None, "--out", help="folder for compare.png and compare.csv "
                                    "(default reports/compare-<UTC time>)"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip compare.png"),
) -> None:
    """Change of every target/kind between runs: ratio of medians with a 95% interval."""
    from recharge_cli.bench import compare as comparison
    from recharge_cli.render import write_csv

    rt = runtime(ctx)
    if len(results) < 2:
        raise InvalidInput("compare needs at least two results.json files")
    runs = [comparison.load(path) for path in results]
    rows = comparison.changes(runs)
    out = writable_folder(out or _default_out("compare-"), "--out")
    written = [write_csv(out / "compare.csv", rows)]
    if not no_plot:
        written.append(comparison.plot(runs, out / "compare.png"))
    rt.output.message(f"ratio = later p50 / {runs[0]['label']} p50 (below 1 is faster); "
                      f"written {', '.join(str(p) for p in written)}")
    rt.output.emit(rows)
