"""The standalone app: ``python -m lib_train_tools`` serves the Train Tools tab on this computer.

    python -m lib_train_tools [--host 127.0.0.1] [--port 7870] [--output DIR] [--checkpoints DIR]
                              [--lora-dir DIR] [--taggers DIR] [--demo]

``--output`` holds projects, jobs and presets; ``--checkpoints`` is searched (recursively) for
base models; ``--lora-dir`` receives published LoRA files. ``--demo`` first writes a tiny
generated base model, a small dataset and a CPU preset under ``demo_output/`` and prints what to
click. The page loads the extension's ``style.css`` and ``javascript/*.js`` as the WebUI does.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
    parser.add_argument("--demo", action="store_true", help="prepare a tiny model and dataset first")
    return parser.parse_args(argv)


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    localhost_without_proxy()
    services, blocks, demo_files = build_app(args)
    from .ui import compat

    try:
        blocks.launch(**compat.launch_kwargs(args.host, args.port, [services.output_root]))
        url = f"http://{args.host}:{args.port}/"
        print(f"[train tools] serving {url} (output folder {services.output_root}); Ctrl-C stops", flush=True)
        if demo_files is not None:
            from .demo_files import instructions

            print(instructions(demo_files, url), flush=True)
        blocks.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        services.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
