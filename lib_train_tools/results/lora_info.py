"""What the Results panel and the WebUI's Lora card need from a LoRA file, read from its header only.

A ``.safetensors`` file starts with an 8-byte little-endian header length and a JSON header whose
``__metadata__`` entry is the str->str metadata the trainer wrote (kohya's ``ss_*`` keys and
ModelSpec). Reading it costs a few kilobytes, never a tensor. The SD version follows the WebUI's
rules (``ss_base_model_version`` ``sdxl_...`` -> SDXL, ``ss_v2`` -> SD2, other metadata -> SD1),
with the ModelSpec architecture as Forge reads it; the tags are the most common ones of
``ss_tag_frequency`` summed over the dataset folders, as the card's "Training dataset tags" shows.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, overload

SD_VERSIONS = ("SD1", "SD2", "SDXL", "Unknown")
MAX_HEADER_BYTES = 100 * 1024 * 1024   # safetensors' own limit
TOP_TAGS = 24                           # as many as the WebUI's card shows


class LoraInfoError(ValueError):
    """A file whose safetensors header cannot be read; the message names the file."""


@dataclass(frozen=True)
class LoraInfo:
    """The card-relevant facts of one LoRA file."""

    sd_version: str                       # SD1, SD2, SDXL or Unknown
    base_model_version: str | None        # ss_base_model_version as written ("sd_v1", "sdxl_base_v1-0")
    network_dim: int | None
    network_alpha: float | None
    epoch: int | None                     # ss_epoch
    steps: int | None                     # ss_steps
    output_name: str | None               # ss_output_name
    top_tags: tuple[tuple[str, int], ...]  # most common training tags, most frequent first
    metadata: Mapping[str, str]           # the whole header metadata


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` dict of a ``.safetensors`` file (empty when it has none)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise LoraInfoError(f"{path}: too short to be a .safetensors file")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise LoraInfoError(f"{path}: header of {length} bytes; not a .safetensors file")
            text = handle.read(length)
    except OSError as exc:
        raise LoraInfoError(f"{path}: cannot read ({exc})") from exc
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoraInfoError(f"{path}: the header is not valid JSON ({exc}); the file is damaged") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict):
        return {}
    return {str(k): str(v) for k, v in metadata.items()}


def read_lora_info(path: str | os.PathLike) -> LoraInfo:
    """The card facts of the LoRA at ``path`` (header only)."""
    metadata = read_metadata(path)
    return LoraInfo(
        sd_version=sd_version(metadata),
        base_model_version=metadata.get("ss_base_model_version"),
        network_dim=_number(metadata.get("ss_network_dim"), int),
        network_alpha=_number(metadata.get("ss_network_alpha"), float),
        epoch=_number(metadata.get("ss_epoch"), int),
        steps=_number(metadata.get("ss_steps"), int),
        output_name=metadata.get("ss_output_name"),
        top_tags=top_tags(metadata),
        metadata=metadata,
    )


def sd_version(metadata: Mapping[str, str]) -> str:
    """SD1, SD2, SDXL or Unknown, as the WebUI (A1111 and Forge) decides it for a Lora card."""
    architecture = metadata.get("modelspec.architecture", "")
    base = metadata.get("ss_base_model_version", "")
    if base.startswith("sdxl_") or architecture.startswith("stable-diffusion-xl"):
        return "SDXL"
    if metadata.get("ss_v2") == "True" or base.startswith("sd_v2") or architecture.startswith("stable-diffusion-v2"):
        return "SD2"
    if metadata:
        return "SD1"
    return "Unknown"


def top_tags(metadata: Mapping[str, str], limit: int = TOP_TAGS) -> tuple[tuple[str, int], ...]:
    """The ``limit`` most common tags of ``ss_tag_frequency`` (``{folder: {tag: count}}``), summed."""
    try:
        frequency = json.loads(metadata.get("ss_tag_frequency") or "{}")
    except json.JSONDecodeError:
        return ()
    counts: Counter[str] = Counter()
    if isinstance(frequency, dict):
        for tags in frequency.values():
            if isinstance(tags, dict):
                for tag, count in tags.items():
                    if isinstance(count, (int, float)) and str(tag).strip():
                        counts[str(tag).strip()] += int(count)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(ordered[:limit])


@overload
def _number(text: str | None, kind: type[int]) -> int | None: ...
@overload
def _number(text: str | None, kind: type[float]) -> float | None: ...
def _number(text: str | None, kind: type) -> int | float | None:
    """``text`` as ``kind``; None for "None", empty or unparsable values (sd-scripts writes "None")."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return int(value) if kind is int else value
