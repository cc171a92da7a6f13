"""Values as JSON: the one conversion that the cache, the renderer and reports share."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson

Row = dict[str, Any]  # a result row or object, as every layer passes them


_NATIVE = frozenset({str, int, bool, float, type(None)})  # JSON as they are


def to_jsonable(value: Any) -> Any:
    if type(value) in _NATIVE:  # the common case first: one lookup
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def _decimal(value: Any) -> Any:
    if isinstance(value, Decimal):
        return to_jsonable(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value`, the same as of to_jsonable(value) (orjson writes dates
    as ISO strings itself, and integral decimals become integers)."""
    return orjson.dumps(value, default=_decimal, option=orjson.OPT_NON_STR_KEYS)
