"""How a run ends when things go wrong: non-finite weights, a full disk, killed saves (CPU, tiny models)."""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from lib_train_tools.models.checkpoint_factory import write_checkpoint
from lib_train_tools.train.cli import EXIT_CODES, classify, main

from .test_training_run import _StopAfter, events, make_dataset, run_args

DISK_FULL = ('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
             'message: "No space left on device" })')
TORCH_WRITE_FAILED = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"
FREE = 32 * 1024  # what the patched disk_usage reports: 0.0 MiB


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("base") / "tiny-sd1.safetensors", family="sd1", seed=3)


@pytest.fixture
def little_free_space(monkeypatch):
    def disk_usage(path):
        return shutil._ntuple_diskusage(10 * 2**30, 10 * 2**30 - FREE, FREE)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)


def _error(out: Path):
    errors = [e for e in events(out) if e.type == "error"]
    assert len(errors) == 1, errors
    assert events(out)[-1].type == "done" and events(out)[-1].status == "failed"
    return errors[0]


def _hidden(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".") or p.name.endswith((".tmp", ".old")))


def _all_finite(path: Path) -> bool:
    return all(bool(torch.isfinite(t.float()).all()) for t in load_file(str(path)).values())


# ----- 1. non-finite weights -----
def test_nan_weights_are_never_saved_and_the_last_finite_file_is_named(tiny_ckpt, tmp_path, monkeypatch):
    from lib_train_tools.train import loop

    real = loop.optimizer_step

    def poison_after_fourth_step(s, batches, step):  # the loss of that step is still finite
        loss = real(s, batches, step)
        if step == 3:
            with torch.no_grad():
                for name, p in s.network.named_parameters():
                    if "lora_up" in name:
                        p.fill_(float("nan"))
        return loss

    monkeypatch.setattr(loop, "optimizer_step", poison_after_fourth_step)
    data, out = make_dataset(tmp_path, count=2, folder="1_demo"), tmp_path / "out"  # 2 steps per epoch
    code = main(run_args(tiny_ckpt, data, out, max_train_steps=None, max_train_epochs=3, save_every_n_epochs=1,
                         save_state=True))
    assert code == EXIT_CODES["nan"] == 5
    error = _error(out)
    assert error.kind == "nan" and error.hint and "learning rate" in error.hint
    assert "tiny-000002.safetensors" in error.message and "not finite" in error.message
    assert "the file was not written" in error.message
    assert f"The last file written, {out / 'tiny-000001.safetensors'}, holds finite weights" in error.message
    assert not (out / "tiny-000002.safetensors").exists()
    assert _all_finite(out / "tiny-000001.safetensors")
    assert json.loads((out / "tiny-state" / "train_state.json").read_text())["step"] == 2
    assert _hidden(out) == []


def _lora_state(up_value: float) -> dict[str, torch.Tensor]:
    return {"lora_unet_x.lora_down.weight": torch.ones(4, 8),
            "lora_unet_x.lora_up.weight": torch.full((8, 4), up_value), "lora_unet_x.alpha": torch.tensor(4.0)}


@pytest.mark.parametrize("value,overflow", [(float("nan"), False), (1e6, True)], ids=["nan", "fp16-overflow"])
def test_a_lora_with_non_finite_tensors_is_not_written(tmp_path, value, overflow):
    from lib_train_tools.network.lora_file import NonFiniteTensors, save_lora

    with pytest.raises(NonFiniteTensors) as caught:
        save_lora(tmp_path / "a.safetensors", _lora_state(value), {}, torch.float16)
    assert caught.value.names == ["lora_unet_x.lora_up.weight"] and caught.value.total == 3
    assert caught.value.overflow is overflow
    assert ("beyond the range of float16" in str(caught.value)) is overflow
    assert list(tmp_path.iterdir()) == []


def _fake_session(tmp_path: Path) -> SimpleNamespace:
    from lib_train_tools.train.config import parse_cli

    cfg, _ = parse_cli(["--output_dir", str(tmp_path), "--output_name", "t", "--train_data_dir", str(tmp_path),
                        "--pretrained_model_name_or_path", str(tmp_path / "base.safetensors")])
    network = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(network.parameters())
    network(torch.ones(1, 2)).sum().backward()
    optimizer.step()
    return SimpleNamespace(cfg=cfg, network=network, optimizer=optimizer, output_dir=tmp_path, output_name="t",
                           scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0), scaler=None,
                           seed=1, session_id=2, last_saved_file=None)


def test_a_state_with_non_finite_optimizer_tensors_is_not_written(tmp_path):
    from lib_train_tools.train.saving import NonFiniteWeights, Position, save_state

    session = _fake_session(tmp_path)
    save_state(session, Position(1, 0, 1))  # finite: written
    session.optimizer.state[session.network.weight]["exp_avg_sq"][0, 0] = float("inf")  # the weights stay finite
    with pytest.raises(NonFiniteWeights, match=r"training state is no longer finite at step 2: .* not written\. "
                                               r"No LoRA file was written by this run before this\."):
        save_state(session, Position(2, 0, 2))
    assert json.loads((tmp_path / "t-state" / "train_state.json").read_text())["step"] == 1  # the last good one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t-state"]


# ----- 2. a full disk -----
def test_a_full_disk_on_the_lora_write_is_an_io_error(tiny_ckpt, tmp_path, monkeypatch, little_free_space):
    from safetensors import SafetensorError

    def full_disk(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise SafetensorError(DISK_FULL)

    monkeypatch.setattr("safetensors.torch.save_file", full_disk)
    data, out = make_dataset(tmp_path, count=1, folder="1_demo"), tmp_path / "out"
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=1)) == EXIT_CODES["io"] == 6
    error = _error(out)
    assert error.kind == "io" and "output_dir" in error.hint
    assert error.message.startswith(f"no space left on {out}: 0.0 MiB free, this save needs about ")
    assert error.message.endswith(" MiB (tiny.safetensors)")
    warnings = [e.message for e in events(out) if e.type == "warning"]
    assert any(w.startswith(f"low disk space on {out}: 0.0 MiB free, but this run's saves need about ")
               for w in warnings), warnings
    assert _hidden(out) == [] and not (out / "tiny.safetensors").exists()


def test_a_full_disk_on_the_state_write_is_an_io_error(tiny_ckpt, tmp_path, monkeypatch, little_free_space):
    real = torch.save

    def failing_save(obj, f, *args, **kwargs):
        if "state" in str(getattr(f, "name", f)):
            f.write(b"\0" * 4096)
            raise RuntimeError(TORCH_WRITE_FAILED)
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    data, out = make_dataset(tmp_path, count=1, folder="1_demo"), tmp_path / "out"
    code = main(run_args(tiny_ckpt, data, out, max_train_steps=None, max_train_epochs=2, save_every_n_epochs=1,
                         save_state=True))
    assert code == EXIT_CODES["io"]
    error = _error(out)
    assert error.kind == "io"
    assert error.message.startswith(f"no space left on {out}: 0.0 MiB free, this save needs about ")
    assert error.message.endswith(" MiB (the training state tiny-state)")
    assert _hidden(out) == [] and not (out / "tiny-state").exists()
    assert _all_finite(out / "tiny-000001.safetensors")  # written before: complete


def _chained(outer: Exception, inner: Exception) -> Exception:
    """``outer`` raised while handling ``inner`` (its ``__context__``), as a failed write is."""
    outer.__context__ = inner
    return outer


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    _chained(RuntimeError("could not save the sample image"), OSError(errno.ENOSPC, "No space left on device")),
], ids=["enospc", "edquot", "in-the-chain"])
def test_disk_full_anywhere_in_the_chain_is_io(error):
    kind, message, hint = classify(error)
    assert kind == "io" and message.startswith("no space left on ") and "output_dir" in hint


def test_disk_full_message_names_the_folder_of_the_file(tmp_path):
    error = _chained(RuntimeError("writing failed"), OSError(errno.ENOSPC, "No space left", str(tmp_path / "a.png")))
    kind, message, _ = classify(error)
    assert kind == "io" and message.startswith(f"no space left on {tmp_path}: ") and "MiB free" in message


def test_a_failed_torch_write_with_room_to_spare_is_an_io_error_not_disk_full(tmp_path):
    from lib_train_tools.train.saving import NoSpaceLeft, write_failure

    failure = write_failure(RuntimeError(TORCH_WRITE_FAILED), tmp_path, 1024, "the training state x-state")
    assert isinstance(failure, OSError) and not isinstance(failure, NoSpaceLeft)
    assert classify(failure)[0] == "io" and "writing the training state x-state" in str(failure)
    assert write_failure(ValueError("something else"), tmp_path, 1024, "x") is None


def test_cpu_out_of_memory_during_a_save_is_out_of_memory():
    error = _chained(RuntimeError("saving failed"), RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate memory"))
    kind, _, hint = classify(error)
    assert kind == "out_of_memory" and "train_batch_size" in hint


# ----- 8. leftovers of killed saves -----
OURS = [".tt-tmp-tiny-000001.safetensors.123-abcdef12.tmp", ".tiny.safetensors.456-0123abcd.tmp",
        ".tiny-step00000010.safetensors.7-89abcdef.tmp"]
OUR_FOLDERS = ["tiny-state.tmp", "tiny-state.old", ".tt-tmp-tiny-state.789-deadbeef.tmp"]
NOT_OURS = [".other.safetensors.1-abcdef12.tmp", "notes.tmp", ".tiny-000001.safetensors.tmp", "my.old",
            ".tt-tmp-other-state.1-abcdef12.tmp", "tiny-000001.safetensors.bak"]


def test_leftovers_of_killed_saves_are_removed_and_nothing_else(tiny_ckpt, tmp_path, capsys):
    data, out = make_dataset(tmp_path, count=1, folder="1_demo"), tmp_path / "out"
    out.mkdir()
    for name in OURS + NOT_OURS:
        (out / name).write_bytes(b"left behind")
    for name in OUR_FOLDERS + ["tiny-state.bak"]:
        (out / name).mkdir()
        (out / name / "state.pt").write_bytes(b"partial")
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=1)) == 0
    left = {p.name for p in out.iterdir()}
    assert not left & set(OURS + OUR_FOLDERS)
    assert set(NOT_OURS) | {"tiny-state.bak"} <= left
    stderr = capsys.readouterr().err
    assert f"removed 6 temporary file(s) that an interrupted save left in {out}: " in stderr


def test_every_temporary_name_follows_one_scheme(tmp_path, monkeypatch):
    from lib_train_tools.network.lora_file import save_lora
    from lib_train_tools.atomic import temporary_sibling, temporary_target

    seen = []
    monkeypatch.setattr("safetensors.torch.save_file", lambda t, filename, metadata=None: seen.append(filename))
    save_lora(tmp_path / "a.safetensors", _lora_state(1.0), {})
    assert Path(seen[0]).name.startswith(".tt-tmp-a.safetensors.")
    assert temporary_target(temporary_sibling(tmp_path / "x-state").name) == "x-state"
    assert temporary_target(".x.safetensors.12-0123abcd.tmp") == "x.safetensors"  # older versions
    assert temporary_target("x.tmp") is None and temporary_target(".x.tmp") is None


# ----- 9. resuming from the newest complete state -----
def test_resume_skips_an_incomplete_state_for_the_newest_complete_one(tiny_ckpt, tmp_path, monkeypatch):
    from lib_train_tools.train import cli

    data, out = make_dataset(tmp_path, count=1, folder="1_demo"), tmp_path / "out"
    monkeypatch.setattr(cli, "StopFlag", lambda: _StopAfter(2))
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=3)) == 0
    monkeypatch.undo()
    complete = out / ".tt-tmp-tiny-state.999-abcdef12.tmp"  # killed between the two renames of a save
    os.replace(out / "tiny-state", complete)
    (out / "tiny-state").mkdir()  # a newer save that never finished
    (out / "tiny-state" / "state.pt").write_bytes(b"partial")
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=3, resume=out / "tiny-state")) == 0
    done = events(out)[-1]
    assert done.status == "completed" and done.step == 3
    notes = [e.message for e in events(out) if e.type == "warning"]
    assert any(f"resuming from {complete}, the newest complete state (step 2)" in n for n in notes), notes
    assert all(math.isfinite(e.loss) for e in events(out) if e.type == "step")


def test_resume_without_any_complete_state_is_a_config_error(tmp_path):
    from lib_train_tools.train.saving import resolve_resume

    (tmp_path / "x-state").mkdir()
    (tmp_path / "x-state.old").mkdir()
    with pytest.raises(Exception) as caught:
        resolve_resume(tmp_path / "x-state")
    kind, message, _ = classify(caught.value)
    assert kind == "config" and "holds no complete training state" in message
