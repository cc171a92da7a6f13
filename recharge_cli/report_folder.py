"""Writing a report folder (bench runs, bench compare, the daily report): one small
function per kind of file, each returning the path it wrote (CSV files: render.write_csv,
the same writer as --format csv)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recharge_cli.jsonable import Row


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def write_markdown(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def save_figure(fig: Any, path: Path) -> Path:
    """A matplotlib figure as PNG, then closed (figures are not kept in memory)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def markdown_table(rows: list[Row], headers: Sequence[str] | str = "keys") -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", intfmt=",")
