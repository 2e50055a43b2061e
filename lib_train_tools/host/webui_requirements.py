"""The packages Train Tools needs inside the WebUI, and which of them are missing or too old.

One table serves ``install.py`` (which installs only what is missing) and the tab (which says what
is missing). Every range is one the WebUI's own pins satisfy (A1111 v1.10 and Forge pin torch,
numpy 1.26.2, Pillow 9.5.0, safetensors 0.4.2, open-clip-torch 2.20.0, gradio 3.41.2 / 4.40.0), so
installing never has a reason to move one of them. Packages the WebUI itself provides are checked
but never installed. Distributions are looked up by bare name with ``importlib.metadata``: no
import of the package, no pip, nothing slower than reading a few ``METADATA`` files.

This module imports nothing but the standard library: ``install.py`` runs it in a fresh
interpreter before the WebUI starts.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

_RELEASE = re.compile(r"(\d+(?:\.\d+)*)")
# A PEP 440 version pip accepts in a constraints file; anything odder is left unpinned.


@dataclass(frozen=True)
class Requirement:
    distribution: str       # the bare distribution name, as importlib.metadata knows it
    minimum: str            # lowest version that works; the WebUI's pins are all above it
    purpose: str            # what breaks without it (shown in the tab and the console)
    installable: bool = True  # False: provided by the WebUI; never installed by Train Tools

    @property
    def pip_requirement(self) -> str:
        return f"{self.distribution}>={self.minimum}"


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("torch", "2.1.2", "training (the WebUI installs it; A1111 v1.10 ships 2.1.2)", installable=False),
    Requirement("numpy", "1.23", "everything (the WebUI installs it)", installable=False),
    Requirement("gradio", "3.41", "the tab (the WebUI installs it)", installable=False),
    Requirement("Pillow", "9.5", "images in datasets and previews"),
    Requirement("safetensors", "0.4", "reading checkpoints and writing LoRA files"),
    Requirement("toml", "0.10", "training configurations"),
    Requirement("open_clip_torch", "2.20", "the CLIP tokenizer"),
    Requirement("lion-pytorch", "0.1.2", "the Lion optimizer"),
)


@dataclass(frozen=True)
class Problem:
    requirement: Requirement
    installed: str | None   # the installed version; None when the distribution is missing

    @property
    def missing(self) -> bool:
        return self.installed is None

    def describe(self) -> str:
        """Which package, which version is there, which is needed, and what to do."""
        req = self.requirement
        if self.missing:
            found = f"{req.distribution} is missing (needed for {req.purpose}; version {req.minimum} or newer)"
            return found if req.installable else f"{found}: the WebUI provides it; repair the WebUI's installation"
        return (f"{req.distribution} {self.installed} is installed, but Train Tools needs {req.minimum} or newer "
                f"(for {req.purpose}); Train Tools never upgrades or replaces the WebUI's packages: "
                f"update the WebUI, or {req.distribution} in the WebUI's venv yourself")


def release_tuple(version: str) -> tuple[int, ...]:
    """The numeric release part of a version (``"2.13.0+cpu"`` -> ``(2, 13, 0)``); ``()`` if none."""
    match = _RELEASE.match(version.strip())
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def is_at_least(installed: str, minimum: str) -> bool:
    have, need = release_tuple(installed), release_tuple(minimum)
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) >= need + (0,) * (width - len(need))


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def find_problems(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> list[Problem]:
    """Every requirement that is missing or below its minimum, in table order."""
    problems = []
    for requirement in requirements:
        version = installed_version(requirement.distribution)
        if version is None or not is_at_least(version, requirement.minimum):
            problems.append(Problem(requirement, version))
    return problems


def to_install(problems: list[Problem]) -> list[Requirement]:
    """The missing requirements Train Tools may install (never one that is present, never torch)."""
    return [p.requirement for p in problems if p.missing and p.requirement.installable]


def manual_command(python: str, requirements: list[Requirement]) -> str:
    """The pip command a person can run by hand for ``requirements``."""
    quoted = " ".join(f'"{r.pip_requirement}"' for r in requirements)
    return f'"{python}" -m pip install {quoted}'
