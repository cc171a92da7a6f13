"""Values as JSON: the one conversion that the cache, the renderer and reports share."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import orjson

Row = dict[str, Any]  # a result row or object, as every layer passes them


_NATIVE = frozenset({str, int, bool, float, type(None)})  # JSON as they are


def utc(moment: dt.datetime) -> dt.datetime:
    """A timestamp with a time zone in UTC (a naive one as it is): every output writes the
    same instant the same way, whatever session time zone PostgreSQL answered in and
    whichever process filled the cache."""
    return moment.astimezone(dt.UTC) if moment.tzinfo is not None else moment


def to_jsonable(value: Any) -> Any:
    if type(value) in _NATIVE:  # the common case first: one lookup
        return value
    if isinstance(value, dt.datetime):
        return utc(value).isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def _converted(value: Any) -> Any:
    if isinstance(value, Decimal | dt.date | dt.time):
        return to_jsonable(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of `value`, the same as of to_jsonable(value) (timestamps in UTC,
    integral decimals as integers)."""
    return orjson.dumps(value, default=_converted,
                        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)
