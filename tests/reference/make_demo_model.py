#!/usr/bin/env python3
"""Writes the tiny demo DiT used by tools/quickstart.sh and the end-to-end tests.

Same architecture and random-weight recipe as make_dit_fixtures.py, but with 16
latent channels (in_dim = out_dim = 16) so its latents feed the 16-channel TAEHV
fixture (tests/fixtures/taehv/taehv_tiny_21.safetensors). Weights are stored in
BF16 (they are drawn on the bf16 grid, so this is lossless) to keep the file small,
which also exercises the loader's bf16 path. No expected outputs: the correctness
checks use the f32 fixtures; this model is for the full pipeline (DiT -> TAEHV -> mp4).

Regenerate: /usr/bin/python3 tests/reference/make_demo_model.py --out tests/fixtures/demo
"""
import argparse, json, os, struct, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_dit_fixtures import make_weights  # noqa: E402

CONFIG = {"dim": 128, "ffn_dim": 256, "num_heads": 2, "num_layers": 2, "in_dim": 16,
          "out_dim": 16, "text_dim": 64, "freq_dim": 32, "eps": 1e-6,
          "patch_size": [1, 2, 2], "text_len": 16}
SEED = 20261124


def save_bf16(path, tensors, metadata):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].contiguous().to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    P = make_weights(CONFIG, torch.Generator().manual_seed(SEED))
    save_bf16(os.path.join(a.out, "dit_demo_c16.safetensors"), P,
              {"config": json.dumps(CONFIG), "format": "pt"})
    print("wrote", os.path.join(a.out, "dit_demo_c16.safetensors"))


if __name__ == "__main__":
    main()
