"""Reading tensors out of single-file checkpoints (``.safetensors`` and ``.ckpt``) without copies.

A ``TensorFile`` answers three questions cheaply: which keys are there, what shape each has, and
(only when asked) the tensor itself cast to the working dtype. For ``.safetensors`` the shapes come
from the header and each tensor is fetched with one positioned read when asked for, so detecting the
architecture reads no weights and loading reads each weight once. ``.ckpt`` files go through
``torch.load(weights_only=True)``
(memory-mapped when the file is in the zip format), so a pickle can never run code.

Every failure becomes a ``CheckpointError`` that names the file and says what is wrong.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class CheckpointError(Exception):
    """A checkpoint file cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason} ({self.path})")


class TensorFile:
    """Keys, shapes and lazily read tensors of one checkpoint file."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise CheckpointError(path, "file not found")
        if os.path.getsize(self.path) == 0:
            raise CheckpointError(path, "the file is empty (0 bytes); it was probably not downloaded completely")
        suffix = Path(self.path).suffix.lower()
        if suffix in SAFETENSORS_SUFFIXES:
            self._backend: _Backend = _SafetensorsBackend(self.path)
        elif suffix in TORCH_SUFFIXES:
            self._backend = _TorchBackend(self.path)
        else:
            raise CheckpointError(path, f"unsupported file type '{suffix}'; use a .safetensors or .ckpt checkpoint")

    def keys(self) -> list[str]:
        return self._backend.keys()

    def shape(self, key: str) -> tuple[int, ...]:
        return self._backend.shape(key)

    def metadata(self) -> dict[str, str]:
        return self._backend.metadata()

    def tensor(self, key: str, dtype: torch.dtype | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
        """One tensor, cast to ``dtype`` (floating tensors only) and moved to ``device``."""
        try:
            t = self._backend.tensor(key)
        except CheckpointError:
            raise
        except Exception as e:  # a truncated data section shows up only when a tensor is read
            raise CheckpointError(self.path,
                                  f"cannot read tensor '{key}': the file is truncated or corrupt ({e})") from e
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        return t.to(device)

    def tensors(self, prefix: str, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
                skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
        """All tensors under ``prefix`` with the prefix stripped, skipping keys that end with ``skip``."""
        out = {}
        for key in self.keys():
            if key.startswith(prefix) and not key.endswith(skip):
                out[key[len(prefix):]] = self.tensor(key, dtype, device)
        return out

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> TensorFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Backend:
    def keys(self) -> list[str]: ...
    def shape(self, key: str) -> tuple[int, ...]: ...
    def metadata(self) -> dict[str, str]: ...
    def tensor(self, key: str) -> torch.Tensor: ...
    def close(self) -> None: ...


class _SafetensorsBackend(_Backend):
    """Reads the header once, then each tensor with one positioned read into a fresh buffer.

    Plain reads (not a memory map) keep the file's pages out of the process's resident memory:
    the cast copy is all that stays, so peak memory is one copy of the weights, not two.
    """

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "rb")
        try:
            self._header, self._data_start = _read_safetensors_header(self._file, os.path.getsize(path))
        except ValueError as e:
            self._file.close()
            raise CheckpointError(path, f"not a valid safetensors file: it is truncated or corrupt ({e})") from e
        self._meta = self._header.pop("__metadata__", None) or {}

    def keys(self) -> list[str]:
        return list(self._header)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._header[key]["shape"])

    def metadata(self) -> dict[str, str]:
        return dict(self._meta)

    def tensor(self, key: str) -> torch.Tensor:
        entry = self._header[key]
        dtype = SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise CheckpointError(self.path, f"tensor '{key}' has unsupported dtype {entry['dtype']}")
        start, end = entry["data_offsets"]
        buf = bytearray(end - start)
        if buf and os.preadv(self._file.fileno(), [buf], self._data_start + start) != len(buf):
            raise CheckpointError(self.path, f"cannot read tensor '{key}': the file is truncated")
        if not buf:
            return torch.empty(entry["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(entry["shape"])

    def close(self) -> None:
        self._file.close()


SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
MAX_HEADER_BYTES = 100 * 2**20


def _read_safetensors_header(f, file_size: int) -> tuple[dict, int]:
    """The JSON header and where the data section starts; ValueError when the layout is impossible."""
    raw = f.read(8)
    if len(raw) != 8:
        raise ValueError("file shorter than the 8-byte header length")
    n = int.from_bytes(raw, "little")
    if n <= 0 or n > MAX_HEADER_BYTES or 8 + n > file_size:
        raise ValueError(f"header length {n} does not fit a {file_size}-byte file")
    try:
        header = json.loads(f.read(n))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    data_size = file_size - 8 - n
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not _is_tensor_entry(entry):
            raise ValueError(f"the header entry of tensor '{key}' is damaged")
        start, end = entry["data_offsets"]
        if not (0 <= start <= end <= data_size):
            raise ValueError(f"tensor '{key}' lies beyond the end of the file (truncated download?)")
    return header, 8 + n


def _is_tensor_entry(entry: object) -> bool:
    """``{"dtype": str, "shape": [int, ...], "data_offsets": [int, int]}``, as the format requires."""
    def ints(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                               for v in value)

    return (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and ints(entry.get("shape"))
            and ints(entry.get("data_offsets")) and len(entry["data_offsets"]) == 2)


class _TorchBackend(_Backend):
    def __init__(self, path: str):
        self.path = path
        self._state = _unwrap_state_dict(path, _torch_load(path))

    def keys(self) -> list[str]:
        return list(self._state)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._state[key].shape)

    def metadata(self) -> dict[str, str]:
        return {}

    def tensor(self, key: str) -> torch.Tensor:
        return self._state[key]

    def close(self) -> None:
        self._state = {}


def _torch_load(path: str) -> object:
    """``torch.load`` restricted to tensors and plain containers; memory-mapped for zip files."""
    mmap = zipfile.is_zipfile(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise CheckpointError(path, "the file contains Python objects besides tensors and cannot be "
                                        "loaded safely; convert it to .safetensors") from e
        raise CheckpointError(path, f"not a valid checkpoint: it is truncated or corrupt ({e})") from e
    except Exception as e:  # the unpickler fails in many ways on damaged bytes
        raise CheckpointError(path, f"not a valid checkpoint: it is truncated or corrupt ({e})") from e


def _unwrap_state_dict(path: str, obj: object) -> dict[str, torch.Tensor]:
    """LDM training checkpoints nest the weights under ``state_dict``; keep tensors only."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"the file holds a {type(obj).__name__}, not a dictionary of tensors")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
