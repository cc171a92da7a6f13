"""Bulk recharges from CSV (a cron job's daily top-ups), applied set-based in chunks.

The file is read twice, streaming (constant memory; standard input is copied to a
temporary file): once to check every line (strict CSV quoting, columns, integers, keys,
field sizes), count its rows and derive keys (a malformed line refuses the whole file
before anything moves), then to apply it CHUNK_ROWS rows per call of recharge_bulk(),
which keeps every rule and idempotency key of a single recharge. Each chunk commits on its
own; the cache is written through for the cards it touched. Chunks go to PostgreSQL on
WORKERS connections side by side (chunks that share a card one after the other, so a
card's rows apply in file order) while the next ones are parsed; a chunk's rejects are
reported, in line order, and its cards written through the cache once it has committed,
on a thread of their own (chunk after chunk, while the next chunks are applied). A rerun
of the same file replays the applied rows (their keys are derived from the file) and
applies the rest.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import functools
import hashlib
import re
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psycopg
from psycopg.rows import tuple_row

from recharge_cli import cards, interrupts
from recharge_cli.cache import Cache
from recharge_cli.errors import ExitStatus, InvalidInput, RechargeError, from_database, sqlstate_status
from recharge_cli.render import Output, Progress

REJECT_COLUMNS = ["line", "card_id", "amount", "key", "exit_code", "error"]
MALFORMED_NAMED = 5  # malformed lines named in the error besides the first
# A third column of exactly three digits after an amount: "3,1,000" meant 1,000.
THOUSANDS = re.compile(r"[0-9]{3}")
CHUNK_ROWS = 5000
# Connections applying chunks side by side (PostgreSQL runs each chunk on one core).
WORKERS = 2


@dataclass
class BulkSummary:
    rows: int = 0
    ok: int = 0
    replayed: int = 0
    rejected: int = 0
    total_amount: int = 0
    first_failure: int = 0  # the exit status of the earliest rejected line
    first_failure_line: int = 0
    stopped: RechargeError | None = None  # a lost connection: rows after it were not tried
    interrupted: bool = False
    dry_run: bool = False
    amount_label: str = "amount_recharged"  # what total_amount is, in the summary row

    def reject(self, line: int, status: int) -> None:
        self.rejected += 1
        if not self.first_failure_line or line < self.first_failure_line:
            self.first_failure, self.first_failure_line = status, line

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return int(ExitStatus.INTERRUPTED)
        return self.first_failure

    def as_row(self) -> dict[str, Any]:
        return {"rows": self.rows, "ok": self.ok, "replayed": self.replayed,
                "rejected": self.rejected, self.amount_label: self.total_amount,
                "complete": self.stopped is None and not self.interrupted,
                "dry_run": self.dry_run}


@dataclass
class Row:
    line: int
    card_id: int
    amount: int
    key: str


@dataclass
class Chunk:
    """Rows to apply in one transaction, as columns, and the rows that failed to parse
    (line, card_id, amount, key, exit status, error)."""

    lines: list[int] = field(default_factory=list)
    cards: list[int] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    unparsed: list[tuple[int, Any, Any, str, int, str]] = field(default_factory=list)

    @functools.cached_property
    def card_set(self) -> set[int]:
        return set(self.cards)

    def add(self, row: Row) -> None:
        self.lines.append(row.line)
        self.cards.append(row.card_id)
        self.amounts.append(row.amount)
        self.keys.append(row.key)


class Rejects:
    """Rejected rows as they happen: a CSV file (--rejects) or one stderr line each. A row
    is its `columns`: the line, the file's fields, then the exit code and the error."""

    def __init__(self, path: Path | None, output: Output,
                 columns: list[str] = REJECT_COLUMNS) -> None:
        self.output = output
        self.columns = columns
        self.file = path.open("w", newline="", encoding="utf-8") if path is not None else None
        self.writer = csv.DictWriter(self.file, columns) if self.file else None
        if self.writer is not None:
            self.writer.writeheader()

    def add(self, summary: BulkSummary, line: int, *values: Any) -> None:
        *_, status, error = values
        summary.reject(line, status)
        if self.writer is not None:
            self.writer.writerow(dict(zip(self.columns, (line, *values), strict=True)))
        else:
            self.output.error(f"line {line}: {error}")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@contextlib.contextmanager
def checked(path: Path, read: Callable[[list[str]], Any]) -> Iterator[tuple[str, int, TextIO]]:
    """The first pass: the file's digest (the derived keys depend on it) and its number of
    data rows, after checking every line with `read` (InvalidInput naming the malformed
    lines, before anything is sent); then the file opened for the second pass.
    Standard input, which cannot be read twice, is copied to a temporary file on the way
    (memory stays constant however long it is)."""
    if str(path) == "-":
        with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as copy:
            digest, rows = _first_pass(sys.stdin, "stdin", path, read, copy)
            copy.seek(0)
            yield digest, rows, copy
        return
    with _opened(path) as fh:
        digest, rows = _first_pass(fh, path.name, path, read)
    with _opened(path) as fh:
        yield digest, rows, fh


def _first_pass(stream: TextIO, name: str, path: Path, read: Callable[[list[str]], Any],
                copy: TextIO | None = None) -> tuple[str, int]:
    hasher = hashlib.sha256((name + "\0").encode())

    def lines() -> Iterator[str]:
        for text in stream:
            hasher.update(text.encode())
            if copy is not None:
                copy.write(text)
            yield text

    rows = 0
    malformed: list[tuple[int, str]] = []
    for line, fields in fields_of(lines(), path):
        rows += 1
        try:
            read(fields)
        except InvalidInput as exc:
            malformed.append((line, str(exc)))
    if malformed:
        (line, error), others = malformed[0], [n for n, _ in malformed[1:]]
        more = ""
        if others:
            named = ", ".join(map(str, others[:MALFORMED_NAMED]))
            more = (f" (and {len(others)} more malformed line(s): {named}"
                    f"{', …' if len(others) > MALFORMED_NAMED else ''})")
        raise InvalidInput(f"{path} line {line}: {error}{more}; nothing was applied: fix the "
                           "file and run it again")
    return hasher.hexdigest()[:16], rows


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[TextIO]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield fh
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc


def fields_of(lines: Iterable[str], path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of every data row (blank lines and a header skipped). Quoting is
    strict: an unbalanced quote is an error, not a field that swallows the lines after it."""
    reader = csv.reader(lines, strict=True)
    line = 1  # where the next record starts
    try:
        for fields in reader:
            if "".join(fields).strip() and not (
                    line == 1 and fields[0].strip().lower() == "card_id"):  # blank, header
                yield line, fields
            line = reader.line_num + 1
    except csv.Error as exc:
        problem = "a quote is never closed" if "end of data" in str(exc) else str(exc)
        raise InvalidInput(f"{path} line {line}: not valid CSV ({problem}); nothing was "
                           "applied: fix the file and run it again") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path}: not UTF-8 ({exc.reason}); nothing was applied") from exc


def _read(fields: list[str]) -> tuple[int, int, str | None]:
    """A data row's card_id, amount and key (None: derive one), or InvalidInput when the line
    is malformed (which refuses the whole file). Plain digits take the fast path."""
    if len(fields) not in (2, 3):
        raise InvalidInput(f"expected 2 or 3 columns (card_id,amount[,key]), got {len(fields)}")
    card_text, amount_text = fields[0].strip(), fields[1].strip()
    key = fields[2].strip() if len(fields) == 3 else ""
    if not (_digits(card_text) and _digits(amount_text)) or "\n" in key or "\r" in key:
        if any("\n" in field or "\r" in field for field in fields):
            raise InvalidInput("a quoted field spans several lines")
        integer(card_text, "card_id")
        integer(amount_text, "amount")
    if key and THOUSANDS.fullmatch(key):
        raise InvalidInput(f"amount {amount_text},{key} looks like a number with a thousands "
                           "separator: write amounts without separators (e.g. 1000), or quote "
                           "the key")
    return int(card_text), int(amount_text), cards.idempotency_key(key) if key else None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse(line: int, fields: list[str], digest: str, point_id: int | None) -> Row:
    """A checked line as a row to send; its values checked as a single recharge checks
    them (a failure there rejects this row only)."""
    card_id, amount, key = _read(fields)
    cards.check_recharge(card_id, amount, point_id)
    return Row(line, card_id, amount, key or f"csv-{digest}-{line}")


def integer(text: str, what: str) -> int:
    number = cards.whole_number(text)
    if number is None:
        raise InvalidInput(f"{what} must be an integer, got {text.strip()!r}")
    return number


def recharge_file(connect: Callable[[], psycopg.Connection[Any]], cache: Cache, path: Path,
                  point_id: int | None, rejects_path: Path | None, output: Output,
                  dry_run: bool = False) -> BulkSummary:
    """Apply every row; rows without a key get one derived from the file name, content and
    line, so rerunning the same file replays instead of charging twice. With `dry_run`
    every chunk runs with all its rules and is rolled back: the summary and rejects say
    what would happen, nothing moves. `connect` opens the WORKERS connections the chunks
    are applied on."""
    summary = BulkSummary(dry_run=dry_run)
    rejects = Rejects(rejects_path, output)
    try:
        with checked(path, _read) as (digest, total, fh), \
                output.progress("Recharging", total=total, unit="rows") as bar, \
                ThreadPoolExecutor(WORKERS, "recharge-bulk") as workers, \
                ThreadPoolExecutor(1, "recharge-bulk-account") as accountant, \
                interrupts.deferred():
            applying = _Applying([connect() for _ in range(WORKERS)], cache, point_id, summary,
                                 rejects, bar, dry_run, accountant)
            sent: deque[tuple[Chunk, Future[list[tuple[Any, ...]]]]] = deque()
            try:
                for number, chunk in enumerate(_chunks(fields_of(fh, path), digest, point_id)):
                    # chunk `number` goes on connection number % WORKERS, free once the
                    # chunks before it are finished; chunks that share a card run in turn
                    while sent and (len(sent) == WORKERS
                                    or any(not chunk.card_set.isdisjoint(other.card_set)
                                           for other, _ in sent)):
                        if not applying.finish(*sent.popleft()):
                            return summary
                    if interrupts.pending():  # a signal: stop between chunks
                        summary.interrupted = True
                        return summary
                    sent.append((chunk, workers.submit(applying.send, number % WORKERS, chunk)))
            finally:
                applying.finish_all(sent)
    finally:
        rejects.close()
    return summary


def _chunks(rows: Iterator[tuple[int, list[str]]], digest: str,
            point_id: int | None) -> Iterator[Chunk]:
    """The file's rows parsed, CHUNK_ROWS valid rows (and the invalid ones among them) at a
    time."""
    chunk = Chunk()
    for line, fields in rows:
        try:
            chunk.add(_parse(line, fields, digest, point_id))
        except RechargeError as exc:
            chunk.unparsed.append((line, fields[0] if fields else "",
                                   fields[1] if len(fields) > 1 else "",
                                   fields[2].strip() if len(fields) > 2 else "", int(exc.status),
                                   str(exc)))
        if len(chunk.lines) >= CHUNK_ROWS:
            yield chunk
            chunk = Chunk()
    if chunk.lines or chunk.unparsed:
        yield chunk


@dataclass
class _Applying:
    """Sends chunks (from the worker thread) and accounts for them (in the main thread)."""

    connections: list[psycopg.Connection[Any]]
    cache: Cache
    point_id: int | None
    summary: BulkSummary
    rejects: Rejects
    bar: Progress
    dry_run: bool
    accountant: ThreadPoolExecutor  # one thread: committed chunks accounted in order
    accounting: deque[Future[None]] = field(default_factory=deque)

    def send(self, connection: int, chunk: Chunk) -> list[tuple[Any, ...]]:
        """One chunk in one transaction: one outcome per row."""
        if not chunk.lines:
            return []
        conn = self.connections[connection]
        with conn.transaction(force_rollback=self.dry_run), \
                conn.cursor(row_factory=tuple_row, binary=True) as cur:
            return cur.execute("SELECT * FROM public.recharge_bulk(%s, %b, %b, %b, %b)",
                               (self.point_id, chunk.lines, chunk.cards, chunk.amounts,
                                chunk.keys)).fetchall()

    def finish_all(self, sent: deque[tuple[Chunk, Future[list[tuple[Any, ...]]]]]) -> None:
        """Account for (and write through the cache) every chunk sent, even after one of
        them failed: the others may have committed. The first failure is raised after."""
        failure: BaseException | None = None
        while sent:
            try:
                self.finish(*sent.popleft())
            except BaseException as exc:  # re-raised below
                failure = failure or exc
        while self.accounting:
            try:
                self.accounting.popleft().result()
            except BaseException as exc:  # re-raised below
                failure = failure or exc
        if failure is not None:
            raise failure

    def finish(self, chunk: Chunk, sent: Future[list[tuple[Any, ...]]]) -> bool:
        """Wait for a chunk's outcome and hand it to the accounting thread (which reports
        its rejects and writes its cards through the cache, in chunk order, while the next
        chunks are applied); False when the run must stop (the connection was lost: this
        chunk was not applied, nor any after it but the one already sent)."""
        try:
            results = sent.result()
        except psycopg.Error as exc:
            error = from_database(exc)
            if error is None:
                raise
            if error.status in (ExitStatus.UNAVAILABLE, ExitStatus.TEMPORARY):
                # rerunning the file completes it exactly once
                self.summary.stopped = self.summary.stopped or error
                return False
            raise error from exc
        self.accounting.append(self.accountant.submit(self.account, chunk, results))
        while self.accounting and self.accounting[0].done():
            self.accounting.popleft().result()  # an accounting failure stops the run
        return True

    def account(self, chunk: Chunk, results: list[tuple[Any, ...]]) -> None:
        """Report a committed chunk's rejects and write its cards through the cache."""
        summary = self.summary
        summary.rows += len(chunk.lines) + len(chunk.unparsed)
        failed = list(chunk.unparsed)
        written = []
        for line, card_id, amount, _, balance, version, at, replayed, code, error in results:
            if code is not None:
                key = chunk.keys[bisect.bisect_left(chunk.lines, line)]  # lines ascend
                failed.append((line, card_id, amount, key, int(sqlstate_status(code)), error))
            elif replayed:
                summary.replayed += 1
            else:
                summary.ok += 1
                summary.total_amount += amount
                written.append((card_id, version, cards.balance_payload(
                    {"card_id": card_id, "balance": balance, "version": version,
                     "recharged_at": at})))
        for reject in sorted(failed):
            self.rejects.add(summary, *reject)
        if not self.dry_run:
            self.cache.cards_written(written)
        self.bar.advance(len(chunk.lines) + len(chunk.unparsed))
