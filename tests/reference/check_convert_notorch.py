#!/usr/bin/python3
"""The converter without PyTorch (tests/test_convert_notorch.c runs this; issue 17 item 6).

Run with a python that HAS torch (it writes the fixtures and the torch-side expectations):

    /usr/bin/python3 tests/reference/check_convert_notorch.py WORKDIR

1. make_upstream_checkpoints.py writes the tiny upstream checkpoints (torch.save zip files).
2. The same objects are saved again as pre-1.6 (non-zip) pickles, which only PyTorch reads.
3. tools/convert_checkpoint.py converts the zip files in a python where `import torch` fails
   (sys.modules['torch'] = None), and the legacy pickles in a python with torch (torch.load):
   every file of the two model directories must be identical byte for byte.
4. Tensor for tensor against PyTorch itself: each DiT tensor of the torch-less output equals
   torch's own `.to(dtype)` of the source tensor (LoRA merges: torch's W.float() + B @ A in
   float32 then the cast, within one bf16 step where float32 sums may differ in order).
5. The bf16 rounding against torch on hostile values (ties, subnormals, inf, NaN, overflow).
6. A legacy pickle without PyTorch: exit 1 and a message that says PyTorch is needed, no
   traceback; a python without numpy: exit 1 and a message naming one to use.
Exit 0 when all hold; otherwise the first failure is printed and the exit status is 1 (both
on stderr).
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import make_upstream_checkpoints as M  # noqa: E402
import torchzip  # noqa: E402

CONV = os.path.join(ROOT, "tools", "convert_checkpoint.py")
DIT_CFG = os.path.join(ROOT, "tests", "fixtures", "dit", "config.json")
LL2_CFG = os.path.join(ROOT, "tests", "fixtures", "longlive2", "config.json")
NOTORCH = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = ['convert_checkpoint.py'] "
           "+ sys.argv[1:]; runpy.run_path({conv!r}, run_name='__main__')")

# case -> (converter arguments with {up} for the checkpoint folder, source DiT, key, lora)
CASES = {
    "sf": ("--dit {up}/sf/self_forcing_dmd.pt --dit-config " + DIT_CFG +
           " --text-encoder {up}/text/umt5_tiny_enc.pth --tokenizer {up}/text/google/umt5-xxl",
           "sf/self_forcing_dmd.pt", "generator_ema", None),
    "demo_vae": ("--dit {up}/demo/self_forcing_dmd.pt --dit-config {up}/demo/config.json --vae "
                 "{up}/vae/taew2_1.pth --no-ema", "demo/self_forcing_dmd.pt", "generator", None),
    "ll": ("--dit {up}/ll/longlive_base.pt --lora {up}/ll/lora.pt --dit-config " + DIT_CFG,
           "ll/longlive_base.pt", "generator", "ll/lora.pt"),
    "ll2_f32": ("--dit {up}/ll2/model_bf16.pt --dtype f32 --dit-config " + LL2_CFG,
                "ll2/model_bf16.pt", "generator", None),
    "ll2_lora": ("--dit {up}/ll2/base.pt --lora {up}/ll2/lora.pt --family longlive2 "
                 "--lora-alpha 2 --dit-config " + LL2_CFG, "ll2/base.pt", "generator",
                 "ll2/lora.pt"),
}


def fail(msg):
    print(f"check_convert_notorch: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(py_args):
    r = subprocess.run([sys.executable] + py_args, capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def convert(args, up, out, with_torch):
    argv = (args.format(up=up) + f" --out {out}").split()
    if with_torch:  # torch 1.13's weights_only refuses the trainer dicts' floats: ours, trusted
        return run([CONV, "--unsafe-pickle"] + argv)
    return run(["-c", NOTORCH.format(conv=CONV)] + argv)


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    out = {}
    for k, e in head.items():
        s, t = e["data_offsets"]
        a = np.frombuffer(raw[8 + n + s:8 + n + t], dtype=torchzip.ST_NUMPY[e["dtype"]])
        out[k] = (e["dtype"], a.reshape(e["shape"]))
    return out


def canon(name):
    name = name.replace("_fsdp_wrapped_module.", "")
    return re.sub(r"^(model\.)+", "", name)


def bf16_ulp_diff(a_bits, b_bits):
    """|a - b| in bf16 steps for two uint16 bit arrays of finite values of one sign."""
    return np.abs(a_bits.astype(np.int32) - b_bits.astype(np.int32))


def torch_expectation(up, src, key, lora, dtype):
    """{canonical name: torch tensor} as the converter must write them, computed by torch."""
    sd = {canon(k): v for k, v in torch.load(os.path.join(up, src), map_location="cpu",
                                                 weights_only=False)[key].items()}
    merged = set()
    if lora:
        scale = 2 / M.LORA_RANK if "ll2" in lora else 1.0
        L = torch.load(os.path.join(up, lora), map_location="cpu")["generator_lora"]
        for k, A in L.items():
            if ".lora_A." not in k:
                continue
            B = L[k.replace(".lora_A.", ".lora_B.")]
            w = k.split("base_model.model.", 1)[1].replace(".lora_A.weight", ".weight")
            sd[w] = sd[w].float() + scale * (B.float() @ A.float())
            merged.add(w)
    return {k: v.to(dtype) for k, v in sd.items()}, merged


def check_bf16_rounding():
    vals = np.array([0.0, -0.0, 1.0, 1.00390625, 1.005859375, 1.0029296875, 1.0048828125,
                     3.4e38, -3.4e38, 1e-40, -1e-40, 1e-45, np.inf, -np.inf, np.nan, 65504.0,
                     2.0 ** -126, 0.1, -0.1, 1.0 / 3], dtype=np.float32)
    rnd = np.random.default_rng(0).standard_normal(4096).astype(np.float32) * \
        np.float32(10.0) ** np.random.default_rng(1).integers(-30, 30, 4096).astype(np.float32)
    x = np.concatenate([vals, rnd])
    ours = torchzip.bf16_bits(x)
    ref = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    bad = np.nonzero((ours != ref) & ~np.isnan(x))[0]
    if len(bad):
        i = bad[0]
        fail(f"bf16 rounding of {x[i]!r}: ours {ours[i]:#06x}, torch {ref[i]:#06x} "
             f"({len(bad)} of {len(x)} differ)")
    if not np.all((ours[np.isnan(x)] & 0x7F80) == 0x7F80):
        fail("bf16 of NaN is not a NaN")
    return len(x)


def main():
    work = sys.argv[1]
    up, legacy = os.path.join(work, "up"), os.path.join(work, "legacy")
    torch.set_num_threads(1)
    os.makedirs(up, exist_ok=True)
    for g in ("sf", "ll", "ll2", "text", "demo"):
        M.GROUPS[g](up)
    # the same objects as pre-1.6 pickles, same names, beside copies of everything else
    shutil.copytree(up, legacy)
    n_legacy = 0
    for d, _, files in os.walk(legacy):
        for f in files:
            if f.endswith((".pt", ".pth")):
                p = os.path.join(d, f)
                obj = torch.load(p, map_location="cpu", weights_only=False)
                torch.save(obj, p, _use_new_zipfile_serialization=False)
                n_legacy += 1
    with open(os.path.join(legacy, "sf", "self_forcing_dmd.pt"), "rb") as f:
        if f.read(2) == b"PK":
            fail("torch.save(_use_new_zipfile_serialization=False) wrote a zip")

    n_files = n_tensors = n_exact = 0
    max_ulp = 0
    for case, (args, src, key, lora) in CASES.items():
        o_np, o_t = os.path.join(work, "np", case), os.path.join(work, "torch", case)
        rc, out = convert(args, up, o_np, with_torch=False)
        if rc != 0:
            fail(f"{case}: the converter without torch exits {rc}:\n{out}")
        rc, out = convert(args, legacy, o_t, with_torch=True)
        if rc != 0:
            fail(f"{case}: the converter with torch on the legacy pickles exits {rc}:\n{out}")
        for d, _, files in os.walk(o_t):
            for f in files:
                rel = os.path.relpath(os.path.join(d, f), o_t)
                a, b = open(os.path.join(o_np, rel), "rb").read(), open(os.path.join(o_t, rel), "rb").read()
                if a != b:
                    fail(f"{case}: {rel} differs between the torch-less run ({len(a)} bytes) and "
                         f"the torch.load run ({len(b)} bytes)")
                n_files += 1
        dtype = torch.float32 if "f32" in case else torch.bfloat16
        exp, merged = torch_expectation(up, src, key, lora, dtype)
        got = read_st(os.path.join(o_np, "dit.safetensors"))
        if set(got) != set(exp):
            fail(f"{case}: tensor names {sorted(set(got) ^ set(exp))[:4]} differ from torch's")
        for k, t in exp.items():
            st, a = got[k]
            ref = t.contiguous()
            if dtype == torch.bfloat16:
                rb = ref.view(torch.int16).numpy().view(np.uint16)
            else:
                rb = ref.numpy()
            if list(a.shape) != list(ref.shape) or st != ("BF16" if dtype == torch.bfloat16 else "F32"):
                fail(f"{case}: '{k}' is {st} {list(a.shape)}, torch {ref.dtype} {list(ref.shape)}")
            n_tensors += 1
            if np.array_equal(a, rb):
                n_exact += 1
                continue
            if k not in merged:
                fail(f"{case}: '{k}' differs from torch's .to({dtype}) (no LoRA merge there)")
            if dtype == torch.bfloat16:
                ulp = int(bf16_ulp_diff(a, rb).max())
            else:
                ulp = int(np.abs(a.view(np.int32).astype(np.int64) - rb.view(np.int32)).max())
            max_ulp = max(max_ulp, ulp)
            if ulp > 1:
                fail(f"{case}: LoRA-merged '{k}' is {ulp} steps from torch's merge")
    n_vals = check_bf16_rounding()
    # a legacy pickle without torch: a message, not a traceback
    rc, out = convert(CASES["ll2_f32"][0], legacy, os.path.join(work, "np", "legacy"), False)
    if rc != 1 or "pre-1.6" not in out or "needs PyTorch" not in out or "Traceback" in out:
        fail(f"a legacy pickle without torch: exit {rc}, expected 1 and a message:\n{out}")
    # a python without numpy: what to do, not a traceback
    nonumpy = NOTORCH.replace("sys.modules['torch']", "sys.modules['numpy']")
    rc, out = run(["-c", nonumpy.format(conv=CONV), "--dit", "x.pt", "--out",
                   os.path.join(work, "none")])
    if rc != 1 or "needs numpy" not in out or "/usr/bin/python3" not in out or "Traceback" in out:
        fail(f"a python without numpy: exit {rc}, expected 1 and a message:\n{out}")
    print(f"check_convert_notorch: ok: {len(CASES)} conversions without torch == with torch.load "
          f"({n_files} files byte for byte, {n_legacy} legacy pickles); {n_tensors} DiT tensors "
          f"vs torch: {n_exact} bit-exact, the others (LoRA merges) within {max_ulp} step; bf16 "
          f"rounding == torch on {n_vals} values", file=sys.stderr)


if __name__ == "__main__":
    main()
