"""Handlers of the Results tab's run picker: which runs a version has and what one of them holds.

Plain functions (no gradio). A view of one run is, in this order: ``RUN_VIEW`` (the run picker,
the runs table, the run's summary, its checkpoints table, its sample images), then the preview
outputs (``preview_actions.EPOCHS`` and ``SHOWN``) and the publish form (``publish_actions.FORM``).
Choosing a version also fills the preview form (``preview_actions.FORM``) from its settings;
choosing another run of the same version leaves what the user typed there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..projects import load_settings
from ..projects.layout import VersionPaths
from ..results.outcomes import read_outcomes
from ..results.runs import RunInfo, list_runs, read_run
from . import preview_actions, publish_actions
from . import results_report as report
from .replies import NO_CHANGE, Reply, choices
from .selection import parse_selection, require_version

RUN_VIEW = ("run", "runs", "summary", "checkpoints", "samples")
NO_VERSION = "<p>Choose or create a project and a version.</p>"
ProgressFn = Callable[[int, int, str], None]


def find_run(services, selection: str | None, run_name: str | None) -> tuple[VersionPaths, RunInfo]:
    """The chosen version and run; a clear error when either is missing."""
    version = require_version(services, selection)
    if not run_name:
        raise ValueError("choose a training run first (the version has none yet: train one in the Train tab)")
    run_dir = version.trains / run_name
    if Path(run_name).name != run_name or not run_dir.is_dir():
        raise ValueError(f"the run {run_name!r} is not there any more: press refresh to list the runs")
    return version, read_run(run_dir)


def version_view(services, selection: str | None) -> Reply:
    """Everything the tab shows for a newly chosen version (its newest run)."""
    if not parse_selection(selection):
        return Reply(None, _run_values(None, [], None) + preview_actions.form_values(None, None)
                     + _run_tail(services, None, None))
    version = require_version(services, selection)
    runs = list_runs(version)
    run = runs[0] if runs else None
    return Reply(None, _run_values(version, runs, run) + preview_actions.form_values(load_settings(version), run)
                 + _run_tail(services, version, run))


def run_view(services, selection: str | None, run_name: str | None) -> Reply:
    """The chosen run (the preview form keeps what was typed)."""
    version, run = find_run(services, selection, run_name)
    return Reply(None, _run_values(version, list_runs(version), run) + _run_tail(services, version, run))


def refresh(services, selection: str | None, run_name: str | None, epochs: list[str] | None = None,
            folder: str | None = None, checkpoint: str | None = None) -> Reply:
    """Read the runs again (a run may have finished or saved another epoch). The chosen run stays
    when it is still there, and so do the ticked epochs, the shown grid and the publish form
    (only the list of its files is updated); otherwise the newest run is shown afresh."""
    if not parse_selection(selection):
        return Reply(None, _run_values(None, [], None) + _run_tail(services, None, None))
    version = require_version(services, selection)
    runs = list_runs(version)
    run = next((r for r in runs if r.name == run_name), None)
    if run is None:
        run = runs[0] if runs else None
        return Reply(None, _run_values(version, runs, run) + _run_tail(services, version, run))
    tail = ((preview_actions.epoch_choices(run, epochs),) + preview_actions.shown_values(run, folder)
            + publish_actions.refreshed(services, version, run, checkpoint))
    return Reply(None, _run_values(version, runs, run) + tail)


def _run_values(version: VersionPaths | None, runs: list[RunInfo], run: RunInfo | None) -> tuple:
    if version is None:
        return choices([], None), NO_VERSION, "", "", []
    outcomes = read_outcomes(run.dir) if run is not None else None
    chosen = run.name if run else None
    return (choices([r.name for r in runs], chosen), report.runs_html(runs, chosen), report.summary_html(run, outcomes),
            report.checkpoints_html(run), sample_gallery(run))


def _run_tail(services, version: VersionPaths | None, run: RunInfo | None) -> tuple:
    return (preview_actions.epoch_choices(run),) + preview_actions.shown_values(run, None) \
        + publish_actions.form_values(services, version, run)


def sample_gallery(run: RunInfo | None) -> list:
    """The run's sample images (newest last) with their file names as captions."""
    if run is None:
        return []
    return [(str(p), p.stem) for p in run.samples]


# ----- the preview and publish events, each for the chosen run -----

def render_grid(services, selection: str | None, run_name: str | None, *form: Any,
                progress: ProgressFn | None = None) -> Reply:
    """Render the preview (``preview_actions.FORM`` values, the chosen epochs, then the publish
    form's checkpoint); ``SHOWN`` and the publish form's picture, now defaulting to the new grid."""
    *request_form, publish_checkpoint = form
    _version, run = find_run(services, selection, run_name)
    reply, _result = preview_actions.render(services, run, request_form, progress)
    run = read_run(run.dir)
    picture = publish_actions.picture_values(run, publish_checkpoint) if _has_file(run, publish_checkpoint) \
        else (NO_CHANGE, NO_CHANGE)
    return Reply(reply.notice, reply.values + picture)


def show_earlier(services, selection: str | None, run_name: str | None, label: str | None) -> Reply:
    _version, run = find_run(services, selection, run_name)
    return preview_actions.show_earlier(run, label)


def pick_cell(services, selection: str | None, run_name: str | None, checkpoint: str | None, folder: str | None,
              index: Any, _value: Any = None) -> Reply:
    _version, run = find_run(services, selection, run_name)
    return publish_actions.pick_cell(run, checkpoint, folder, index)


def publish_checkpoint_changed(services, selection: str | None, run_name: str | None, checkpoint: str | None) -> Reply:
    version, run = find_run(services, selection, run_name)
    return publish_actions.checkpoint_changed(version, run, checkpoint)


def show_picture(services, selection: str | None, run_name: str | None, picture: str | None) -> Reply:
    _version, run = find_run(services, selection, run_name)
    return publish_actions.show_picture(run, picture)


def publish(services, selection: str | None, run_name: str | None, *form: Any, confirmed: str | None = None,
            pending: str | None = None) -> Reply:
    """Publish (``publish_actions.CONFIRM`` values, then the run's summary)."""
    version, run = find_run(services, selection, run_name)
    return publish_actions.publish_run(services, version, run, *form, confirmed=confirmed, pending=pending)


def _has_file(run: RunInfo, name: str | None) -> bool:
    return any(c.path.name == name for c in run.all_checkpoints)
