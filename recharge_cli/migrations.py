"""Ordered, checksummed migrations (sql/migrations) and repeatable function files (sql/functions).

A versioned file is applied once; changing it after it was applied is an error. A
function file is re-applied whenever its checksum changes (it uses CREATE OR REPLACE).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from recharge_cli.errors import MigrationError

_VERSIONED = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_ID = 7_325_001  # advisory lock held while migrating

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('versioned', 'repeatable')),
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    name: str
    kind: str  # versioned | repeatable
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied_checksum: str | None

    @property
    def state(self) -> str:
        if self.applied_checksum is None:
            return "pending"
        if self.applied_checksum == self.migration.checksum:
            return "applied"
        return "changed" if self.migration.kind == "versioned" else "outdated"


def available() -> list[Migration]:
    """Every migration in the order it must run: versioned first, then function files."""
    root = resources.files("recharge_cli.sql")
    found = []
    for kind, folder in (("versioned", "migrations"), ("repeatable", "functions")):
        files = sorted((f for f in root.joinpath(folder).iterdir() if f.name.endswith(".sql")),
                       key=lambda f: f.name)
        for item in files:
            if kind == "versioned" and not _VERSIONED.match(item.name):
                raise MigrationError(f"badly named migration {folder}/{item.name}: use NNNN_name.sql")
            found.append(Migration(f"{folder}/{item.name}", kind, item.read_text(encoding="utf-8")))
    return found


def fingerprint() -> str:
    """One checksum over every migration file (the embedded default keeps the last one it
    applied in local.json and migrates again only when this changes)."""
    return hashlib.sha256("".join(m.checksum for m in available()).encode()).hexdigest()


def status(conn: psycopg.Connection[Any]) -> list[MigrationState]:
    applied: dict[str, str] = {}
    found = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL AS found").fetchone()
    if found and found["found"]:
        rows = conn.execute("SELECT name, checksum FROM schema_migrations").fetchall()
        applied = {row["name"]: row["checksum"] for row in rows}
    return [MigrationState(m, applied.get(m.name)) for m in available()]


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply what is pending, all in one transaction, so no writer ever meets new tables with
    old functions (or the reverse), and every function file after a changed one; returns
    the names applied."""
    done: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
    try:
        conn.execute(_CREATE_TABLE)
        states = status(conn)
        changed = [s.migration.name for s in states if s.state == "changed"]
        if changed:
            raise MigrationError(
                f"applied migration(s) changed since they ran: {', '.join(changed)}; "
                "migrations are forward-only, add a new one instead"
            )
        with conn.transaction():
            function_applied = False
            for item in states:
                # a function file that runs may replace functions the later ones act on (a
                # dropped and re-created function loses its grants): those run again too
                function_applied |= item.migration.kind == "repeatable" and item.state != "applied"
                if item.state == "applied" and not function_applied:
                    continue
                conn.execute(item.migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (name, kind, checksum) VALUES (%s, %s, %s)"
                    " ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum,"
                    " applied_at = now()",
                    (item.migration.name, item.migration.kind, item.migration.checksum),
                )
                done.append(item.migration.name)
            if done:  # a migration may rewrite what the cache holds copies of
                conn.execute("SELECT public.cache_data_replaced()")
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return done
