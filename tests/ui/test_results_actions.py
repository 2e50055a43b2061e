"""The Results tab's run picker on a real completed run: runs, settings, checkpoints, samples, outcomes."""

from __future__ import annotations

import re
import urllib.parse

import pytest

from lib_train_tools.results.outcomes import read_outcomes
from lib_train_tools.ui import preview_actions, publish_actions
from lib_train_tools.ui import results_actions as actions
from lib_train_tools.ui.replies import NO_CHANGE
from lib_train_tools.ui.selection import selection_key
from lib_train_tools.ui.wiring import run_handler

from .completed_run import ACTIVATION, PROJECT, RUN, VERSION

SELECTION = selection_key(PROJECT, VERSION)
VIEW_GROUPS = (actions.RUN_VIEW, preview_actions.FORM, preview_actions.EPOCHS, preview_actions.SHOWN,
               publish_actions.FORM)


def named(values: tuple, *groups) -> dict:
    names = [name for group in groups for name in group]
    assert len(values) == len(names)
    return dict(zip(names, values, strict=True))


def test_version_view_lists_the_run_with_settings_checkpoints_and_outcomes(results_services, completed):
    view = named(actions.version_view(results_services, SELECTION).values, *VIEW_GROUPS)
    assert view["run"].get("choices") == [RUN] and view["run"].get("value") == RUN
    assert "completed" in view["runs"] and RUN in view["runs"]
    summary = view["summary"]
    for fact in ("tiny-sd1.safetensors", "network_dim", "learning_rate", "0.05", "max_train_epochs", "8 / 8"):
        assert fact in summary
    # the run's finishing hooks published it and rendered the epoch grid: the page says so
    assert "Published as" in summary and f"<b>{PROJECT}-{VERSION}</b>" in summary and "automatically" in summary

    table = view["checkpoints"]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert len(rows) == 2 and "epoch 1" in rows[0] and "final (epoch 2)" in rows[1]
    assert ">4<" in rows[0] and ">8<" in rows[1]  # steps
    for row, name in zip(rows, (f"{RUN}-000001.safetensors", f"{RUN}.safetensors"), strict=True):
        size = (completed.run_dir / name).stat().st_size
        assert f"{size / 1024:.1f} KB" in row or f"{size / 2**20:.1f} MB" in row
        link = re.search(r'href="(file=[^"]+)"', row).group(1)
        assert urllib.parse.unquote(link[len("file="):]) == str((completed.run_dir / name).resolve())

    samples = sorted(p.stem for p in (completed.run_dir / "sample").iterdir())
    assert [caption for _path, caption in view["samples"]] == samples and len(samples) == 2
    assert view["epochs"].get("value") == [f"{RUN}-000001.safetensors", f"{RUN}.safetensors"]


def test_preview_form_is_filled_from_the_sample_prompt_and_shows_the_grid_of_the_run_end(results_services):
    view = named(actions.version_view(results_services, SELECTION).values, *VIEW_GROUPS)
    assert (view["prompt"], view["steps"], view["seeds"], view["width"], view["height"]) == \
        ("mychar, red square", 2, "5", 64, 64)
    assert view["weights"] == "0, 0.5, 1" and view["sampler"] in preview_actions.SAMPLER_CHOICES
    earlier = view["earlier"]
    assert len(earlier.get("choices")) == 1 and earlier.get("value").endswith(preview_actions.AUTO_MARK)
    assert view["grid"].endswith("grid.png") and len(view["cells"]) == 2
    assert [caption.split(" · ")[:2] for _p, caption in view["cells"]] == [["epoch 1", "weight 1"],
                                                                           ["epoch 2", "weight 1"]]


def test_publish_form_defaults_to_a_free_name_the_activation_tag_and_a_weight_1_cell(results_services, completed):
    view = named(actions.version_view(results_services, SELECTION).values, *VIEW_GROUPS)
    assert view["checkpoint"].get("value") == f"{RUN}.safetensors"
    assert view["name"] == f"{PROJECT}-{VERSION}-2"  # auto-publish took the plain name
    assert view["activation"] == ACTIVATION and view["weight"] == 1.0
    assert "run 'テスト-v1' (epoch 2, 8 steps)" in view["notes"]
    picture = view["image"].get("value")
    assert picture.startswith("preview/") and "_w1_" in picture
    assert view["image_view"] == str(completed.run_dir / picture)
    assert view["overwrite"].get("visible") is False and view["pending"] == ""


def test_another_checkpoint_gets_its_notes_and_picture(results_services):
    notes, picture, view = actions.publish_checkpoint_changed(results_services, SELECTION, RUN,
                                                              f"{RUN}-000001.safetensors").values
    assert "(epoch 1, 4 steps)" in notes
    assert "_e000001_w1_" in picture.get("value") and view.endswith(".png")


def test_no_version_and_a_vanished_run(results_services, completed):
    empty = named(actions.version_view(results_services, "").values, *VIEW_GROUPS)
    assert "Choose or create a project" in empty["runs"] and empty["run"].get("choices") == []
    assert empty["checkpoint"].get("choices") == []
    status, *_rest = run_handler(lambda: actions.run_view(results_services, SELECTION, "gone"), (),
                                 len(actions.RUN_VIEW) + 1 + len(preview_actions.SHOWN) + len(publish_actions.FORM))
    assert "not there any more" in status and "tt-error" in status
    refreshed = named(actions.refresh(results_services, SELECTION, "gone").values, actions.RUN_VIEW,
                      preview_actions.EPOCHS, preview_actions.SHOWN, publish_actions.FORM)
    assert refreshed["run"].get("value") == RUN  # falls back to the newest run


def test_a_failed_run_shows_why(results_services, completed):
    import json

    job_file = completed.run_dir / "job.json"
    job = json.loads(job_file.read_text(encoding="utf-8"))
    job_file.write_text(json.dumps(dict(job, status="failed", message="CUDA out of memory", hint="lower the batch")),
                        encoding="utf-8")
    view = named(actions.run_view(results_services, SELECTION, RUN).values, actions.RUN_VIEW, preview_actions.EPOCHS,
                 preview_actions.SHOWN, publish_actions.FORM)
    assert "failed" in view["summary"] and "CUDA out of memory (lower the batch)" in view["summary"]


@pytest.mark.parametrize("text, message", [("", "at least one"), ("0, x", "'x' is not"), ("1, nan", "finite")])
def test_bad_weights_are_refused_with_a_message(text, message):
    with pytest.raises(ValueError, match=message):
        preview_actions.parse_numbers(text, "weight", float)


def test_outcomes_record_reads_back(completed):
    outcomes = read_outcomes(completed.run_dir)
    assert [p.name for p in outcomes.published] == [f"{PROJECT}-{VERSION}"] and outcomes.published[0].auto
    assert len(outcomes.auto_previews) == 1 and outcomes.problems == []


def test_refresh_keeps_what_the_user_chose_and_lists_new_files(results_services, completed):
    groups = (actions.RUN_VIEW, preview_actions.EPOCHS, preview_actions.SHOWN, publish_actions.FORM)
    first = f"{RUN}-000001.safetensors"
    shown = named(actions.refresh(results_services, SELECTION, RUN).values, *groups)["folder"]
    (completed.run_dir / f"{RUN}-000002.safetensors").write_bytes((completed.run_dir / first).read_bytes())
    view = named(actions.refresh(results_services, SELECTION, RUN, [first], shown, first).values, *groups)
    assert view["epochs"].get("choices") == [first, f"{RUN}-000002.safetensors", f"{RUN}.safetensors"]
    assert view["epochs"].get("value") == [first] and view["folder"] == shown
    assert view["checkpoint"].get("value") == first and len(view["checkpoint"].get("choices")) == 3
    assert all(view[name] is NO_CHANGE for name in publish_actions.FORM[1:])  # the typed name, notes... stay

    (completed.run_dir / first).unlink()  # pruned meanwhile: the form is made again for the final file
    view = named(actions.refresh(results_services, SELECTION, RUN, [first], shown, first).values, *groups)
    assert view["epochs"].get("value") == [f"{RUN}-000002.safetensors", f"{RUN}.safetensors"]
    assert view["checkpoint"].get("value") == f"{RUN}.safetensors" and view["name"] == f"{PROJECT}-{VERSION}-2"
