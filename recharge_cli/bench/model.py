"""The typed result model's one JSON definition: dataclasses to JSON-able values and back.

`to_json` is `dataclasses.asdict` with tuples as lists; `from_json` rebuilds a dataclass
from its type hints (nested dataclasses, lists, dicts and optional fields), so what
`results.json` holds is defined by the dataclasses alone, for the exporters and
`bench compare` alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """A dataclass (or a list/dict of them) as plain JSON-able values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type[T], data: Any) -> T:
    """`cls` (a dataclass) rebuilt from what `to_json` made of one."""
    return typing.cast(T, _build(cls, data))


def _build(kind: Any, data: Any) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        return _build(next(a for a in args if a is not type(None)), data)
    if origin is list:
        return [_build(args[0], v) for v in data]
    if origin is tuple:
        return tuple(_build(args[0], v) for v in data)
    if origin is dict:
        return {_build(args[0], k): _build(args[1], v) for k, v in data.items()}
    if dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        return kind(**{f.name: _build(hints[f.name], data[f.name])
                       for f in dataclasses.fields(kind) if f.init and f.name in data})
    if kind is float and isinstance(data, int):
        return float(data)
    if kind is int and isinstance(data, str):  # a JSON object's key
        return int(data)
    return data
