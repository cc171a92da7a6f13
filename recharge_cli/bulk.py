"""Bulk recharges from CSV (a cron job's daily top-ups): each row its own idempotent operation."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from recharge_cli import cards, interrupts
from recharge_cli.cache import Cache
from recharge_cli.errors import ExitStatus, InvalidInput, RechargeError, from_database
from recharge_cli.render import Output

REJECT_COLUMNS = ["line", "card_id", "amount", "key", "exit_code", "error"]
# A third column of exactly three digits after an amount: "3,1,000" meant 1,000.
THOUSANDS = re.compile(r"[0-9]{3}")


@dataclass
class BulkSummary:
    rows: int = 0
    ok: int = 0
    replayed: int = 0
    rejected: int = 0
    total_amount: int = 0
    first_failure: int = 0
    rejects: list[dict[str, Any]] = field(default_factory=list)
    stopped: RechargeError | None = None  # a lost connection: rows after it were not tried
    interrupted: bool = False

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return int(ExitStatus.INTERRUPTED)
        return self.first_failure

    def as_row(self) -> dict[str, Any]:
        return {"rows": self.rows, "ok": self.ok, "replayed": self.replayed,
                "rejected": self.rejected, "amount_recharged": self.total_amount,
                "complete": self.stopped is None and not self.interrupted}


def _read(path: Path) -> tuple[str, str]:
    if str(path) == "-":
        return "stdin", sys.stdin.read()
    try:
        return path.name, path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc


def _parse_int(text: str, what: str) -> int:
    number = cards.whole_number(text)
    if number is None:
        raise InvalidInput(f"{what} must be an integer, got {text.strip()!r}")
    return number


def recharge_file(conn: psycopg.Connection[Any], cache: Cache, path: Path, point_id: int | None,
                  rejects_path: Path | None, output: Output) -> BulkSummary:
    """Apply every row; rows without a key get one derived from the file name, content and
    line, so rerunning the same file replays instead of charging twice."""
    name, text = _read(path)
    digest = hashlib.sha256((name + "\0" + text).encode()).hexdigest()[:16]
    summary = BulkSummary()
    try:  # the whole file parses before any money moves
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise InvalidInput(f"{path}: not a valid CSV file ({exc}); nothing was applied") from exc
    for line_no, fields in enumerate(rows, start=1):
        if interrupts.pending():
            summary.interrupted = True
            break
        if not fields or all(not f.strip() for f in fields):
            continue
        if line_no == 1 and fields[0].strip().lower() == "card_id":
            continue
        summary.rows += 1
        key = fields[2].strip() if len(fields) > 2 and fields[2].strip() else f"csv-{digest}-{line_no}"
        try:
            if len(fields) not in (2, 3):
                raise InvalidInput(f"expected 2 or 3 columns (card_id,amount[,key]), got {len(fields)}")
            card_id = _parse_int(fields[0], "card_id")
            amount = _parse_int(fields[1], "amount")
            if len(fields) == 3 and THOUSANDS.fullmatch(fields[2].strip()):
                raise InvalidInput(f"amount {fields[1].strip()},{fields[2].strip()} looks like a "
                                   "number with a thousands separator: write amounts without "
                                   "separators (e.g. 1000), or quote the key")
            result = cards.recharge(conn, cache, card_id, amount, point_id, key)
        except (RechargeError, psycopg.Error) as exc:
            error = exc if isinstance(exc, RechargeError) else from_database(exc)
            if error is None:
                raise
            if error.status in (ExitStatus.UNAVAILABLE, ExitStatus.TEMPORARY):
                summary.stopped = error  # rerunning the file completes it exactly once
                break
            summary.rejected += 1
            summary.first_failure = summary.first_failure or int(error.status)
            summary.rejects.append({"line": line_no, "card_id": fields[0] if fields else "",
                                    "amount": fields[1] if len(fields) > 1 else "", "key": key,
                                    "exit_code": int(error.status), "error": str(error)})
            continue
        if result["replayed"]:
            summary.replayed += 1
        else:
            summary.ok += 1
            summary.total_amount += result["amount"]
    _write_rejects(summary.rejects, rejects_path, output)
    return summary


def _write_rejects(rejects: list[dict[str, Any]], path: Path | None, output: Output) -> None:
    if path is not None:
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, REJECT_COLUMNS)
            writer.writeheader()
            writer.writerows(rejects)
        return
    for row in rejects:
        output.error(f"line {row['line']}: {row['error']}")
