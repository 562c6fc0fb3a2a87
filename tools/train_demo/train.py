#!/usr/bin/env python3
"""Trains the sinkstream demo family from scratch on procedurally rendered videos.

    python3 tools/train_demo/train.py --work DIR [--stages tokenizer,ae,dit,finetune]
        [--device cuda] [--seed 0] [--ae-seconds S] [--dit-seconds S] [--ft-seconds S]

Stages (each resumes from the checkpoints in --work, so a run can be split into device calls):
  tokenizer  SentencePiece BPE model (unigram EM collapses to characters on so small a language) on every prompt of the grammar (grammar.py)
  ae         TAEHV (taew2_1 layout, 16 latent channels, narrow widths): reconstruction of
             rendered clips, latent statistics pulled to mean 0 / std 1 (the DiT's scale)
  dit        causal Wan DiT + umT5 trained jointly, teacher forcing: one sequence holds the clean
             context chunks (t = 0) and the noisy chunks; each noisy chunk sees the clean chunks
             the runtime's KV cache would hold (sink + recent window, or a FIFO window) at their
             absolute frame positions, which are drawn up to frame ~1900 (2-minute videos).
             Context latents get a little noise (Diffusion Forcing); some samples switch prompt
             at a chunk boundary (with and without KV re-cache)
  finetune   as dit, but the context chunks are the model's own 4-step samples (Self-Forcing
             style: the context the runtime will really see), the targets the rendered truth
Then tools/train_demo/export.py writes the model directory through tools/convert_checkpoint.py.
Stage lengths are wall-clock budgets (the step counts reached go into losses.json).
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import grammar as G  # noqa: E402
import render as R   # noqa: E402
from models import TAEHV, UMT5, WanDiT, check_against_reference  # noqa: E402

H, W = 128, 192
CHUNK = 3                       # latent frames per chunk
FPC = 4 * CHUNK                 # video frames per chunk
TEXT_LEN = 32
AE_DEC, AE_ENC = (64, 32, 16, 16), 32
DIT_CFG = {"dim": 256, "ffn_dim": 768, "num_heads": 4, "num_layers": 4, "in_dim": 16,
           "out_dim": 16, "text_dim": 128, "freq_dim": 64, "eps": 1e-6,
           "patch_size": [1, 2, 2], "text_len": TEXT_LEN}
UMT5_CFG = dict(dim=128, dim_attn=128, dim_ffn=256, heads=4, layers=2, buckets=32)
SAMPLER_SIGMAS = [1.0, 0.75, 0.5, 0.25]      # steps 1000,750,500,250 at shift 1 (model.json)
MAX_CHUNK = 160                              # 160 chunks = 480 latent frames = 2 minutes
# Training clips may be crops of the video frame (the networks are convolutional / use relative
# RoPE, so they run on any size): the cpu preset trains on 64x96 to fit a 2-core machine.
RH, RW = H, W
PRESETS = {
    "h100": {},
    "cpu": {"RH": 64, "RW": 96, "AE_DEC": (24, 16, 8, 8), "AE_ENC": 12,
            "DIT_CFG": dict(DIT_CFG, dim=128, ffn_dim=384, num_heads=2, num_layers=3, text_dim=64),
            "UMT5_CFG": dict(UMT5_CFG, dim=64, dim_attn=64, dim_ffn=128)},
}


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ----------------------------------------------------------------------------- tokenizer
def train_tokenizer(work):
    import sentencepiece as spm
    path = os.path.join(work, "spiece.model")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write("\n".join(G.corpus_lines()) + "\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(tmp, "sp"), model_type="bpe",
            vocab_size=128, hard_vocab_limit=False, character_coverage=1.0,
            normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, bos_id=2, unk_id=3,
            byte_fallback=False, num_threads=1, minloglevel=2, seed_sentencepiece_size=10000)
        with open(os.path.join(tmp, "sp.model"), "rb") as f, open(path, "wb") as g:
            g.write(f.read())
    sp = spm.SentencePieceProcessor(model_file=path)
    # the ids of every prompt, for machines without the sentencepiece module (the device)
    ids = {p: sp.encode(p, out_type=int)[:TEXT_LEN - 1] + [sp.eos_id()] for p in G.corpus_lines()}
    with open(os.path.join(work, "tokens.json"), "w") as f:
        json.dump({"pieces": sp.get_piece_size(), "ids": ids}, f)
    log(f"tokenizer: {sp.get_piece_size()} pieces; '{G.corpus_lines()[0]}' -> "
        f"{sp.encode(G.corpus_lines()[0], out_type=str)}")


class Tokens:
    """prompt -> ids (+ EOS), as the runtime tokenizes (Wan's cleaning is a no-op on the
    grammar), from tokens.json (written by the tokenizer stage with spiece.model)."""

    def __init__(self, work):
        with open(os.path.join(work, "tokens.json")) as f:
            d = json.load(f)
        self.pieces, self.cache = d["pieces"], d["ids"]

    def batch(self, prompts, device):
        ids = [self.cache[p] for p in prompts]
        out = torch.zeros(len(ids), TEXT_LEN, dtype=torch.long)
        for i, t in enumerate(ids):
            out[i, :len(t)] = torch.tensor(t)
        return out.to(device), torch.tensor([len(t) for t in ids], device=device)


# ----------------------------------------------------------------------------- AE
def train_ae(a, work, dev, losses):
    g = torch.Generator().manual_seed(a.seed + 1)
    torch.manual_seed(a.seed + 1)
    ae = TAEHV(AE_DEC, AE_ENC)
    if a.ae_init == "structured":
        ae.structured_init()
    ae = ae.to(dev)
    log(f"ae: decoder widths {AE_DEC}, encoder {AE_ENC}, {sum(p.numel() for p in ae.parameters())} params, clips {RH}x{RW}")
    opt = torch.optim.AdamW(ae.parameters(), lr=a.ae_lr, weight_decay=0.0)
    B, T = a.ae_batch, 12
    t0, step, hist = time.time(), 0, []
    while time.time() - t0 < a.ae_seconds and step < a.ae_max_steps:
        sc = R.sample_scenes(B, g, RH, RW, switch_prob=0.3, switch_range=(0, T))
        s = int(torch.randint(0, 1800, (1,), generator=g))
        clip = R.render(sc, torch.arange(s, s + T), RH, RW, dev)            # [B, T, 3, H, W]
        lr = a.ae_lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(
            math.pi * min(1.0, (time.time() - t0) / a.ae_seconds))))
        for pg in opt.param_groups:
            pg["lr"] = lr
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            z = ae.encode(clip).float()
            zn = z + 0.05 * torch.randn_like(z) * torch.rand(B, 1, 1, 1, 1, device=dev)
            rec = ae.decode(zn).float()
        bg = R.BG_RGB[sc.bg].to(dev)[:, None, :, None, None]
        fg = ((clip - bg).abs().sum(2, keepdim=True) > 0.1).float()
        wgt = 1.0 + 8.0 * fg
        l_rec = ((rec - clip) ** 2 * wgt).mean() + 0.2 * ((rec - clip).abs() * wgt).mean()
        zc = z.transpose(1, 2).reshape(B, 16, -1)                           # per channel stats
        m_, v_ = zc.mean((0, 2)), zc.var((0, 2))
        l_reg = (m_ ** 2).mean() + ((v_ - 1) ** 2).mean() + 0.01 * F.relu(z.abs() - 2.5).pow(2).mean()
        loss = l_rec + (0.05 if a.ae_init == "random" else 0.0) * l_reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 25 == 0 or step == 1:
            mse = float(((rec.clamp(0, 1) - clip) ** 2).mean())
            hist.append({"step": step, "t": round(time.time() - t0, 1), "loss": float(l_rec),
                         "mse": mse, "psnr": -10 * math.log10(max(mse, 1e-10)),
                         "z_std": float(z.std())})
            if step % 200 == 0 or step == 1:
                log(f"ae step {step}: loss {float(l_rec):.5f} psnr {hist[-1]['psnr']:.2f} "
                    f"z mean {float(z.mean()):.3f} std {float(z.std()):.3f} |z|max {float(z.abs().max()):.2f}")
    losses["ae"] = {"steps": step, "seconds": round(time.time() - t0, 1), "batch": B,
                    "frames": T, "history": hist}
    torch.save({"ae": ae.state_dict_upstream()}, os.path.join(work, "ae.pt"))
    log(f"ae: {step} steps in {time.time() - t0:.0f} s")


def load_ae(work, dev):
    sd = torch.load(os.path.join(work, "ae.pt"), map_location="cpu")["ae"]
    dec = [sd[k].shape[0] for k in ("decoder.1.weight", "decoder.8.weight", "decoder.14.weight",
                                    "decoder.20.weight")]
    ae = TAEHV(dec, sd["encoder.0.weight"].shape[0])
    with torch.no_grad():
        for k, v in sd.items():
            ae.params[k.replace(".", "__")].copy_(v)
    ae.requires_grad_(False)
    return ae.to(dev).eval()


# ----------------------------------------------------------------------------- DiT data
def visible(a, b, sink):
    """May a query of absolute chunk a see the clean K/V of chunk b < a? The runtime's cache:
    sink policy, window 15 frames incl. a 3-frame sink = chunk 0 + the 3 chunks before a;
    fifo, window 15 = the 4 chunks before a."""
    return (a - b <= 3 or b == 0) if sink else (a - b <= 4)


def make_batch(a, g, ae, tok, dev, K):
    """One training batch. Returns dict with x0 (clean latents of the chunk set), chunks (their
    absolute numbers), the frame mask, prompts and per-chunk prompt index, loss weights."""
    B = a.dit_batch
    sink = random.random() < 0.65
    if sink:
        p = 1 if random.random() < 0.3 else random.randint(2, MAX_CHUNK - K)
        chunks = [0] + list(range(p, p + K))
    else:
        p = 0 if random.random() < 0.3 else random.randint(1, MAX_CHUNK - K)
        chunks = list(range(p, p + K))
    # optional prompt switch at the boundary before one of the recent chunks
    sc = R.sample_scenes(B, g, RH, RW, switch_prob=0.0, fixed_start=a.fixed_start,
                         radius_px=a.radius)
    # Where does the object start? Nothing in a prompt says, and a transformer with RoPE alone
    # cannot see absolute position, so a regression target for chunk 0 from pure noise would
    # be the average over positions (a blur that fades to the background at every step of a
    # few-step sampler). Instead the start is a function of the noise the sampler begins with:
    # the 16x16-pixel patch where chunk 0's noise, averaged over its frames and channels, is
    # largest (a global argmax, which attention can compute). Samples whose chunk 0 is trained
    # at sigma = 1 carry that noise; the rest start at an independent random patch.
    eps0, at_one = None, torch.zeros(B, dtype=torch.bool)
    if a.noise_start and chunks[0] == 0:
        h, w = RH // 8, RW // 8
        eps0 = torch.randn(B, CHUNK, 16, h, w, device=dev)
        at_one = torch.rand(B) < a.start_prob
        sc.x0, sc.y0 = noise_start(eps0)
        rnd_x, rnd_y = noise_start(torch.randn(B, CHUNK, 16, h, w, device=dev))
        sc.x0 = torch.where(at_one, sc.x0, rnd_x)
        sc.y0 = torch.where(at_one, sc.y0, rnd_y)
    sw_idx = None
    if random.random() < a.switch_prob:
        sw_idx = random.randint(1, K - 1) + (1 if sink else 0)   # index into chunks
        if True:
            sw2 = R.sample_scenes(B, g, RH, RW)
            sc.color2, sc.motion2 = sw2.color, sw2.motion
            for i in range(B):   # keep (color2, shape), (color2, motion2) in the training set
                if G.held_out(R.COLOR_LIST[int(sc.color2[i])], G.SHAPES[int(sc.shape[i])],
                              G.MOTIONS[int(sc.motion2[i])]):
                    sc.color2[i], sc.motion2[i] = sc.color[i], sc.motion[i]
            sc.switch = torch.full((B,), chunks[sw_idx] * FPC)
    # render + encode contiguous groups (one chunk of warm-up before a group not at 0)
    groups, cur = [], [chunks[0]]
    for c in chunks[1:]:
        if c == cur[-1] + 1:
            cur.append(c)
        else:
            groups.append(cur)
            cur = [c]
    groups.append(cur)
    lat = []
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        for grp in groups:
            warm = 1 if grp[0] > 0 else 0
            f0 = (grp[0] - warm) * FPC
            clip = R.render(sc, torch.arange(f0, (grp[-1] + 1) * FPC), RH, RW, dev)
            z = ae.encode(clip).float()
            lat.append(z[:, warm * CHUNK:])
    x0 = torch.cat(lat, 1)                                                   # [B, nC*3, 16, h, w]
    n = len(chunks)
    # per-chunk prompt index (clean stream, noisy stream)
    pc_noisy = [1 if (sw_idx is not None and i >= sw_idx) else 0 for i in range(n)]
    recache = sw_idx is not None and random.random() < 0.5
    pc_clean = list(pc_noisy)
    if recache:   # the runtime re-encodes the window (not the sink) under the new prompt
        pc_clean = [1 if (chunks[i] != 0 or not sink) else 0 for i in range(n)]
    # chunk-level masks -> frame mask over [clean frames | noisy frames]
    Fc = n * CHUNK
    fm = torch.zeros(2 * Fc, 2 * Fc, dtype=torch.bool)
    wts, has_ctx = [], []
    for i, ca in enumerate(chunks):
        qc = slice(i * CHUNK, (i + 1) * CHUNK)
        qn = slice(Fc + i * CHUNK, Fc + (i + 1) * CHUNK)
        fm[qn, qn] = True
        seen = 0
        for j, cb in enumerate(chunks):
            kc = slice(j * CHUNK, (j + 1) * CHUNK)
            if cb <= ca and (cb == ca or visible(ca, cb, sink)):
                fm[qc, kc] = True
            if cb < ca and visible(ca, cb, sink):
                fm[qn, kc] = True
                seen += 1
        # every noisy chunk is trained (a short window is a shorter context); the finetune
        # stage needs to know which had any context at all
        has_ctx.append(seen > 0)
        wts.append(0.0 if recache and i < sw_idx else 1.0)
    prompts = sc.prompts(False) + sc.prompts(True)
    ids, lens = tok.batch(prompts, dev)
    pos = torch.tensor([c * CHUNK + k for c in chunks for k in range(CHUNK)])
    fc = torch.tensor([pc for pc in pc_clean for _ in range(CHUNK)] +
                      [pc for pc in pc_noisy for _ in range(CHUNK)])
    return {"x0": x0, "chunks": chunks, "mask": fm.to(dev), "pos": torch.cat([pos, pos]),
            "ids": ids, "lens": lens, "frame_ctx": fc.to(dev)[None].expand(B, -1),
            "w": torch.tensor(wts, device=dev), "sink": sink, "has_ctx": has_ctx,
            "eps0": eps0, "at_one": at_one.to(dev)}


def noise_start(eps0):
    """Object start (pixel centre of the patch) from chunk-0 noise [B, 3, 16, h, w]: the
    2x2-latent (16x16-pixel, one DiT token) patch with the largest mean."""
    s = F.avg_pool2d(eps0.mean((1, 2))[:, None], 2)[:, 0]                   # [B, h/2, w/2]
    idx = s.flatten(1).argmax(1).cpu()
    tw = s.shape[2]
    return (idx % tw).float() * 16 + 8, (idx // tw).float() * 16 + 8


def encode_text(te, ids, lens, B):
    ctx = te(ids, lens)                                                      # [2B, L, 128]
    return torch.stack([ctx[:B], ctx[B:]], 1)                                # [B, 2, L, 128]


def draw_sigmas(B, n, dev):
    s = torch.rand(B, n, device=dev)
    disc = torch.tensor(SAMPLER_SIGMAS + [0.6, 0.333, 0.143], device=dev)
    pick = disc[torch.randint(len(disc), (B, n), device=dev)]
    return torch.where(torch.rand(B, n, device=dev) < 0.5, pick, s).clamp(0.02, 1.0)


def rep(t):   # per-chunk [B, n] -> per-frame [B, n*3]
    return t.repeat_interleave(CHUNK, 1)


@torch.no_grad()
def self_generated_context(dit, ctx, bt, x0):
    """The model's own 4-step samples of every chunk given the true context (teacher-forced
    rollout, as many chunks in parallel as the sequence holds)."""
    B, Fc = x0.shape[:2]
    x = torch.randn_like(x0)
    t_clean = torch.zeros(B, Fc, device=x0.device)
    for si, s in enumerate(SAMPLER_SIGMAS):
        t = torch.cat([t_clean, torch.full((B, Fc), 1000.0 * s, device=x0.device)], 1)
        v = dit(torch.cat([x0, x], 1), t, ctx, bt["frame_ctx"], bt["pos"], bt["mask"]).float()[:, Fc:]
        xh = x - s * v
        if si + 1 < len(SAMPLER_SIGMAS):
            sn = SAMPLER_SIGMAS[si + 1]
            x = (1 - sn) * xh + sn * torch.randn_like(xh)
    return xh


def train_dit(a, work, dev, losses, stage):
    random.seed(a.seed + (2 if stage == "dit" else 3))
    g = torch.Generator().manual_seed(a.seed + (2 if stage == "dit" else 3))
    torch.manual_seed(a.seed + (2 if stage == "dit" else 3))
    ae = load_ae(work, dev)
    tok = Tokens(work)
    dit = WanDiT(DIT_CFG)
    te = UMT5(tok.pieces, **UMT5_CFG)
    log(f"{stage}: DiT {sum(p.numel() for p in dit.parameters())} params {DIT_CFG}, umT5 "
        f"{sum(p.numel() for p in te.parameters())} params, clips {RH}x{RW}")
    ck = os.path.join(work, "dit.pt")
    if stage == "finetune" or (a.resume and os.path.exists(ck)):
        st = torch.load(ck, map_location="cpu")
        dit.load_state_dict(st["dit_ema"] if stage == "finetune" else st["dit"])
        te.load_state_dict(st["te_ema"] if stage == "finetune" else st["te"])
    dit, te = dit.to(dev), te.to(dev)
    ema_d = {k: v.detach().clone().float() for k, v in dit.state_dict().items()}
    ema_t = {k: v.detach().clone().float() for k, v in te.state_dict().items()}
    params = list(dit.parameters()) + list(te.parameters())
    lr0 = a.dit_lr if stage == "dit" else a.ft_lr
    opt = torch.optim.AdamW(params, lr=lr0, weight_decay=0.01, betas=(0.9, 0.99))
    seconds = a.dit_seconds if stage == "dit" else a.ft_seconds
    K = a.chunks
    t0, step, hist = time.time(), 0, []
    decay = a.ema
    while time.time() - t0 < seconds and step < a.dit_max_steps:
        frac = min(1.0, (time.time() - t0) / seconds)
        lr = lr0 * min(1.0, (step + 1) / (200 if stage == "dit" else 50)) * (0.15 + 0.85 * 0.5 * (1 + math.cos(math.pi * frac)))
        for pg in opt.param_groups:
            pg["lr"] = lr
        bt = make_batch(a, g, ae, tok, dev, K)
        x0 = bt["x0"]
        B, Fc = x0.shape[:2]
        n = Fc // CHUNK
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            ctx = encode_text(te, bt["ids"], bt["lens"], B)
            ctxin = x0
            used_self = False
            if stage == "finetune" and random.random() < a.self_prob:
                xh = self_generated_context(dit, ctx.detach(), bt, x0)
                # a chunk generated without context (chunk 0, or a window cut short) starts
                # anywhere, not where the truth is: keep the truth there
                keep = torch.tensor([1.0 if h else 0.0 for h in bt["has_ctx"]], device=dev)
                kf = rep(keep[None].expand(B, -1))[..., None, None, None]
                ctxin = kf * xh.float() + (1 - kf) * x0
                used_self = True
            # Diffusion-Forcing style noise on the clean context, still labelled t = 0
            cs = a.ctx_noise * torch.rand(B, 1, 1, 1, 1, device=dev)
            ctxin = ctxin + cs * torch.randn_like(ctxin)
            sig = draw_sigmas(B, n, dev)
            eps = torch.randn_like(x0)
            if bt["eps0"] is not None:   # chunk 0 from the noise that placed its object
                one = bt["at_one"]
                sig[:, 0] = torch.where(one, torch.ones_like(sig[:, 0]), sig[:, 0])
                eps[:, :CHUNK] = torch.where(one[:, None, None, None, None], bt["eps0"],
                                             eps[:, :CHUNK])
            sf = rep(sig)[..., None, None, None]
            xt = (1 - sf) * x0 + sf * eps
            t = torch.cat([torch.zeros(B, Fc, device=dev), rep(sig) * 1000.0], 1)
            v = dit(torch.cat([ctxin, xt], 1), t, ctx, bt["frame_ctx"], bt["pos"], bt["mask"]).float()[:, Fc:]
        target = eps - x0
        # the object covers ~3% of the frame: weight latent pixels by how far they are from the
        # frame's background (its spatial median), or the loss is won by the background alone
        dev_ = (x0 - x0.flatten(3).median(-1).values[..., None, None]).abs().mean(2, keepdim=True)
        ow = 1.0 + a.obj_weight * dev_ / dev_.amax((3, 4), keepdim=True).clamp_min(1e-3)
        per = (((v - target) ** 2) * ow).mean((2, 3, 4)) / ow.mean((2, 3, 4))  # [B, Fc]
        wf = rep(bt["w"][None].expand(B, -1))
        loss = (per * wf).sum() / wf.sum().clamp_min(1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        with torch.no_grad():
            d = decay if step > 100 else 0.9
            for k, v_ in dit.state_dict().items():
                ema_d[k].mul_(d).add_(v_.float(), alpha=1 - d)
            for k, v_ in te.state_dict().items():
                ema_t[k].mul_(d).add_(v_.float(), alpha=1 - d)
        if step % 20 == 0 or step == 1:
            # x0 error at the sampler's last step (sigma 0.25) is what the video shows
            hist.append({"step": step, "t": round(time.time() - t0, 1), "loss": float(loss),
                         "grad_norm": float(gn), "self_ctx": used_self, "sink": bt["sink"]})
            if step % 100 == 0 or step == 1:
                log(f"{stage} step {step}: loss {float(loss):.4f} grad {float(gn):.2f} lr {lr:.2e} "
                    f"chunks {bt['chunks'][:2]}..{bt['chunks'][-1]} self {used_self}")
        if a.save_every and step % a.save_every == 0:
            save_dit(work, dit, te, ema_d, ema_t)
    losses[stage] = {"steps": step, "seconds": round(time.time() - t0, 1), "batch": a.dit_batch,
                     "chunks": K, "history": hist}
    save_dit(work, dit, te, ema_d, ema_t)
    log(f"{stage}: {step} steps in {time.time() - t0:.0f} s")


def save_dit(work, dit, te, ema_d, ema_t):
    st = {"dit": {k: v.detach().float().cpu() for k, v in dit.state_dict().items()},
          "te": {k: v.detach().float().cpu() for k, v in te.state_dict().items()},
          "dit_ema": {k: v.cpu() for k, v in ema_d.items()},
          "te_ema": {k: v.cpu() for k, v in ema_t.items()},
          "dit_config": DIT_CFG, "umt5_config": UMT5_CFG}
    torch.save(st, os.path.join(work, "dit.pt.partial"))
    os.replace(os.path.join(work, "dit.pt.partial"), os.path.join(work, "dit.pt"))


# ----------------------------------------------------------------------------- eval
@torch.no_grad()
def rollout(dit, te, tok, prompt, nchunks, dev, seed=0):
    """Autoregressive 4-step rollout of one prompt as the runtime runs it (sink policy: chunk 0
    + the 3 chunks before), in the training layout [clean context | noisy chunk]. Latents
    [1, nchunks*3, 16, h, w]."""
    gen = torch.Generator(device=dev).manual_seed(seed)
    ids, lens = tok.batch([prompt, prompt], dev)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
        ctx = encode_text(te, ids, lens, 1)
    out = []
    h, w = H // 8, W // 8
    for c in range(nchunks):
        chunks = [b for b in range(c) if visible(c, b, True)] + [c]
        n = len(chunks)
        Fc = n * CHUNK
        clean = torch.zeros(1, Fc, 16, h, w, device=dev)
        for i, b in enumerate(chunks[:-1]):
            clean[:, i * CHUNK:(i + 1) * CHUNK] = out[b]
        fm = torch.zeros(2 * Fc, 2 * Fc, dtype=torch.bool)
        for i, ca in enumerate(chunks):
            qc = slice(i * CHUNK, (i + 1) * CHUNK)
            qn = slice(Fc + i * CHUNK, Fc + (i + 1) * CHUNK)
            fm[qn, qn] = True
            for j, cb in enumerate(chunks):
                kc = slice(j * CHUNK, (j + 1) * CHUNK)
                if cb <= ca:
                    fm[qc, kc] = True
                if cb < ca:
                    fm[qn, kc] = True
        pos = torch.tensor([ch * CHUNK + k for ch in chunks for k in range(CHUNK)])
        pos = torch.cat([pos, pos])
        fctx = torch.zeros(1, 2 * Fc, dtype=torch.long, device=dev)
        x = torch.randn(1, CHUNK, 16, h, w, device=dev, generator=gen)
        for si, s in enumerate(SAMPLER_SIGMAS):
            noisy = torch.zeros(1, Fc, 16, h, w, device=dev)
            noisy[:, -CHUNK:] = x
            t = torch.cat([torch.zeros(1, Fc, device=dev), torch.full((1, Fc), 1000.0 * s, device=dev)], 1)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                v = dit(torch.cat([clean, noisy], 1), t, ctx, fctx, pos, fm.to(dev)).float()
            xh = x - s * v[:, -CHUNK:]
            if si + 1 < len(SAMPLER_SIGMAS):
                sn = SAMPLER_SIGMAS[si + 1]
                x = (1 - sn) * xh + sn * torch.randn(xh.shape, device=dev, generator=gen)
        out.append(xh)
    return torch.cat(out, 1)


def evaluate(a, work, dev, losses):
    """Rollouts of a few prompts (held-out ones included), decoded and read by the pixel
    analysis of tests/demo/analyze.py: what the runtime's checks will see, before export."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "demo"))
    import analyze as A
    ae = load_ae(work, dev)
    tok = Tokens(work)
    st = torch.load(os.path.join(work, "dit.pt"), map_location="cpu")
    dit, te = WanDiT(DIT_CFG), UMT5(tok.pieces, **UMT5_CFG)
    dit.load_state_dict(st["dit_ema"])
    te.load_state_dict(st["te_ema"])
    dit, te = dit.to(dev).eval(), te.to(dev).eval()
    prompts = ["a red circle moving right on a black background",
               "a yellow square moving down on a gray background",
               "a green triangle bouncing on a dark blue background",
               "a blue circle standing still on a dark green background",
               "a magenta triangle moving left on a black background",      # held out
               "a red square moving up on a gray background",               # held out
               "a orange square moving right on a dark blue background",    # held out
               "a white circle bouncing on a dark green background"]        # held out
    res_all = []
    for i, p in enumerate(prompts):
        if p not in tok.cache:
            continue
        lat = rollout(dit, te, tok, p, a.eval_chunks, dev, seed=i)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            fr = ae.decode(lat).float().clamp(0, 1)                            # [1, T, 3, H, W]
        frames = (fr[0].permute(0, 2, 3, 1) * 255 + 0.5).byte().cpu().numpy()
        res, per = A.summarize(frames, p)
        # presence chunk by chunk: an object that fades once (drift) and one that comes and
        # goes between chunks (context not kept) need different fixes
        by_chunk = [round(sum(1 for q in per[i:i + FPC] if q["present"]) / len(per[i:i + FPC]), 2)
                    for i in range(0, len(per), FPC)]
        res_all.append(dict({k: res[k] for k in ("prompt", "present", "color_ok", "shape_ok",
                                                 "background_ok", "motion_ok", "motion")},
                            present_by_chunk=by_chunk))
        log(f"eval: {p}: present {res['present']:.2f} color {res['color_ok']:.2f} shape "
            f"{res['shape_ok']:.2f} bg {res['background_ok']:.2f} motion {res['motion']} "
            f"({'ok' if res['motion_ok'] else 'WRONG'}); present by chunk "
            f"{' '.join(f'{v:.2f}' for v in by_chunk)}")
    losses["eval"] = res_all


# ----------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="checkpoints and losses.json go here")
    ap.add_argument("--stages", default="tokenizer,ae,dit,finetune")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ae-seconds", type=float, default=150)
    ap.add_argument("--ae-max-steps", type=int, default=10 ** 9)
    ap.add_argument("--ae-batch", type=int, default=16)
    ap.add_argument("--ae-lr", type=float, default=2e-3)
    ap.add_argument("--ae-init", default="random", choices=("random", "structured"),
                    help="structured: start from averaging/repeating wiring (models.py)")
    ap.add_argument("--dit-seconds", type=float, default=420)
    ap.add_argument("--ft-seconds", type=float, default=240)
    ap.add_argument("--dit-max-steps", type=int, default=10 ** 9)
    ap.add_argument("--dit-batch", type=int, default=16)
    ap.add_argument("--dit-lr", type=float, default=5e-4)
    ap.add_argument("--ft-lr", type=float, default=1.5e-4)
    ap.add_argument("--chunks", type=int, default=5, help="recent chunks per training sequence")
    ap.add_argument("--switch-prob", type=float, default=0.3)
    ap.add_argument("--ctx-noise", type=float, default=0.1)
    ap.add_argument("--self-prob", type=float, default=0.6)
    ap.add_argument("--obj-weight", type=float, default=8.0,
                    help="extra loss weight on latent pixels far from the background")
    ap.add_argument("--fixed-start", type=int, default=0,
                    help="1: objects start at the frame centre (needs absolute position, which RoPE hides)")
    ap.add_argument("--radius", type=float, default=15.0,
                    help="object radius in pixels (0: random 13-18 px, which prompts do not name)")
    ap.add_argument("--noise-start", type=int, default=1,
                    help="1: chunk 0's object starts where its initial noise peaks (see make_batch)")
    ap.add_argument("--start-prob", type=float, default=0.5,
                    help="fraction of chunk-0 samples trained at sigma 1 from the placing noise")
    ap.add_argument("--eval-chunks", type=int, default=12, help="eval stage: chunks per rollout")
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--save-every", type=int, default=500)
    ap.add_argument("--resume", action="store_true", help="dit stage: continue from dit.pt")
    ap.add_argument("--check", action="store_true", help="run the reference self-check first")
    ap.add_argument("--preset", default="h100", choices=sorted(PRESETS),
                    help="model sizes and clip size (cpu: small models on 64x96 crops)")
    a = ap.parse_args()
    globals().update(PRESETS[a.preset])
    os.makedirs(a.work, exist_ok=True)
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    if a.check:
        check_against_reference()
    lp = os.path.join(a.work, "losses.json")
    losses = json.load(open(lp)) if os.path.exists(lp) else {}
    losses.setdefault("meta", {})
    losses["meta"].update({"torch": torch.__version__, "device": torch.cuda.get_device_name(0)
                           if dev.type == "cuda" else "cpu", "seed": a.seed, "args": vars(a)})
    for stage in a.stages.split(","):
        t0 = time.time()
        if stage == "tokenizer":
            train_tokenizer(a.work)
        elif stage == "ae":
            train_ae(a, a.work, dev, losses)
        elif stage in ("dit", "finetune"):
            train_dit(a, a.work, dev, losses, stage)
        elif stage == "eval":
            evaluate(a, a.work, dev, losses)
        else:
            ap.error(f"unknown stage '{stage}'")
        losses["meta"].setdefault("stage_seconds", {})[stage] = round(time.time() - t0, 1)
        with open(lp, "w") as f:
            json.dump(losses, f)
    log("done")


if __name__ == "__main__":
    main()
