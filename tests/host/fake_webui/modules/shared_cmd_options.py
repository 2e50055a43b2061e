"""Fake of modules/shared_cmd_options.py: the parsed flags (the same object as shared.cmd_opts)."""

from modules.shared import cmd_opts  # noqa: F401
