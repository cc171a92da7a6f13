"""recharge verify"""

from __future__ import annotations

import typer

from recharge_cli import verify as ledger
from recharge_cli.commands import runtime
from recharge_cli.errors import ExitStatus


def verify(ctx: typer.Context) -> None:
    """Check the ledger invariants; exit 0 only when all hold (1 otherwise)."""
    rt = runtime(ctx)
    found = ledger.violations(rt.db())
    for row in found:
        rt.output.message(
            f"violation of invariant {row['invariant']} ({row['check_name']}): card "
            f"{row['card_id']}, expected {row['expected']}, actual {row['actual']}"
            + (f", {row['detail']}" if row["detail"] else ""))
    rt.output.emit(ledger.summary(found))
    if found:
        raise typer.Exit(ExitStatus.INTERNAL)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
