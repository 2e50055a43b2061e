"""Caption problems reach the run's progress events once, before training starts."""

from __future__ import annotations

from lib_train_tools.train.cli import main

from .test_training_run import events, make_dataset, run_args, tiny_ckpt  # noqa: F401 (fixture)


def test_empty_and_long_captions_are_warned_once_per_run(tiny_ckpt, tmp_path):  # noqa: F811
    data, out = make_dataset(tmp_path), tmp_path / "out"
    folder = data / "2_demo"
    (folder / "00.txt").write_text("", encoding="utf-8")
    (folder / "01.txt").write_text(", ".join(f"tag{i}" for i in range(60)), encoding="utf-8")
    assert main(run_args(tiny_ckpt, data, out, max_train_steps=1)) == 0
    seen = events(out)
    warnings = [e.message for e in seen if e.type == "warning"]
    empty = [w for w in warnings if "caption file" in w and "empty" in w]
    long = [w for w in warnings if "longer than the 75 tokens" in w]
    assert len(empty) == 1 and "folder's name" in empty[0], warnings
    assert len(long) == 1 and "max_token_length" in long[0], warnings
    start = next(i for i, e in enumerate(seen) if e.type == "start")
    assert all(i < start for i, e in enumerate(seen) if e.type == "warning" and e.message in empty + long)
