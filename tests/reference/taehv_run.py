#!/usr/bin/python3
"""taehv_run.py - runs the independent PyTorch TAEHV of make_taehv_fixtures.py on any
checkpoint (widths inferred from the weights, so a full-width model too) for one decode
or encode; the C test of the full-width model (tests/test_vae_tiny.c) writes random
full-width weights and an input, calls this, and compares values.

  taehv_run.py decode WEIGHTS.safetensors PATCH IN.f32 F,C,H,W OUT.f32
  taehv_run.py encode WEIGHTS.safetensors PATCH IN.f32 T,3,H,W OUT.f32

IN/OUT are raw little-endian float32 in row-major order; OUT's shape is printed
(decode: [4F-3, 3, 8pH, 8pW] in [0, 1]; encode: [ceil(T/4), z, H/8p, W/8p]).
Weights: F16 or F32 tensors, computed in float32 (as the fixtures are).
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_taehv_fixtures as T  # noqa: E402

_NP = {"F16": np.float16, "F32": np.float32, "BF16": None}


def load_weights(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    P = {}
    for name, d in header.items():
        s, e = d["data_offsets"]
        if d["dtype"] == "BF16":
            u = np.frombuffer(raw[base + s:base + e], dtype=np.uint16).astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            a = np.frombuffer(raw[base + s:base + e], dtype=_NP[d["dtype"]])
        P[name] = torch.from_numpy(a.astype(np.float32).reshape(d["shape"]).copy())
    return P


def main():
    if len(sys.argv) != 7 or sys.argv[1] not in ("decode", "encode"):
        sys.exit(__doc__)
    mode, wpath, patch, inp, shape, outp = sys.argv[1:]
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    P = load_weights(wpath)
    shp = [int(v) for v in shape.split(",")]
    x = torch.from_numpy(np.fromfile(inp, dtype="<f4").reshape(shp).copy())
    p = int(patch)
    y = T.decode_video(x, P, p) if mode == "decode" else T.encode_video(x, P, p)
    y.contiguous().numpy().astype("<f4").tofile(outp)
    print(",".join(str(v) for v in y.shape))


if __name__ == "__main__":
    main()
