"""Run by the WebUI at start: install only the packages Train Tools needs that are missing.

Rules (see README): never upgrade or downgrade a package the WebUI already has (torch, gradio,
safetensors, numpy, Pillow...), never use git, and finish in well under a second when nothing is
missing. Each requirement is checked by its bare distribution name; a failure is reported in the
console and the tab still loads and says what is missing.
"""

from __future__ import annotations

import importlib.metadata
import sys

# distribution name -> pip requirement used only when the distribution is absent
REQUIREMENTS = {
    "safetensors": "safetensors>=0.4",
    "toml": "toml>=0.10",
    "Pillow": "pillow>=9.5",
    "open_clip_torch": "open_clip_torch>=2.20",
    "lion-pytorch": "lion-pytorch>=0.1.2",
}


def missing_requirements() -> list[str]:
    missing = []
    for dist, requirement in REQUIREMENTS.items():
        try:
            importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            missing.append(requirement)
    return missing


def main() -> None:
    missing = missing_requirements()
    if not missing:
        return
    try:
        import launch  # the WebUI's own installer helpers; present only inside the WebUI

        for requirement in missing:
            launch.run_pip(f'install "{requirement}"', f"Train Tools requirement: {requirement}")
    except Exception as e:  # never stop the WebUI from starting
        print(f"[Train Tools] could not install {', '.join(missing)}: {e}. "
              f"Install them by hand with: {sys.executable} -m pip install {' '.join(missing)}", file=sys.stderr)


main()
