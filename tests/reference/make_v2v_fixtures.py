#!/usr/bin/python3
"""PyTorch reference for video-to-video's strength schedule (docs/INPUTS.md): which
sampler steps a chunk runs for a strength, the noise level the input latent gets, and
whole chunks through the tiny causal DiT over the KV cache; writes the fixtures
tests/test_v2v.c checks the runtime against (1e-4).

Definition (written here independently of the C code, from docs/INPUTS.md):
  N steps, strength S in [0, 1]: r = floor(S*N + 0.5) (halves up), r = max(r, 1),
  start k = N - r. k = 0: the chunk starts from the noise alone (text-to-video).
  k >= 1: x_k = (1 - sigma_k) x_in + sigma_k eps (eps: the chunk's initial noise),
  then steps k..N-1 exactly as the Self-Forcing / LongLive chunk loop runs them
  (x0 = x - sigma v; re-noise with the next step's sigma and fresh noise
  renoise.{chunk}.{step} by absolute step index), then the clean pass at t = 0.

The DiT, the cache and the schedule are make_dit_fixtures.py's (imported), with the
weights and embeddings of tests/fixtures/dit (written by that script).

LongLive 2.0 (UniPC): the same start index; x_k as above with FlowUniPC's sigma_k; the
solver starts at step_index k with no history (as diffusers' img2img pipelines start a
multistep scheduler: set_begin_index(t_start), timesteps[t_start:]), so its first update is
order 1; the model, multishot cache (global sink = chunk 0) and FlowUniPC are
make_longlive2_fixtures.py's, the weights and embeddings tests/fixtures/longlive2's.

Run:  /usr/bin/python3 tests/reference/make_v2v_fixtures.py --out tests/fixtures/v2v
"""
import argparse
import hashlib
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dit_fixtures as R  # noqa: E402
import make_longlive2_fixtures as L2  # noqa: E402  (the ti2v model, its cache, FlowUniPC)

SEED = 20261207
FRAMES = 9            # 3 chunks of 3: the third chunk evicts from the window
WINDOW, SINK = 6, 3   # sink policy: 3 sink frames + 3 more
STRENGTHS = {"s100": 1.0, "s060": 0.6, "s050": 0.5, "s030": 0.3, "s000": 0.0}


def start_index(n, s):
    r = int(math.floor(s * n + 0.5))
    r = max(1, min(n, r))
    return n - r


def run_v2v(P, cfg, x_in, noise, renoise, ctx, k0):
    """The chunk loop from step k0 over FRAMES frames; returns (latents, rec)."""
    F_, C, H, W = noise.shape
    S = (H // 2) * (W // 2)
    cache = R.make_cache(cfg, S, WINDOW, SINK)
    sig, T, ts = R.make_schedule(R.STEPS, R.SHIFT)
    out = torch.zeros_like(noise)
    rec = {"steps_run": []}
    for ck in range(F_ // R.CHUNK):
        f0 = ck * R.CHUNK
        x = noise[f0:f0 + R.CHUNK].clone()
        if k0 > 0:
            sk = R.sigma_of(sig, T, ts[k0])
            x = ((1 - sk.double()) * x_in[f0:f0 + R.CHUNK].double() + sk.double() * x.double()).float()
        rec[f"xt.{ck}.{k0}"] = x
        for si in range(k0, len(ts)):
            tv = ts[si]
            if ck == 0:
                rec["steps_run"].append(si)
            t = torch.full((R.CHUNK,), float(tv), dtype=torch.float32)
            v = R.forward(P, cfg, x, t, ctx, cache, f0)
            sg = R.sigma_of(sig, T, tv)
            x0 = (x.double() - sg.double() * v.double()).float()
            if si < len(ts) - 1:
                sn = R.sigma_of(sig, T, ts[si + 1])
                x = (1 - sn) * x0 + sn * renoise[f"renoise.{ck}.{si}"]
        out[f0:f0 + R.CHUNK] = x0
        R.forward(P, cfg, x0, torch.zeros(R.CHUNK), ctx, cache, f0)
    return out, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--dit-fixtures", default=os.path.join(os.path.dirname(__file__), "..",
                                                            "fixtures", "dit"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    cfg = R.CONFIG
    P, _ = R.st_load(os.path.join(args.dit_fixtures, "dit_tiny.safetensors"))
    emb, _ = R.st_load(os.path.join(args.dit_fixtures, "embeds.safetensors"))
    ctx = emb["context"]
    g = torch.Generator().manual_seed(SEED)
    shape = (FRAMES, cfg["in_dim"], R.LAT_H, R.LAT_W)
    x_in = torch.randn(shape, generator=g) * 0.8 + 0.1   # a latent-like input
    noise = torch.randn(shape, generator=g)
    renoise = {}
    for ck in range(FRAMES // R.CHUNK):
        for si in range(len(R.STEPS) - 1):
            renoise[f"renoise.{ck}.{si}"] = torch.randn((R.CHUNK,) + shape[1:], generator=g)
    sig, T, ts = R.make_schedule(R.STEPS, R.SHIFT)
    sigmas = torch.stack([R.sigma_of(sig, T, t) for t in ts])

    # the definition's edges
    N = len(R.STEPS)
    R.check([start_index(N, s) for s in (1.0, 0.875, 0.6, 0.5, 0.375, 0.3, 0.125, 0.0)] ==
            [0, 0, 2, 2, 2, 3, 3, 3], "start index table for 4 steps (halves round up, >= 1 step)")
    R.check(abs(float(sigmas[0]) - 1.0) < 1e-7, "step 0 of 1000,750,500,250 has sigma 1 (pure noise)")

    exp = {"input": x_in, "sigmas": sigmas, "timesteps": ts.float()}
    results = {}
    for name, s in STRENGTHS.items():
        k0 = start_index(N, s)
        lat, rec = run_v2v(P, cfg, x_in, noise, renoise, ctx, k0)
        results[name] = lat
        exp[f"latents.{name}"] = lat
        exp[f"start.{name}"] = torch.tensor([k0], dtype=torch.float32)
        exp[f"steps_run.{name}"] = torch.tensor(rec["steps_run"], dtype=torch.float32)
        exp[f"xt_start.{name}"] = rec[f"xt.0.{k0}"]
        R.check(rec["steps_run"] == list(range(k0, N)), f"{name}: steps {k0}..{N - 1} run")
        R.check(bool(torch.isfinite(lat).all()), f"{name}: finite latents")
    # strength 1 is the text-to-video loop of make_dit_fixtures (same noise, same cache)
    t2v, _, _, _ = R.run_chunks(P, cfg, noise, lambda k: ctx, WINDOW, SINK, R.STEPS, R.SHIFT,
                                _Replay(renoise))
    R.check(R.rel_err(results["s100"], t2v) < 1e-6, "strength 1 == the text-to-video chunk loop")
    # a smaller strength starts closer to the input (the random tiny DiT is untrained, so only
    # the starting point, not the result, can be expected to follow the input)
    d = [R.rel_err(exp[f"xt_start.{n}"], x_in[:3]) for n in ("s100", "s050", "s030")]
    print("start x_t rel distance to the input: s100 %.3f s050 %.3f s030 %.3f" % tuple(d))
    R.check(d[0] > d[1] > d[2], "less strength, a start closer to the input")
    # the noise level: x_k = (1 - sigma_k) x_in + sigma_k eps
    k = start_index(N, 0.5)
    want = (1 - float(sigmas[k])) * x_in[:3] + float(sigmas[k]) * noise[:3]
    R.check(R.rel_err(exp["xt_start.s050"], want) < 1e-6, "s050 starts at (1-sigma_2) x_in + sigma_2 eps")

    unipc_part(args)

    noise_file = dict(renoise)
    noise_file["noise"] = noise
    R.st_save(os.path.join(args.out, "noise.safetensors"), noise_file)
    R.st_save(os.path.join(args.out, "expected.safetensors"), exp,
              {"description": "video-to-video strength schedule, tiny DiT of tests/fixtures/dit, "
                              "sink 3 window 6, 9 frames in chunks of 3, prompt embeds:context"})
    man = {"generator": "tests/reference/make_v2v_fixtures.py",
           "command": "/usr/bin/python3 tests/reference/make_v2v_fixtures.py --out tests/fixtures/v2v",
           "seed": SEED, "torch": torch.__version__, "frames": FRAMES, "window": WINDOW,
           "sink": SINK, "steps": R.STEPS, "shift": R.SHIFT, "strengths": STRENGTHS,
           "script_sha256": hashlib.sha256(open(__file__, "rb").read()).hexdigest(),
           "files": {f: hashlib.sha256(open(os.path.join(args.out, f), "rb").read()).hexdigest()
                     for f in ("noise.safetensors", "expected.safetensors",
                               "unipc_noise.safetensors", "unipc_expected.safetensors")}}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


UNIPC_FRAMES = 10   # 5 chunks of 2: the window of 4 chunks (sink chunk 0 + 3) evicts
UNIPC_STRENGTHS = {"s100": 1.0, "s075": 0.75, "s060": 0.6, "s030": 0.3}


def run_v2v_unipc(P, cfg, x_in, noise, ctx, k0, steps=4):
    F_, C, H, W = noise.shape
    S = (H // 2) * (W // 2)
    cache = L2.make_cache(cfg, S)
    out = torch.zeros_like(noise)
    first_inputs, steps_run = None, []
    for ck in range(F_ // L2.CHUNK):
        f0 = ck * L2.CHUNK
        sch = L2.FlowUniPC(steps, L2.SHIFT)
        sch.step_index = k0                       # set_begin_index: no history, order 1 first
        lat = noise[f0:f0 + L2.CHUNK].clone()
        if k0 > 0:
            sk = sch.sigmas[k0].double()
            lat = ((1 - sk) * x_in[f0:f0 + L2.CHUNK].double() + sk * lat.double()).float()
        if ck == 0:
            first_inputs = lat.clone()
        for i, t in enumerate(sch.timesteps[k0:]):
            if ck == 0:
                steps_run.append(k0 + i)
            tt = t * torch.ones(L2.CHUNK, dtype=torch.float32)
            v = L2.forward(P, cfg, lat, tt, ctx, cache, f0, 0)
            lat, _, _ = sch.step(v, lat)
        out[f0:f0 + L2.CHUNK] = lat
        L2.forward(P, cfg, lat, torch.zeros(L2.CHUNK), ctx, cache, f0, 0)
    return out, first_inputs, steps_run


def unipc_part(args):
    fx = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "longlive2")
    P, _ = R.st_load(os.path.join(fx, "dit_tiny.safetensors"))
    with open(os.path.join(fx, "config.json")) as f:
        cfg = json.load(f)
    emb, _ = R.st_load(os.path.join(fx, "embeds.safetensors"))
    ctx = emb["context.0"]
    g = torch.Generator().manual_seed(SEED + 1)
    shape = (UNIPC_FRAMES, cfg["in_dim"], L2.LAT_H, L2.LAT_W)
    x_in = torch.randn(shape, generator=g) * 0.8 + 0.1
    noise = torch.randn(shape, generator=g)
    sig = L2.FlowUniPC(4, L2.SHIFT).sigmas
    exp = {"input": x_in, "sigmas": sig.clone()}
    res = {}
    for name, s in UNIPC_STRENGTHS.items():
        k0 = start_index(4, s)
        lat, x0in, steps_run = run_v2v_unipc(P, cfg, x_in, noise, ctx, k0)
        R.check(steps_run == list(range(k0, 4)), f"unipc {name}: steps {k0}..3 run")
        R.check(bool(torch.isfinite(lat).all()), f"unipc {name}: finite latents")
        if k0 > 0:
            want = (1 - float(sig[k0])) * x_in[:2] + float(sig[k0]) * noise[:2]
            R.check(R.rel_err(x0in, want) < 1e-6, f"unipc {name}: starts at (1-sigma_k) x_in + sigma_k eps")
        res[name] = lat
        exp[f"latents.{name}"] = lat
        exp[f"xt_start.{name}"] = x0in
        exp[f"start.{name}"] = torch.tensor([k0], dtype=torch.float32)
        exp[f"steps_run.{name}"] = torch.tensor(steps_run, dtype=torch.float32)
    # a start at step k with no history is not the same as continuing a 4-step solver
    R.check(R.rel_err(res["s060"], res["s100"]) > 1e-3, "unipc: strength 0.6 differs from 1")
    R.st_save(os.path.join(args.out, "unipc_noise.safetensors"), {"noise": noise})
    R.st_save(os.path.join(args.out, "unipc_expected.safetensors"), exp,
              {"description": "video-to-video with UniPC (LongLive 2.0 loop): the tiny ti2v DiT "
                              "of tests/fixtures/longlive2, multishot cache (chunk 2, sink 2, "
                              "window 8), 10 frames, no cut, prompt context.0, 4 steps shift 5"})


class _Replay:
    """A stand-in for the torch.Generator run_chunks draws fresh noise from: hands out the
    renoise tensors in the loop's order, so both loops see the same noise."""

    def __init__(self, renoise):
        self.seq = [renoise[k] for k in sorted(renoise, key=lambda s: tuple(map(int, s.split(".")[1:])))]
        self.i = 0


_randn = torch.randn


def _patched_randn(*a, generator=None, **kw):
    if isinstance(generator, _Replay):
        t = generator.seq[generator.i]
        generator.i += 1
        return t.clone()
    return _randn(*a, generator=generator, **kw)


torch.randn = _patched_randn

if __name__ == "__main__":
    main()
