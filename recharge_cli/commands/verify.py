"""recharge verify"""

from __future__ import annotations

import typer

from recharge_cli import verify as ledger
from recharge_cli.commands.shared import runtime
from recharge_cli.errors import ExitStatus


def verify(ctx: typer.Context) -> None:
    """Check the ledger and rollup invariants; exit 0 only when all hold (1 otherwise).

    \b
    Examples:
      recharge --quiet verify > /dev/null || echo "ledger check failed"
    """
    rt = runtime(ctx)
    found = ledger.violations(rt.db())
    ledger.record(rt.db(), found)
    for row in found:
        parts = [f"{name} {row[field]}" for name, field in
                 (("card", "card_id"), ("expected", "expected"), ("actual", "actual"), ("", "detail"))
                 if row[field] is not None]
        rt.output.message(f"violation of invariant {row['invariant']} ({row['check_name']}): "
                          + ", ".join(part.strip() for part in parts))
    rt.output.emit(ledger.summary(found))
    if found:
        raise typer.Exit(ExitStatus.CHECK_FAILED)
