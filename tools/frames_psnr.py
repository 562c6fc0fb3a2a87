#!/usr/bin/env python3
"""frames_psnr.py - PSNR of decoded frames against a reference run (issue 19's FP8 quality
check): two safetensors files written by `sinkstream generate --rgb-out`, each holding
`frames` [T, 3, H, W] float32 in [0, 1]. Prints the PSNR over all frames, the worst frame,
and the mean per second of video (does the difference grow along the video?).

usage: frames_psnr.py TEST.safetensors REFERENCE.safetensors [--fps 16]
"""
import argparse
import json
import math
import struct
import sys

import numpy as np


def load_frames(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        if "frames" not in head:
            sys.exit(f"{path}: no tensor 'frames' (written by generate --rgb-out?)")
        t = head["frames"]
        if t["dtype"] != "F32":
            sys.exit(f"{path}: 'frames' is {t['dtype']}, expected F32")
        s, e = t["data_offsets"]
        f.seek(8 + n + s)
        return np.frombuffer(f.read(e - s), dtype="<f4").reshape(t["shape"])


def psnr(mse):
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("test")
    ap.add_argument("reference")
    ap.add_argument("--fps", type=int, default=16)
    a = ap.parse_args()
    x, r = load_frames(a.test), load_frames(a.reference)
    if x.shape != r.shape:
        sys.exit(f"shapes differ: {x.shape} vs {r.shape}")
    if not (np.isfinite(x).all() and np.isfinite(r).all()):
        sys.exit("non-finite pixels")
    per = ((x.astype(np.float64) - r) ** 2).reshape(x.shape[0], -1).mean(axis=1)
    print(f"{x.shape[0]} frames {x.shape[2]}x{x.shape[3]}: PSNR {psnr(per.mean()):.2f} dB over "
          f"all, worst frame {psnr(per.max()):.2f} dB (frame {int(per.argmax())})")
    secs = [psnr(per[i:i + a.fps].mean()) for i in range(0, len(per), a.fps)]
    print("per second: " + " ".join(f"{p:.1f}" for p in secs))


if __name__ == "__main__":
    main()
