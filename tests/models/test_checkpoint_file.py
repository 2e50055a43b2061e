"""A damaged .ckpt and a .ckpt refused for the Python objects in its pickle get different messages.

Torch words both failures differently in every version (2.1/2.3: ``Unsupported class``; newer:
``Unsupported global: GLOBAL``) and says ``weights_only`` even for random bytes; these tests run
under each installed torch (``.venv``, ``.venv-torch2.1.2``, ``.venv-torch2.3.1``).
"""

from __future__ import annotations

import io
import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from lib_train_tools.models.checkpoint_file import CheckpointError, TensorFile, pickle_globals

CORRUPT = ("not a valid checkpoint: it is truncated or corrupt", "download it again")
UNSAFE = ("contains Python objects besides tensors", "cannot be loaded safely; convert it to .safetensors")


class _RunsACommand:
    """Unpickling this would run ``touch <marker>``; a safe loader must never do it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def _saved(obj: object, legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def _reason(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        TensorFile(path)
    assert path.name in str(info.value)
    return info.value.reason


def _assert_corrupt(reason: str) -> None:
    assert all(words in reason for words in CORRUPT), reason
    assert "Python objects" not in reason and "safetensors" not in reason, reason


def _assert_unsafe(reason: str, global_name: str) -> None:
    assert all(words in reason for words in UNSAFE), reason
    assert f"({global_name})" in reason, reason
    assert "corrupt" not in reason and "download" not in reason, reason


def test_random_bytes_are_reported_as_corrupt_not_as_unsafe(tmp_path):
    data = bytes(random.Random(0).getrandbits(8) for _ in range(4096))
    _assert_corrupt(_reason(tmp_path / "random.ckpt", data))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("keep", [0.5, 0.98, 100], ids=["half", "nearly-all", "first-100-bytes"])
def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path, legacy, keep):
    data = _saved({"state_dict": {"w": torch.arange(4000, dtype=torch.float32)}}, legacy)
    cut = data[: int(len(data) * keep)] if keep < 1 else data[:keep]
    _assert_corrupt(_reason(tmp_path / "cut.ckpt", cut))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_class_instance_in_the_pickle_is_refused_and_named(tmp_path, legacy):
    data = _saved({"state_dict": {"w": torch.zeros(2)}, "where": Path("x")}, legacy)
    _assert_unsafe(_reason(tmp_path / "objects.ckpt", data), f"pathlib.{type(Path('x')).__name__}")


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_os_system_reference_is_refused_and_never_runs(tmp_path, legacy):
    marker = tmp_path / "it-ran"
    data = _saved({"state_dict": {"w": torch.zeros(2)}, "payload": _RunsACommand(marker)}, legacy)
    _assert_unsafe(_reason(tmp_path / "evil.ckpt", data), f"{os.system.__module__}.system")
    assert not marker.exists()


def test_plain_pickle_with_objects_is_refused_and_named(tmp_path):
    """pickle protocol 4 (not torch.save): torch only says 'Unsupported operand'; the scan names the global."""
    marker = tmp_path / "it-ran"
    data = pickle.dumps({"w": torch.zeros(1), "payload": _RunsACommand(marker)}, protocol=4)
    _assert_unsafe(_reason(tmp_path / "plain.ckpt", data), f"{os.system.__module__}.system")
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_valid_checkpoint_loads(tmp_path, legacy):
    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    path = tmp_path / "good.ckpt"
    path.write_bytes(_saved({"state_dict": {"w": weights, "step": 3}}, legacy))
    with TensorFile(path) as f:
        assert f.keys() == ["w"]
        assert torch.equal(f.tensor("w"), weights)


def test_pickle_globals_reads_without_running_and_refuses_garbage(tmp_path):
    marker = tmp_path / "it-ran"
    assert pickle_globals(io.BytesIO(pickle.dumps(_RunsACommand(marker), protocol=2))) == [
        f"{os.system.__module__}.system"]
    assert pickle_globals(io.BytesIO(pickle.dumps([Path("a")], protocol=4))) == [
        f"pathlib.{type(Path('a')).__name__}"]
    assert pickle_globals(io.BytesIO(b"\x80\x02]q\x00")) is None  # cut before STOP
    assert pickle_globals(io.BytesIO(bytes(random.Random(1).getrandbits(8) for _ in range(512)))) is None
    assert not marker.exists()
