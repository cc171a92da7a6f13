"""A real streaming read replica (pg_basebackup from the embedded binaries, on loopback):
statistics read there and state its lag; past --max-replica-lag they fall back to the
primary with a warning; balances never read a replica; local status/stop cover it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recharge_cli import db, local, migrations
from tests.faults import cli, cli_env


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    home = tmp_path_factory.mktemp("replica-home")
    state = local.start(home)
    lay = local.layout(home)
    with db.connect(local.dsn_for(lay, state)) as conn:
        migrations.migrate(conn)
        conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations VALUES (1, 'Portal', 'PORTAL', 99)")
        conn.execute("INSERT INTO cards (card_id) VALUES (1)")
    state = local.start(home, replica=True)
    replica = local.replica_dsn_for(lay, state)
    assert replica is not None
    try:
        yield home, local.dsn_for(lay, state), replica
    finally:
        local.purge(home)


def _caught_up(replica: str) -> None:
    deadline = time.monotonic() + 20
    with db.connect(replica) as conn:
        while db.replica_lag(conn) != 0 and time.monotonic() < deadline:
            time.sleep(0.05)


def _field(output: str, name: str) -> str:
    return json.loads(output)[name]


def test_statistics_read_the_replica_and_state_its_lag(topology, tmp_path: Path) -> None:
    _, primary, replica = topology
    env = {**cli_env(primary, "", "recharge:test:replica:", tmp_path), "RECHARGE_READ_DSN": replica,
           "RECHARGE_NO_CACHE": "1"}
    assert cli(env, "recharge", "--card", "1", "--amount", "5000").returncode == 0
    _caught_up(replica)
    stats = cli(env, "stats", "revenue")
    assert stats.returncode == 0, stats.stderr
    assert '"recharged": 5000' in stats.stdout and '"replica_lag_seconds": 0.0' in stats.stdout

    with db.connect(replica) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            assert cli(env, "recharge", "--card", "1", "--amount", "2000").returncode == 0
            time.sleep(1.2)
            stale = cli(env, "--max-replica-lag", "600", "stats", "revenue")
            assert '"recharged": 5000' in stale.stdout and '"replica_lag_seconds": ' in stale.stdout
            fresh = cli(env, "--max-replica-lag", "0.5", "stats", "revenue")
            assert fresh.returncode == 0 and '"recharged": 7000' in fresh.stdout
            assert "replica_lag_seconds" not in fresh.stdout
            assert fresh.stderr.count("warning:") == 1 and "replica" in fresh.stderr
            balance = cli(env, "balance", "--card", "1")  # never from the replica
            assert '"balance": 7000' in balance.stdout
            health = cli(env, "--max-replica-lag", "0.5", "health")
            replica_check = next(c for c in json.loads(health.stdout)["checks"]
                                 if c["check"] == "replica")
            assert health.returncode == 1 and replica_check["ok"] is False
            assert "more than --max-replica-lag 0.5" in replica_check["detail"]
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")


def test_local_status_and_stop_cover_the_replica(topology, tmp_path: Path) -> None:
    home, _, replica = topology
    env = {**cli_env("", "", "recharge:test:replica:", tmp_path), "RECHARGE_HOME": str(home)}
    env.pop("RECHARGE_DSN")
    env.pop("RECHARGE_REDIS_URL")
    status = cli(env, "local", "status")
    assert status.returncode == 0 and '"replica": {"port": ' in status.stdout
    assert '"answers": true' in status.stdout.split('"replica"')[1]
    stopped = cli(env, "local", "stop")
    assert stopped.returncode == 0 and "postgresql replica" in stopped.stdout
    down = cli(env, "local", "status")  # versions in one format whether running or stopped
    assert down.returncode == 69
    for name in ("postgresql_version", "valkey_version"):
        assert _field(down.stdout, name) == _field(status.stdout, name)
        assert re.fullmatch(r"\d+(\.\d+)+", _field(status.stdout, name))
    with pytest.raises(Exception):  # noqa: B017 - whatever psycopg raises: nothing listens
        db.connect(replica, connect_timeout=2)
    local.start(home)  # the replica starts again with the rest
    _caught_up(replica)


def test_local_start_replica_cluster_end_to_end(topology, tmp_path: Path) -> None:
    home, _, replica = topology
    env = {**cli_env("", "", "recharge:test:replica:", tmp_path), "RECHARGE_HOME": str(home)}
    env.pop("RECHARGE_DSN")
    env.pop("RECHARGE_REDIS_URL")
    started = cli(env, "local", "start", "--replica", "--cluster")
    assert started.returncode == 0, started.stderr
    nodes = json.loads(started.stdout)["cluster_nodes"]
    assert sorted(n["role"] for n in nodes) == ["primary"] * 3 + ["replica"] * 3
    assert all(n["answers"] for n in nodes)
    # later commands on the embedded default use the cluster and the replica by themselves
    assert cli(env, "recharge", "--card", "1", "--amount", "1000").returncode == 0
    balance = cli(env, "balance", "--card", "1")  # written through to the cluster
    assert '"source": "cache"' in balance.stdout and "warning" not in balance.stderr
    _caught_up(replica)
    stats = cli(env, "stats", "revenue")
    assert stats.returncode == 0 and '"replica_lag_seconds": ' in stats.stdout, stats.stderr
    for job in (["verify"], ["db", "rollup"]):
        assert cli(env, *job).returncode == 0
    health = cli(env, "health")  # the embedded topology as it runs: every node, the replica
    checks = {c["check"]: c for c in json.loads(health.stdout)["checks"]}
    assert health.returncode == 0 and all(c["ok"] for c in checks.values()), health.stdout
    assert checks["redis"]["facts"]["nodes"] == 6 and checks["replica"]["facts"]["configured"]
    stopped = cli(env, "local", "stop")
    assert stopped.returncode == 0
    assert {"postgresql", "postgresql replica", "valkey cluster", "valkey"} <= set(
        json.loads(stopped.stdout)["stopped"])
    status = json.loads(cli(env, "local", "status").stdout)
    assert not any(n["answers"] for n in status["cluster_nodes"])
    assert status["replica"]["answers"] is False
