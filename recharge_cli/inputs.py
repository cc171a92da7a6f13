"""Checks of user input shared by every operation (a bad value is exit 2 before anything
is sent): ids, whole numbers, idempotency keys, files and folders to write."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path

from recharge_cli.errors import InvalidInput

# Sisbén IV groups: A (extreme poverty), B (moderate), C1-C18 (vulnerable), D (neither)
SISBEN_GROUPS = ("A", "B", *(f"C{n}" for n in range(1, 19)), "D")
MAX_BIGINT = 2**63 - 1
MAX_INTEGER = 2**31 - 1
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
WHOLE_NUMBER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts "¹"

Announce = Callable[[str], None]


def whole_number(text: str) -> int | None:
    """`text` (surrounding blanks allowed) as an integer, or None if it is not ASCII digits."""
    text = text.strip()
    return int(text) if WHOLE_NUMBER.fullmatch(text) else None


def check_id(value: int, what: str, maximum: int = MAX_BIGINT) -> int:
    """`value` if it is from 1 to `maximum`; else exit 2 stating the range."""
    if not 0 < value <= maximum:
        raise InvalidInput(f"{what} must be between 1 and {maximum:,}, got {value}")
    return value


def idempotency_key(key: str | None, announce: Announce | None = None) -> str:
    """The user's key, checked, or a fresh UUID handed to `announce` (which prints it before
    the write is sent, so that an unclear outcome can always be retried with it)."""
    if key is None:
        key = str(uuid.uuid4())
        if announce is not None:
            announce(key)
        return key
    if not KEY_PATTERN.match(key):
        raise InvalidInput("invalid idempotency key: use 1-128 letters, digits or ._:-")
    return key


def writable_folder(path: Path, option: str) -> Path:
    """`path` created if needed and writable, checked before any work (else exit 2)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot create the folder ({exc.strerror})") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidInput(f"{option} {path}: the folder is not writable")
    return path


def writable_file(path: Path, option: str) -> Path:
    """`path` can be written (its folder exists and is writable), checked before any work."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir() or not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise InvalidInput(f"{option} {path}: cannot write this file (check the folder exists "
                           "and is writable)")
    return path
