"""The customer-service desk: a user's record with eligibility and cards, the search by name,
corrections, personalising an anonymous card; the benefit rules; the hotlist validators
download. Each write is one stored-function call (the rules are checked there), then the
cache after COMMIT."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import psycopg

from recharge_cli import db
from recharge_cli.cache import Cache
from recharge_cli.cards import Announce, check_id, idempotency_key
from recharge_cli.errors import InvalidInput
from recharge_cli.jsonable import Row
from recharge_cli.lifecycle import MAX_LIMIT, check_email, operator, sisben_group

HOTLIST_BATCH = 5_000  # rows fetched from the server-side cursor per round trip


def _moments(items: list[Row], *fields: str) -> list[Row]:
    """jsonb carries timestamps as text: make them timestamps again, printed like any other."""
    return [{**item, **{f: dt.datetime.fromisoformat(item[f]) for f in fields if item.get(f)}}
            for item in items]


def show_user(conn: psycopg.Connection[Row], user_id: int | None, document: str | None) -> Row:
    """One user: eligibility, this month's entitlement, cards with status and balance."""
    if (user_id is None) == (document is None):
        raise InvalidInput("give --user ID or --document D (one of them)")
    if user_id is not None:
        check_id(user_id, "user id")
    row = db.call_one(conn, "public.user_show", (user_id, document))
    assert row is not None
    row["cards"] = _moments(row["cards"], "issued_at", "last_movement_at")
    return row


def _printable(text: str | None, option: str) -> None:
    """No control characters (a NUL cannot even be sent to PostgreSQL)."""
    if text is not None and any(ord(c) < 32 for c in text):
        raise InvalidInput(f"{option} must not contain control characters")


def find_users(conn: psycopg.Connection[Row], text: str, limit: int) -> list[Row]:
    check_id(limit, "--limit", MAX_LIMIT)
    if len(text) > 200:
        raise InvalidInput("--name is longer than 200 characters")
    _printable(text, "--name")
    return db.call(conn, "public.users_find", (text, limit))


def update_user(conn: psycopg.Connection[Row], user_id: int, who: str | None, *,
                email: str | None = None, name: str | None = None,
                birth_date: dt.date | None = None, sisben: str | None = None,
                disability: bool | None = None, key: str | None = None,
                announce: Announce | None = None) -> Row:
    """Correct what is given (sisben "none" clears the group); `changed` names the fields
    that really changed (an update to the same values changes nothing and audits nothing)."""
    check_id(user_id, "user id")
    if all(v is None for v in (email, name, birth_date, sisben, disability)):
        raise InvalidInput("give at least one of --email, --name, --birth-date, --sisben, "
                           "--disability/--no-disability")
    email, name = (v.strip() if v is not None else None for v in (email, name))
    check_email(email)
    sisben = sisben_group(sisben)
    if name is not None and not 1 <= len(name) <= 200:
        raise InvalidInput("--name must be 1-200 characters")
    _printable(name, "--name")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.user_update",
                   (user_id, email, name, birth_date, sisben, disability, operator(who), key), key)
    return {**row, "idempotency_key": key}


def personalise(conn: psycopg.Connection[Row], cache: Cache, card_id: int, user_id: int,
                who: str | None, key: str | None = None, announce: Announce | None = None) -> Row:
    """An anonymous active card becomes the user's; its cached copies go after COMMIT."""
    check_id(card_id, "card id")
    check_id(user_id, "user id")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.card_personalise", (card_id, user_id, operator(who), key), key)
    if not row["replayed"]:
        cache.card_invalidated(card_id, row["version"])
    return {k: v for k, v in row.items() if k != "version"} | {"idempotency_key": key}


def benefit_rules(conn: psycopg.Connection[Row], month: dt.date | None) -> list[Row]:
    return db.call(conn, "public.benefit_rules_list", (month,))


def hotlist(conn: psycopg.Connection[Row], since: str | None) -> Iterator[list[Row]]:
    """The hotlist in batches, read through a server-side cursor in one transaction (one
    snapshot), so memory stays flat however many cards it holds."""
    with conn.transaction(), conn.cursor(name="hotlist") as cursor:
        cursor.execute("SELECT * FROM public.cards_hotlist(%s)", (since,))
        while rows := cursor.fetchmany(HOTLIST_BATCH):
            yield rows
