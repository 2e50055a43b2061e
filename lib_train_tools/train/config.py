"""The typed training config, built from the parameter registry, and its loaders.

`TrainConfig` is a frozen dataclass generated from `params.PARAMS` (``train_config.py``, written by
``tools/gen_train_config.py``), so the registry is the only place an option is declared. Values
come from three layers, later ones winning: registry defaults, a TOML file (sd-scripts'
`--config_file` format: keys at the top level or in any tables), then explicit overrides
(command-line flags, or a dict from the UI). Unknown keys are named in the
returned warnings, never dropped silently; invalid values raise one `ConfigError` listing every
problem.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
from typing import Any, Iterable

from ..atomic import atomic_path
from .config_checks import ConfigError, config_problems, parse_resolution, validate
from .config_toml import dumps_tables, flatten_tables, read_toml_file
from .params import GROUPS, PARAMS, PARAMS_BY_NAME, Param, network_arg_params
from .train_config import TrainConfig

__all__ = [
    "ConfigError", "TrainConfig", "build_arg_parser", "coerce_value", "compatibility_notes",
    "load_config", "network_args_dict",
    "parse_cli", "parse_kv_args", "parse_resolution", "save_config", "to_dict", "to_toml", "validate",
]

_TRUE_WORDS = {"true", "yes", "on", "1"}
_FALSE_WORDS = {"false", "no", "off", "0"}
_UNSET_WORDS = {"none", "null", ""}
# sd-scripts' networks.lora also takes neuron dropout as network_args "dropout=..."
_NETWORK_ARG_ALIASES = {"dropout": "network_dropout"}
_TOML_HEADER = "Train Tools training config; sd-scripts reads it too (tables are only for grouping)."


def _check_generated_class() -> None:
    """`TrainConfig` must have the registry's fields and defaults; regenerate it when it does not."""
    fields = [(f.name, f.default) for f in dataclasses.fields(TrainConfig)]
    if fields != [(p.name, p.default) for p in PARAMS]:
        raise RuntimeError("train_config.py does not match the parameter registry: run "
                          "python3 tools/gen_train_config.py")


_check_generated_class()


def load_config(toml_path: str | None = None, overrides: dict | None = None) -> tuple[TrainConfig, list[str]]:
    """Defaults, then the TOML file (if any), then `overrides`; returns (config, warnings)."""
    return _load(toml_path, overrides, "overrides")


def parse_cli(argv: list[str]) -> tuple[TrainConfig, list[str]]:
    """Command line: `--config run.toml` (or `--config_file`) first, then `--name value` flags."""
    parser = build_arg_parser()
    namespace, extra = parser.parse_known_args(argv)
    given = vars(namespace)
    toml_path = given.pop("config_file", None)
    cfg, warnings = _load(toml_path, given, "command line")
    if extra:
        warnings.insert(0, f"command line: unknown arguments ignored: {' '.join(extra)}")
    return cfg, warnings


class _RaisingParser(argparse.ArgumentParser):
    """argparse exits the process on bad input; the trainer reports a ConfigError instead."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError([f"command line: {message}"])


def build_arg_parser() -> argparse.ArgumentParser:
    """An argparse parser with one flag per registry entry; only flags given appear in the result."""
    parser = _RaisingParser(
        prog="python -m lib_train_tools.train", allow_abbrev=False, argument_default=argparse.SUPPRESS,
        description="Train a LoRA. Options override the TOML file given with --config.",
    )
    parser.add_argument("--config", "--config_file", dest="config_file", metavar="TOML",
                        help="training config file (sd-scripts format)")
    for param in PARAMS:
        flag = f"--{param.name}"
        if param.type is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=_flag_help(param))
        elif param.is_list:
            parser.add_argument(flag, nargs="*", metavar="K=V", help=_flag_help(param))
        else:
            parser.add_argument(flag, metavar=param.type.__name__.upper(), help=_flag_help(param))
    return parser


def _flag_help(param: Param) -> str:
    text = param.help.replace("%", "%%")
    if param.choices:
        text += f" Choices: {', '.join(str(c) for c in param.choices)}."
    if param.default not in (None, (), ""):
        text += f" Default: {param.default}."
    return text


def _load(toml_path: str | None, overrides: dict | None, overrides_origin: str) -> tuple[TrainConfig, list[str]]:
    warnings: list[str] = []
    layers: list[tuple[str, dict]] = []
    if toml_path is not None:
        flat, flatten_warnings = flatten_tables(read_toml_file(toml_path), PARAMS_BY_NAME)
        warnings += [f"{toml_path}: {w}" for w in flatten_warnings]
        layers.append((toml_path, flat))
    if overrides:
        layers.append((overrides_origin, dict(overrides)))
    cfg, problems = _build(layers, warnings)
    if problems:
        raise ConfigError(problems, toml_path)
    warnings += compatibility_notes(cfg)
    return cfg, warnings


def _build(layers: list[tuple[str, dict]], warnings: list[str]) -> tuple[TrainConfig, list[str]]:
    """Merge the layers, convert each value to its registry type, then validate; collect problems."""
    problems: list[str] = []
    merged: dict[str, Any] = {}
    for origin, layer in layers:
        layer = _expand_network_args(layer, origin, problems, warnings)
        unknown = sorted(key for key in layer if key not in PARAMS_BY_NAME)
        if unknown:
            warnings.append(f"{origin}: unknown keys ignored: {', '.join(unknown)}")
        merged.update((k, v) for k, v in layer.items() if k in PARAMS_BY_NAME)
    values, failed = {}, set()
    for name, raw in merged.items():
        try:
            values[name] = coerce_value(PARAMS_BY_NAME[name], raw, warnings)
        except ValueError as exc:
            problems.append(str(exc))
            failed.add(name)
    cfg = TrainConfig(**values)
    return cfg, problems + config_problems(cfg, skip=failed)


def _expand_network_args(layer: dict, origin: str, problems: list[str], warnings: list[str]) -> dict:
    """Move network_args entries that have their own option (conv_dim=8, ...) into that option."""
    items = layer.get("network_args")
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, (list, tuple)):
        return layer
    targets = {key: p.name for key, p in network_arg_params().items()} | _NETWORK_ARG_ALIASES
    out, rest = dict(layer), []
    for item in items:
        key, _, raw = str(item).partition("=")
        name = targets.get(key.strip())
        if name is None:
            rest.append(item)
        elif name in layer and not _same_setting(layer[name], raw):
            problems.append(f"{origin}: {name} is set to {layer[name]!r} and network_args says {item!r}")
        else:
            out[name] = raw.strip()
    out["network_args"] = rest
    if rest and all(isinstance(item, str) for item in rest):
        warnings.append(f"{origin}: network_args not used by this trainer (kept in the LoRA metadata): "
                        f"{', '.join(rest)}")
    return out


def _same_setting(direct: Any, from_network_args: str) -> bool:
    try:
        return float(direct) == float(from_network_args)
    except (TypeError, ValueError):
        return str(direct).strip() == from_network_args.strip()


def coerce_value(param: Param, value: Any, warnings: list[str]) -> Any:
    """Convert a TOML or command-line value to the registry type; ValueError naming the option."""
    if isinstance(value, str) and value.strip().lower() in _UNSET_WORDS and param.optional:
        if param.type is not str or not value.strip():
            return None
    if value is None:
        if param.optional:
            return None
        raise ValueError(f"{param.name} must be set (it has no 'unset' value)")
    try:
        converted = _convert(param, param.normalise(value, warnings) if param.normalise else value)
    except (TypeError, ValueError):
        expected = "list of strings" if param.is_list else param.type.__name__
        raise ValueError(f"{param.name}: {value!r} is not a valid {expected}") from None
    if param.canonical is not None:
        converted = param.canonical(converted)
    return _canonical_choice(param, converted)


def _convert(param: Param, value: Any) -> Any:
    if param.is_list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or any(isinstance(v, (dict, list)) for v in items):
            raise TypeError(value)
        return tuple(str(v) for v in items)
    if isinstance(value, (list, tuple, dict)):
        raise TypeError(value)
    if param.type is bool:
        return _to_bool(value)
    if param.type is int:
        return _to_int(value)
    if param.type is float:
        if isinstance(value, bool):
            raise TypeError(value)
        return float(value)
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _canonical_choice(param: Param, value: Any) -> Any:
    """Choices match case-insensitively (sd-scripts' optimizer names do); store the registry spelling."""
    if param.choices and isinstance(value, str):
        for choice in param.choices:
            if isinstance(choice, str) and choice.lower() == value.lower():
                return choice
    return value


def compatibility_notes(cfg: TrainConfig) -> list[str]:
    """Warnings for options that are accepted but have no effect in this trainer."""
    notes = [p.note for p in PARAMS if p.note and getattr(cfg, p.name) != p.default]
    if cfg.dataset_config and (cfg.train_data_dir or cfg.reg_data_dir):
        notes.append("dataset_config is set, so train_data_dir and reg_data_dir are ignored")
    return notes


def parse_kv_args(items: Iterable[str], what: str = "arguments") -> dict[str, Any]:
    """Parse sd-scripts "key=value" strings; values become Python literals where they parse as one
    ("0.1" -> 0.1, "True" -> True, "0.9,0.99" -> (0.9, 0.99)) and stay strings otherwise."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what}: {item!r} is not key=value")
        parsed[key.strip()] = _literal(raw.strip())
    return parsed


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def network_args_dict(cfg: TrainConfig) -> dict[str, str]:
    """All network_args as sd-scripts records them (`ss_network_args`): key -> value string."""
    result = {}
    for item in cfg.network_args:
        key, _, raw = item.partition("=")
        result[key.strip()] = raw.strip()
    for key, param in network_arg_params().items():
        value = getattr(cfg, param.name)
        if value is not None:
            result[key] = str(value)
    return result


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain JSON-ready dict of every option (lists as lists, unset as None)."""
    return {p.name: list(v) if isinstance(v := getattr(cfg, p.name), tuple) else v for p in PARAMS}


def to_toml(cfg: TrainConfig, only_changed: bool = False) -> str:
    """TOML text that `load_config` (and sd-scripts) read back to the same config.

    Options sd-scripts passes inside network_args are written there; unset options are left out.
    """
    folded = [f"{key}={value}" for key, value in network_args_dict(cfg).items()]
    tables: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for param in PARAMS:
        if param.network_arg:
            continue
        value = tuple(folded) if param.name == "network_args" else getattr(cfg, param.name)
        if only_changed and value == param.default:
            continue
        tables[param.group][param.name] = list(value) if isinstance(value, tuple) else value
    return dumps_tables(tables, _TOML_HEADER)


def save_config(cfg: TrainConfig, path: str | os.PathLike) -> None:
    """Write `to_toml(cfg)` to `path` atomically (temporary file in the same folder, then rename);
    it gets the usual permissions of a new file (0o666 less the umask)."""
    text = to_toml(cfg)
    with atomic_path(path) as temp_path:
        with open(temp_path, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
