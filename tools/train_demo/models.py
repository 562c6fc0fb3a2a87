"""Trainable (batched) versions of the three architectures sinkstream runs, with the upstream
tensor names, so a state_dict() is what tools/convert_checkpoint.py reads.

- TAEHV (taew2_1 layout): the layer list, layers and MemBlock of the independent reference
  tests/reference/make_taehv_fixtures.py, run over a batch of clips.
- umT5 encoder (Wan names): tests/reference/make_umt5_fixtures.py's math, batched with a key
  mask; rows past the prompt are zero, as Wan's wrapper (and the C runtime) gives the DiT.
- causal Wan DiT: tests/reference/make_dit_fixtures.py's block, batched, with a frame-level
  attention mask (block-causal, sink, window), per-frame timesteps and per-frame prompts.
check_against_reference() runs each one against its reference on random weights.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference")
sys.path.insert(0, os.path.abspath(REF))
import make_taehv_fixtures as RT  # noqa: E402


# ----------------------------------------------------------------------------- TAEHV
def set_taehv_widths(dec, enc):
    RT.NF_DEC[:] = dec
    RT.NF_ENC = enc


class TAEHV(nn.Module):
    """Encoder + decoder. Clips are [B, T, 3, H, W] in [0, 1]; latents [B, T/4, 16, H/8, W/8].
    Decoder output frame k (before the runtime's 3-frame trim) reconstructs input frame k."""

    def __init__(self, dec=(64, 32, 16, 16), enc=32, z=16):
        super().__init__()
        set_taehv_widths(list(dec), enc)
        self.params = nn.ParameterDict()
        gen = torch.Generator().manual_seed(0)
        for name, t in RT.make_params(z, 1, gen).items():
            self.params[name.replace(".", "__")] = nn.Parameter(t.clone())
        self.dec_layers = RT.decoder_layers(1)
        self.enc_layers = RT.encoder_layers(1)

    def P(self):
        return {k.replace("__", "."): v for k, v in self.params.items()}

    def state_dict_upstream(self):
        return {k: v.detach().float().cpu().clone() for k, v in self.P().items()}

    def _run(self, layers, x, B):
        P = self.P()
        for kind, arg in layers:
            if kind == "mem":
                n, c, h, w = x.shape
                xt = x.reshape(B, n // B, c, h, w)
                past = torch.cat([torch.zeros_like(xt[:, :1]), xt[:, :-1]], 1).reshape(n, c, h, w)
                x = RT.memblock(x, past, P, arg)
            else:
                x = RT.apply_layer(kind, arg, x, P)
        return x

    def encode(self, clips):
        B, T = clips.shape[:2]
        assert T % 4 == 0
        z = self._run(self.enc_layers, clips.reshape(B * T, *clips.shape[2:]), B)
        return z.reshape(B, T // 4, *z.shape[1:])

    def decode(self, lat):
        """All 4F frames (no trim), unclamped (the loss sees past [0, 1])."""
        B, Fr = lat.shape[:2]
        y = self._run(self.dec_layers, lat.reshape(B * Fr, *lat.shape[2:]), B)
        return y.reshape(B, 4 * Fr, *y.shape[1:])


# ----------------------------------------------------------------------------- umT5
def rel_bucket(rel, num_buckets, max_distance):
    half = num_buckets // 2
    out = (rel > 0).long() * half
    n = rel.abs()
    max_exact = half // 2
    large = max_exact + (torch.log(n.float().clamp_min(1) / max_exact) /
                         math.log(max_distance / max_exact) * (half - max_exact)).long()
    large = torch.clamp(large, max=half - 1)
    return out + torch.where(n < max_exact, n, large)


class UMT5(nn.Module):
    def __init__(self, vocab, dim=128, dim_attn=128, dim_ffn=256, heads=4, layers=2, buckets=32,
                 max_distance=128, eps=1e-6):
        super().__init__()
        self.cfg = dict(vocab=vocab, dim=dim, dim_attn=dim_attn, dim_ffn=dim_ffn, num_heads=heads,
                        num_layers=layers, num_buckets=buckets, max_distance=max_distance, eps=eps)
        self.token_embedding = nn.Embedding(vocab, dim)
        nn.init.normal_(self.token_embedding.weight, std=1.0)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            b = nn.Module()
            b.norm1 = nn.Module()
            b.norm1.weight = nn.Parameter(torch.ones(dim))
            b.norm2 = nn.Module()
            b.norm2.weight = nn.Parameter(torch.ones(dim))
            b.attn = nn.Module()
            for n_ in "qkv":
                setattr(b.attn, n_, nn.Linear(dim, dim_attn, bias=False))
            b.attn.o = nn.Linear(dim_attn, dim, bias=False)
            nn.init.normal_(b.attn.q.weight, std=(dim * dim_attn) ** -0.25 * 0.5)
            b.ffn = nn.Module()
            b.ffn.gate = nn.Sequential(nn.Linear(dim, dim_ffn, bias=False))
            b.ffn.fc1 = nn.Linear(dim, dim_ffn, bias=False)
            b.ffn.fc2 = nn.Linear(dim_ffn, dim, bias=False)
            b.pos_embedding = nn.Module()
            b.pos_embedding.embedding = nn.Embedding(buckets, heads)
            nn.init.normal_(b.pos_embedding.embedding.weight, std=0.5)
            self.blocks.append(b)
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(dim))

    @staticmethod
    def _rms(x, w, eps):
        return w * (x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    def forward(self, ids, lens):
        """ids [B, L] (padded with 0), lens [B] -> [B, L, dim], rows >= len zero."""
        c = self.cfg
        B, L = ids.shape
        nh, hd, eps = c["num_heads"], c["dim_attn"] // c["num_heads"], c["eps"]
        keep = torch.arange(L, device=ids.device)[None, :] < lens[:, None]          # [B, L]
        pos = torch.arange(L, device=ids.device)
        bk = rel_bucket(pos[None, :] - pos[:, None], c["num_buckets"], c["max_distance"])
        x = self.token_embedding(ids)
        for b in self.blocks:
            h = self._rms(x, b.norm1.weight, eps)
            q = b.attn.q(h).view(B, L, nh, hd).transpose(1, 2)
            k = b.attn.k(h).view(B, L, nh, hd).transpose(1, 2)
            v = b.attn.v(h).view(B, L, nh, hd).transpose(1, 2)
            bias = b.pos_embedding.embedding(bk).permute(2, 0, 1)[None].to(q.dtype)            # [1,nh,L,L]
            bias = bias.masked_fill(~keep[:, None, None, :], torch.finfo(q.dtype).min)
            s = torch.einsum("bnid,bnjd->bnij", q, k) + bias                       # no 1/sqrt(d)
            a = torch.softmax(s.float(), -1).to(v.dtype)
            o = torch.einsum("bnij,bnjd->bnid", a, v).transpose(1, 2).reshape(B, L, nh * hd)
            x = x + b.attn.o(o)
            h = self._rms(x, b.norm2.weight, eps)
            x = x + b.ffn.fc2(F.gelu(b.ffn.gate[0](h), approximate="tanh") * b.ffn.fc1(h))
        x = self._rms(x, self.norm.weight, eps)
        return x * keep[..., None].to(x.dtype)


# ----------------------------------------------------------------------------- DiT
def _lin(i, o):
    m = nn.Linear(i, o)
    nn.init.xavier_uniform_(m.weight)
    nn.init.zeros_(m.bias)
    return m


class Attn(nn.Module):
    def __init__(self, D):
        super().__init__()
        self.q, self.k, self.v, self.o = _lin(D, D), _lin(D, D), _lin(D, D), _lin(D, D)
        self.norm_q = nn.Module()
        self.norm_q.weight = nn.Parameter(torch.ones(D))
        self.norm_k = nn.Module()
        self.norm_k.weight = nn.Parameter(torch.ones(D))


class Block(nn.Module):
    def __init__(self, D, FF):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, 6, D) / D ** 0.5)
        self.self_attn = Attn(D)
        self.cross_attn = Attn(D)
        self.norm3 = nn.LayerNorm(D, eps=1e-6)
        self.ffn = nn.Sequential(_lin(D, FF), nn.GELU(approximate="tanh"), _lin(FF, D))


def sdpa(q, k, v, attn_mask=None):
    """F.scaled_dot_product_attention where torch has it (>= 2.0; the device), else the math."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, float("-inf"))
    return torch.softmax(s.float(), -1).to(v.dtype) @ v


def rms(x, w, eps):
    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rope_tables(head_dim, frame_pos, hp, wp, device):
    """cos, sin [L, head_dim/2] for frames at positions frame_pos (1-D), frame-major tokens."""
    c = head_dim // 2
    split = [c - 2 * (c // 3), c // 3, c // 3]

    def om(p):
        return torch.pow(10000.0, -2.0 * torch.arange(p, dtype=torch.float64) / (2 * p))
    f = frame_pos.double().cpu()
    Fn_ = f.shape[0]
    at = (f[:, None] * om(split[0])[None])[:, None, None, :].expand(Fn_, hp, wp, split[0])
    ah = (torch.arange(hp).double()[:, None] * om(split[1])[None])[None, :, None, :].expand(Fn_, hp, wp, split[1])
    aw = (torch.arange(wp).double()[:, None] * om(split[2])[None])[None, None, :, :].expand(Fn_, hp, wp, split[2])
    ang = torch.cat([at, ah, aw], -1).reshape(Fn_ * hp * wp, c)
    return torch.cos(ang).float().to(device), torch.sin(ang).float().to(device)


def rope(x, cos, sin):
    """x [B, L, n, d], interleaved pairs."""
    B, L, n, d = x.shape
    xf = x.float().reshape(B, L, n, d // 2, 2)
    a, b = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack([a * c - b * s, a * s + b * c], -1).reshape(B, L, n, d).to(x.dtype)


class WanDiT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        D, FF, C, T, FQ = cfg["dim"], cfg["ffn_dim"], cfg["in_dim"], cfg["text_dim"], cfg["freq_dim"]
        self.patch_embedding = nn.Conv3d(C, D, (1, 2, 2), stride=(1, 2, 2))
        self.text_embedding = nn.Sequential(_lin(T, D), nn.GELU(approximate="tanh"), _lin(D, D))
        self.time_embedding = nn.Sequential(_lin(FQ, D), nn.SiLU(), _lin(D, D))
        self.time_projection = nn.Sequential(nn.SiLU(), _lin(D, 6 * D))
        self.blocks = nn.ModuleList([Block(D, FF) for _ in range(cfg["num_layers"])])
        self.head = nn.Module()
        self.head.modulation = nn.Parameter(torch.randn(1, 2, D) / D ** 0.5)
        self.head.head = nn.Linear(D, 4 * cfg["out_dim"])
        nn.init.zeros_(self.head.head.weight)
        nn.init.zeros_(self.head.head.bias)

    def forward(self, x, t, ctx, frame_ctx, frame_pos, frame_mask):
        """x [B, F, C, H, W]; t [B, F] timesteps (0..1000); ctx [B, P, Lt, text_dim] prompts;
        frame_ctx [B, F] long: which prompt each frame reads; frame_pos [F] RoPE frame
        positions; frame_mask [F, F] bool (query frame may see key frame). -> v [B, F, C, H, W]."""
        cfg = self.cfg
        D, n, eps = cfg["dim"], cfg["num_heads"], cfg["eps"]
        hd = D // n
        B, Fr, C, H, W = x.shape
        hp, wp = H // 2, W // 2
        S = hp * wp
        L = Fr * S
        tok = self.patch_embedding(x.permute(0, 2, 1, 3, 4))                 # [B, D, F, hp, wp]
        h = tok.flatten(2).transpose(1, 2)                                   # [B, L, D]
        half = cfg["freq_dim"] // 2
        omega = torch.pow(10000.0, -torch.arange(half, device=x.device, dtype=torch.float64) / half)
        ang = t.double()[..., None] * omega
        sin = torch.cat([torch.cos(ang), torch.sin(ang)], -1).to(h.dtype)   # [B, F, FQ]
        e = self.time_embedding(sin)                                         # [B, F, D]
        e0 = self.time_projection(e).reshape(B, Fr, 6, D)
        c = self.text_embedding(ctx)                                         # [B, P, Lt, D]
        cos_t, sin_t = rope_tables(hd, frame_pos, hp, wp, x.device)
        tm = frame_mask.repeat_interleave(S, 0).repeat_interleave(S, 1)      # [L, L]
        Pn, Lt = ctx.shape[1], ctx.shape[2]
        for blk in self.blocks:
            m = (blk.modulation[0][None, None] + e0)                         # [B, F, 6, D]
            m = [m[:, :, j][:, :, None, :] for j in range(6)]                 # [B, F, 1, D]
            y = (F.layer_norm(h, (D,), eps=eps).view(B, Fr, S, D) * (1 + m[1]) + m[0]).view(B, L, D)
            sa = blk.self_attn
            q = rope(rms(sa.q(y), sa.norm_q.weight, eps).view(B, L, n, hd), cos_t, sin_t)
            k = rope(rms(sa.k(y), sa.norm_k.weight, eps).view(B, L, n, hd), cos_t, sin_t)
            v = sa.v(y).view(B, L, n, hd)
            a = sdpa(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                               attn_mask=tm)
            a = sa.o(a.transpose(1, 2).reshape(B, L, D))
            h = h + (a.view(B, Fr, S, D) * m[2]).view(B, L, D)
            ca = blk.cross_attn
            xn = blk.norm3(h)
            cq = rms(ca.q(xn), ca.norm_q.weight, eps).view(B * Fr, S, n, hd).transpose(1, 2)
            ck = rms(ca.k(c), ca.norm_k.weight, eps).view(B, Pn, Lt, n, hd)
            cv = ca.v(c).view(B, Pn, Lt, n, hd)
            idx = frame_ctx[:, :, None, None, None].expand(B, Fr, Lt, n, hd)
            ck = torch.gather(ck, 1, idx).view(B * Fr, Lt, n, hd).transpose(1, 2)
            cv = torch.gather(cv, 1, idx).view(B * Fr, Lt, n, hd).transpose(1, 2)
            o = sdpa(cq, ck, cv).transpose(1, 2).reshape(B, L, D)
            h = h + ca.o(o)
            y = (F.layer_norm(h, (D,), eps=eps).view(B, Fr, S, D) * (1 + m[4]) + m[3]).view(B, L, D)
            h = h + (blk.ffn(y).view(B, Fr, S, D) * m[5]).view(B, L, D)
        hm = self.head.modulation[0][None, None] + e[:, :, None, :]          # [B, F, 2, D]
        y = F.layer_norm(h, (D,), eps=eps).view(B, Fr, S, D) * (1 + hm[:, :, 1:2]) + hm[:, :, 0:1]
        out = self.head.head(y)                                              # [B, F, S, 4*Co]
        Co = cfg["out_dim"]
        o = out.view(B, Fr, hp, wp, 2, 2, Co).permute(0, 1, 6, 2, 4, 3, 5).reshape(B, Fr, Co, H, W)
        return o

    def state_dict_upstream(self):
        return {k: v.detach().float().cpu().clone() for k, v in self.state_dict().items()}


# ----------------------------------------------------------------------------- self-check
def check_against_reference():
    """Each batched model == its independent reference (float32, CPU, random weights)."""
    import make_dit_fixtures as RD
    import types
    for mod in ("ftfy", "regex"):   # only the prompt cleaning needs them, not encoder_forward
        try:
            __import__(mod)
        except ImportError:
            sys.modules[mod] = types.ModuleType(mod)
    import make_umt5_fixtures as RU
    torch.manual_seed(0)
    # DiT: non-cached masked forward of 2 chunks, block-causal, different t per frame
    cfg = dict(RD.CONFIG, in_dim=16, out_dim=16)
    m = WanDiT(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    P = m.state_dict_upstream()
    x = torch.randn(6, 16, 8, 12)
    t = torch.tensor([0.0, 0, 0, 900, 900, 900])
    ctx = torch.randn(16, 64)
    ctx[-5:] = 0
    fm = torch.tensor([[b // 3 <= a // 3 for b in range(6)] for a in range(6)])
    ref = RD.forward(P, cfg, x, t, ctx, None, 4, mask=fm.repeat_interleave(24, 0).repeat_interleave(24, 1))
    out = m(x[None], t[None], ctx[None, None], torch.zeros(1, 6, dtype=torch.long),
            torch.arange(4, 10), fm)[0]
    e1 = float((out - ref).abs().max() / ref.abs().max())
    # umT5
    u = UMT5(40, dim=64, dim_attn=64, dim_ffn=128, heads=4, layers=2)
    W = {k: v.detach() for k, v in u.state_dict().items()}
    ids = torch.randint(4, 40, (10,))
    ids[7:] = 0
    ucfg = dict(u.cfg)
    refu = RU.encoder_forward(W, ids, (torch.arange(10) < 7).long(), ucfg)
    outu = u(ids[None], torch.tensor([7]))[0].detach()
    e2 = float((outu - refu).abs().max() / refu.abs().max())
    # TAEHV: batched decode/encode of 2 clips == per-clip reference
    ae = TAEHV((16, 8, 8, 8), 8)
    P = {k: v.detach() for k, v in ae.P().items()}
    lat = torch.randn(2, 3, 16, 4, 6)
    with torch.no_grad():
        d = ae.decode(lat)
        e3 = max(float((d[i] - RT.run_parallel(RT.decoder_layers(1), lat[i], P)).abs().max()) for i in range(2))
        fr = torch.rand(2, 8, 3, 32, 48)
        z = ae.encode(fr)
        e4 = max(float((z[i] - RT.encode_video(fr[i], P, 1)).abs().max()) for i in range(2))
    print(f"reference check: DiT rel {e1:.2e}, umT5 rel {e2:.2e}, TAEHV dec {e3:.2e} enc {e4:.2e}")
    assert e1 < 1e-4 and e2 < 1e-4 and e3 < 1e-4 and e4 < 1e-4, "a training model differs from its reference"


if __name__ == "__main__":
    check_against_reference()
