"""install.py and the requirement table: what is reported, what is installed, and that torch never is."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lib_train_tools.host import webui_requirements as reqs
from lib_train_tools.host.webui_requirements import REQUIREMENTS, Problem, find_problems, to_install

ROOT = Path(__file__).resolve().parents[2]


def by_name(name: str) -> reqs.Requirement:
    return next(r for r in REQUIREMENTS if r.distribution == name)


@pytest.fixture
def installed(monkeypatch):
    """Pretend the WebUI's venv holds exactly these distributions."""
    versions: dict[str, str] = {}
    monkeypatch.setattr(reqs, "installed_version", lambda name: versions.get(name))
    return versions


@pytest.fixture
def install_script(monkeypatch):
    spec = importlib.util.spec_from_file_location("train_tools_install", ROOT / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "find_problems", lambda: find_problems())  # reads the patched versions
    return module


A1111 = {"torch": "2.1.2+cu121", "numpy": "1.26.2", "gradio": "3.41.2", "Pillow": "9.5.0", "safetensors": "0.4.2",
         "open_clip_torch": "2.20.0"}


def test_the_webuis_own_pins_satisfy_every_range(installed):
    installed.update(A1111, toml="0.10.2", **{"lion-pytorch": "0.2.5"})
    assert find_problems() == []
    installed.update(torch="2.3.1+cu121", gradio="4.40.0")  # Forge
    assert find_problems() == []


def test_an_old_torch_is_reported_never_installed(installed):
    installed.update(A1111, torch="2.0.1+cu118", toml="0.10.2", **{"lion-pytorch": "0.2.5"})
    [problem] = find_problems()
    text = problem.describe()
    assert "torch 2.0.1+cu118 is installed, but Train Tools needs 2.1.2 or newer" in text
    assert "never upgrades or replaces" in text
    assert to_install([problem]) == []


def test_a_missing_webui_package_is_not_installed(installed):
    installed.update(A1111)
    del installed["torch"]
    problems = find_problems()
    assert [p.requirement.distribution for p in problems] == ["torch", "toml", "lion-pytorch"]
    assert "torch is missing" in problems[0].describe() and "repair the WebUI" in problems[0].describe()
    assert [r.distribution for r in to_install(problems)] == ["toml", "lion-pytorch"]


def test_install_adds_only_what_is_missing_under_the_installed_pins(installed, install_script, monkeypatch, capsys):
    installed.update(A1111, toml="0.10.2")
    calls = []

    def fake_pip(wanted, constraints_file):
        calls.append(([r.pip_requirement for r in wanted], Path(constraints_file).read_text(encoding="utf-8")))
        installed["lion-pytorch"] = "0.2.5"

    monkeypatch.setattr(install_script, "pip_install", fake_pip)
    monkeypatch.setattr(install_script, "installed_pins", lambda: ["numpy==1.26.2", "torch==2.1.2+cu121"])
    assert install_script.main() == 0
    [(wanted, constraints)] = calls
    assert wanted == ["lion-pytorch>=0.1.2"] and "torch==2.1.2+cu121" in constraints.splitlines()
    assert capsys.readouterr().out == ""


def test_install_that_pip_refuses_says_which_package_and_version(installed, install_script, monkeypatch, capsys):
    installed.update(A1111, toml="0.10.2")

    def refusing_pip(wanted, constraints_file):
        raise RuntimeError("Couldn't install Train Tools requirements: lion-pytorch.\nERROR: Cannot install "
                           "lion-pytorch because these package versions have conflicting dependencies.")

    monkeypatch.setattr(install_script, "pip_install", refusing_pip)
    assert install_script.main() == 0  # the WebUI still starts
    out = capsys.readouterr().out
    assert "could not install lion-pytorch>=0.1.2 without changing a package the WebUI pinned" in out
    assert "conflicting dependencies" in out
    assert "lion-pytorch is missing (needed for the Lion optimizer; version 0.1.2 or newer)" in out
    assert 'pip install "lion-pytorch>=0.1.2"' in out


def test_install_with_an_old_torch_only_reports(installed, install_script, monkeypatch, capsys):
    installed.update(A1111, torch="2.0.1", toml="0.10.2", **{"lion-pytorch": "0.2.5"})
    monkeypatch.setattr(install_script, "pip_install", lambda *a: pytest.fail("pip must not run"))
    assert install_script.main() == 0
    assert "torch 2.0.1 is installed, but Train Tools needs 2.1.2 or newer" in capsys.readouterr().out


def test_problem_text_for_each_kind():
    assert Problem(by_name("toml"), None).describe() == (
        "toml is missing (needed for training configurations; version 0.10 or newer)")
