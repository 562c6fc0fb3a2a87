#!/usr/bin/env python3
"""pth_to_safetensors.py - convert a PyTorch state dict (.pth/.pt) to safetensors.

sinkstream reads safetensors only. Wan ships its text encoder as a pickled
state dict (models_t5_umt5-xxl-enc-bf16.pth); this writes the same tensors,
same names, same dtypes, into a .safetensors file sinkstream can map:

    python3 tools/pth_to_safetensors.py models_t5_umt5-xxl-enc-bf16.pth umt5-xxl-enc-bf16.safetensors

Needs only torch (no `safetensors` package). --key picks a nested dict
(e.g. --key generator_ema for Self-Forcing checkpoints). Tensors are written
contiguous, largest element size first, so every tensor is naturally aligned
(sinkstream's CPU backend then uses them in place). Peak memory is about one
copy of the checkpoint.
"""
import argparse
import json
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
          torch.int8: "I8", torch.bool: "BOOL"}
if hasattr(torch, "float8_e4m3fn"):
    DTYPES[torch.float8_e4m3fn] = "F8_E4M3"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help="take this entry of the loaded dict as the state dict")
    a = ap.parse_args()

    sd = torch.load(a.src, map_location="cpu")
    if a.key:
        sd = sd[a.key]
    if not isinstance(sd, dict):
        sys.exit(f"{a.src}: not a state dict (got {type(sd).__name__}); try --key")
    items = []
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            sys.exit(f"{a.src}: entry '{name}' is {type(t).__name__}, not a tensor; try --key "
                     f"(top-level keys: {', '.join(list(sd)[:8])})")
        if t.dtype not in DTYPES:
            sys.exit(f"{a.src}: tensor '{name}' has dtype {t.dtype}, not storable in safetensors")
        items.append((name, t.detach().contiguous()))
    items.sort(key=lambda it: -it[1].element_size())

    header, off = {"__metadata__": {"format": "pt", "source": a.src.split("/")[-1]}}, 0
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(a.dst, "wb") as fp:
        fp.write(struct.pack("<Q", len(h)))
        fp.write(h)
        for _, t in items:
            # raw bytes of any dtype (numpy has no bf16): view as bytes
            fp.write(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    print(f"{a.dst}: {len(items)} tensors, {off / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
