"""Options more than one command takes, declared once, and the parsers of option values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer

from recharge_cli import inputs

CARD_HELP = "card id"
CARDS_HELP = "card id; repeat for several"
KEY_HELP = "idempotency key (1-128 of A-Z a-z 0-9 . _ : -); a UUID is generated when omitted"


def whole_number(text: str | int) -> int:
    """Strict integer options: ASCII digits only ("1000.0", "1e3" and "١٠٠٠" are errors, exit 2)."""
    number = text if isinstance(text, int) else inputs.whole_number(text)
    if number is None:
        raise typer.BadParameter(f"{text!r} is not a whole number")
    return number


def card_option(default: Any = ..., help: str | None = CARD_HELP) -> Any:
    """`--card ID` (a list of ids when the parameter is a list: repeat the option)."""
    return typer.Option(default, "--card", parser=whole_number, help=help)


def choice(default: Any, name: str, values: Sequence[str], help: str) -> Any:
    """An option taking one of `values`, which the shell completes (the command checks the
    value and says what is allowed, exit 2)."""
    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return typer.Option(default, name, help=f"{help} ({', '.join(values)})",
                        autocompletion=complete)


def lock_option(default: str | None = None) -> Any:
    """`--lock NAME`: hold a PostgreSQL advisory lock while the command runs."""
    return typer.Option(default, "--lock", metavar="NAME",
                        help="hold this advisory lock while running; exit 75 at once if another "
                        "run holds it" + (" ('' for none)" if default else ""))


CARD = card_option()
CARDS = card_option(help=CARDS_HELP)
KEY = typer.Option(None, "--key", help=KEY_HELP)
OPERATOR = typer.Option(None, "--operator", help="who acts, for the audit (default: the OS user)")
REASON = typer.Option(None, "--reason", help="why, for the audit")
VALID_FROM = typer.Option(..., "--from", help="start of the new period, ISO 8601 "
                          "(e.g. 2027-01-15)")
WAIT_OPTION = typer.Option(0.0, "--wait", min=0, max=86_400, metavar="SECONDS",
                           help="wait up to SECONDS for --lock before exiting 75")
YES_OPTION = typer.Option(False, "--yes", "-y", help="do not ask for confirmation (needed off "
                          "a terminal)")
DAY_FROM = typer.Option(None, "--from", help="first day, YYYY-MM-DD (default: all data)")
DAY_TO = typer.Option(None, "--to", help="last day, inclusive, YYYY-MM-DD (default: all data)")
FRESH = typer.Option(False, "--fresh", help="recompute now and refresh the cache")
BIRTH_DATE = typer.Option(None, "--birth-date", help="YYYY-MM-DD (for the older-adult benefit)")
SISBEN = choice(None, "--sisben", (*inputs.SISBEN_GROUPS, "none"), "Sisbén IV group")
