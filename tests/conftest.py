"""Test-wide setup.

The reference implementations (diffusers, transformers) are test-only dependencies. transformers
probes for torchvision when first imported; on machines where the installed torchvision does not
match torch (PyPI's CUDA build of torchvision next to a CPU torch, as open_clip_torch pulls in),
that probe raises. Our code never uses torchvision, so the tests hide a broken one: the references
then run without it.
"""

import sys


def _hide_broken_torchvision() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision"] = None


_hide_broken_torchvision()
