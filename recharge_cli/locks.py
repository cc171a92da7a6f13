"""Run-level locks (`--lock NAME`): a PostgreSQL session advisory lock, so two runs of a
cron job on any hosts sharing the database never overlap."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from recharge_cli.errors import InvalidInput, TemporaryFailure

LOCK_CLASS = 7_325_003  # first key of every run lock; the second is hashtext(name)
POLL_SECONDS = 0.1


@contextmanager
def held(conn: psycopg.Connection[Any], name: str | None, wait: float = 0.0) -> Iterator[None]:
    """Hold lock `name` (if any) for the block; exit 75 if another run still holds it after
    `wait` seconds."""
    if not name:
        yield
        return
    if len(name) > 64 or not name.isprintable():
        raise InvalidInput("--lock must be 1-64 printable characters")
    deadline = time.monotonic() + wait
    query = "SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS taken"
    while not conn.execute(query, (LOCK_CLASS, name)).fetchone()["taken"]:
        if time.monotonic() >= deadline:
            raise TemporaryFailure(f"lock {name!r} is held by another run"
                                   + (f" (waited {wait:g} s)" if wait else "")
                                   + "; try again later or use --wait SECONDS")
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (LOCK_CLASS, name))
