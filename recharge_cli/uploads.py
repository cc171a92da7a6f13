"""Validator uploads (`trips record --from-csv`): a day's taps from a file, charged as the
same taps one by one would be, card by card in boarding-time order.

The file is read twice, streaming: once to check every line (bulk.checked: a malformed
line refuses the whole file before anything moves), then to stage its rows in PostgreSQL
(tap_upload_stage, STAGE_ROWS per call). The staged taps are applied in chunks of whole
cards (tap_upload_chunks), each chunk in one transaction (tap_upload_apply: in rounds, each
card's n-th tap in boarding-time order, set-based when it is plainly charged to its own
card, else through tap_core; every rule and key of a single tap), on bulk.WORKERS
connections side by side (chunks share no card). Keys are derived from the
file and line when a row has none, so a rerun replays what was applied and applies the
rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from recharge_cli import cards, interrupts, parsers
from recharge_cli.bulk import WORKERS, BulkSummary, Rejects, checked, fields_of, integer
from recharge_cli.cache import Cache
from recharge_cli.errors import ExitStatus, InvalidInput, RechargeError, from_database, sqlstate_status
from recharge_cli.inputs import MAX_INTEGER, check_id, idempotency_key
from recharge_cli.render import Output

COLUMNS = "card_id,station_id,route_id,boarding_time[,key]"
REJECT_COLUMNS = ["line", "card_id", "station_id", "route_id", "boarding_time", "key",
                  "exit_code", "error"]
STAGE_ROWS = 10_000
CHUNK_TAPS = 5_000


@dataclass
class Tap:
    line: int
    card_id: int
    station_id: int
    route_id: int | None
    boarding_time: str
    key: str | None


def read(fields: list[str], line: int = 0) -> Tap:
    """A data row as a tap (key None: derive one), or InvalidInput when the line is
    malformed, which refuses the whole file."""
    if len(fields) not in (4, 5):
        raise InvalidInput(f"expected 4 or 5 columns ({COLUMNS}), got {len(fields)}")
    if any("\n" in f or "\r" in f for f in fields):
        raise InvalidInput("a quoted field spans several lines")
    card_text, station_text, route_text, at_text = (f.strip() for f in fields[:4])
    key = fields[4].strip() if len(fields) == 5 else ""
    return Tap(line, integer(card_text, "card_id"), integer(station_text, "station_id"),
               integer(route_text, "route_id") if route_text else None,
               parsers.time(at_text, "boarding_time") or "",
               idempotency_key(key) if key else None)


def _checked_tap(line: int, fields: list[str], digest: str) -> Tap:
    """A checked line as a tap to stage; its values checked as a single tap checks them (a
    failure rejects this row only)."""
    tap = read(fields, line)
    check_id(tap.card_id, "card id")
    check_id(tap.station_id, "station id", MAX_INTEGER)
    if tap.route_id is not None:
        check_id(tap.route_id, "route id", MAX_INTEGER)
    tap.key = tap.key or f"csv-{digest}-{line}"
    return tap


@dataclass
class _Staged:
    columns: tuple[list[Any], ...] = field(default_factory=lambda: ([], [], [], [], [], []))

    def add(self, tap: Tap) -> None:
        for column, value in zip(self.columns, (tap.line, tap.card_id, tap.station_id,
                                                tap.route_id, tap.boarding_time, tap.key),
                                 strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(self.columns[0])


def record_file(connect: Callable[[], psycopg.Connection[Any]], cache: Cache, path: Path,
                rejects_path: Path | None, output: Output,
                dry_run: bool = False) -> BulkSummary:
    """Charge every tap of the file; the summary counts taps charged, replayed and
    rejected (with `dry_run` every chunk runs with all its rules and is rolled back)."""
    summary = BulkSummary(dry_run=dry_run, amount_label="fares_charged")
    rejects = Rejects(rejects_path, output, REJECT_COLUMNS)
    connections: list[psycopg.Connection[Any]] = []
    try:
        with checked(path, read) as (digest, total, fh), interrupts.deferred():
            connections.extend(connect() for _ in range(WORKERS))  # once the file is sound
            upload = digest
            conn = connections[0]
            conn.execute("SELECT public.tap_upload_begin(%s)", (upload,))
            with output.progress("Staging taps", total=total, unit="rows") as bar:
                for batch in _batches(fields_of(fh, path), digest, rejects, summary):
                    with conn.cursor(binary=True) as cur:
                        cur.execute("SELECT public.tap_upload_stage(%s, %b, %b, %b, %b, %s, %b)",
                                    (upload, *batch.columns))
                    bar.advance(len(batch))
            chunks = conn.execute("SELECT * FROM public.tap_upload_chunks(%s, %s)",
                                  (upload, CHUNK_TAPS)).fetchall()
            try:
                _apply(connections, cache, upload, chunks, summary, rejects, output, dry_run)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("SELECT public.tap_upload_end(%s)", (upload,))
    except psycopg.Error as exc:
        error = from_database(exc)
        if error is None:
            raise
        if error.status in (ExitStatus.UNAVAILABLE, ExitStatus.TEMPORARY):
            summary.stopped = error  # rerunning the file completes it exactly once
        else:
            raise error from exc
    finally:
        rejects.close()
        for conn in connections:
            with contextlib.suppress(psycopg.Error):
                conn.close()
    return summary


def _batches(rows: Iterator[tuple[int, list[str]]], digest: str, rejects: Rejects,
             summary: BulkSummary) -> Iterator[_Staged]:
    """The file's rows as staged columns, STAGE_ROWS at a time; rows whose values a single
    tap would refuse before sending are rejected here."""
    batch = _Staged()
    for line, fields in rows:
        try:
            batch.add(_checked_tap(line, fields, digest))
        except RechargeError as exc:
            summary.rows += 1
            rejects.add(summary, line, *_padded(fields), int(exc.status), str(exc))
        if len(batch) >= STAGE_ROWS:
            yield batch
            batch = _Staged()
    if len(batch):
        yield batch


def _padded(fields: list[str]) -> list[str]:
    return [f.strip() for f in (fields + [""] * 5)[:5]]


def _apply(connections: list[psycopg.Connection[Any]], cache: Cache, upload: str,
           chunks: list[dict[str, Any]], summary: BulkSummary, rejects: Rejects, output: Output,
           dry_run: bool) -> None:
    """Each chunk in its own transaction, WORKERS at a time, accounted in chunk order."""

    def send(worker: int, chunk: dict[str, Any]) -> list[tuple[Any, ...]]:
        conn = connections[worker]
        with conn.transaction(force_rollback=dry_run), \
                conn.cursor(row_factory=tuple_row, binary=True) as cur:
            return cur.execute("SELECT * FROM public.tap_upload_apply(%s, %s, %s)",
                               (upload, chunk["first_card"], chunk["last_card"])).fetchall()

    taps = sum(int(c["taps"]) for c in chunks)
    with output.progress("Charging taps", total=taps, unit="taps") as bar, \
            ThreadPoolExecutor(WORKERS, "recharge-taps") as pool:
        sent: list[Future[list[tuple[Any, ...]]]] = []
        for number, chunk in enumerate(chunks):
            if len(sent) == WORKERS:
                _account(sent.pop(0).result(), cache, summary, rejects, dry_run)
            if interrupts.pending():  # a signal: stop between chunks
                summary.interrupted = True
                break
            sent.append(pool.submit(send, number % WORKERS, chunk))
            bar.advance(int(chunk["taps"]))
        failure: BaseException | None = None
        for future in sent:  # the chunks already sent may have committed: account for them
            try:
                _account(future.result(), cache, summary, rejects, dry_run)
            except BaseException as exc:  # re-raised below
                failure = failure or exc
        if failure is not None:
            raise failure


def _account(results: list[tuple[Any, ...]], cache: Cache, summary: BulkSummary,
             rejects: Rejects, dry_run: bool) -> None:
    """A committed chunk: its rejects reported (in line order) and its cards written through
    the cache."""
    written: dict[int, tuple[int, int, dict[str, Any]]] = {}
    failed = []
    for (line, card_id, station_id, route_id, at, key, _, fare, _, balance, version, replayed,
         code, error) in results:
        summary.rows += 1
        if code is not None:
            failed.append((line, card_id, station_id, route_id, at, key, code, error))
        elif replayed:
            summary.replayed += 1
        else:
            summary.ok += 1
            summary.total_amount += fare
            if card_id in written and written[card_id][1] > version:
                continue  # the card's newest state goes to the cache
            written[card_id] = (card_id, version, cards.balance_payload(
                {"card_id": card_id, "balance": balance, "version": version,
                 "boarding_time": at}))
    for line, card_id, station_id, route_id, at, key, code, error in sorted(failed):
        rejects.add(summary, line, card_id, station_id, route_id, at.isoformat(), key,
                    int(sqlstate_status(code)), error)
    if not dry_run:
        cache.cards_written(list(written.values()), trips_changed=True)
