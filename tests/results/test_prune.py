"""Tests for "keep last N checkpoints"."""

from __future__ import annotations

from lib_train_tools.results.prune import prune_checkpoints


def _touch(folder, *names):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def test_keeps_the_newest_epoch_and_step_files_and_never_the_final_or_state(tmp_path) -> None:
    epochs = [f"run-{e:06d}.safetensors" for e in (1, 2, 3, 10, 11)]
    steps = [f"run-step{s:08d}.safetensors" for s in (100, 200, 300)]
    others = ["run.safetensors", "run-state/state.safetensors", "run-state/train_state.json",
              "other-000001.safetensors", "sample/run_e000001_00.png", "run-000004.safetensors.tmp"]
    _touch(tmp_path, *epochs, *steps, *others)
    deleted = prune_checkpoints(tmp_path, "run", keep_last_n=2)
    assert sorted(p.name for p in deleted) == sorted(epochs[:3] + steps[:1])
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == sorted(epochs[3:] + steps[1:] + others)


def test_zero_keeps_everything_and_more_than_present_deletes_nothing(tmp_path) -> None:
    _touch(tmp_path, "run-000001.safetensors", "run-000002.safetensors")
    assert prune_checkpoints(tmp_path, "run", keep_last_n=0) == []
    assert prune_checkpoints(tmp_path, "run", keep_last_n=5) == []
    assert len(list(tmp_path.iterdir())) == 2
    assert [p.name for p in prune_checkpoints(tmp_path, "run", keep_last_n=1)] == ["run-000001.safetensors"]
