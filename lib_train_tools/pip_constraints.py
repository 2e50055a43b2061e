"""The pins that keep pip from moving an installed package: ``name==version`` for each one.

Written to a pip constraints file (``pip install -c FILE ...``), they let pip add packages but
never upgrade, downgrade or replace one: ``install.py`` (at the WebUI's start) and the Dataset
tab's "Install onnxruntime" (``datasets/onnxruntime_install.py``) both install this way, so
nothing the WebUI pinned moves. Standard library only: ``install.py`` imports it in a fresh
interpreter before the WebUI starts.
"""

from __future__ import annotations

import importlib.metadata
import re

# A PEP 440 version pip accepts in a constraints file; anything odder is left unpinned.
_PINNABLE = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?(\+[A-Za-z0-9.]+)?")


def installed_pins() -> list[str]:
    """``name==version`` for every installed distribution (the first one found for each name)."""
    pins, seen = [], set()
    for dist in importlib.metadata.distributions():
        try:
            name, version = dist.name, dist.version
        except KeyError:  # a broken install without a Name (newer Pythons raise for it)
            continue
        key = (name or "").lower().replace("_", "-")
        if not name or key in seen or not version or not _PINNABLE.fullmatch(version):
            continue
        seen.add(key)
        pins.append(f"{name}=={version}")
    return sorted(pins, key=str.lower)
