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


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value` (dates as ISO strings, integral decimals as integers)."""
    return orjson.dumps(to_jsonable(value))
