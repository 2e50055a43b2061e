"""The runs that *Begin train* would queue for a version's settings, shown live under the form.

One run without grid values; with several values of grid options, one run per combination,
each named from the values that differ (``テスト-v1-lr-0_0005-op-Lion``), as the queue will name
them (a name already used by an earlier run gets ``-2``, ``-3``, ...).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from ..jobs.grid import GridError
from ..jobs.grid_settings import grid_axes, settings_runs
from ..jobs.run_names import base_run_name, fit_run_name, free_run_name
from ..projects.layout import VersionPaths

MAX_LISTED = 12


def planned_names(version: VersionPaths, settings: Mapping[str, Any]) -> list[str]:
    """The run names *Begin train* would use now (GridError when grid values are invalid)."""
    base = base_run_name(version.project, version.name)
    taken: list[str] = []
    for run in settings_runs(settings):
        taken.append(free_run_name(version.trains, fit_run_name(base, run.suffix), taken))
    return taken


def runs_html(version: VersionPaths, settings: Mapping[str, Any]) -> str:
    """'4 runs will be queued (2 learning_rate × 2 optimizer_type): ...' or why the grid is invalid."""
    try:
        names = planned_names(version, settings)
        axes = grid_axes(settings)
    except GridError as exc:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in exc.problems)
        return f'<div class="tt-report-refused"><b>Grid values cannot be used</b><ul>{items}</ul></div>'
    several = [f"{len(v)} {name}" for name, v in axes.items() if len(v) > 1]
    why = f" ({' × '.join(several)})" if several else ""
    head = f"1 run will be queued: {names[0]}" if len(names) == 1 else \
        f"{len(names)} runs will be queued{why}:"
    if len(names) == 1:
        return f'<p class="tt-runs" data-runs="1">{html.escape(head)}</p>'
    listed = "".join(f"<li>{html.escape(n)}</li>" for n in names[:MAX_LISTED])
    more = f"<li>… and {len(names) - MAX_LISTED} more</li>" if len(names) > MAX_LISTED else ""
    return f'<div class="tt-runs" data-runs="{len(names)}"><b>{html.escape(head)}</b><ul>{listed}{more}</ul></div>'
