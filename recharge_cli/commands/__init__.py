"""Thin Typer commands: parse options, make one call into a plain module, render."""

from __future__ import annotations

from typing import Any

import typer

from recharge_cli.runtime import Runtime


def runtime(ctx: typer.Context) -> Runtime:
    return ctx.find_root().obj


def lock_option(default: str | None = None) -> Any:
    """`--lock NAME`: hold a PostgreSQL advisory lock while the command runs."""
    return typer.Option(default, "--lock", metavar="NAME",
                        help="hold this advisory lock while running; exit 75 at once if another "
                        "run holds it" + (" ('' for none)" if default else ""))


WAIT_OPTION = typer.Option(0.0, "--wait", min=0, max=86_400, metavar="SECONDS",
                           help="wait up to SECONDS for --lock before exiting 75")


def whole_number(text: str | int) -> int:
    """Strict integer options: ASCII digits only ("1000.0", "1e3" and "١٠٠٠" are errors, exit 2)."""
    from recharge_cli.cards import whole_number as parse

    number = text if isinstance(text, int) else parse(text)
    if number is None:
        raise typer.BadParameter(f"{text!r} is not a whole number")
    return number
