"""Write PyTorch legacy-format ``.pth`` state dicts without torch, for the reader's tests.

The file is built exactly as ``torch.save(state, f, _use_new_zipfile_serialization=False)`` lays it out: three
header pickles, the state dict pickled with persistent storage ids and the globals torch would name
(``torch._utils._rebuild_tensor_v2``, ``torch.FloatStorage``), the storage key list, then each storage's
element count and raw data. Those globals are resolved through stand-in modules registered in
``sys.modules`` only while pickling.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage"}


@contextmanager
def _stand_in_torch() -> Iterator[types.SimpleNamespace]:
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:  # never called: only named in the pickle
        raise AssertionError("stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    for name in STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch", "__qualname__": name}))
    saved = {key: sys.modules.get(key) for key in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield types.SimpleNamespace(torch=torch, rebuild=_rebuild_tensor_v2)
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


class _Storage:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, data


def write_legacy_pth(path: Path, tensors: dict[str, Any], *, transpose: tuple[str, ...] = ()) -> Path:
    """Save ``tensors`` (NumPy arrays, or any picklable object to plant) as a legacy ``.pth`` file.

    Names in ``transpose`` are stored as a non-contiguous view (storage in transposed order, strides
    swapped), as torch does for a transposed tensor, so the reader's stride handling is exercised.
    """
    storages: list[_Storage] = []
    with _stand_in_torch() as fake:

        class Writer(pickle.Pickler):
            def persistent_id(self, obj: Any) -> Any:
                if isinstance(obj, _Storage):
                    kind = getattr(fake.torch, STORAGE_NAMES[obj.data.dtype])
                    return ("storage", kind, obj.key, "cpu", obj.data.size, None)
                return None

        def tensor(name: str, array: np.ndarray) -> Any:
            array = np.asarray(array, order="C")  # (ascontiguousarray would make a 0-d tensor 1-d)
            if name in transpose and array.ndim == 2:
                flat = np.ascontiguousarray(array.T).ravel()
                stride = (1, array.shape[0])
            else:
                flat, stride = array.ravel(), tuple(int(s // array.itemsize) for s in array.strides)
            storage = _Storage(str(1000 + len(storages)), flat)
            storages.append(storage)
            return _Reduced(fake.rebuild, (storage, 0, array.shape, stride, False, collections.OrderedDict()))

        state = collections.OrderedDict(
            (name, tensor(name, value) if isinstance(value, np.ndarray) else value) for name, value in tensors.items()
        )
        buffer = io.BytesIO()
        for header in (MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, buffer, protocol=2)
        Writer(buffer, protocol=2).dump(state)
    pickle.dump([s.key for s in storages], buffer, protocol=2)
    for storage in storages:
        buffer.write(struct.pack("<q", storage.data.size))
        buffer.write(storage.data.astype(storage.data.dtype.newbyteorder("<")).tobytes())
    Path(path).write_bytes(buffer.getvalue())
    return Path(path)


class _Reduced:
    """Pickles as ``func(*args)``: how torch pickles a tensor."""

    def __init__(self, func: Any, args: tuple):
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return self.func, self.args
