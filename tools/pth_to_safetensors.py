#!/usr/bin/env python3
"""pth_to_safetensors.py - convert a PyTorch state dict (.pth/.pt) to safetensors.

sinkstream reads safetensors only. Wan ships its text encoder as a pickled
state dict (models_t5_umt5-xxl-enc-bf16.pth); this writes the same tensors,
same names, same dtypes (bf16 bit for bit), into a .safetensors file
sinkstream can map:

    python3 tools/pth_to_safetensors.py models_t5_umt5-xxl-enc-bf16.pth umt5-xxl-enc-bf16.safetensors

Needs only numpy (Debian python3-numpy, or pip install numpy): torch.save's
zip checkpoints are read by tools/torchzip.py's allow-list unpickler (nothing
in the file is ever run). Only pre-1.6 non-zip pickles need PyTorch; the
script says so. Any python3 with numpy works (pyenv, conda, a venv, or
Debian's /usr/bin/python3). --key picks a nested dict (e.g. --key
generator_ema for Self-Forcing checkpoints).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy  # noqa: F401
except ImportError:
    sys.exit(f"pth_to_safetensors.py: this python ({sys.executable}) has no numpy; install it "
             f"(pip install numpy, or apt-get install python3-numpy and run /usr/bin/python3)")
import torchzip  # noqa: E402


def load_any(path):
    """torchzip for zip checkpoints; PyTorch (when this python has it) for old pickles."""
    try:
        return torchzip.load(path)
    except torchzip.Refused as e:
        if "pre-1.6" not in str(e):
            raise
        try:
            import torch
        except ImportError:
            raise e from None
    return torchzip.from_torch_obj(torch.load(path, map_location="cpu", weights_only=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help="take this entry of the loaded dict as the state dict")
    a = ap.parse_args()
    try:
        sd = load_any(a.src)
    except (torchzip.Refused, OSError) as e:
        sys.exit(f"pth_to_safetensors.py: {e}")
    if a.key:
        if not isinstance(sd, dict) or a.key not in sd:
            keys = ", ".join(list(sd)[:8]) if isinstance(sd, dict) else type(sd).__name__
            sys.exit(f"pth_to_safetensors.py: '{a.src}' has no entry '{a.key}' (top level: {keys})")
        sd = sd[a.key]
    if not isinstance(sd, dict):
        sys.exit(f"pth_to_safetensors.py: '{a.src}' is not a state dict (got "
                 f"{type(sd).__name__}); try --key")
    for name, t in sd.items():
        if not isinstance(t, torchzip.Tensor):
            sys.exit(f"pth_to_safetensors.py: '{a.src}': entry '{name}' is {type(t).__name__}, "
                     f"not a tensor; try --key (top-level keys: {', '.join(list(sd)[:8])})")
    try:
        n = torchzip.write_safetensors(a.dst, sd, {"format": "pt",
                                                   "source": os.path.basename(a.src)})
    except OSError as e:
        sys.exit(f"pth_to_safetensors.py: cannot write '{a.dst}': {e}")
    print(f"{a.dst}: {len(sd)} tensors, {n / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
