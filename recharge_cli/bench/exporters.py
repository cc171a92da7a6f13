"""Exporters of a bench run into its report folder, one small function per file kind;
`write_all` runs those that apply. Machine-readable files hold numbers only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from recharge_cli.bench import analysis
from recharge_cli.bench.load import LoadRun
from recharge_cli.bench.mix import MixResult
from recharge_cli.bench.model import to_json
from recharge_cli.bench.results import Results, per_second
from recharge_cli.bench.runner import WriteCheck
from recharge_cli.bench.sampling import Ratio
from recharge_cli.bench.session import RunResult
from recharge_cli.render import write_csv
from recharge_cli.report_folder import markdown_table, save_figure, write_json, write_markdown

LOAD_COLUMNS = ["target", "kind", "mode", "processes", "seconds", "offered_per_second",
                "achieved_per_second", "operations", "late", "skipped", "kept_up",
                "client_busy_share", "p50_us", "p99_us", "p99_9_us", "p99_99_us", "max_us",
                "mean_us"]


CAPTIONS = {"ecdf": "ECDF of latency, log axis", "box": "Latency per target and kind",
            "timeline": "Samples in measurement order",
            "timeseries": "Per-second throughput and p99 of every load run"}


def run_label(run: LoadRun) -> str:
    return f"{run.target}-{run.kind}-" + (f"{run.offered:g}per_s" if run.offered else "closed")


def mix_rows(mix: MixResult) -> list[dict[str, Any]]:
    """One row per run (rate and mode) and operation, "mix" for the whole mix: numbers."""
    rows = []
    for run in mix.runs():
        for op, s in {"mix": run.whole, **run.operations}.items():
            rows.append({"offered_per_second": run.offered_per_second, "mode": run.mode,
                         "operation": op, "kept_up": run.kept_up, **to_json(s)})
    return rows


def results_json(out: Path, result: RunResult) -> list[Path]:
    return [write_json(out / "results.json", Results.of(result).to_json())]


def summary_csv(out: Path, result: RunResult) -> list[Path]:
    if result.mix:
        return [write_csv(out / "summary.csv", mix_rows(result.mix))]
    return [write_csv(out / "summary.csv", analysis.summary_rows(result.analysis))]


def load_files(out: Path, result: RunResult) -> list[Path]:
    """load.csv, per_second.csv and one .hgrm percentile distribution per load run."""
    if not result.loads:
        return []
    written = [write_csv(out / "load.csv", [to_json(r) for r in result.analysis.loads],
                         LOAD_COLUMNS),
               write_csv(out / "per_second.csv", to_json(per_second(result)))]
    folder = out / "hgrm"
    folder.mkdir(exist_ok=True)
    for run in result.loads:
        path = folder / f"{run_label(run)}.hgrm"
        with path.open("wb") as fh:  # values in µs, as HdrHistogram's plotter expects
            run.recording.latency.output_percentile_distribution(fh, 5, 1000.0)
        written.append(path)
    return written


def figures(out: Path, result: RunResult) -> list[Path]:
    from recharge_cli.bench import plots

    if result.mix:
        return [save_figure(plots.mix_curve(result), out / "curve-mix.png")]
    written = [save_figure(plots.ecdf(result), out / "ecdf.png"),
               save_figure(plots.box(result), out / "box.png"),
               save_figure(plots.timeline(result), out / "timeline.png")]
    swept = dict.fromkeys(run.target for run in result.loads if run.offered)  # in run order
    written += [save_figure(plots.curve(result, target), out / f"curve-{target}.png")
                for target in swept]
    if result.loads:
        written.append(save_figure(plots.timeseries(result), out / "timeseries.png"))
    return written


def _ratio(sp: Ratio) -> str:
    return f"{sp.ratio:.1f}× [{sp.ci_low:.1f}, {sp.ci_high:.1f}]"


def _us(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def _load_sections(a: analysis.Analysis) -> list[str]:
    lines: list[str] = []
    if a.saturation:
        lines += ["## Saturation (open-loop sweep)", "",
                  "The most operations/s each path served; *saturated* when a higher offered "
                  "rate was not kept up (over 1 % of its operations skipped: more than 1 s behind the "
                  "schedule, or still due when the run's time was up).", "",
                  markdown_table([{"target": s.target, "kind": s.kind,
                                   "ops/s": f"{s.ops_per_second:,.0f}",
                                   "saturated": "yes" if s.saturated else "not yet",
                                   "client CPU-bound": "yes" if s.client_bound else ""}
                                  for s in a.saturation]), ""]
    if a.loads:
        lines += ["## Load runs", "", "Latency from each operation's intended start (open loop) "
                  "or from its send (closed loop); HDR histograms, `hgrm/` holds each "
                  "run's percentile distribution.", "",
                  markdown_table([{"target": r.target, "kind": r.kind, "mode": r.mode,
                                   "offered/s": _us(r.offered_per_second),
                                   "achieved/s": _us(r.achieved_per_second),
                                   "late": r.late, "skipped": r.skipped,
                                   "p50 µs": _us(r.p50_us), "p99 µs": _us(r.p99_us),
                                   "p99.9 µs": _us(r.p99_9_us),
                                   "p99.99 µs": _us(r.p99_99_us)} for r in a.loads]), ""]
    return lines


def _partial_note(result: RunResult) -> list[str]:
    if not result.partial:
        return []
    return [f"**Partial run: interrupted** after {result.progress_text()}. Everything below "
            "is from what was measured before the interrupt (a load run under way was "
            "discarded); the write check was not made, and no figures were drawn (so that the "
            "interrupt returns at once).", ""]


def _ratio_of(r: Ratio) -> str:
    return f"{r.ratio:.2f}× [{r.ci_low:.2f}, {r.ci_high:.2f}]"


def _ms(us: float) -> str:
    return f"{us / 1000:,.2f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _mix_table(mix: MixResult) -> str:
    rows = []
    for run in mix.runs():
        for op, s in {"whole mix": run.whole, **run.operations}.items():
            rows.append({
                "offered/s": f"{run.offered_per_second:,.0f}", "mode": run.mode.replace("_", " "),
                "operation": op, "ops": s.operations, "achieved/s": f"{s.achieved_per_second:,.0f}",
                "p50 ms": _ms(s.p50_us), "p99 ms": _ms(s.p99_us), "p99.9 ms": _ms(s.p99_9_us),
                "hit ratio": _share(s.hit_ratio),
                "PG calls/s": _us(s.pg_calls_per_second),
                "PG ms/op": "" if s.pg_cpu_seconds_per_op is None
                else f"{s.pg_cpu_seconds_per_op * 1000:.3f}",
                "kept up": "yes" if run.kept_up else "no"})
    return markdown_table(rows)


def mix_report(result: RunResult, images: list[Path]) -> list[str]:
    mix, env, spec = result.mix, result.environment, result.spec
    assert mix is not None
    ttls = ", ".join(f"{op} {ttl:,} s" for op, ttl in mix.statistics_ttl_seconds.items())
    lines = [
        "# recharge bench report: operation mix", "",
        f"Mix {', '.join(f'{k}={v}' for k, v in mix.weights.items())} (weights), open loop "
        f"at {', '.join(f'{r:,.0f}' for r in spec.rates)} operations/s, {spec.processes} "
        f"processes × {spec.duration:g} s per run; reads choose among {mix.cards:,} cards by "
        f"the {mix.distribution} distribution"
        + (f" (θ = {mix.zipf_theta:g})" if mix.distribution in ("zipfian", "latest") else "")
        + f"; statistics expire after {mix.ttl_scale:g} × their TTLs ({ttls or 'none read'}). "
        f"{env.what_ran()}.", "",
        *_partial_note(result),
        "*cached* runs the application's read paths with the cache; *no cache* the same paths "
        "with the cache disabled, in turn at each rate, with the same operations on the same "
        "cards at the same intended times. Latency is from each operation's intended start. "
        f"PostgreSQL calls and server time come from {mix.pg_source} deltas over each run"
        + (f"; per operation from {mix.pg_per_operation_source} (each operation's own stored "
           "function)" if mix.pg_per_operation_source else "; per operation they are not "
           "available (track_functions is off)") + ".", ""]
    lines += [f"![Throughput–latency of the mix]({i.name})" for i in images] + [""]
    if mix.saving:
        lines += ["## What the cache saved (no cache / cached, bootstrap 95% interval)", "",
                  markdown_table([{"offered/s": f"{s.offered_per_second:,.0f}",
                                   "p50 latency": _ratio_of(s.latency_p50),
                                   "p99 latency": _ratio_of(s.latency_p99),
                                   "PG calls per op": _ratio_of(s.pg_calls_per_op),
                                   "PG server time per op": _ratio_of(s.pg_cpu_per_op),
                                   "PG calls removed": _share(s.pg_load_removed)}
                                  for s in mix.saving]), ""]
    lines += ["## Per operation and for the whole mix", "", _mix_table(mix), ""]
    if mix.write_check:
        lines += _write_check(mix.write_check)
    return lines


def _write_check(w: WriteCheck) -> list[str]:
    taps = f" and {w.taps_reported:,} taps" if w.taps_reported else ""
    found_taps = f" and {w.taps_found:,} trips" if w.taps_reported else ""
    funding = (f" ({w.funding_recharges} more recharges funded the tap cards)"
               if w.funding_recharges else "")
    return ["## Write check", "",
            f"{w.recharges_reported:,} recharges{taps} reported success on {w.scratch_cards} "
            f"scratch cards{funding}; found {w.recharges_found:,} recharges{found_taps}, "
            f"{w.missing_or_duplicated} reported writes missing, duplicated or unlike what was "
            f"sent, {w.balance_mismatches} cards whose balance is not their recharges less "
            f"their fares — {'**ok**' if w.ok else '**FAILED**'}. The cards were then set "
            "inactive.", ""]


def report_md(result: RunResult, images: list[Path]) -> list[str]:
    if result.mix:
        return mix_report(result, images)
    a, env, spec = result.analysis, result.environment, result.spec
    lines = [
        "# recharge bench report", "",
        f"{spec.iterations} timed trials per target and kind after {spec.warmup} discarded "
        f"warm-up trials, interleaved in a random order (seed {spec.seed}), one pinned "
        f"connection per series. {env.what_ran()}, Python {env.python}; "
        f"{env.row_counts['cards']:,} cards, {env.row_counts['trips']:,} trip legs.", "",
        *_partial_note(result),
        "**Kinds:** `miss` = key deleted before the trial (outside the timed region), then the "
        "cached read path (GET nil → stored function → SET); `hit` = the cached read path with "
        "the key present; `db` = the stored function alone, no Redis.", ""]
    for image in (i for i in images if i.name.startswith("curve-")):
        lines += [f"![Throughput–latency of {image.stem.removeprefix('curve-')}]({image.name})", ""]
    lines += _load_sections(a)
    lines += ["## Cache speed-up (ratio of medians, bootstrap 95% interval)", "",
              markdown_table([{"target": t, "miss / hit": _ratio(s.miss_over_hit),
                               "db / hit": _ratio(s.db_over_hit)}
                              for t, s in a.speedups.items()]), "",
              "## Budgets", "",
              f"A verdict needs {analysis.BUDGET_SAMPLES:,} samples per series "
              f"(`--iterations {analysis.BUDGET_SAMPLES}`); from fewer it is *not enough samples*, "
              "which `--check-budgets` does not count as a failure.", "",
              markdown_table([{"budget": b.budget, "measured ratio": f"{b.ratio:.2f}",
                               "limit": b.limit, "samples": b.samples, "result": b.verdict}
                              for b in a.budgets]), "",
              "## Latency, one request at a time (µs)", "",
              markdown_table([{k: (round(v, 1) if isinstance(v, float) else v)
                               for k, v in row.items() if "over" not in k}
                              for row in analysis.summary_rows(a)]), ""]
    if result.write_check:
        lines += _write_check(result.write_check)
    if a.warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in a.warnings), ""]
    lines += [f"![{CAPTIONS[i.stem]}]({i.name})\n" for i in images if i.stem in CAPTIONS]
    return lines


EXPORTERS: list[Callable[[Path, RunResult], list[Path]]] = [results_json, summary_csv,
                                                            load_files]


def write_all(out: Path, result: RunResult, plots: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [path for exporter in EXPORTERS for path in exporter(out, result)]
    images = figures(out, result) if plots else []
    return [*written, *images, write_markdown(out / "report.md", report_md(result, images))]
