"""The one place that renders results: Rich tables on a terminal, plain tables, JSON, CSV.

Data goes to stdout; messages, warnings and progress go to stderr.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from recharge_cli.errors import InvalidInput
from recharge_cli.jsonable import Row, to_jsonable, utc

# Columns that name things (never grouped with thousands separators): exact names and endings.
IDENTIFIER_NAMES = frozenset({"id", "version", "line", "year", "port", "pid", "seed", "epoch", "key",
                              "replaced_by", "replaces", "transfer_group", "reference"})
IDENTIFIER_ENDINGS = ("_id", "_port", "_year", "_pid", "_version", "_key", "_line")
# An ISO 8601 timestamp as JSON carries it (cached values, jsonb from PostgreSQL).
_ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d(:?\d\d)?)?")


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
    return column in IDENTIFIER_NAMES or column.endswith(IDENTIFIER_ENDINGS)


def _moment(value: Any) -> dt.datetime | None:
    """`value` as a timestamp: a datetime, or a string holding one (as JSON carries them)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _ISO_MOMENT.fullmatch(value):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _human_cell(value: Any, column: str) -> str:
    """A table cell for people: thousands separators on amounts and counts (never on ids,
    ports, years or keys), timestamps in ISO 8601 in UTC to the second (whether they come
    from PostgreSQL or from the cache), floats to a readable precision."""
    if isinstance(value, bool) or value is None:
        return _cell(value)
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if isinstance(value, int):
        return str(value) if _is_identifier(column) else f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"
    moment = _moment(value)
    if moment is not None:
        return utc(moment).isoformat(timespec="seconds")
    if isinstance(value, dict):  # a nested object: one "field: value" line each
        return "\n".join(f"{k}: {_human_cell(v, k)}" for k, v in value.items())
    if _is_rows(value):  # nested rows in a cell: a small plain table
        from tabulate import tabulate

        cols = _columns(value)
        return tabulate([[_human_cell(r.get(c), c) for c in cols] for r in value], headers=cols,
                        tablefmt="simple", disable_numparse=True)
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return ", ".join(_human_cell(v, column) for v in value)
    return _cell(value)


def _is_rows(value: Any) -> bool:
    """A nested list of objects (e.g. `cards show`'s movements): a table of its own."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _is_time(rows: list[Row], column: str) -> bool:
    return any(isinstance(r.get(column), dt.date) or _moment(r.get(column)) for r in rows)


def _is_numeric(rows: list[Row], column: str) -> bool:
    return any(isinstance(r.get(column), int | float | Decimal) and not isinstance(r.get(column), bool)
               for r in rows)


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

    def emit(self, data: Row | Sequence[Row]) -> None:
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
            _write_csv(self.out, rows)
        elif isinstance(data, dict):
            self._record(data)
        else:
            self._table(rows)

    def _record(self, record: Row) -> None:
        """One object: a field/value table whose labels keep their width (the values wrap);
        each list of objects in it (e.g. movements) follows as a table of its own."""
        below = [k for k, v in record.items() if _is_rows(v)]
        cells = [[k, f"{len(v):,} rows, below" if k in below else _human_cell(v, k)]
                 for k, v in record.items()]
        if _isatty(self.out):
            table = _rich_table()
            table.add_column("field", no_wrap=True)
            table.add_column("value", overflow="fold")
            self._print(table, cells)
        else:
            self._plain(["field", "value"], cells)
        for name in below:
            self._table(record[name], name)

    def start_stream(self, endless: bool = True) -> None:
        """Before the rows of a list that is written as it is read. An endless one (`audit
        list --follow`) streams JSONL off a terminal unless told otherwise, and `--format
        json` is refused (exit 2), since its one document would never end. A finite one (`cards
        hotlist`) keeps JSON: one array, written row by row and closed by `end_stream`."""
        if endless and self.format == "json":
            raise InvalidInput("--format json prints one document, which a stream never ends: "
                               "use --format jsonl, csv or table")
        fmt = self.resolved_format
        self._stream = "jsonl" if endless and fmt == "json" else fmt

    def end_stream(self, columns: Sequence[str] | None = None) -> None:
        """After the last rows of a finite stream: closes the JSON array (`[]` when there were
        no rows); a CSV stream without rows still gets its header when `columns` are known."""
        if self._stream == "json":
            self.out.write("]\n" if self._stream_header else "[]\n")
        elif self._stream == "csv" and not self._stream_header and columns:
            csv.writer(self.out, lineterminator="\n").writerow(list(columns))
        self.out.flush()

    def stream(self, rows: Sequence[Row]) -> None:
        """More rows of the stream started by `start_stream`, each flushed as soon as it is
        written (a log shipper sees every row at once). CSV writes its header once; a table
        is printed per batch."""
        assert self._stream is not None, "start_stream first"
        self.rows = (self.rows or 0) + len(rows)
        if self._stream == "table":
            self._table(list(rows))
            self.out.flush()
            return
        cols = _columns(rows)
        writer = csv.writer(self.out, lineterminator="\n")
        if self._stream == "csv" and not self._stream_header:
            writer.writerow(cols)
            self._stream_header = True
        for row in rows:
            if self._stream == "csv":
                writer.writerow([_cell(row.get(c)) for c in cols])
            elif self._stream == "json":  # one array: "[" before the first row, "," between
                self.out.write(("," if self._stream_header else "[") + _json_line(row))
                self._stream_header = True
            else:
                self.out.write(_json_line(row))
            self.out.flush()

    def _table(self, rows: list[Row], title: str | None = None) -> None:
        cols = _columns(rows)
        cells = [[_human_cell(r.get(c), c) for c in cols] for r in rows]
        if not _isatty(self.out):
            self._plain(cols, cells, title)
            return
        table = _rich_table(title)
        for col in cols:  # headers and timestamps are never broken across lines
            table.add_column(col, justify="right" if _is_numeric(rows, col) else "left",
                             overflow="fold", min_width=len(col), no_wrap=_is_time(rows, col))
        self._print(table, cells)

    def _print(self, table: Any, cells: list[list[str]]) -> None:
        """A Rich table on the terminal; when even its narrowest layout is wider than the
        terminal (its right part is cut), one warning says so and how to see everything."""
        from rich.console import Console

        for row in cells:
            table.add_row(*row)
        console = Console(file=self.out, no_color=not self.color)
        needed = table.__rich_measure__(console, console.options).minimum
        if needed > console.width:
            self.warn(f"the table needs {needed} columns and the terminal has {console.width}, so "
                      "its right part is cut; --format csv (or json) shows every column", "cut")
        console.print(table)

    def _plain(self, cols: list[str], cells: list[list[str]], title: str | None = None) -> None:
        from tabulate import tabulate

        if title:
            self.out.write(title + "\n")
        self.out.write(tabulate(cells, headers=cols, tablefmt="simple", disable_numparse=True) + "\n")

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


def _rich_table(title: str | None = None) -> Any:
    from rich.table import Table

    return Table(title=title, show_lines=False, header_style="bold")


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
