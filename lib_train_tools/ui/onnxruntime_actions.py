"""The Auto-tag box's onnxruntime note and its "Install onnxruntime" button (plain handlers, no gradio).

WD14 taggers run on onnxruntime, which Train Tools never requires. When it cannot be imported the
box says so, which package the button would install and why (``host.onnxruntime_install``
chooses), and the command to run by hand; the button runs the constrained pip install with
progress, in the queue, so the rest of the page stays usable. Output group: ``NOTE`` (the note's
HTML, the button's visibility).
"""

from __future__ import annotations

import html
from collections.abc import Callable

from ..datasets import onnxruntime_install as ort
from .replies import Reply, Update, ok, warning

ProgressFn = Callable[[int, int, str], None]


def onnxruntime_note(services) -> tuple[str, Update]:
    """The note's HTML (empty when onnxruntime imports) and the install button's visibility."""
    if ort.onnxruntime_importable():
        return "", Update.of(visible=False)
    python = services.host.python_executable()
    choice = ort.choose_package(ort.torch_cuda())
    text = (f"WD14 taggers need onnxruntime, which is not installed in this Python. “Install onnxruntime” "
            f"installs {choice.requirement} ({choice.reason}) without changing any installed package; "
            f"or run:")
    command = ort.manual_command(python, choice.requirement)
    note = (f'<p class="tt-onnxruntime-note">{html.escape(text)} '
            f"<code>{html.escape(command)}</code></p>")
    return note, Update.of(visible=True)


def install_onnxruntime(services, progress: ProgressFn | None = None) -> Reply:
    """Install onnxruntime (or onnxruntime-gpu) as the note says; afterwards the taggers work without
    a restart. Raises with pip's last lines and the manual command when pip refuses."""
    if ort.onnxruntime_importable():
        return Reply(ok("onnxruntime is installed already"), onnxruntime_note(services))
    python = services.host.python_executable()
    outcome = ort.install_onnxruntime(python, progress)
    requirement = outcome.choice.requirement
    if not outcome.succeeded:
        command = ort.manual_command(python, requirement)
        raise RuntimeError(
            f"pip could not install {requirement} without changing an installed package (or could not reach "
            f"the package index). pip said: {outcome.output_tail[-1200:]} — to install by hand: {command}")
    if not outcome.importable:
        text = (f"pip installed {requirement}, but this process still cannot import onnxruntime; "
                "restart Train Tools (or the WebUI) to use the WD14 taggers")
        return Reply(warning(text), onnxruntime_note(services))
    return Reply(ok(f"{requirement} is installed: the WD14 taggers work now, no restart needed"),
                 onnxruntime_note(services))
