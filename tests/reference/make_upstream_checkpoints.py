#!/usr/bin/python3
"""Tiny checkpoints in each upstream layout, for tools/convert_checkpoint.py (tests/test_convert.c).

Run at test time into a temporary folder (CPU torch, ~2 s); nothing here is committed:

    /usr/bin/python3 tests/reference/make_upstream_checkpoints.py --out DIR [--only sf,ll,...]

The DiT is the tiny model of make_dit_fixtures.py (same seed, so the same weights as
tests/fixtures/dit/dit_tiny.safetensors, checked below) wrapped the way each project saves it
(docs spec-wan-causal-dit.md section 4; the repositories' inference scripts):

  sf/self_forcing_dmd.pt       Self-Forcing trainer dict: 'generator' (other weights),
                               'generator_ema' (the fixture weights, float32, 'model.' prefix,
                               FSDP '_fsdp_wrapped_module.' inside the blocks), 'critic',
                               'step' (int) and 'loss' (a float: torch 1.13's weights_only
                               loader rejects it, so the converter's allow-list loader runs)
  rolling/rolling_forcing_dmd.pt  the same layout (Rolling Forcing saves Self-Forcing's dict)
  rf/rewardforcing.pt          Reward Forcing: a bare {'model.<name>': tensor} state dict, bf16
  ll/longlive_base.pt          LongLive: {'generator': {'model.<name>'}, 'step'}
  ll/lora.pt                   {'generator_lora': PEFT state dict, 'critic_lora', 'step'}, keys
                               'base_model.model.blocks.{i}.<linear>.lora_{A,B}.weight', rank 4,
                               the 10 linears of every block
  ll/noise.safetensors, ll/expected.safetensors
                               the LongLive reference: W + B @ A merged here in float64, run
                               through make_dit_fixtures.run_chunks (sink 3 + window 9, 15 frames)
  ll2/model_bf16.pt            LongLive 2.0 merged bf16: {'generator': {'model.<name>'} (the weights
                               of tests/fixtures/longlive2/dit_tiny.safetensors, 48 channels),
                               'checkpoint_format': 'longlive_generator_merged_lora', 'merged_lora':
                               True, 'dtype': 'bfloat16', 'step': 600 (an int), 'loss' (a float)}
  ll2/model_te.pt              {'generator': ..., 'checkpoint_format':
                               'longlive_generator_merged_bf16', 'quantization': {...}}
  ll2/base.pt, ll2/lora.pt     base + PEFT LoRA (rank 4, the 10 linears per block): base = the
                               fixture weights - B @ A (float64), so the f32 merge reproduces
                               tests/fixtures/longlive2/expected_unipc4.safetensors
  ll2/model_4o6.pt             packed NVFP4 ('quantized_weight_values' uint8, '..._scale_factors',
                               checkpoint_format 'longlive_generator_nvfp4'): must be refused
  text/umt5_tiny_enc.pth       Wan umT5 state dict (tests/fixtures/text/umt5_tiny, f32)
  text/google/umt5-xxl/spiece.model   the tiny tokenizer, in Wan's folder layout
  text/noise.safetensors, text/expected.safetensors
                               reference latents for the prompt 'A red fox at dawn.' (its
                               context is umt5_tiny_expected's context.fox), sink 3 + window 9
  vae/taew2_1.pth              TAEHV state dict (tests/fixtures/taehv/taehv_tiny_21, f16)
  demo/self_forcing_dmd.pt, demo/config.json
                               the 16-channel demo DiT (make_demo_model.py) as a Self-Forcing
                               dict, for the prompt -> MP4 run with the tiny umT5 and TAEHV
  broken/...                   truncated.pt, garbage.pt, unknown_key.pt (an extra tensor),
                               nan.pt (a NaN in the EMA weights),
                               lora_extra_blocks.pt (adapts blocks the base lacks),
                               lora_half.pt (lora_A without lora_B), umt5_dim32.safetensors
                               (an encoder of the wrong width, for `inspect DIR`),
                               umt5_vocab128.safetensors (too small a vocabulary)
"""
import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_dit_fixtures as R  # noqa: E402
from make_demo_model import CONFIG as DEMO_CONFIG, SEED as DEMO_SEED  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
LORA_RANK = 4
TARGETS = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
           "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"]


def wrap(P, fsdp=False):
    """'model.' + name; with fsdp, blocks.{i}._fsdp_wrapped_module.<rest> as FSDP-wrapped EMA."""
    out = {}
    for k, v in P.items():
        if fsdp and k.startswith("blocks."):
            i, rest = k[len("blocks."):].split(".", 1)
            k = f"blocks.{i}._fsdp_wrapped_module.{rest}"
        out["model." + k] = v.clone()
    return out


def fixture_weights():
    P = R.make_weights(R.CONFIG, torch.Generator().manual_seed(R.SEED))
    W, _ = R.st_load(os.path.join(FIX, "dit", "dit_tiny.safetensors"))
    assert set(W) == set(P) and all(torch.equal(W[k], P[k]) for k in P), \
        "make_weights(SEED) no longer reproduces tests/fixtures/dit/dit_tiny.safetensors"
    return P


def other_weights():
    return R.make_weights(R.CONFIG, torch.Generator().manual_seed(R.SEED + 100))


def trainer_dict(P_ema, P_gen):
    critic = {"model.blocks.0.self_attn.q.weight": torch.randn(8, 8)}
    return {"generator": wrap(P_gen), "critic": critic, "generator_ema": wrap(P_ema, fsdp=True),
            "step": 1200, "loss": 0.125}


def reference_run(P, ctx, seed, out_dir=None):
    """LongLive-style run (sink 3 + window 9, 15 frames, chunk 3): writes noise + expected."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(15, R.CONFIG["in_dim"], R.LAT_H, R.LAT_W, generator=g)
    lat, _, ren, _ = R.run_chunks(P, R.CONFIG, noise, lambda k: ctx, 9, 3, R.STEPS, R.SHIFT, g)
    if out_dir is None:
        return lat
    R.st_save(os.path.join(out_dir, "noise.safetensors"), dict(noise=noise, **ren))
    R.st_save(os.path.join(out_dir, "expected.safetensors"), {"latents": lat},
              {"description": "run_chunks sink 3 + window 9, 15 frames, steps 1000,750,500,250 "
                              "shift 5; noise from noise.safetensors"})
    return lat


def make_sf(out):
    d = os.path.join(out, "sf")
    os.makedirs(d, exist_ok=True)
    torch.save(trainer_dict(fixture_weights(), other_weights()), os.path.join(d, "self_forcing_dmd.pt"))


def make_rolling(out):
    d = os.path.join(out, "rolling")
    os.makedirs(d, exist_ok=True)
    torch.save(trainer_dict(fixture_weights(), other_weights()),
               os.path.join(d, "rolling_forcing_dmd.pt"))


def make_rf(out):
    d = os.path.join(out, "rf")
    os.makedirs(d, exist_ok=True)
    # bf16: lossless, the fixture weights lie on the bf16 grid
    sd = {k: v.to(torch.bfloat16) for k, v in wrap(fixture_weights()).items()}
    torch.save(sd, os.path.join(d, "rewardforcing.pt"))


def lora_tensors(cfg, gen, blocks):
    """PEFT names without the adapter name, as get_peft_model_state_dict returns them."""
    sd = {}
    D, FF = cfg["dim"], cfg["ffn_dim"]
    for i in range(blocks):
        for t in TARGETS:
            fin = FF if t == "ffn.2" else D
            fout = FF if t == "ffn.0" else D
            base = f"base_model.model.blocks.{i}.{t}"
            sd[base + ".lora_A.weight"] = 0.05 * torch.randn(LORA_RANK, fin, generator=gen)
            sd[base + ".lora_B.weight"] = 0.05 * torch.randn(fout, LORA_RANK, generator=gen)
    return sd


def make_ll(out):
    d = os.path.join(out, "ll")
    os.makedirs(d, exist_ok=True)
    P = fixture_weights()
    g = torch.Generator().manual_seed(R.SEED + 200)
    lora = lora_tensors(R.CONFIG, g, R.CONFIG["num_layers"])
    critic = lora_tensors(R.CONFIG, g, 1)
    torch.save({"generator": wrap(P), "step": 3000}, os.path.join(d, "longlive_base.pt"))
    torch.save({"generator_lora": lora, "critic_lora": critic, "step": 3000},
               os.path.join(d, "lora.pt"))
    # the merge, in float64: alpha = rank (LongLive r256 / a256), so scale 1
    M = {k: v.clone() for k, v in P.items()}
    for i in range(R.CONFIG["num_layers"]):
        for t in TARGETS:
            A = lora[f"base_model.model.blocks.{i}.{t}.lora_A.weight"].double()
            B = lora[f"base_model.model.blocks.{i}.{t}.lora_B.weight"].double()
            w = f"blocks.{i}.{t}.weight"
            M[w] = (P[w].double() + B @ A).float()
    ctx = R.st_load(os.path.join(FIX, "dit", "embeds.safetensors"))[0]["context"]
    lat = reference_run(M, ctx, R.SEED + 201, d)
    base = reference_run(P, ctx, R.SEED + 201)
    diff = float((lat - base).abs().max() / lat.abs().max())
    assert diff > 1e-2, f"the LoRA hardly changes the latents ({diff:.2e}): the test would be weak"
    print(f"ll: LoRA changes the latents by {diff:.3f} (max rel)")


def make_ll2(out):
    d = os.path.join(out, "ll2")
    os.makedirs(d, exist_ok=True)
    P, _ = R.st_load(os.path.join(FIX, "longlive2", "dit_tiny.safetensors"))
    with open(os.path.join(FIX, "longlive2", "config.json")) as f:
        cfg = json.load(f)
    bf = {k: v.to(torch.bfloat16) for k, v in wrap(P).items()}  # lossless: bf16-grid values
    torch.save({"generator": bf, "checkpoint_format": "longlive_generator_merged_lora",
                "merged_lora": True, "dtype": "bfloat16", "step": 600, "loss": 0.25},
               os.path.join(d, "model_bf16.pt"))
    torch.save({"generator": bf, "checkpoint_format": "longlive_generator_merged_bf16",
                "quantization": {"recipe": "nvfp4", "backend": "te", "steps": 4}},
               os.path.join(d, "model_te.pt"))
    g = torch.Generator().manual_seed(R.SEED + 300)
    lora = lora_tensors(cfg, g, cfg["num_layers"])
    base = {k: v.clone() for k, v in P.items()}
    for i in range(cfg["num_layers"]):
        for t in TARGETS:
            A = lora[f"base_model.model.blocks.{i}.{t}.lora_A.weight"].double()
            B = lora[f"base_model.model.blocks.{i}.{t}.lora_B.weight"].double()
            w = f"blocks.{i}.{t}.weight"
            base[w] = (P[w].double() - B @ A).float()
    torch.save({"generator": wrap(base)}, os.path.join(d, "base.pt"))
    torch.save({"generator_lora": lora, "step": 600}, os.path.join(d, "lora.pt"))
    q = {}
    for k, v in wrap(P).items():
        if k.endswith(".weight") and v.dim() == 2 and ".blocks." in "." + k:
            o, i = v.shape
            q[k[:-len("weight")] + "quantized_weight_values"] = torch.zeros(o, i // 2, dtype=torch.uint8)
            q[k[:-len("weight")] + "quantized_weight_amax"] = torch.ones(1)
        else:
            q[k] = v.to(torch.bfloat16)
    torch.save({"generator": q, "checkpoint_format": "longlive_generator_nvfp4",
                "checkpoint_version": 1}, os.path.join(d, "model_4o6.pt"))


def make_text(out):
    d = os.path.join(out, "text")
    tok = os.path.join(d, "google", "umt5-xxl")
    os.makedirs(tok, exist_ok=True)
    T, _ = R.st_load(os.path.join(FIX, "text", "umt5_tiny.safetensors"))
    torch.save(T, os.path.join(d, "umt5_tiny_enc.pth"))
    shutil.copyfile(os.path.join(FIX, "text", "spiece_tiny.model"), os.path.join(tok, "spiece.model"))
    man = json.load(open(os.path.join(FIX, "text", "manifest.json")))
    fox = [p for p in man["prompts"] if p["key"] == "fox"][0]
    E, _ = _st_load_any(os.path.join(FIX, "text", "umt5_tiny_expected.safetensors"))
    ctx = E["context.fox"].float()
    assert list(ctx.shape) == [R.CONFIG["text_len"], R.CONFIG["text_dim"]]
    reference_run(fixture_weights(), ctx, R.SEED + 300, d)
    with open(os.path.join(d, "prompt.txt"), "w") as f:
        f.write(fox["text"])
    v = os.path.join(out, "vae")
    os.makedirs(v, exist_ok=True)
    V, _ = _st_load_any(os.path.join(FIX, "taehv", "taehv_tiny_21.safetensors"))
    torch.save(V, os.path.join(v, "taew2_1.pth"))


def make_demo(out):
    d = os.path.join(out, "demo")
    os.makedirs(d, exist_ok=True)
    P = R.make_weights(DEMO_CONFIG, torch.Generator().manual_seed(DEMO_SEED))
    torch.save({"generator": wrap(P), "generator_ema": wrap(P, fsdp=True), "step": 1},
               os.path.join(d, "self_forcing_dmd.pt"))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(DEMO_CONFIG, f, indent=1)


def make_broken(out):
    d = os.path.join(out, "broken")
    os.makedirs(d, exist_ok=True)
    P = fixture_weights()
    full = os.path.join(d, "full.pt")
    torch.save(trainer_dict(P, P), full)
    blob = open(full, "rb").read()
    with open(os.path.join(d, "truncated.pt"), "wb") as f:
        f.write(blob[: len(blob) * 2 // 3])
    os.unlink(full)
    with open(os.path.join(d, "garbage.pt"), "wb") as f:
        f.write(b"this is not a checkpoint\n" * 10)
    bad = trainer_dict(P, P)
    bad["generator_ema"]["model.blocks.0.self_attn.extra_gate"] = torch.zeros(4)
    torch.save(bad, os.path.join(d, "unknown_key.pt"))
    nan = trainer_dict(P, P)
    nan["generator_ema"]["model.blocks.1._fsdp_wrapped_module.ffn.0.bias"][3] = float("nan")
    torch.save(nan, os.path.join(d, "nan.pt"))
    g = torch.Generator().manual_seed(7)
    torch.save({"generator_lora": lora_tensors(R.CONFIG, g, 4)},
               os.path.join(d, "lora_extra_blocks.pt"))
    half = lora_tensors(R.CONFIG, g, 1)
    half.pop("base_model.model.blocks.0.ffn.2.lora_B.weight")
    torch.save(half, os.path.join(d, "lora_half.pt"))
    # an encoder of width 32 (the tiny DiT takes text_dim 64)
    T, _ = R.st_load(os.path.join(FIX, "text", "umt5_tiny.safetensors"))
    small = {}
    for k, v in T.items():
        shp = [32 if s == 64 else s for s in v.shape]
        small[k] = torch.randn(shp, generator=g) * 0.1 + (1.0 if k.endswith("norm1.weight") or
                                                          k.endswith("norm2.weight") or
                                                          k == "norm.weight" else 0.0)
    R.st_save(os.path.join(d, "umt5_dim32.safetensors"), small)
    # an encoder with a 128-row embedding: the 256-piece tokenizer does not fit it
    T["token_embedding.weight"] = T["token_embedding.weight"][:128].clone()
    R.st_save(os.path.join(d, "umt5_vocab128.safetensors"), T)


def _st_load_any(path):
    """st_load for files with F16 / I32 tensors too (the text and TAEHV fixtures)."""
    import numpy as np
    import struct
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    dt = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}
    out = {}
    for name, e in header.items():
        s, t = e["data_offsets"]
        a = np.frombuffer(raw[8 + n + s:8 + n + t], dtype=dt[e["dtype"]]).reshape(e["shape"])
        out[name] = torch.from_numpy(a.copy())
    return out, meta


GROUPS = {"sf": make_sf, "rolling": make_rolling, "rf": make_rf, "ll": make_ll, "ll2": make_ll2,
          "text": make_text, "demo": make_demo, "broken": make_broken}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", default=",".join(GROUPS), help="comma list of " + ",".join(GROUPS))
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    for g in a.only.split(","):
        if g not in GROUPS:
            sys.exit(f"unknown group '{g}' (have {', '.join(GROUPS)})")
        GROUPS[g](a.out)
        print(f"wrote {g}/")


if __name__ == "__main__":
    main()
