"""`--metrics-file PATH`: a Prometheus textfile for node_exporter's textfile collector,
written atomically (temporary file + rename) when a command ends."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from recharge_cli.errors import InvalidInput

_LAST_SUCCESS = re.compile(r"^recharge_last_success_timestamp_seconds\{[^}]*\} (\S+)$", re.M)


def check(path: Path) -> Path:
    """Fail before the command runs when the file cannot be written there (exit 2)."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise InvalidInput(f"--metrics-file {path}: cannot write there (the folder must exist "
                           "and be writable, e.g. node_exporter's textfile directory)")
    return path


def write(path: Path, command: str, status: int, seconds: float, rows: int | None) -> None:
    """Duration, rows, exit code and outcome of this run; the last success time is kept
    from the previous file when this run failed."""
    now = time.time()
    last_success: float | None = now if status == 0 else None
    if last_success is None and path.exists():
        found = _LAST_SUCCESS.search(path.read_text(errors="replace"))
        last_success = float(found.group(1)) if found else None
    label = f'command="{command}"'
    lines = [
        "# HELP recharge_duration_seconds Wall time of the last run.",
        "# TYPE recharge_duration_seconds gauge",
        f"recharge_duration_seconds{{{label}}} {seconds:.3f}",
        "# HELP recharge_exit_code Exit status of the last run (0 = success).",
        "# TYPE recharge_exit_code gauge",
        f"recharge_exit_code{{{label}}} {status}",
        "# HELP recharge_success Whether the last run succeeded.",
        "# TYPE recharge_success gauge",
        f"recharge_success{{{label}}} {int(status == 0)}",
        "# HELP recharge_last_run_timestamp_seconds When the last run ended.",
        "# TYPE recharge_last_run_timestamp_seconds gauge",
        f"recharge_last_run_timestamp_seconds{{{label}}} {now:.3f}",
    ]
    if rows is not None:
        lines += ["# HELP recharge_rows Rows the last run printed (or applied, for bulk).",
                  "# TYPE recharge_rows gauge", f"recharge_rows{{{label}}} {rows}"]
    if last_success is not None:
        lines += ["# HELP recharge_last_success_timestamp_seconds When a run last succeeded.",
                  "# TYPE recharge_last_success_timestamp_seconds gauge",
                  f"recharge_last_success_timestamp_seconds{{{label}}} {last_success:.3f}"]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)
