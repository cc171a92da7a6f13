"""The cache knows which database it caches: on private servers, the database is replaced,
recreated, restored from a dump and restored from a base backup under a warm cache. Each
case ends with every balance read equal to PostgreSQL and a write's new balance served at
once (the version guard never locks out a database whose versions restarted lower)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo

from recharge_cli import db, local, migrations
from recharge_cli.cache import Cache
from recharge_cli.local import binaries
from tests.faults import cli, cli_env

CARDS = (1, 2, 3)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An embedded PostgreSQL and Valkey of this module's own: databases are dropped,
    restored and the server's data folder replaced."""
    folder = tmp_path_factory.mktemp("identity-home")
    local.start(folder)
    try:
        yield folder
    finally:
        local.purge(folder)


def _server_dsn(home: Path, dbname: str) -> str:
    lay = local.layout(home)
    state = local.read_state(home)
    assert state is not None
    return conninfo.make_conninfo(local.dsn_for(lay, state), dbname=dbname)


def _admin(home: Path) -> psycopg.Connection[Any]:
    return psycopg.connect(_server_dsn(home, "postgres"), autocommit=True)


def _create(home: Path, name: str) -> str:
    """A migrated database `name` with a station and CARDS (no movements)."""
    with _admin(home) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = _server_dsn(home, name)
    with db.connect(dsn) as conn:
        migrations.migrate(conn)
        conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations VALUES (1, 'Portal', 'PORTAL', 99)")
        conn.execute("INSERT INTO cards (card_id) SELECT unnest(%s::bigint[])", (list(CARDS),))
    return dsn


def _drop(home: Path, name: str) -> None:
    with _admin(home) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _env(home: Path, dsn: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(dsn, local.redis_url_for(local.layout(home)), prefix, tmp_path / "cli-home")


def _balance(env: dict[str, str], card: int) -> dict[str, Any]:
    read = cli(env, "balance", "--card", str(card))
    assert read.returncode == 0, read.stderr
    return json.loads(read.stdout)


def _recharge(env: dict[str, str], card: int, amount: int) -> int:
    wrote = cli(env, "recharge", "--card", str(card), "--amount", str(amount))
    assert wrote.returncode == 0, wrote.stderr
    return int(json.loads(wrote.stdout)["balance"])


def _warm(env: dict[str, str], amount: int, cards: tuple[int, ...] = CARDS) -> dict[int, int]:
    """Recharge every card, read it back from the cache; the balances cached."""
    balances = {card: _recharge(env, card, amount * card) for card in cards}
    for card in cards:
        read = _balance(env, card)
        assert read["source"] == "cache" and read["balance"] == balances[card]
    return balances


def _db_balances(dsn: str, cards: list[int]) -> dict[int, int]:
    with db.connect(dsn) as conn:
        rows = conn.execute("SELECT card_id, balance FROM cards WHERE card_id = ANY(%s)",
                            (cards,)).fetchall()
    return {row["card_id"]: row["balance"] for row in rows}


def _agrees(env: dict[str, str], dsn: str, stale: dict[int, int]) -> None:
    """Every balance read equals PostgreSQL's (and differs from what the cache held), twice
    (the second read may come from the cache), and a write's new balance is served at once."""
    cards = sorted(stale)
    expected = _db_balances(dsn, cards)
    assert all(expected[card] != stale[card] for card in cards), (expected, stale)
    for _ in range(2):
        assert {card: _balance(env, card)["balance"] for card in cards} == expected
    after = _recharge(env, cards[0], 700)
    assert after == expected[cards[0]] + 700
    read = _balance(env, cards[0])  # written through: the version guard let it in
    assert read["balance"] == after == _db_balances(dsn, cards)[cards[0]], read
    assert read["source"] == "cache", read


def test_reseeded_database_is_never_served_from_the_old_cache(home: Path, tmp_path: Path) -> None:
    name = f"ident_{uuid.uuid4().hex[:8]}"
    dsn = _create(home, name)
    env = _env(home, dsn, f"recharge:test:{name}:", tmp_path)
    try:
        seeded = cli(env, "db", "seed", "--scale", "0.01", "--replace", "--yes")
        assert seeded.returncode == 0, seeded.stderr
        with db.connect(dsn) as conn:
            active = tuple(row["card_id"] for row in conn.execute(
                "SELECT card_id FROM cards WHERE status = 'active' ORDER BY card_id LIMIT 3"))
        stale = _warm(env, 1000, active)
        revenue = json.loads(cli(env, "stats", "revenue").stdout)
        assert json.loads(cli(env, "stats", "revenue").stdout)["source"] == "cache"
        # the same seed again: the same cards, without the recharges just made
        reseeded = cli(env, "db", "seed", "--scale", "0.01", "--replace", "--yes")
        assert reseeded.returncode == 0, reseeded.stderr
        _agrees(env, dsn, stale)
        fresh = json.loads(cli(env, "stats", "revenue").stdout)
        assert fresh["source"] == "db" and fresh["recharged"] != revenue["recharged"]
        with db.connect(dsn) as conn:
            assert fresh["recharged"] == conn.execute(
                "SELECT sum(amount) AS s FROM recharges").fetchone()["s"]
    finally:
        _drop(home, name)


def test_dropped_and_recreated_database_with_lower_versions(home: Path, tmp_path: Path) -> None:
    """The new database's versions are lower than the cached ones: without the identity
    check every write-through would be refused and the old balances served."""
    name = f"ident_{uuid.uuid4().hex[:8]}"
    dsn = _create(home, name)
    env = _env(home, dsn, f"recharge:test:{name}:", tmp_path)
    try:
        _warm(env, 1000)
        stale = _warm(env, 1000)  # versions 2 in the cache
        _drop(home, name)
        _create(home, name)
        with db.connect(dsn) as conn:
            for card in CARDS:
                db.call(conn, "public.recharge_card", (card, 600, None, f"new-{card}"))
        _agrees(env, dsn, stale)
    finally:
        _drop(home, name)


@pytest.mark.parametrize("into", ["a recreated database", "the same database (--clean)"])
def test_restored_from_pg_dump(home: Path, tmp_path: Path, into: str) -> None:
    name = f"ident_{uuid.uuid4().hex[:8]}"
    dsn = _create(home, name)
    env = _env(home, dsn, f"recharge:test:{name}:", tmp_path)
    bin_dir = local.installed_pg_bin()
    dump = tmp_path / "backup.dump"
    try:
        _warm(env, 1000)
        subprocess.run([str(bin_dir / "pg_dump"), "-Fc", "-f", str(dump), "-d", dsn], check=True)
        stale = _warm(env, 1000)  # written after the dump: lost by the restore
        if into == "a recreated database":
            _drop(home, name)
            with _admin(home) as admin:
                admin.execute(f"CREATE DATABASE {name}")
            restore = ["-d", dsn]
        else:
            restore = ["--clean", "--if-exists", "-d", dsn]
        subprocess.run([str(bin_dir / "pg_restore"), "--exit-on-error", "--single-transaction",
                        *restore, str(dump)], check=True, capture_output=True)
        _agrees(env, dsn, stale)
    finally:
        _drop(home, name)


def test_restored_from_a_base_backup(tmp_path: Path) -> None:
    """The server's data folder replaced by a base backup taken before the last writes
    (same system identifier, database and timeline: only the history went back)."""
    folder = tmp_path / "backup-home"
    state = local.start(folder)
    lay = local.layout(folder)
    try:
        dsn = _create(folder, "restored")
        env = _env(folder, dsn, "recharge:test:basebackup:", tmp_path)
        _warm(env, 1000)
        backup = lay.pg_root / "base-backup"
        binaries.owned_dir(backup, 0o700)
        bin_dir = binaries.pg_bin(lay.server_dir)
        taken = binaries.as_server_user([
            str(bin_dir / "pg_basebackup"), "-D", str(backup), "-h", str(lay.pg_socket_dir),
            "-p", str(state.pg_port), "-U", local.SUPERUSER, "-X", "stream", "-c", "fast"])
        assert taken.returncode == 0, taken.stderr
        stale = _warm(env, 1000)  # committed after the backup
        stopped = binaries.as_server_user([str(bin_dir / "pg_ctl"), "stop", "-D", str(lay.pg_data),
                                         "-m", "fast", "-w"])
        assert stopped.returncode == 0, stopped.stderr
        shutil.rmtree(lay.pg_data)
        backup.rename(lay.pg_data)
        local.start(folder)
        cache = Cache.from_url(local.redis_url_for(lay), "recharge:test:basebackup:")
        assert cache.get(cache.card_key(1, "balance"))["balance"] == stale[1]  # still warm
        cache.close()
        _agrees(env, dsn, stale)
    finally:
        local.purge(folder)


def test_failover_to_a_standby_that_missed_the_last_writes(tmp_path: Path) -> None:
    """A streaming standby is cut off, the primary takes more writes (cached), the primary
    dies and the standby is promoted: the operator points the DSN at it."""
    folder = tmp_path / "failover-home"
    local.start(folder)
    lay = local.layout(folder)
    try:
        _create(folder, "failover")
        state = local.start(folder, replica=True)
        standby = conninfo.make_conninfo(local.replica_dsn_for(lay, state) or "", dbname="failover")
        env = _env(folder, _server_dsn(folder, "failover"), "recharge:test:failover:", tmp_path)
        _warm(env, 1000)
        with psycopg.connect(standby, autocommit=True) as conn:
            deadline = time.monotonic() + 20
            while conn.execute("SELECT count(*) FROM ledger").fetchone()[0] < len(CARDS):
                assert time.monotonic() < deadline, "the standby never caught up"
                time.sleep(0.05)
            conn.execute("ALTER SYSTEM SET primary_conninfo = ''")  # cut off from the primary
            conn.execute("SELECT pg_reload_conf()")
            while conn.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone()[0]:
                assert time.monotonic() < deadline, "the standby kept receiving"
                time.sleep(0.05)
        stale = _warm(env, 1000)  # never reaches the standby
        bin_dir = binaries.pg_bin(lay.server_dir)
        for command in (["stop", "-D", str(lay.pg_data), "-m", "immediate"],
                        ["promote", "-D", str(lay.replica_data), "-w"]):
            done = binaries.as_server_user([str(bin_dir / "pg_ctl"), *command])
            assert done.returncode == 0, done.stderr
        _agrees({**env, "RECHARGE_DSN": standby}, standby, stale)
    finally:
        local.purge(folder)


def test_versions_stay_when_only_the_epoch_moved_and_go_when_the_data_was_replaced(
        home: Path, tmp_path: Path) -> None:
    """A failed write-through raises the epoch: the prefix is emptied but the card versions
    stay (still true, they refuse late older writes). A seed or migration replaces the
    data (its generation): the versions go too, since the new data's may restart lower."""
    name = f"ident_{uuid.uuid4().hex[:8]}"
    dsn = _create(home, name)
    prefix = f"recharge:test:{name}:"
    env = _env(home, dsn, prefix, tmp_path)
    cache = Cache.from_url(local.redis_url_for(local.layout(home)), prefix)
    try:
        _warm(env, 1000)
        version = cache.card_key(1, "ver")
        for function, kept in (("cache_epoch_bump", True), ("cache_data_replaced", False)):
            with db.connect(dsn) as conn:
                db.call(conn, f"public.{function}")
            assert cache.get(cache.card_key(1, "balance")) is not None
            assert _balance(env, 1)["source"] == "db"  # the prefix was emptied first
            assert (cache.client.get(version) is not None) is kept, function
    finally:
        cache.close()
        _drop(home, name)
