"""Hashes that kohya-style LoRA files carry, and the base-model hashes recorded in their metadata.

Four digests, all SHA-256:
* the full file (`ss_new_sd_model_hash` of the base model);
* the old A1111 "model hash": the 64 KiB at offset 1 MiB, first 8 hex digits (`ss_sd_model_hash`);
* the "addnet" hash of a safetensors file: everything after the 8-byte header length and the JSON
  header, i.e. the tensor data only (`sshs_model_hash`, which A1111 takes as the LoRA's hash);
* the legacy hash of a serialisation (`sshs_legacy_hash`), same window as the old A1111 hash.

Because the addnet hash leaves the header out, it can be computed before saving, on an in-memory
serialisation with fewer metadata keys, and still equal the hash of the file written afterwards.
"""

from __future__ import annotations

import hashlib
import os
import struct
from typing import BinaryIO, Mapping

import torch
from safetensors.torch import save

DEFAULT_CHUNK = 1 << 20
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
LEGACY_DIGITS = 8
HEADER_LENGTH_BYTES = 8
TRAINING_KEY_PREFIX = "ss_"
SSHS_MODEL_HASH = "sshs_model_hash"
SSHS_LEGACY_HASH = "sshs_legacy_hash"


class ModelHashError(ValueError):
    """A file or byte string is not a safetensors serialisation that can be hashed."""


def _sha256_of_stream(stream: BinaryIO, chunk: int) -> str:
    digest = hashlib.sha256()
    while True:
        block = stream.read(chunk)
        if not block:
            return digest.hexdigest()
        digest.update(block)


def _check_chunk(chunk: int) -> None:
    if chunk <= 0:
        raise ValueError(f"hash chunk size must be positive, got {chunk}")


def file_sha256(path: str | os.PathLike, chunk: int = DEFAULT_CHUNK) -> str:
    """Full SHA-256 of the file at `path` (64 hex digits), read `chunk` bytes at a time."""
    _check_chunk(chunk)
    with open(path, "rb") as stream:
        return _sha256_of_stream(stream, chunk)


def legacy_hash_of_bytes(data: bytes) -> str:
    """First 8 hex digits of SHA-256 over the 64 KiB window at offset 1 MiB (shorter data: what is there)."""
    window = data[LEGACY_OFFSET:LEGACY_OFFSET + LEGACY_LENGTH]
    return hashlib.sha256(window).hexdigest()[:LEGACY_DIGITS]


def a1111_legacy_hash(path: str | os.PathLike) -> str:
    """The old A1111 model hash of a file: `legacy_hash_of_bytes` over its bytes, read from disk."""
    with open(path, "rb") as stream:
        stream.seek(LEGACY_OFFSET)
        return hashlib.sha256(stream.read(LEGACY_LENGTH)).hexdigest()[:LEGACY_DIGITS]


def _data_offset(header_length_bytes: bytes, total_size: int, what: str) -> int:
    """Where the tensor data starts, after the length field and the JSON header."""
    if len(header_length_bytes) < HEADER_LENGTH_BYTES:
        raise ModelHashError(f"{what}: {total_size} bytes is too short for a safetensors header")
    (header_length,) = struct.unpack("<Q", header_length_bytes[:HEADER_LENGTH_BYTES])
    offset = HEADER_LENGTH_BYTES + header_length
    if offset > total_size:
        raise ModelHashError(f"{what}: header length {header_length} runs past the end of the data "
                             f"({total_size} bytes); not a safetensors file")
    return offset


def safetensors_data_sha256(data: bytes) -> str:
    """SHA-256 of the tensor-data section of an in-memory safetensors serialisation."""
    offset = _data_offset(data[:HEADER_LENGTH_BYTES], len(data), "safetensors data")
    return hashlib.sha256(memoryview(data)[offset:]).hexdigest()


def safetensors_file_data_sha256(path: str | os.PathLike, chunk: int = DEFAULT_CHUNK) -> str:
    """SHA-256 of the tensor-data section of the safetensors file at `path` (its `sshs_model_hash`)."""
    _check_chunk(chunk)
    with open(path, "rb") as stream:
        offset = _data_offset(stream.read(HEADER_LENGTH_BYTES), os.fstat(stream.fileno()).st_size,
                              os.fspath(path))
        stream.seek(offset)
        return _sha256_of_stream(stream, chunk)


def add_sshs_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> dict[str, str]:
    """`metadata` plus `sshs_model_hash` and `sshs_legacy_hash`, computed as kohya does.

    The tensors are serialised in memory with only the `ss_*` keys as metadata; the model hash then
    matches the file written later with the full metadata, since only the header differs.
    """
    training_keys = {k: v for k, v in metadata.items() if k.startswith(TRAINING_KEY_PREFIX)}
    data = save(dict(tensors), metadata=training_keys)
    result = dict(metadata)
    result[SSHS_MODEL_HASH] = safetensors_data_sha256(data)
    result[SSHS_LEGACY_HASH] = legacy_hash_of_bytes(data)
    return result


def base_model_hashes(path: str | os.PathLike) -> tuple[str, str] | None:
    """(old A1111 hash, full SHA-256) of a single-file base model; None for a Diffusers folder.

    Reading a multi-gigabyte checkpoint takes seconds, so callers that skip the hashes pass None
    to the metadata builder instead.
    """
    if os.path.isdir(path):
        return None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"base model {os.fspath(path)!r} does not exist; cannot hash it")
    return a1111_legacy_hash(path), file_sha256(path)
