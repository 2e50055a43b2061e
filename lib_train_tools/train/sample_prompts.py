"""Reading the sample-prompt file (``sample_prompts`` option) in sd-scripts' three formats.

* ``.txt``: one prompt per line, ``#`` lines and blank lines skipped; settings follow the prompt as
  `` --flag value``: ``--n`` negative prompt, ``--w``/``--h`` size, ``--d`` seed, ``--s`` steps,
  ``--l`` CFG scale, ``--ss`` sampler.
* ``.toml``: a ``[prompt]`` table of defaults and ``[[prompt.subset]]`` entries.
* ``.json``: a list of objects.

TOML/JSON keys are sd-scripts': ``prompt``, ``negative_prompt``, ``width``, ``height``, ``seed``,
``sample_steps``, ``scale``, ``sample_sampler``. Sizes are rounded down to a multiple of 8 (at
least 64), steps clamped to 1..1000. Unknown flags or keys, and values that do not parse, become
warnings, never a crash; an unreadable file raises ``SamplePromptError``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

import toml  # type: ignore[import-untyped]  # types-toml is not in the requirements

DEFAULT_SIZE = 512
MIN_SIZE = 64
SIZE_MULTIPLE = 8
DEFAULT_STEPS = 30
MAX_STEPS = 1000
DEFAULT_CFG_SCALE = 7.5
# Flags sd-scripts reads for other model families (guidance, ControlNet, ...): accepted quietly.
_OTHER_FAMILY_FLAGS = ("g", "cn", "ctr", "rcfg", "fs")
_FLAG = re.compile(r"^([a-zA-Z]+)\s*(.*)$", re.DOTALL)
# Structured keys -> our field names (sd-scripts' names first, friendly aliases after).
_KEYS = {
    "prompt": "prompt", "negative_prompt": "negative_prompt", "width": "width", "height": "height",
    "seed": "seed", "sample_steps": "steps", "steps": "steps", "scale": "cfg_scale", "cfg_scale": "cfg_scale",
    "sample_sampler": "sampler", "sampler": "sampler",
}
_FLAGS = {"n": "negative_prompt", "w": "width", "h": "height", "d": "seed", "s": "steps", "l": "cfg_scale",
          "ss": "sampler"}
_CONVERTERS = {"width": int, "height": int, "seed": int, "steps": int, "cfg_scale": float,
               "prompt": str, "negative_prompt": str, "sampler": str}


class SamplePromptError(ValueError):
    """The prompt file cannot be read at all (missing, unknown format, broken syntax)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)


@dataclass(frozen=True)
class SamplePrompt:
    """One sample image to render. ``seed`` None: a fresh random seed each time; ``sampler`` None:
    the run's ``sample_sampler``."""

    prompt: str
    negative_prompt: str = ""
    width: int = DEFAULT_SIZE
    height: int = DEFAULT_SIZE
    seed: int | None = None
    steps: int = DEFAULT_STEPS
    cfg_scale: float = DEFAULT_CFG_SCALE
    sampler: str | None = None


@dataclass(frozen=True)
class PromptFile:
    """What a prompt file holds: the prompts, and warnings about what was ignored or adjusted."""

    prompts: tuple[SamplePrompt, ...]
    warnings: tuple[str, ...] = field(default_factory=tuple)


def round_size(value: int) -> int:
    """Round a side length down to a multiple of 8, at least 64 (as sd-scripts does)."""
    return max(MIN_SIZE, value - value % SIZE_MULTIPLE)


def load_sample_prompts(path: str | os.PathLike, default_width: int = DEFAULT_SIZE,
                        default_height: int = DEFAULT_SIZE) -> PromptFile:
    """Read a ``.txt``, ``.toml`` or ``.json`` prompt file; sizes default to the given training size."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in (".txt", ".toml", ".json"):
        raise SamplePromptError(path, f"unknown prompt file type {suffix!r}; use .txt, .toml or .json")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise SamplePromptError(path, f"cannot read the prompt file ({error})") from error
    base = SamplePrompt("", width=round_size(default_width), height=round_size(default_height))
    if suffix == ".txt":
        return _from_text(text, base)
    return _from_entries(_structured_entries(path, text, suffix), base)


def parse_prompt_line(line: str, base: SamplePrompt | None = None) -> tuple[SamplePrompt, list[str]]:
    """One ``.txt`` line -> (prompt, warnings). ``base`` supplies the defaults."""
    base = base or SamplePrompt("")
    parts = (" " + line).split(" --")      # the space lets a line start with a flag
    values: dict[str, Any] = {"prompt": parts[0].strip()}
    warnings = []
    for part in parts[1:]:
        match = _FLAG.match(part.strip())
        flag, value = (match.group(1).lower(), match.group(2).strip()) if match else (part.strip(), "")
        if flag in _FLAGS:
            values[_FLAGS[flag]] = value
        elif flag not in _OTHER_FAMILY_FLAGS:
            warnings.append(f"unknown flag --{flag} ignored")
    prompt, problems = _build(base, values, source="--")
    return prompt, warnings + problems


def _from_text(text: str, base: SamplePrompt) -> PromptFile:
    prompts, warnings = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        prompt, problems = parse_prompt_line(line, base)
        warnings += [f"line {number}: {problem}" for problem in problems]
        if prompt.prompt:
            prompts.append(prompt)
        else:
            warnings.append(f"line {number}: no prompt text before the flags; line skipped")
    return PromptFile(tuple(prompts), tuple(warnings))


def _structured_entries(path: str | os.PathLike, text: str, suffix: str) -> list[Any]:
    """The list of prompt entries of a TOML or JSON file, TOML subsets merged over ``[prompt]``."""
    try:
        data = toml.loads(text) if suffix == ".toml" else json.loads(text)
    except (toml.TomlDecodeError, json.JSONDecodeError) as error:
        raise SamplePromptError(path, f"not valid {suffix[1:].upper()}: {error}") from error
    if suffix == ".json":
        if not isinstance(data, list):
            raise SamplePromptError(path, "a JSON prompt file must hold a list of objects")
        return data
    table = data.get("prompt")
    if not isinstance(table, dict) or not isinstance(table.get("subset", []), list):
        raise SamplePromptError(path, "a TOML prompt file needs a [prompt] table with [[prompt.subset]] entries")
    defaults = {k: v for k, v in table.items() if k != "subset"}
    return [{**defaults, **entry} if isinstance(entry, dict) else entry for entry in table.get("subset", [])]


def _from_entries(entries: list[Any], base: SamplePrompt) -> PromptFile:
    prompts, warnings = [], []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            warnings.append(f"entry {number}: expected a table of settings, got {type(entry).__name__}; skipped")
            continue
        unknown = sorted(k for k in entry if k not in _KEYS)
        warnings += [f"entry {number}: unknown key {key!r} ignored" for key in unknown]
        values = {_KEYS[k]: v for k, v in entry.items() if k in _KEYS}
        prompt, problems = _build(base, values, source="")
        warnings += [f"entry {number}: {problem}" for problem in problems]
        if prompt.prompt.strip():
            prompts.append(prompt)
        else:
            warnings.append(f"entry {number}: no prompt; skipped")
    return PromptFile(tuple(prompts), tuple(warnings))


def _build(base: SamplePrompt, values: dict[str, Any], source: str) -> tuple[SamplePrompt, list[str]]:
    """Convert and range-check raw values over ``base``; a bad value is skipped with a warning."""
    flag_of = {name: flag for flag, name in _FLAGS.items()}
    changes, warnings = {}, []
    for name, raw in values.items():
        label = f"--{flag_of.get(name, name)}" if source == "--" else name
        try:
            value = _CONVERTERS[name](raw)
        except (TypeError, ValueError):
            warnings.append(f"{label} {raw!r} is not a valid {_CONVERTERS[name].__name__}; ignored")
            continue
        value, note = _adjust(name, value)
        if note:
            warnings.append(f"{label} {note}")
        changes[name] = value
    return replace(base, **changes), warnings


def _adjust(name: str, value: Any) -> tuple[Any, str | None]:
    if name in ("width", "height"):
        rounded = round_size(value)
        return rounded, (f"{value} rounded to {rounded} (a multiple of {SIZE_MULTIPLE}, at least {MIN_SIZE})"
                         if rounded != value else None)
    if name == "steps" and not 1 <= value <= MAX_STEPS:
        clamped = min(MAX_STEPS, max(1, value))
        return clamped, f"{value} is outside 1..{MAX_STEPS}; using {clamped}"
    if name == "sampler":
        return value.strip() or None, None
    return value, None
