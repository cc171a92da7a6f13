"""SIGINT and SIGTERM: raise KeyboardInterrupt, except while a write is under way.

A write that was sent to PostgreSQL is let finish (its outcome would otherwise be
unknown); the signal is remembered and the command ends with exit 130 right after.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_depth = 0
_pending: int | None = None


def _handler(signum: int, _frame: FrameType | None) -> None:
    global _pending
    if _depth:
        _pending = signum
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (main thread only)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block has finished."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def pending() -> bool:
    """Whether an interrupt arrived during a deferred block (bulk runs stop between chunks)."""
    return _pending is not None


def reset() -> None:
    global _pending
    _pending = None
