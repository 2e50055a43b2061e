"""Reading tensors out of single-file checkpoints (``.safetensors`` and ``.ckpt``) without copies.

A ``TensorFile`` answers three questions cheaply: which keys are there, what shape each has, and
(only when asked) the tensor itself cast to the working dtype. For ``.safetensors`` the shapes come
from the header and each tensor is fetched with one positioned read when asked for, so detecting the
architecture reads no weights and loading reads each weight once. ``.ckpt`` files go through
``torch.load(weights_only=True)`` (memory-mapped when the file is in the zip format), so a pickle
can never run code.

Every failure becomes a ``CheckpointError`` that names the file and says what is wrong; a damaged
file ("truncated or corrupt ... download it again") is told apart from a pickle refused for the
Python objects it would build ("contains Python objects besides tensors (<global>) ... convert it").
"""

from __future__ import annotations

import abc
import io
import json
import os
import pickletools
import re
import zipfile
from pathlib import Path
from typing import cast

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
                                  f"cannot read tensor '{key}': the file is truncated or corrupt ({e}); "
                                  "download it again") from e
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


class _Backend(abc.ABC):
    @abc.abstractmethod
    def keys(self) -> list[str]: ...
    @abc.abstractmethod
    def shape(self, key: str) -> tuple[int, ...]: ...
    @abc.abstractmethod
    def metadata(self) -> dict[str, str]: ...
    @abc.abstractmethod
    def tensor(self, key: str) -> torch.Tensor: ...
    @abc.abstractmethod
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
            raise CheckpointError(path, f"not a valid safetensors file: it is truncated or corrupt ({e}); "
                                        "download it again") from e
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
            raise CheckpointError(self.path, f"cannot read tensor '{key}': the file is truncated; download it again")
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
    except Exception as e:  # the unpickler fails in many ways on damaged bytes
        raise load_failure(path, e) from e


def load_failure(path: str, error: BaseException) -> CheckpointError:
    """Tell a pickle refused for the objects it would build apart from a damaged file.

    Torch's text differs between versions (2.1/2.3: ``Unsupported class posix.system``; 2.4 and
    later: ``Unsupported global: GLOBAL posix.system`` or ``unsupported GLOBAL posix.system``), and
    every version says ``weights_only`` for random bytes as well. So a refusal counts only when
    torch names the global, or when the file's pickle reads cleanly (opcodes only, nothing runs)
    and imports something that is not part of torch.
    """
    refused = _named_global(str(error)) or _foreign_global(path)
    if refused:
        return CheckpointError(path, f"the file contains Python objects besides tensors ({refused}) and cannot be "
                                     "loaded safely; convert it to .safetensors")
    return CheckpointError(path, f"not a valid checkpoint: it is truncated or corrupt ({_short_reason(error)}); "
                                 "download it again")


_REFUSED_GLOBAL = re.compile(r"unsupported (?:global: )?(?:global|class) ([A-Za-z_][\w.]*)", re.IGNORECASE)
# What torch.save itself writes besides torch's own globals (protocol 2 stores bytes via _codecs.encode).
_PLAIN_GLOBALS = {"collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset",
                  "builtins.bytearray", "builtins.complex", "builtins.slice"}
_MAX_PICKLES = 5  # the legacy format holds five pickles (magic, version, sys info, object, storage keys)
_MAX_PICKLE_BYTES = 256 * 2**20
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


def _named_global(text: str) -> str | None:
    match = _REFUSED_GLOBAL.search(text)
    return match.group(1).rstrip(".") if match else None


def _foreign_global(path: str) -> str | None:
    """The first non-torch global of the file's (complete) pickles; None when there is none or they are damaged."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if len(names) != 1 or archive.getinfo(names[0]).file_size > _MAX_PICKLE_BYTES:
                    return None
                return _first_foreign(io.BytesIO(archive.read(names[0])), 1)
        with open(path, "rb") as f:
            if f.read(2) == b"PK":  # a zip that cannot be opened: damaged, whatever its pickle holds
                return None
            f.seek(0)
            return _first_foreign(f, _MAX_PICKLES)
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, EOFError):
        return None


def _first_foreign(stream, count: int) -> str | None:
    for _ in range(count):
        found = pickle_globals(stream)
        if found is None:
            return None
        foreign = [g for g in found if not g.startswith("torch.") and g not in _PLAIN_GLOBALS]
        if foreign:
            return foreign[0]
    return None


def pickle_globals(stream) -> list[str] | None:
    """``module.name`` of every global one pickle imports, read with ``pickletools`` (nothing is executed).

    None when the bytes are not one complete, consistent pickle (random data, a cut-off file):
    ``pickletools.dis`` checks the stack and memo use up to STOP first. The stream ends up after STOP.
    """
    found: list[str] = []
    strings: list[str] = []
    memo: dict[int, object] = {}
    last: object = None
    try:
        start = stream.tell()
        pickletools.dis(stream, out=io.StringIO())
        end = stream.tell()
        stream.seek(start)
        for op, arg, _ in pickletools.genops(stream):
            name = op.name
            if name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif name == "STACK_GLOBAL":
                found.append(".".join(strings[-2:]) if len(strings) >= 2 else "<unknown global>")
            if name in _STRING_OPS:
                last = arg
                strings.append(str(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[cast(int, arg)] = last   # the memo index of these opcodes is an int
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                last = memo.get(cast(int, arg))
                if isinstance(last, str):
                    strings.append(last)
            elif name != "FRAME":
                last = None
            if name == "STOP":
                stream.seek(end)
                return found
    except Exception:  # noqa: BLE001 - pickletools raises ValueError and others on bytes that are not a pickle
        return None
    return None


def _short_reason(error: BaseException) -> str:
    """Torch's own words for a failure, without its paragraphs about weights_only."""
    text = str(error)
    marker = text.find("WeightsUnpickler error:")
    if marker >= 0:
        text = text[marker + len("WeightsUnpickler error:"):]
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line and isinstance(error, EOFError):
        line = "the file ends too early"
    line = line.split(". ")[0].rstrip(".")
    if type(error).__name__ not in ("RuntimeError", "UnpicklingError") or not line:
        line = f"{type(error).__name__}: {line}" if line else type(error).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _unwrap_state_dict(path: str, obj: object) -> dict[str, torch.Tensor]:
    """LDM training checkpoints nest the weights under ``state_dict``; keep tensors only."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(path, f"the file holds a {type(obj).__name__}, not a dictionary of tensors")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
