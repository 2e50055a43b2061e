"""The suggested epoch (lowest validation loss): read from the progress file, marked in Results and
pre-ticked for the preview grid; the job side keeps the validation losses of a run."""

from __future__ import annotations

from pathlib import Path

from lib_train_tools.jobs.progress_state import JobProgress
from lib_train_tools.results.runs import read_run
from lib_train_tools.results.suggested_epoch import lowest_loss_epoch
from lib_train_tools.train.protocol import EpochEvent, ProgressWriter, StartEvent, StepEvent, ValidationEvent
from lib_train_tools.ui.preview_actions import default_epochs, epoch_choices
from lib_train_tools.ui.results_report import checkpoints_html, summary_html

from .conftest import OUTPUT_NAME, write_run


def test_the_suggestion_is_the_argmin_over_epochs_with_a_file():
    losses = [(1, 0.30), (2, 0.21), (3, 0.25), (4, 0.19)]
    assert lowest_loss_epoch(losses) == 4
    assert lowest_loss_epoch(losses, epochs=[1, 2, 3]) == 2  # epoch 4 has no file
    assert lowest_loss_epoch([(1, 0.2), (2, 0.2)]) == 1  # a tie: the earlier, shorter training
    assert lowest_loss_epoch([(1, 0.1), (2, 0.2), (1, 0.3)]) == 2  # a later measurement replaces one
    assert lowest_loss_epoch([(1, float("nan")), (2, 0.4)]) == 2
    assert lowest_loss_epoch([]) is None and lowest_loss_epoch(losses, epochs=[7]) is None


def _append_validation(run_dir: Path, losses: dict[int, float], steps_per_epoch: int = 4) -> None:
    with ProgressWriter(run_dir / "progress.jsonl") as progress:
        for epoch, loss in losses.items():
            progress.write(ValidationEvent(step=epoch * steps_per_epoch, epoch=epoch, epoch_end=True, loss=loss,
                                           images=2, draws=4))
        progress.write(ValidationEvent(step=2, epoch=1, epoch_end=False, loss=0.01, images=2, draws=4))  # mid-epoch


def test_results_mark_the_suggested_epoch_and_tick_it_for_the_preview(tmp_path, lora_factory, base_model):
    run_dir = write_run(tmp_path / "trains" / "run", lora_factory, base_model, epochs=3)
    _append_validation(run_dir, {1: 0.30, 2: 0.21, 3: 0.25})
    run = read_run(run_dir)
    assert run.progress.validation_losses == ((1, 0.30), (2, 0.21), (3, 0.25))  # epoch ends only
    assert run.suggested is not None and run.suggested.path.name == f"{OUTPUT_NAME}-000002.safetensors"
    table = checkpoints_html(run)
    rows = table.split("<tr>")[2:]
    assert "Validation loss" in table
    assert [("★ suggested" in row, "0.21" in row) for row in rows] == [(False, False), (True, True), (False, False),
                                                                       (False, False)]
    assert "0.25" in rows[2] and "0.25" in rows[3]  # the final file is epoch 3's weights
    assert "Suggested" in summary_html(run, None) and "epoch 2" in summary_html(run, None)
    ticked = [f"{OUTPUT_NAME}-000002.safetensors", f"{OUTPUT_NAME}.safetensors"]
    assert default_epochs(run) == ticked
    assert epoch_choices(run).get("value") == ticked
    assert epoch_choices(run, keep=[f"{OUTPUT_NAME}-000001.safetensors"]).get("value") == \
        [f"{OUTPUT_NAME}-000001.safetensors"]  # what the user ticked stays


def test_the_final_file_is_suggested_when_the_last_epoch_is_best(tmp_path, lora_factory, base_model):
    run_dir = write_run(tmp_path / "trains" / "run", lora_factory, base_model, epochs=2)
    (run_dir / f"{OUTPUT_NAME}-000002.safetensors").unlink()  # as the trainer leaves it: the last epoch is the final
    _append_validation(run_dir, {1: 0.3, 2: 0.2})
    run = read_run(run_dir)
    assert run.suggested is not None and run.suggested.kind == "final"
    assert default_epochs(run) == [f"{OUTPUT_NAME}.safetensors"]


def test_without_validation_nothing_is_suggested_and_every_file_is_ticked(tmp_path, lora_factory, base_model):
    run = read_run(write_run(tmp_path / "trains" / "run", lora_factory, base_model, epochs=2))
    assert run.progress.validation_losses == () and run.suggested is None
    assert "Validation loss" not in checkpoints_html(run) and "suggested" not in checkpoints_html(run)
    assert default_epochs(run) == [c.path.name for c in run.all_checkpoints]


def test_the_job_side_keeps_the_validation_losses():
    events = [StartEvent(total_steps=8, total_epochs=2, steps_per_epoch=4),
              StepEvent(step=4, total_steps=8, epoch=1, loss=0.5),
              EpochEvent(epoch=1, total_epochs=2, avg_loss=0.5),
              ValidationEvent(step=4, epoch=1, epoch_end=True, loss=0.4, images=2, draws=4),
              ValidationEvent(step=6, epoch=2, epoch_end=False, loss=0.35, images=2, draws=4),
              StartEvent(total_steps=8, total_epochs=2, steps_per_epoch=4),  # resumed from step 6
              ValidationEvent(step=6, epoch=2, epoch_end=False, loss=0.36, images=2, draws=4),
              ValidationEvent(step=8, epoch=2, epoch_end=True, loss=0.3, images=2, draws=4),
              ValidationEvent(step=9, epoch=3, loss=None)]
    progress = JobProgress().apply_all(events)
    assert progress.validation_losses == [(4, 0.4), (6, 0.36), (8, 0.3)]
    assert progress.epoch_validation_losses == [(1, 0.4), (2, 0.3)]
    data = progress.to_dict()
    assert data["validation_losses"] == [[4, 0.4], [6, 0.36], [8, 0.3]]
    assert data["epoch_validation_losses"] == [[1, 0.4], [2, 0.3]]
    copy = progress.snapshot()
    copy.validation_losses.append((10, 0.1))
    assert len(progress.validation_losses) == 3
