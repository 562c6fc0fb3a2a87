#!/usr/bin/python3
"""Independent PyTorch reference for LongLive 2.0 (causal Wan2.2-TI2V-5B code paths, UniPC,
multi-shot sink); writes the fixtures tests/test_longlive2.c checks the C implementation with.

Written from /work/shared/docs/spec-longlive2.md and the upstream code it cites
(NVlabs/LongLive@7860ad9):
  - the model: the Self-Forcing causal Wan block (the model functions of make_dit_fixtures.py,
    re-used: plain float32/float64 PyTorch, no C code involved) at the 5B's code paths:
    48 latent channels, patch (1,2,2) -> head 4*48 = 192, several heads, per-frame t;
  - UniPC: a transcription of wan_5b/utils/fm_solvers_unipc.py FlowUniPCMultistepScheduler
    (num_train_timesteps 1000, shift 1 in the constructor, set_timesteps(N, shift=5),
    solver_order 2, bh2, predict_x0, lower_order_final, corrector on, final sigma 0),
    scalar arithmetic on float32 0-dim tensors as upstream does; a fresh solver per chunk;
  - the KV cache: a literal transcription of CausalWanSelfAttention.forward's rolling buffer
    with the global sink and the pinned shot sink (effective_sink, pinned_shift, roll, the
    window = the whole buffer up to local_end) and of the pipeline's
    _pin_current_chunk / _zero_kv_data / multi_shot_rope_offset, i.e. NOT the key-set rule
    the C code implements: the fixtures record which chunks each pass really attended.
  - the loop: pipeline/causal_diffusion_inference.py _inference_inner (UniPC steps, output
    = last solver result, t = 0 context pass with the chunk's prompt, pin after it on a cut,
    rope offset = shot_index * offset on every call of the shot).

Run:  /usr/bin/python3 tests/reference/make_longlive2_fixtures.py --out tests/fixtures/longlive2
Deterministic (seeded torch.Generator).
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as Fn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dit_fixtures as R  # noqa: E402  (the plain PyTorch model functions and st_save)

SEED = 20261207
CONFIG = {
    "model_type": "ti2v",
    "dim": 48, "ffn_dim": 96, "num_heads": 3, "num_layers": 2,
    "in_dim": 48, "out_dim": 48, "text_dim": 32, "freq_dim": 32, "eps": 1e-6,
    "patch_size": [1, 2, 2], "text_len": 8,
}
LAT_H, LAT_W = 4, 6            # S = 2 * 3 = 6 tokens per latent frame
CHUNK = 2                      # latent frames per chunk (LongLive 2.0: 8)
SINK = 2                       # global sink = chunk 0 (sink_size = chunk)
WINDOW = 8                     # local_attn_size in frames = 4 chunks (LongLive 2.0: 32)
FRAMES = 20                    # 10 chunks
SHIFT = 5.0
ROPE_OFFSET = 8                # multi_shot_rope_offset
SCHEDULE = [                   # (frame, embeds, cut): two cuts, one soft switch
    (0, "context.0", False), (6, "context.1", True), (12, "context.2", True),
    (16, "context.0", False),
]


# ----------------------------------------------------------------------------
# UniPC (transcription of FlowUniPCMultistepScheduler, the configuration LL2 uses)
# ----------------------------------------------------------------------------
class FlowUniPC:
    def __init__(self, steps, shift, num_train_timesteps=1000):
        alphas = np.linspace(1, 1 / num_train_timesteps, num_train_timesteps)[::-1].copy()
        sigmas = 1.0 - alphas
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32)
        sigmas = 1.0 * sigmas / (1 + (1.0 - 1) * sigmas)          # constructor shift = 1
        sigma_max, sigma_min = sigmas[0].item(), sigmas[-1].item()
        s = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]
        s = shift * s / (1 + (shift - 1) * s)
        timesteps = s * num_train_timesteps
        self.sigmas = torch.from_numpy(np.concatenate([s, [0]]).astype(np.float32))
        self.timesteps = torch.from_numpy(timesteps).to(dtype=torch.int64)
        self.order = 2
        self.model_outputs = [None, None]
        self.lower_order_nums = 0
        self.last_sample = None
        self.step_index = 0
        self.this_order = 1

    def _lam(self, sig):
        alpha_t, sigma_t = 1 - sig, sig
        return torch.log(alpha_t) - torch.log(sigma_t)

    def uni_p(self, sample, order):
        m0 = self.model_outputs[-1]
        x = sample
        sigma_t, sigma_s0 = self.sigmas[self.step_index + 1], self.sigmas[self.step_index]
        alpha_t = 1 - sigma_t
        lambda_t, lambda_s0 = self._lam(sigma_t), self._lam(sigma_s0)
        h = lambda_t - lambda_s0
        D1s = []
        for i in range(1, order):
            si = self.step_index - i
            mi = self.model_outputs[-(i + 1)]
            rk = (self._lam(self.sigmas[si]) - lambda_s0) / h
            D1s.append((mi - m0) / rk)
        hh = -h
        h_phi_1 = torch.expm1(hh)
        B_h = torch.expm1(hh)
        x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
        if D1s:
            rhos_p = torch.tensor([0.5], dtype=x.dtype)
            pred_res = rhos_p[0] * D1s[0]
            return (x_t_ - alpha_t * B_h * pred_res).to(x.dtype)
        return x_t_.to(x.dtype)

    def uni_c(self, this_model_output, last_sample, order):
        m0 = self.model_outputs[-1]
        x = last_sample
        sigma_t, sigma_s0 = self.sigmas[self.step_index], self.sigmas[self.step_index - 1]
        alpha_t = 1 - sigma_t
        lambda_t, lambda_s0 = self._lam(sigma_t), self._lam(sigma_s0)
        h = lambda_t - lambda_s0
        rks, D1s = [], []
        for i in range(1, order):
            si = self.step_index - (i + 1)
            mi = self.model_outputs[-(i + 1)]
            rk = (self._lam(self.sigmas[si]) - lambda_s0) / h
            rks.append(rk)
            D1s.append((mi - m0) / rk)
        rks.append(torch.tensor(1.0))
        rks = torch.stack([torch.as_tensor(r, dtype=torch.float32) for r in rks])
        hh = -h
        h_phi_1 = torch.expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        factorial_i = 1
        B_h = torch.expm1(hh)
        Rm, b = [], []
        for i in range(1, order + 1):
            Rm.append(torch.pow(rks, i - 1))
            b.append(h_phi_k * factorial_i / B_h)
            factorial_i *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial_i
        Rm = torch.stack(Rm)
        b = torch.stack(b)
        if order == 1:
            rhos_c = torch.tensor([0.5], dtype=x.dtype)
        else:
            rhos_c = torch.linalg.solve(Rm, b).to(x.dtype)
        x_t_ = sigma_t / sigma_s0 * x - alpha_t * h_phi_1 * m0
        corr_res = rhos_c[0] * D1s[0] if D1s else 0
        D1_t = this_model_output - m0
        return (x_t_ - alpha_t * B_h * (corr_res + rhos_c[-1] * D1_t)).to(x.dtype)

    def step(self, model_output, sample):
        """model_output = the flow prediction v; returns the next model input."""
        use_corrector = self.step_index > 0 and self.last_sample is not None
        sigma = self.sigmas[self.step_index]
        m = sample - sigma * model_output                       # convert_model_output
        if use_corrector:
            sample = self.uni_c(m, self.last_sample, self.this_order)
        self.model_outputs[0] = self.model_outputs[1]
        self.model_outputs[1] = m
        this_order = min(self.order, len(self.timesteps) - self.step_index)  # lower_order_final
        self.this_order = min(this_order, self.lower_order_nums + 1)
        self.last_sample = sample
        prev = self.uni_p(sample, self.this_order)
        if self.lower_order_nums < self.order:
            self.lower_order_nums += 1
        self.step_index += 1
        return prev, m, sample


# ----------------------------------------------------------------------------
# KV cache: the upstream rolling buffer with global + pinned multi-shot sink
# ----------------------------------------------------------------------------
class LL2LayerKV:
    def __init__(self, cap, n, d, S, global_sink, sink):
        self.k = torch.zeros(cap, n, d)
        self.v = torch.zeros(cap, n, d)
        self.pos = torch.full((cap,), -1, dtype=torch.int64)  # absolute token held (for records)
        self.cap, self.S = cap, S
        self.max_att = cap
        self.global_sink, self.sink = global_sink, sink
        self.global_end = self.local_end = 0
        self.pinned_start, self.pinned_len = -1, 0
        self.last_window = None

    def write_and_window(self, k, v, cs):
        N = k.shape[0]
        ce = cs + N
        G = self.global_sink
        has_pinned = self.pinned_start >= 0 and self.pinned_len > 0
        if has_pinned and self.pinned_start == G:
            eff = G + self.pinned_len
        elif has_pinned:
            eff = G
        else:
            eff = max(G, self.sink)
        tk, tv, tp = self.k.clone(), self.v.clone(), self.pos.clone()
        pinned_shift = 0
        if ce > self.global_end and N + self.local_end > self.cap:
            E = N + self.local_end - self.cap
            rolled = self.local_end - E - eff
            le = self.local_end + ce - self.global_end - E
            ls = le - N
            tk[eff:eff + rolled] = tk[eff + E:eff + E + rolled].clone()
            tv[eff:eff + rolled] = tv[eff + E:eff + E + rolled].clone()
            tp[eff:eff + rolled] = tp[eff + E:eff + E + rolled].clone()
            tk[ls:le], tv[ls:le], tp[ls:le] = k, v, torch.arange(cs, ce)
            pinned_shift = E if (has_pinned and self.pinned_start >= eff) else 0
        else:
            le = self.local_end + ce - self.global_end
            ls = le - N
            tk[ls:le], tv[ls:le], tp[ls:le] = k, v, torch.arange(cs, ce)
        ws = max(0, le - self.max_att)
        assert ws == 0  # max_attention_size == the buffer: the whole filled buffer is attended
        kk, vv = tk[ws:le], tv[ws:le]
        self.last_window = sorted(set((tp[ws:le] // (self.S * CHUNK)).tolist()))  # chunks
        # _apply_cache_updates
        self.k, self.v, self.pos = tk, tv, tp
        if pinned_shift > 0:
            self.pinned_start -= pinned_shift
        self.global_end, self.local_end = ce, le
        return kk, vv


def make_cache(cfg, S):
    n = cfg["num_heads"]
    d = cfg["dim"] // n
    return [LL2LayerKV(WINDOW * S, n, d, S, SINK * S, SINK * S) for _ in range(cfg["num_layers"])]


def pin_current_chunk(cache, nframes, S):       # _pin_current_chunk
    chunk_tokens = nframes * S
    pin_len = min(SINK * S, chunk_tokens)
    chunk_start = cache[0].local_end - chunk_tokens
    for lc in cache:
        lc.pinned_start, lc.pinned_len = chunk_start, pin_len


def zero_kv_data(cache, current_start_tokens):  # _zero_kv_data
    for lc in cache:
        lc.local_end = SINK * S_GLOBAL
        lc.global_end = current_start_tokens
        lc.pinned_start, lc.pinned_len = -1, 0


# ----------------------------------------------------------------------------
# the model (the causal Wan block of make_dit_fixtures.py; RoPE with the shot offset)
# ----------------------------------------------------------------------------
def forward(P, cfg, x, t, ctx, cache, start_frame, rope_offset):
    D, n, eps = cfg["dim"], cfg["num_heads"], cfg["eps"]
    hd = D // n
    F_, C, H, W = x.shape
    hp, wp = H // 2, W // 2
    S = hp * wp
    L = F_ * S
    tok = Fn.conv3d(x.permute(1, 0, 2, 3)[None], P["patch_embedding.weight"],
                    P["patch_embedding.bias"], stride=(1, 2, 2))
    h = tok[0].reshape(D, L).t().contiguous()
    sin = R.time_sinusoid(t, cfg["freq_dim"])
    e = R.linear(Fn.silu(R.linear(sin, P, "time_embedding.0")), P, "time_embedding.2")
    e0 = R.linear(Fn.silu(e), P, "time_projection.1").reshape(F_, 6, D)
    # _forward_inference pads every context to text_len rows with zeros before the text MLP
    # (the padded rows are attended too: context_lens is None)
    ctx = torch.cat([ctx, ctx.new_zeros(cfg["text_len"] - ctx.shape[0], ctx.shape[1])])
    c = R.linear(R.gelu_tanh(R.linear(ctx, P, "text_embedding.0")), P, "text_embedding.2")
    # compute_temporal_freqs: positions start_frame + i + shot_index * offset, angles in f64
    ang = R.rope_angles(hd, F_, hp, wp, start_frame + rope_offset)
    cs = start_frame * S
    for i in range(cfg["num_layers"]):
        b = f"blocks.{i}."
        mod = P[b + "modulation"][0][None] + e0
        m = [mod[:, j][:, None, :] for j in range(6)]
        y = (R.layer_norm(h, eps).reshape(F_, S, D) * (1 + m[1]) + m[0]).reshape(L, D)
        q = R.rms_norm(R.linear(y, P, b + "self_attn.q"), P[b + "self_attn.norm_q.weight"], eps)
        k = R.rms_norm(R.linear(y, P, b + "self_attn.k"), P[b + "self_attn.norm_k.weight"], eps)
        v = R.linear(y, P, b + "self_attn.v").reshape(L, n, hd)
        q = R.rope_apply(q.reshape(L, n, hd), ang)
        k = R.rope_apply(k.reshape(L, n, hd), ang)
        kk, vv = cache[i].write_and_window(k, v, cs)
        a = R.linear(R.attention(q, kk, vv).reshape(L, D), P, b + "self_attn.o")
        h = h + (a.reshape(F_, S, D) * m[2]).reshape(L, D)
        xn = R.layer_norm(h, eps, P[b + "norm3.weight"], P[b + "norm3.bias"])
        cq = R.rms_norm(R.linear(xn, P, b + "cross_attn.q"), P[b + "cross_attn.norm_q.weight"], eps)
        ck = R.rms_norm(R.linear(c, P, b + "cross_attn.k"), P[b + "cross_attn.norm_k.weight"], eps)
        cv = R.linear(c, P, b + "cross_attn.v")
        ca = R.attention(cq.reshape(L, n, hd), ck.reshape(-1, n, hd), cv.reshape(-1, n, hd))
        h = h + R.linear(ca.reshape(L, D), P, b + "cross_attn.o")
        y = (R.layer_norm(h, eps).reshape(F_, S, D) * (1 + m[4]) + m[3]).reshape(L, D)
        f = R.linear(R.gelu_tanh(R.linear(y, P, b + "ffn.0")), P, b + "ffn.2")
        h = h + (f.reshape(F_, S, D) * m[5]).reshape(L, D)
    hm = P["head.modulation"][0][None] + e[:, None, :]
    y = (R.layer_norm(h, eps).reshape(F_, S, D) * (1 + hm[:, 1][:, None]) + hm[:, 0][:, None]).reshape(L, D)
    out = R.linear(y, P, "head.head")
    Co = cfg["out_dim"]
    return out.reshape(F_, hp, wp, 2, 2, Co).permute(0, 5, 1, 3, 2, 4).reshape(F_, Co, H, W)


S_GLOBAL = (LAT_H // 2) * (LAT_W // 2)


def run_loop(P, cfg, noise, ctxs, steps, clean_recache=False):
    """_inference_inner with multi_shot_sink, multi_shot_rope_offset, UniPC; the prompt of
    chunk k is the last schedule line at or before its first frame."""
    F_, C, H, W = noise.shape
    S = (H // 2) * (W // 2)
    cache = make_cache(cfg, S)
    out = torch.zeros_like(noise)
    shot = 0
    keysets = []
    for ck in range(F_ // CHUNK):
        f0 = ck * CHUNK
        line = [s for s in SCHEDULE if s[0] <= f0][-1]
        ctx = ctxs[line[1]]
        is_cut = ck > 0 and line[2] and line[0] == f0
        if is_cut:
            shot += 1
        off = shot * ROPE_OFFSET
        lat = noise[f0:f0 + CHUNK]
        sch = FlowUniPC(steps, SHIFT)
        ks = None
        for t in sch.timesteps:
            tt = t * torch.ones(CHUNK, dtype=torch.float32)
            v = forward(P, cfg, lat, tt, ctx, cache, f0, off)
            if ks is None:
                ks = cache[0].last_window
            assert cache[0].last_window == ks
            lat, _, _ = sch.step(v, lat)
        out[f0:f0 + CHUNK] = lat
        if is_cut and clean_recache:
            zero_kv_data(cache, f0 * S)
        forward(P, cfg, lat, torch.zeros(CHUNK), ctx, cache, f0, off)
        clean_ks = cache[0].last_window
        if is_cut:
            pin_current_chunk(cache, CHUNK, S)
        keysets.append((ks, clean_ks))
    return out, keysets


def keyset_tensor(keysets, K):
    """[chunks, 2, K] int64: attended chunk indices of the denoising / clean pass, -1 padded."""
    a = torch.full((len(keysets), 2, K), -1, dtype=torch.int64)
    for i, (d, c) in enumerate(keysets):
        for j, ch in enumerate(d):
            a[i, 0, j] = ch
        for j, ch in enumerate(c):
            a[i, 1, j] = ch
    return a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/longlive2")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    cfg = {k: v for k, v in CONFIG.items()}
    P = R.make_weights(cfg, gen)
    R.st_save(os.path.join(args.out, "dit_tiny.safetensors"), P)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=1)
        f.write("\n")
    ctxs = {f"context.{i}": torch.randn(5, cfg["text_dim"], generator=gen) for i in range(3)}
    R.st_save(os.path.join(args.out, "embeds.safetensors"), ctxs)
    noise = R.to_bf16_grid(torch.randn(FRAMES, 48, LAT_H, LAT_W, generator=gen))
    R.st_save(os.path.join(args.out, "noise.safetensors"), {"noise": noise})
    with open(os.path.join(args.out, "schedule.jsonl"), "w") as f:
        for fr, em, cut in SCHEDULE:
            d = {"frame": fr, "embeds": em}
            if cut:
                d["cut"] = True
            f.write(json.dumps(d) + "\n")

    K = WINDOW // CHUNK
    manifest = {"config": CONFIG, "latent": [LAT_H, LAT_W], "chunk": CHUNK, "sink": SINK,
                "window": WINDOW, "frames": FRAMES, "shift": SHIFT,
                "shot_rope_offset": ROPE_OFFSET, "schedule": SCHEDULE, "runs": {}}
    for name, steps, clean in (("unipc4", 4, False), ("unipc2", 2, False),
                               ("unipc4_clean", 4, True)):
        lat, ks = run_loop(P, cfg, noise, ctxs, steps, clean)
        R.st_save(os.path.join(args.out, f"expected_{name}.safetensors"),
                  {"latents": lat, "keysets": keyset_tensor(ks, K)})
        manifest["runs"][name] = {"steps": steps, "shot_clean_recache": clean,
                                  "keysets": [[list(a), list(b)] for a, b in ks]}
        print(name, "keysets", ks)

    # UniPC alone: tables for 2, 3, 4 steps and one chunk's update sequence with given v's
    up = {}
    for n in (2, 3, 4):
        s = FlowUniPC(n, SHIFT)
        up[f"sigmas.{n}"] = s.sigmas.clone()
        up[f"timesteps.{n}"] = s.timesteps.to(torch.float64)  # integers, stored as floats
    for n in (2, 3, 4):
        s = FlowUniPC(n, SHIFT)
        x = R.to_bf16_grid(torch.randn(2, 48, 2, 2, generator=gen))
        up[f"seq{n}.x.0"] = x.clone()
        for i in range(n):
            v = torch.randn(2, 48, 2, 2, generator=gen)
            up[f"seq{n}.v.{i}"] = v
            x, m, xc = s.step(v, x)
            up[f"seq{n}.m.{i}"] = m
            up[f"seq{n}.xc.{i}"] = xc
            up[f"seq{n}.x.{i + 1}"] = x
    R.st_save(os.path.join(args.out, "unipc.safetensors"), up)
    import hashlib
    manifest["seed"] = SEED
    manifest["torch"] = torch.__version__
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
