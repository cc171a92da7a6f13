"""recharge users add|show|find|update | cards issue|show|list|block|unblock|lost|replace|
statement|personalise|hotlist | reverse | fares list|set | limits show|set | audit list |
benefits rules|grant"""

from __future__ import annotations

import typer

from recharge_cli import benefits as grants
from recharge_cli import desk, interrupts, lifecycle, parsers
from recharge_cli.commands.options import (
    BIRTH_DATE,
    CARD,
    KEY,
    OPERATOR,
    REASON,
    SISBEN,
    VALID_FROM,
    WAIT_OPTION,
    card_option,
    choice,
    lock_option,
    whole_number,
)
from recharge_cli.commands.shared import announce_key, runtime
from recharge_cli.errors import InvalidInput

users = typer.Typer(no_args_is_help=True, help="Registered users.")
cards = typer.Typer(no_args_is_help=True, help="Issue, inspect, block, replace cards.")
fares = typer.Typer(no_args_is_help=True, help="Fares and their validity periods.")
limits = typer.Typer(no_args_is_help=True, help="Recharge and balance limits (audited).")
audit = typer.Typer(no_args_is_help=True, help="Administrative actions.")


@users.command("add")
def users_add(ctx: typer.Context,
              document: str = typer.Option(..., "--document", help="identity document number"),
              name: str = typer.Option(..., "--name", help="full name"),
              birth_date: str | None = BIRTH_DATE, sisben: str | None = SISBEN,
              disability: bool = typer.Option(False, "--disability",
                                              help="a certified disability"),
              operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """Register a user (example: recharge users add --document CC1020304050 --name "Ana Gómez")."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.add_user(rt.db(), document, name, operator, key, announce_key(rt),
                                      birth_date=parsers.birth_date(birth_date),
                                      sisben=sisben, disability=disability))


@cards.command("issue")
def cards_issue(ctx: typer.Context,
                user: int | None = typer.Option(None, "--user", parser=whole_number,
                                                help="personalise for this user (else anonymous)"),
                operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """A new active card with balance 0 (example: recharge cards issue --user 25001)."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.issue(rt.db(), user, operator, key, announce_key(rt)))


@cards.command("show")
def cards_show(ctx: typer.Context, card: int = CARD,
               movements: int = typer.Option(10, "--movements", parser=whole_number,
                                             help="latest ledger entries to include")) -> None:
    """One card: owner, status, balance, version, dates, latest ledger entries."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.show(rt.db(), card, movements))


@cards.command("list")
def cards_list(ctx: typer.Context,
               status: str | None = choice(None, "--status", lifecycle.STATUSES,
                                           "only cards with this status"),
               user: int | None = typer.Option(None, "--user", parser=whole_number),
               limit: int = typer.Option(50, "--limit", parser=whole_number),
               after: int | None = typer.Option(None, "--after", parser=whole_number,
                                                help="the last card id of the previous page")) -> None:
    """Cards by id, keyset-paginated: pass the last card_id shown as --after for the next page."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.list_cards(rt.db(), status, user, limit, after))


def _status_command(action: str, summary: str) -> None:
    def command(ctx: typer.Context, card: int = CARD, reason: str | None = REASON,
                operator: str | None = OPERATOR, key: str | None = KEY) -> None:
        rt = runtime(ctx)
        rt.output.emit(lifecycle.set_status(rt.db(), rt.cache(), card, action, reason, operator,
                                            key, announce_key(rt)))

    command.__doc__ = summary
    cards.command(action)(command)


_status_command("block", "Block an active card (reversible with unblock): no recharges, no trips.")
_status_command("unblock", "Unblock a blocked card.")
_status_command("lost", "Report a card lost (final); a personalised one can then be replaced.")


@cards.command("replace")
def cards_replace(ctx: typer.Context, card: int = CARD, reason: str | None = REASON,
                  operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """A new card for the owner of a blocked or lost personalised card, with its balance."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.replace(rt.db(), rt.cache(), card, reason, operator, key,
                                     announce_key(rt)))


@cards.command("statement")
def cards_statement(ctx: typer.Context, card: int = CARD,
                    date_from: str | None = typer.Option(None, "--from", help="YYYY-MM-DD"),
                    date_to: str | None = typer.Option(None, "--to", help="YYYY-MM-DD, inclusive")
                    ) -> None:
    """Ledger entries with their running balance (accounting export: --format csv)."""
    rt = runtime(ctx)
    first, last = parsers.date_range(date_from, date_to)
    rt.output.emit(lifecycle.statement(rt.db(), card, first, last))


def reverse(ctx: typer.Context, card: int = CARD,
            recharge: int = typer.Option(..., "--recharge", parser=whole_number,
                                         help="the recharge_id to reverse"),
            reason: str | None = REASON, operator: str | None = OPERATOR,
            key: str | None = KEY) -> None:
    """Reverse a recharge with a correcting entry (once, while the balance covers it)."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.reverse(rt.db(), rt.cache(), card, recharge, reason, operator, key,
                                     announce_key(rt)))


@fares.command("list")
def fares_list(ctx: typer.Context,
               at: str | None = typer.Option(None, "--at", help="only the fares valid at this "
                                             "time (ISO 8601)")) -> None:
    """Every fare period (or those valid --at a time)."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.fares(rt.db(), parsers.time(at)))


@fares.command("set")
def fares_set(ctx: typer.Context, code: str = typer.Option(..., "--code", help="e.g. STANDARD"),
              amount: int = typer.Option(..., "--amount", parser=whole_number, help="pesos"),
              valid_from: str = VALID_FROM,
              operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """Add a fare period from --from on (never rewrites a period that trips used)."""
    rt = runtime(ctx)
    start = parsers.time(valid_from, "--from")
    assert start is not None
    rt.output.emit(lifecycle.set_fare(rt.db(), code, amount, start, operator, key,
                                      announce_key(rt)))


@limits.command("show")
def limits_show(ctx: typer.Context) -> None:
    """Recharge and balance limits, credit allowance, the transfer window in force."""
    rt = runtime(ctx)
    rt.output.emit(lifecycle.limits(rt.db()))


@limits.command("set")
def limits_set(ctx: typer.Context,
               min_recharge: int | None = typer.Option(None, "--min-recharge", parser=whole_number),
               max_recharge: int | None = typer.Option(None, "--max-recharge", parser=whole_number),
               max_balance: int | None = typer.Option(None, "--max-balance", parser=whole_number),
               credit_allowance: int | None = typer.Option(None, "--credit-allowance",
                                                           parser=whole_number),
               max_tap_age_days: int | None = typer.Option(
                   None, "--max-tap-age-days", parser=whole_number,
                   help="refuse taps boarded longer ago than this (offline validators' uploads)"),
               operator: str | None = OPERATOR, key: str | None = KEY) -> None:
    """Change limits (audited); options left out keep their value."""
    rt = runtime(ctx)
    values = {"min_recharge": min_recharge, "max_recharge": max_recharge,
              "max_balance": max_balance, "credit_allowance": credit_allowance,
              "max_tap_age_days": max_tap_age_days}
    rt.output.emit(lifecycle.set_limits(rt.db(), values, operator, key, announce_key(rt)))


@audit.command("list")
def audit_list(ctx: typer.Context,
               card: int | None = card_option(None, help=None),
               limit: int = typer.Option(50, "--limit", parser=whole_number,
                                         help="rows per page; with --follow and no --after, "
                                              "how many of the newest rows come first"),
               after: int | None = typer.Option(None, "--after", parser=whole_number,
                                                help="the last audit_id of the previous page: "
                                                     "the rows after it, oldest first"),
               follow: bool = typer.Option(False, "--follow",
                                           help="keep printing rows as they commit (Ctrl-C "
                                                "ends it); JSONL off a terminal")) -> None:
    """Administrative actions with the declared operator and the database login (db_user),
    newest first; --after ID pages oldest first; --follow tails new rows like tail -f."""
    rt = runtime(ctx)
    if not follow:
        rt.output.emit(lifecycle.audit(rt.db(), card, limit, after))
        return
    rt.output.start_stream()
    for rows in lifecycle.follow_audit(rt.db(), card, limit, after):
        with interrupts.deferred():  # whole rows only, even on Ctrl-C
            rt.output.stream(rows)
        if interrupts.pending():
            return


# The desk: customer service, the hotlist, monthly free trips.

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
            rt.output.stream(rows)
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
