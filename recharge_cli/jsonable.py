"""Values as JSON: the one conversion that the cache, the renderer and reports share."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

Row = dict[str, Any]  # a result row or object, as every layer passes them


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON of `value` (dates as ISO strings, integral decimals as integers)."""
    return json.dumps(to_jsonable(value), separators=(",", ":"), ensure_ascii=False)
