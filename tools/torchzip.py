"""torchzip.py - read PyTorch's zip checkpoints (torch.save since PyTorch 1.6)
with numpy only, and write safetensors; no PyTorch needed.

The pickle inside the zip is read by an allow-list unpickler (what
torch.load(weights_only=True) allows: OrderedDict, the tensor and parameter
rebuilders, storage types, dtypes); anything else is refused, never run.
Tensors come back as numpy arrays; bf16 (which numpy lacks) as uint16 bit
patterns, with the safetensors dtype name beside them, so they are written
back bit for bit. Old non-zip pickles (PyTorch < 1.6) need PyTorch:
load() says so.
"""
import collections
import io
import json
import pickle
import struct
import zipfile

import numpy as np


class Refused(Exception):
    """The file is not a checkpoint this reader takes (the message says why)."""


class Tensor:
    """A tensor of a checkpoint: a numpy array and its safetensors dtype."""

    def __init__(self, array, st_dtype):
        self.array, self.st_dtype = array, st_dtype

    @property
    def shape(self):
        return tuple(self.array.shape)


# storage type name -> (safetensors dtype, numpy dtype of the raw elements)
_STORAGES = {
    "FloatStorage": ("F32", np.float32), "DoubleStorage": ("F64", np.float64),
    "HalfStorage": ("F16", np.float16), "BFloat16Storage": ("BF16", np.uint16),
    "LongStorage": ("I64", np.int64), "IntStorage": ("I32", np.int32),
    "ShortStorage": ("I16", np.int16), "CharStorage": ("I8", np.int8),
    "ByteStorage": ("U8", np.uint8), "BoolStorage": ("BOOL", np.bool_),
}
# torch dtype name -> the same (torch.bfloat16 in _rebuild_tensor_v3 and UntypedStorage files)
_DTYPES = {"float32": "FloatStorage", "float": "FloatStorage", "float64": "DoubleStorage",
           "double": "DoubleStorage", "float16": "HalfStorage", "half": "HalfStorage",
           "bfloat16": "BFloat16Storage", "int64": "LongStorage", "long": "LongStorage",
           "int32": "IntStorage", "int": "IntStorage", "int16": "ShortStorage",
           "int8": "CharStorage", "uint8": "ByteStorage", "bool": "BoolStorage"}


class _StorageType:
    def __init__(self, name):
        self.name = name


class _DType:
    def __init__(self, name):
        self.storage = _DTYPES[name]


class _Storage:
    def __init__(self, raw, kind):
        self.raw, self.kind = raw, kind  # kind: a _STORAGES key, or None (untyped bytes)

    def as_kind(self, kind):
        st, npdt = _STORAGES[kind]
        return np.frombuffer(self.raw, dtype=npdt), st


def _rebuild(storage, offset, size, stride, *rest, dtype_kind=None):
    kind = dtype_kind or storage.kind or "ByteStorage"
    flat, st = storage.as_kind(kind)
    size, stride = tuple(size), tuple(stride)
    if not size:
        return Tensor(flat[offset:offset + 1].reshape(()).copy(), st)
    if any(s == 0 for s in size):
        return Tensor(np.empty(size, dtype=flat.dtype), st)
    need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if need > flat.size:
        raise Refused(f"a tensor reads past its storage ({need} > {flat.size} elements): the "
                      f"file is corrupt")
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size,
                                           strides=[s * flat.itemsize for s in stride])
    return Tensor(np.ascontiguousarray(view), st)


def _rebuild_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return _rebuild(storage, offset, size, stride)


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    return _rebuild(storage, offset, size, stride, dtype_kind=dtype.storage)


def _rebuild_parameter(data, *rest):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf, prefix, label):
        super().__init__(f, encoding="utf-8")
        self.zf, self.prefix, self.label = zf, prefix, label

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        if module == "torch" and name == "UntypedStorage":
            return _StorageType(None)
        if module == "torch" and name in _DTYPES:
            return _DType(name)
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_v2
        if (module, name) == ("torch._utils", "_rebuild_tensor_v3"):
            return _rebuild_v3
        if (module, name) in (("torch._utils", "_rebuild_parameter"),
                              ("torch._utils", "_rebuild_parameter_with_state")):
            return _rebuild_parameter
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("builtins", "set"):
            return set
        raise Refused(f"'{self.label}': the pickle refers to {module}.{name}, which a weights "
                      f"file should not need; refusing to run it")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel)
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise Refused(f"'{self.label}': unexpected persistent id {pid!r}")
        st, key = pid[1], pid[2]
        kind = st.name if isinstance(st, _StorageType) else st.storage if isinstance(st, _DType) \
            else None
        return _Storage(self.zf.read(f"{self.prefix}/data/{key}"), kind)


def load(path):
    """The object torch.save wrote (dicts of Tensor), read without PyTorch."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] != b"PK":
        if magic[:1] == b"\x80":
            raise Refused(f"'{path}' is a pre-1.6 PyTorch pickle (not a zip archive); reading it "
                          f"needs PyTorch: run with a python3 that has torch (e.g. Debian's "
                          f"/usr/bin/python3 with python3-torch), or re-save it with torch.save")
        raise Refused(f"'{path}' is not a PyTorch checkpoint (neither a torch.save zip archive "
                      f"nor a pickle)")
    try:
        with zipfile.ZipFile(path) as zf:
            pkls = [n for n in zf.namelist() if n.endswith("/data.pkl")]
            if len(pkls) != 1:
                raise Refused(f"'{path}': a zip file without exactly one */data.pkl: not a "
                              f"torch.save checkpoint")
            prefix = pkls[0][: -len("/data.pkl")]
            bo = f"{prefix}/byteorder"
            if bo in zf.namelist() and zf.read(bo).strip() != b"little":
                raise Refused(f"'{path}': big-endian checkpoint; not supported")
            return _Unpickler(io.BytesIO(zf.read(pkls[0])), zf, prefix, path).load()
    except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, OSError) as e:
        raise Refused(f"'{path}' is truncated or corrupt ({e}); download it again") from None


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: Tensor}; written largest element first so every tensor is aligned."""
    items = sorted(tensors.items(), key=lambda it: -it[1].array.itemsize)
    header, off = {"__metadata__": dict(metadata or {})}, 0
    for name, t in items:
        n = t.array.nbytes
        header[name] = {"dtype": t.st_dtype, "shape": list(t.shape),
                        "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as fp:
        fp.write(struct.pack("<Q", len(h)))
        fp.write(h)
        for _, t in items:
            fp.write(np.ascontiguousarray(t.array).tobytes())
    return off
