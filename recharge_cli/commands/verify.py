"""recharge verify"""

from __future__ import annotations

import typer

from recharge_cli import verify as ledger
from recharge_cli.commands.shared import runtime
from recharge_cli.errors import ExitStatus


def verify(ctx: typer.Context,
           full: bool = typer.Option(False, "--full", help="check everything, not only what "
                                     "changed since the last clean run")) -> None:
    """Check the ledger and rollup invariants; exit 0 only when all hold (1 otherwise).

    By default only what changed since the last clean run (its checkpoint is kept in the
    database): the new entries, the cards and days they touched. --full checks everything
    (the first run always does).

    \b
    Examples:
      recharge --quiet verify > /dev/null || echo "ledger check failed"
      recharge verify --full
    """
    rt = runtime(ctx)
    done = ledger.run(rt.db(), full, rt.more_db)
    found = done.violations
    ledger.record(rt.db(), found, {"full": done.full, "since_entry": done.since_entry,
                                   "checkpoint": done.checkpoint})
    rt.output.message(("checked everything" if done.full else
                       f"checked what changed after entry {done.since_entry}")
                      + ("" if done.checkpoint is None or found else
                         f"; checkpoint now at entry {done.checkpoint}")
                      + ("" if done.checkpoint is not None or found else
                         "; checkpoint not moved: older transactions were still running"))
    for row in found:
        parts = [f"{name} {row[field]}" for name, field in
                 (("card", "card_id"), ("expected", "expected"), ("actual", "actual"), ("", "detail"))
                 if row[field] is not None]
        rt.output.message(f"violation of invariant {row['invariant']} ({row['check_name']}): "
                          + ", ".join(part.strip() for part in parts))
    rt.output.emit(ledger.summary(found))
    if found:
        raise typer.Exit(ExitStatus.CHECK_FAILED)
