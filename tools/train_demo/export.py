#!/usr/bin/env python3
"""Writes the trained demo family as a sinkstream model directory.

    python3 tools/train_demo/export.py --work DIR --out models-demo [--raw]

Takes the EMA weights of dit.pt (DiT + umT5), ae.pt (TAEHV) and spiece.model from --work,
writes them as upstream-named safetensors (DiT and umT5 f32, TAEHV f16 like the released
taew2_1) and runs the project's converter, tools/convert_checkpoint.py --family demo, which
checks every tensor and writes model.json (DiT and umT5 in bf16).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DT = {torch.float32: ("F32", np.float32), torch.float16: ("F16", np.float16)}


def st_save(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        code, npt = DT[t.dtype]
        b = t.numpy().astype(npt).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    ap.add_argument("--set", action="append", default=[], help="passed to the converter")
    a = ap.parse_args()
    st = torch.load(os.path.join(a.work, "dit.pt"), map_location="cpu")
    dit = st["dit" if a.no_ema else "dit_ema"]
    te = st["te" if a.no_ema else "te_ema"]
    cfg = st["dit_config"]
    ae = torch.load(os.path.join(a.work, "ae.pt"), map_location="cpu")["ae"]
    with tempfile.TemporaryDirectory() as tmp:
        st_save(os.path.join(tmp, "demo_dit.safetensors"), {k: v.float() for k, v in dit.items()},
                {"config": json.dumps(cfg), "format": "pt"})
        # nn.Embedding / nn.Module names are already Wan's (token_embedding.weight, ...)
        st_save(os.path.join(tmp, "umt5_demo.safetensors"), {k: v.float() for k, v in te.items()},
                {"format": "pt"})
        st_save(os.path.join(tmp, "taew2_1_demo.safetensors"), {k: v.half() for k, v in ae.items()},
                {"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        cmd = [sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"),
               "--family", "demo", "--dit", os.path.join(tmp, "demo_dit.safetensors"),
               "--dit-config", os.path.join(tmp, "config.json"),
               "--text-encoder", os.path.join(tmp, "umt5_demo.safetensors"),
               "--tokenizer", os.path.join(a.work, "spiece.model"),
               "--vae", os.path.join(tmp, "taew2_1_demo.safetensors"), "--out", a.out]
        for s in a.set:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(a.out) for f in fs)
    print(f"{a.out}: {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
