"""recharge recharge | balance | recharges"""

from __future__ import annotations

from pathlib import Path

import typer

from recharge_cli import bulk, cards
from recharge_cli.commands.options import (
    CARD,
    CARDS,
    KEY,
    WAIT_OPTION,
    card_option,
    lock_option,
    whole_number,
)
from recharge_cli.commands.shared import announce_key, finish_bulk, runtime
from recharge_cli.errors import InvalidInput
from recharge_cli.inputs import writable_file


def recharge(
    ctx: typer.Context,
    card: int | None = card_option(None),
    amount: int | None = typer.Option(None, "--amount", parser=whole_number,
                                      help="pesos, a positive integer"),
    point: int | None = typer.Option(None, "--point", parser=whole_number, help="recharge point id"),
    key: str | None = KEY,
    from_csv: Path | None = typer.Option(None, "--from-csv", help="bulk: a CSV file with "
                                         "columns card_id,amount[,key]; - reads stdin"),
    rejects: Path | None = typer.Option(None, "--rejects", help="bulk: write rejected rows "
                                        "here as CSV instead of stderr"),
    dry_run: bool = typer.Option(False, "--dry-run", help="bulk: apply every rule, report what "
                                 "would happen, move nothing"),
    lock: str | None = lock_option(),
    wait: float = WAIT_OPTION,
) -> None:
    """Recharge a card (or every row of --from-csv, each its own idempotent operation).
    Bulk runs hold the lock 'recharge-bulk' unless --lock names another ('' for none).

    \b
    Examples:
      recharge recharge --card 789 --amount 500
      recharge recharge --card 789 --amount 500 --key topup-789-0601
      recharge recharge --from-csv topups.csv --rejects rejects.csv [--dry-run]
    """
    rt = runtime(ctx)
    if from_csv is not None:
        if card is not None or amount is not None or key is not None:
            raise InvalidInput("--from-csv cannot be combined with --card, --amount or --key")
        if rejects is not None:
            writable_file(rejects, "--rejects")
        with rt.locked("recharge-bulk" if lock is None else lock, wait):
            summary = bulk.recharge_file(rt.more_db, rt.cache(), from_csv, point, rejects, rt.output,
                                         dry_run)
        finish_bulk(rt, summary, rejects)
    if card is None or amount is None:
        raise InvalidInput("--card and --amount are required (or use --from-csv)")
    if dry_run:
        raise InvalidInput("--dry-run goes with --from-csv (a single recharge is its own check: "
                           "use a --key and repeat it)")
    with rt.locked(lock, wait):
        result = cards.recharge(rt.db(), rt.cache(), card, amount, point, key,
                                announce_key(rt))
    rt.output.emit(result)


def balance(
    ctx: typer.Context,
    card: list[int] = CARDS,
) -> None:
    """Card balances (cache-aside; --no-cache reads PostgreSQL).

    \b
    Examples:
      recharge balance --card 789
      recharge balance --card 789 --card 790 --format csv
    """
    rt = runtime(ctx)
    try:
        rows = cards.balances(rt.db(), rt.cache(), card)
    except cards.CardsNotFound as exc:  # the cards found first, then the line naming the rest
        if exc.found:
            rt.output.emit(exc.found)
        raise
    if len(card) == 1:
        rt.output.emit(rows[0])
    else:
        rt.output.emit(rows)


def recharges(
    ctx: typer.Context,
    card: int = CARD,
    limit: int = typer.Option(20, "--limit", parser=whole_number, help="how many, newest first"),
) -> None:
    """A card's latest recharges.

    \b
    Examples:
      recharge recharges --card 789 --limit 5
    """
    rt = runtime(ctx)
    rt.output.emit(cards.recharges(rt.db(), card, limit))
