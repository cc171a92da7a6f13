"""The typed result model's one JSON definition: dataclasses to JSON-able values and back,
with cattrs (unstructure / structure from the type hints: nested dataclasses, lists, dicts,
optional fields), so what `results.json` holds is defined by the dataclasses alone, for the
exporters and `bench compare` alike."""

from __future__ import annotations

from typing import Any, TypeVar

import cattrs

T = TypeVar("T")
_converter = cattrs.Converter()


def to_json(value: Any) -> Any:
    """A dataclass (or a list/dict of them) as plain JSON-able values."""
    return _converter.unstructure(value)


def from_json(cls: type[T], data: Any) -> T:
    """`cls` (a dataclass) rebuilt from what `to_json` made of one; a value of the wrong
    shape raises ValueError."""
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, KeyError, TypeError) as exc:
        raise ValueError(f"not a {cls.__name__}: {exc}") from exc
