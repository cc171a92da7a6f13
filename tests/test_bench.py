"""Bench statistics on known samples, the exporters, and a tiny end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recharge_cli.bench import statistics


def test_summary_on_known_samples() -> None:
    s = statistics.summarize([1000 * v for v in range(1, 101)])  # 1..100 µs
    assert s["n"] == 100 and s["min_us"] == 1 and s["max_us"] == 100
    assert s["p50_us"] == pytest.approx(50.5) and s["p90_us"] == pytest.approx(90.1)
    assert s["p99_us"] == pytest.approx(99.01) and s["mean_us"] == pytest.approx(50.5)
    assert s["sd_us"] == pytest.approx(29.011, abs=1e-3)


def test_bootstrap_interval_contains_the_true_ratio() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    slow = (rng.normal(1000, 50, 400)).astype(int).tolist()
    fast = (rng.normal(100, 5, 400)).astype(int).tolist()
    sp = statistics.speedup(slow, fast, seed=1)
    assert sp["ci_low"] < 10 < sp["ci_high"]
    assert sp["ci_low"] <= sp["ratio"] <= sp["ci_high"]
    assert sp["ci_high"] - sp["ci_low"] < 1


def test_warnings() -> None:
    assert any("p99" in w for w in statistics.warnings_for("x", [100] * 50))
    slow_start = [10_000] * 10 + [1_000] * 90
    assert any("first samples" in w for w in statistics.warnings_for("x", slow_start))
    outliers = [100] * 90 + [100_000] * 10
    assert any("outliers" in w for w in statistics.warnings_for("x", outliers))
    assert statistics.warnings_for("x", list(range(1000, 1200))) == []


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


def test_bench_writes_throughput_and_compare(cli, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    result = cli("bench", "--iterations", "5", "--warmup", "1", "--target", "balance",
                 "--target", "recharge", "--concurrency", "2", "--duration", "1", "--no-plot",
                 "--out", str(first))
    assert result.exit_code == 0, result.stderr
    body = result.json()
    check, throughput = body["write_check"], body["throughput"]
    assert throughput["balance"]["operations"] > 0 and throughput["recharge"]["operations"] > 0
    assert check["ok"] and check["writes"] == 6 + throughput["recharge"]["operations"]
    assert check["recharges"] == check["writes"] and check["balance"] == 1_000 * check["writes"]
    assert len(json.loads((first / "results.json").read_text())["samples_ns"]["recharge/write"]) == 5
    assert "## Throughput" in (first / "report.md").read_text()

    assert cli("bench", "--iterations", "5", "--warmup", "1", "--target", "balance", "--no-plot",
               "--out", str(second)).exit_code == 0
    compared = cli("bench", "compare", str(first / "results.json"), str(second),
                   "--out", str(tmp_path / "cmp"))
    assert compared.exit_code == 0, compared.stderr
    rows = {r["series"]: r for r in compared.json()}
    hit = rows["balance/hit"]
    assert hit["ci_low"] <= hit["ratio"] <= hit["ci_high"] and hit["run"] == "second"
    assert "recharge/write" not in rows  # only in the first run
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("bench", "compare", str(first)).exit_code == 2
    assert cli("bench", "compare", str(first), str(tmp_path / "missing.json")).exit_code == 2
