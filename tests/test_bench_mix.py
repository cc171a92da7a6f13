"""bench --mix: the spec's parsing, YCSB's distributions, the plan's proportions, and real
mix runs (proportions, hit ratio against skew, the write check, the no-cache baseline)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from recharge_cli.bench import distributions, mix
from recharge_cli.errors import InvalidInput

MIX = "balance=50,card_trips=10,stats_revenue=10,trips_total=5,active_users=5,tap=10,recharge=10"


def _chi_square_limit(df: int, z: float = 3.29) -> float:
    """The chi-square quantile near 0.9995 (Wilson–Hilferty), for df ≥ 1."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _chi_square(counts: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    """The statistic over cells expecting ≥ 5 (the rest pooled), and its degrees of freedom."""
    big = expected >= 5
    stat = float(((counts[big] - expected[big]) ** 2 / expected[big]).sum())
    cells = int(big.sum())
    rest, rest_expected = counts[~big].sum(), expected[~big].sum()
    if rest_expected >= 5:
        stat += float((rest - rest_expected) ** 2 / rest_expected)
        cells += 1
    return stat, cells - 1


@pytest.mark.parametrize("n, theta", [(1_000, 0.99), (24_000, 0.99), (500, 0.5)])
def test_zipfian_matches_its_theoretical_frequencies(n: int, theta: float) -> None:
    z = distributions.Zipfian(n, theta)
    draws = z.draw(np.random.default_rng(7), 400_000)
    counts = np.bincount(draws, minlength=n)
    stat, df = _chi_square(counts, z.probabilities() * draws.size)
    assert stat < _chi_square_limit(df), (stat, df)
    # rank-frequency: beyond the first few ranks the generator follows Zipf's law, slope −θ
    ranks = np.arange(20, min(n, 400))
    slope = np.polyfit(np.log(ranks + 1), np.log(counts[ranks] / draws.size), 1)[0]
    assert slope == pytest.approx(-theta, abs=0.1)
    assert abs(z.probabilities().sum() - 1) < 1e-9


def test_zipfian_sampler_would_fail_against_the_wrong_law() -> None:
    """The chi-square check has power: uniform draws fail it."""
    z = distributions.Zipfian(1_000)
    uniform = np.random.default_rng(1).integers(0, 1_000, 100_000)
    stat, df = _chi_square(np.bincount(uniform, minlength=1_000), z.probabilities() * 100_000)
    assert stat > _chi_square_limit(df)


def test_hotspot_uniform_and_latest() -> None:
    rng = np.random.default_rng(3)
    hot = distributions.draw("hotspot", 10_000, 100_000, rng)
    assert np.mean(hot < 2_000) == pytest.approx(0.8, abs=0.01)
    uniform = distributions.draw("uniform", 10_000, 100_000, rng)
    assert np.mean(uniform < 2_000) == pytest.approx(0.2, abs=0.01)
    latest = distributions.draw("latest", 10_000, 100_000, rng)  # rank 0 = the newest item
    assert np.mean(latest == 0) == pytest.approx(1 / distributions.zeta(10_000, 0.99), abs=0.01)


def test_plan_honours_the_mix_proportions_and_write_capacity() -> None:
    spec = mix.MixSpec(mix.parse(MIX), "zipfian")
    ops, cards = mix.plan_sends(spec, list(range(1, 5_001)), 2_000, 5, 4, seed=3)
    names = list(spec.weights)
    counts = np.bincount(np.concatenate(ops), minlength=len(names))
    stat, df = _chi_square(counts, np.asarray(list(spec.shares().values())) * counts.sum())
    assert stat < _chi_square_limit(df)
    per_card = {"tap": 7, "recharge": 9}
    needed = mix.write_cards_needed(names, ops[0], per_card)
    pools = {op: list(range(1_000_000 * (k + 1), 1_000_000 * (k + 1) + n))
             for k, (op, n) in enumerate(needed.items())}
    assigned = mix.assign_writes(names, ops[0], cards[0], pools, per_card)
    assert all(not pool for pool in pools.values())  # exactly as many cards as needed
    for op in mix.WRITES:
        used = np.unique(assigned[ops[0] == names.index(op)], return_counts=True)[1]
        assert used.max() <= per_card[op] and used.size == needed[op]


@pytest.mark.parametrize("spec, says", [
    ("", "write OP=WEIGHT"), ("balance", "write OP=WEIGHT"), ("balance=x", "whole number"),
    ("balance=-1", "whole number"), ("balance=1.5", "whole number"), ("nope=3", "unknown"),
    ("balance=1,balance=2", "twice"), ("balance=0,tap=0", "every weight is 0"),
    ("=5", "write OP=WEIGHT")])
def test_bad_mix_specs_exit_2_with_one_line(cli, spec: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        mix.parse(spec)
    result = cli("bench", "--mix", spec, "--rate", "10")
    assert result.exit_code == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_mix_option_mistakes_exit_2(cli) -> None:
    for args in (["--mix", "balance=1"], ["--mix", "balance=1", "--rate", "5", "--target",
                                          "balance"],
                 ["--mix", "balance=1", "--rate", "5", "--distribution", "pareto"],
                 ["--mix", "balance=1", "--rate", "5", "--zipf-theta", "1.5"],
                 ["--mix", "balance=1", "--rate", "5", "--ttl-scale", "0"]):
        result = cli("bench", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _active_cards(conn) -> int:
    return conn.execute("SELECT count(*) AS n FROM cards WHERE status = 'active'").fetchone()["n"]


def test_mix_run_cached_and_uncached_with_write_check(cli, conn, tmp_path: Path) -> None:
    active = _active_cards(conn)
    out = tmp_path / "mix"
    result = cli("bench", "--mix", MIX, "--rates", "100,200", "--duration", "2",
                 "--ttl-scale", "0.05", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    body = result.json()["mix"]
    assert _active_cards(conn) == active  # every scratch card retired
    saved = mix.MixResult.from_json(json.loads((out / "results.json").read_text())["mix"])
    assert saved.to_json() == body  # one JSON definition, both ways
    assert [r.offered_per_second for r in saved.cached] == [100, 200] == [
        r.offered_per_second for r in saved.no_cache]
    shares = saved.weights
    total = sum(shares.values())
    for run in saved.runs():
        n = run.whole.operations
        assert n == sum(s.operations for s in run.operations.values()) > 0
        for op, weight in shares.items():  # within 4 standard deviations of the weight
            p = weight / total
            assert abs(run.operations[op].share - p) < 4 * math.sqrt(p * (1 - p) / n) + 0.01
        assert run.whole.p50_us <= run.whole.p99_us <= run.whole.p99_9_us
        assert run.whole.pg_calls_per_second > 0 and run.whole.pg_cpu_seconds_per_op > 0
        assert (run.whole.hit_ratio is None) == (run.mode == "no_cache")
    for cached, uncached in zip(saved.cached, saved.no_cache, strict=True):
        # the same schedule: as many operations due, each the planned one, so the counts of
        # each operation differ by no more than what a busy machine skipped
        assert cached.whole.operations + cached.skipped == \
            uncached.whole.operations + uncached.skipped
        for op, s in cached.operations.items():
            assert abs(s.operations - uncached.operations[op].operations) <= \
                cached.skipped + uncached.skipped
        # a statistic is computed by PostgreSQL on every uncached read, rarely when cached
        assert cached.operations["stats_revenue"].hit_ratio > 0.5
    assert saved.statistics_ttl_seconds == {"stats_revenue": 3, "trips_total": 3,
                                            "active_users": 15}
    assert [s.offered_per_second for s in saved.saving] == [100, 200]
    for s in saved.saving:
        for r in (s.latency_p50, s.latency_p99):
            assert r.ci_low <= r.ratio <= r.ci_high or math.isclose(r.ratio, r.ci_low)
        for r in (s.pg_calls_per_op, s.pg_cpu_per_op):  # from a 2 s run's per-second samples
            assert 0 <= r.ci_low <= r.ci_high and r.ratio > 0
    for cached, uncached in zip(saved.cached, saved.no_cache, strict=True):
        # the statistics computed on every uncached read: more PostgreSQL calls per operation
        def per_op(run: mix.MixRunSummary) -> float:
            return run.whole.pg_calls_per_second / run.whole.achieved_per_second

        assert per_op(uncached) > per_op(cached)
        assert s.operations_p50["stats_revenue"].ratio > 2  # a hit is far cheaper than SQL
    check = saved.write_check
    writes = {op: sum(r.operations[op].operations for r in saved.runs()) for op in mix.WRITES}
    assert check.ok and check.recharges_reported == writes["recharge"] > 0
    assert check.taps_reported == check.taps_found == writes["tap"] > 0
    assert check.recharges_found == writes["recharge"] + check.funding_recharges
    assert check.missing_or_duplicated == check.balance_mismatches == 0
    report = (out / "report.md").read_text()
    assert "## What the cache saved" in report and saved.pg_source in report
    assert (out / "curve-mix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "hit_ratio" in (out / "summary.csv").read_text().splitlines()[0]
    compared = cli("bench", "compare", str(out), str(out / "results.json"), "--no-plot",
                   "--out", str(tmp_path / "cmp"))
    assert compared.exit_code == 0, compared.stderr
    rows = {r["series"]: r for r in compared.json()}
    for series in ("mix/cached/mix@100", "mix/no_cache/tap@200", "mix/cached/balance@200"):
        assert rows[series]["ratio"] == 1 and rows[series]["change"] == "no clear change"


def test_hit_ratio_rises_with_skew(cli, tmp_path: Path) -> None:
    ratios = {}
    for distribution in ("uniform", "zipfian"):
        result = cli("bench", "--mix", "balance=1", "--rate", "300", "--duration", "1.5",
                     "--distribution", distribution, "--skip-no-cache-baseline", "--no-plot",
                     "--out", str(tmp_path / distribution))
        assert result.exit_code == 0, result.stderr
        body = result.json()["mix"]
        assert body["no_cache"] == [] and body["saving"] == []
        ratios[distribution] = body["cached"][0]["whole"]["hit_ratio"]
    assert ratios["zipfian"] > ratios["uniform"] + 0.15, ratios


def test_write_check_fails_on_a_write_that_is_not_there(conn) -> None:
    scratch = mix.Scratch.create(conn, {"tap": 1, "recharge": 1})
    try:
        recharge_card = scratch.pools["recharge"][0]
        row = conn.execute("SELECT * FROM recharge_card(%s, 1000, NULL, %s)",
                           (recharge_card, "mix-check-1")).fetchone()
        good = [("recharge", recharge_card, row["recharge_id"])]
        assert scratch.check(conn, good).ok
        bogus = scratch.check(conn, [*good, ("tap", scratch.pools["tap"][0], 1)])
        assert not bogus.ok and bogus.missing_or_duplicated == 1
        doubled = scratch.check(conn, good * 2)
        assert not doubled.ok and doubled.missing_or_duplicated == 1
        unreported = scratch.check(conn, [])
        assert not unreported.ok and unreported.recharges_found == 1 + unreported.funding_recharges
    finally:
        scratch.retire(conn)


def test_interrupted_mix_retires_its_scratch_cards(database, conn, tmp_path: Path) -> None:
    """Ctrl-C during the first run: exit 130, no load backend left, no scratch card active."""
    from tests import faults
    from tests.test_bench import _interrupt

    active = _active_cards(conn)
    env = faults.cli_env(database.dsn, database.redis_url, database.prefix, tmp_path / "home")
    status, _, stderr, seconds = _interrupt(
        env, conn, f"{mix.APPLICATION}-%", "bench", "--mix", "balance=1,tap=1,recharge=1",
        "--rate", "50", "--duration", "60", "--out", str(tmp_path / "mix"))
    assert status == 130, stderr
    assert seconds < 5, seconds  # the load processes are stopped, not waited for
    assert _active_cards(conn) == active
    assert not (tmp_path / "mix").exists()  # nothing measured: the empty folder removed
    deadline = time.monotonic() + 3  # the backends of the stopped processes end
    while conn.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                       "AND application_name LIKE %s", (f"{mix.APPLICATION}-%",)).fetchone():
        assert time.monotonic() < deadline, "a load backend outlived the interrupt"
        time.sleep(0.05)


def test_results_of_an_earlier_version_are_still_read() -> None:
    """bench compare reads a results.json whose write check had the earlier fields."""
    from recharge_cli.bench.results import Results

    earlier = {"samples_ns": {"balance/hit": [1, 2]}, "write_check": {
        "scratch_cards": 1, "writes": 6, "recharges": 6, "expected_balance": 6000,
        "balance": 6000, "ledger_mismatches": 0, "ok": True},
        "summary": {"balance/hit": {"n": 2, "min_us": 1, "p50_us": 1.5, "p90_us": 2,
                                    "p95_us": 2, "p99_us": 2, "max_us": 2, "mean_us": 1.5,
                                    "sd_us": 0.7}}}
    results = Results.from_json(earlier)
    assert results.write_check is None and results.summary["balance/hit"].p50_us == 1.5
    with pytest.raises(ValueError):
        Results.from_json({"samples_ns": {}, "summary": {"balance/hit": {"n": "many"}}})


def test_pg_load_from_pg_stat_statements_where_it_is_preloaded(tmp_path: Path) -> None:
    """A private embedded PostgreSQL with pg_stat_statements preloaded and created: the mix
    reads PostgreSQL's load from it, and finds the uncached mix heavier per operation."""
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RECHARGE_", "PG")) and k not in ("DATABASE_URL", "REDIS_URL")}
    env["RECHARGE_HOME"] = str(home)

    def recharge(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "recharge_cli", "--format", "json", *args],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    servers = Path(json.loads(recharge("local", "start"))["server_dir"])
    try:
        with (servers / "pg" / "data" / "postgresql.conf").open("a") as conf:
            conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
        recharge("local", "stop")
        status = json.loads(recharge("local", "start"))
        import psycopg

        with psycopg.connect(host=status["postgresql_socket_dir"], port=status["postgresql_port"],
                             user="postgres", dbname="recharge", autocommit=True) as admin:
            admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        body = json.loads(recharge("bench", "--mix", "balance=6,stats_revenue=2,tap=1,recharge=1",
                                   "--rate", "150", "--duration", "2", "--no-plot",
                                   "--out", str(tmp_path / "mix")))["mix"]
    finally:
        recharge("local", "stop")
    assert body["pg_source"] == "pg_stat_statements"
    cached, uncached = body["cached"][0], body["no_cache"][0]
    for run in (cached, uncached):
        assert run["whole"]["pg_calls_per_second"] > 0 and run["whole"]["pg_cpu_seconds_per_op"] > 0
    per_op = [r["whole"]["pg_calls_per_second"] / r["whole"]["achieved_per_second"]
              for r in (cached, uncached)]
    assert per_op[1] > per_op[0]
    assert body["write_check"]["ok"]


def test_a_mix_sends_each_arrival_its_planned_operation() -> None:
    """Behind schedule, skipped arrivals keep their place: operation i is the i-th
    arrival's, so a cached and an uncached run stay aligned on their plan."""
    from recharge_cli.bench import load

    seen: list[int] = []
    rec = load.drive(lambda i: (seen.append(i), time.sleep(0.004)), 2.5, rate=800.0, seed=2,
                     by_arrival=True)
    assert rec.skipped > 0 and len(seen) == rec.operations
    assert seen == sorted(set(seen)) and seen[-1] < rec.operations + rec.skipped
    assert seen[-1] >= len(seen)  # over 1 s behind: arrivals skipped in between, not sent
