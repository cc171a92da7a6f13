"""Thin Typer commands: parse options, make one call into a plain module, render."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer

from recharge_cli.runtime import Runtime


def runtime(ctx: typer.Context) -> Runtime:
    return ctx.find_root().obj


def announce_key(rt: Runtime) -> Callable[[str], None]:
    """Prints a generated idempotency key on stderr (even with --quiet) before the write is
    sent, so that an unclear outcome can always be retried with the same key."""
    return lambda key: rt.output.message(
        f"idempotency key: {key} (retry with --key {key} if the outcome is unclear)", always=True)


YES_OPTION = typer.Option(False, "--yes", "-y", help="do not ask for confirmation (needed off "
                          "a terminal)")


def confirm(rt: Runtime, action: str, yes: bool, target: str) -> None:
    """Ask before destroying data (`target` says which): a prompt on a terminal; off a
    terminal refuse (exit 2) unless --yes was given."""
    import sys

    from recharge_cli.errors import InvalidInput

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"{action} destroys data in {target}: add --yes to confirm (no "
                           "terminal to ask on)")
    if not typer.confirm(f"{action} destroys data in {target}. Continue?", default=False, err=True):
        raise InvalidInput(f"{action}: not confirmed, nothing was changed")


def database_named(conn: Any) -> str:
    """Which database a connection reaches, for a prompt (never its password)."""
    info = conn.info
    return f"database {info.dbname} on {info.host}:{info.port} (user {info.user})"


def writable_folder(path: Path, option: str) -> Path:
    """`path` created if needed and writable, checked before any work (else exit 2)."""
    import os

    from recharge_cli.errors import InvalidInput

    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot create the folder ({exc.strerror})") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInput(f"{option} {path}: the folder is not writable")
    return path


def finish_bulk(rt: Any, summary: Any, rejects: Path | None) -> NoReturn:
    """A bulk run's summary row, then its exit: the first rejected line's code, 75 when it
    stopped early (a rerun of the same file finishes it), 130 when interrupted."""
    from recharge_cli.errors import RechargeError

    rt.output.emit(summary.as_row())
    if rejects is not None and summary.rejected:
        rt.output.error(f"{summary.rejected:,} row(s) rejected: written to {rejects}")
    if summary.stopped is not None:
        raise RechargeError(f"stopped after {summary.rows} row(s): {summary.stopped}; "
                            "rerun the same file to finish it (applied rows replay)",
                            summary.stopped.status)
    raise typer.Exit(summary.exit_status)


def writable_file(path: Path, option: str) -> Path:
    """`path` can be written (its folder exists and is writable), checked before any work."""
    import os

    from recharge_cli.errors import InvalidInput

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput(f"{option} {path}: cannot write this file (check the folder exists "
                           "and is writable)")
    return path


def lock_option(default: str | None = None) -> Any:
    """`--lock NAME`: hold a PostgreSQL advisory lock while the command runs."""
    return typer.Option(default, "--lock", metavar="NAME",
                        help="hold this advisory lock while running; exit 75 at once if another "
                        "run holds it" + (" ('' for none)" if default else ""))


def choice(default: Any, name: str, values: Sequence[str], help: str) -> Any:
    """An option taking one of `values`, which the shell completes (the command checks the
    value and says what is allowed, exit 2)."""
    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return typer.Option(default, name, help=f"{help} ({', '.join(values)})",
                        autocompletion=complete)


WAIT_OPTION = typer.Option(0.0, "--wait", min=0, max=86_400, metavar="SECONDS",
                           help="wait up to SECONDS for --lock before exiting 75")


def whole_number(text: str | int) -> int:
    """Strict integer options: ASCII digits only ("1000.0", "1e3" and "١٠٠٠" are errors, exit 2)."""
    from recharge_cli.cards import whole_number as parse

    number = text if isinstance(text, int) else parse(text)
    if number is None:
        raise typer.BadParameter(f"{text!r} is not a whole number")
    return number
