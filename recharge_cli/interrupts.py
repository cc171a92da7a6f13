"""SIGINT and SIGTERM: raise KeyboardInterrupt, except while a write is under way.

A write that was sent to PostgreSQL is let finish (its outcome would otherwise be
unknown); the signal is remembered and the command ends with exit 130 right after.

Nor is the interrupt raised inside Python's own machinery (an import, a module lock's
callback, generated code run by `exec`): raised there it can be swallowed, or make the
interpreter end by SIGINT after the command has already chosen its exit status 130. It
is delivered again a moment later, once that code has returned.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

RETRY_SECONDS = 0.02

_depth = 0
_pending: int | None = None
_postponed: int | None = None


def _inside_machinery(frame: FrameType | None) -> bool:
    """Whether the interrupted code runs within code that has no source file (frozen
    importlib, `exec` of a string) or within a finaliser: a KeyboardInterrupt must not
    start there."""
    while frame is not None:
        name = frame.f_code.co_filename
        if ((name.startswith("<") and name != "<frozen runpy>")  # `python -m` runs in runpy
                or frame.f_code.co_name == "__del__"):
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    global _pending, _postponed
    if _depth:
        _pending = signum
        return
    if _inside_machinery(frame):
        _postponed = signum
        signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
        return
    reset_postponed()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _retry(_signum: int, frame: FrameType | None) -> None:
    if _postponed is not None:
        _handler(_postponed, frame)


def install() -> None:
    """Route SIGINT and SIGTERM through the handler (main thread only)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)
    signal.signal(signal.SIGALRM, _retry)


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
    """Whether an interrupt arrived during a deferred block (bulk runs stop between chunks)
    or is still to be delivered again."""
    return _pending is not None or _postponed is not None


def reset_postponed() -> None:
    """Forget an interrupt waiting to be delivered again, and its timer."""
    global _postponed
    if _postponed is not None:
        _postponed = None
        signal.setitimer(signal.ITIMER_REAL, 0)


def reset() -> None:
    global _pending
    _pending = None
    reset_postponed()
