"""Run by the WebUI at every start: install only the packages Train Tools needs that are missing.

Rules: a package that is present is never touched (no upgrade, no downgrade: torch, gradio,
transformers, safetensors, numpy, Pillow... stay exactly as the WebUI pinned them), whatever pip
would like; presence is checked by bare distribution name (importlib.metadata), so when nothing is
missing this takes a few milliseconds and starts no pip. When something is missing, pip runs with
a constraints file that pins every installed distribution to its installed version, so pip can
only add packages. No git. A failure prints one clear message (the WebUI shows what install.py
prints) and never stops the WebUI from starting; the tab then says what is missing.
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lib_train_tools.host.webui_requirements import find_problems, manual_command, to_install  # noqa: E402
from lib_train_tools.pip_constraints import installed_pins  # noqa: E402


def pip_install(requirements, constraints_file: str) -> None:
    """Install through the WebUI's own ``launch.run_pip`` (its index URL, its console messages)."""
    args = " ".join(f'"{r.pip_requirement}"' for r in requirements)
    command = f'install -c "{constraints_file}" {args}'
    names = ", ".join(r.distribution for r in requirements)
    try:
        import launch
    except ImportError:  # run by hand, outside the WebUI
        import subprocess

        subprocess.run(f'"{sys.executable}" -m pip {command}', shell=True, check=True)
        return
    launch.run_pip(command, f"Train Tools requirements: {names}")


def main() -> int:
    problems = find_problems()
    for problem in problems:
        if not problem.missing or not problem.requirement.installable:
            print(f"[Train Tools] {problem.describe()}")
    wanted = to_install(problems)
    if not wanted:
        return 0
    handle, constraints_file = tempfile.mkstemp(prefix="train-tools-constraints-", suffix=".txt")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("\n".join(installed_pins()) + "\n")
        pip_install(wanted, constraints_file)
    except Exception as exc:  # never stop the WebUI from starting
        specs = ", ".join(r.pip_requirement for r in wanted)
        print(f"[Train Tools] could not install {specs} without changing a package the WebUI pinned: "
              f"{str(exc).strip()[-1500:]}\n"
              f"[Train Tools] the tab will say what is missing; to install by hand (nothing else is changed): "
              f"{manual_command(sys.executable, wanted)}")
    finally:
        os.unlink(constraints_file)
    for problem in find_problems():  # what is still missing after the attempt, with the version needed
        if problem.requirement in wanted:
            print(f"[Train Tools] {problem.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
