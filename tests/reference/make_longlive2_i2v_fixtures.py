#!/usr/bin/python3
"""Independent PyTorch reference for LongLive 2.0 image-to-video: the loop of
make_longlive2_fixtures.py (tiny 5B-layout model, UniPC, multi-shot sink with two cuts) with
the I2V clamp of NVlabs/LongLive@7860ad9 pipeline/causal_diffusion_inference.py
(_inference_inner with clamp_i2v_first_chunk, utils/i2v_conditioning.py):
  chunk 0 only: before every model call latents[:, :1] = image latent and timestep[:, :1] = 0;
  after every UniPC step (scheduler.step got the clamped latents as `sample`) the clamp again;
  the recorded output and the t = 0 context pass use the clamped latents.
The model weights, prompts, noise and schedule are the tests/fixtures/longlive2 ones (read from
there, not regenerated), so only the image latent is new. The image latent is random here: the
DiT path is checked independently of the VAE encoder (tests/test_wan_vae.c checks that).

Run:  /usr/bin/python3 tests/reference/make_longlive2_i2v_fixtures.py \\
          --base tests/fixtures/longlive2 --out tests/fixtures/longlive2_i2v
"""
import argparse
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_dit_fixtures as R        # noqa: E402
import make_longlive2_fixtures as L  # noqa: E402

SEED = 20261208


def run_loop_i2v(P, cfg, noise, ctxs, steps, image):
    F_, C, H, W = noise.shape
    S = (H // 2) * (W // 2)
    cache = L.make_cache(cfg, S)
    out = torch.zeros_like(noise)
    shot = 0
    for ck in range(F_ // L.CHUNK):
        f0 = ck * L.CHUNK
        line = [s for s in L.SCHEDULE if s[0] <= f0][-1]
        ctx = ctxs[line[1]]
        is_cut = ck > 0 and line[2] and line[0] == f0
        if is_cut:
            shot += 1
        off = shot * L.ROPE_OFFSET
        first = ck == 0
        lat = noise[f0:f0 + L.CHUNK].clone()
        sch = L.FlowUniPC(steps, L.SHIFT)
        for t in sch.timesteps:
            tt = t * torch.ones(L.CHUNK, dtype=torch.float32)
            if first:                                   # _overwrite_i2v_context
                lat = lat.clone()
                lat[:1] = image
                tt[:1] = 0                              # _zero_i2v_context_timestep
            v = L.forward(P, cfg, lat, tt, ctx, cache, f0, off)
            lat, _, _ = sch.step(v, lat)
            if first:
                lat = lat.clone()
                lat[:1] = image
        if first:
            lat[:1] = image
        out[f0:f0 + L.CHUNK] = lat
        L.forward(P, cfg, lat, torch.zeros(L.CHUNK), ctx, cache, f0, off)
        if is_cut:
            L.pin_current_chunk(cache, L.CHUNK, S)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="tests/fixtures/longlive2")
    ap.add_argument("--out", default="tests/fixtures/longlive2_i2v")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    P, _ = R.st_load(os.path.join(args.base, "dit_tiny.safetensors"))
    with open(os.path.join(args.base, "config.json")) as f:
        cfg = json.load(f)
    ctxs, _ = R.st_load(os.path.join(args.base, "embeds.safetensors"))
    noise = R.st_load(os.path.join(args.base, "noise.safetensors"))[0]["noise"]
    gen = torch.Generator().manual_seed(SEED)
    image = torch.randn(1, 48, L.LAT_H, L.LAT_W, generator=gen)
    R.st_save(os.path.join(args.out, "image_latent.safetensors"), {"image_latent": image})
    manifest = {"base": args.base, "seed": SEED, "runs": {}}
    for name, steps in (("i2v_unipc4", 4), ("i2v_unipc2", 2)):
        lat = run_loop_i2v(P, cfg, noise, ctxs, steps, image[0])
        plain, _ = L.run_loop(P, cfg, noise, ctxs, steps)
        d = float((lat[2:] - plain[2:]).pow(2).sum().sqrt() / plain[2:].pow(2).sum().sqrt())
        R.st_save(os.path.join(args.out, f"expected_{name}.safetensors"), {"latents": lat})
        manifest["runs"][name] = {"steps": steps, "rel_l2_vs_t2v_after_chunk0": d}
        print(name, "frames 2.. differ from the text-only run by rel L2", d)
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
