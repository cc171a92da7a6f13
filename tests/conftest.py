"""Fixtures on real servers: the embedded ones in a temporary home by default, or the
servers named by RECHARGE_TEST_DSN / RECHARGE_TEST_REDIS_URL. Each run gets its own
database and key prefix and removes them afterwards."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo
from typer.testing import CliRunner

from recharge_cli import db, demo, local, migrations
from recharge_cli.app import app
from recharge_cli.cache import Cache

SEED_END = "2026-11-22"


@dataclass
class Servers:
    admin_dsn: str  # a database to run CREATE/DROP DATABASE from
    redis_url: str
    embedded_home: Path | None


@dataclass
class Database:
    dsn: str
    redis_url: str
    prefix: str

    def connect(self) -> psycopg.Connection[dict[str, Any]]:
        return db.connect(self.dsn)

    def cache(self) -> Cache:
        return Cache.from_url(self.redis_url, self.prefix)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    external = os.environ.get("RECHARGE_TEST_DSN")
    if external:
        redis_url = os.environ.get("RECHARGE_TEST_REDIS_URL")
        if not redis_url:
            pytest.exit("RECHARGE_TEST_DSN needs RECHARGE_TEST_REDIS_URL too", returncode=2)
        with psycopg.connect(external, autocommit=True) as admin:
            had_role = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'recharge_app'").fetchone()
        yield Servers(external, redis_url, None)
        if not had_role:  # created by our migrations: leave the shared server as we found it
            with psycopg.connect(external, autocommit=True) as admin, \
                    contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
                admin.execute("DROP ROLE IF EXISTS recharge_app")
        return
    with embedded_servers(tmp_path_factory.mktemp("embedded-home")) as started:
        yield started


@contextmanager
def embedded_servers(home: Path) -> Iterator[Servers]:
    """An embedded PostgreSQL and Valkey in `home`, purged afterwards (tests that need a
    server to crash use their own)."""
    state = local.start(home)
    lay = local.layout(home)
    admin = conninfo.make_conninfo(local.dsn_for(lay, state), dbname="postgres")
    try:
        yield Servers(admin, local.redis_url_for(lay), home)
    finally:
        local.purge(home)


def _database_dsn(servers: Servers, name: str) -> str:
    return conninfo.make_conninfo(servers.admin_dsn, dbname=name)


def create_database(servers: Servers) -> str:
    name = f"recharge_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(servers.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_database(servers: Servers, name: str) -> None:
    with psycopg.connect(servers.admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextmanager
def own_database(servers: Servers, seeded: bool, migrate: bool = True) -> Iterator[Database]:
    """A new migrated database (with the demo data when seeded) and key prefix, removed after."""
    name = create_database(servers)
    test_db = Database(_database_dsn(servers, name), servers.redis_url,
                       f"recharge:test:{uuid.uuid4().hex[:8]}:")
    try:
        with test_db.connect() as conn:
            if migrate:
                migrations.migrate(conn)
            if seeded:
                demo.load(conn, scale=1, seed=42, end=dt.date.fromisoformat(SEED_END))
        yield test_db
    finally:
        cache = test_db.cache()
        cache.flush(everything=True)  # the run's prefix, versions and markers too
        cache.close()
        drop_database(servers, name)


@pytest.fixture(scope="session")
def database(servers: Servers) -> Iterator[Database]:
    """A migrated database with the demo data (scale 1), shared by the session."""
    with own_database(servers, seeded=True) as test_db:
        yield test_db


@pytest.fixture
def empty_database(servers: Servers) -> Iterator[Database]:
    """A fresh, migrated, empty database for tests that need one of their own."""
    with own_database(servers, seeded=False) as test_db:
        yield test_db


@pytest.fixture
def conn(database: Database) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    with database.connect() as connection:
        yield connection


def new_card(conn: psycopg.Connection[Any], status: str = "active", balance: int = 0,
             user_id: int | None = None) -> int:
    """A fresh card for one test (anonymous unless user_id), optionally with an opening
    recharge. It is issued when its owner registered (an anonymous one on 2024-01-01,
    before the first fare), so the tests' backdated taps come after its issue."""
    card_id = conn.execute(  # from the same sequence as issued cards
        "INSERT INTO cards (card_id, status, user_id, issued_at) "
        "VALUES (nextval('card_id_seq'), 'active', %(user)s, coalesce("
        "(SELECT registered_at FROM users WHERE user_id = %(user)s), '2024-01-01T00:00Z')) "
        "RETURNING card_id", {"user": user_id}).fetchone()["card_id"]
    for n, start in enumerate(range(0, balance, 200_000)):
        amount = min(200_000, balance - start)
        db.call(conn, "public.recharge_card", (card_id, amount, None, f"open-{card_id}-{n}"))
    if status != "active":
        conn.execute("UPDATE cards SET status = %s WHERE card_id = %s", (status, card_id))
    return card_id


@pytest.fixture
def card(conn: psycopg.Connection[Any]) -> int:
    return new_card(conn)


@dataclass
class Invocation:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli_env(database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    for var in ("DATABASE_URL", "REDIS_URL", "RECHARGE_NO_CACHE", "RECHARGE_CONFIG", "PGHOST",
                "PGPORT", "PGDATABASE", "PGSERVICE", "PGUSER", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RECHARGE_DSN", database.dsn)
    monkeypatch.setenv("RECHARGE_REDIS_URL", database.redis_url)
    monkeypatch.setenv("RECHARGE_CACHE_PREFIX", database.prefix)
    monkeypatch.setenv("RECHARGE_HOME", str(tmp_path / "home"))
    return database


def run_cli(*args: str, input: str | None = None) -> Invocation:
    result = CliRunner().invoke(app, list(args), input=input)
    return Invocation(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(cli_env: Database):
    return run_cli
