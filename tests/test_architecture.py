"""The package's layers point one way; the WebUI, importlib and importorskip stay where they belong.

Files are parsed, not imported, so every import counts: at module level, inside functions and under
``TYPE_CHECKING``. A failure names each offending import as ``file:line``.

* ``LAYERS`` lists the package's top-level parts bottom to top. A part imports its own modules and
  lower layers only; parts on one layer are siblings and import each other only where
  ``SIBLING_EXCEPTIONS`` says why. A new top-level module needs a place in ``LAYERS``.
* The WebUI's ``modules`` are imported only by ``host/webui_modules.py`` (nothing in ``scripts/``).
* Nothing loads our own modules with importlib (package, scripts and tests): import statements do.
* No test skips when one of our modules fails to import (``pytest.importorskip("lib_train_tools...")``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_NAME = "lib_train_tools"
PACKAGE = ROOT / PACKAGE_NAME
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "contracts", "atomic", "torch_compat", "pip_constraints"),
    ("models",),
    ("network",),
    ("train",),
    ("projects",),
    ("datasets", "presets"),
    ("jobs", "results", "demo", "demo_files"),
    ("run_hooks",),
    ("services",),
    ("api", "ui"),
    ("host",),
    ("app", "webui_extension", "__main__"),
)
LAYER_OF = {part: number for number, parts in enumerate(LAYERS) for part in parts}
SIBLING_EXCEPTIONS = {  # (importer, imported): why
    ("__main__", "app"): "`python -m lib_train_tools` is the standalone app's entry point",
}
WEBUI_MODULES_FILE = PurePosixPath(PACKAGE_NAME, "host", "webui_modules.py")  # the one file importing `modules`
IMPORT_FUNCTIONS = {"import_module", "__import__", "find_spec", "spec_from_file_location", "SourceFileLoader",
                    "reload"}  # called by name or as importlib.<...>.name
OWN_NAMES = {"__name__", "__package__", "__file__", "__spec__"}


def python_files(*folders: str) -> list[PurePosixPath]:
    """The ``.py`` files under ``folders`` (relative to the repository), as repository paths."""
    return [PurePosixPath(path.relative_to(ROOT).as_posix())
            for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def parse(path: PurePosixPath) -> ast.Module:
    return ast.parse((ROOT / path).read_text(encoding="utf-8"), filename=str(path))


def top_parts() -> set[str]:
    """The package's top-level modules and subpackages (``__init__`` for the package itself)."""
    return {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.is_file() and p.suffix == ".py") or (p / "__init__.py").is_file()}


def part_of_file(path: PurePosixPath) -> str:
    """The top-level part a package file belongs to: ``lib_train_tools/train/data/x.py`` -> ``train``."""
    first = path.parts[1]
    return first[:-3] if first.endswith(".py") else first


def part_of_name(dotted: str, parts: set[str]) -> str:
    """The part an imported name lives in; a name of the package's ``__init__`` gives ``__init__``."""
    pieces = dotted.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[1] in parts else "__init__"


def imported_names(tree: ast.Module, path: PurePosixPath) -> Iterator[tuple[int, str]]:
    """(line, absolute dotted name) of every import in ``tree``; relative ones resolved against ``path``."""
    package = list(path.parts[:-1])  # a module's package; for __init__.py the package itself
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            for alias in node.names:
                yield node.lineno, module if alias.name == "*" else f"{module}.{alias.name}"


def layer_offences(path: PurePosixPath, tree: ast.Module, parts: set[str]) -> list[str]:
    """Imports in package file ``path`` of a higher layer, or of a sibling without an exception."""
    own = part_of_file(path)
    found = []
    for line, name in imported_names(tree, path):
        if name.split(".")[0] != PACKAGE_NAME:
            continue
        other = part_of_name(name, parts)
        if other == own:
            continue
        where = f"{path}:{line}: {own} (layer {LAYER_OF.get(own)}) imports {name}"
        if own not in LAYER_OF or other not in LAYER_OF:
            found.append(f"{where}: {own if own not in LAYER_OF else other} has no layer in LAYERS")
        elif LAYER_OF[other] > LAYER_OF[own]:
            found.append(f"{where}, of the higher layer {other} (layer {LAYER_OF[other]})")
        elif LAYER_OF[other] == LAYER_OF[own] and (own, other) not in SIBLING_EXCEPTIONS:
            found.append(f"{where}, of its sibling {other} on the same layer")
    return found


def webui_offences(path: PurePosixPath, tree: ast.Module) -> list[str]:
    """Imports of the WebUI's ``modules`` (static or by importlib) outside ``WEBUI_MODULES_FILE``."""
    if path == WEBUI_MODULES_FILE:
        return []
    found = [f"{path}:{line}: imports {name}" for line, name in imported_names(tree, path)
             if name.split(".")[0] == "modules"]
    found += [f"{path}:{call.lineno}: loads {text!r} with {function}"
              for call, function, text in _import_calls(tree) if text is not None and text.split(".")[0] == "modules"]
    return found


def importlib_offences(path: PurePosixPath, tree: ast.Module) -> list[str]:
    """importlib (or ``__import__``) loading a module of this package: plain imports do that."""
    found = []
    for call, function, text in _import_calls(tree):
        own_text = text is not None and (text.split(".")[0] == PACKAGE_NAME or text.startswith("."))
        own_name = any(isinstance(n, ast.Name) and n.id in OWN_NAMES for arg in _arguments(call) for n in ast.walk(arg))
        relative = any(keyword.arg == "package" for keyword in call.keywords)
        if own_text or own_name or relative or function == "reload":
            found.append(f"{path}:{call.lineno}: {ast.unparse(call)}")
    return found


def importorskip_offences(path: PurePosixPath, tree: ast.Module) -> list[str]:
    """``pytest.importorskip`` of this package: its modules are always importable, import them plainly."""
    found = []
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        if _function_name(call) == "importorskip":
            text = _leading_text(call.args[0]) if call.args else None
            if text is not None and text.split(".")[0] == PACKAGE_NAME:
                found.append(f"{path}:{call.lineno}: {ast.unparse(call)}")
    return found


def _import_calls(tree: ast.Module) -> Iterator[tuple[ast.Call, str, str | None]]:
    """Calls of importlib's loading functions: (call, function name, the literal start of its first argument)."""
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        function = _function_name(call)
        if function in IMPORT_FUNCTIONS and (isinstance(call.func, ast.Name) or _root_name(call.func) == "importlib"):
            yield call, function, _leading_text(call.args[0]) if call.args else None


def _function_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    return call.func.attr if isinstance(call.func, ast.Attribute) else None


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _leading_text(node: ast.expr) -> str | None:
    """A string literal, or an f-string's literal beginning; None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def _arguments(call: ast.Call) -> list[ast.expr]:
    return list(call.args) + [keyword.value for keyword in call.keywords]


def _offences(check: Callable[[PurePosixPath, ast.Module], list[str]], *folders: str) -> list[str]:
    return [offence for path in python_files(*folders) for offence in check(path, parse(path))]


# ----- the package as it is -----
def test_every_part_of_the_package_has_a_layer():
    assert sorted(top_parts() - set(LAYER_OF)) == [], "add new top-level modules to LAYERS"
    assert sorted(set(LAYER_OF) - top_parts()) == [], "LAYERS names a module that no longer exists"


def test_imports_point_down_the_layers():
    parts = top_parts()
    found = _offences(lambda path, tree: layer_offences(path, tree, parts), PACKAGE_NAME)
    assert found == [], "move the code to the right layer instead:\n" + "\n".join(found)


def test_every_sibling_exception_is_still_needed():
    parts = top_parts()
    used = {(part_of_file(path), part_of_name(name, parts))
            for path in python_files(PACKAGE_NAME) for _, name in imported_names(parse(path), path)
            if name.split(".")[0] == PACKAGE_NAME}
    assert sorted(set(SIBLING_EXCEPTIONS) - used) == []


def test_only_the_webui_adapter_imports_the_webuis_modules():
    found = _offences(webui_offences, PACKAGE_NAME, "scripts")
    assert found == [], f"import the WebUI through {WEBUI_MODULES_FILE}:\n" + "\n".join(found)


def test_no_importlib_loading_of_our_own_modules():
    found = _offences(importlib_offences, PACKAGE_NAME, "scripts", "tests")
    assert found == [], "import our modules with import statements:\n" + "\n".join(found)


def test_tests_do_not_skip_when_our_modules_fail_to_import():
    found = _offences(importorskip_offences, "tests")
    assert found == [], "an import error of our own code must fail, not skip:\n" + "\n".join(found)


# ----- the checks find what they look for -----
CULPRIT = '''
from typing import TYPE_CHECKING
import importlib
from .. import contracts
from ..train import params
from . import loader
if TYPE_CHECKING:
    from lib_train_tools.ui.app import App

def late():
    from ..network.lora_file import save_lora
    import modules.shared
    importlib.import_module("modules.sd_models")
    importlib.import_module("lib_train_tools.jobs")
    importlib.import_module(f".{late.__name__}", __package__)
    importlib.reload(loader)
    pytest.importorskip("lib_train_tools.api")
    pytest.importorskip("torch")
'''


@pytest.fixture
def culprit() -> tuple[PurePosixPath, ast.Module]:
    return PurePosixPath(PACKAGE_NAME, "models", "culprit.py"), ast.parse(CULPRIT)


def test_relative_imports_are_resolved_against_the_file(culprit):
    path, tree = culprit
    assert list(imported_names(tree, path))[2:5] == [
        (4, "lib_train_tools.contracts"), (5, "lib_train_tools.train.params"), (6, "lib_train_tools.models.loader")]
    init = PurePosixPath(PACKAGE_NAME, "train", "__init__.py")  # `.` is the package itself
    assert list(imported_names(ast.parse("from .params import PARAMS\nfrom .. import atomic"), init)) == [
        (1, "lib_train_tools.train.params.PARAMS"), (2, "lib_train_tools.atomic")]
    deep = PurePosixPath(PACKAGE_NAME, "train", "data", "images.py")
    assert list(imported_names(ast.parse("from ...atomic import *\nimport lib_train_tools"), deep)) == [
        (1, "lib_train_tools.atomic"), (2, "lib_train_tools")]


def test_the_layer_check_finds_imports_in_functions_and_under_type_checking(culprit):
    path, tree = culprit
    assert layer_offences(path, tree, top_parts()) == [
        f"{path}:5: models (layer 1) imports lib_train_tools.train.params, of the higher layer train (layer 3)",
        f"{path}:8: models (layer 1) imports lib_train_tools.ui.app.App, of the higher layer ui (layer 9)",
        f"{path}:11: models (layer 1) imports lib_train_tools.network.lora_file.save_lora, of the higher layer "
        "network (layer 2)"]
    sibling = PurePosixPath(PACKAGE_NAME, "results", "x.py")
    assert layer_offences(sibling, ast.parse("from ..jobs.job import Job\nfrom ..models import loader"),
                          top_parts()) == [
        f"{sibling}:1: results (layer 6) imports lib_train_tools.jobs.job.Job, of its sibling jobs on the same layer"]
    entry = PurePosixPath(PACKAGE_NAME, "__main__.py")
    assert layer_offences(entry, ast.parse("from .app import main"), top_parts()) == []  # an exception


def test_the_checks_find_the_webui_importlib_and_importorskip(culprit):
    path, tree = culprit
    assert webui_offences(path, tree) == [f"{path}:12: imports modules.shared",
                                          f"{path}:13: loads 'modules.sd_models' with import_module"]
    assert webui_offences(WEBUI_MODULES_FILE, tree) == []
    assert importlib_offences(path, tree) == [
        f"{path}:14: importlib.import_module('lib_train_tools.jobs')",
        f"{path}:15: importlib.import_module(f'.{{late.__name__}}', __package__)",
        f"{path}:16: importlib.reload(loader)"]
    assert importorskip_offences(path, tree) == [f"{path}:17: pytest.importorskip('lib_train_tools.api')"]
