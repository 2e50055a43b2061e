"""The standalone app: ``python -m lib_train_tools`` serves the Train Tools tab on this computer.

    python -m lib_train_tools [--host 127.0.0.1] [--port 7870] [--output DIR] [--checkpoints DIR]
                              [--lora-dir DIR] [--taggers DIR] [--api-auth USER:PASSWORD[,...]] [--demo]

``--output`` holds projects, jobs and presets; ``--checkpoints`` is searched (recursively) for
base models; ``--lora-dir`` receives published LoRA files. ``--demo`` first writes a tiny
generated base model, a small dataset and a CPU preset under ``demo_output/`` and prints what to
click. The page loads the extension's ``style.css`` and ``javascript/*.js`` as the WebUI does.

The same server answers the HTTP API the WebUI has, under ``/train-tools/v1`` (so a machine
without a WebUI can be driven over HTTP). ``--api-auth`` takes credentials in the WebUI's syntax
and the API then asks for them (HTTP Basic); without it the API is open, like the page.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api.auth import AuthPolicy

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the extension's folder
DEFAULT_PORT = 7870
DEMO_FOLDER = Path("demo_output")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lib_train_tools", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: this computer only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for projects, jobs and presets (default train_tools_output, "
                             "or demo_output/train_tools with --demo)")
    parser.add_argument("--checkpoints", type=Path, default=None,
                        help="folder searched for base models (default <output>/checkpoints, "
                             "or demo_output/checkpoints with --demo)")
    parser.add_argument("--lora-dir", type=Path, default=None, help="where Publish copies LoRA files "
                        "(default <output>/lora)")
    parser.add_argument("--taggers", type=Path, default=None, help="folder of WD14 tagger folders "
                        "(default <output>/taggers)")
    parser.add_argument("--api-auth", type=api_credentials, default=None, metavar="USER:PASSWORD[,USER:PASSWORD]",
                        help="credentials the HTTP API asks for (HTTP Basic), as the WebUI's --api-auth "
                             "(default: the API is open, like the page)")
    parser.add_argument("--demo", action="store_true", help="prepare a tiny model and dataset first")
    return parser.parse_args(argv)


def api_credentials(text: str) -> dict[str, str]:
    """``--api-auth``'s value (``user:password[,user:password]``) as {user: password}."""
    from .api.auth import split_credentials

    credentials = {user: password for user, password in split_credentials(text) if user}
    if not credentials:
        raise argparse.ArgumentTypeError(f"expected user:password[,user:password], got {text!r}")
    return credentials


def page_assets() -> tuple[str, str]:
    """The extension's CSS and JavaScript, as the WebUI would inject them."""
    css_file = PACKAGE_ROOT / "style.css"
    css = css_file.read_text(encoding="utf-8") if css_file.is_file() else ""
    scripts = sorted((PACKAGE_ROOT / "javascript").glob("*.js"))
    js = "\n".join(p.read_text(encoding="utf-8") for p in scripts)
    return css, js


def localhost_without_proxy() -> None:
    """gradio checks its own URL after starting; a proxy from the environment must not see it."""
    hosts = ["127.0.0.1", "localhost", "::1"]
    for key in ("NO_PROXY", "no_proxy"):
        present = [h for h in os.environ.get(key, "").split(",") if h.strip()]
        os.environ[key] = ",".join(present + [h for h in hosts if h not in present])


def build_app(args: argparse.Namespace):
    """(services, Blocks, demo files or None) for the parsed arguments; nothing is served yet."""
    from .host.standalone import StandaloneHost
    from .services import create_services
    from .ui import compat
    from .ui.app import build_ui

    output = args.output or (DEMO_FOLDER / "train_tools" if args.demo else Path("train_tools_output"))
    checkpoints = args.checkpoints or (DEMO_FOLDER / "checkpoints" if args.demo else output / "checkpoints")
    demo_files = None
    if args.demo:
        from .demo_files import prepare_demo

        demo_files = prepare_demo(checkpoints, DEMO_FOLDER / "dataset", output)
    checkpoints.mkdir(parents=True, exist_ok=True)
    host = StandaloneHost(output, checkpoints, args.lora_dir, taggers_dir=args.taggers)
    services = create_services(host)
    blocks = build_ui(services)
    css, js = page_assets()
    compat.add_page_assets(blocks, css, js)
    compat.enable_queue(blocks)
    return services, blocks, demo_files


def serve_api(app: Any, services: Any, credentials: dict[str, str] | None) -> AuthPolicy:
    """Mount the HTTP API on ``app`` (the FastAPI app gradio serves), guarded by ``credentials``."""
    from .api.auth import AuthPolicy
    from .api.mount import mount_api

    policy = AuthPolicy(credentials=dict(credentials or {}))
    mount_api(app, services, policy)
    return policy


def api_url(page_url: str) -> str:
    """The API's root address on the server of ``page_url``."""
    from .api import API_PREFIX

    return page_url.rstrip("/") + API_PREFIX + "/"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    localhost_without_proxy()
    services, blocks, demo_files = build_app(args)
    from .ui import compat

    try:
        launched = blocks.launch(**compat.launch_kwargs(args.host, args.port, [services.output_root]))
        url = f"http://{args.host}:{args.port}/"
        policy = serve_api(compat.served_app(blocks, launched), services, args.api_auth)
        print(f"[train tools] serving {url} (output folder {services.output_root}); Ctrl-C stops", flush=True)
        access = "credentials required (--api-auth)" if policy.required else "open"
        print(f"[train tools] HTTP API {api_url(url)} ({access})", flush=True)
        if demo_files is not None:
            from .demo_files import instructions

            print(instructions(demo_files, url, services.host.lora_dir()), flush=True)
        blocks.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        services.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
