"""The standalone app with a gate on the Train form's reload, for the browser test of typing while it loads.

    python tests/ui/held_view_app.py HOLD_FILE [app arguments]

Each reload of the Train form (``train_actions.train_view``) reads the settings as usual, then,
while ``HOLD_FILE`` exists, waits before answering: the test holds the answer back, types into
a field, and lets it go, so the answer lands after the typing as a slow reload would. Each
answer adds ``view answered N`` to the architecture line so the test sees when it arrived.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

HOLD_LIMIT_S = 120


def hold_views(hold_file: Path) -> None:
    from lib_train_tools.ui import train_actions
    from lib_train_tools.ui.replies import Reply

    real_view = train_actions.train_view
    count = itertools.count(1)
    position = len(train_actions.form_fields()) + train_actions.VIEW_EXTRAS.index("architecture")

    def held_view(services, selection, shown=None):
        reply = real_view(services, selection, shown)
        deadline = time.monotonic() + HOLD_LIMIT_S
        while hold_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        values = list(reply.values)
        values[position] = f"{values[position]}<p>view answered {next(count)}</p>"
        return Reply(reply.notice, tuple(values))

    train_actions.train_view = held_view


def main(argv: list[str]) -> int:
    hold_views(Path(argv[0]))
    from lib_train_tools.app import main as app_main

    return app_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
