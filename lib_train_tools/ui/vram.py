"""The VRAM estimate shown under the Train settings, when the trainer offers one.

``train/memory_estimate.py`` is written on another branch; until it exists the estimate is
simply not shown (an empty string), so nothing here guesses numbers of its own.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping


def vram_text(settings: Mapping[str, Any]) -> str:
    """One line such as 'Estimated VRAM: about 7.5 GiB', or "" when no estimator is installed."""
    try:
        module = importlib.import_module("lib_train_tools.train.memory_estimate")
    except ImportError:
        return ""
    describe = getattr(module, "describe_estimate", None)
    return describe(dict(settings)) if callable(describe) else ""
