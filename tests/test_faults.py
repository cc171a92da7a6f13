"""Real faults on private servers: a backend killed mid-write, Redis refusing, pausing,
restarting from an old snapshot, a flush racing a reader, interrupts. Each case ends with
an exact exit code, and with PostgreSQL and the cache agreeing."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recharge_cli import cards, db, local
from recharge_cli.cache import Cache
from tests.conftest import Database, Servers, embedded_servers, own_database
from tests.faults import cli, cli_env, spawn, valkey, wait_for_backend


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    """An embedded PostgreSQL and Valkey of this module's own: they may crash."""
    with embedded_servers(tmp_path_factory.mktemp("private-home")) as started:
        yield started


@pytest.fixture
def private_db(private: Servers) -> Iterator[Database]:
    with own_database(private, seeded=False) as database, database.connect() as conn:
        conn.execute("INSERT INTO localities VALUES (99, 'Test') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO stations VALUES (1, 'Portal', 'PORTAL', 99)")
        conn.execute("INSERT INTO cards (card_id) VALUES (1), (2)")
        yield database


def movements(conn: psycopg.Connection[Any], card: int) -> int:
    return conn.execute("SELECT count(*) AS n FROM ledger WHERE card_id = %s",
                        (card,)).fetchone()["n"]


def balance(conn: psycopg.Connection[Any], card: int) -> int:
    return conn.execute("SELECT balance FROM cards WHERE card_id = %s", (card,)).fetchone()["balance"]


@pytest.mark.parametrize("fault", ["sigkill", "terminate"])
def test_backend_lost_mid_recharge_is_exit_75_naming_the_key(private_db: Database, tmp_path: Path,
                                                              fault: str) -> None:
    """The card row is locked, the recharge waits inside its transaction, and its backend
    dies (SIGKILL crashes the whole server into recovery). Exit 75, the generated key was
    on stderr before the call and is named again; retrying with it moves money once."""
    env = cli_env(private_db.dsn, private_db.redis_url, private_db.prefix, tmp_path)
    holder = private_db.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT 1 FROM cards WHERE card_id = 1 FOR UPDATE")
    process = spawn(env, "recharge", "--card", "1", "--amount", "5000")
    with private_db.connect() as watcher:
        pid = wait_for_backend(watcher)
        if fault == "sigkill":
            os.kill(pid, signal.SIGKILL)
        else:
            watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _, stderr = process.communicate(timeout=60)
    holder.close()
    assert process.returncode == 75, stderr
    key = stderr.split("idempotency key: ", 1)[1].split()[0]
    error = [line for line in stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "outcome unknown" in error[0] and f"--key {key}" in error[0]
    deadline = time.monotonic() + 30  # crash recovery after SIGKILL
    while True:
        retry = cli(env, "recharge", "--card", "1", "--amount", "5000", "--key", key)
        if retry.returncode != 69 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert retry.returncode == 0, retry.stderr
    again = cli(env, "recharge", "--card", "1", "--amount", "5000", "--key", key)
    assert again.returncode == 0 and '"replayed": true' in again.stdout
    with private_db.connect() as conn:
        assert movements(conn, 1) == 1 and balance(conn, 1) == 5000
        assert conn.execute("SELECT count(*) AS n FROM verify_ledger()").fetchone()["n"] == 0


@pytest.mark.parametrize("refusal", ["oom", "readonly"])
def test_redis_refusing_writes_degrades(private_db: Database, tmp_path: Path, refusal: str) -> None:
    """OOM (maxmemory, noeviction) or READONLY (a replica): the recharge committed and says
    so (exit 0, one warning); balance and statistics fall back to PostgreSQL."""
    with valkey(tmp_path / "primary") as primary:
        if refusal == "oom":
            primary.client().config_set("maxmemory-policy", "noeviction")
            primary.client().config_set("maxmemory", 1)
            server = primary
            context = None
        else:
            context = valkey(tmp_path / "replica", "--replicaof", "127.0.0.1", str(primary.port))
            server = context.__enter__()
        try:
            env = cli_env(private_db.dsn, server.url, private_db.prefix, tmp_path)
            wrote = cli(env, "recharge", "--card", "2", "--amount", "3000")
            assert wrote.returncode == 0, wrote.stderr
            assert wrote.stderr.count("warning:") == 1
            read = cli(env, "balance", "--card", "2")
            assert read.returncode == 0 and '"balance": 3000' in read.stdout
            assert '"source": "db"' in read.stdout
            stats = cli(env, "stats", "revenue")
            assert stats.returncode == 0, stats.stderr
            assert '"recharged": 3000' in stats.stdout
        finally:
            if context is not None:
                context.__exit__(None, None, None)


def _cached_balance(server_url: str, prefix: str, card: int) -> Any:
    cache = Cache.from_url(server_url, prefix)
    try:
        return cache.get(cache.card_key(card, "balance"))
    finally:
        cache.close()


def test_refused_write_through_never_leaves_a_stale_balance(private_db: Database,
                                                            tmp_path: Path) -> None:
    with valkey(tmp_path / "v") as server:
        env = cli_env(private_db.dsn, server.url, private_db.prefix, tmp_path)
        assert cli(env, "recharge", "--card", "1", "--amount", "2000").returncode == 0
        assert '"source": "cache"' in cli(env, "balance", "--card", "1").stdout
        server.client().config_set("maxmemory-policy", "noeviction")
        server.client().config_set("maxmemory", 1)  # the write-through is refused
        wrote = cli(env, "recharge", "--card", "1", "--amount", "1000")
        assert wrote.returncode == 0 and "warning:" in wrote.stderr
        server.client().config_set("maxmemory", 0)
        assert _cached_balance(server.url, private_db.prefix, 1)["balance"] == 2000  # stale...
        read = cli(env, "balance", "--card", "1")  # ...but never served
        assert read.returncode == 0 and '"balance": 3000' in read.stdout, read.stdout
        assert _cached_balance(server.url, private_db.prefix, 1) in (None, {**_cached_balance(
            server.url, private_db.prefix, 1), "balance": 3000})


def test_paused_redis_during_write_through(private_db: Database, tmp_path: Path) -> None:
    with valkey(tmp_path / "v") as server:
        env = cli_env(private_db.dsn, server.url, private_db.prefix, tmp_path)
        assert cli(env, "recharge", "--card", "2", "--amount", "4000").returncode == 0
        assert '"source": "cache"' in cli(env, "balance", "--card", "2").stdout
        server.pause()
        try:
            wrote = cli(env, "recharge", "--card", "2", "--amount", "1000")
        finally:
            server.resume()
        assert wrote.returncode == 0 and "warning:" in wrote.stderr, wrote.stderr
        for _ in range(3):
            read = cli(env, "balance", "--card", "2")
            assert '"balance": 5000' in read.stdout, read.stdout


def test_restart_from_an_older_snapshot(private_db: Database, tmp_path: Path) -> None:
    """Redis saved a snapshot, a later write-through succeeded, Redis restarted from the
    snapshot (the older balance is back in it): the new run id makes readers clean up."""
    folder = tmp_path / "v"
    with valkey(folder) as server:
        env = cli_env(private_db.dsn, server.url, private_db.prefix, tmp_path)
        assert cli(env, "recharge", "--card", "1", "--amount", "1500").returncode == 0
        assert '"source": "cache"' in cli(env, "balance", "--card", "1").stdout
        server.client().save()
        assert cli(env, "recharge", "--card", "1", "--amount", "1000").returncode == 0
        server.kill()
        server.start()  # loads dump.rdb: the balance of 1,500 is back
        assert _cached_balance(server.url, private_db.prefix, 1)["balance"] == 1500
        read = cli(env, "balance", "--card", "1")
        assert '"balance": 2500' in read.stdout, read.stdout


def test_flush_between_a_readers_get_and_its_set(private_db: Database) -> None:
    """A reader read the old balance; a writer committed and wrote through; `cache flush`
    ran; only then does the reader try to store: its ticket is gone, nothing is stored."""
    conn = private_db.connect()
    cards.recharge(conn, private_db.cache(), 2, 1000, key=f"open-{uuid.uuid4()}")
    reader_cache, writer_cache = private_db.cache(), private_db.cache()
    reader_cache.client.delete(reader_cache.card_key(2, "balance"))
    read_done, flushed = threading.Event(), threading.Event()
    original_fill = reader_cache.card_fill

    def slow_fill(items, tickets, ttl):
        items = list(items)
        read_done.set()
        assert flushed.wait(10)
        original_fill(items, tickets, ttl)

    reader_cache.card_fill = slow_fill  # type: ignore[method-assign]
    seen: list[Any] = []
    reader = threading.Thread(target=lambda: seen.extend(
        cards.balances(private_db.connect(), reader_cache, [2])))
    reader.start()
    assert read_done.wait(10)
    cards.recharge(conn, writer_cache, 2, 4000, key=f"w-{uuid.uuid4()}")
    writer_cache.flush()
    flushed.set()
    reader.join(10)
    assert seen[0]["balance"] == 1000
    assert writer_cache.get(writer_cache.card_key(2, "balance")) is None
    assert cards.balances(conn, private_db.cache(), [2])[0]["balance"] == 5000


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_load_leaves_nothing(private: Servers, tmp_path: Path,
                                              signum: signal.Signals) -> None:
    with own_database(private, seeded=False) as database:
        env = cli_env(database.dsn, database.redis_url, database.prefix, tmp_path)
        process = spawn(env, "db", "seed", "--scale", "0.5")
        with database.connect() as watcher:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not watcher.execute(
                    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = "
                    "'recharge' AND query LIKE '%%seed_activity%%' AND pid <> pg_backend_pid()"
                    ).fetchone()["n"]:
                time.sleep(0.05)
            process.send_signal(signum)
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 130, stderr
            assert [line.split(" ", 1)[1] for line in stderr.splitlines() if "error" in line] == \
                ["error: interrupted; nothing was left half done"]
            assert watcher.execute("SELECT count(*) AS n FROM cards").fetchone()["n"] == 0
            assert watcher.execute("SELECT count(*) AS n FROM stations").fetchone()["n"] == 0
        again = cli(env, "db", "seed", "--scale", "0.05")
        assert again.returncode == 0, again.stderr
        refused = cli(env, "db", "seed", "--scale", "0.05", "--replace")
        assert refused.returncode == 2 and "--yes" in refused.stderr
        replaced = cli(env, "db", "seed", "--scale", "0.1", "--replace", "--yes")
        assert replaced.returncode == 0, replaced.stderr
        with database.connect() as conn:
            assert conn.execute("SELECT count(*) AS n FROM cards").fetchone()["n"] == 2400
            assert conn.execute("SELECT count(*) AS n FROM verify_ledger()").fetchone()["n"] == 0


def test_embedded_valkey_needs_its_password(private: Servers) -> None:
    import redis

    assert private.embedded_home is not None
    lay = local.layout(private.embedded_home)
    secret = private.embedded_home / "valkey.password"
    assert secret.stat().st_mode & 0o777 == 0o600
    state = local.read_state(private.embedded_home)
    assert state is not None
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=state.valkey_port, socket_timeout=3).set("recharge:x", "1")
    assert redis.Redis.from_url(local.redis_url_for(lay)).ping()
    assert local.valkey_password(lay) not in " ".join(
        Path(f"/proc/{pid}/cmdline").read_text() for pid in os.listdir("/proc")
        if pid.isdigit() and Path(f"/proc/{pid}/cmdline").exists())


def test_cache_prefix_with_glob_specials_flushes_its_own_keys(database: Database) -> None:
    prefix = f"recharge:test:{uuid.uuid4().hex[:6]}\\[x]*?:"
    cache = Cache.from_url(database.redis_url, prefix)
    neighbour = Cache.from_url(database.redis_url, prefix.replace("\\", "/"))
    try:
        cache.client.set(cache.card_key(1, "balance"), b"1")
        neighbour.client.set(neighbour.card_key(1, "balance"), b"1")
        assert cache.flush() == 1
        assert cache.client.get(cache.card_key(1, "balance")) is None
        assert neighbour.client.get(neighbour.card_key(1, "balance")) == b"1"
    finally:
        neighbour.flush()
        cache.close()
        neighbour.close()


def test_db_errors_after_connecting_are_temporary(private_db: Database) -> None:
    conn = private_db.connect()
    with private_db.connect() as killer:
        killer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE pid <> pg_backend_pid() AND datname = current_database()")
    from recharge_cli.errors import ExitStatus, from_database

    with pytest.raises(psycopg.OperationalError) as caught:
        db.call(conn, "public.card_balance", (1,))
    error = from_database(caught.value)
    assert error is not None and error.status == ExitStatus.TEMPORARY


def test_bulk_input_problems_are_found_before_any_money_moves(private_db: Database,
                                                              tmp_path: Path) -> None:
    env = cli_env(private_db.dsn, private_db.redis_url, private_db.prefix, tmp_path)
    huge = tmp_path / "huge.csv"
    huge.write_text("1,1000\n2," + "9" * 200_000 + "\n")
    below_a_file = tmp_path / "huge.csv" / "rejects.csv"
    for args in (["--from-csv", str(huge)],
                 ["--from-csv", str(tmp_path / "ok.csv"), "--rejects", str(below_a_file)]):
        (tmp_path / "ok.csv").write_text("1,1000\n")
        result = cli(env, "recharge", *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("error:") == 1
    thousands = tmp_path / "thousands.csv"
    thousands.write_text("1,1,000\n")
    result = cli(env, "recharge", "--from-csv", str(thousands))
    assert result.returncode == 2 and "thousands separator" in result.stderr
    with private_db.connect() as conn:
        assert movements(conn, 1) == 0 and movements(conn, 2) == 0


def test_bulk_stopped_by_a_lost_connection_reports_how_far_and_reruns_exactly_once(
        private_db: Database, tmp_path: Path) -> None:
    """The first chunk (5,000 rows on other cards) commits; the second waits for card 2's
    lock and loses its connection: exit 75, a summary of the rows done, and a rerun that
    replays those and applies the rest."""
    env = cli_env(private_db.dsn, private_db.redis_url, private_db.prefix, tmp_path)
    with private_db.connect() as conn:
        conn.execute("INSERT INTO cards (card_id) SELECT generate_series(3, 5002)")
    rows = tmp_path / "topups.csv"
    rows.write_text("".join(f"{card},1000\n" for card in range(3, 5003))
                    + "".join(f"{1 + n % 2},1000\n" for n in range(200)))
    holder = private_db.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT 1 FROM cards WHERE card_id = 2 FOR UPDATE")
    process = spawn(env, "recharge", "--from-csv", str(rows))
    with private_db.connect() as watcher:
        watcher.execute("SELECT pg_terminate_backend(%s)", (wait_for_backend(watcher),))
    stdout, stderr = process.communicate(timeout=60)
    holder.close()
    assert process.returncode == 75, stderr
    assert '"complete": false' in stdout and '"ok": 5000' in stdout
    assert "stopped after 5000 row(s)" in stderr and "rerun the same file" in stderr
    rerun = cli(env, "recharge", "--from-csv", str(rows))
    assert rerun.returncode == 0, rerun.stderr
    assert '"replayed": 5000' in rerun.stdout and '"ok": 200' in rerun.stdout
    with private_db.connect() as conn:
        assert movements(conn, 1) == 100 and movements(conn, 2) == 100
        assert conn.execute("SELECT count(*) AS n FROM ledger").fetchone()["n"] == 5200


def test_bench_checks_out_first_and_retires_scratch_cards_when_interrupted(
        database: Database, tmp_path: Path) -> None:
    env = cli_env(database.dsn, database.redis_url, database.prefix, tmp_path)
    (tmp_path / "file").write_text("")
    bad = cli(env, "bench", "--out", str(tmp_path / "file" / "report"), "--iterations", "2")
    assert bad.returncode == 2 and "--out" in bad.stderr
    with database.connect() as conn:
        before = conn.execute("SELECT last_value FROM card_id_seq").fetchone()["last_value"]
        process = spawn(env, "bench", "--target", "recharge", "--iterations", "5000", "--no-plot",
                        "--out", str(tmp_path / "report"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not conn.execute(
                "SELECT count(*) AS n FROM recharges WHERE card_id > %s", (before,)
                ).fetchone()["n"]:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 130, stderr
        scratch = conn.execute("SELECT count(*) FILTER (WHERE status = 'active') AS active, "
                               "count(*) AS n FROM cards WHERE card_id > %s", (before,)).fetchone()
        assert scratch["n"] > 0 and scratch["active"] == 0
        assert conn.execute("SELECT count(*) AS n FROM verify_ledger()").fetchone()["n"] == 0


def test_while_another_process_cleans_the_cache_reads_skip_it_and_writes_go_through(
        database: Database, conn, tmp_path: Path) -> None:
    """A stale marker and a cleaning already under way elsewhere (its lock held): this
    process reads PostgreSQL, still writes its balance through, and raises no epoch (which
    would make every later process clean again)."""
    from tests.conftest import new_card

    card = new_card(conn, balance=1000)
    env = cli_env(database.dsn, database.redis_url, database.prefix, tmp_path)
    cache = database.cache()
    cache.client.set(f"{database.prefix}epoch", b"0:stale")
    cache.client.set(f"{database.prefix}reset-lock", b"held-by-another-process")
    epoch = conn.execute("SELECT epoch FROM cache_state").fetchone()["epoch"]
    try:
        wrote = cli(env, "recharge", "--card", str(card), "--amount", "2000")
        assert wrote.returncode == 0 and wrote.stderr.count("warning") == 0, wrote.stderr
        read = cli(env, "balance", "--card", str(card))
        assert '"source": "db"' in read.stdout and '"balance": 3000' in read.stdout
        assert cache.get(cache.card_key(card, "balance"))["balance"] == 3000
        assert conn.execute("SELECT epoch FROM cache_state").fetchone()["epoch"] == epoch
    finally:
        cache.client.delete(f"{database.prefix}reset-lock")
    read = cli(env, "balance", "--card", str(card))  # the lock is free: this one cleans
    assert '"balance": 3000' in read.stdout
    cache.close()
