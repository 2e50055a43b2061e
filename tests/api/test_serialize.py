"""JSON-ready copies of library results."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path

from lib_train_tools.api.serialize import jsonable


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Inner:
    path: Path
    pair: tuple = (1, 2.5)


@dataclass
class Outer:
    inner: Inner
    values: dict = field(default_factory=dict)


class WithToDict:
    def to_dict(self):
        return {"run_dir": Path("/r"), "nan": math.nan}


def test_dataclasses_paths_tuples_enums_and_non_finite_floats():
    value = Outer(Inner(Path("/a/b.safetensors")), {1: Colour.RED, "x": {3, 3}, "inf": math.inf})
    assert jsonable(value) == {"inner": {"path": "/a/b.safetensors", "pair": [1, 2.5]},
                               "values": {"1": "red", "x": [3], "inf": None}}


def test_to_dict_objects_and_unknown_objects():
    assert jsonable(WithToDict()) == {"run_dir": "/r", "nan": None}
    assert jsonable(object()).startswith("<object object")
