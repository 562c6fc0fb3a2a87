#!/usr/bin/python3
"""make_umt5_fixtures.py - independent tiny umT5 encoder + Wan text path, and its fixtures.

Written from the public description (docs spec-taehv-umt5.md Part B): the Wan
T5Encoder (module names token_embedding / blocks.i.{norm1,attn,norm2,ffn,
pos_embedding} / norm), run exactly as Wan runs it: the prompt is cleaned
(ftfy.fix_text, html.unescape twice, strip, regex \\s+ -> ' ', strip), tokenized
with SentencePiece, EOS appended, truncated to text_len (text_len-1 tokens + EOS),
right-padded with pad; the encoder runs on the FULL padded sequence with the key
mask (padded keys get finfo.min), and rows >= seq_len of the output are zeroed
(Self-Forcing's wan_wrapper). The C side runs only the real tokens; the equality
of the two is what the test checks.

Tokenizer: a tiny SentencePiece unigram model trained here on a small text
written below, with umT5's special ids: pad 0, eos 1, bos 2 (never added), unk 3,
NFKC normalization (nmt_nfkc, T5's rule), no byte fallback.
Note: Wan runs the HF *fast* tokenizer (tokenizer.json); this fixture uses the
sentencepiece library, which is what the C runtime links. They agree on
ordinary text (spec B6).

Weights are random (seeded), f32, at tiny sizes: dim 64, dim_attn 64, ffn 128,
4 heads, 2 layers, 32 buckets, max distance 128, text_len 16.

Outputs (tests/fixtures/text/):
  spiece_tiny.model              SentencePiece model
  umt5_tiny.safetensors          weights under Wan's names
  umt5_tiny_expected.safetensors ids.K [16] i32, context.K [16,64] f32 for the encode
                                 prompts, buckets [16,16] i32 (layer-independent)
  manifest.json                  config, prompts (raw, cleaned, ids, length), seed,
                                 versions, script sha256

Run: /usr/bin/python3 tests/reference/make_umt5_fixtures.py [outdir]
Needs: torch, sentencepiece (python3-sentencepiece), ftfy 6.x, regex (python3-regex).
"""
import hashlib
import html
import json
import math
import os
import struct
import sys
import tempfile

import ftfy
import numpy as np
import regex
import sentencepiece as spm
import torch

SEED = 20261124
CFG = dict(vocab=None, dim=64, dim_attn=64, dim_ffn=128, num_heads=4, num_layers=2,
           num_buckets=32, max_distance=128, text_len=16, eps=1e-6)

CORPUS = """\
A red fox runs through the snowy forest at dawn.
A small cat and a big dog play fetch outside in the green garden.
The camera slowly pans across a quiet mountain lake at sunset.
Waves crash against the rocky shore while seagulls fly overhead.
A woman in a yellow coat walks down a rainy city street at night.
Neon lights reflect on the wet pavement as cars drive past.
An astronaut floats inside a space station, looking at the blue earth.
A golden retriever jumps into a swimming pool and splashes water everywhere.
Close-up of a hummingbird drinking nectar from a bright purple flower.
Time-lapse of clouds moving over a wide desert with tall red rocks.
A chef chops fresh vegetables on a wooden board in a busy kitchen.
Children laugh and run through a field of tall sunflowers in summer.
An old steam train crosses a stone bridge above a deep valley.
Snow falls gently on a small village with warm lights in every window.
A robot walks through an abandoned factory full of dust and broken glass.
The drone shot flies over a tropical island with white sand and palm trees.
A jellyfish glows in the dark ocean, drifting slowly with the current.
Two horses gallop across an open plain under a stormy sky.
A painter adds the final brush strokes to a colorful canvas.
Fireworks explode above the river, lighting the faces of the crowd.
Cinematic, 4k, highly detailed, soft light, shallow depth of field.
The quick brown fox jumps over the lazy dog; "quoted" words, it's fine!
Numbers 0 1 2 3 4 5 6 7 8 9, symbols & < > ( ) [ ] : ; , . ? ! ' " - _ / @ # % + =
"""

# Prompts run through tokenizer AND encoder (key -> raw text).
ENCODE_PROMPTS = [
    ("fox", "A red fox at dawn."),
    ("messy", "  A cat &amp; a dog\t\n  play &lt;fetch&gt; "),
    ("long", "Time-lapse of clouds moving over a wide desert with tall red rocks, "
             "while a robot walks through an abandoned factory full of dust."),
    ("empty", "   \n "),
]
# Tokenizer-only cases: cleaning rules (whitespace, HTML, ftfy subset), unknown chars.
TOKEN_PROMPTS = [
    ("double_escape", "a &amp;amp;lt; b &amp;quot;x&amp;quot;"),
    ("has_lt", "x < y &amp;amp; z"),
    ("unicode_ws", "sun\u00a0set\u3000over\u2003the\u2028lake\r\nnow"),
    ("width_lig", "\uff21\uff22\uff23 \ufb01ne \u2018quote\u2019 \u201cdouble\u201d"),
    ("controls", "tab\x07bell\x7fdel\u200bzw \x1b[31mred\x1b[0m"),
    ("numeric_ref", "&#65;&#x42;C &#39;it&#39;s&#39; &nbsp;x&nbsp;y &copy; &eacute;t\u00e9"),
    ("unknown", "zebra \u65e5\u672c crossing \U0001f993 done"),
    ("legacy_noscolon", "fish &amp chips &lt3 &notit; &eacute"),
    ("ftfy_upper", "P&EACUTE;REZ &NTILDE; BUNDESSTRA&SZLIG;E &nTILDE; &AMP;"),
    ("multiline_lt", "one &amp;amp;lt;\nline < two &amp;amp;amp;lt;\nthree &amp;amp;lt;"),
    ("c1_controls", "\u0093quoted\u0094 \u0080 5 \u0081x"),
    ("curly_html", "&ldquo;hi&rdquo; it&rsquo;s &hellip; &mdash; ok"),
    # Wan's default negative prompt (wan/configs/shared_config.py): fullwidth commas
    ("wan_negative", "\u8272\u8c03\u8273\u4e3d\uff0c\u8fc7\u66dd\uff0c\u9759\u6001\uff0c"
     "\u7ec6\u8282\u6a21\u7cca\u4e0d\u6e05\uff0c\u5b57\u5e55\uff0cJPEG\u538b\u7f29"
     "\u6b8b\u7559\uff0c\u4e11\u964b\u7684"),
]

# Cleaning-only cases: seeded random strings over the characters the rules act on.
# Kept only where ftfy's mojibake repair (fix_encoding, not reproduced in C) has no
# effect, so the expected text is still exactly Wan's.
CLEAN_ALPHABET = (list("ab &;#xX0123456789<>\t\n\r ") +
                  ["&amp;", "&lt;", "&gt", "&notit", "&eacute", "&EACUTE;", "&#", "&#x", "&nbsp;",
                   "\u201c", "\u2019", "\u3000", "\u00a0", "\x1b[3m", "\x07", "\u0093", "\ufb01",
                   "\uff21", "\u02bc", "&amp;amp;", "&#59;", "&#1;", "&#128;", "&#x110000;",
                   "&#xD800;", "&#0;", "&szlig;", "&SZLIG;", "&AMP", "&Amp;", "\u2028", "\x1c",
                   "\x85", "\u00e9", "&#65a;", "&hellip;", "\uffe3", "\u2003"])


def clean_cases(n=400):
    import random
    rng = random.Random(SEED)
    out = []
    while len(out) < n:
        t = "".join(rng.choice(CLEAN_ALPHABET) for _ in range(rng.randint(0, 14)))
        if ftfy.fix_text(t) != ftfy.fix_text(t, fix_encoding=False):
            continue
        out.append({"text": t, "cleaned": wan_clean(t)})
    return out


# ---------------------------------------------------------------- Wan text cleaning
def wan_clean(text):
    """SF wan/modules/tokenizers.py: whitespace_clean(basic_clean(text))."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    text = text.strip()
    text = regex.sub(r"\s+", " ", text)
    return text.strip()


def wan_tokenize(sp, text, text_len):
    """HF tokenizer(padding='max_length', truncation=True, max_length=text_len) on
    a T5 tokenizer: pieces[:text_len-1] + [eos], right-padded with pad."""
    ids = sp.encode(wan_clean(text), out_type=int)
    ids = ids[: text_len - 1] + [sp.eos_id()]
    n = len(ids)
    ids = ids + [sp.pad_id()] * (text_len - n)
    return ids, n


# ---------------------------------------------------------------- tiny umT5 (Wan structure)
def rms_norm(x, w, eps):
    return w * (x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rel_bucket(rel, num_buckets, max_distance):
    """Bidirectional T5 bucket of rel = key_pos - query_pos (float32 log, as Wan)."""
    half = num_buckets // 2
    out = (rel > 0).long() * half
    n = rel.abs()
    max_exact = half // 2
    large = max_exact + (torch.log(n.float() / max_exact) / math.log(max_distance / max_exact)
                         * (half - max_exact)).long()
    large = torch.clamp(large, max=half - 1)
    return out + torch.where(n < max_exact, n, large)


def buckets_for(L, cfg):
    pos = torch.arange(L)
    return rel_bucket(pos[None, :] - pos[:, None], cfg["num_buckets"], cfg["max_distance"])


def encoder_forward(W, ids, mask, cfg):
    """ids [L] long, mask [L] (1 real, 0 pad) -> [L, dim] with rows >= seq_len zeroed."""
    L = ids.shape[0]
    nh, hd = cfg["num_heads"], cfg["dim_attn"] // cfg["num_heads"]
    eps = cfg["eps"]
    x = W["token_embedding.weight"][ids]
    b = buckets_for(L, cfg)
    neg = torch.finfo(torch.float32).min
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        h = rms_norm(x, W[p + "norm1.weight"], eps)
        q = (h @ W[p + "attn.q.weight"].T).view(L, nh, hd)
        k = (h @ W[p + "attn.k.weight"].T).view(L, nh, hd)
        v = (h @ W[p + "attn.v.weight"].T).view(L, nh, hd)
        bias = W[p + "pos_embedding.embedding.weight"][b].permute(2, 0, 1).clone()  # [NH,L,L]
        bias.masked_fill_((mask == 0).view(1, 1, L), neg)
        s = torch.einsum("inc,jnc->nij", q, k) + bias          # no 1/sqrt(d): T5
        a = torch.softmax(s.double(), dim=-1).float()
        o = torch.einsum("nij,jnc->inc", a, v).reshape(L, nh * hd)
        x = x + o @ W[p + "attn.o.weight"].T
        h = rms_norm(x, W[p + "norm2.weight"], eps)
        g = gelu_tanh(h @ W[p + "ffn.gate.0.weight"].T) * (h @ W[p + "ffn.fc1.weight"].T)
        x = x + g @ W[p + "ffn.fc2.weight"].T
    x = rms_norm(x, W["norm.weight"], eps)
    seq_len = int(mask.sum())
    x[seq_len:] = 0
    return x


def make_weights(cfg, gen):
    d, da, f, nh, nb = cfg["dim"], cfg["dim_attn"], cfg["dim_ffn"], cfg["num_heads"], cfg["num_buckets"]

    def rn(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    W = {"token_embedding.weight": rn(cfg["vocab"], d, std=1.0)}
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        W[p + "norm1.weight"] = 1.0 + rn(d, std=0.2)
        W[p + "attn.q.weight"] = rn(da, d, std=(d * da) ** -0.25 * 0.5)
        W[p + "attn.k.weight"] = rn(da, d, std=d ** -0.5)
        W[p + "attn.v.weight"] = rn(da, d, std=d ** -0.5)
        W[p + "attn.o.weight"] = rn(d, da, std=da ** -0.5)
        W[p + "norm2.weight"] = 1.0 + rn(d, std=0.2)
        W[p + "ffn.gate.0.weight"] = rn(f, d, std=d ** -0.5)
        W[p + "ffn.fc1.weight"] = rn(f, d, std=d ** -0.5)
        W[p + "ffn.fc2.weight"] = rn(d, f, std=f ** -0.5)
        # larger than Wan's init so the bias visibly shapes the attention
        W[p + "pos_embedding.embedding.weight"] = rn(nb, nh, std=1.0)
    W["norm.weight"] = 1.0 + rn(d, std=0.2)
    return W


# ---------------------------------------------------------------- safetensors by hand
ST_DT = {np.float32: "F32", np.int32: "I32"}


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = ST_DT[arr.dtype.type]
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as fp:
        fp.write(struct.pack("<Q", len(h)))
        fp.write(h)
        for b in blobs:
            fp.write(b)


# ---------------------------------------------------------------- main
def train_spm(outdir):
    tmp = tempfile.mkdtemp()
    corpus = os.path.join(tmp, "corpus.txt")
    with open(corpus, "w", encoding="utf-8") as fp:
        fp.write(CORPUS)
    prefix = os.path.join(tmp, "spiece_tiny")
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, model_type="unigram", vocab_size=256,
        hard_vocab_limit=False, character_coverage=1.0, normalization_rule_name="nmt_nfkc",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, byte_fallback=False, num_threads=1,
        minloglevel=2)
    with open(prefix + ".model", "rb") as fp:
        blob = fp.read()
    with open(os.path.join(outdir, "spiece_tiny.model"), "wb") as fp:
        fp.write(blob)
    return blob


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "fixtures", "text")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)

    model_path = os.path.join(outdir, "spiece_tiny.model")
    if not os.path.exists(model_path) or "--retrain" in sys.argv:
        train_spm(outdir)
    sp = spm.SentencePieceProcessor(model_file=model_path)
    assert (sp.pad_id(), sp.eos_id(), sp.bos_id(), sp.unk_id()) == (0, 1, 2, 3)

    cfg = dict(CFG)
    cfg["vocab"] = sp.get_piece_size()
    T = cfg["text_len"]
    gen = torch.Generator().manual_seed(SEED)
    W = make_weights(cfg, gen)
    write_safetensors(os.path.join(outdir, "umt5_tiny.safetensors"),
                      {k: v.numpy().astype(np.float32) for k, v in W.items()},
                      meta={"format": "pt"})

    expected, prompts = {}, []
    for key, text in ENCODE_PROMPTS + TOKEN_PROMPTS:
        ids, n = wan_tokenize(sp, text, T)
        entry = {"key": key, "text": text, "cleaned": wan_clean(text), "ids": ids, "len": n,
                 "encode": key in dict(ENCODE_PROMPTS)}
        if entry["encode"]:
            idt = torch.tensor(ids, dtype=torch.long)
            mask = (torch.arange(T) < n).long()
            ctx = encoder_forward(W, idt, mask, cfg)
            # [derived] equivalence the C runtime relies on: real tokens only, no mask
            ctx_short = encoder_forward(W, idt[:n], torch.ones(n, dtype=torch.long), cfg)
            err = (ctx[:n] - ctx_short).abs().max().item()
            assert err < 1e-5, f"padded vs unpadded run differ for {key}: {err}"
            assert torch.isfinite(ctx).all()
            expected[f"ids.{key}"] = np.array(ids, dtype=np.int32)
            expected[f"context.{key}"] = ctx.numpy().astype(np.float32)
        prompts.append(entry)
    expected["buckets"] = buckets_for(T, cfg).numpy().astype(np.int32)
    write_safetensors(os.path.join(outdir, "umt5_tiny_expected.safetensors"), expected)

    with open(os.path.abspath(__file__), "rb") as fp:
        script_hash = hashlib.sha256(fp.read()).hexdigest()
    with open(model_path, "rb") as fp:
        spm_hash = hashlib.sha256(fp.read()).hexdigest()
    manifest = {
        "script": "tests/reference/make_umt5_fixtures.py", "script_sha256": script_hash,
        "seed": SEED, "torch": torch.__version__, "ftfy": ftfy.__version__,
        "sentencepiece": spm.__version__, "spiece_sha256": spm_hash,
        "config": cfg, "special_ids": {"pad": 0, "eos": 1, "bos": 2, "unk": 3},
        "weights": "umt5_tiny.safetensors", "expected": "umt5_tiny_expected.safetensors",
        "tokenizer": "spiece_tiny.model", "prompts": prompts,
        "clean_cases": clean_cases(),
        "command": "/usr/bin/python3 tests/reference/make_umt5_fixtures.py",
        "files_sha256": {},
    }
    for fn in ("spiece_tiny.model", "umt5_tiny.safetensors", "umt5_tiny_expected.safetensors"):
        with open(os.path.join(outdir, fn), "rb") as fp:
            manifest["files_sha256"][fn] = hashlib.sha256(fp.read()).hexdigest()
    with open(os.path.join(outdir, "manifest.json"), "w", encoding="utf-8") as fp:
        json.dump(manifest, fp, indent=1, ensure_ascii=True)
        fp.write("\n")
    for p in prompts:
        print(f"{p['key']:16s} len {p['len']:2d} {p['cleaned']!r} -> {p['ids']}")


if __name__ == "__main__":
    main()
