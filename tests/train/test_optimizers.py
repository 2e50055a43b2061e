"""Tests for the optimizer registry: each available optimizer trains, missing ones explain themselves."""

from __future__ import annotations

import re
import sys
import types

import pytest
import torch

from lib_train_tools import torch_compat
from lib_train_tools.train import optimizers
from lib_train_tools.train.optimizers import (
    BUILDERS,
    OptimizerArgError,
    OptimizerUnavailable,
    make_optimizer,
    optimizer_description,
    optimizer_notes,
    parse_optimizer_args,
)
from lib_train_tools.train.params import OPTIMIZER_NAMES, get_param

NEEDS_ADAFACTOR = pytest.mark.skipif(not hasattr(torch.optim, "Adafactor"), reason="torch < 2.5")
AVAILABLE = [("AdamW", 1e-2), ("Lion", 1e-3), ("SGDNesterov", 1e-2),
             pytest.param("Adafactor", 1e-2, marks=NEEDS_ADAFACTOR)]


def _loss(weight: torch.Tensor) -> torch.Tensor:
    return ((weight - 1.0) ** 2).sum()


def _train(optimizer: torch.optim.Optimizer, weight: torch.Tensor, steps: int = 3) -> None:
    for _ in range(steps):
        optimizer.zero_grad()
        _loss(weight).backward()
        optimizer.step()


def test_registry_matches_the_option_choices() -> None:
    assert tuple(BUILDERS) == OPTIMIZER_NAMES == get_param("optimizer_type").choices


@pytest.mark.parametrize("name,lr", AVAILABLE)
def test_available_optimizers_step_a_parameter(name, lr) -> None:
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.randn(4, 3) * 0.1 + 0.5)
    frozen_lr_weight = torch.nn.Parameter(torch.full((2,), 0.5))
    groups = [{"params": [weight], "lr": lr}, {"params": [frozen_lr_weight], "lr": 0.0}]
    optimizer = make_optimizer(name.lower(), groups, lr, {})
    before = _loss(weight).item()
    _train(optimizer, weight)
    assert _loss(weight).item() < before
    assert torch.equal(frozen_lr_weight.detach(), torch.full((2,), 0.5))
    assert optimizer.defaults["lr"] == lr


def test_optimizer_args_and_sd_scripts_defaults() -> None:
    weight = torch.nn.Parameter(torch.zeros(3))
    args = parse_optimizer_args(["weight_decay=0.1", "betas=0.9,0.99"])
    adamw = make_optimizer("AdamW", [weight], 1e-4, args)
    assert (adamw.param_groups[0]["weight_decay"], adamw.param_groups[0]["betas"]) == (0.1, (0.9, 0.99))
    assert optimizer_description(adamw, args) == "torch.optim.adamw.AdamW(weight_decay=0.1,betas=(0.9, 0.99))"
    sgd = make_optimizer("sgdnesterov", [weight], 1e-3, {})
    assert isinstance(sgd, torch.optim.SGD)
    assert (sgd.param_groups[0]["momentum"], sgd.param_groups[0]["nesterov"]) == (0.9, True)
    assert make_optimizer("SGDNesterov", [weight], 1e-3, {"momentum": 0.5}).param_groups[0]["momentum"] == 0.5


@NEEDS_ADAFACTOR
def test_adafactor_takes_sd_scripts_transformers_style_args() -> None:
    args = parse_optimizer_args(["scale_parameter=False", "relative_step=False", "warmup_init=False",
                                 "decay_rate=-0.7", "clip_threshold=2.0"])
    optimizer = make_optimizer("adafactor", [torch.nn.Parameter(torch.zeros(3))], 1e-3, args)
    assert (optimizer.param_groups[0]["beta2_decay"], optimizer.param_groups[0]["d"]) == (-0.7, 2.0)
    notes = optimizer_notes("Adafactor", 1e-3, args)
    assert len(notes) == 1 and "relative_step, scale_parameter, warmup_init" in notes[0]


def test_unknown_names_and_arguments_are_explained() -> None:
    weight = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(OptimizerArgError, match="unknown optimizer_type 'DAdaptAdam'; known: AdamW, AdamW8bit"):
        make_optimizer("DAdaptAdam", [weight], 1e-4, {})
    with pytest.raises(OptimizerArgError, match=r"AdamW does not accept optimizer_args \['foo'\]"):
        make_optimizer("AdamW", [weight], 1e-4, {"foo": 1})
    with pytest.raises(OptimizerArgError, match="optimizer AdamW: Invalid learning rate"):
        make_optimizer("AdamW", [weight], -1.0, {})


@pytest.mark.parametrize("name,module,package", [
    ("AdamW8bit", "bitsandbytes", "bitsandbytes"),
    ("Lion8bit", "bitsandbytes", "bitsandbytes"),
    ("Lion", "lion_pytorch", "lion-pytorch"),
    ("Prodigy", "prodigyopt", "prodigyopt"),
])
def test_missing_packages_name_the_pip_install(monkeypatch, name, module, package) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail as if not installed
    with pytest.raises(OptimizerUnavailable, match=f"needs the '{package}' package.*pip install {package}"):
        make_optimizer(name, [torch.nn.Parameter(torch.zeros(3))], 1e-4, {})


def test_packages_that_fail_to_load_are_reported(monkeypatch) -> None:
    def broken(module: str):
        raise RuntimeError("CUDA Setup failed")

    monkeypatch.setattr(optimizers.importlib, "import_module", broken)
    with pytest.raises(OptimizerUnavailable, match="'bitsandbytes' package is installed but failed to load: CUDA"):
        make_optimizer("AdamW8bit", [torch.nn.Parameter(torch.zeros(3))], 1e-4, {})


def test_optional_packages_are_wired_when_present(monkeypatch) -> None:
    class FakeAdamW8bit(torch.optim.AdamW):
        pass

    class FakeLion8bit(torch.optim.AdamW):
        pass

    class FakeProdigy(torch.optim.SGD):
        def __init__(self, params, lr, d_coef=1.0):
            super().__init__(params, lr=lr)
            self.d_coef = d_coef

    bnb = types.ModuleType("bitsandbytes")
    bnb.optim = types.SimpleNamespace(AdamW8bit=FakeAdamW8bit, Lion8bit=FakeLion8bit)
    monkeypatch.setitem(sys.modules, "bitsandbytes", bnb)
    monkeypatch.setitem(sys.modules, "prodigyopt", types.SimpleNamespace(Prodigy=FakeProdigy))
    weight = torch.nn.Parameter(torch.zeros(3))
    assert isinstance(make_optimizer("adamw8bit", [weight], 1e-4, {"weight_decay": 0.2}), FakeAdamW8bit)
    assert isinstance(make_optimizer("LION8BIT", [weight], 1e-4, {}), FakeLion8bit)
    prodigy = make_optimizer("prodigy", [weight], 1.0, {"d_coef": 2})
    assert isinstance(prodigy, FakeProdigy) and prodigy.d_coef == 2 and prodigy.defaults["lr"] == 1.0


def test_adafactor_needs_a_recent_torch(monkeypatch) -> None:
    monkeypatch.setattr(torch_compat, "TORCH_VERSION", (2, 4, 1))
    with pytest.raises(OptimizerUnavailable, match=f"torch 2.5 or newer.*this torch is {re.escape(torch.__version__)}"):
        make_optimizer("Adafactor", [torch.nn.Parameter(torch.zeros(3))], 1e-2, {})


def test_notes_for_adaptive_optimizers() -> None:
    notes = optimizer_notes("prodigy", 1e-4)
    assert len(notes) == 1 and "usually 1.0 (got 0.0001)" in notes[0]
    assert optimizer_notes("Prodigy", 1.0) == []
    assert optimizer_notes("AdamW", 1e-4, {"weight_decay": 0.1}) == []
