"""Bench on known samples (summaries, open and closed loops, HDR merging, compare and its
gate) and end-to-end runs."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recharge_cli.bench import analysis, environment, load, plots, runner, sampling, session
from tests import faults
from tests.conftest import Database, run_cli


def test_summary_on_known_samples() -> None:
    s = sampling.summarize([1000 * v for v in range(1, 101)])  # 1..100 µs
    assert s.n == 100 and s.min_us == 1 and s.max_us == 100
    assert s.p50_us == pytest.approx(50.5) and s.p90_us == pytest.approx(90.1)
    assert s.p99_us == pytest.approx(99.01) and s.mean_us == pytest.approx(50.5)
    assert s.sd_us == pytest.approx(29.011, abs=1e-3)


def test_bootstrap_interval_contains_the_true_ratio() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    slow = (rng.normal(1000, 50, 400)).astype(int).tolist()
    fast = (rng.normal(100, 5, 400)).astype(int).tolist()
    sp = sampling.speedup(slow, fast, seed=1)
    assert sp.ci_low < 10 < sp.ci_high
    assert sp.ci_low <= sp.ratio <= sp.ci_high
    assert sp.ci_high - sp.ci_low < 1


def test_warnings() -> None:
    assert any("p99" in w for w in sampling.warnings_for("x", [100] * 50))
    slow_start = [10_000] * 10 + [1_000] * 90
    assert any("first samples" in w for w in sampling.warnings_for("x", slow_start))
    outliers = [100] * 90 + [100_000] * 10
    assert any("outliers" in w for w in sampling.warnings_for("x", outliers))
    assert sampling.warnings_for("x", list(range(1000, 1200))) == []


def test_bench_end_to_end(cli, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = cli("bench", "--iterations", "12", "--warmup", "2", "--out", str(out),
                 "--target", "balance", "--target", "stats_revenue")
    assert result.exit_code == 0, result.stderr
    body = result.json()
    assert {b["budget"] for b in body["budgets"]} and body["speedups"]["stats_revenue"]
    for name in ("results.json", "summary.csv", "report.md", "ecdf.png", "box.png", "timeline.png"):
        assert (out / name).stat().st_size > 0, name
    for png in ("ecdf.png", "box.png", "timeline.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    for series in ("balance/miss", "balance/hit", "balance/db", "stats_revenue/hit",
                   "baseline/redis_get", "baseline/pg_point_query"):
        assert len(results["samples_ns"][series]) == 12
    assert results["environment"]["row_counts"]["cards"] >= 24_000
    summary = results["summary"]
    assert summary["stats_revenue/hit"]["p50_us"] * 5 < summary["stats_revenue/miss"]["p50_us"]
    assert "![ECDF" in (out / "report.md").read_text()
    assert cli("bench", "--target", "nope").exit_code == 2


def test_bench_open_loop_sweep_writes_and_budget_gate(cli, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = cli("bench", "--iterations", "5", "--warmup", "1", "--target", "balance",
                 "--target", "recharge", "--rates", "40,80", "--concurrency", "2",
                 "--duration", "1", "--slo-ms", "50", "--check-budgets", "--out", str(out))
    body = result.json()
    # 5 samples: no budget has a verdict, so --check-budgets has nothing to fail on
    assert result.exit_code == 0, result.stderr
    assert {b["status"] for b in body["budgets"]} == {"not enough samples"}
    assert "| not enough samples |" in (out / "report.md").read_text()
    loads = {(r["target"], r["kind"], r["offered_per_second"]): r for r in body["loads"]}
    assert set(loads) == {(t, k, r) for t, k in (("balance", "miss"), ("balance", "hit"),
                                                  ("balance", "db"), ("recharge", "write"))
                          for r in (40.0, 80.0)}
    for r in loads.values():
        assert r["mode"] == "open" and r["operations"] > 0 and 0 <= r["slower_than_slo"] <= 1
        assert r["p50_us"] <= r["p99_us"] <= r["p99_9_us"] <= r["max_us"]
    writes = sum(r["operations"] for (t, _, _), r in loads.items() if t == "recharge")
    check = body["write_check"]
    assert check["ok"] and check["recharges_reported"] == 6 + writes == check["recharges_found"]
    assert check["missing_or_duplicated"] == check["balance_mismatches"] == 0
    assert {(s["target"], s["kind"]) for s in body["saturation"]} == {
        (t, k) for t, k, _ in loads}
    for name in ("curve-balance.png", "curve-recharge.png", "timeseries.png", "load.csv",
                 "per_second.csv", "hgrm/balance-hit-80per_s.hgrm"):
        assert (out / name).stat().st_size > 0, name
    assert "Value" in (out / "hgrm/balance-hit-80per_s.hgrm").read_text()
    for row in csv.DictReader((out / "summary.csv").open()):  # numbers, never display strings
        for column, value in row.items():
            if column not in ("target", "kind") and value:
                float(value)
    saved = json.loads((out / "results.json").read_text())
    assert isinstance(saved["summary"]["balance/miss"]["p50_us"], float)
    merged = load.Recording.decode({**saved["loads"][0], "per_second": {}, "busy_share": 0.0,
                                    "latency": saved["loads"][0]["histogram"]})
    assert merged.latency.get_total_count() == saved["loads"][0]["operations"]


def test_bench_closed_loop_and_compare(cli, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    result = cli("bench", "--iterations", "5", "--warmup", "1", "--target", "balance",
                 "--target", "recharge", "--concurrency", "2", "--duration", "1", "--no-plot",
                 "--out", str(first))
    assert result.exit_code == 0, result.stderr
    body = result.json()
    writes = [r for r in body["loads"] if r["target"] == "recharge"]
    assert [r["mode"] for r in body["loads"]] == ["closed"] * 4 and writes[0]["operations"] > 0
    assert body["write_check"]["recharges_reported"] == 6 + writes[0]["operations"]
    assert len(json.loads((first / "results.json").read_text())["samples_ns"]["recharge/write"]) == 5
    assert "## Load runs" in (first / "report.md").read_text()

    assert cli("bench", "--iterations", "5", "--warmup", "1", "--target", "balance", "--no-plot",
               "--out", str(second)).exit_code == 0
    compared = cli("bench", "compare", str(first / "results.json"), str(second),
                   "--out", str(tmp_path / "cmp"))
    assert compared.exit_code == 0, compared.stderr
    rows = {r["series"]: r for r in compared.json()}
    hit = rows["balance/hit"]
    assert hit["ci_low"] <= hit["ratio"] <= hit["ci_high"] and hit["run"] == "second"
    assert rows["recharge/write"]["change"] == "only in first"
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("bench", "compare", str(first)).exit_code == 2
    assert cli("bench", "compare", str(first), str(tmp_path / "missing.json")).exit_code == 2
    assert cli("bench", "--rates", "10,x").exit_code == 2
    assert cli("bench", "--rates", "0").exit_code == 2


# Open loop versus closed loop against a real server that stalls -------------------------

def _stall(server: faults.Valkey, after: float, seconds: float) -> threading.Thread:
    def pause() -> None:
        time.sleep(after)
        server.pause()
        time.sleep(seconds)
        server.resume()

    thread = threading.Thread(target=pause)
    thread.start()
    return thread


def test_open_loop_shows_the_stall_a_closed_loop_hides(tmp_path: Path) -> None:
    """The server stops for 0.4 s of a 2 s run. The closed loop sends nothing meanwhile,
    so only one operation is slow; the open loop keeps its schedule, and every operation
    meant to start during the stall waits for it."""
    with faults.valkey(tmp_path / "valkey") as server:
        client = server.client()
        client.set("k", "v")
        seen = {}
        for name, rate in (("closed", None), ("open", 500.0)):
            thread = _stall(server, 0.8, 0.4)
            seen[name] = load.drive(lambda _i: client.get("k"), 2.0, rate, seed=7)
            thread.join()
        client.close()
    closed, opened = seen["closed"].latency, seen["open"].latency
    assert closed.get_max_value() >= 350e6 and opened.get_max_value() >= 350e6
    assert closed.get_value_at_percentile(99) < 50e6  # one slow operation among thousands
    assert opened.get_value_at_percentile(90) > 100e6  # ~a fifth of the schedule queued
    assert opened.get_total_count() == pytest.approx(1000, rel=0.2)
    # a 0.4 s stall is within the 1 s skip limit: at most the last few, still due when the
    # run's time was up on a busy machine, went unsent
    assert seen["open"].late >= 100 and seen["open"].skipped < 10


def test_open_loop_counts_late_and_skipped_when_it_cannot_keep_up() -> None:
    rec = load.drive(lambda _i: time.sleep(0.005), 1.5, rate=1000.0, seed=1)
    assert rec.skipped > 0 and rec.late > 0
    assert rec.operations + rec.skipped == pytest.approx(1500, rel=0.15)
    run = load.LoadRun("balance", "hit", 1, 1.5, 1000.0, rec)
    assert not run.kept_up and run.achieved < 300
    sat = analysis.saturation([load.LoadRun("balance", "hit", 1, 1, 100.0, _recording(100)),
                               run])
    assert sat == [analysis.SaturationPoint("balance", "hit", True, max(100.0, run.achieved),
                                            1000.0, False)]


def _recording(count: int, value_ns: int = 1_000_000, second: int = 0) -> load.Recording:
    rec = load.Recording()
    for _ in range(count):
        rec.record(second, value_ns)
    return rec


def test_clients_as_threads_in_fewer_processes_write_exactly_once(database: Database,
                                                                  conn) -> None:
    """2 processes of 2 client threads each (as pgbench -c 4 -j 2), every client with its own
    connections: every recharge they count is in the database, once."""
    scratch = runner.ScratchCards.create(
        conn, load.scratch_cards_needed(4, 1.0, []) * runner.WRITES_PER_CARD)
    base = load.Endpoint(database.dsn, database.redis_url, database.prefix)
    with load.pool(2) as pool:
        load.warm(pool, 2)
        recording = load.run(load.jobs(base, runner.WRITE_TARGET, runner.WRITE_KIND,
                                       scratch.card_ids, 2, 1.0, None, 1, clients=2), pool)
    assert recording.operations > 4
    assert recording.latency.get_total_count() == recording.operations
    assert scratch.check(conn, recording.operations).ok
    assert not scratch.check(conn, recording.operations + 1).ok  # one more than there is


def test_hdr_recordings_merge_across_processes() -> None:
    parts = [_recording(900, 100_000, 0), _recording(90, 10_000_000, 1),
             _recording(10, 1_000_000_000, 1)]
    merged = load.Recording()
    for part in parts:
        merged.merge(load.Recording.decode(part.encode()))  # as it crosses from a process
    h = merged.latency
    assert h.get_total_count() == merged.operations == 1000
    assert h.get_value_at_percentile(50) == pytest.approx(100_000, rel=1e-3)
    assert h.get_value_at_percentile(95) == pytest.approx(10_000_000, rel=1e-3)
    assert h.get_value_at_percentile(99.9) == pytest.approx(1_000_000_000, rel=1e-3)
    assert merged.per_second[0].get_total_count() == 900
    assert merged.per_second[1].get_total_count() == 100
    assert analysis.share_slower(h, 5.0) == pytest.approx(0.1)
    assert analysis.share_slower([1_000_000, 9_000_000], 5.0) == 0.5


# bench compare: drift of the raw baselines, and the regression gate -----------------------

def _results(path: Path, scale: dict[str, float]) -> Path:
    import numpy as np

    rng = np.random.default_rng(5)
    base = {"balance/hit": 200_000, "balance/db": 400_000, "stats_revenue/hit": 210_000,
            "baseline/redis_get": 180_000, "baseline/pg_point_query": 350_000}
    samples = {series: (rng.normal(ns, ns * 0.03, 300) * scale.get(series, 1.0)).astype(int)
               .tolist() for series, ns in base.items()}
    path.mkdir()
    (path / "results.json").write_text(json.dumps({"samples_ns": samples}))
    return path


def test_compare_warns_on_baseline_drift_and_gates_regressions(tmp_path: Path) -> None:
    base = _results(tmp_path / "base", {})
    busier = _results(tmp_path / "busier", {s: 2.0 for s in (
        "balance/hit", "balance/db", "stats_revenue/hit", "baseline/redis_get",
        "baseline/pg_point_query")})
    slower = _results(tmp_path / "slower", {"balance/hit": 1.5})
    drift = run_cli("bench", "compare", str(base), str(busier), "--fail-if-slower", "10",
                    "--no-plot", "--out", str(tmp_path / "c1"))
    assert drift.exit_code == 0, drift.stderr  # everything ×2, machine included: no regression
    assert "baseline redis_get itself moved" in drift.stderr
    rows = {r["series"]: r for r in json.loads(drift.stdout)}
    assert rows["balance/hit"]["ratio"] == pytest.approx(2.0, rel=0.05)
    assert rows["balance/hit"]["normalised_ratio"] == pytest.approx(1.0, rel=0.05)
    gate = run_cli("bench", "compare", str(base), str(slower), "--fail-if-slower", "10",
                   "--out", str(tmp_path / "c2"))
    assert gate.exit_code == 1
    assert "balance/hit" in gate.stderr and "stats_revenue/hit" not in gate.stderr
    assert "moved" not in gate.stderr
    assert (tmp_path / "c2" / "compare.png").read_bytes()[:4] == b"\x89PNG"
    lenient = run_cli("bench", "compare", str(base), str(slower), "--fail-if-slower", "60",
                      "--no-plot", "--out", str(tmp_path / "c3"))
    assert lenient.exit_code == 0


# Budgets from too few samples; what the figures show (on made-up runs) ---------------------

def _summary(n: int, hit_us: float) -> dict[str, sampling.Summary]:
    def at(p50: float) -> sampling.Summary:
        return sampling.Summary(n, p50, p50, p50, p50, p50, p50, p50, 0.0)

    return {"balance/hit": at(hit_us), "baseline/redis_get": at(100.0),
            "balance/db": at(100.0), "baseline/pg_point_query": at(100.0)}


def test_budgets_from_too_few_samples_have_no_verdict() -> None:
    few = analysis.budgets(_summary(50, 200.0), cluster=False)
    assert [b.status for b in few] == ["not enough samples"] * 2
    assert few[0].samples == 50 and few[0].samples_needed == analysis.BUDGET_SAMPLES == 400
    assert analysis.Analysis({}, {}, few).budgets_pass  # --check-budgets does not fail on them
    enough = analysis.budgets(_summary(400, 200.0), cluster=False)
    assert [b.status for b in enough] == ["fail", "pass"]
    assert not analysis.Analysis({}, {}, enough).budgets_pass


def _made_up_run(targets: list[str], rates: list[float], capacity: float) -> session.RunResult:
    """Samples and open-loop runs as a sweep past `capacity` ops/s would give them: beyond it
    the achieved rate falls and operations are skipped."""
    import datetime as dt
    import random

    rng = random.Random(1)
    samples = runner.Samples()
    series = [f"{t}/{k}" for t in targets for _, k in runner.kinds_of(t)]
    for name in series + [f"baseline/{b}" for b in runner.BASELINES]:
        for _ in range(20):
            samples.add(name, int(rng.lognormvariate(12, 0.4)))
    loads = []
    for name in series:
        target, kind = name.split("/")
        for rate in rates:
            kept = rate <= capacity
            achieved = rate if kept else capacity * 0.6
            rec = _recording(int(achieved * 2), 1_000_000 if kept else 50_000_000)
            rec.skipped = 0 if kept else int((rate - achieved) * 2)
            loads.append(load.LoadRun(target, kind, 2, 2.0, rate, rec))
    env = environment.Environment("3", "x", 2, "x", "x", "x", "x", "valkey",
                                  {"cards": 1, "trips": 1}, None, {})
    spec = session.RunSpec(targets, 20, 1, 1, 0, 2.0, rates)
    return session.RunResult(spec, dt.datetime.now(dt.UTC), samples, loads,
                             analysis.analyse(samples, loads, targets, 1), env)


def test_box_legend_lists_exactly_the_series_drawn() -> None:
    fig = plots.box(_made_up_run(["balance"], [], 1))
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "miss", "hit", "db", "baselines"]


def test_curve_is_drawn_against_the_offered_rate_and_marks_saturation() -> None:
    rates = [100.0, 1_000.0, 4_000.0]
    fig = plots.curve(_made_up_run(["balance"], rates, 1_500), "balance")
    latency, served = fig.axes
    for line in latency.get_lines() + served.get_lines():
        xs = list(line.get_xdata())
        assert xs == sorted(xs) and set(xs) <= set(rates)  # never folds back leftwards
    assert [t.get_text() for t in served.get_xticklabels()] == ["100", "1,000", "4,000"]
    hollow = [line for line in served.get_lines() if line.get_markerfacecolor() == "white"
              and list(line.get_xdata())]
    assert hollow and all(list(line.get_xdata()) == [4_000.0] for line in hollow)
    assert "past saturation (not kept up)" in [t.get_text() for t in served.get_legend().get_texts()]


def test_timeseries_tick_labels_are_readable() -> None:
    fig = plots.timeseries(_made_up_run(["balance", "stats_revenue"], [100.0, 300.0, 1_000.0,
                                                                        3_000.0], 2_000))
    p99 = fig.axes[1]
    labels = p99.get_xticklabels()
    assert len(labels) == 24 and labels[3].get_text() == "3k"
    assert all(t.get_fontsize() >= 9 and t.get_rotation() == 0 for t in labels)
    width = fig.get_figwidth() * 72  # points
    assert width / len(labels) >= 3 * 9  # room for a few characters each
    assert [t.get_text() for t in fig.axes[0].texts] == ["balance", "stats_revenue"]


# Ctrl-C: a partial report of what was measured, or no folder at all ----------------------

def _wait_for_application(conn, pattern: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                        "AND application_name LIKE %s", (pattern,)).fetchone():
            return
        time.sleep(0.05)
    raise AssertionError(f"no backend {pattern} within {timeout} s")


def _interrupt(env: dict[str, str], conn, pattern: str, *args: str) -> tuple[int, str, str, float]:
    """`recharge …` interrupted (SIGINT to it alone) once a backend `pattern` is connected:
    (exit status, stdout, stderr, seconds to exit). Its own process group, so that on a
    failure no load process outlives it."""
    process = subprocess.Popen([sys.executable, "-m", "recharge_cli", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_application(conn, pattern)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        return process.returncode, stdout, stderr, time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def test_interrupt_during_load_writes_a_partial_report_at_once(database: Database, conn,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "partial"
    env = faults.cli_env(database.dsn, database.redis_url, database.prefix, tmp_path / "home")
    status, stdout, stderr, seconds = _interrupt(
        env, conn, "recharge-bench-load-%", "--format", "json", "bench", "--iterations", "5",
        "--warmup", "1", "--target", "balance", "--concurrency", "2", "--duration", "60",
        "--out", str(out))
    assert status == 130, stderr
    assert seconds < 5, seconds  # the load processes are stopped, not waited for (60 s)
    assert "partial" in stderr and json.loads(stdout)["partial"] is True
    results = json.loads((out / "results.json").read_text())
    assert results["partial"] is True
    assert results["progress"] == {"trials": 35, "trials_planned": 35, "load_runs": 0,
                                   "load_runs_planned": 3}
    assert len(results["samples_ns"]["balance/hit"]) == 5
    assert "**Partial run: interrupted**" in (out / "report.md").read_text()
    assert not list(out.glob("*.png"))  # figures take seconds: not when interrupted
    time.sleep(1)
    assert not conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                            "AND application_name LIKE 'recharge-bench-load-%'").fetchone()


def test_interrupt_before_any_sample_removes_the_empty_folder(database: Database, conn,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "nothing"
    env = faults.cli_env(database.dsn, database.redis_url, database.prefix, tmp_path / "home")
    status, _, stderr, _ = _interrupt(env, conn, "recharge-bench-baseline", "bench",
                                      "--iterations", "5", "--warmup", "100000000",
                                      "--target", "balance", "--out", str(out))
    assert status == 130, stderr
    assert not out.exists() and f"removed {out}/" in stderr


def test_a_mean_ratio_interval_is_a_number_when_some_intervals_saw_nothing() -> None:
    """Per-second server time of a short cached run: some seconds saw none. Resamples that
    drew only those have no ratio; the interval is still a finite range around the ratio."""
    ratio = sampling.mean_ratio([4.0, 5.0, 6.0], [0.0, 0.0, 1.0], seed=3)
    assert ratio.ratio == 15.0
    assert 0 < ratio.ci_low <= ratio.ci_high < float("inf")
    assert not any(map(math.isnan, (ratio.ci_low, ratio.ci_high)))
