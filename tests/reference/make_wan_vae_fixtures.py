#!/usr/bin/python3
"""Independent PyTorch reference for the Wan2.2 VAE encoder on ONE image; writes the fixtures
tests/test_wan_vae.c checks vae/wan_vae_*.c with.

Written from Wan-Video/Wan2.2 wan/modules/vae2_2.py (Encoder3d, WanVAE_.encode, Wan2_2_VAE's 48
mean/std constants; the same numbers as LongLive 2.0's utils/wan_5b_wrapper.py WanVAEWrapper).
Nothing here is reduced to one frame by hand: the convolutions are the real causal 3-D ones
(F.pad with 2 zero frames in front, F.conv3d), AvgDown3D pads the missing frame and averages
the channel groups as upstream, the downsample is ZeroPad2d((0,1,0,1)) + a stride-2 Conv2d,
patchify is "b c f (h q) (w r) -> b (c r q) f h w", and the run is WanVAE_.encode's first
chunk (x[:, :, :1]: the time_conv of downsample3d is not used there). Float64 throughout.

Cases (tests/fixtures/wan_vae/):
  tiny_a.safetensors  dim 4, dim_mult [1,2,4,4], 2 res blocks, temporal down [F,T,T] (Wan2.2's
                      flags), random weights (+ a decoder.* and conv2.* tensor the encoder must
                      ignore); image 32x48 -> latent 48x2x3; expected_tiny_a.safetensors
  tiny_b.safetensors  dim 4, dim_mult [1,2,2], 1 res block, temporal down [T,F] (other shortcut
                      channel maps); image 16x24 -> latent 48x2x3
  real64.safetensors  the real layout (dim 160, [1,2,4,4], 2 res blocks, [F,T,T], z 48) with
                      weights NOT stored: each tensor is generated from its name by the
                      counter hash below, which tests/test_wan_vae.c re-implements; image
                      64x64 -> latent 48x4x4. The file holds the image and the expected latent.

Run:  /usr/bin/python3 tests/reference/make_wan_vae_fixtures.py --out tests/fixtures/wan_vae
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dit_fixtures as R  # noqa: E402  (st_save)

SEED = 20261207
MEAN = [-0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542,
        0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109,
        0.2665, -0.2108, -0.2158, 0.2502, -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899,
        -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
        0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667]
STD = [0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894,
       1.0901, 0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146,
       0.8986, 0.5659, 0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709,
       0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537,
       0.5444, 0.4089, 0.7468, 0.7744]


# ---------------------------------------------------------------------------- the layout
def layout(dim, z, mult, n_res, t_down):
    """name -> shape of every encoder tensor (upstream names), plus the level plan."""
    dims = [dim * u for u in [1] + mult]
    T = {"encoder.conv1.weight": (dims[0], 12, 3, 3, 3), "encoder.conv1.bias": (dims[0],)}

    def res(pre, i, o):
        T[pre + ".residual.0.gamma"] = (i, 1, 1, 1)
        T[pre + ".residual.2.weight"] = (o, i, 3, 3, 3)
        T[pre + ".residual.2.bias"] = (o,)
        T[pre + ".residual.3.gamma"] = (o, 1, 1, 1)
        T[pre + ".residual.6.weight"] = (o, o, 3, 3, 3)
        T[pre + ".residual.6.bias"] = (o,)
        if i != o:
            T[pre + ".shortcut.weight"] = (o, i, 1, 1, 1)
            T[pre + ".shortcut.bias"] = (o,)

    plan = []
    for li, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
        td = t_down[li] if li < len(t_down) else False
        down = li != len(mult) - 1
        for j in range(n_res):
            res(f"encoder.downsamples.{li}.downsamples.{j}", i if j == 0 else o, o)
        if down:
            pre = f"encoder.downsamples.{li}.downsamples.{n_res}"
            T[pre + ".resample.1.weight"] = (o, o, 3, 3)
            T[pre + ".resample.1.bias"] = (o,)
            if td:
                T[pre + ".time_conv.weight"] = (o, o, 3, 1, 1)
                T[pre + ".time_conv.bias"] = (o,)
        plan.append((i, o, td, down))
    C = dims[-1]
    res("encoder.middle.0", C, C)
    T["encoder.middle.1.norm.gamma"] = (C, 1, 1)
    T["encoder.middle.1.to_qkv.weight"] = (3 * C, C, 1, 1)
    T["encoder.middle.1.to_qkv.bias"] = (3 * C,)
    T["encoder.middle.1.proj.weight"] = (C, C, 1, 1)
    T["encoder.middle.1.proj.bias"] = (C,)
    res("encoder.middle.2", C, C)
    T["encoder.head.0.gamma"] = (C, 1, 1, 1)
    T["encoder.head.2.weight"] = (2 * z, C, 3, 3, 3)
    T["encoder.head.2.bias"] = (2 * z,)
    T["conv1.weight"] = (2 * z, 2 * z, 1, 1, 1)
    T["conv1.bias"] = (2 * z,)
    return T, plan, n_res


# ---------------------------------------------------------------------------- the model
def causal_conv3d(x, w, b, pad):
    """CausalConv3d: spatial padding pad, 2*pad_t zero frames in front (pad_t = (kt-1)/2)."""
    kt = w.shape[2]
    pt = (kt - 1) // 2
    x = Fn.pad(x, (pad, pad, pad, pad, 2 * pt, 0))
    return Fn.conv3d(x, w, b)


def rms(x, g):
    """RMS_norm(channel_first): F.normalize over dim 1 * sqrt(C) * gamma."""
    return Fn.normalize(x, dim=1) * (x.shape[1] ** 0.5) * g


def resblock(P, pre, x):
    h = x
    if pre + ".shortcut.weight" in P:
        h = causal_conv3d(x, P[pre + ".shortcut.weight"], P[pre + ".shortcut.bias"], 0)
    y = Fn.silu(rms(x, P[pre + ".residual.0.gamma"]))
    y = causal_conv3d(y, P[pre + ".residual.2.weight"], P[pre + ".residual.2.bias"], 1)
    y = Fn.silu(rms(y, P[pre + ".residual.3.gamma"]))
    y = causal_conv3d(y, P[pre + ".residual.6.weight"], P[pre + ".residual.6.bias"], 1)
    return y + h


def avg_down3d(x, cin, cout, ft, fs):
    """AvgDown3D.forward."""
    factor = ft * fs * fs
    group = cin * factor // cout
    pad_t = (ft - x.shape[2] % ft) % ft
    x = Fn.pad(x, (0, 0, 0, 0, pad_t, 0))
    B, C, T, H, W = x.shape
    x = x.view(B, C, T // ft, ft, H // fs, fs, W // fs, fs)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6).contiguous()
    x = x.view(B, C * factor, T // ft, H // fs, W // fs)
    x = x.view(B, cout, group, T // ft, H // fs, W // fs)
    return x.mean(dim=2)


def per_frame(x, fn):
    b, c, t, h, w = x.shape
    y = fn(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def attention(P, x):
    """AttentionBlock: per frame, RMS_norm(images) + 1x1 qkv + one-head SDPA + 1x1 proj."""
    pre = "encoder.middle.1"

    def f(y):
        bt, c, h, w = y.shape
        y = rms(y, P[pre + ".norm.gamma"])
        qkv = Fn.conv2d(y, P[pre + ".to_qkv.weight"], P[pre + ".to_qkv.bias"])
        q, k, v = qkv.reshape(bt, 1, c * 3, -1).permute(0, 1, 3, 2).contiguous().chunk(3, dim=-1)
        # F.scaled_dot_product_attention (default scale 1/sqrt(c)), written out: this torch
        # predates it
        o = torch.softmax(q @ k.transpose(-1, -2) / c ** 0.5, dim=-1) @ v
        o = o.squeeze(1).permute(0, 2, 1).reshape(bt, c, h, w)
        return Fn.conv2d(o, P[pre + ".proj.weight"], P[pre + ".proj.bias"])
    return x + per_frame(x, f)


def encode(P, spec, img):
    """WanVAE_.encode of a [3, H, W] image in [-1, 1] (the first chunk) -> normalised latent."""
    T, plan, n_res = spec
    x = img[None, :, None]                                   # [1, 3, 1, H, W]
    x = x.reshape(1, 3, 1, x.shape[3] // 2, 2, x.shape[4] // 2, 2)   # b c f h q w r
    x = x.permute(0, 1, 6, 4, 2, 3, 5).reshape(1, 12, 1, img.shape[1] // 2, img.shape[2] // 2)
    x = causal_conv3d(x, P["encoder.conv1.weight"], P["encoder.conv1.bias"], 1)
    for li, (cin, cout, td, down) in enumerate(plan):
        x0 = x
        for j in range(n_res):
            x = resblock(P, f"encoder.downsamples.{li}.downsamples.{j}", x)
        if down:
            pre = f"encoder.downsamples.{li}.downsamples.{n_res}.resample.1"
            x = per_frame(x, lambda y: Fn.conv2d(Fn.pad(y, (0, 1, 0, 1)), P[pre + ".weight"],
                                                 P[pre + ".bias"], stride=2))
            # downsample3d, first chunk: feat_cache is None -> no time_conv
        x = x + avg_down3d(x0, cin, cout, 2 if td else 1, 2 if down else 1)
    x = resblock(P, "encoder.middle.0", x)
    x = attention(P, x)
    x = resblock(P, "encoder.middle.2", x)
    x = Fn.silu(rms(x, P["encoder.head.0.gamma"]))
    x = causal_conv3d(x, P["encoder.head.2.weight"], P["encoder.head.2.bias"], 1)
    out = Fn.conv3d(x, P["conv1.weight"], P["conv1.bias"])
    z = out.shape[1] // 2
    mu = out[:, :z]
    mean = torch.tensor(MEAN, dtype=mu.dtype).view(1, z, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(STD, dtype=mu.dtype).view(1, z, 1, 1, 1)
    return ((mu - mean) * inv_std)[0, :, 0]                  # [z, H/16, W/16]


# ---------------------------------------------------------------------------- weights
def random_weights(T, gen):
    P = {}
    for n, sh in T.items():
        if n.endswith("gamma"):
            P[n] = 1.0 + 0.2 * torch.randn(sh, generator=gen)
        elif len(sh) == 1:
            P[n] = 0.1 * torch.randn(sh, generator=gen)
        else:
            fan = int(np.prod(sh[1:]))
            P[n] = torch.randn(sh, generator=gen) / fan ** 0.5
    return P


M64 = (1 << 64) - 1


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 0x100000001B3) & M64
    return h


def hash_values(name, n):
    """splitmix64(fnv1a64(name) + (j + 1) * golden) >> 56, j = 0..n-1 (uint8)."""
    with np.errstate(over="ignore"):
        j = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(fnv1a64(name)) + j * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(56)).astype(np.int64)


def hash_tensor(name, sh):
    """The real-layout weights (tests/test_wan_vae.c: hash_tensor): m = byte - 128 in [-128, 127];
    gamma 1 + m/1024; 1-D (bias) m/128 * 1/16; else m/128 * 2^-k with 4^k >= fan_in (k minimal):
    all exact in f32, and weights and biases exact in bf16."""
    n = int(np.prod(sh))
    m = (hash_values(name, n) - 128).astype(np.float64)
    if name.endswith("gamma"):
        v = 1.0 + m / 1024.0
    elif len(sh) == 1:
        v = m / 128.0 / 16.0
    else:
        fan = int(np.prod(sh[1:]))
        k = 0
        while (1 << (2 * k)) < fan:
            k += 1
        v = m / 128.0 * 2.0 ** (-k)
    return torch.from_numpy(v.reshape(sh))


def image(gen, H, W):
    """A smooth pattern plus noise, in [-1, 1]: closer to a picture than white noise."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H, dtype=torch.float64),
                            torch.linspace(0, 1, W, dtype=torch.float64), indexing="ij")
    base = torch.stack([torch.sin(6 * xx + 2 * yy), torch.cos(5 * yy - 3 * xx), xx * yy * 2 - 1])
    img = 0.7 * base + 0.3 * torch.rand(3, H, W, generator=gen, dtype=torch.float64) * 2 - 0.3
    return img.clamp(-1, 1).to(torch.float32).to(torch.float64)   # f32-exact values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/wan_vae")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    torch.set_default_dtype(torch.float64)
    manifest = {"seed": SEED, "torch": torch.__version__, "cases": {}}
    for name, dim, mult, n_res, td, H, W in (("tiny_a", 4, [1, 2, 4, 4], 2, [False, True, True], 32, 48),
                                             ("tiny_b", 4, [1, 2, 2], 1, [True, False], 16, 24)):
        spec = layout(dim, 48, mult, n_res, td)
        P = random_weights(spec[0], gen)
        P = {k: v.to(torch.float32).to(torch.float64) for k, v in P.items()}
        img = image(gen, H, W)
        lat = encode(P, spec, img)
        files = {k: v.to(torch.float32) for k, v in P.items()}
        files["decoder.conv1.weight"] = torch.zeros(2, 2, dtype=torch.float32)  # ignored
        files["conv2.weight"] = torch.zeros(2, 2, dtype=torch.float32)          # ignored
        R.st_save(os.path.join(args.out, f"{name}.safetensors"), files)
        R.st_save(os.path.join(args.out, f"expected_{name}.safetensors"),
                  {"image": img.to(torch.float32), "latent": lat.to(torch.float32)})
        manifest["cases"][name] = {"dim": dim, "dim_mult": mult, "num_res_blocks": n_res,
                                   "temperal_downsample": td, "image": [H, W],
                                   "latent_rms": float(lat.pow(2).mean().sqrt())}
        print(name, list(lat.shape), "rms", float(lat.pow(2).mean().sqrt()))
    # the real layout, hash weights (not stored)
    spec = layout(160, 48, [1, 2, 4, 4], 2, [False, True, True])
    P = {k: hash_tensor(k, sh) for k, sh in spec[0].items()}
    img = image(gen, 64, 64)
    lat = encode(P, spec, img)
    R.st_save(os.path.join(args.out, "real64.safetensors"),
              {"image": img.to(torch.float32), "latent": lat.to(torch.float32)})
    manifest["cases"]["real64"] = {"dim": 160, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
                                   "temperal_downsample": [False, True, True], "image": [64, 64],
                                   "weights": "hash_tensor(name, shape), not stored",
                                   "n_params": int(sum(np.prod(s) for s in spec[0].values())),
                                   "latent_rms": float(lat.pow(2).mean().sqrt())}
    print("real64", list(lat.shape), "rms", float(lat.pow(2).mean().sqrt()))
    # the antialiased resize of LongLive 2.0's I2V (torchvision Resize(antialias=True) on a float
    # tensor = F.interpolate bilinear, align_corners False, antialias True): down and up
    src = torch.rand(1, 3, 37, 53, generator=gen, dtype=torch.float64).to(torch.float32)
    rs = {"src": src[0]}
    for H, W in ((20, 32), (64, 96), (11, 70)):
        rs[f"dst_{H}x{W}"] = Fn.interpolate(src, size=(H, W), mode="bilinear",
                                            align_corners=False, antialias=True)[0]
    R.st_save(os.path.join(args.out, "resize.safetensors"), rs)
    manifest["resize"] = "F.interpolate(bilinear, align_corners=False, antialias=True) of src " \
                         "[3, 37, 53] to 20x32, 64x96, 11x70"
    manifest["command"] = " ".join(["/usr/bin/python3"] + sys.argv)
    with open(os.path.abspath(__file__), "rb") as f:
        manifest["script_sha256"] = hashlib.sha256(f.read()).hexdigest()
    manifest["files"] = {}
    for fn in sorted(os.listdir(args.out)):
        if fn != "manifest.json":
            with open(os.path.join(args.out, fn), "rb") as f:
                manifest["files"][fn] = hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
