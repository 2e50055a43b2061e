"""Test-wide setup.

Tests marked ``cuda`` (registered in pyproject.toml) are skipped where no CUDA GPU is available.

The reference implementations (diffusers, transformers) are test-only dependencies. transformers
probes for torchvision when first imported; on machines where the installed torchvision does not
match torch (PyPI's CUDA build of torchvision next to a CPU torch, as open_clip_torch pulls in),
that probe raises. Our code never uses torchvision, so the tests hide a broken one: the references
then run without it.
"""

import sys

import pytest


def _hide_broken_torchvision() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None


_hide_broken_torchvision()


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``cuda``-marked tests when torch sees no CUDA GPU (CPU CI); ``-m cuda`` selects them."""
    if not any(item.get_closest_marker("cuda") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
