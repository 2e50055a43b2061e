"""Train Tools as a WebUI extension: what each WebUI callback does.

``scripts/train_tools.py`` (the file the WebUI runs) makes one ``TrainToolsExtension`` and
registers its methods with ``modules.script_callbacks``; the WebUI runs that file again on every
"Reload UI", so each load has its own object, and the previous one was told to let go first:

- ``on_ui_settings``: the "Train Tools" section of the Settings page.
- ``on_ui_tabs``: the tab ("Train Tools", elem id ``train_tools``) from ``ui.app.build_ui``. If the
  tab cannot be built, a tab that says why (and which packages are missing) is shown instead.
  None of its components are saved in ``ui-config.json``: the tab keeps its own per-version state.
- ``on_app_started``: the HTTP API under ``/train-tools/v1`` on the WebUI's app (also in API-only
  mode, where there is no tab), with the WebUI's authentication, when the WebUI's API is on.
- ``on_script_unloaded`` ("Reload UI"): the job queue's worker stops and releases the queue; a
  trainer that is running keeps running and the next load's queue follows it again. The queue's
  lock file makes sure no two workers ever run one queue.

The services (project store, job queue) are made once per load, by whichever of ``on_ui_tabs``
and ``on_app_started`` comes first.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING, Any, Callable, Optional

from .host.webui_requirements import Problem, find_problems, manual_command, to_install

if TYPE_CHECKING:
    from .contracts import Host
    from .services import Services

TAB_TITLE = "Train Tools"
TAB_ID = "train_tools"
LOG_PREFIX = "[Train Tools]"


def _default_host() -> Host:
    from .host.webui import WebUIHost

    return WebUIHost()


def _default_services(host: Host) -> Services:
    from .services import create_services

    return create_services(host, start_queue=False)


def _default_ui(services: Services) -> Any:
    from .ui.app import build_ui

    return build_ui(services)


class TrainToolsExtension:
    def __init__(self, host_factory: Callable[[], Host] = _default_host,
                 services_factory: Callable[[Host], Services] = _default_services,
                 ui_factory: Callable[[Services], Any] = _default_ui,
                 problems: Optional[list[Problem]] = None):
        self.host_factory = host_factory
        self.services_factory = services_factory
        self.ui_factory = ui_factory
        self.problems = find_problems() if problems is None else problems
        self.notices: list[str] = [p.describe() for p in self.problems]
        self._services: Optional[Services] = None
        self._unloaded = False

    # ----- services, made once per load -----
    def services(self) -> Services:
        if self._unloaded:
            raise RuntimeError("this Train Tools load was unloaded; the WebUI has loaded it again")
        if self._services is None:
            host = self.host_factory()
            cleared = host.clear_preview_staging()
            if cleared:
                say(f"removed {cleared} preview LoRA copies left by an earlier session")
            services = self.services_factory(host)
            self._start_queue(services)
            self._services = services
        return self._services

    def _start_queue(self, services: Services) -> None:
        try:
            services.queue.start()
        except Exception as exc:  # e.g. another WebUI runs the queue in the same output folder
            self.notices.append(f"jobs will not run in this WebUI: {exc}")
            say(f"the job queue did not start: {exc}")

    # ----- callbacks -----
    def on_ui_settings(self) -> None:
        from .host.webui_settings import register_settings

        register_settings()

    def on_ui_tabs(self) -> list:
        try:
            blocks = self.ui_factory(self.services())
            if self.notices:
                blocks = notice_tab(self.notices_markdown(), inner=blocks)
        except Exception as exc:
            say(f"the tab could not be built: {exc}")
            traceback.print_exc()
            blocks = notice_tab(self.notices_markdown(error=exc))
        keep_out_of_ui_config(blocks)
        return [(blocks, TAB_TITLE, TAB_ID)]

    def on_app_started(self, demo: Any, app: Any) -> None:
        from .host.webui import api_enabled
        from .host.webui_settings import register_settings, settings_registered

        if demo is None and not settings_registered():
            register_settings()  # API-only: no Settings page, but /sdapi/v1/options can set them
        if not api_enabled():
            say("the HTTP API /train-tools/v1 is off (start the WebUI with --api to use it)")
            return
        try:
            from .api.mount import mount_api
            from .host.webui_auth import webui_auth_policy

            policy = webui_auth_policy()
            mount_api(app, self.services(), policy)
            say(f"HTTP API at /train-tools/v1 ({'credentials required' if policy.required else 'open'})")
        except Exception as exc:
            say(f"the HTTP API could not be started: {exc}")
            traceback.print_exc()

    def on_script_unloaded(self) -> None:
        services, self._services, self._unloaded = self._services, None, True
        if services is None:
            return
        services.queue.shutdown(stop_running=False)  # a running trainer is followed again by the next load
        services.host.clear_preview_staging()

    # ----- messages -----
    def notices_markdown(self, error: Optional[BaseException] = None) -> str:
        lines = []
        if error is not None:
            lines.append(f"**Train Tools could not build its tab:** {type(error).__name__}: {error}")
        lines += [f"- {notice}" for notice in self.notices]
        installable = to_install(self.problems)
        if installable:
            lines.append("\nInstall what is missing (nothing the WebUI has is changed), then restart the WebUI:\n\n"
                         f"`{manual_command(sys.executable, installable)}`")
        return "\n".join(lines)


def notice_tab(markdown: str, inner: Any = None) -> Any:
    """A tab showing ``markdown`` above ``inner`` (a built tab), or alone."""
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as tab:
        gr.Markdown(markdown, elem_id="train_tools_notice")
        if inner is not None:
            inner.render()
    return tab


def keep_out_of_ui_config(blocks: Any) -> int:
    """Mark every component so the WebUI does not save or restore its value in ui-config.json."""
    marked = 0
    for block in list(getattr(blocks, "blocks", {}).values()):
        block.do_not_save_to_config = True
        marked += 1
    return marked


def say(message: str) -> None:
    print(f"{LOG_PREFIX} {message}")
