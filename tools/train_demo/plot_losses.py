#!/usr/bin/env python3
"""Loss curves of a demo training run as a PNG (numpy raster + ffmpeg drawtext labels: no
matplotlib on the build machines).

    python3 tools/train_demo/plot_losses.py WORK/losses.json docs/demo_losses.png
Panels: TAEHV reconstruction PSNR (dB) by step; DiT flow-matching loss by step (teacher
forcing, then the self-generated-context fine-tune), log scale, smoothed over 5 points.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

PW, PH, M = 460, 300, 50          # panel size, margin
COL = {"ae": (40, 110, 220), "dit": (220, 80, 40), "finetune": (40, 160, 70)}


def line(img, x0, y0, x1, y1, c):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    ok = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    for dx in (0, 1):
        img[ys[ok], np.clip(xs[ok] + dx, 0, img.shape[1] - 1)] = c


def panel(series, logy, title, ylabel):
    """series: list of (name, steps, values) -> (image, label list [(x, y, text)])."""
    img = np.full((PH + 2 * M, PW + 2 * M, 3), 255, np.uint8)
    allx = np.concatenate([s for _, s, _ in series])
    ally = np.concatenate([v for _, _, v in series])
    f = (lambda v: np.log10(v)) if logy else (lambda v: v)
    y0, y1 = f(ally).min(), f(ally).max()
    pad = 0.05 * (y1 - y0 + 1e-9)
    y0, y1 = y0 - pad, y1 + pad
    x0, x1 = 0, allx.max()
    X = lambda x: M + (x - x0) / (x1 - x0 + 1e-9) * PW  # noqa: E731
    Y = lambda y: M + PH - (f(y) - y0) / (y1 - y0) * PH  # noqa: E731
    img[M:M + PH, M] = 0
    img[M + PH, M:M + PW] = 0
    labels = [(M, 12, title), (M + PW - 40, M + PH + 8, "step")]
    ticks = []
    if logy:
        for e in range(math.floor(y0), math.ceil(y1) + 1):
            for m in (1, 2, 5):
                v = m * 10.0 ** e
                if y0 <= math.log10(v) <= y1:
                    ticks.append(v)
    else:
        step = 10 ** math.floor(math.log10((y1 - y0) / 2 + 1e-9))
        ticks = list(np.arange(math.ceil(y0 / step) * step, y1, step))
    for v in ticks:
        yy = int(Y(v))
        img[yy, M:M + PW] = np.maximum(img[yy, M:M + PW] - 30, 0) if False else 225
        labels.append((4, yy - 7, f"{v:g}"))
    for frac in (0, 0.5, 1.0):
        labels.append((int(X(x1 * frac)) - 10, M + PH + 8, f"{int(x1 * frac)}"))
    ly = M + 8
    for name, s, v in series:
        k = 5
        vs = np.convolve(v, np.ones(k) / k, mode="valid") if len(v) > k else v
        ss = s[k - 1:] if len(v) > k else s
        for i in range(len(ss) - 1):
            line(img, X(ss[i]), Y(vs[i]), X(ss[i + 1]), Y(vs[i + 1]), COL[name])
        img[ly:ly + 10, M + PW - 150:M + PW - 140] = COL[name]
        labels.append((M + PW - 135, ly - 2, name))
        ly += 18
    labels.append((M + 6, M + 4, ylabel))
    return img, labels


def main():
    src, dst = sys.argv[1], sys.argv[2]
    L = json.load(open(src))
    panels = []
    if "ae" in L:
        h = L["ae"]["history"]
        panels.append(panel([("ae", np.array([e["step"] for e in h]), np.array([e["psnr"] for e in h]))],
                            False, f"TAEHV reconstruction ({L['ae']['steps']} steps, "
                                   f"{L['ae']['seconds']:.0f} s)", "PSNR dB"))
    ser, off = [], 0
    for st in ("dit", "finetune"):
        if st in L:
            h = L[st]["history"]
            ser.append((st, off + np.array([e["step"] for e in h]), np.array([e["loss"] for e in h])))
            off += L[st]["steps"]
    if ser:
        secs = sum(L[s]["seconds"] for s in ("dit", "finetune") if s in L)
        panels.append(panel(ser, True, f"DiT + umT5 flow-matching loss ({off} steps, {secs:.0f} s)",
                            "MSE (v)"))
    img = np.concatenate([p[0] for p in panels], 1)
    labels = []
    for i, (_, lab) in enumerate(panels):
        labels += [(x + i * (PW + 2 * M), y, t) for x, y, t in lab]
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    with tempfile.TemporaryDirectory() as tmp:
        ppm = os.path.join(tmp, "p.ppm")
        with open(ppm, "wb") as f:
            f.write(b"P6 %d %d 255\n" % (img.shape[1], img.shape[0]) + img.tobytes())
        esc = lambda t: t.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\u2019").replace(",", "\\,")  # noqa: E731
        vf = ",".join(f"drawtext=fontfile={font}:fontsize=12:fontcolor=black:x={x}:y={y}:text='{esc(t)}'"
                      for x, y, t in labels)
        script = os.path.join(tmp, "vf.txt")
        with open(script, "w") as f:
            f.write(vf)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", ppm, "-filter_script:v", script,
                        "-frames:v", "1", dst], check=True)
    print("wrote", dst)


if __name__ == "__main__":
    main()
