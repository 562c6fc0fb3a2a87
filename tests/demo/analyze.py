#!/usr/bin/env python3
"""analyze.py - what a demo video shows, from pixel statistics only (no learned model).

For each decoded frame: the background colour (per-channel median: the object covers a few
percent of the frame), the foreground mask (pixels at least half-way from the background to
the object's colour; one compact blob of the grammar's size in a colour near the palette, else
"no object"), the object's dominant colour named by the grammar's palette, its rough
shape class from how much of its bounding box it fills (square ~1, circle ~0.79, triangle
~0.5) and its centroid. Objects wrap around the frame edges, so the mask is rolled to put an
empty row/column at the border before measuring. Over frames: the centroid track and the
motion it implies (median per-frame step, with wrap-around; the vertical range for bouncing).

    python3 tests/demo/analyze.py VIDEO.mp4 [--prompt TEXT] [--from F --to F] [--json]

Library use: frames = read_video(path); per = [analyze_frame(f) for f in frames];
motion = classify_motion(track(per)).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools",
                                "train_demo"))
import grammar as G  # noqa: E402

PALETTE = {k: np.array(v, dtype=np.float32) for k, v in G.COLORS.items()}
BGS = {k: np.array(v, dtype=np.float32) for k, v in G.BACKGROUNDS.items()}


def read_video(path):
    """Decoded RGB frames [T, H, W, 3] uint8 of an mp4/mkv (ffmpeg) or a --rgb-out file."""
    if path.endswith(".safetensors"):
        import struct
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            hdr = json.loads(f.read(n))
            d = hdr["frames"]
            f.seek(8 + n + d["data_offsets"][0])
            a = np.frombuffer(f.read(d["data_offsets"][1] - d["data_offsets"][0]), dtype=np.float32)
        a = a.reshape(d["shape"]).transpose(0, 2, 3, 1)
        return (a * 255 + 0.5).clip(0, 255).astype(np.uint8)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height", "-of", "csv=p=0", path],
                           capture_output=True, text=True, check=True).stdout.strip().split(",")
    w, h = int(probe[0]), int(probe[1])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, h, w, 3)


def _roll_to_gap(profile):
    """Shift that puts the middle of the longest empty run of a circular profile at index 0."""
    empty = profile == 0
    n = len(profile)
    if empty.all() or not empty.any():
        return 0
    best, best_len, i = 0, 0, 0
    # walk twice around to catch runs that wrap
    run_start, run_len = None, 0
    for k in range(2 * n):
        if empty[k % n]:
            if run_start is None:
                run_start, run_len = k, 0
            run_len += 1
            if run_len > best_len and run_len <= n:
                best, best_len = run_start, run_len
        else:
            run_start = None
    return (best + best_len // 2) % n


def analyze_frame(frame):
    """frame [H, W, 3] uint8 -> dict(present, color, color_dist, shape, fill, cx, cy, area,
    background)."""
    f = frame.astype(np.float32)
    H, W = f.shape[:2]
    bg = np.median(f.reshape(-1, 3), axis=0)
    d = np.abs(f - bg).sum(-1)
    coarse = d > 60
    out = {"background": min(BGS, key=lambda k: np.abs(BGS[k] - bg).sum()), "present": False,
           "color": None, "shape": None, "cx": None, "cy": None, "area": int(coarse.sum())}
    if coarse.sum() < 30:                        # < ~1/4 of the smallest object
        return out
    col = np.median(f[coarse], axis=0)
    mask = d > 0.5 * np.abs(col - bg).sum()
    if mask.sum() < 30:
        return out
    col = np.median(f[mask], axis=0)
    name = min(PALETTE, key=lambda k: float(((PALETTE[k] - col) ** 2).sum()))
    sx = _roll_to_gap(mask.sum(0))
    sy = _roll_to_gap(mask.sum(1))
    m = np.roll(np.roll(mask, -sx, 1), -sy, 0)
    ys, xs = np.nonzero(m)
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    fill = float(m.sum()) / float(bw * bh)
    shape = "square" if fill > 0.88 else ("circle" if fill > 0.63 else "triangle")
    # one compact object of the grammar's size (radius 13-18 px) in a palette colour; noise or
    # smears spread over the frame are "no object", not a colour
    if bw > 64 or bh > 64 or fill < 0.3 or float(np.sqrt(((PALETTE[name] - col) ** 2).sum())) > 110:
        out.update(area=int(mask.sum()), bbox=[int(bw), int(bh)], fill=round(fill, 3),
                   color_rgb=[round(float(c)) for c in col])
        return out
    out.update(present=True, color=name, color_rgb=[round(float(c)) for c in col],
               color_dist=float(np.sqrt(((PALETTE[name] - col) ** 2).sum())), shape=shape,
               fill=round(fill, 3), cx=float((xs.mean() + sx) % W), cy=float((ys.mean() + sy) % H),
               area=int(mask.sum()), bbox=[int(bw), int(bh)])
    return out


def track(per, W=None, H=None):
    """Unwrapped centroid track [(frame, x, y)] of the frames where an object is present."""
    pts = [(i, p["cx"], p["cy"]) for i, p in enumerate(per) if p["present"]]
    if not pts:
        return []
    W = W or 192
    H = H or 128
    out = [pts[0]]
    for i, x, y in pts[1:]:
        _, px, py = out[-1]
        dx = (x - px + W / 2) % W - W / 2
        dy = (y - py + H / 2) % H - H / 2
        out.append((i, px + dx, py + dy))
    return out


def classify_motion(tr):
    """Track -> (motion word of the grammar, stats)."""
    if len(tr) < 4:
        return None, {"frames": len(tr)}
    t = np.array(tr, dtype=np.float64)
    steps = np.diff(t[:, 1:], axis=0) / np.diff(t[:, 0])[:, None]
    mdx, mdy = float(np.median(steps[:, 0])), float(np.median(steps[:, 1]))
    yr = float(np.percentile(t[:, 2], 95) - np.percentile(t[:, 2], 5))
    xr = float(np.percentile(t[:, 1], 95) - np.percentile(t[:, 1], 5))
    st = {"median_dx": round(mdx, 3), "median_dy": round(mdy, 3), "x_range": round(xr, 1),
          "y_range": round(yr, 1), "frames": len(tr)}
    up, down = float((steps[:, 1] < -0.5).mean()), float((steps[:, 1] > 0.5).mean())
    st.update(up_steps=round(up, 2), down_steps=round(down, 2))
    # hops: large steps both ways (checked first: a hop's median step can lean either way)
    if up >= 0.2 and down >= 0.2 and yr > 12 and xr < 12:
        return "bouncing", st
    if abs(mdx) >= 0.8 and abs(mdx) >= 1.5 * abs(mdy):
        return ("moving right" if mdx > 0 else "moving left"), st
    if abs(mdy) >= 0.6 and abs(mdy) >= 1.5 * abs(mdx):
        return ("moving down" if mdy > 0 else "moving up"), st
    # motion in jumps (the generated videos move in bursts: the median step of a track that
    # climbs 47 px with no step down can be 0.4 px): the least-squares slope of the track,
    # with the same thresholds. A hop stays a hop: it was caught above (steps both ways).
    fr = t[:, 0] - t[:, 0].mean()
    sx = float((fr * (t[:, 1] - t[:, 1].mean())).sum() / (fr * fr).sum())
    sy = float((fr * (t[:, 2] - t[:, 2].mean())).sum() / (fr * fr).sum())
    st.update(slope_dx=round(sx, 3), slope_dy=round(sy, 3))
    if abs(sx) >= 0.8 and abs(sx) >= 1.5 * abs(sy):
        return ("moving right" if sx > 0 else "moving left"), st
    if abs(sy) >= 0.6 and abs(sy) >= 1.5 * abs(sx):
        return ("moving down" if sy > 0 else "moving up"), st
    if yr > 12 and xr < 12:
        return "bouncing", st
    if xr < 8 and yr < 8:
        return "standing still", st
    return "unclear", st


def summarize(frames, prompt=None):
    per = [analyze_frame(f) for f in frames]
    motion, st = classify_motion(track(per, frames.shape[2], frames.shape[1]))
    present = [p for p in per if p["present"]]
    res = {"frames": len(per), "present": len(present) / max(1, len(per)), "motion": motion,
           "motion_stats": st,
           "colors": {c: sum(1 for p in present if p["color"] == c) for c in PALETTE if any(p["color"] == c for p in present)},
           "shapes": {s: sum(1 for p in present if p["shape"] == s) for s in G.SHAPES if any(p["shape"] == s for p in present)}}
    if prompt:
        c, s, m, b = G.parse(prompt)
        res["prompt"] = prompt
        res["color_ok"] = sum(1 for p in per if p["color"] == c) / max(1, len(per))
        res["shape_ok"] = sum(1 for p in per if p["shape"] == s) / max(1, len(per))
        res["background_ok"] = sum(1 for p in per if p["background"] == b) / max(1, len(per))
        res["motion_ok"] = motion == m
    return res, per


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("video")
    ap.add_argument("--prompt")
    ap.add_argument("--from", dest="f0", type=int, default=0)
    ap.add_argument("--to", dest="f1", type=int, default=None)
    ap.add_argument("--frames", action="store_true", help="also print every frame's analysis")
    a = ap.parse_args()
    fr = read_video(a.video)[a.f0:a.f1]
    res, per = summarize(fr, a.prompt)
    if a.frames:
        res["per_frame"] = per
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
