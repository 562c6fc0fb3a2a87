#!/usr/bin/python3
"""Independent PyTorch reference for single ops of the backend table.

Writes tests/fixtures/ops/ops.safetensors: for each op, seeded random inputs and
the output computed with PyTorch's own functions (F.linear, F.gelu(tanh),
F.layer_norm, F.conv2d, F.pixel_shuffle, F.interpolate, F.embedding, softmax)
or, for the Wan-specific layout ops, written from docs/spec-wan-causal-dit.md:
  - RoPE: sec. 3 (rope_params table in float64, interleaved pairs as complex,
    22/21/21 split, absolute frame position), applied as a complex product;
  - patch embedding: sec. 2.1 (Conv3d kernel = stride = (1,2,2)), so the C test
    checks that patchify + linear with the flattened weight equals that Conv3d;
  - unpatchify: sec. 2.6 (view (f,h,w,1,2,2,c), einsum 'fhwpqrc->cfphqwr').
All tensors are F32 (ids I32). tests/test_ops_torch.c compares the CPU backend.

Run:  /usr/bin/python3 tests/reference/make_op_fixtures.py --out tests/fixtures/ops
(Debian python3-torch; deterministic: every draw from one seeded torch.Generator.)
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

SEED = 20261124
G = torch.Generator().manual_seed(SEED)


def U(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape, generator=G, dtype=torch.float32) * (hi - lo) + lo).contiguous()


T = {}


def put(name, t):
    T[name] = t.detach().contiguous()


# ---- activations, linear
x = U(97, lo=-6, hi=6)
put("act.x", x)
put("act.gelu_tanh", F.gelu(x, approximate="tanh"))
put("act.silu", F.silu(x))
put("act.relu", F.relu(x))

x, w, b = U(7, 13), U(11, 13), U(11)
put("linear.x", x); put("linear.w", w); put("linear.b", b)
put("linear.y", F.linear(x, w, b))
put("linear.y_gelu", F.gelu(F.linear(x, w, b), approximate="tanh"))

# ---- norms, modulation (Wan block: LN without affine, eps 1e-6, then (1+scale), shift)
x, w, b = U(5, 33, lo=-2, hi=3), U(33, lo=0.5, hi=1.5), U(33)
put("layernorm.x", x); put("layernorm.w", w); put("layernorm.b", b)
put("layernorm.y", F.layer_norm(x, (33,), w, b, eps=1e-6))
# WanRMSNorm: x * rsqrt(mean(x^2) + eps) * weight, in float32
put("rmsnorm.y", x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w)
Gm, RPG, D = 3, 4, 33
xm, mod = U(Gm * RPG, D, lo=-2, hi=2), U(Gm, 6, D)
put("modulate.x", xm); put("modulate.mod", mod)
ln = F.layer_norm(xm, (D,), eps=1e-6).view(Gm, RPG, D)
put("modulate.y_ln_s0_c1", (ln * (1 + mod[:, 1:2, :]) + mod[:, 0:1, :]).reshape(Gm * RPG, D))

# ---- attention: softmax(scale q.k + bias) v per head
Nq, Nk, NH, HD = 9, 21, 3, 16
q, k, v, bias = U(Nq, NH, HD), U(Nk, NH, HD), U(Nk, NH, HD), U(NH, Nq, Nk, lo=-2, hi=2)
put("attention.q", q); put("attention.k", k); put("attention.v", v); put("attention.bias", bias)
scale = 1.0 / math.sqrt(HD)
s = torch.einsum("ihd,jhd->hij", q, k) * scale
put("attention.y", torch.einsum("hij,jhd->ihd", torch.softmax(s, -1), v).reshape(Nq, NH * HD))
put("attention.y_bias", torch.einsum("hij,jhd->ihd", torch.softmax(s + bias, -1), v).reshape(Nq, NH * HD))

# ---- Wan 3D RoPE (spec sec. 3)
def rope_params(max_len, dim, theta=10000.0):
    freqs = torch.outer(torch.arange(max_len, dtype=torch.float64),
                        1.0 / torch.pow(theta, torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    return torch.polar(torch.ones_like(freqs), freqs)


HDr = 128
d = HDr
table = torch.cat([rope_params(1024, d - 4 * (d // 6)), rope_params(1024, 2 * (d // 6)),
                   rope_params(1024, 2 * (d // 6))], dim=1)      # [1024, 64] complex
c = HDr // 2
ft, fh, fw = table.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
Fr, Hp, Wp, NHr, t0 = 2, 3, 4, 2, 5
xr = U(Fr * Hp * Wp, NHr, HDr)
put("rope.x", xr)
fr = torch.cat([ft[t0:t0 + Fr].view(Fr, 1, 1, -1).expand(Fr, Hp, Wp, -1),
                fh[:Hp].view(1, Hp, 1, -1).expand(Fr, Hp, Wp, -1),
                fw[:Wp].view(1, 1, Wp, -1).expand(Fr, Hp, Wp, -1)], dim=-1).reshape(Fr * Hp * Wp, 1, -1)
xc = torch.view_as_complex(xr.to(torch.float64).reshape(Fr * Hp * Wp, NHr, -1, 2))
put("rope.y", torch.view_as_real(xc * fr).flatten(2).float())

# ---- conv2d and friends
xc2, wc, bc = U(1, 5, 9, 11), U(7, 5, 3, 3, lo=-0.5, hi=0.5), U(7)
put("conv.x", xc2); put("conv.w", wc); put("conv.b", bc)
put("conv.y_s1p1", F.conv2d(xc2, wc, bc, stride=1, padding=1))
put("conv.y_s2p1", F.conv2d(xc2, wc, bc, stride=2, padding=1))
w1 = U(4, 5, 1, 1)
put("conv.w1", w1)
put("conv.y_1x1", F.conv2d(xc2, w1, None))
xs = U(2, 12, 3, 5)
put("shuffle.x", xs)
put("shuffle.y_p2", F.pixel_shuffle(xs, 2))
xu = U(2, 3, 6, 4)
put("unshuffle.x", xu)
put("unshuffle.y_p2", F.pixel_unshuffle(xu, 2))
put("upsample.y_s2", F.interpolate(xu, scale_factor=2, mode="nearest"))
xa, xb = U(2, 3, 4, 5), U(2, 2, 4, 5)
put("concat.a", xa); put("concat.b", xb); put("concat.y", torch.cat([xa, xb], dim=1))

# ---- Wan patch embedding (Conv3d, kernel = stride = (1,2,2)) and unpatchify
Cp, Fp, Hh, Ww, Dp = 4, 2, 6, 8, 8
xp = U(Cp, Fp, Hh, Ww)               # Wan layout [C, F, H, W]
wp, bp = U(Dp, Cp, 1, 2, 2), U(Dp)
put("patch.x_fchw", xp.permute(1, 0, 2, 3))   # our layout [F, C, H, W]
put("patch.w", wp.reshape(Dp, Cp * 4)); put("patch.b", bp)
yp = F.conv3d(xp.unsqueeze(0), wp, bp, stride=(1, 2, 2))    # [1, D, F, Hp, Wp]
put("patch.y", yp.flatten(2).transpose(1, 2)[0])            # [F*Hp*Wp, D]
Cu = 3
xun = U(Fp * (Hh // 2) * (Ww // 2), 4 * Cu)
put("unpatch.x", xun)
u = xun.view(Fp, Hh // 2, Ww // 2, 1, 2, 2, Cu)
u = torch.einsum("fhwpqrc->cfphqwr", u).reshape(Cu, Fp, Hh, Ww)
put("unpatch.y_fchw", u.permute(1, 0, 2, 3))

# ---- embedding
tab = U(17, 6)
ids = torch.tensor([3, 0, 16, 3, 9], dtype=torch.int32)
put("embed.table", tab); put("embed.ids", ids)
put("embed.y", F.embedding(ids.long(), tab))


def save_safetensors(path, tensors, meta):
    dt = {torch.float32: "F32", torch.int32: "I32"}
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        raw = t.numpy().tobytes() if hasattr(t, "numpy") else bytes(t)
        header[name] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/ops")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "ops.safetensors")
    save_safetensors(path, T, {"seed": str(SEED), "torch": torch.__version__})
    with open(__file__, "rb") as f:
        script_sha = hashlib.sha256(f.read()).hexdigest()
    with open(path, "rb") as f:
        file_sha = hashlib.sha256(f.read()).hexdigest()
    manifest = {"seed": SEED, "torch": torch.__version__, "script": "tests/reference/make_op_fixtures.py",
                "script_sha256": script_sha, "command": " ".join(sys.argv),
                "files": {"ops.safetensors": file_sha}, "tensors": len(T)}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {path}: {len(T)} tensors")


if __name__ == "__main__":
    main()
