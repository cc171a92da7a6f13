"""recharge users show|find|update | cards personalise|hotlist | benefits rules (the groups
`users` and `cards` are those of commands/lifecycle.py, with these commands added)."""

from __future__ import annotations

import typer

from recharge_cli import benefits as grants
from recharge_cli import desk, interrupts
from recharge_cli.commands import WAIT_OPTION, announce_key, lock_option, parsers, runtime, whole_number
from recharge_cli.commands.lifecycle import (
    BIRTH_DATE,
    CARD,
    KEY,
    OPERATOR,
    SISBEN,
    cards,
    users,
)
from recharge_cli.errors import InvalidInput

__all__ = ["benefits", "cards", "users"]

benefits = typer.Typer(no_args_is_help=True,
                       help="Monthly free trips: the allocation table and the monthly grant.")

USER = typer.Option(..., "--user", parser=whole_number, help="user id")


@users.command("show")
def users_show(ctx: typer.Context,
               user: int | None = typer.Option(None, "--user", parser=whole_number,
                                               help="user id"),
               document: str | None = typer.Option(None, "--document",
                                                   help="identity document number")) -> None:
    """One user: eligibility, the trips a month they are entitled to now, their cards."""
    rt = runtime(ctx)
    rt.output.emit(desk.show_user(rt.db(), user, document))


@users.command("find")
def users_find(ctx: typer.Context,
               name: str = typer.Option(..., "--name", help="words of the name, in any order; "
                                        "accents and case ignored"),
               limit: int = typer.Option(20, "--limit", parser=whole_number,
                                         help="at most this many users (1-10000)")) -> None:
    """Users whose name holds every word given (example: recharge users find --name "gomez ana")."""
    rt = runtime(ctx)
    rt.output.emit(desk.find_users(rt.db(), name, limit))


@users.command("update")
def users_update(ctx: typer.Context, user: int = USER,
                 email: str | None = typer.Option(None, "--email", help="name@domain"),
                 name: str | None = typer.Option(None, "--name", help="full name"),
                 birth_date: str | None = BIRTH_DATE, sisben: str | None = SISBEN,
                 disability: bool | None = typer.Option(None, "--disability/--no-disability",
                                                        help="a certified disability (or not)"),
                 operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """Correct a user's email, name or eligibility (audited; options left out are kept)."""
    rt = runtime(ctx)
    rt.output.emit(desk.update_user(rt.db(), user, operator, email=email, name=name,
                                    birth_date=parsers.birth_date(birth_date),
                                    sisben=sisben, disability=disability, key=key,
                                    announce=announce_key(rt)))


@cards.command("personalise")
def cards_personalise(ctx: typer.Context, card: int = CARD, user: int = USER,
                      operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """An anonymous active card becomes the user's, with its balance and history."""
    rt = runtime(ctx)
    rt.output.emit(desk.personalise(rt.db(), rt.cache(), card, user, operator, key,
                                    announce_key(rt)))


@cards.command("hotlist")
def cards_hotlist(ctx: typer.Context,
                  since: str | None = typer.Option(None, "--since", help="only the cards whose "
                                                   "status changed after this time (ISO 8601), "
                                                   "unblocked ones included")) -> None:
    """Cards validators must refuse (blocked, lost, replaced), streamed; with --since the
    changes after that time, each card with its status now (active: take it off the list)."""
    rt = runtime(ctx)
    start = parsers.time(since, "--since")
    columns = ("card_id", "status", "changed_at")
    rt.output.start_stream(endless=False)
    for rows in desk.hotlist(rt.db(), start):
        with interrupts.deferred():  # whole rows only, even on Ctrl-C
            rt.output.stream(rows, columns)
        if interrupts.pending():
            return
    rt.output.end_stream(columns)


@benefits.command("rules")
def benefits_rules(ctx: typer.Context,
                   month: str | None = typer.Option(None, "--month", help="only the rules valid "
                                                    "in this month (YYYY-MM)")) -> None:
    """The allocation table: trips a month per criterion and Sisbén group, by validity period."""
    rt = runtime(ctx)
    rt.output.emit(desk.benefit_rules(rt.db(), parsers.month(month)))


@benefits.command("grant")
def benefits_grant(
    ctx: typer.Context,
    month: str = typer.Option(..., "--month", help="the current month, YYYY-MM"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would be granted and lapse; "
                                 "change nothing"),
    lock: str | None = lock_option("benefits-grant"),
    wait: float = WAIT_OPTION,
) -> None:
    """Load the month's free trips onto each eligible user's active personalised card (cron,
    on the 1st). Trips an earlier month left lapse first, each an entry. Idempotent per user
    and month: a rerun replays and adds nothing. Eligible users without an active
    personalised card are counted and listed as skipped (`skipped_users`).

    \b
    Examples:
      recharge benefits grant --month 2026-12 --dry-run
      recharge --metrics-file benefits.prom benefits grant --month $(date +%Y-%m)
    """
    rt = runtime(ctx)
    first = parsers.month(month)
    if first is None:
        raise InvalidInput("--month is required (YYYY-MM)")
    with rt.locked(lock, wait):
        summary = grants.grant(rt.db(), first, dry_run)
    if summary["skipped"]:
        rt.output.message(f"{summary['skipped']:,} eligible user(s) skipped: no active "
                          "personalised card (skipped_users lists them)")
    rt.output.emit(summary)
