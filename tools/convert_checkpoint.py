#!/usr/bin/env python3
"""convert_checkpoint.py - published streaming-video checkpoints -> a sinkstream model directory.

    python3 tools/convert_checkpoint.py --dit SRC.pt [--lora LORA.pt] [--vae TAE.pth]
        [--text-encoder T5.pth --tokenizer DIR] [--wan-vae Wan2.2_VAE.pth] --out MODEL_DIR
        [--family auto|self-forcing|longlive|longlive2|reward-forcing|rolling-forcing]
        [--dtype bf16|f32] [--dit-config config.json] [--ema | --no-ema]

Run it where the weights were downloaded (tools/download_models.sh does both steps).
It needs numpy only (Debian python3-numpy, or pip install numpy): torch.save's zip checkpoints
are read by tools/torchzip.py's allow-list unpickler into numpy arrays (bf16 as its bit
patterns), casts round as torch's .to() does, and the safetensors files are written by hand
(Debian has no python3-safetensors). PyTorch is needed only for pre-1.6 (non-zip) pickles and
--unsafe-pickle; sentencepiece, when installed, checks the tokenizer. Any python3 with numpy
works (pyenv, conda, a venv, Debian's /usr/bin/python3).

What it reads (facts: docs spec-wan-causal-dit.md section 4, spec-taehv-umt5.md A8/A9, B4, B6):

  --dit   Self-Forcing `self_forcing_dmd.pt` / Rolling Forcing `rolling_forcing_dmd.pt`:
          a trainer dict {'generator', 'generator_ema', 'critic', ...}, generator keys
          'model.<Wan name>' (EMA keys may carry '_fsdp_wrapped_module.'); the EMA generator
          is used by default, as both projects' README inference commands do (--use_ema).
          LongLive 1.0 `longlive_base.pt`: {'generator' | 'generator_ema' | 'model'}; its
          inference config has use_ema: false, so 'generator' is the default.
          Reward Forcing `rewardforcing.pt`: a bare state dict of 'model.<Wan name>' keys.
          A .safetensors file with Wan names (prefixed or not) is accepted too.
          LongLive 2.0 (Wan2.2-TI2V-5B, spec-longlive2.md section 1): `model_bf16.pt`
          {'generator': sd, 'checkpoint_format': 'longlive_generator_merged_lora', ...} (the
          DMD LoRA merged, bf16), `model_te.pt` {'generator': sd, 'checkpoint_format':
          'longlive_generator_merged_bf16', 'quantization': {...}} (the NVFP4-trained 4- and
          2-step weights as plain merged bf16), or a base generator {'generator': sd} with
          --lora (PEFT, rank = alpha = 128). `model_4o6.pt` (packed NVFP4 for Blackwell,
          'quantized_weight_values' tensors) is refused: convert model_te.pt / model_bf16.pt.
  --lora  LongLive `lora.pt`: {'generator_lora': PEFT state dict, 'critic_lora', 'step'} or a
          bare PEFT state dict, keys 'base_model.model.blocks.{i}.<linear>.lora_A.weight'
          [r, in] / '...lora_B.weight' [out, r] (10 linears per block). Merged into the base:
          W += (alpha / r) * B @ A (in float32), alpha = --lora-alpha, default r (LongLive's
          rank 256 / alpha 256, i.e. scale 1). Biases are unchanged.
  --text-encoder  Wan's `models_t5_umt5-xxl-enc-bf16.pth` (Wan names: token_embedding.weight,
          blocks.N.attn.q.weight, ...) or an HF UMT5EncoderModel state dict (renamed to Wan's).
  --tokenizer  google/umt5-xxl/ (the folder Wan ships) or its spiece.model.
  --vae   TAEHV `taew2_1.pth` / `taew2_2.pth` / their .safetensors (decoder.N.* / encoder.N.*).
  --wan-vae  Wan2.2's `Wan2.2_VAE.pth` (the Wan2.2-TI2V-5B repo; a bare state dict, names of
          wan/modules/vae2_2.py WanVAE_): its encoder (encoder.*, and conv1.* that makes mu /
          logvar) for LongLive 2.0 image-to-video (`generate --image`); the decoder is dropped.
          Without --dit it is added to the existing model directory --out (model.json updated).

What it writes into MODEL_DIR:
  dit.safetensors           canonical Wan names, --dtype (bf16 default, as upstream inference
                            casts the pipeline to bf16), metadata 'config' (Wan JSON) + provenance
  text_encoder.safetensors  Wan names, --dtype, metadata: the umT5 config (text_len = the DiT's)
  tokenizer/spiece.model    (+ tokenizer.json etc. when the folder has them)
  vae.safetensors           TAEHV as stored (f16 in the releases; --dtype is not applied: the
                            file is 23 MB and bf16 would only lose precision)
  wan2.2_vae_encoder.safetensors  the Wan2.2 VAE encoder as stored (files.vae_encoder)
  config.json               a copy of --dit-config, when given
  model.json                family, files, and the family's published sampling defaults under
                            "generate" (option names of `sinkstream generate`)

Zip checkpoints (torch.save since PyTorch 1.6) are read without PyTorch by an allow-list
unpickler (OrderedDict, torch's tensor/storage rebuilders, dtypes: what torch.load's
weights_only allows) that reads the storages from the archive; nothing in the file is run.
Pre-1.6 pickles need PyTorch (torch.load(weights_only=True)); the script says so when this
python lacks it. Only --unsafe-pickle (for files you trust) falls back to a plain torch.load,
which can run code embedded in the file.

Anything not recognised is refused with a message naming the file and what was expected.
Exit status: 0 done, 1 refused/failed (message on stderr), 2 bad command line.
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys

try:
    import numpy as np
except ImportError:  # the message a user without numpy needs
    sys.exit(f"convert_checkpoint.py needs numpy, which this python ({sys.executable}) lacks: "
             f"pip install numpy there, or run the script with a python3 that has it (Debian: "
             f"apt-get install python3-numpy, then /usr/bin/python3 tools/convert_checkpoint.py)")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torchzip  # noqa: E402
from torchzip import Tensor  # noqa: E402

VERSION = "1"
FAMILIES = ("self-forcing", "longlive", "longlive2", "reward-forcing", "rolling-forcing", "demo")


class Refused(Exception):
    """A clear, user-facing reason to stop."""


# ----------------------------------------------------------------------------------------
# family facts: checkpoint container, default weights, and the published sampling defaults
# (option names of `sinkstream generate`; generate applies them unless given on its command line)
# ----------------------------------------------------------------------------------------
COMMON = {"chunk": 3, "steps": [1000, 750, 500, 250], "shift": 5.0, "fps": 16,
          "height": 480, "width": 832}
FAMILY = {
    "self-forcing": {
        "title": "Self-Forcing (Wan2.1-T2V-1.3B, DMD)",
        "container": "trainer",       # {'generator', 'generator_ema', ...}
        "ema": True,                  # README: inference.py ... --use_ema
        "generate": dict(COMMON, **{"kv-policy": "fifo", "kv-window": 21, "kv-sink": 0,
                                    "frames": 21}),
        "source": "gdhe17/Self-Forcing checkpoints/self_forcing_dmd.pt; "
                  "configs/self_forcing_dmd.yaml (21 frames, cache of 21 frames, no sink)",
    },
    "longlive": {
        "title": "LongLive 1.0 (Wan2.1-T2V-1.3B, base + LoRA r256/a256)",
        "container": "trainer",
        "ema": False,                 # configs/longlive_inference.yaml: use_ema: false
        "generate": dict(COMMON, **{"kv-policy": "sink", "kv-window": 12, "kv-sink": 3,
                                    "frames": 120}),
        "source": "Efficient-Large-Model/LongLive-1.3B models/longlive_base.pt + models/lora.pt; "
                  "configs/longlive_inference.yaml (local_attn_size 12, sink_size 3, 120 frames)",
    },
    "longlive2": {
        "title": "LongLive 2.0 (Wan2.2-TI2V-5B causal, UniPC, multi-shot sink)",
        "container": "trainer",       # {'generator': sd, 'checkpoint_format': ...}
        "ema": False,
        "generate": {"height": 704, "width": 1280, "fps": 24, "chunk": 8, "frames": 128,
                     "sampler": "unipc", "num-steps": 4, "shift": 5.0, "kv-policy": "multishot",
                     "kv-sink": 8, "kv-window": 32, "shot-rope-offset": 8, "recache": "off"},
        "vae": "taew2_2",
        "source": "NVlabs/LongLive (main = 2.0) model_bf16.pt / model_te.pt / base + LoRA r128/a128; "
                  "configs/inference.yaml (1280x704, 24 fps, num_frame_per_block 8, UniPC 4 steps "
                  "shift 5, local_attn_size 32, sink_size 8, multi_shot_sink, rope offset 8)",
    },
    "reward-forcing": {
        "title": "Reward Forcing (Wan2.1-T2V-1.3B, Re-DMD, EMA sink)",
        "container": "bare",          # inference.py: generator.load_state_dict(torch.load(...))
        "ema": False,
        "generate": dict(COMMON, **{"kv-policy": "ema", "ema-alpha": 0.999, "kv-window": 9,
                                    "kv-sink": 3, "frames": 21}),
        "fallback": {"kv-policy": "sink"},
        "source": "JaydenLu666/Reward-Forcing-T2V-1.3B rewardforcing.pt; configs/reward_forcing.yaml "
                  "(local_attn_size 9, sink_size 3; EMA sink compression_alpha 0.999)",
    },
    "rolling-forcing": {
        "title": "Rolling Forcing (Wan2.1-T2V-1.3B, rolling-window joint denoising + sink)",
        "container": "trainer",
        "ema": True,                  # README: inference.py ... --use_ema
        "generate": dict(COMMON, **{"kv-policy": "rolling", "kv-window": 21, "kv-sink": 3,
                                    "frames": 126, "steps": [1000, 800, 600, 400, 200]}),
        "fallback": {"kv-policy": "sink"},
        "source": "TencentARC/RollingForcing checkpoints/rolling_forcing_dmd.pt; README (126 "
                  "frames), configs/rolling_forcing_dmd.yaml (5 steps 1000..200, rolling window of "
                  "5 chunks); sink = the first 3-frame block, attention over 21 frames",
    },
    # the small family trained in this repository on rendered shapes (tools/train_demo/,
    # docs/DEMO.md); its trainer writes a bare state dict and the sampling it was trained for
    "demo": {
        "title": "sinkstream demo (tiny causal Wan DiT + umT5 + TAEHV trained on rendered shapes)",
        "container": "bare",
        "ema": False,
        "generate": dict(COMMON, **{"kv-policy": "sink", "kv-window": 15, "kv-sink": 3,
                                    "frames": 42, "height": 128, "width": 192, "shift": 1.0}),
        "source": "tools/train_demo/train.py (this repository; docs/DEMO.md)",
    },
}


def note(msg):
    print(f"convert_checkpoint: {msg}", file=sys.stderr)


def human(n):
    for u in ("B", "KB", "MB", "GB"):
        if n < 1000 or u == "GB":
            return f"{n:.0f} {u}" if u == "B" else f"{n:.2f} {u}"
        n /= 1000.0


# ----------------------------------------------------------------------------------------
# reading: safetensors (by hand), pickles (weights_only, then the allow-list loader)
# ----------------------------------------------------------------------------------------
ST_NUMPY = torchzip.ST_NUMPY


def read_safetensors(path):
    """Returns ({name: Tensor}, metadata). Validates the framing enough to give a message."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise Refused(f"'{path}': {size} bytes, too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100 << 20):
            raise Refused(f"'{path}': safetensors header length {n} does not fit the file "
                          f"({size} bytes): truncated or not a safetensors file")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise Refused(f"'{path}': safetensors header is not JSON ({e})")
        base = 8 + n
        meta = header.pop("__metadata__", {}) or {}
        out = {}
        for name, d in header.items():
            st = d.get("dtype")
            if st not in ST_NUMPY:
                raise Refused(f"'{path}': tensor '{name}' has dtype {st}, which this "
                              f"converter does not read")
            s, e = d["data_offsets"]
            if base + e > size or s > e:
                raise Refused(f"'{path}': tensor '{name}' bytes [{s}, {e}) lie past the end of the "
                              f"file ({size} bytes): truncated")
            f.seek(base + s)
            arr = np.frombuffer(f.read(e - s), dtype=ST_NUMPY[st])
            try:
                out[name] = Tensor(arr.reshape(d["shape"]), st)
            except ValueError:
                raise Refused(f"'{path}': tensor '{name}': {e - s} bytes do not hold shape "
                              f"{d['shape']} of {st}") from None
    return out, meta


def _torch_or_refuse(path, why):
    """PyTorch, for what the numpy readers cannot do; a clear message without it."""
    try:
        import torch
        return torch
    except ImportError:
        raise Refused(f"'{path}' {why}, which needs PyTorch, and this python "
                      f"({sys.executable}) has none: run the converter with a python3 that has "
                      f"torch (pip install torch, or Debian's python3-torch with /usr/bin/python3), "
                      f"or re-save the file with torch.save (PyTorch >= 1.6) and convert that "
                      f"without PyTorch") from None


def load_pickle(path, unsafe=False):
    """A zip checkpoint through torchzip's allow-list unpickler (no PyTorch); a pre-1.6
    pickle through torch.load(weights_only=True); --unsafe-pickle: a full torch.load."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    is_zip = magic[:2] == b"PK"
    if not is_zip and magic[:1] != b"\x80":
        raise Refused(f"'{path}' ({size} bytes) is not a PyTorch checkpoint (neither a torch.save "
                      f"zip archive nor a pickle)")
    if is_zip:
        try:
            return torchzip.load(path)
        except torchzip.Refused as e:
            msg = str(e)
            if not unsafe or "refers to" not in msg:
                if "refers to" in msg:
                    msg += " (--unsafe-pickle loads it anyway with torch.load, only for files you trust)"
                raise Refused(msg) from None
            torch = _torch_or_refuse(path, "holds objects other than tensors (--unsafe-pickle)")
            note(f"'{path}': --unsafe-pickle: full torch.load (the file can run code)")
            return torchzip.from_torch_obj(torch.load(path, map_location="cpu",
                                                      weights_only=False))
    torch = _torch_or_refuse(path, "is a pre-1.6 PyTorch pickle (not a zip archive)")
    try:
        return torchzip.from_torch_obj(torch.load(path, map_location="cpu", weights_only=True))
    except torchzip.Refused as e:
        raise Refused(f"'{path}': {e}") from None
    except Exception as e:  # noqa: BLE001 - classified below
        msg = str(e)
        if isinstance(e, EOFError) or "truncated" in msg or "failed reading" in msg:
            raise Refused(f"'{path}' ({size} bytes) is truncated or corrupt: PyTorch cannot read "
                          f"it ({msg.splitlines()[0][:160] if msg else type(e).__name__}); "
                          f"download it again") from None
        if not unsafe:
            raise Refused(f"'{path}': PyTorch's safe loader refused this legacy-format (pre-zip) "
                          f"pickle ({msg.splitlines()[0][-120:] if msg else type(e).__name__}); "
                          f"it may be truncated, or hold objects other than tensors; if you "
                          f"trust the file, --unsafe-pickle loads it with torch.load") from None
    note(f"'{path}': --unsafe-pickle: full torch.load (the file can run code)")
    return torchzip.from_torch_obj(torch.load(path, map_location="cpu", weights_only=False))


def load_any(path, unsafe=False):
    """(object, kind): a safetensors file gives ({name: tensor}, 'safetensors')."""
    if not os.path.isfile(path):
        raise Refused(f"'{path}': no such file")
    with open(path, "rb") as f:
        head = f.read(9)
    if path.endswith(".safetensors") or (len(head) == 9 and head[8:9] == b"{"):
        sd, meta = read_safetensors(path)
        return sd, "safetensors", meta
    return load_pickle(path, unsafe), "pickle", {}


def tensor_items(d):
    return {k: v for k, v in d.items() if isinstance(v, Tensor)}


def is_state_dict(d):
    return isinstance(d, dict) and len(d) > 0 and any(isinstance(v, Tensor) for v in d.values())


# ----------------------------------------------------------------------------------------
# recognising what a state dict is (for "wrong input" messages)
# ----------------------------------------------------------------------------------------
def guess_kind(keys):
    ks = list(keys)
    if any(".lora_A." in k or ".lora_B." in k or ".lora_down." in k for k in ks):
        return "lora"
    if any(k.endswith("patch_embedding.weight") for k in ks):
        return "dit"
    if any(re.match(r"^(taehv_)?(decoder|encoder)\.\d+\.", k) for k in ks):
        return "taehv"
    if any(k.endswith("token_embedding.weight") or k == "shared.weight"
           or k.startswith("encoder.block.") for k in ks):
        return "umt5"
    if any("attn1.to_q" in k or "condition_embedder." in k for k in ks):
        return "diffusers"
    return "unknown"


KIND_HINT = {
    "lora": "a LoRA adapter (pass it with --lora, the base generator with --dit)",
    "dit": "a Wan DiT (pass it with --dit)",
    "taehv": "a TAEHV tiny VAE (pass it with --vae)",
    "umt5": "a umT5 text encoder (pass it with --text-encoder)",
    "diffusers": "a Diffusers WanTransformer3DModel (attn1.to_q...); this converter reads the "
                 "original Wan names that Self-Forcing / LongLive checkpoints use",
    "unknown": "not a checkpoint this converter knows",
}


def refuse_kind(path, sd, want):
    kind = guess_kind(sd.keys())
    sample = ", ".join(list(sd.keys())[:4])
    raise Refused(f"'{path}' is not {want}: it looks like {KIND_HINT[kind]} (keys: {sample}, ...)")


# ----------------------------------------------------------------------------------------
# DiT: names (mirrors dit/names.c), config, container, LoRA
# ----------------------------------------------------------------------------------------
LEAD = ("generator_ema.", "generator.", "module.", "model.")
ANYWHERE = ("_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
LORA_TARGETS = ["self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2"]


def strip_name(name, lead=LEAD):
    for a in ANYWHERE:
        name = name.replace(a, "")
    again = True
    while again:
        again = False
        for p in lead:
            if name.startswith(p):
                name, again = name[len(p):], True
    return name


def dit_param_shapes(c):
    """Canonical name -> shape for config c (spec section 4.1; dit/names.c)."""
    D, FF = c["dim"], c["ffn_dim"]
    pt, ph, pw = c["patch_size"]
    out_tok = pt * ph * pw * c["out_dim"]
    s = {"patch_embedding.weight": [D, c["in_dim"], pt, ph, pw], "patch_embedding.bias": [D],
         "text_embedding.0.weight": [D, c["text_dim"]], "text_embedding.0.bias": [D],
         "text_embedding.2.weight": [D, D], "text_embedding.2.bias": [D],
         "time_embedding.0.weight": [D, c["freq_dim"]], "time_embedding.0.bias": [D],
         "time_embedding.2.weight": [D, D], "time_embedding.2.bias": [D],
         "time_projection.1.weight": [6 * D, D], "time_projection.1.bias": [6 * D],
         "head.modulation": [1, 2, D], "head.head.weight": [out_tok, D], "head.head.bias": [out_tok]}
    for i in range(c["num_layers"]):
        b = f"blocks.{i}."
        s[b + "modulation"] = [1, 6, D]
        for att in ("self_attn", "cross_attn"):
            for lin in "qkvo":
                s[f"{b}{att}.{lin}.weight"] = [D, D]
                s[f"{b}{att}.{lin}.bias"] = [D]
            s[f"{b}{att}.norm_q.weight"] = [D]
            s[f"{b}{att}.norm_k.weight"] = [D]
        s[b + "norm3.weight"] = [D]
        s[b + "norm3.bias"] = [D]
        s[b + "ffn.0.weight"] = [FF, D]
        s[b + "ffn.0.bias"] = [FF]
        s[b + "ffn.2.weight"] = [D, FF]
        s[b + "ffn.2.bias"] = [D]
    return s


CFG_KEYS = ("dim", "ffn_dim", "num_heads", "num_layers", "in_dim", "out_dim", "text_dim",
            "freq_dim", "eps", "patch_size", "text_len", "model_type")


def dit_config_from_json(path):
    try:
        with open(path) as f:
            j = json.load(f)
    except (OSError, ValueError) as e:
        raise Refused(f"--dit-config '{path}': cannot read a JSON object ({e})")
    if not isinstance(j, dict):
        raise Refused(f"--dit-config '{path}': expected a JSON object (Wan's config.json)")
    alias = {"num_attention_heads": "num_heads", "in_channels": "in_dim",
             "out_channels": "out_dim"}
    c = {}
    for k, v in j.items():
        k = alias.get(k, k)
        if k in CFG_KEYS or k == "attention_head_dim" or k == "head_dim":
            c[k] = v
    hd = c.pop("attention_head_dim", None) or c.pop("head_dim", None)
    if "dim" not in c and hd and "num_heads" in c:
        c["dim"] = hd * c["num_heads"]
    if "num_heads" not in c and hd and "dim" in c:
        c["num_heads"] = c["dim"] // hd
    for req in ("dim", "num_heads", "num_layers"):
        if req not in c:
            raise Refused(f"--dit-config '{path}': no '{req}' (a DiT config needs dim, num_heads "
                          f"and num_layers)")
    return c


def dit_config_from_shapes(sd, label):
    need = ["patch_embedding.weight", "text_embedding.0.weight", "time_embedding.0.weight",
            "blocks.0.ffn.0.weight", "head.head.weight"]
    for n in need:
        if n not in sd:
            raise Refused(f"'{label}': no tensor '{n}' after stripping wrapper prefixes; is this a "
                          f"Wan DiT generator?")
    pe = sd["patch_embedding.weight"]
    if pe.dim() != 5:
        raise Refused(f"'{label}': patch_embedding.weight is {list(pe.shape)}, expected 5-D "
                      f"[dim, in, 1, 2, 2]")
    layers = 1 + max(int(m.group(1)) for k in sd for m in [re.match(r"^blocks\.(\d+)\.", k)] if m)
    c = {"dim": pe.shape[0], "in_dim": pe.shape[1], "patch_size": list(pe.shape[2:]),
         "text_dim": sd["text_embedding.0.weight"].shape[1],
         "freq_dim": sd["time_embedding.0.weight"].shape[1],
         "ffn_dim": sd["blocks.0.ffn.0.weight"].shape[0], "num_layers": layers,
         "eps": 1e-6, "text_len": 512}
    pv = c["patch_size"][0] * c["patch_size"][1] * c["patch_size"][2]
    c["out_dim"] = sd["head.head.weight"].shape[0] // pv
    return c


def resolve_dit_config(sd, label, cfg_path):
    shp = dit_config_from_shapes(sd, label)
    if cfg_path:
        given = dit_config_from_json(cfg_path)
        for k in ("dim", "num_layers", "in_dim", "out_dim", "text_dim", "freq_dim", "ffn_dim"):
            if k in given and int(given[k]) != shp[k]:
                raise Refused(f"--dit-config '{cfg_path}' says {k} = {given[k]} but the weights of "
                              f"'{label}' have {shp[k]}: the config belongs to another model")
        c = dict(shp)
        c.update({k: given[k] for k in given if k in CFG_KEYS})
        src = f"--dit-config {os.path.basename(cfg_path)} + shapes"
    else:
        if shp["dim"] % 128:
            raise Refused(f"'{label}': dim {shp['dim']} is not a multiple of 128, so the head count "
                          f"cannot be assumed (released Wan models use head_dim 128); pass "
                          f"--dit-config config.json")
        c = dict(shp, num_heads=shp["dim"] // 128)
        src = "shapes (head_dim 128 assumed, as in every released Wan model)"
    # 48 latent channels = the Wan2.2 VAE's: Wan2.2-TI2V-5B (LongLive 2.0)
    c.setdefault("model_type", "ti2v" if c["in_dim"] == 48 else "t2v")
    c = {k: c[k] for k in CFG_KEYS}
    c["patch_size"] = [int(x) for x in c["patch_size"]]
    if list(c["patch_size"]) != [1, 2, 2]:
        raise Refused(f"'{label}': patch size {c['patch_size']}; only (1, 2, 2) is supported")
    if c["dim"] % c["num_heads"] or (c["dim"] // c["num_heads"]) % 2:
        raise Refused(f"'{label}': dim {c['dim']} does not split into {c['num_heads']} heads of "
                      f"even size")
    return c, src


def pick_generator(obj, path, family, ema):
    """The generator state dict inside a DiT checkpoint, per family; returns (sd, which)."""
    if not isinstance(obj, dict):
        raise Refused(f"'{path}': expected a dict (a state dict or a trainer checkpoint), got "
                      f"{type(obj).__name__}")
    fam = FAMILY[family]
    trainer_keys = [k for k in ("generator", "generator_ema", "model") if isinstance(obj.get(k), dict)]
    if trainer_keys:
        if fam["container"] == "bare":
            note(f"'{os.path.basename(path)}' is a trainer dict ({', '.join(trainer_keys)}); "
                 f"{family} releases a bare state dict; taking the trainer's generator")
        want_ema = fam["ema"] if ema is None else ema
        first = "generator_ema" if want_ema else "generator"
        if ema is not None:
            if isinstance(obj.get(first), dict):
                return tensor_items(obj[first]), first
            raise Refused(f"'{path}': --{'ema' if ema else 'no-ema'} asks for '{first}', but the "
                          f"checkpoint holds only {', '.join(trainer_keys)}")
        for k in (first, "generator" if want_ema else "generator_ema", "model"):
            if isinstance(obj.get(k), dict):
                if k != first:
                    note(f"'{os.path.basename(path)}' has no '{first}'; using '{k}'")
                return tensor_items(obj[k]), k
    if isinstance(obj.get("generator_lora"), dict):
        raise Refused(f"'{path}' is a LoRA adapter file ('generator_lora'): pass it with --lora, and "
                      f"its base generator (longlive_base.pt) with --dit")
    if not is_state_dict(obj):
        raise Refused(f"'{path}': no 'generator' / 'generator_ema' / 'model' entry and no tensors "
                      f"(top-level keys: {', '.join(map(str, list(obj)[:8]))})")
    sd = tensor_items(obj)
    if guess_kind(sd.keys()) != "dit":
        refuse_kind(path, sd, "a DiT generator checkpoint")
    if fam["container"] == "trainer":
        raise Refused(f"'{path}' is a bare state dict (the layout Reward Forcing releases), but "
                      f"--family {family} publishes a trainer checkpoint with 'generator' / "
                      f"'generator_ema' ({fam['source'].split(';')[0]}): wrong file or wrong "
                      f"--family (try --family reward-forcing, or auto)")
    if ema:
        raise Refused(f"'{path}': --ema, but this is a bare state dict with no EMA copy")
    return sd, "(state dict)"


def canonical_dit(sd, path):
    out = {}
    for k, v in sd.items():
        c = strip_name(k)
        if c in out:
            raise Refused(f"'{path}': tensors '{k}' and another both become '{c}' after stripping "
                          f"wrapper prefixes")
        out[c] = v
    return out


def check_dit(sd, c, path):
    want = dit_param_shapes(c)
    missing = [k for k in want if k not in sd]
    extra = [k for k in sd if k not in want]
    if any(".lora_" in k for k in extra):
        raise Refused(f"'{path}': holds LoRA tensors ({[k for k in extra if '.lora_' in k][0]}); "
                      f"give the base checkpoint with --dit and the adapter with --lora")
    if missing:
        raise Refused(f"'{path}': {len(missing)} DiT tensors missing (first: {', '.join(missing[:3])})")
    if extra:
        raise Refused(f"'{path}': {len(extra)} unexpected tensors (first: {', '.join(extra[:3])}); "
                      f"not a plain Wan2.1 DiT")
    for k, shp in want.items():
        if list(sd[k].shape) != shp:
            raise Refused(f"'{path}': tensor '{k}' is {list(sd[k].shape)}, expected {shp}")
        if not sd[k].is_floating_point():
            raise Refused(f"'{path}': tensor '{k}' has dtype {sd[k].dtype}, expected a float")


def lora_pairs(obj, path):
    """{canonical module name: (A [r, in], B [out, r])} from a PEFT LoRA file."""
    if isinstance(obj, dict) and isinstance(obj.get("generator_lora"), dict):
        sd = tensor_items(obj["generator_lora"])
    elif is_state_dict(obj):
        sd = tensor_items(obj)
    else:
        keys = list(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise Refused(f"--lora '{path}': neither {{'generator_lora': ...}} nor a PEFT state dict "
                      f"(got {keys})")
    if guess_kind(sd.keys()) != "lora":
        refuse_kind(path, sd, "a LoRA adapter")
    mods = {}
    for k, v in sd.items():
        m = re.match(r"^(.*)\.lora_([AB])(?:\.[A-Za-z0-9_]+)?\.weight$", k)
        if not m:
            if k.endswith(".lora_magnitude_vector") or ".lora_embedding_" in k:
                raise Refused(f"--lora '{path}': '{k}' is a DoRA / embedding adapter; only plain "
                              f"LoRA on linear layers is supported")
            raise Refused(f"--lora '{path}': tensor '{k}' is not a PEFT LoRA weight "
                          f"(<module>.lora_A.weight / <module>.lora_B.weight)")
        name = strip_name(m.group(1), lead=("base_model.model.", "base_model.") + LEAD)
        if name.startswith("base_model.model."):
            name = name[len("base_model.model."):]
        mods.setdefault(name, {})[m.group(2)] = v
    pairs = {}
    for name, ab in mods.items():
        if set(ab) != {"A", "B"}:
            raise Refused(f"--lora '{path}': module '{name}' has lora_{list(ab)[0]} without its "
                          f"lora_{'B' if 'A' in ab else 'A'}")
        A, B = ab["A"], ab["B"]
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise Refused(f"--lora '{path}': module '{name}': lora_A {list(A.shape)} and lora_B "
                          f"{list(B.shape)} do not form a rank-r pair ([r, in] and [out, r])")
        pairs[name] = (A, B)
    return pairs


def merge_lora(sd, pairs, path, alpha):
    ranks = sorted({int(A.shape[0]) for A, _ in pairs.values()})
    for name, (A, B) in sorted(pairs.items()):
        wk = name + ".weight"
        if wk not in sd:
            raise Refused(f"--lora '{path}' adapts '{name}', which the base checkpoint does not have "
                          f"(no '{wk}'): the LoRA belongs to another model, or --dit is not its "
                          f"base")
        W = sd[wk]
        if list(W.shape) != [B.shape[0], A.shape[1]]:
            raise Refused(f"--lora '{path}': '{name}' is [{B.shape[0]}, {A.shape[1]}] in the "
                          f"adapter but the base weight is {list(W.shape)}")
        r = A.shape[0]
        scale = (alpha if alpha is not None else r) / r
        # as torch: W.float() + scale * (B.float() @ A.float()), in float32 (f64 W stays f64)
        m = W.to_f32() + np.float32(scale) * (B.to_f32() @ A.to_f32())
        sd[wk] = Tensor(m.astype(np.float64), "F64") if W.st_dtype == "F64" else Tensor(m, "F32")
    targets = {n.split(".", 2)[2] for n in pairs if n.startswith("blocks.") and n.count(".") >= 2}
    return ranks, targets


# ----------------------------------------------------------------------------------------
# umT5 text encoder (Wan names canonical; HF UMT5EncoderModel renamed)
# ----------------------------------------------------------------------------------------
def hf_to_wan(k):
    if k in ("shared.weight", "encoder.embed_tokens.weight"):
        return "token_embedding.weight"
    if k == "encoder.final_layer_norm.weight":
        return "norm.weight"
    m = re.match(r"^encoder\.block\.(\d+)\.layer\.(\d)\.(.*)$", k)
    if not m:
        return None
    i, l, rest = m.groups()
    table = {("0", "layer_norm.weight"): "norm1.weight",
             ("0", "SelfAttention.q.weight"): "attn.q.weight",
             ("0", "SelfAttention.k.weight"): "attn.k.weight",
             ("0", "SelfAttention.v.weight"): "attn.v.weight",
             ("0", "SelfAttention.o.weight"): "attn.o.weight",
             ("0", "SelfAttention.relative_attention_bias.weight"): "pos_embedding.embedding.weight",
             ("1", "layer_norm.weight"): "norm2.weight",
             ("1", "DenseReluDense.wi_0.weight"): "ffn.gate.0.weight",
             ("1", "DenseReluDense.wi_1.weight"): "ffn.fc1.weight",
             ("1", "DenseReluDense.wo.weight"): "ffn.fc2.weight"}
    w = table.get((l, rest))
    return f"blocks.{i}.{w}" if w else None


def load_umt5(path, unsafe):
    obj, kind, _ = load_any(path, unsafe)
    if kind == "pickle" and isinstance(obj, dict) and not is_state_dict(obj):
        for k in ("model", "state_dict", "text_encoder"):
            if is_state_dict(obj.get(k)):
                obj = obj[k]
                break
    if not is_state_dict(obj):
        raise Refused(f"--text-encoder '{path}': not a state dict")
    sd = {strip_name(k, lead=("model.", "text_encoder.", "module.")): v
          for k, v in tensor_items(obj).items()}
    if guess_kind(sd.keys()) != "umt5":
        refuse_kind(path, sd, "a umT5 text encoder")
    out = {}
    for k, v in sd.items():
        if k in ("spiece_model", "lm_head.weight") or k.startswith("decoder."):
            continue  # ComfyUI tokenizer blob, seq2seq parts: not the encoder
        w = k if not (k.startswith("encoder.") or k == "shared.weight") else hf_to_wan(k)
        if w is None:
            raise Refused(f"--text-encoder '{path}': unexpected tensor '{k}'")
        if k == "encoder.embed_tokens.weight" and "token_embedding.weight" in out:
            continue  # tied copy of shared.weight
        out[w] = v
    need = ["token_embedding.weight", "norm.weight", "blocks.0.attn.q.weight",
            "blocks.0.pos_embedding.embedding.weight", "blocks.0.ffn.gate.0.weight"]
    for n in need:
        if n not in out:
            raise Refused(f"--text-encoder '{path}': no '{n}' (Wan name); is this umT5's encoder?")
    emb, q, pos, gate = (out["token_embedding.weight"], out["blocks.0.attn.q.weight"],
                         out["blocks.0.pos_embedding.embedding.weight"],
                         out["blocks.0.ffn.gate.0.weight"])
    L = 1 + max(int(re.match(r"^blocks\.(\d+)\.", k).group(1)) for k in out if k.startswith("blocks."))
    cfg = {"vocab_size": int(emb.shape[0]), "dim": int(emb.shape[1]), "dim_attn": int(q.shape[0]),
           "dim_ffn": int(gate.shape[0]), "num_heads": int(pos.shape[1]), "num_layers": L,
           "num_buckets": int(pos.shape[0]), "max_distance": 128}
    c = cfg
    want = {"token_embedding.weight": [c["vocab_size"], c["dim"]], "norm.weight": [c["dim"]]}
    for i in range(L):
        b = f"blocks.{i}."
        want.update({b + "norm1.weight": [c["dim"]], b + "norm2.weight": [c["dim"]],
                     b + "attn.q.weight": [c["dim_attn"], c["dim"]],
                     b + "attn.k.weight": [c["dim_attn"], c["dim"]],
                     b + "attn.v.weight": [c["dim_attn"], c["dim"]],
                     b + "attn.o.weight": [c["dim"], c["dim_attn"]],
                     b + "pos_embedding.embedding.weight": [c["num_buckets"], c["num_heads"]],
                     b + "ffn.gate.0.weight": [c["dim_ffn"], c["dim"]],
                     b + "ffn.fc1.weight": [c["dim_ffn"], c["dim"]],
                     b + "ffn.fc2.weight": [c["dim"], c["dim_ffn"]]})
    for k, s in want.items():
        if k not in out:
            raise Refused(f"--text-encoder '{path}': tensor '{k}' missing")
        if list(out[k].shape) != s:
            raise Refused(f"--text-encoder '{path}': tensor '{k}' is {list(out[k].shape)}, "
                          f"expected {s}")
    extra = [k for k in out if k not in want]
    if extra:
        raise Refused(f"--text-encoder '{path}': unexpected tensors ({', '.join(extra[:3])}); "
                      f"a shared position table (mT5) or another architecture?")
    return out, cfg


# ----------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------
TOKENIZER_SIDE_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tokenizer_info(spm_path):
    """(pieces, pad, eos, unk) via the sentencepiece module when installed, else (None, ...)."""
    with open(spm_path, "rb") as f:
        blob = f.read()
    if not blob or blob[0] != 0x0A:
        raise Refused(f"--tokenizer '{spm_path}': not a SentencePiece model (a protobuf starting "
                      f"with its pieces)")
    try:
        import sentencepiece as spm
    except ImportError:
        return None, None, None, None
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(blob)
    except Exception as e:  # noqa: BLE001
        raise Refused(f"--tokenizer '{spm_path}': SentencePiece cannot load it ({e})")
    return sp.get_piece_size(), sp.pad_id(), sp.eos_id(), sp.unk_id()


# ----------------------------------------------------------------------------------------
# TAEHV (structure of spec-taehv-umt5.md A3/A4/A8; widths read off the shapes)
# ----------------------------------------------------------------------------------------
def taehv_expected_keys(has_enc):
    ks = {"decoder.1.weight", "decoder.1.bias", "decoder.22.weight", "decoder.22.bias",
          "decoder.7.conv.weight", "decoder.13.conv.weight", "decoder.19.conv.weight",
          "decoder.8.weight", "decoder.14.weight", "decoder.20.weight"}
    for i in (3, 4, 5, 9, 10, 11, 15, 16, 17):
        for j in (0, 2, 4):
            ks |= {f"decoder.{i}.conv.{j}.weight", f"decoder.{i}.conv.{j}.bias"}
    if has_enc:
        ks |= {"encoder.0.weight", "encoder.0.bias", "encoder.17.weight", "encoder.17.bias",
               "encoder.2.conv.weight", "encoder.7.conv.weight", "encoder.12.conv.weight",
               "encoder.3.weight", "encoder.8.weight", "encoder.13.weight"}
        for i in (4, 5, 6, 9, 10, 11, 14, 15, 16):
            for j in (0, 2, 4):
                ks |= {f"encoder.{i}.conv.{j}.weight", f"encoder.{i}.conv.{j}.bias"}
    return ks


def load_taehv(path, unsafe):
    obj, kind, _ = load_any(path, unsafe)
    if kind == "pickle" and isinstance(obj, dict) and not is_state_dict(obj):
        for k in ("state_dict", "model"):
            if is_state_dict(obj.get(k)):
                obj = obj[k]
                break
    if not is_state_dict(obj):
        raise Refused(f"--vae '{path}': not a state dict")
    sd = tensor_items(obj)
    if guess_kind(sd.keys()) != "taehv":
        refuse_kind(path, sd, "a TAEHV checkpoint (taew2_1 / taew2_2)")
    sd = {re.sub(r"^taehv_(decoder|encoder)\.", r"\1.", k): v for k, v in sd.items()}
    has_enc = any(k.startswith("encoder.") for k in sd)
    want = taehv_expected_keys(has_enc)
    missing, extra = sorted(want - set(sd)), sorted(set(sd) - want)
    name = os.path.basename(path)
    if missing or extra:
        what = "a _super decoder (taew2_2_super)" if "super" in name or any(
            "super" in k for k in sd) else "another TAEHV variant (LTX, Hunyuan, ...)"
        raise Refused(f"--vae '{path}': not a Wan taew2_1 / taew2_2 TAEHV: "
                      f"{len(missing)} tensors missing ({', '.join(missing[:2])}), {len(extra)} "
                      f"unexpected ({', '.join(extra[:2])}); looks like {what}")
    d1, d22, d7 = sd["decoder.1.weight"], sd["decoder.22.weight"], sd["decoder.7.conv.weight"]
    if d7.shape[0] != d7.shape[1]:
        raise Refused(f"--vae '{path}': decoder.7 is {list(d7.shape)}, not square: an LTX TAEHV, "
                      f"not Wan's")
    z, outc = int(d1.shape[1]), int(d22.shape[0])
    variant = {(16, 3): "taew2_1", (48, 12): "taew2_2"}.get((z, outc))
    if variant is None:
        raise Refused(f"--vae '{path}': {z} latent channels and {outc} decoder outputs match neither "
                      f"taew2_1 (16, 3) nor taew2_2 (48, 12)")
    for k, v in sd.items():
        if not v.is_floating_point():
            raise Refused(f"--vae '{path}': tensor '{k}' is {v.dtype}, expected a float")
    return sd, {"variant": variant, "latent_channels": z, "has_encoder": has_enc,
                "decoder_width": int(d1.shape[0])}


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------
def write_safetensors(path, tensors, metadata):
    """Written to path + '.partial' (renamed by the caller). Tensors contiguous, widest dtype
    first so every tensor is aligned to its element size; header padded to 8 bytes."""
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, off = {}, 0
    for name, t in items:
        n = t.numel() * t.element_size()
        header[name] = {"dtype": t.st_dtype, "shape": [int(x) for x in t.shape],
                        "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, t in items:
            if t.numel():
                f.write(np.ascontiguousarray(t.array).tobytes())
    return tmp, off


def cast(sd, dtype):
    """dtype: "BF16" / "F32"; rounded as torch's .to() rounds."""
    return {k: v.cast(dtype) for k, v in sd.items()}


def finite_check(sd, label):
    for k, v in sd.items():
        if v.is_floating_point() and v.numel() and not bool(np.isfinite(v.to_f32()).all()):
            raise Refused(f"'{label}': tensor '{k}' holds NaN or Inf")


# ----------------------------------------------------------------------------------------
LL2_FORMATS = ("longlive_generator_merged_lora", "longlive_generator_merged_bf16")


def refuse_nvfp4(path, obj):
    """LongLive 2.0's model_4o6.pt: packed NVFP4 weights (E2M1 codes + E4M3 block scales) for
    Blackwell GEMMs; sinkstream reads bf16 weights."""
    fmt = obj.get("checkpoint_format") if isinstance(obj, dict) else None
    gen = obj.get("generator") if isinstance(obj, dict) else None
    packed = isinstance(gen, dict) and any(str(k).endswith("quantized_weight_values") for k in gen)
    if fmt == "longlive_generator_nvfp4" or packed:
        raise Refused(f"'{path}' holds packed NVFP4 weights (LongLive 2.0 model_4o6.pt, checkpoint "
                      f"format 'longlive_generator_nvfp4', for Blackwell GPUs): sinkstream reads "
                      f"bf16 weights. Convert model_te.pt (the same NVFP4-trained 4-/2-step model "
                      f"stored as plain merged bf16) or model_bf16.pt instead")


def detect_family(a, obj):
    refuse_nvfp4(a.dit, obj)
    if a.family != "auto":
        return a.family, "given"
    base = os.path.basename(a.dit).lower()
    fmt = obj.get("checkpoint_format") if isinstance(obj, dict) else None
    if fmt in LL2_FORMATS:
        return "longlive2", f"checkpoint_format '{fmt}'"
    gen = obj.get("generator") if isinstance(obj, dict) else None
    if isinstance(gen, dict):
        pe = [v for k, v in gen.items() if str(k).endswith("patch_embedding.weight")]
        if pe and hasattr(pe[0], "dim") and pe[0].dim() == 5 and pe[0].shape[1] == 48:
            return "longlive2", "a generator with 48 latent channels (Wan2.2-TI2V-5B)"
    if a.lora:
        return "longlive", "a --lora adapter is given"
    for hint, fam in (("demo", "demo"), ("longlive", "longlive"), ("rolling", "rolling-forcing"),
                      ("reward", "reward-forcing"), ("self_forcing", "self-forcing"),
                      ("self-forcing", "self-forcing")):
        if hint in base:
            return fam, f"file name '{os.path.basename(a.dit)}'"
    if isinstance(obj, dict) and any(isinstance(obj.get(k), dict) for k in ("generator", "generator_ema")):
        return "self-forcing", "a trainer dict with generator/generator_ema"
    if isinstance(obj, dict) and is_state_dict(obj) and guess_kind(obj.keys()) == "dit":
        raise Refused(f"'{a.dit}' is a bare DiT state dict and its name says nothing about the "
                      f"family; pass --family (reward-forcing releases this layout)")
    return "self-forcing", "default"


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        description="Convert published Self-Forcing / LongLive / Reward Forcing / Rolling Forcing "
                    "checkpoints (+ umT5, tokenizer, TAEHV) into a sinkstream model directory.",
        epilog="See docs/MODELS.md. Example: --dit checkpoints/self_forcing_dmd.pt --text-encoder "
               "wan/models_t5_umt5-xxl-enc-bf16.pth --tokenizer wan/google/umt5-xxl --vae "
               "taew2_1.pth --out models/self-forcing")
    ap.add_argument("--dit", metavar="SRC.pt", help="the generator checkpoint (required unless "
                    "only --wan-vae is added to an existing model directory)")
    ap.add_argument("--lora", metavar="LORA.pt", help="LoRA adapter merged into --dit (LongLive)")
    ap.add_argument("--lora-alpha", type=float, metavar="A",
                    help="LoRA alpha; scale = alpha / rank (default: alpha = rank, scale 1, as "
                         "LongLive's r256/a256)")
    ap.add_argument("--vae", metavar="TAE.pth", help="TAEHV taew2_1 / taew2_2 (.pth or .safetensors)")
    ap.add_argument("--wan-vae", metavar="Wan2.2_VAE.pth", help="Wan2.2 VAE: its encoder, for "
                    "LongLive 2.0 image-to-video (without --dit: added to the model directory --out)")
    ap.add_argument("--text-encoder", metavar="T5.pth", help="umT5 encoder (Wan's .pth or HF names)")
    ap.add_argument("--tokenizer", metavar="DIR", help="google/umt5-xxl folder or spiece.model")
    ap.add_argument("--out", required=True, metavar="MODEL_DIR", help="output model directory")
    ap.add_argument("--family", default="auto", choices=("auto",) + FAMILIES)
    ap.add_argument("--dtype", default="bf16", choices=("bf16", "f32"),
                    help="dtype of the DiT and text encoder weights (default bf16)")
    ap.add_argument("--dit-config", metavar="config.json",
                    help="Wan/diffusers config.json of the DiT (needed when head_dim != 128); "
                         "copied into MODEL_DIR")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--ema", dest="ema", action="store_true", default=None,
                   help="use 'generator_ema' (default for self-forcing / rolling-forcing)")
    g.add_argument("--no-ema", dest="ema", action="store_false",
                   help="use 'generator' (default for longlive)")
    ap.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                    help="override a default that model.json gives `sinkstream generate` "
                         "(e.g. --set frames=120 --set height=320); repeatable")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="allow a full torch.load when the safe loaders refuse a file you trust")
    a = ap.parse_args(argv)
    if a.tokenizer and not a.text_encoder:
        ap.error("--tokenizer goes with --text-encoder")
    if a.text_encoder and not a.tokenizer:
        ap.error("--text-encoder needs --tokenizer DIR (google/umt5-xxl, with spiece.model)")
    if a.lora_alpha is not None and (not a.lora or not (a.lora_alpha > 0)):
        ap.error("--lora-alpha needs --lora and a positive value")
    a.overrides = {}
    for kv in a.set:
        k, eq, v = kv.partition("=")
        k = k.strip().lstrip("-")
        if not eq or not k or not v.strip():
            ap.error(f"--set '{kv}': expected OPTION=VALUE (a `sinkstream generate` option)")
        try:
            val = json.loads(v)
        except ValueError:
            val = v.strip()
        if isinstance(val, list):
            val = ",".join(str(x) for x in val)
        if not isinstance(val, (int, float, str, bool)):
            ap.error(f"--set '{kv}': the value must be a number, a string or a list")
        a.overrides[k] = val
    try:
        convert(a)
    except Refused as e:
        print(f"convert_checkpoint: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("convert_checkpoint: out of memory (the checkpoint is loaded whole; see "
              "docs/MODELS.md for the RAM each family needs)", file=sys.stderr)
        return 1
    return 0


WAN_VAE_FILE = "wan2.2_vae_encoder.safetensors"


def load_wan_vae_encoder(path, unsafe):
    """The encoder tensors of Wan2.2_VAE.pth (vae2_2.py WanVAE_: encoder.*, conv1.*), checked
    for the layout vae/wan_vae_load.c binds: 12 input channels (RGB patchified 2x2), z = 48."""
    obj, kind, _ = load_any(path, unsafe)
    if kind == "pickle" and isinstance(obj, dict) and not is_state_dict(obj):
        for k in ("state_dict", "model"):
            if is_state_dict(obj.get(k)):
                obj = obj[k]
                break
    if not is_state_dict(obj):
        raise Refused(f"--wan-vae '{path}': not a state dict")
    sd = tensor_items(obj)
    enc = {k: v for k, v in sd.items() if k.startswith("encoder.") or k.startswith("conv1.")}
    c1, mu = enc.get("encoder.conv1.weight"), enc.get("conv1.weight")
    if c1 is None or mu is None or c1.dim() != 5 or mu.dim() != 5:
        keys = sorted(sd)[:3]
        raise Refused(f"--wan-vae '{path}': no 'encoder.conv1.weight' / 'conv1.weight' 5-D tensors "
                      f"(first keys: {', '.join(keys)}): not a Wan VAE (vae2_2.py) state dict")
    if c1.shape[1] != 12:
        raise Refused(f"--wan-vae '{path}': encoder.conv1 takes {c1.shape[1]} channels, not 12: the "
                      f"Wan2.1 VAE (Wan2.1_VAE.pth, 16 latent channels, 8x) is not Wan2.2's")
    if mu.shape[0] != 96:
        raise Refused(f"--wan-vae '{path}': conv1 makes {mu.shape[0]} channels, expected 96 "
                      f"(mu and logvar of 48 latent channels)")
    for k, v in enc.items():
        if not v.is_floating_point():
            raise Refused(f"--wan-vae '{path}': tensor '{k}' is {v.dtype}, expected a float")
    info = {"dim": int(c1.shape[0]), "z_dim": 48, "tensors": len(enc),
            "dropped": len(sd) - len(enc)}
    return enc, info


def write_wan_vae(a, out, partial, model):
    enc, info = load_wan_vae_encoder(a.wan_vae, a.unsafe_pickle)
    finite_check(enc, a.wan_vae)
    tmp, nbytes = write_safetensors(os.path.join(out, WAN_VAE_FILE), enc,
                                    {"format": "pt", "variant": "wan2.2_vae_encoder",
                                     "source": os.path.basename(a.wan_vae)})
    partial.append((tmp, os.path.join(out, WAN_VAE_FILE)))
    model["files"]["vae_encoder"] = WAN_VAE_FILE
    model["vae_encoder"] = dict(info, source=os.path.basename(a.wan_vae),
                                dtype=sorted({v.dtype for v in enc.values()}))
    note(f"{WAN_VAE_FILE}: Wan2.2 VAE encoder (dim {info['dim']}, {info['tensors']} tensors, "
         f"{human(nbytes)}, kept as stored; {info['dropped']} decoder tensors dropped)")


def add_wan_vae(a):
    """--wan-vae without --dit: into the existing model directory --out."""
    mj = os.path.join(a.out, "model.json")
    if not os.path.isfile(mj):
        raise Refused(f"--wan-vae without --dit adds the encoder to a model directory, but "
                      f"'{mj}' does not exist: convert the DiT first (or pass --dit)")
    with open(mj) as f:
        model = json.load(f)
    if model.get("family") != "longlive2":
        raise Refused(f"--wan-vae: '{a.out}' is a {model.get('family')} model; the Wan2.2 VAE "
                      f"encoder is for LongLive 2.0 (family longlive2) image-to-video")
    partial = []
    try:
        write_wan_vae(a, a.out, partial, model)
        for tmp, final in partial:
            os.replace(tmp, final)
        with open(mj + ".partial", "w") as f:
            json.dump(model, f, indent=1)
            f.write("\n")
        os.replace(mj + ".partial", mj)
    finally:
        for tmp, _ in partial:
            if os.path.exists(tmp):
                os.unlink(tmp)
    print(f"{a.out}: added {WAN_VAE_FILE} (files.vae_encoder); `sinkstream generate --model "
          f"{a.out} --image PICTURE` uses it")


def convert(a):
    dtype = "BF16" if a.dtype == "bf16" else "F32"
    if not a.dit:
        if not a.wan_vae:
            raise Refused("give --dit SRC.pt (or only --wan-vae to add the Wan2.2 VAE encoder to "
                          "an existing model directory)")
        if not os.path.isfile(a.wan_vae):
            raise Refused(f"--wan-vae '{a.wan_vae}': no such file")
        return add_wan_vae(a)
    for p, flag in ((a.dit, "--dit"), (a.lora, "--lora"), (a.vae, "--vae"), (a.wan_vae, "--wan-vae"),
                    (a.text_encoder, "--text-encoder"), (a.dit_config, "--dit-config")):
        if p and not os.path.isfile(p):
            raise Refused(f"{flag} '{p}': no such file")
    if a.tokenizer and not (os.path.isfile(a.tokenizer) or
                            os.path.isfile(os.path.join(a.tokenizer, "spiece.model"))):
        raise Refused(f"--tokenizer '{a.tokenizer}': neither a spiece.model file nor a folder "
                      f"holding one (Wan ships it as google/umt5-xxl/spiece.model)")
    if os.path.exists(a.out) and not os.path.isdir(a.out):
        raise Refused(f"--out '{a.out}' exists and is not a directory")
    created = not os.path.exists(a.out)
    os.makedirs(a.out, exist_ok=True)
    partial = []  # (tmp, final)
    try:
        try:
            model = convert_into(a, dtype, partial)
        except BaseException:
            for tmp, _ in partial:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            tok = os.path.join(a.out, "tokenizer")
            for d in ([tok] if os.path.isdir(tok) else []) + ([a.out] if created else []):
                try:
                    os.rmdir(d)  # only when empty: what was there before stays
                except OSError:
                    pass
            raise
        for tmp, final in partial:
            os.replace(tmp, final)
        with open(os.path.join(a.out, "model.json.partial"), "w") as f:
            json.dump(model, f, indent=1)
            f.write("\n")
        os.replace(os.path.join(a.out, "model.json.partial"), os.path.join(a.out, "model.json"))
    finally:
        for tmp, _ in partial:
            if os.path.exists(tmp):
                os.unlink(tmp)
    files = ", ".join(sorted(v for v in model["files"].values()))
    print(f"{a.out}: {model['family']} model directory ({files}, model.json); check it with "
          f"`sinkstream inspect {a.out}`")


def convert_into(a, dtype, partial):
    out = a.out
    # ---- DiT (+ LoRA)
    obj, kind, meta = load_any(a.dit, a.unsafe_pickle)
    family, why = detect_family(a, obj)
    note(f"family {family} ({why})")
    ckfmt = obj.get("checkpoint_format") if isinstance(obj, dict) else None
    if kind == "safetensors":
        sd, which = obj, "(safetensors)"
        if guess_kind(sd.keys()) != "dit":
            refuse_kind(a.dit, sd, "a DiT generator checkpoint")
    else:
        sd, which = pick_generator(obj, a.dit, family, a.ema)
    del obj
    if guess_kind(sd.keys()) != "dit":
        refuse_kind(a.dit, sd, "a DiT generator checkpoint")
    sd = canonical_dit(sd, a.dit)
    cfg, cfg_src = resolve_dit_config(sd, a.dit, a.dit_config)
    check_dit(sd, cfg, a.dit)
    src_dtypes = sorted({v.dtype for v in sd.values()})
    lora_info = None
    if family == "longlive2" and cfg["in_dim"] != 48:
        raise Refused(f"--family longlive2: '{a.dit}' has {cfg['in_dim']} latent channels; LongLive "
                      f"2.0 is Wan2.2-TI2V-5B with 48 (wrong file, or --family longlive for 1.0)")
    if family == "longlive" and not a.lora:
        raise Refused("--family longlive: LongLive releases the generator as longlive_base.pt + "
                      "lora.pt (not merged); pass --lora lora.pt (or --family self-forcing to "
                      "convert a base checkpoint on its own)")
    if a.lora:
        lobj, lkind, _ = load_any(a.lora, a.unsafe_pickle)
        pairs = lora_pairs(lobj, a.lora)
        del lobj
        ranks, targets = merge_lora(sd, pairs, a.lora, a.lora_alpha)
        lora_info = {"file": os.path.basename(a.lora), "modules": len(pairs), "rank": ranks,
                     "alpha": a.lora_alpha if a.lora_alpha is not None else "rank",
                     "targets": sorted(targets)}
        note(f"merged {len(pairs)} LoRA pairs (rank {ranks}, scale "
             f"{'alpha/r' if a.lora_alpha is not None else '1'}) into the base")
    finite_check(sd, a.dit)
    sdc = cast(sd, dtype)
    del sd
    if isinstance(ckfmt, str):
        which = f"{which} ({ckfmt})"
    provenance = {"source": os.path.basename(a.dit), "weights": which, "family": family,
                  "source_dtypes": ",".join(src_dtypes), "dtype": a.dtype,
                  "converter": f"sinkstream tools/convert_checkpoint.py v{VERSION}",
                  "config_source": cfg_src}
    if lora_info:
        provenance["lora"] = json.dumps(lora_info)
    tmp, nbytes = write_safetensors(os.path.join(out, "dit.safetensors"), sdc,
                                    dict(provenance, config=json.dumps(cfg), format="pt"))
    partial.append((tmp, os.path.join(out, "dit.safetensors")))
    n_dit = len(sdc)
    del sdc
    note(f"dit.safetensors: {n_dit} tensors, {human(nbytes)}, weights '{which}', config from "
         f"{cfg_src}")
    files = {"dit": "dit.safetensors"}
    model = {"format": "sinkstream-model", "version": 1, "family": family,
             "title": FAMILY[family]["title"], "files": files,
             "dit": {"config": cfg, "weights": which, "source": os.path.basename(a.dit),
                     "dtype": a.dtype},
             "generate": dict(FAMILY[family]["generate"], **a.overrides),
             "upstream": FAMILY[family]["source"]}
    if "fallback" in FAMILY[family]:
        model["fallback"] = FAMILY[family]["fallback"]
    if lora_info:
        model["dit"]["lora"] = lora_info
    if a.dit_config:
        shutil.copyfile(a.dit_config, os.path.join(out, "config.json.partial"))
        partial.append((os.path.join(out, "config.json.partial"), os.path.join(out, "config.json")))
        files["dit_config"] = "config.json"

    # ---- text encoder + tokenizer
    if a.text_encoder:
        te, tcfg = load_umt5(a.text_encoder, a.unsafe_pickle)
        if tcfg["dim"] != cfg["text_dim"]:
            raise Refused(f"--text-encoder '{a.text_encoder}' outputs dim {tcfg['dim']} but the DiT "
                          f"takes text_dim {cfg['text_dim']}: they do not belong together")
        spm_path = a.tokenizer if os.path.isfile(a.tokenizer) else os.path.join(a.tokenizer,
                                                                                  "spiece.model")
        pieces, pad, eos, unk = tokenizer_info(spm_path)
        if pieces is not None and pieces > tcfg["vocab_size"]:
            raise Refused(f"--tokenizer '{spm_path}' has {pieces} pieces but the encoder's "
                          f"embedding has {tcfg['vocab_size']} rows: wrong tokenizer for it")
        tcfg["text_len"] = int(cfg["text_len"])
        tcfg["eps"] = 1e-6
        finite_check(te, a.text_encoder)
        tec = cast(te, dtype)
        del te
        tmeta = {k: str(v) for k, v in tcfg.items()}
        tmeta.update({"config": json.dumps(tcfg), "format": "pt",
                      "source": os.path.basename(a.text_encoder), "dtype": a.dtype})
        tmp, nbytes = write_safetensors(os.path.join(out, "text_encoder.safetensors"), tec, tmeta)
        partial.append((tmp, os.path.join(out, "text_encoder.safetensors")))
        del tec
        os.makedirs(os.path.join(out, "tokenizer"), exist_ok=True)
        tdst = os.path.join(out, "tokenizer", "spiece.model")
        shutil.copyfile(spm_path, tdst + ".partial")
        partial.append((tdst + ".partial", tdst))
        src_dir = os.path.dirname(spm_path)
        for side in TOKENIZER_SIDE_FILES:
            if os.path.isfile(os.path.join(src_dir, side)):
                d = os.path.join(out, "tokenizer", side)
                shutil.copyfile(os.path.join(src_dir, side), d + ".partial")
                partial.append((d + ".partial", d))
        files["text_encoder"] = "text_encoder.safetensors"
        files["tokenizer"] = "tokenizer/spiece.model"
        model["text_encoder"] = dict(tcfg, source=os.path.basename(a.text_encoder), dtype=a.dtype)
        model["tokenizer"] = {"pieces": pieces, "pad_id": pad, "eos_id": eos, "unk_id": unk}
        note(f"text_encoder.safetensors: umT5 dim {tcfg['dim']}, {tcfg['num_layers']} layers, "
             f"vocab {tcfg['vocab_size']}, {human(nbytes)}; tokenizer "
             f"{pieces if pieces is not None else '?'} pieces")

    # ---- TAEHV
    if a.vae:
        vsd, vinfo = load_taehv(a.vae, a.unsafe_pickle)
        if (family == "longlive2" and vinfo["variant"] != "taew2_2") or \
                vinfo["latent_channels"] != cfg["out_dim"] or vinfo["latent_channels"] != cfg["in_dim"]:
            raise Refused(f"--vae '{a.vae}' ({vinfo['variant']}) decodes {vinfo['latent_channels']}-"
                          f"channel latents but the DiT makes {cfg['out_dim']}: taew2_1 goes with "
                          f"Wan 2.1 (16 channels), taew2_2 with Wan 2.2 TI2V-5B (48)")
        finite_check(vsd, a.vae)
        tmp, nbytes = write_safetensors(os.path.join(out, "vae.safetensors"), vsd,
                                        {"format": "pt", "variant": vinfo["variant"],
                                         "source": os.path.basename(a.vae)})
        partial.append((tmp, os.path.join(out, "vae.safetensors")))
        files["vae"] = "vae.safetensors"
        model["vae"] = dict(vinfo, source=os.path.basename(a.vae),
                            dtype=sorted({v.dtype for v in vsd.values()}))
        note(f"vae.safetensors: {vinfo['variant']} ({len(vsd)} tensors, {human(nbytes)}, kept "
             f"as stored)")

    # ---- Wan2.2 VAE encoder (LongLive 2.0 image-to-video)
    if a.wan_vae:
        if cfg["in_dim"] != 48:
            raise Refused(f"--wan-vae: the Wan2.2 VAE encoder makes 48-channel latents but the DiT "
                          f"takes {cfg['in_dim']}: it goes with LongLive 2.0 (Wan2.2-TI2V-5B)")
        write_wan_vae(a, out, partial, model)
    return model


if __name__ == "__main__":
    sys.exit(main())
