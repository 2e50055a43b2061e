"""Derive independent, reproducible random seeds from (run seed, purpose, epoch, sample).

Every random choice the data pipeline makes (epoch order, caption shuffle, dropout, flip, crop)
draws from its own generator seeded here, so a resumed run replays exactly the same choices and
toggling one augmentation never shifts the random stream of another. No global RNG is touched.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, purpose: str, *parts: int) -> int:
    """Return a 63-bit seed that depends only on the arguments (stable across processes and runs)."""
    text = ":".join([str(int(seed)), purpose, *(str(int(p)) for p in parts)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def derived_rng(seed: int, purpose: str, *parts: int) -> random.Random:
    """A private ``random.Random`` seeded by :func:`derive_seed`."""
    return random.Random(derive_seed(seed, purpose, *parts))
