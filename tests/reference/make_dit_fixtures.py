#!/usr/bin/python3
"""Independent PyTorch reference for the causal Wan2.1 DiT and the Self-Forcing /
LongLive chunk loop; writes the small fixtures the C implementation is checked against.

Written from the facts in docs/spec-wan-causal-dit.md (sections 2, 3, 5.1-5.6) and
docs/spec-kv-sink-policies.md (sections 0-1). It is a plain functional model over a
dict of tensors (no nn.Module), float32 everywhere except where upstream uses more:
the timestep sinusoid and RoPE are computed in float64, and the x0 conversion too.

Run:  /usr/bin/python3 tests/reference/make_dit_fixtures.py --out tests/fixtures/dit
(Debian python3-torch 1.13 CPU; the pyenv python3 on PATH has no torch.)
The output is deterministic: every random draw comes from a seeded torch.Generator.
"""
import argparse
import hashlib
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

SEED = 20261124
# activation dtype; main() reruns one loop with float64 to measure the float32 noise floor
ACT = torch.float32

# The tiny config. Keys follow the diffusers-style config.json of Wan checkpoints.
CONFIG = {
    "dim": 128, "ffn_dim": 256, "num_heads": 2, "num_layers": 2,
    "in_dim": 4, "out_dim": 4, "text_dim": 64, "freq_dim": 32, "eps": 1e-6,
    "patch_size": [1, 2, 2], "text_len": 16,
}
LAT_H, LAT_W = 8, 8          # latent frame size -> S = 4*4 = 16 tokens per frame
CHUNK = 3                    # latent frames per chunk (num_frame_per_block)
STEPS = [1000, 750, 500, 250]
SHIFT = 5.0

# ----------------------------------------------------------------------------
# safetensors (written by hand; the safetensors package is not installed)
# ----------------------------------------------------------------------------
_DT = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
_DT_INV = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def st_save(path, tensors, metadata=None):
    """tensors: name -> torch/np array. Names sorted, data packed in that order,
    header padded with spaces to a multiple of 8 (as the reference writer does)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        if a.dtype not in _DT:
            raise ValueError(f"{path}: tensor {name} has dtype {a.dtype}, writer knows F32/F64/I64")
        b = a.tobytes()
        header[name] = {"dtype": _DT[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(b)]}
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


def st_load(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, d in header.items():
        s, e = d["data_offsets"]
        out[name] = torch.from_numpy(
            np.frombuffer(raw[base + s:base + e], dtype=_DT_INV[d["dtype"]]).reshape(d["shape"]).copy())
    return out, meta


# ----------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------
def param_shapes(cfg):
    """Upstream names and shapes (spec section 4.1), in a fixed order (the draw order)."""
    D, FF, C, T, FQ = cfg["dim"], cfg["ffn_dim"], cfg["in_dim"], cfg["text_dim"], cfg["freq_dim"]
    p = cfg["patch_size"]
    out_per_tok = p[0] * p[1] * p[2] * cfg["out_dim"]
    s = [("patch_embedding.weight", [D, C] + p), ("patch_embedding.bias", [D]),
         ("text_embedding.0.weight", [D, T]), ("text_embedding.0.bias", [D]),
         ("text_embedding.2.weight", [D, D]), ("text_embedding.2.bias", [D]),
         ("time_embedding.0.weight", [D, FQ]), ("time_embedding.0.bias", [D]),
         ("time_embedding.2.weight", [D, D]), ("time_embedding.2.bias", [D]),
         ("time_projection.1.weight", [6 * D, D]), ("time_projection.1.bias", [6 * D])]
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        s.append((b + "modulation", [1, 6, D]))
        for att in ("self_attn", "cross_attn"):
            for lin in "qkvo":
                s += [(f"{b}{att}.{lin}.weight", [D, D]), (f"{b}{att}.{lin}.bias", [D])]
            s += [(f"{b}{att}.norm_q.weight", [D]), (f"{b}{att}.norm_k.weight", [D])]
        s += [(b + "norm3.weight", [D]), (b + "norm3.bias", [D]),
              (b + "ffn.0.weight", [FF, D]), (b + "ffn.0.bias", [FF]),
              (b + "ffn.2.weight", [D, FF]), (b + "ffn.2.bias", [D])]
    s += [("head.modulation", [1, 2, D]), ("head.head.weight", [out_per_tok, D]),
          ("head.head.bias", [out_per_tok])]
    return s


def to_bf16_grid(t):
    """Round to the nearest bfloat16-representable value (kept as float32), so the same
    weights can later be stored losslessly as bf16 too."""
    return t.to(torch.bfloat16).to(torch.float32)


def make_weights(cfg, gen):
    """Random weights with std chosen so activations stay O(1): linear weights
    ~ 1/sqrt(fan_in) clipped to [0.05, 0.2], biases 0.05, norm weights 1 + 0.1 n,
    modulation tables 0.1 (upstream initialises them with randn/sqrt(dim))."""
    P = {}
    for name, shape in param_shapes(cfg):
        r = torch.randn(shape, generator=gen, dtype=torch.float32)
        if name.endswith("modulation"):
            w = 0.1 * r
        elif ".norm" in name:          # norm_q / norm_k / norm3
            w = 1.0 + 0.1 * r if name.endswith("weight") else 0.05 * r
        elif name.endswith("bias"):
            w = 0.05 * r
        else:
            fan_in = int(np.prod(shape[1:]))
            w = min(0.2, max(0.05, 1.0 / math.sqrt(fan_in))) * r
        P[name] = to_bf16_grid(w)
    return P


# ----------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------
def linear(x, P, name):
    return x @ P[name + ".weight"].t() + P[name + ".bias"]


def layer_norm(x, eps, w=None, b=None):
    return Fn.layer_norm(x, (x.shape[-1],), weight=w, bias=b, eps=eps)


def rms_norm(x, w, eps):
    # over the full dim (all heads together), before the head split
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def gelu_tanh(x):
    return Fn.gelu(x, approximate="tanh")


def time_sinusoid(t, freq_dim):
    """[cos | sin] of raw t times 10000^(-k/half), in float64, then float32."""
    half = freq_dim // 2
    pos = t.to(torch.float64)
    omega = torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                      -torch.arange(half, dtype=torch.float64) / half)
    ang = pos[:, None] * omega[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], dim=1).to(ACT)


def rope_split(head_dim):
    """Pairs per axis (t, h, w): c - 2(c//3), c//3, c//3 with c = head_dim/2."""
    c = head_dim // 2
    return [c - 2 * (c // 3), c // 3, c // 3]


def rope_angles(head_dim, frames, hp, wp, start_frame):
    """Angle [L, head_dim/2] (float64) for every token in frame-major order.
    Axis a with p_a pairs has omega_j = 10000^(-2j / (2 p_a)); temporal position is the
    absolute latent frame index start_frame + i, spatial ones the token row / column."""
    pt, ph, pw = rope_split(head_dim)

    def om(p):
        return torch.pow(torch.tensor(10000.0, dtype=torch.float64),
                         -2.0 * torch.arange(p, dtype=torch.float64) / (2 * p))
    f = torch.arange(start_frame, start_frame + frames, dtype=torch.float64)
    h = torch.arange(hp, dtype=torch.float64)
    w = torch.arange(wp, dtype=torch.float64)
    at = (f[:, None] * om(pt)[None])[:, None, None, :].expand(frames, hp, wp, pt)
    ah = (h[:, None] * om(ph)[None])[None, :, None, :].expand(frames, hp, wp, ph)
    aw = (w[:, None] * om(pw)[None])[None, None, :, :].expand(frames, hp, wp, pw)
    return torch.cat([at, ah, aw], dim=-1).reshape(frames * hp * wp, -1)


def rope_apply(x, ang):
    """x [L, n, d] float32; interleaved pairs (2j, 2j+1) rotated by ang [L, d/2], in float64."""
    L, n, d = x.shape
    xd = x.to(torch.float64).reshape(L, n, d // 2, 2)
    a, b = xd[..., 0], xd[..., 1]
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    out = torch.stack([a * c - b * s, a * s + b * c], dim=-1)
    return out.reshape(L, n, d).to(ACT)


def attention(q, k, v, mask=None):
    """q [Lq, n, d], k/v [Lk, n, d]; softmax(q k^T / sqrt(d)) v, no mask unless given
    (mask [Lq, Lk] bool, True = may attend)."""
    d = q.shape[-1]
    s = torch.einsum("qnd,knd->nqk", q, k) / math.sqrt(d)
    if mask is not None:
        s = s.masked_fill(~mask[None], float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.einsum("nqk,knd->qnd", p, v)


# ----------------------------------------------------------------------------
# KV cache (spec 5.5, LongLive v1.0 semantics; Self-Forcing is the sink = 0 case)
# ----------------------------------------------------------------------------
class LayerKV:
    def __init__(self, cap_tokens, n, d, sink_tokens, roll):
        self.k = torch.zeros(cap_tokens, n, d, dtype=ACT)
        self.v = torch.zeros(cap_tokens, n, d, dtype=ACT)
        self.cap = cap_tokens
        self.max_att = cap_tokens          # all configs: window == capacity
        self.sink = sink_tokens
        self.roll = roll                   # local_attn_size != -1
        self.global_end = 0
        self.local_end = 0
        self.pos = torch.full((cap_tokens,), -1, dtype=torch.int64)   # absolute token in each slot

    def write_and_window(self, k, v, cs):
        """Write the call's N tokens [cs, cs+N) (K already rotated), return the keys and
        values to attend to. Mirrors the index arithmetic of spec 5.5 step by step."""
        N = k.shape[0]
        ce = cs + N
        # later passes over tokens already written count as a recompute: they may not write
        # into the sink and do not move the indices (spec 5.5 "LL1 sink protection")
        is_recompute = ce <= self.global_end and cs > 0
        if self.roll and ce > self.global_end and N + self.local_end > self.cap:
            E = N + self.local_end - self.cap           # evicted, just after the sink
            rolled = self.local_end - E - self.sink
            self.k[self.sink:self.sink + rolled] = self.k[self.sink + E:self.sink + E + rolled].clone()
            self.v[self.sink:self.sink + rolled] = self.v[self.sink + E:self.sink + E + rolled].clone()
            self.pos[self.sink:self.sink + rolled] = self.pos[self.sink + E:self.sink + E + rolled].clone()
            local_end = self.local_end + ce - self.global_end - E
        else:
            local_end = self.local_end + ce - self.global_end
        if local_end > self.cap or local_end - N < 0:
            raise RuntimeError(f"KV write [{local_end - N},{local_end}) outside buffer of {self.cap}")
        local_start = local_end - N
        ws = max(local_start, self.sink) if is_recompute else local_start
        off = ws - local_start
        if local_end > ws:
            self.k[ws:local_end] = k[off:]
            self.v[ws:local_end] = v[off:]
            self.pos[ws:local_end] = torch.arange(cs + off, ce)
        if self.sink > 0:
            lo = max(self.sink, local_end - (self.max_att - self.sink))
            kk = torch.cat([self.k[:self.sink], self.k[lo:local_end]])
            vv = torch.cat([self.v[:self.sink], self.v[lo:local_end]])
        else:
            lo = max(0, local_end - self.max_att)
            kk, vv = self.k[lo:local_end], self.v[lo:local_end]
        if not is_recompute:
            self.global_end, self.local_end = ce, local_end
        return kk, vv


def make_cache(cfg, S, window_frames, sink_frames, roll=True):
    n = cfg["num_heads"]
    d = cfg["dim"] // n
    return [LayerKV(window_frames * S, n, d, sink_frames * S, roll) for _ in range(cfg["num_layers"])]


# ----------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------
def forward(P, cfg, x, t, ctx, cache=None, start_frame=0, mask=None, rec=None, rec_blocks_detail=(0,)):
    """One call of the causal model on one chunk.
    x [F, C, H, W] latents, t [F] timesteps, ctx [text_len, text_dim].
    cache: list of LayerKV (KV path, no mask) or None (then attention over the call's own
    tokens, optionally with a boolean token mask). Returns v [F, C_out, H, W]."""
    D, n, eps = cfg["dim"], cfg["num_heads"], cfg["eps"]
    hd = D // n
    F_, C, H, W = x.shape
    hp, wp = H // 2, W // 2
    S = hp * wp
    L = F_ * S
    R = rec if rec is not None else {}

    # patch embedding: Conv3d (1,2,2)/(1,2,2) on [1, C, F, H, W], tokens frame-major
    tok = Fn.conv3d(x.permute(1, 0, 2, 3)[None], P["patch_embedding.weight"],
                    P["patch_embedding.bias"], stride=(1, 2, 2))
    h = tok[0].reshape(D, L).t().contiguous()
    R["patch_tokens"] = h

    sin = time_sinusoid(t, cfg["freq_dim"])
    e = linear(Fn.silu(linear(sin, P, "time_embedding.0")), P, "time_embedding.2")      # [F, D]
    e0 = linear(Fn.silu(e), P, "time_projection.1").reshape(F_, 6, D)                  # [F, 6, D]
    R["time_sinusoid"], R["e"], R["e0"] = sin, e, e0

    c = linear(gelu_tanh(linear(ctx, P, "text_embedding.0")), P, "text_embedding.2")   # [Lt, D]
    R["context_emb"] = c

    ang = rope_angles(hd, F_, hp, wp, start_frame)
    cs = start_frame * S

    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        mod = P[b + "modulation"][0][None] + e0                    # [F, 6, D]
        m = [mod[:, j][:, None, :] for j in range(6)]             # each [F, 1, D]
        detail = rec is not None and i in rec_blocks_detail

        # self-attention on the modulated LN1 output
        y = (layer_norm(h, eps).reshape(F_, S, D) * (1 + m[1]) + m[0]).reshape(L, D)
        q = rms_norm(linear(y, P, b + "self_attn.q"), P[b + "self_attn.norm_q.weight"], eps)
        k = rms_norm(linear(y, P, b + "self_attn.k"), P[b + "self_attn.norm_k.weight"], eps)
        v = linear(y, P, b + "self_attn.v")
        q = rope_apply(q.reshape(L, n, hd), ang)
        k = rope_apply(k.reshape(L, n, hd), ang)
        v = v.reshape(L, n, hd)
        if cache is not None:
            kk, vv = cache[i].write_and_window(k, v, cs)
            a = attention(q, kk, vv)
        else:
            a = attention(q, k, v, mask)
        a = linear(a.reshape(L, D), P, b + "self_attn.o")
        if detail:
            R[f"block{i}_norm1_mod"], R[f"block{i}_q"], R[f"block{i}_k"], R[f"block{i}_v"] = y, q, k, v
            R[f"block{i}_self_attn_out"] = a
        h = h + (a.reshape(F_, S, D) * m[2]).reshape(L, D)
        if detail:
            R[f"block{i}_after_self"] = h

        # cross-attention: affine norm3, q/k RMSNorm, no RoPE, no mask, no gate
        xn = layer_norm(h, eps, P[b + "norm3.weight"], P[b + "norm3.bias"])
        cq = rms_norm(linear(xn, P, b + "cross_attn.q"), P[b + "cross_attn.norm_q.weight"], eps)
        ck = rms_norm(linear(c, P, b + "cross_attn.k"), P[b + "cross_attn.norm_k.weight"], eps)
        cv = linear(c, P, b + "cross_attn.v")
        ca = attention(cq.reshape(L, n, hd), ck.reshape(-1, n, hd), cv.reshape(-1, n, hd))
        h = h + linear(ca.reshape(L, D), P, b + "cross_attn.o")
        if detail:
            R[f"block{i}_after_cross"] = h

        # FFN on the modulated LN2 output, gated
        y = (layer_norm(h, eps).reshape(F_, S, D) * (1 + m[4]) + m[3]).reshape(L, D)
        f = linear(gelu_tanh(linear(y, P, b + "ffn.0")), P, b + "ffn.2")
        h = h + (f.reshape(F_, S, D) * m[5]).reshape(L, D)
        R[f"block{i}_out"] = h

    # head: modulation + e (not e0)
    hm = P["head.modulation"][0][None] + e[:, None, :]             # [F, 2, D]
    y = (layer_norm(h, eps).reshape(F_, S, D) * (1 + hm[:, 1][:, None]) + hm[:, 0][:, None]).reshape(L, D)
    out = linear(y, P, "head.head")                                # [L, 4*C_out]
    R["head_out"] = out

    # unpatchify: per-token index (q*2 + r)*C_out + c
    Co = cfg["out_dim"]
    o = out.reshape(F_, hp, wp, 2, 2, Co).permute(0, 5, 1, 3, 2, 4).reshape(F_, Co, H, W)
    R["v"] = o
    return o


# ----------------------------------------------------------------------------
# sampler (Self-Forcing FlowMatchScheduler, shift 5, extra_one_step, sigma_min 0)
# ----------------------------------------------------------------------------
def make_schedule(steps, shift):
    """float32 tables as upstream builds them; the denoising list is warped through T."""
    s = torch.linspace(1.0, 0.0, 1001)[:-1]
    sig = shift * s / (1 + (shift - 1) * s)
    T = sig * 1000.0
    ts = T[1000 - torch.tensor(steps, dtype=torch.long)]
    return sig, T, ts


def sigma_of(sig, T, t):
    """sigma looked up as argmin |T - t|."""
    return sig[torch.argmin((T - t).abs())]


def x_shape_hw(x):
    return x.shape[-2], x.shape[-1]


def run_chunks(P, cfg, noise, ctx_for_chunk, window_frames, sink_frames, steps, shift, gen,
               switch=None, roll=True):
    """The Self-Forcing / LongLive chunk loop (spec 5.4). noise [F, C, H, W] initial noise;
    fresh noise for re-noising comes from `gen`, drawn in loop order.
    ctx_for_chunk(k) -> context for chunk k. switch = (chunk, ctx): before that chunk,
    LongLive KV-recache with the new prompt (spec 5.6, global_sink true).
    Returns (latents, record dict, renoise dict)."""
    F_, C, H, W = noise.shape
    S = (H // 2) * (W // 2)
    cache = make_cache(cfg, S, window_frames, sink_frames, roll)
    sig, T, ts = make_schedule(steps, shift)
    out = torch.zeros_like(noise)
    rec, ren = {}, {}
    for ck in range(F_ // CHUNK):
        f0 = ck * CHUNK
        if switch is not None and ck == switch[0]:
            # recache: the last min(window, f0) clean latents, one forward at t = 0 with the
            # new prompt at their absolute positions; a recompute, so the sink is protected
            nrec = min(window_frames, f0)
            r0 = f0 - nrec
            rr = {}
            before = [(lc.k.clone(), lc.v.clone(), lc.global_end, lc.local_end) for lc in cache]
            forward(P, cfg, out[r0:f0], torch.zeros(nrec, dtype=ACT), switch[1], cache, r0, rec=rr)
            rec["recache.v"] = rr["v"]
            rec["recache.start_frame"] = torch.tensor([r0], dtype=torch.int64)
            S_ = (x_shape_hw(noise)[0] // 2) * (x_shape_hw(noise)[1] // 2)
            fr = cache[0].pos[::S_].clone()
            rec["recache.cache_frames"] = torch.where(fr >= 0, fr // S_, fr)
            for i, lc in enumerate(cache):
                rec[f"recache.cache_k.{i}"] = lc.k.clone()
                rec[f"recache.cache_v.{i}"] = lc.v.clone()
                rec[f"_before.{i}"] = before[i]
        ctx = ctx_for_chunk(ck)
        x = noise[f0:f0 + CHUNK]
        for si, tv in enumerate(ts):
            t = torch.full((CHUNK,), float(tv), dtype=torch.float32)
            rec[f"xt.{ck}.{si}"] = x
            v = forward(P, cfg, x, t, ctx, cache, f0)
            sg = sigma_of(sig, T, tv)
            x0 = (x.double() - sg.double() * v.double()).to(ACT)
            rec[f"v.{ck}.{si}"] = v
            rec[f"x0.{ck}.{si}"] = x0
            if si < len(ts) - 1:
                z = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(ACT)
                ren[f"renoise.{ck}.{si}"] = z
                sn = sigma_of(sig, T, ts[si + 1])
                x = (1 - sn) * x0 + sn * z
        out[f0:f0 + CHUNK] = x0
        # clean pass at t = context_noise = 0 writes the chunk's clean K/V
        forward(P, cfg, x0, torch.zeros(CHUNK, dtype=ACT), ctx, cache, f0)
    return out, rec, ren, cache


# ----------------------------------------------------------------------------
# independent checks of the reference itself
# ----------------------------------------------------------------------------
def rel_err(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def teacher_forced_v(P, cfg, outs, xt, tv, ctx, chunk, visible):
    """Non-cached forward of the whole prefix: frames of the earlier chunks as their clean
    latents at t = 0, the current chunk noisy at t = tv, one call with a block mask.
    visible(a, b): may chunk a's queries see chunk b's keys. Returns v of the last chunk."""
    S = (LAT_H // 2) * (LAT_W // 2)
    x = torch.cat([outs[:chunk * CHUNK], xt])
    t = torch.cat([torch.zeros(chunk * CHUNK), torch.full((CHUNK,), float(tv))])
    nb = chunk + 1
    cm = torch.tensor([[visible(a, b) for b in range(nb)] for a in range(nb)])
    tm = cm.repeat_interleave(CHUNK * S, 0).repeat_interleave(CHUNK * S, 1)
    return forward(P, cfg, x, t, ctx, None, 0, mask=tm)[chunk * CHUNK:]


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        raise SystemExit(f"self-check failed: {what}")


# ----------------------------------------------------------------------------
def sha256_file(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (tests/fixtures/dit)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)     # same reduction order on every run
    cfg = CONFIG
    S = (LAT_H // 2) * (LAT_W // 2)
    sig, T, ts = make_schedule(STEPS, SHIFT)
    print("timesteps", ts.tolist(), "sigmas", [float(sigma_of(sig, T, t)) for t in ts])
    check(abs(float(ts[1]) - 937.5) < 1e-3 and abs(float(ts[3]) - 625.0) < 1e-3, "warped timesteps 1000/937.5/833.3/625")

    # --- weights and embeddings (one generator, fixed draw order) ---
    g = torch.Generator().manual_seed(SEED)
    P = make_weights(cfg, g)
    ctx0 = torch.randn(cfg["text_len"], cfg["text_dim"], generator=g)
    ctx0[-6:] = 0.0                      # padded T5 rows are exact zeros
    ctx1 = torch.randn(cfg["text_len"], cfg["text_dim"], generator=g)
    ctx1[-4:] = 0.0
    meta = {"config": json.dumps(cfg), "format": "pt"}
    st_save(os.path.join(args.out, "dit_tiny.safetensors"), P, meta)
    st_save(os.path.join(args.out, "dit_tiny_prefixed.safetensors"),
            {"model." + k: v for k, v in P.items()}, {"format": "pt"})
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    st_save(os.path.join(args.out, "embeds.safetensors"),
            {"context": ctx0, "context.0": ctx0, "context.1": ctx1})

    # --- basic checks ---
    hd = cfg["dim"] // cfg["num_heads"]
    check(rope_split(hd) == [12, 10, 10], "RoPE split for head_dim 64 is 12/10/10 pairs")
    check(rope_split(128) == [22, 21, 21], "RoPE split for head_dim 128 is 22/21/21 pairs")
    xr = torch.randn(S, cfg["num_heads"], hd, generator=torch.Generator().manual_seed(1))
    check(torch.equal(rope_apply(xr[:1], rope_angles(hd, 1, 4, 4, 0)[:1]), xr[:1]),
          "RoPE at position (0,0,0) is the identity")
    check(rel_err(rope_apply(xr, rope_angles(hd, 1, 4, 4, 5)).norm(dim=-1), xr.norm(dim=-1)) < 1e-6,
          "RoPE preserves norms")

    # --- a) single forward, chunk of 3 frames, start frame 0, empty cache ---
    gx = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(CHUNK, cfg["in_dim"], LAT_H, LAT_W, generator=gx)
    t = torch.full((CHUNK,), 937.5)
    rec = {}
    v = forward(P, cfg, x, t, ctx0, make_cache(cfg, S, 6, 0), 0, rec=rec)
    # patch embedding as an explicit GEMM, K index c*4 + q*2 + r
    xp = x.reshape(CHUNK, cfg["in_dim"], 4, 2, 4, 2).permute(0, 2, 4, 1, 3, 5).reshape(CHUNK * S, -1)
    pe = xp @ P["patch_embedding.weight"].reshape(cfg["dim"], -1).t() + P["patch_embedding.bias"]
    check(rel_err(pe, rec["patch_tokens"]) < 1e-5, "Conv3d patch embedding == GEMM with K = c*4+q*2+r")
    ho = rec["head_out"].reshape(CHUNK, 4, 4, 1, 2, 2, cfg["out_dim"])
    ue = torch.einsum("fhwpqrc->cfphqwr", ho).reshape(cfg["out_dim"], CHUNK, LAT_H, LAT_W).permute(1, 0, 2, 3)
    check(torch.equal(ue, v), "unpatchify == einsum fhwpqrc->cfphqwr, channel-fastest head index")
    v_nc = forward(P, cfg, x, t, ctx0, None, 0)
    check(rel_err(v_nc, v) < 1e-5, "first chunk: cached forward == plain unmasked forward")
    for k_, a in rec.items():
        check(bool(torch.isfinite(a).all()) and float(a.abs().max()) < 50, f"forward_single {k_} finite, max |.| {float(a.abs().max()):.3g}")
    fs = {"x": x, "t": t, "context": ctx0, "start_frame": torch.tensor([0], dtype=torch.int64)}
    fs.update(rec)
    st_save(os.path.join(args.out, "forward_single.safetensors"), fs,
            {"description": "one forward, chunk of 3 frames at t=937.5, start frame 0, empty cache, prompt embeds:context"})

    # --- a2) non-square latent (8x12: 4x6 tokens, S = 24), a different t per frame, prompt
    # context.1: catches row/column mix-ups in patchify, RoPE and unpatchify, and per-frame
    # modulation broadcast bugs ---
    xr_ = torch.randn(CHUNK, cfg["in_dim"], 8, 12, generator=gx)
    tr_ = torch.tensor([1000.0, 625.0, 0.0])
    recr = {}
    vr_ = forward(P, cfg, xr_, tr_, ctx1, make_cache(cfg, 24, 3, 0), 0, rec=recr)
    check(rel_err(forward(P, cfg, xr_, tr_, ctx1, None, 0), vr_) < 1e-5, "rect: cached forward == plain forward")
    vr_t = forward(P, cfg, xr_.transpose(2, 3).contiguous(), tr_, ctx1, None, 0)
    check(rel_err(vr_t.transpose(2, 3), vr_) > 1e-2, "rect: the model is not transpose-equivariant (test is sensitive to h/w swaps)")
    keep = ("patch_tokens", "time_sinusoid", "e", "e0", "context_emb", "block0_q", "block0_k", "block0_v",
            "block0_out", "block1_out", "head_out", "v")
    fr_ = {"x": xr_, "t": tr_, "context": ctx1, "start_frame": torch.tensor([0], dtype=torch.int64)}
    fr_.update({k_: recr[k_] for k_ in keep})
    for k_, a in fr_.items():
        check(bool(torch.isfinite(a.double()).all()) and float(a.abs().max()) < 1e4, f"forward_single_rect {k_} finite")
    st_save(os.path.join(args.out, "forward_single_rect.safetensors"), fr_,
            {"description": "one forward, 3 frames of 8x12 latents (4x6 tokens), t = 1000, 625, 0 per frame, start frame 0, empty cache, prompt embeds:context.1"})

    # --- c) run_fifo: Self-Forcing style, capacity 6 frames, no sink, 2 chunks ---
    gn = torch.Generator().manual_seed(SEED + 2)
    noise = torch.randn(6, cfg["in_dim"], LAT_H, LAT_W, generator=gn)
    lat, rr, ren, _ = run_chunks(P, cfg, noise, lambda k: ctx0, 6, 0, STEPS, SHIFT, gn)
    for si, tv in enumerate(ts):
        vt = teacher_forced_v(P, cfg, lat, rr[f"xt.1.{si}"], tv, ctx0, 1, lambda a, b: b <= a)
        check(rel_err(vt, rr[f"v.1.{si}"]) < 1e-5,
              f"fifo chunk 1 step {si}: cached v == teacher-forced block-causal v (rel {rel_err(vt, rr[f'v.1.{si}']):.2e})")
    check(bool(torch.isfinite(lat).all()) and float(lat.abs().max()) < 50, f"fifo latents finite, max {float(lat.abs().max()):.3g}")
    st_save(os.path.join(args.out, "noise_fifo.safetensors"), dict(noise=noise, **ren))
    ex = {"latents": lat, "timesteps": ts, "sigmas": torch.stack([sigma_of(sig, T, t_) for t_ in ts])}
    ex.update(rr)
    st_save(os.path.join(args.out, "expected_fifo.safetensors"), ex,
            {"description": "Self-Forcing loop, kv window 6 frames, sink 0, chunk 3, 2 chunks, steps 1000,750,500,250 shift 5, embeds:context"})

    # --- fifo_roll: rolling window without sink (local_attn_size 6, sink 0), 4 chunks ---
    gr = torch.Generator().manual_seed(SEED + 4)
    noise_r = torch.randn(12, cfg["in_dim"], LAT_H, LAT_W, generator=gr)
    lat_r, rr2, ren_r, cache_r = run_chunks(P, cfg, noise_r, lambda k: ctx0, 6, 0, STEPS, SHIFT, gr)
    for ck in (2, 3):
        for si in (0, 3):
            vt = teacher_forced_v(P, cfg, lat_r, rr2[f"xt.{ck}.{si}"], ts[si], ctx0, ck, lambda a, b: a - 1 <= b <= a)
            e_ = rel_err(vt, rr2[f"v.{ck}.{si}"])
            check(e_ < 1e-5, f"fifo_roll chunk {ck} step {si}: cached v == teacher-forced 2-chunk window v (rel {e_:.2e})")
    check(cache_r[0].global_end == 12 * S and cache_r[0].local_end == 6 * S, "fifo_roll: final indices global 12S, local 6S")
    check(bool(torch.isfinite(lat_r).all()) and float(lat_r.abs().max()) < 50, f"fifo_roll latents finite, max {float(lat_r.abs().max()):.3g}")
    st_save(os.path.join(args.out, "noise_fifo_roll.safetensors"), dict(noise=noise_r, **ren_r))
    exr = {"latents": lat_r, "timesteps": ex["timesteps"], "sigmas": ex["sigmas"]}
    exr.update(rr2)
    st_save(os.path.join(args.out, "expected_fifo_roll.safetensors"), exr,
            {"description": "rolling window without sink: kv window 6 frames, sink 0, chunk 3, 4 chunks (evicts at chunks 2, 3), steps 1000,750,500,250 shift 5, embeds:context"})

    # --- f3) forward at start frame 3 on a cache pre-filled by the clean pass of chunk 0 ---
    cache = make_cache(cfg, S, 6, 0)
    forward(P, cfg, lat[:3], torch.zeros(CHUNK), ctx0, cache, 0)
    f3 = {"prefill_x": lat[:3], "x": rr["xt.1.0"], "t": torch.full((CHUNK,), float(ts[0])),
          "context": ctx0, "start_frame": torch.tensor([3], dtype=torch.int64)}
    for i, lc in enumerate(cache):
        f3[f"cache_k.{i}"] = lc.k[:3 * S].clone()
        f3[f"cache_v.{i}"] = lc.v[:3 * S].clone()
    rec3 = {}
    v3 = forward(P, cfg, rr["xt.1.0"], f3["t"], ctx0, cache, 3, rec=rec3, rec_blocks_detail=())
    check(rel_err(v3, rr["v.1.0"]) < 1e-6, "forward_single_f3 v == fifo chunk 1 step 0 v")
    f3.update(rec3)
    st_save(os.path.join(args.out, "forward_single_f3.safetensors"), f3,
            {"description": "forward of chunk 1 (frames 3..5) at t=1000, start frame 3, cache holding the clean K/V of frames 0..2 (prefill pass of prefill_x at t=0, start 0)"})

    # --- d) run_sink: LongLive style, window 9 frames incl. a 3-frame sink, 5 chunks ---
    gs = torch.Generator().manual_seed(SEED + 3)
    noise_s = torch.randn(15, cfg["in_dim"], LAT_H, LAT_W, generator=gs)
    gs_state = gs.get_state()
    lat_s, rs, ren_s, cache_s = run_chunks(P, cfg, noise_s, lambda k: ctx0, 9, 3, STEPS, SHIFT, gs)
    # window rule, derived independently: the sink chunk, the previous chunk, itself
    vis = lambda a, b: b == 0 or a - 1 <= b <= a
    for ck in (1, 3, 4):
        for si in (0, 3):
            vt = teacher_forced_v(P, cfg, lat_s, rs[f"xt.{ck}.{si}"], ts[si], ctx0, ck, vis)
            e_ = rel_err(vt, rs[f"v.{ck}.{si}"])
            check(e_ < 1e-5, f"sink chunk {ck} step {si}: cached v == teacher-forced sink+window v (rel {e_:.2e})")
    check(cache_s[0].global_end == 15 * S and cache_s[0].local_end == 9 * S, "sink run: final indices global 15S, local 9S")
    check((cache_s[0].pos[::S] // S).tolist() == [0, 1, 2, 9, 10, 11, 12, 13, 14], "sink run: final buffer holds frames 0,1,2,9..14")
    check(bool(torch.isfinite(lat_s).all()) and float(lat_s.abs().max()) < 50, f"sink latents finite, max {float(lat_s.abs().max()):.3g}")
    st_save(os.path.join(args.out, "noise_sink.safetensors"), dict(noise=noise_s, **ren_s))
    ex = {"latents": lat_s, "timesteps": ex["timesteps"], "sigmas": ex["sigmas"]}
    ex.update(rs)
    st_save(os.path.join(args.out, "expected_sink.safetensors"), ex,
            {"description": "LongLive loop, kv window 9 frames incl. 3-frame sink, chunk 3, 5 chunks, steps 1000,750,500,250 shift 5, embeds:context"})

    # --- run_switch: run_sink with a prompt switch to context.1 at frame 12 (chunk 4) ---
    gs.set_state(gs_state)
    lat_w, rw, ren_w, cache_w = run_chunks(P, cfg, noise_s, lambda k: ctx0 if k < 4 else ctx1, 9, 3,
                                           STEPS, SHIFT, gs, switch=(4, ctx1))
    check(all(torch.equal(ren_w[k_], ren_s[k_]) for k_ in ren_s), "switch run draws the same renoise as the sink run")
    check(torch.equal(lat_w[:12], lat_s[:12]), "switch run == sink run before the switch")
    d_ = float((lat_w[12:] - lat_s[12:]).abs().max())
    check(d_ > 1e-3, f"the switch changes chunk 4 (max diff {d_:.3g})")
    check(bool(torch.isfinite(lat_w).all()), "switch latents finite")
    ex = {"latents": lat_w, "timesteps": ex["timesteps"], "sigmas": ex["sigmas"]}
    ex.update({k_: v_ for k_, v_ in rw.items() if k_.startswith(("xt.4.", "x0.4.", "v.4.", "recache."))})
    check(rw["recache.cache_frames"].tolist() == [0, 1, 2, 6, 7, 8, 9, 10, 11], "switch: buffer frame-slots hold frames 0,1,2,6..11 after the recache")
    sink_t, win_t = 3 * S, 9 * S
    for i in range(cfg["num_layers"]):
        bk, bv, ge, le = rw[f"_before.{i}"]
        ak = rw[f"recache.cache_k.{i}"]
        check(torch.equal(ak[:sink_t], bk[:sink_t]) and torch.equal(rw[f"recache.cache_v.{i}"][:sink_t], bv[:sink_t]),
              f"layer {i}: recache leaves the sink slots untouched (old prompt)")
        dk = float((ak[sink_t:] - bk[sink_t:]).abs().max())
        if i == 0:
            # layer-0 K/V come before any cross-attention, so they do not depend on the prompt:
            # the recache must reproduce the clean-pass K/V of frames 6..11 in the same slots
            check(dk < 1e-6, f"layer 0: recached K of frames 6..11 == their clean-pass K (max diff {dk:.2e})")
        else:
            check(dk > 1e-3, f"layer {i}: recache rewrites slots 3..8 under the new prompt (max diff {dk:.3g})")
        check((ge, le) == (12 * S, win_t) and (cache_w[i].global_end, cache_w[i].local_end) == (15 * S, win_t),
              f"layer {i}: recache does not move the indices")
    st_save(os.path.join(args.out, "expected_switch.safetensors"), ex,
            {"description": "run_sink + LongLive KV-recache switch to embeds:context.1 at frame 12 (chunk 4), global_sink true; noise from noise_sink.safetensors"})

    # --- run_switch_f6: switch at frame 6 (chunk 2): the recache window starts at frame 0, so
    # the pass is not a recompute (start 0) and rewrites the sink under the new prompt too ---
    gs.set_state(gs_state)
    lat_6, r6, ren_6, cache_6 = run_chunks(P, cfg, noise_s, lambda k: ctx0 if k < 2 else ctx1, 9, 3,
                                           STEPS, SHIFT, gs, switch=(2, ctx1))
    check(all(torch.equal(ren_6[k_], ren_s[k_]) for k_ in ren_s), "switch_f6 run draws the same renoise as the sink run")
    check(torch.equal(lat_6[:6], lat_s[:6]), "switch_f6 run == sink run before the switch")
    check(int(r6["recache.start_frame"][0]) == 0, "switch_f6 recaches frames 0..5")
    check(r6["recache.cache_frames"].tolist() == [0, 1, 2, 3, 4, 5, -1, -1, -1], "switch_f6: buffer frame-slots hold frames 0..5 after the recache")
    for i in range(cfg["num_layers"]):
        bk, bv, ge, le = r6[f"_before.{i}"]
        ak = r6[f"recache.cache_k.{i}"]
        dsink = float((ak[:3 * S] - bk[:3 * S]).abs().max())
        dall = float((ak[:6 * S] - bk[:6 * S]).abs().max())
        if i == 0:
            check(dall < 1e-6, f"switch_f6 layer 0: recached K of frames 0..5 == their clean-pass K (max diff {dall:.2e})")
        else:
            check(dsink > 1e-3, f"switch_f6 layer {i}: recache rewrites the sink under the new prompt (max diff {dsink:.3g})")
        check((ge, le) == (6 * S, 6 * S) and (cache_6[i].global_end, cache_6[i].local_end) == (15 * S, 9 * S),
              f"switch_f6 layer {i}: indices 6S/6S around the recache, 15S/9S at the end")
    ex6 = {"latents": lat_6, "timesteps": ex["timesteps"], "sigmas": ex["sigmas"]}
    ex6.update({k_: v_ for k_, v_ in r6.items()
                if k_.startswith(("xt.2.", "x0.2.", "v.2.", "xt.3.", "x0.3.", "v.3.", "xt.4.", "x0.4.", "v.4.", "recache."))})
    st_save(os.path.join(args.out, "expected_switch_f6.safetensors"), ex6,
            {"description": "run_sink + LongLive KV-recache switch to embeds:context.1 at frame 6 (chunk 2; recache of frames 0..5 from slot 0, sink rewritten), global_sink true; noise from noise_sink.safetensors"})

    # --- float32 noise floor: the switch run again with float64 activations and weights ---
    global ACT
    ACT = torch.float64
    gs.set_state(gs_state)
    P64 = {k_: v_.double() for k_, v_ in P.items()}
    lat_64, _, _, _ = run_chunks(P64, cfg, noise_s.double(), lambda k: ctx0.double() if k < 4 else ctx1.double(),
                                 9, 3, STEPS, SHIFT, gs, switch=(4, ctx1.double()))
    ACT = torch.float32
    floor = rel_err(lat_w.double(), lat_64)
    check(floor < 1e-5, f"switch run: float32 latents vs a float64 rerun, rel err {floor:.2e} (the 1e-4 tolerance has room)")

    # --- e) manifest ---
    script = os.path.abspath(__file__)
    runs = {
        "fifo": {"policy": "fifo", "kv_window_frames": 6, "kv_sink_frames": 0, "chunk_frames": CHUNK,
                 "frames": 6, "chunks": 2, "steps": STEPS, "shift": SHIFT,
                 "timesteps": ts.tolist(), "sigmas": ex["sigmas"].tolist(),
                 "embeds": "context", "noise_file": "noise_fifo.safetensors",
                 "expected_file": "expected_fifo.safetensors"},
        "fifo_roll": {"policy": "fifo", "kv_window_frames": 6, "kv_sink_frames": 0, "chunk_frames": CHUNK,
                      "frames": 12, "chunks": 4, "steps": STEPS, "shift": SHIFT,
                      "timesteps": ts.tolist(), "sigmas": ex["sigmas"].tolist(),
                      "embeds": "context", "noise_file": "noise_fifo_roll.safetensors",
                      "expected_file": "expected_fifo_roll.safetensors"},
        "sink": {"policy": "sink", "kv_window_frames": 9, "kv_sink_frames": 3, "chunk_frames": CHUNK,
                 "frames": 15, "chunks": 5, "steps": STEPS, "shift": SHIFT,
                 "timesteps": ts.tolist(), "sigmas": ex["sigmas"].tolist(),
                 "embeds": "context", "noise_file": "noise_sink.safetensors",
                 "expected_file": "expected_sink.safetensors"},
        "switch": {"policy": "sink", "kv_window_frames": 9, "kv_sink_frames": 3, "chunk_frames": CHUNK,
                   "frames": 15, "chunks": 5, "steps": STEPS, "shift": SHIFT,
                   "timesteps": ts.tolist(), "sigmas": ex["sigmas"].tolist(),
                   "embeds": "context", "prompts": [{"frame": 12, "embeds": "context.1"}],
                   "switch_chunk": 4, "recache_frames": [3, 12], "global_sink": True,
                   "noise_file": "noise_sink.safetensors", "expected_file": "expected_switch.safetensors"},
        "switch_f6": {"policy": "sink", "kv_window_frames": 9, "kv_sink_frames": 3, "chunk_frames": CHUNK,
                      "frames": 15, "chunks": 5, "steps": STEPS, "shift": SHIFT,
                      "timesteps": ts.tolist(), "sigmas": ex["sigmas"].tolist(),
                      "embeds": "context", "prompts": [{"frame": 6, "embeds": "context.1"}],
                      "switch_chunk": 2, "recache_frames": [0, 6], "global_sink": True,
                      "noise_file": "noise_sink.safetensors", "expected_file": "expected_switch_f6.safetensors"},
    }
    files = sorted(f for f in os.listdir(args.out) if f != "manifest.json")
    man = {
        "generator": "tests/reference/make_dit_fixtures.py",
        "command": "/usr/bin/python3 tests/reference/make_dit_fixtures.py --out tests/fixtures/dit",
        "argv": [os.path.basename(sys.argv[0])] + sys.argv[1:],
        "seed": SEED, "torch": torch.__version__, "numpy": np.__version__,
        "script_sha256": sha256_file(script),
        "config": cfg, "latent_hw": [LAT_H, LAT_W], "tokens_per_frame": S,
        "forward_single": {"t": 937.5, "start_frame": 0, "embeds": "context"},
        "forward_single_rect": {"t": [1000.0, 625.0, 0.0], "start_frame": 0, "embeds": "context.1",
                                "latent_hw": [8, 12]},
        "forward_single_f3": {"t": float(ts[0]), "start_frame": 3, "embeds": "context",
                              "prefill": "prefill_x at t=0, start frame 0, window 6 sink 0"},
        "runs": runs,
        "float32_vs_float64_rel_err_switch_latents": floor,
        "files": {f: sha256_file(os.path.join(args.out, f)) for f in files},
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
        f.write("\n")

    # read everything back through the loader
    for f in files:
        if f.endswith(".safetensors"):
            st_load(os.path.join(args.out, f))
    W, m = st_load(os.path.join(args.out, "dit_tiny.safetensors"))
    check(json.loads(m["config"]) == cfg and all(torch.equal(W[k_], P[k_]) for k_ in P), "weights read back")
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {len(files) + 1} files, {total / 1e6:.2f} MB, to {args.out}")


if __name__ == "__main__":
    main()
