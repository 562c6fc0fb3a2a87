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

    # the few torch.Tensor methods the converter uses, with torch's meaning
    @property
    def dtype(self):
        """torch's name of the dtype ("float32", "bfloat16", ...)."""
        return _TORCH_NAMES[self.st_dtype]

    def dim(self):
        return self.array.ndim

    def numel(self):
        return int(self.array.size)

    def element_size(self):
        return self.array.itemsize

    def is_floating_point(self):
        return self.st_dtype in _FLOAT_ST

    def to_f32(self):
        """The values as a float32 array (exact for bf16 / f16; f64 rounded)."""
        if self.st_dtype == "BF16":
            return (self.array.astype(np.uint32) << 16).view(np.float32)
        return self.array.astype(np.float32)

    def cast(self, st_dtype):
        """A float tensor in "F32" / "BF16" / "F16" as torch's .to() rounds (to nearest even;
        f64 goes through f32 as c10's conversions do); other dtypes are returned as they are."""
        if not self.is_floating_point() or st_dtype == self.st_dtype:
            return self
        if st_dtype == "BF16":
            return Tensor(bf16_bits(self.to_f32()), "BF16")
        npdt = {"F32": np.float32, "F16": np.float16, "F64": np.float64}[st_dtype]
        src = self.to_f32() if self.st_dtype in ("BF16", "F64") else self.array
        return Tensor(src.astype(npdt), st_dtype)


_FLOAT_ST = ("F64", "F32", "F16", "BF16")
_TORCH_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                "BOOL": "bool"}
# safetensors dtype -> numpy dtype of the stored elements (bf16: its bit patterns)
ST_NUMPY = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
            "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
            "BOOL": np.bool_}


def bf16_bits(f32):
    """float32 array -> bf16 bit patterns (uint16), rounded to nearest even like torch's
    .to(torch.bfloat16); NaN becomes 0x7FC0 as in c10::round_to_nearest_even."""
    bits = np.ascontiguousarray(f32, dtype=np.float32).view(np.uint32)
    out = ((bits + (((bits >> 16) & 1) + np.uint32(0x7FFF))) >> 16).astype(np.uint16)
    nan = np.isnan(f32)
    if nan.any():
        out[nan] = 0x7FC0
    return out


def from_torch(v):
    """A torch tensor as a Tensor (bf16 kept as its bit patterns)."""
    import torch
    v = v.detach().contiguous()
    if v.dtype == torch.bfloat16:
        return Tensor(v.view(torch.int16).numpy().view(np.uint16), "BF16")
    names = {torch.float32: "F32", torch.float16: "F16", torch.float64: "F64",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
             torch.uint8: "U8", torch.bool: "BOOL"}
    if v.dtype not in names:
        raise Refused(f"a tensor of dtype {v.dtype} cannot be stored in safetensors")
    return Tensor(v.numpy(), names[v.dtype])


def from_torch_obj(o):
    """torch.load's object with every torch tensor (nested in dicts/lists) as a Tensor."""
    import torch
    if isinstance(o, torch.Tensor):
        return from_torch(o)
    if isinstance(o, dict):
        return type(o)((k, from_torch_obj(v)) for k, v in o.items()) \
            if isinstance(o, collections.OrderedDict) else {k: from_torch_obj(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return type(o)(from_torch_obj(v) for v in o)
    return o


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
        if (module, name) == ("torch", "Size"):
            return tuple
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
