"""recharge bench [compare]"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from recharge_cli import parsers
from recharge_cli.bench.distributions import DISTRIBUTIONS, ZIPF_THETA
from recharge_cli.bench.runner import ALL_TARGETS
from recharge_cli.commands.options import choice
from recharge_cli.commands.shared import runtime
from recharge_cli.errors import ExitStatus, InvalidInput, RechargeError
from recharge_cli.inputs import writable_folder
from recharge_cli.runtime import Runtime

if TYPE_CHECKING:
    from recharge_cli.bench.mix import MixResult, MixSpec
    from recharge_cli.bench.session import RunResult, RunSpec

app = typer.Typer(invoke_without_command=True, help="Cached vs uncached latency, load curves, "
                  "reports; `bench compare` runs.")


def _default_out(kind: str = "") -> Path:
    return Path("reports") / f"{kind}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"


TARGET = choice(None, "--target", ALL_TARGETS, "what to measure (repeat; default: all but "
                "recharge, which writes)")
CONCURRENCY = typer.Option(0, "--concurrency", min=0, max=256, help="load processes: a "
                           "closed-loop run per target and kind (with --rate/--rates: the "
                           "processes sharing the rate, default 4)")
RATE = typer.Option(None, "--rate", min=0.001, max=1_000_000,
                    help="open loop: offer R operations/s per target and kind")
RATES = typer.Option(None, "--rates", metavar="R1,R2,…", help="open-loop sweep of offered "
                     "rates → throughput–latency curves and saturation points")
DURATION = typer.Option(5.0, "--duration", min=0.5, max=600, help="seconds of each load run")
SLO_MS = typer.Option(None, "--slo-ms", min=0.001,
                      help="report the share of operations slower than this")
CHECK_BUDGETS = typer.Option(False, "--check-budgets",
                             help="exit 1 when a performance budget fails")
OUT = typer.Option(None, "--out", help="report folder (default reports/<UTC time>)")
MIX = typer.Option(None, "--mix", metavar="OP=W,…", help="a weighted mix of balance, "
                   "card_trips, stats_revenue, trips_total, active_users, tap and recharge, "
                   "open loop at --rate/--rates, instead of the targets one by one")
DISTRIBUTION = choice("zipfian", "--distribution", DISTRIBUTIONS,
                      "how a mix's reads choose cards (YCSB's definitions)")
ZIPF_THETA = typer.Option(ZIPF_THETA, "--zipf-theta", min=0.01, max=0.999,
                          help="the zipfian constant of --distribution zipfian/latest")
TTL_SCALE = typer.Option(1.0, "--ttl-scale", min=0.001, max=1.0, metavar="F",
                         help="a mix's statistics expire after F × their TTLs (a short run "
                         "sees expiries)")
NO_CACHE_BASELINE = typer.Option(True, "--no-cache-baseline/--skip-no-cache-baseline",
                                 help="run the same mix without the cache, in turn, on the "
                                 "same schedule")


@app.callback()
def bench(
    ctx: typer.Context,
    iterations: int = typer.Option(100, "--iterations", min=2, help="timed trials per target and kind"),
    warmup: int = typer.Option(10, "--warmup", min=0, help="discarded trials per target and kind"),
    target: list[str] = TARGET,
    seed: int = typer.Option(1, "--seed", help="seed of the trial order, card sample and schedule"),
    concurrency: int = CONCURRENCY, rate: float | None = RATE, rates: str | None = RATES,
    duration: float = DURATION, slo_ms: float | None = SLO_MS, check_budgets: bool = CHECK_BUDGETS,
    out: Path | None = OUT,
    no_plot: bool = typer.Option(False, "--no-plot", help="skip the PNG plots"),
    mix: str | None = MIX, distribution: str = DISTRIBUTION, zipf_theta: float = ZIPF_THETA,
    ttl_scale: float = TTL_SCALE, no_cache_baseline: bool = NO_CACHE_BASELINE,
) -> None:
    """Cached vs uncached latency of each target, with baselines, load runs, plots and a report.

    \b
    Examples:
      recharge bench --iterations 200
      recharge bench --target balance --target stats_revenue --rates 500,1000,2000,4000
      recharge bench --target recharge --concurrency 8 --duration 10 --check-budgets
      recharge bench --mix balance=70,card_trips=5,stats_revenue=5,tap=15,recharge=5 \\
        --distribution zipfian --rates 250,500,1000,2000
    """
    if ctx.invoked_subcommand:
        return
    from recharge_cli.bench import runner, session

    rt = runtime(ctx)
    unknown = [t for t in target or () if t not in ALL_TARGETS]
    if unknown:
        raise InvalidInput(f"unknown --target {', '.join(unknown)}: choose from "
                           f"{', '.join(ALL_TARGETS)}")
    offered = sorted({*parsers.rates(rates), *([rate] if rate else [])})
    mixed = _mix_spec(mix, target, offered, distribution, zipf_theta, ttl_scale,
                      no_cache_baseline)
    spec = session.RunSpec(target or list(runner.TARGETS), iterations, warmup, seed, concurrency,
                           duration, offered, slo_ms, rt.ensure_servers().redis_cluster, mixed)
    out = out or _default_out()
    created = not out.exists()
    writable_folder(out, "--out")
    try:
        result = _run(rt, spec)
    except KeyboardInterrupt:
        if created:
            with contextlib.suppress(OSError):  # only while still empty
                out.rmdir()
                rt.output.error(f"interrupted before anything was measured: removed {out}/")
        raise
    _show(rt, result, out, plots=not (no_plot or result.partial))  # interrupted: return at once
    if result.partial:
        rt.output.error(f"interrupted: the report in {out}/ is partial "
                        f"({result.progress_text()})")
        raise typer.Exit(ExitStatus.INTERRUPTED)
    mixed_check = result.mix.write_check if result.mix else None
    if mixed_check and not mixed_check.ok:
        raise RechargeError(f"write check failed: {mixed_check.missing_or_duplicated} reported "
                            f"write(s) missing or duplicated, {mixed_check.balance_mismatches} "
                            "scratch card(s) whose balance is not their recharges less fares")
    check = result.write_check
    if check and not check.ok:
        raise RechargeError(f"write check failed: {check.recharges_found} recharges found for "
                            f"{check.recharges_reported} reported, {check.balance_mismatches} "
                            "card(s) whose balance is not the sum of their recharges")
    if check_budgets and not result.analysis.budgets_pass:
        rt.output.error("a performance budget failed (see the budgets above)")
        raise typer.Exit(ExitStatus.CHECK_FAILED)


def _mix_spec(text: str | None, target: list[str] | None, offered: list[float],
              distribution: str, zipf_theta: float, ttl_scale: float,
              no_cache_baseline: bool) -> MixSpec | None:
    """The --mix options checked (exit 2, one line, on a mistake)."""
    from recharge_cli.bench import mix

    if text is None:
        return None
    weights = mix.parse(text)
    if target:
        raise InvalidInput("--mix replaces --target: give the operations in --mix")
    if not offered:
        raise InvalidInput("--mix runs open loop: give --rate R or --rates R1,R2,…")
    if distribution not in DISTRIBUTIONS:
        raise InvalidInput(f"unknown --distribution {distribution}: choose from "
                           f"{', '.join(DISTRIBUTIONS)}")
    return mix.MixSpec(weights, distribution, zipf_theta, ttl_scale, no_cache_baseline)


def _run(rt: Runtime, spec: RunSpec) -> RunResult:
    from recharge_cli.bench import session

    servers = rt.ensure_servers()
    if not servers.redis_url:
        raise InvalidInput("bench compares the Redis cache with PostgreSQL and needs Redis: give "
                           "--redis-url or RECHARGE_REDIS_URL")
    return session.run(spec, rt.admin_db(), servers.admin_dsn or servers.dsn or "",
                       servers.redis_url, servers.cache_prefix, rt.output)


def _show(rt: Runtime, result: RunResult, out: Path, plots: bool) -> None:
    from recharge_cli.bench import analysis, exporters
    from recharge_cli.bench.model import to_json

    files = exporters.write_all(out, result, plots)
    if result.mix:
        _show_mix(rt, result.mix, out, len(files), result.partial, plots)
        return
    a = result.analysis
    for warning in a.warnings:
        rt.output.warn(warning)
    rt.output.message(f"report written to {out}/ ({len(files)} files: results.json, "
                      "summary.csv, report.md" + (", plots" if plots else "") + ")")
    if rt.output.resolved_format == "json":
        loads = [{k: v for k, v in to_json(r).items() if k != "histogram"} for r in a.loads]
        rt.output.emit({"out": str(out), "partial": result.partial,
                        "rows": analysis.summary_rows(a), "loads": loads, **to_json({
                            "speedups": a.speedups, "budgets": a.budgets,
                            "saturation": a.saturation, "write_check": result.write_check,
                            "warnings": a.warnings})})
        return
    rt.output.emit(analysis.summary_rows(a))
    for r in a.loads:
        offered = f"offered {r.offered_per_second:,.0f}/s, " if r.offered_per_second else ""
        rt.output.message(f"load {r.target}/{r.kind} ({r.mode} loop, {offered}"
                          f"{r.processes} processes): {r.achieved_per_second:,.0f} ops/s, "
                          f"p50 {r.p50_us or 0:,.0f} µs, p99 {r.p99_us or 0:,.0f} µs"
                          + (f", {r.skipped} skipped" if r.skipped else ""))
    for s in a.saturation:
        state = "saturates at" if s.saturated else "served up to (not saturated)"
        rt.output.message(f"{s.target}/{s.kind} {state} ≈ {s.ops_per_second:,.0f} ops/s")
    for b in a.budgets:
        rt.output.message(f"{b.verdict}: {b.budget} (measured {b.ratio:.2f} from "
                          f"{b.samples:,} samples"
                          + (f"; the budgets need {b.samples_needed:,}, --iterations "
                             f"{b.samples_needed})" if b.status == analysis.TOO_FEW else ")"))


def _show_mix(rt: Runtime, mix: MixResult, out: Path, files: int, partial: bool,
              plots: bool) -> None:
    rt.output.message(f"report written to {out}/ ({files} files: results.json, summary.csv, "
                      "report.md" + (", curve-mix.png)" if plots else ")"))
    if rt.output.resolved_format == "json":
        rt.output.emit({"out": str(out), "partial": partial, "mix": mix.to_json()})
        return
    from recharge_cli.bench import exporters

    rt.output.emit([{k: v for k, v in row.items() if k in MIX_COLUMNS}
                    for row in exporters.mix_rows(mix)])
    for s in mix.saving:
        rt.output.message(
            f"at {s.offered_per_second:,.0f}/s the cache cut p50 latency "
            f"{s.latency_p50.ratio:.2f}× [{s.latency_p50.ci_low:.2f}, {s.latency_p50.ci_high:.2f}] "
            f"and PostgreSQL calls per operation {s.pg_calls_per_op.ratio:.2f}× "
            f"[{s.pg_calls_per_op.ci_low:.2f}, {s.pg_calls_per_op.ci_high:.2f}] "
            f"({s.pg_load_removed:.0%} of the calls removed)")


MIX_COLUMNS = ("offered_per_second", "mode", "operation", "operations", "p50_us", "p99_us",
               "p99_9_us", "hit_ratio", "pg_calls_per_second", "pg_cpu_seconds_per_op")


@app.command("compare")
def compare(
    ctx: typer.Context,
    results: list[Path] = typer.Argument(..., help="two or more results.json files (or their "
                                         "report folders); the first is the base"),
    fail_if_slower: float | None = typer.Option(None, "--fail-if-slower", metavar="PCT", min=0,
                                                help="exit 1 when a series got slower by more "
                                                "than PCT %, its whole 95% interval beyond it"),
    out: Path | None = typer.Option(None, "--out", help="folder for compare.png and compare.csv "
                                    "(default reports/compare-<UTC time>)"),
    no_plot: bool = typer.Option(False, "--no-plot", help="skip compare.png"),
) -> None:
    """Change of every series between runs: ratio of medians with a 95% interval.

    \b
    Examples:
      recharge bench compare reports/before reports/after
      recharge bench compare reports/before reports/after --fail-if-slower 10
    """
    from recharge_cli.bench import compare as comparison
    from recharge_cli.render import write_csv

    rt = runtime(ctx)
    if len(results) < 2:
        raise InvalidInput("compare needs at least two results.json files")
    runs = [comparison.load(path) for path in results]
    found = comparison.changes(runs, fail_if_slower)
    out = writable_folder(out or _default_out("compare-"), "--out")
    rows = [row.as_row() for row in found.rows]
    written = [write_csv(out / "compare.csv", rows)]
    if not no_plot:
        written.append(comparison.plot(found, out / "compare.png", fail_if_slower))
    for warning in found.warnings:
        rt.output.warn(warning)
    rt.output.message(f"ratio = later p50 / {runs[0].label} p50 (below 1 is faster); "
                      f"written {', '.join(str(p) for p in written)}")
    rt.output.emit(rows)
    if found.regressions:
        rt.output.error(f"{len(found.regressions)} series slower by more than "
                        f"{fail_if_slower:g} %: "
                        + ", ".join(f"{r.series} ({r.run})" for r in found.regressions))
        raise typer.Exit(ExitStatus.CHECK_FAILED)
