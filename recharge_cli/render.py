"""The one place that renders results: Rich tables on a terminal, plain tables, JSON, CSV.

Data goes to stdout; messages, warnings and progress go to stderr.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from recharge_cli.errors import InvalidInput
from recharge_cli.jsonable import Row, to_jsonable


def _cell(value: Any) -> str:
    value = to_jsonable(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _is_identifier(column: str) -> bool:
    return column in ("id", "version", "line", "year") or column.endswith(("_id", "_port"))


def _human_cell(value: Any, column: str) -> str:
    """A table cell for people: thousands separators on amounts and counts (not on ids),
    timestamps to the second without microseconds, floats to a readable precision."""
    if isinstance(value, bool) or value is None:
        return _cell(value)
    if isinstance(value, int) and not _is_identifier(column):
        return f"{value:,}"
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"
    if isinstance(value, dt.datetime):
        offset = value.strftime("%z")
        zone = "" if not offset else offset[:3] if offset[3:] == "00" else offset[:3] + ":" + offset[3:]
        return value.strftime("%Y-%m-%d %H:%M:%S") + zone
    return _cell(value)


def _is_time(rows: list[Row], column: str) -> bool:
    return any(isinstance(r.get(column), dt.date) for r in rows)


@dataclass
class Output:
    """Owns the output streams and their terminal facts, so tests can inject them."""

    format: str | None = None
    quiet: bool = False
    stdout: TextIO | None = None
    stderr: TextIO | None = None
    _warned: set[str] = field(default_factory=set)
    rows: int | None = None  # how many rows (objects) were emitted, for --metrics-file
    _stream: str | None = None  # the format of an endless list once started
    _stream_header: bool = False

    @property
    def out(self) -> TextIO:
        return self.stdout or sys.stdout

    @property
    def err(self) -> TextIO:
        return self.stderr or sys.stderr

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        return "table" if _isatty(self.out) else "json"

    @property
    def color(self) -> bool:
        return not os.environ.get("NO_COLOR") and _isatty(self.out)

    def emit(self, data: Row | Sequence[Row], columns: Sequence[str] | None = None,
             title: str | None = None) -> None:
        """Render one object or a list of rows in the chosen format."""
        fmt = self.resolved_format
        self.rows = (self.rows or 0) + (1 if isinstance(data, dict) else len(data))
        if fmt == "json":
            json.dump(to_jsonable(data), self.out, ensure_ascii=False)
            self.out.write("\n")
            return
        if fmt == "jsonl":  # one object per line (a list streams row by row)
            for row in [data] if isinstance(data, dict) else data:
                self.out.write(_json_line(row))
            return
        rows = [data] if isinstance(data, dict) else list(data)
        if fmt == "csv":
            self._csv(rows, columns)
        elif isinstance(data, dict):
            self._table([{"field": k, "value": v} for k, v in data.items()], ["field", "value"],
                        title)
        else:
            self._table(rows, columns, title)

    def start_stream(self) -> None:
        """Before the rows of an endless list (`audit list --follow`). Off a terminal it
        streams JSONL unless told otherwise; `--format json` is refused (exit 2), since its
        one document would never end."""
        if self.format == "json":
            raise InvalidInput("--format json prints one document, which a stream never ends: "
                               "use --format jsonl, csv or table")
        self._stream = "jsonl" if self.resolved_format == "json" else self.resolved_format

    def stream(self, rows: Sequence[Row], columns: Sequence[str] | None = None) -> None:
        """More rows of the stream started by `start_stream`, each flushed as soon as it is
        written (a log shipper sees every row at once). CSV writes its header once; a table
        is printed per batch."""
        assert self._stream is not None, "start_stream first"
        self.rows = (self.rows or 0) + len(rows)
        if self._stream == "table":
            self._table(list(rows), columns, None)
            self.out.flush()
            return
        cols = list(columns or _columns(rows))
        writer = csv.writer(self.out, lineterminator="\n")
        if self._stream == "csv" and not self._stream_header:
            writer.writerow(cols)
            self._stream_header = True
        for row in rows:
            if self._stream == "csv":
                writer.writerow([_cell(row.get(c)) for c in cols])
            else:
                self.out.write(_json_line(row))
            self.out.flush()

    def _csv(self, rows: list[Row], columns: Sequence[str] | None) -> None:
        _write_csv(self.out, rows, columns)

    def _table(self, rows: list[Row], columns: Sequence[str] | None, title: str | None) -> None:
        cols = list(columns or _columns(rows))
        if _isatty(self.out):
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, show_lines=False, header_style="bold")
            for col in cols:  # headers and timestamps are never broken across lines
                numeric = any(isinstance(r.get(col), int | float | Decimal) and not isinstance(
                    r.get(col), bool) for r in rows)
                table.add_column(col, justify="right" if numeric else "left", overflow="fold",
                                 min_width=len(col), no_wrap=_is_time(rows, col))
            for row in rows:
                table.add_row(*(_human_cell(row.get(c), c) for c in cols))
            Console(file=self.out, no_color=not self.color).print(table)
            return
        from tabulate import tabulate

        if title:
            self.out.write(title + "\n")
        self.out.write(tabulate([[_human_cell(r.get(c), c) for c in cols] for r in rows], headers=cols,
                                tablefmt="simple", disable_numparse=True) + "\n")

    def _log(self, text: str) -> None:
        """One stderr line; off a terminal (cron, CI, logs) it starts with a UTC timestamp."""
        if not _isatty(self.err):
            text = f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {text}"
        self.err.write(text + "\n")
        self.err.flush()

    def message(self, text: str, always: bool = False) -> None:
        """An informational line on stderr (suppressed by --quiet unless `always`)."""
        if always or not self.quiet:
            self._log(text)

    def warn(self, text: str, once_key: str | None = None) -> None:
        """A warning on stderr, at most once per key."""
        key = once_key or text
        if key in self._warned:
            return
        self._warned.add(key)
        if not self.quiet:
            self._log(f"warning: {text}")

    def error(self, text: str) -> None:
        self._log(f"error: {text}")

    @contextmanager
    def progress(self, description: str, total: float | None,
                 unit: str | None = None) -> Iterator[Progress]:
        """A progress bar on stderr when it is a terminal; silent otherwise. With `unit` it
        shows the rate too (e.g. 12,345 rows/s)."""
        if self.quiet or not _isatty(self.err):
            yield Progress(None, None)
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        rate = [TextColumn(f"{{task.fields[rate]}} {unit}/s")] if unit else []
        bar = RichProgress("[progress.description]{task.description}", BarColumn(),
                           MofNCompleteColumn(), *rate, TimeElapsedColumn(),
                           console=Console(file=self.err, no_color=bool(os.environ.get("NO_COLOR"))),
                           transient=True)
        with bar:
            yield Progress(bar, bar.add_task(description, total=total, rate="-"))


@dataclass
class Progress:
    bar: Any
    task: Any

    def advance(self, amount: float = 1) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, amount)
            task = next(t for t in self.bar.tasks if t.id == self.task)
            if task.elapsed:
                self.bar.update(self.task, rate=f"{task.completed / task.elapsed:,.0f}")


def _json_line(row: Row) -> str:
    return json.dumps(to_jsonable(row), ensure_ascii=False) + "\n"


def _write_csv(stream: TextIO, rows: list[Row], columns: Sequence[str] | None = None) -> None:
    cols = list(columns or _columns(rows))
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in cols])


def write_csv(path: Path, rows: list[Row], columns: Sequence[str] | None = None) -> Path:
    """Rows to a CSV file (header = `columns`, else every key in first-seen order), as
    `--format csv` prints; with `columns` the header is there even without rows."""
    with path.open("w", newline="") as fh:
        _write_csv(fh, rows, columns)
    return path


def _columns(rows: Iterable[Row]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    return cols


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
