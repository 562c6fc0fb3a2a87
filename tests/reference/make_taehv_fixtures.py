#!/usr/bin/python3
"""make_taehv_fixtures.py - independent PyTorch TAEHV (Wan tiny VAE) and its fixtures.

Written from the public architecture description (docs spec-taehv-umt5.md Part A;
facts from madebyollin/taehv): decoder and encoder as indexed layer lists so the
state-dict keys are the upstream ones (decoder.3.conv.0.weight, encoder.2.conv.weight, ...).

Weights are random (seeded) with the real layer STRUCTURE but narrow widths
(decoder n_f = [32, 16, 8, 8], encoder width 8) so the fixtures stay small; the
C loader infers widths from shapes, and a C test binds a full-width model on its own.
Weights are stored as F16 (what the released checkpoints use); the PyTorch model
computes in f32 with exactly those f16-rounded values.

Outputs (tests/fixtures/taehv/):
  taehv_tiny_21.safetensors         weights, taew2_1 structure (z=16, patch 1)
  taehv_tiny_22.safetensors         weights, taew2_2 structure (z=48, patch 2)
  taehv_tiny_21_decode.safetensors  latents [6,16,8,12] -> frames [21,3,64,96]
  taehv_tiny_22_decode.safetensors  latents [4,48,4,6]  -> frames [13,3,64,96]
  taehv_tiny_21_encode.safetensors  frames [10,3,64,96] -> latents [3,16,8,12]
  taehv_tiny_22_encode.safetensors  frames [7,3,64,96]  -> latents [2,48,4,6]
  manifest.json                     seed, torch version, script sha256, shapes

Self-checks before writing: the whole-clip (parallel) decode equals a frame-by-frame
sequential walk of the layer graph (upstream's streaming mode 2) and the chunked
stateful decode (mode 3) for several chunk sizes; likewise for the encoder.

Run: /usr/bin/python3 tests/reference/make_taehv_fixtures.py [outdir]
"""
import hashlib
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

SEED = 20261124
NF_DEC = [32, 16, 8, 8]   # real model: [256, 128, 64, 64]
NF_ENC = 8                # real model: 64
T_GROW = [1, 2, 2]        # decoder.7, decoder.13, decoder.19 strides
T_POOL = [2, 2, 1]        # encoder.2, encoder.7, encoder.12 strides
TRIM = 3                  # t_upscale (4) - 1

STAGE_CONVS = {"decoder.8.weight", "decoder.14.weight", "decoder.20.weight",
               "encoder.3.weight", "encoder.8.weight", "encoder.13.weight"}
DEC_MEM = [3, 4, 5, 9, 10, 11, 15, 16, 17]
ENC_MEM = [4, 5, 6, 9, 10, 11, 14, 15, 16]


# ---------------------------------------------------------------- parameters
def param_shapes(z, p):
    """Every tensor of the checkpoint with its shape (upstream names)."""
    s = {}
    c = NF_DEC
    s["decoder.1.weight"] = (c[0], z, 3, 3)
    s["decoder.1.bias"] = (c[0],)
    for stage, idxs in enumerate([DEC_MEM[0:3], DEC_MEM[3:6], DEC_MEM[6:9]]):
        ch = c[stage]
        for i in idxs:
            s[f"decoder.{i}.conv.0.weight"] = (ch, 2 * ch, 3, 3)
            s[f"decoder.{i}.conv.0.bias"] = (ch,)
            s[f"decoder.{i}.conv.2.weight"] = (ch, ch, 3, 3)
            s[f"decoder.{i}.conv.2.bias"] = (ch,)
            s[f"decoder.{i}.conv.4.weight"] = (ch, ch, 3, 3)
            s[f"decoder.{i}.conv.4.bias"] = (ch,)
    for stage, (gi, ci) in enumerate([(7, 8), (13, 14), (19, 20)]):
        s[f"decoder.{gi}.conv.weight"] = (c[stage] * T_GROW[stage], c[stage], 1, 1)
        s[f"decoder.{ci}.weight"] = (c[stage + 1], c[stage], 3, 3)
    s["decoder.22.weight"] = (3 * p * p, c[3], 3, 3)
    s["decoder.22.bias"] = (3 * p * p,)

    e = NF_ENC
    s["encoder.0.weight"] = (e, 3 * p * p, 3, 3)
    s["encoder.0.bias"] = (e,)
    for stage, (pi, di) in enumerate([(2, 3), (7, 8), (12, 13)]):
        s[f"encoder.{pi}.conv.weight"] = (e, e * T_POOL[stage], 1, 1)
        s[f"encoder.{di}.weight"] = (e, e, 3, 3)
    for i in ENC_MEM:
        s[f"encoder.{i}.conv.0.weight"] = (e, 2 * e, 3, 3)
        s[f"encoder.{i}.conv.0.bias"] = (e,)
        s[f"encoder.{i}.conv.2.weight"] = (e, e, 3, 3)
        s[f"encoder.{i}.conv.2.bias"] = (e,)
        s[f"encoder.{i}.conv.4.weight"] = (e, e, 3, 3)
        s[f"encoder.{i}.conv.4.bias"] = (e,)
    s["encoder.17.weight"] = (z, e, 3, 3)
    s["encoder.17.bias"] = (z,)
    return s


def make_params(z, p, gen):
    """Random weights, variance-scaled so activations stay O(1) through the net."""
    out = {}
    for name, shape in param_shapes(z, p).items():
        if name.endswith("bias"):
            t = 0.1 * torch.randn(shape, generator=gen)
        else:
            fan_in = shape[1] * shape[2] * shape[3]
            gain = 1.4              # He-like for convs after a ReLU
            if ".conv.4." in name:
                gain = 0.5          # residual branch: keep the MemBlock sum bounded
            elif name.endswith(".conv.weight") or name in STAGE_CONVS:
                gain = 1.0          # TGrow/TPool/stage convs: inputs are non-negative
            t = torch.randn(shape, generator=gen) * (gain / fan_in ** 0.5)
        out[name] = t
    # the RGB head: centre the output in [0, 1] with some values clamped
    out["decoder.22.bias"] = 0.5 + 0.1 * torch.randn((3 * p * p,), generator=gen)
    out["decoder.22.weight"] *= 0.3
    # f16 is what released checkpoints hold; compute with the rounded values
    return {k: v.to(torch.float16).to(torch.float32) for k, v in out.items()}


# ---------------------------------------------------------------- layers
def conv3(x, P, key, stride=1, bias=True):
    return F.conv2d(x, P[key + ".weight"], P[key + ".bias"] if bias else None,
                    stride=stride, padding=1)


def memblock(x, past, P, key):
    """relu(conv4(relu(conv2(relu(conv0(cat[x, past]))))) + x); skip is identity."""
    h = torch.relu(conv3(torch.cat([x, past], 1), P, key + ".conv.0"))
    h = torch.relu(conv3(h, P, key + ".conv.2"))
    h = conv3(h, P, key + ".conv.4")
    return torch.relu(h + x)


def tgrow(x, P, key, s):
    """1x1 conv C -> sC, channel group k becomes frame t*s+k."""
    nt, c, h, w = x.shape
    y = F.conv2d(x, P[key + ".conv.weight"])
    return y.reshape(nt * s, c, h, w)


def tpool(x, P, key, s):
    """s consecutive frames -> channels (frame k at [kC,(k+1)C)), then 1x1 conv sC -> C."""
    nt, c, h, w = x.shape
    return F.conv2d(x.reshape(nt // s, s * c, h, w), P[key + ".conv.weight"])


def decoder_layers(p):
    """The decoder as a list of (kind, arg) indexed like upstream's nn.Sequential."""
    L = [("clamp", None), ("conv", "decoder.1"), ("relu", None)]
    for stage in range(3):
        base = len(L)
        L += [("mem", f"decoder.{base}"), ("mem", f"decoder.{base + 1}"),
              ("mem", f"decoder.{base + 2}")]
        L += [("up", None), ("tgrow", (f"decoder.{base + 4}", T_GROW[stage])),
              ("convnb", f"decoder.{base + 5}")]
    L += [("relu", None), ("conv", "decoder.22")]
    assert len(L) == 23
    return L


def encoder_layers(p):
    L = [("conv", "encoder.0"), ("relu", None)]
    for stage in range(3):
        base = len(L)
        L += [("tpool", (f"encoder.{base}", T_POOL[stage])), ("convs2", f"encoder.{base + 1}")]
        L += [("mem", f"encoder.{base + 2}"), ("mem", f"encoder.{base + 3}"),
              ("mem", f"encoder.{base + 4}")]
    L += [("conv", "encoder.17")]
    assert len(L) == 18
    return L


def apply_layer(kind, arg, x, P):
    if kind == "clamp":
        return 3.0 * torch.tanh(x / 3.0)
    if kind == "conv":
        return conv3(x, P, arg)
    if kind == "convnb":
        return conv3(x, P, arg, bias=False)
    if kind == "convs2":
        return conv3(x, P, arg, stride=2, bias=False)
    if kind == "relu":
        return torch.relu(x)
    if kind == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if kind == "tgrow":
        return tgrow(x, P, arg[0], arg[1])
    if kind == "tpool":
        return tpool(x, P, arg[0], arg[1])
    raise ValueError(kind)


# ---------------------------------------------------------------- mode 1: parallel
def run_parallel(layers, x, P, state=None):
    """x [T, C, H, W]. state: dict layer index -> last input frame of the previous
    chunk for each MemBlock (None = zeros); updated in place when given (mode 3)."""
    for i, (kind, arg) in enumerate(layers):
        if kind == "mem":
            prev = torch.zeros_like(x[:1]) if state is None or state.get(i) is None else state[i]
            past = torch.cat([prev, x[:-1]], 0)
            if state is not None:
                state[i] = x[-1:].clone()
            x = memblock(x, past, P, arg)
        else:
            x = apply_layer(kind, arg, x, P)
    return x


# ---------------------------------------------------------------- mode 2: one frame at a time
def run_sequential(layers, frames, P):
    """Depth-first graph walk over (frame, layer) items, one frame at a time, the way
    upstream's streaming wrapper visits it: an independent check of the time semantics."""
    memory = [None] * len(layers)
    queue = [(f[None], 0) for f in frames]
    out = []
    while queue:
        xt, i = queue.pop(0)
        if i == len(layers):
            out.append(xt)
            continue
        kind, arg = layers[i]
        if kind == "mem":
            past = torch.zeros_like(xt) if memory[i] is None else memory[i]
            memory[i] = xt
            queue.insert(0, (memblock(xt, past, P, arg), i + 1))
        elif kind == "tpool":
            memory[i] = (memory[i] or []) + [xt]
            if len(memory[i]) == arg[1]:
                y = apply_layer(kind, arg, torch.cat(memory[i], 0), P)
                memory[i] = []
                queue.insert(0, (y, i + 1))
        elif kind == "tgrow":
            y = apply_layer(kind, arg, xt, P)
            for k in reversed(range(y.shape[0])):
                queue.insert(0, (y[k:k + 1], i + 1))
        else:
            queue.insert(0, (apply_layer(kind, arg, xt, P), i + 1))
    return torch.cat(out, 0)


# ---------------------------------------------------------------- whole-clip API
def post_decode(y, p):
    if p > 1:
        y = F.pixel_shuffle(y, p)
    return y.clamp(0, 1)


def decode_video(latents, P, p):
    """latents [F, z, h, w] -> frames [4F-3, 3, H, W] in [0, 1]."""
    return post_decode(run_parallel(decoder_layers(p), latents, P), p)[TRIM:]


def decode_chunked(latents, P, p, chunk):
    """Mode 3: parallel per chunk, MemBlock states carried, trim once at the start."""
    state, outs = {}, []
    for s in range(0, latents.shape[0], chunk):
        outs.append(post_decode(run_parallel(decoder_layers(p), latents[s:s + chunk], P, state), p))
    return torch.cat(outs, 0)[TRIM:]


def pre_encode(frames, p):
    x = F.pixel_unshuffle(frames, p) if p > 1 else frames
    if x.shape[0] % 4:
        x = torch.cat([x, x[-1:].repeat(4 - x.shape[0] % 4, 1, 1, 1)], 0)
    return x


def encode_video(frames, P, p):
    """frames [T, 3, H, W] in [0, 1] -> latents [ceil(T/4), z, H/8p, W/8p]."""
    return run_parallel(encoder_layers(p), pre_encode(frames, p), P)


# ---------------------------------------------------------------- safetensors by hand
ST_DTYPES = {torch.float32: ("F32", np.float32), torch.float16: ("F16", np.float16)}


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for name, t in tensors.items():
        dt, npdt = ST_DTYPES[t.dtype]
        b = t.detach().contiguous().numpy().astype(npdt, copy=False).tobytes(order="C")
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def maxdiff(a, b):
    return (a - b).abs().max().item()


def smooth_video(T, H, W, gen):
    """Frames in [0, 1] with spatial/temporal structure (not pure noise)."""
    ys = torch.linspace(0, 1, H)[:, None]
    xs = torch.linspace(0, 1, W)[None, :]
    ph = torch.rand(3, 4, generator=gen) * 6.28
    fr = []
    for t in range(T):
        ch = []
        for c in range(3):
            v = 0.5 + 0.25 * torch.sin(6 * xs + ph[c, 0] + 0.3 * t) * torch.cos(5 * ys + ph[c, 1]) \
                + 0.15 * torch.sin(11 * (xs + ys) + ph[c, 2] - 0.2 * t)
            ch.append(v)
        fr.append(torch.stack(ch, 0))
    v = torch.stack(fr, 0) + 0.03 * torch.randn(T, 3, H, W, generator=gen)
    return v.clamp(0, 1)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "taehv")
    os.makedirs(outdir, exist_ok=True)
    torch.set_grad_enabled(False)
    torch.set_num_threads(2)
    script_hash = hashlib.sha256(open(__file__, "rb").read()).hexdigest()
    manifest = {"script": "tests/reference/make_taehv_fixtures.py", "script_sha256": script_hash,
                "torch": torch.__version__, "seed": SEED, "nf_decoder": NF_DEC,
                "nf_encoder": NF_ENC, "weights_dtype": "F16", "files": {}}

    variants = [("21", 16, 1, (6, 8, 12), 10), ("22", 48, 2, (4, 4, 6), 7)]
    for tag, z, p, (nlat, h, w), t_enc in variants:
        gen = torch.Generator().manual_seed(SEED + z)
        P = make_params(z, p, gen)
        name = f"taehv_tiny_{tag}"
        write_safetensors(os.path.join(outdir, name + ".safetensors"),
                          {k: v.to(torch.float16) for k, v in sorted(P.items())},
                          {"variant": f"taew2_{tag[1]}", "note": "random narrow test weights"})

        latents = torch.randn(nlat, z, h, w, generator=gen)
        frames = decode_video(latents, P, p)
        Hp, Wp = h * 8 * p, w * 8 * p
        assert frames.shape == (4 * nlat - 3, 3, Hp, Wp), frames.shape
        # independent time-semantics checks
        seq = post_decode(run_sequential(decoder_layers(p), latents, P), p)[TRIM:]
        d_seq = maxdiff(seq, frames)
        d_chunk = max(maxdiff(decode_chunked(latents, P, p, c), frames) for c in (1, 2, 3, 4))
        assert d_seq < 1e-4 and d_chunk < 1e-4, (d_seq, d_chunk)
        frac_clamped = ((frames == 0) | (frames == 1)).float().mean().item()
        write_safetensors(os.path.join(outdir, name + "_decode.safetensors"),
                          {"latents": latents, "frames": frames})

        vid = smooth_video(t_enc, Hp, Wp, gen)
        lat = encode_video(vid, P, p)
        assert lat.shape == ((t_enc + 3) // 4, z, h, w), lat.shape
        seq_lat = run_sequential(encoder_layers(p), pre_encode(vid, p), P)
        d_enc = maxdiff(seq_lat, lat)
        assert d_enc < 1e-4, d_enc
        write_safetensors(os.path.join(outdir, name + "_encode.safetensors"),
                          {"frames": vid, "latents": lat})

        manifest["files"][name] = {
            "variant": f"taew2_{tag[1]}", "latent_channels": z, "patch": p,
            "decode": {"latents": list(latents.shape), "frames": list(frames.shape),
                       "frames_mean": frames.mean().item(), "frames_std": frames.std().item(),
                       "fraction_clamped": frac_clamped,
                       "max_diff_vs_sequential": d_seq, "max_diff_vs_chunked_1_2_3_4": d_chunk},
            "encode": {"frames": list(vid.shape), "latents": list(lat.shape),
                       "latents_std": lat.std().item(), "max_diff_vs_sequential": d_enc},
        }
        print(f"{name}: decode {tuple(latents.shape)} -> {tuple(frames.shape)} mean "
              f"{frames.mean():.3f} std {frames.std():.3f} clamped {frac_clamped:.3f} "
              f"(seq {d_seq:.1e}, chunked {d_chunk:.1e}); encode {tuple(vid.shape)} -> "
              f"{tuple(lat.shape)} std {lat.std():.3f} (seq {d_enc:.1e})")
    manifest["command"] = "/usr/bin/python3 tests/reference/make_taehv_fixtures.py" + \
        "".join(" " + a for a in sys.argv[1:])
    manifest["sha256"] = {
        fn: hashlib.sha256(open(os.path.join(outdir, fn), "rb").read()).hexdigest()
        for fn in sorted(os.listdir(outdir)) if fn.endswith(".safetensors")}
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
