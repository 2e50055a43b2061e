"""Tests for lib_train_tools/train/model_hashes.py: file, legacy and safetensors-data hashes."""

from __future__ import annotations

import hashlib
import struct

import pytest
import torch
from safetensors.torch import save, save_file

from lib_train_tools.train.model_hashes import (
    ModelHashError,
    a1111_legacy_hash,
    add_sshs_hashes,
    base_model_hashes,
    file_sha256,
    legacy_hash_of_bytes,
    safetensors_data_sha256,
    safetensors_file_data_sha256,
)

SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA256_EMPTY_PREFIX = "e3b0c442"
# sha256 of the data section of SMALL_TENSORS, recorded once; any change in how the data
# section is laid out or hashed changes it.
SMALL_TENSORS_DATA_SHA256 = "fde7188159ead430b07a5562e9c9e06e23ba1b2834d8fdf6956df4e36ef47ffb"


def small_tensors() -> dict[str, torch.Tensor]:
    return {
        "lora_unet_a.lora_down.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
        "lora_unet_a.lora_up.weight": torch.arange(6, dtype=torch.float16).reshape(2, 3),
        "lora_unet_a.alpha": torch.tensor(4.0),
    }


def big_tensors() -> dict[str, torch.Tensor]:
    """Over 1 MiB + 64 KiB of data, so the legacy window lies inside the tensor data."""
    generator = torch.Generator().manual_seed(0)
    return {
        "lora_unet_b.lora_down.weight": torch.randn(8, 40000, generator=generator),
        "lora_unet_b.lora_up.weight": torch.randn(40000, 8, generator=generator).half(),
        "lora_unet_b.alpha": torch.tensor(8.0),
    }


def data_section_sha256(path) -> str:
    """Independent reading of the safetensors layout: u64 header length, header, data."""
    raw = path.read_bytes()
    (header_length,) = struct.unpack("<Q", raw[:8])
    return hashlib.sha256(raw[8 + header_length:]).hexdigest()


def windowed_bytes(window: bytes) -> bytes:
    return b"\x00" * 0x100000 + window + b"\xff" * 100


def test_file_sha256_of_known_content_any_chunk(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == SHA256_ABC
    assert file_sha256(str(path), chunk=1) == SHA256_ABC
    with pytest.raises(ValueError, match="chunk"):
        file_sha256(path, chunk=0)


def test_legacy_hash_reads_64k_at_1mib(tmp_path):
    window = bytes(range(256)) * 256
    data = windowed_bytes(window)
    expected = hashlib.sha256(window).hexdigest()[:8]
    assert legacy_hash_of_bytes(data) == expected
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    assert a1111_legacy_hash(path) == expected
    # Bytes outside the window do not count; bytes inside do.
    assert legacy_hash_of_bytes(b"\x01" + data[1:]) == expected
    changed = data[:0x100000] + b"\x01" + data[0x100001:]
    assert legacy_hash_of_bytes(changed) != expected


def test_legacy_hash_of_small_file_hashes_nothing(tmp_path):
    path = tmp_path / "small.bin"
    path.write_bytes(b"x" * 1000)
    assert a1111_legacy_hash(path) == SHA256_EMPTY_PREFIX
    assert legacy_hash_of_bytes(b"x" * 1000) == SHA256_EMPTY_PREFIX


def test_data_hash_is_stable_and_ignores_metadata():
    first = safetensors_data_sha256(save(small_tensors(), metadata={"ss_a": "1"}))
    second = safetensors_data_sha256(save(small_tensors(), metadata={"ss_a": "2", "other": "x" * 500}))
    assert first == second == SMALL_TENSORS_DATA_SHA256


def test_sshs_model_hash_matches_the_file_written_with_full_metadata(tmp_path):
    tensors = big_tensors()
    metadata = {"ss_network_dim": "8", "ss_tag_frequency": '{"1_a": {"a": 1}}',
                "modelspec.title": "x", "tt_config": '{"network_dim": 8}'}
    hashed = add_sshs_hashes(tensors, metadata)
    assert {k: hashed[k] for k in metadata} == metadata
    assert "sshs_model_hash" not in metadata
    path = tmp_path / "lora.safetensors"
    save_file(tensors, str(path), metadata=hashed)
    assert hashed["sshs_model_hash"] == data_section_sha256(path)
    assert safetensors_file_data_sha256(path, chunk=4096) == hashed["sshs_model_hash"]
    ss_only = save(tensors, metadata={"ss_network_dim": "8", "ss_tag_frequency": '{"1_a": {"a": 1}}'})
    assert hashed["sshs_legacy_hash"] == hashlib.sha256(ss_only[0x100000:0x110000]).hexdigest()[:8]


def test_sshs_hashes_do_not_depend_on_non_training_keys():
    base = {"ss_network_dim": "8"}
    plain = add_sshs_hashes(big_tensors(), base)
    extra = add_sshs_hashes(big_tensors(), {**base, "modelspec.title": "other", "tt_config": "{}"})
    assert (plain["sshs_model_hash"], plain["sshs_legacy_hash"]) == \
        (extra["sshs_model_hash"], extra["sshs_legacy_hash"])
    changed = add_sshs_hashes({**big_tensors(), "lora_unet_b.alpha": torch.tensor(4.0)}, base)
    assert changed["sshs_model_hash"] != plain["sshs_model_hash"]


def test_truncated_or_foreign_data_is_refused(tmp_path):
    with pytest.raises(ModelHashError, match="too short"):
        safetensors_data_sha256(b"\x01\x02")
    bogus = struct.pack("<Q", 10_000) + b"{}"
    with pytest.raises(ModelHashError, match="runs past the end"):
        safetensors_data_sha256(bogus)
    path = tmp_path / "not_safetensors.bin"
    path.write_bytes(bogus)
    with pytest.raises(ModelHashError, match="not_safetensors.bin"):
        safetensors_file_data_sha256(path)


def test_base_model_hashes_for_file_folder_and_missing(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"abc")
    assert base_model_hashes(path) == (SHA256_EMPTY_PREFIX, SHA256_ABC)
    assert base_model_hashes(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        base_model_hashes(tmp_path / "missing.safetensors")
