"""Reading sd-scripts style training TOML files into flat key/value pairs, and writing TOML text.

sd-scripts lets keys sit at the top level or inside any tables (`[model_arguments]`,
`[training_arguments]`, ...) whose names carry no meaning; reading flattens them. Writing needs only
scalars and lists of strings, so a small emitter avoids a dependency (Python 3.10, which the WebUI
ships, has no `tomllib`; there the `toml` package is used for reading).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from .config_checks import ConfigError


def load_toml_text(text: str, source: str) -> dict[str, Any]:
    """Parse TOML text; ConfigError naming `source` and the parser's reason when it is not TOML."""
    try:
        import tomllib  # novm: Python 3.11+; 3.10 reads with the toml package below
    except ModuleNotFoundError:
        tomllib = None
    if tomllib is not None:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{source} is not valid TOML: {exc}"], source) from exc
    import toml  # type: ignore[import-untyped]  # no types-toml in the requirements; only Python 3.10 gets here

    try:
        return toml.loads(text)
    except toml.TomlDecodeError as exc:
        raise ConfigError([f"{source} is not valid TOML: {exc}"], source) from exc


def read_toml_file(path: str) -> dict[str, Any]:
    """Read a TOML file; sd-scripts allows leaving off the .toml extension, so that is tried too."""
    candidates = [path] if path.endswith(".toml") else [path, path + ".toml"]
    for candidate in candidates:
        try:
            with open(candidate, encoding="utf-8") as handle:
                return load_toml_text(handle.read(), candidate)
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([f"cannot read config file {candidate}: {exc}"], candidate) from exc
    raise ConfigError([f"config file {path} does not exist"], path)


def flatten_tables(doc: dict[str, Any], known: Iterable[str]) -> tuple[dict[str, Any], list[str]]:
    """Lift keys out of tables whose names are not option names; warn where two tables disagree."""
    known_names = set(known)
    flat: dict[str, Any] = {}
    origin: dict[str, str] = {}
    warnings: list[str] = []

    def visit(table: dict[str, Any], section: str) -> None:
        for key, value in table.items():
            if isinstance(value, dict) and key not in known_names:
                visit(value, f"{section}.{key}" if section else key)
                continue
            where = f"[{section}]" if section else "the top level"
            if key in flat and flat[key] != value:
                warnings.append(f"{key} is set in {origin[key]} and in {where}; using the value from {where}")
            flat[key] = value
            origin[key] = where

    visit(doc, "")
    return flat, warnings


def dumps_tables(tables: dict[str, dict[str, Any]], header: str = "") -> str:
    """TOML text with one table per entry; None values are left out (TOML has no null)."""
    lines = [f"# {line}" for line in header.splitlines()]
    for table, values in tables.items():
        present = {k: v for k, v in values.items() if v is not None}
        if not present:
            continue
        if lines:
            lines.append("")
        lines.append(f"[{table}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in present.items())
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """One scalar or list of scalars as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _toml_float(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, the rest as is."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    out = []
    for char in text:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    # TOML reads "1" as an integer; keep floats floats so a round trip preserves the type.
    return text if any(c in text for c in ".eE") else text + ".0"
