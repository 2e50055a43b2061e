"""Tests for reading the card facts of a LoRA from its safetensors header."""

from __future__ import annotations

import json
import struct

import pytest

from lib_train_tools.results.lora_info import LoraInfoError, read_lora_info, read_metadata, sd_version, top_tags


def test_header_of_a_real_lora(lora_files) -> None:
    info = read_lora_info(lora_files["a"])
    assert info.sd_version == "SD1" and info.base_model_version == "sd_v1"
    assert (info.network_dim, info.network_alpha, info.epoch, info.steps) == (4, 2.0, 1, 8)
    assert info.output_name == "tiny"
    # summed over both folders: red 2 + 3
    assert info.top_tags == (("red", 5), ("demo", 4), ("cube", 1))


@pytest.mark.parametrize("metadata, expected", [
    ({"ss_base_model_version": "sdxl_base_v1-0"}, "SDXL"),
    ({"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}, "SDXL"),
    ({"ss_v2": "True", "ss_base_model_version": "sd_v2_v"}, "SD2"),
    ({"ss_base_model_version": "sd_v2"}, "SD2"),
    ({"ss_base_model_version": "sd_v1", "ss_v2": "False"}, "SD1"),
    ({"ss_output_name": "x"}, "SD1"),          # the WebUI: any other metadata means SD1
    ({}, "Unknown"),
])
def test_sd_version_follows_the_webui(metadata, expected) -> None:
    assert sd_version(metadata) == expected


def test_top_tags_limit_and_bad_values() -> None:
    frequency = {"a": {f"tag{i}": i for i in range(30)}, "b": {"tag29": 1, " ": 5, "odd": "x"}}
    tags = top_tags({"ss_tag_frequency": json.dumps(frequency)}, limit=3)
    assert tags == (("tag29", 30), ("tag28", 28), ("tag27", 27))
    assert top_tags({"ss_tag_frequency": "not json"}) == ()
    assert top_tags({}) == ()


def test_damaged_headers_raise_a_clear_error(tmp_path) -> None:
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    with pytest.raises(LoraInfoError, match="too short"):
        read_metadata(short)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(struct.pack("<Q", 5) + b"{nope")
    with pytest.raises(LoraInfoError, match="not valid JSON"):
        read_metadata(garbage)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 2 ** 40))
    with pytest.raises(LoraInfoError, match="header of"):
        read_metadata(huge)
    plain = tmp_path / "plain.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    plain.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    assert read_metadata(plain) == {} and read_lora_info(plain).sd_version == "Unknown"
