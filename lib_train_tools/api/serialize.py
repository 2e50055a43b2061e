"""Turning library results (dataclasses, paths, tuples) into JSON-ready values."""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import PurePath
from typing import Any


def jsonable(value: Any) -> Any:
    """A copy of ``value`` made of dicts, lists, strings, numbers, booleans and None.

    Dataclasses become dicts of their fields, paths strings, tuples and sets lists, enums their
    value; a float that JSON cannot carry (NaN, infinity) becomes None; an object with
    ``to_dict()`` is asked for it.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    return str(value)
