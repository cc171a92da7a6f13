"""A card's life: users, issue, status changes, replacement, reversal, statements, fares,
limits and the audit. Each write is one stored-function call, then the cache after COMMIT."""

from __future__ import annotations

import datetime as dt
import getpass
import re
import time
from collections.abc import Iterator

import psycopg

from recharge_cli import db
from recharge_cli.cache import Cache
from recharge_cli.errors import InvalidInput
from recharge_cli.inputs import MAX_BIGINT, MAX_INTEGER, SISBEN_GROUPS, Announce, check_id, idempotency_key
from recharge_cli.jsonable import Row

STATUS_ACTIONS = ("block", "unblock", "lost")
STATUSES = ("active", "inactive", "blocked", "lost")
MAX_LIMIT = 10_000
MAX_LIMIT_PESOS = 2**62  # the largest recharge or balance limit accepted
MAX_TAP_AGE_DAYS = 3650  # how late an offline tap may ever be accepted
FOLLOW_INTERVAL = 0.5  # seconds between polls of `audit list --follow` when nothing is new
# The WHATWG HTML standard's "valid e-mail address" (what an <input type="email"> accepts), as
# public.email_is_valid in sql/ checks it: a malformed email is refused before a key is drawn.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def operator(name: str | None) -> str:
    """Who acts: --operator, else the OS user."""
    if name is not None and not name.strip():
        raise InvalidInput("--operator must not be empty")
    return (name or getpass.getuser()).strip()[:100]


def _text(value: str | None, what: str, maximum: int = 500) -> str | None:
    if value is not None and len(value) > maximum:
        raise InvalidInput(f"{what} is longer than {maximum} characters")
    return value


def sisben_group(group: str | None) -> str | None:
    """A Sisbén IV group (A, B, C1-C18, D, case and blanks ignored) or "NONE", as sent to the
    database (None: not given); else exit 2."""
    if group is None:
        return None
    if group.strip().upper() not in (*SISBEN_GROUPS, "NONE"):
        raise InvalidInput(f"invalid --sisben {group!r}: use A, B, C1 to C18, D or none")
    return group.strip().upper()


def check_email(email: str | None) -> None:
    """An email as public.email_is_valid accepts it (given already stripped); else exit 2."""
    if email is not None and (len(email) > 254 or not EMAIL.fullmatch(email)):
        raise InvalidInput(f"invalid --email {email!r}: use name@domain, at most 254 characters")


def add_user(conn: psycopg.Connection[Row], document: str, name: str, who: str | None,
             key: str | None = None, announce: Announce | None = None, *,
             birth_date: dt.date | None = None, sisben: str | None = None,
             disability: bool = False) -> Row:
    """Register a user, with the eligibility for benefits when known (sisben: a Sisbén IV
    group or none; the stored function checks every value)."""
    _text(name, "--name", 200)
    sisben = sisben_group(sisben)
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.user_add", (document.strip(), name, birth_date, sisben,
                                             disability, operator(who), key), key)
    return {**row, "idempotency_key": key}


def issue(conn: psycopg.Connection[Row], user_id: int | None, who: str | None,
          key: str | None = None, announce: Announce | None = None) -> Row:
    if user_id is not None:
        check_id(user_id, "user id")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.card_issue", (user_id, operator(who), key), key)
    return {**row, "idempotency_key": key}


def set_status(conn: psycopg.Connection[Row], cache: Cache, card_id: int, action: str,
               reason: str | None, who: str | None, key: str | None = None,
               announce: Announce | None = None) -> Row:
    check_id(card_id, "card id")
    if action not in STATUS_ACTIONS:
        raise InvalidInput(f"unknown action {action!r}: use {', '.join(STATUS_ACTIONS)}")
    _text(reason, "--reason")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.card_set_status", (card_id, action, reason, operator(who), key),
                   key)
    if not row["replayed"]:
        cache.card_invalidated(card_id, row["version"])
    return {k: v for k, v in row.items() if k != "version"} | {"idempotency_key": key}


def replace(conn: psycopg.Connection[Row], cache: Cache, card_id: int, reason: str | None,
            who: str | None, key: str | None = None, announce: Announce | None = None) -> Row:
    check_id(card_id, "card id")
    _text(reason, "--reason")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.card_replace", (card_id, reason, operator(who), key), key)
    if not row["replayed"]:
        cache.card_invalidated(card_id, row["old_version"])
        cache.card_invalidated(row["new_card_id"], row["new_version"])
    return {"old_card_id": row["old_card_id"], "new_card_id": row["new_card_id"],
            "amount_moved": row["amount_moved"], "replayed": row["replayed"],
            "idempotency_key": key}


def reverse(conn: psycopg.Connection[Row], cache: Cache, card_id: int, recharge_id: int,
            reason: str | None, who: str | None, key: str | None = None,
            announce: Announce | None = None) -> Row:
    check_id(card_id, "card id")
    check_id(recharge_id, "recharge id")
    _text(reason, "--reason")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.recharge_reverse",
                   (card_id, recharge_id, reason, operator(who), key), key)
    if not row["replayed"]:
        cache.card_invalidated(card_id, row["version"])
    return {k: v for k, v in row.items() if k != "version"} | {"idempotency_key": key}


def show(conn: psycopg.Connection[Row], card_id: int, movements: int) -> Row:
    check_id(card_id, "card id")
    check_id(movements, "--movements", MAX_LIMIT)
    row = db.call_one(conn, "public.card_show", (card_id, movements))
    assert row is not None
    # jsonb carries timestamps as text in the session's time zone: make them timestamps
    # again, so that they are written as every other one
    row["movements"] = [{**m, "created_at": dt.datetime.fromisoformat(m["created_at"])}
                        for m in row["movements"]]
    return row


def list_cards(conn: psycopg.Connection[Row], status: str | None, user_id: int | None,
               limit: int, after: int | None) -> list[Row]:
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown --status {status!r}: use {', '.join(STATUSES)}")
    if user_id is not None:
        check_id(user_id, "user id")
    check_id(limit, "--limit", MAX_LIMIT)
    if after is not None and after < 0:
        raise InvalidInput("--after must be a card id (0 or more)")
    return db.call(conn, "public.cards_list", (status, user_id, limit, after))


def statement(conn: psycopg.Connection[Row], card_id: int, date_from: dt.date | None,
              date_to: dt.date | None) -> list[Row]:
    check_id(card_id, "card id")
    return db.call(conn, "public.card_statement", (card_id, date_from, date_to))


def fares(conn: psycopg.Connection[Row], at: str | None) -> list[Row]:
    return db.call(conn, "public.fares_list", (at,))


def set_fare(conn: psycopg.Connection[Row], code: str, amount: int, valid_from: str,
             who: str | None, key: str | None = None, announce: Announce | None = None) -> Row:
    if amount < 0 or amount > MAX_INTEGER:
        raise InvalidInput(f"--amount must be a whole number of pesos from 0, got {amount}")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.fare_set", (code.strip().upper(), amount, valid_from,
                                             operator(who), key), key)
    return {**row, "idempotency_key": key}


def limits(conn: psycopg.Connection[Row]) -> Row:
    row = db.call_one(conn, "public.limits_show")
    assert row is not None
    return row


def set_limits(conn: psycopg.Connection[Row], values: dict[str, int | None], who: str | None,
               key: str | None = None, announce: Announce | None = None) -> Row:
    if all(v is None for v in values.values()):
        raise InvalidInput("give at least one of --min-recharge, --max-recharge, --max-balance, "
                           "--credit-allowance, --max-tap-age-days")
    for name, value in values.items():
        if name == "max_tap_age_days":
            if value is not None and not 1 <= value <= MAX_TAP_AGE_DAYS:
                raise InvalidInput(f"--max-tap-age-days must be between 1 and {MAX_TAP_AGE_DAYS} "
                                   f"days, got {value}")
        elif value is not None and not 0 <= value <= MAX_LIMIT_PESOS:
            raise InvalidInput(f"--{name.replace('_', '-')} must be between 0 and "
                               f"{MAX_LIMIT_PESOS:,} pesos, got {value}")
    key = idempotency_key(key, announce)
    row = db.write(conn, "public.limits_set",
                   (values["min_recharge"], values["max_recharge"], values["max_balance"],
                    values["credit_allowance"], values.get("max_tap_age_days"), operator(who),
                    key), key)
    return {**row, "idempotency_key": key}


def _audit_filter(card_id: int | None, limit: int, after: int | None) -> None:
    if card_id is not None:
        check_id(card_id, "card id")
    check_id(limit, "--limit", MAX_LIMIT)
    if after is not None and not 0 <= after <= MAX_BIGINT:
        raise InvalidInput("--after must be an audit id (0 or more)")


def _audit_page(conn: psycopg.Connection[Row], card_id: int | None, limit: int,
                after: int) -> tuple[list[Row], int]:
    """The rows after `after` that are final (see `audit_horizon` in sql/), oldest first, and
    the cursor to continue from: the last row's id when the page is full, else the horizon
    (rows of other cards up to it need no second look)."""
    row = db.call_one(conn, "public.audit_horizon", (after,))
    assert row is not None
    upto = row["audit_horizon"]
    rows = db.call(conn, "public.audit_list", (card_id, limit, after, upto)) if upto > after else []
    return rows, rows[-1]["audit_id"] if len(rows) == limit else upto


def audit(conn: psycopg.Connection[Row], card_id: int | None, limit: int,
          after: int | None = None) -> list[Row]:
    """The newest rows first; with `after` (a cursor: the last audit_id of the previous page)
    the rows after it, oldest first. A page never skips a row that commits later with a lower
    id than one shown: it stops before ids still in flight."""
    _audit_filter(card_id, limit, after)
    if after is None:
        return db.call(conn, "public.audit_list", (card_id, limit, None, None))
    return _audit_page(conn, card_id, limit, after)[0]


def follow_audit(conn: psycopg.Connection[Row], card_id: int | None, limit: int,
                 after: int | None, interval: float = FOLLOW_INTERVAL) -> Iterator[list[Row]]:
    """Batches of audit rows as they commit, oldest first, for ever (like `tail -f`): the rows
    after `after`, or else the newest `limit` ones, then each new row.

    It polls (every `interval` seconds when there is nothing new) instead of LISTEN/NOTIFY: a
    poll needs no connection held in a listening state and no notification sent by writers,
    and a notification would still not say which lower ids are yet to commit. What makes it
    complete is the cursor: it only moves up to `audit_horizon`, the last id below which no
    transaction can still commit a row. Audit ids are drawn in order but committed in any
    order, so a cursor on the highest id seen would skip a row whose transaction drew a lower
    id and committed later; waiting for the transactions older than the gap to end (snapshot
    xmin against a transaction id taken after the ids were drawn) closes it without holding
    any writer back. Rows therefore come out in id order, each once, and the last audit_id
    printed is a cursor a restart can pass to --after."""
    _audit_filter(card_id, limit, after)
    if after is None:
        row = db.call_one(conn, "public.audit_tail", (card_id, limit))
        assert row is not None
        after = row["audit_tail"]
    while True:
        rows, after = _audit_page(conn, card_id, MAX_LIMIT, after)
        if rows:
            yield rows
        if len(rows) < MAX_LIMIT:
            time.sleep(interval)
