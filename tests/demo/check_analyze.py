#!/usr/bin/env python3
"""check_analyze.py - the analysis helper against ground truth: videos drawn by the training
renderer (tools/train_demo/render.py, so the truth is known exactly) must be read back right.

Every 5th combination of the grammar (116 prompts, all colours, shapes, motions and
backgrounds), 48 frames each at a random start position (objects cross the frame edges), plus
a colour/motion switch: colour right in every frame, motion right in every video, shape right
in >= 90% of the frames, background right in every frame, the switch found at its frame.
Needs numpy and torch (the renderer); CPU, a few seconds.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "train_demo"))
import analyze as A   # noqa: E402
import grammar as G   # noqa: E402
import render as R    # noqa: E402


def frames_of(scene, n=48):
    v = R.render(scene, torch.arange(0, n), 128, 192)[0]
    return (v.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def main():
    rng = np.random.default_rng(0)
    fails, n, shape_ok, shape_n = [], 0, 0, 0
    for c, s, m, b in G.all_combinations()[::5]:
        p = G.prompt(c, s, m, b)
        sc = R.scene_from_prompt(p, 128, 192, x=float(rng.uniform(0, 192)),
                                 y=float(rng.uniform(20, 108)), radius=float(rng.uniform(13, 18)))
        res, per = A.summarize(frames_of(sc), p)
        n += 1
        shape_ok += sum(q["shape"] == s for q in per)
        shape_n += len(per)
        if res["color_ok"] < 1.0 or not res["motion_ok"] or res["background_ok"] < 1.0:
            fails.append(f"'{p}': colour {res['color_ok']:.0%}, background {res['background_ok']:.0%}, "
                         f"motion {res['motion']} {res['motion_stats']}")
    sc = R.scene_from_prompt("a red circle moving right on a gray background", 128, 192,
                             switch_to="a cyan circle moving down on a gray background", switch=24)
    per = [A.analyze_frame(f) for f in frames_of(sc)]
    cols = [q["color"] for q in per]
    if cols[:24] != ["red"] * 24 or cols[24:] != ["cyan"] * 24:
        fails.append(f"switch at frame 24 read as {cols}")
    if A.classify_motion(A.track(per[24:]))[0] != "moving down":
        fails.append("motion after the switch not read as moving down")
    # motion in bursts (what the generated videos show): still for 2 frames, then a 4.5 px jump,
    # so the median step is 0; read by the track's slope. A hop stays a hop, stillness stays still.
    bursts = [(i, 96.0, 100.0 - 4.5 * (i // 3)) for i in range(45)]
    hop = [(i, 96.0, 100.0 - 36.0 * abs(np.sin(np.pi * i / 24))) for i in range(45)]
    still = [(i, 96.0 + 0.5 * (i % 2), 60.0) for i in range(45)]
    for name, tr, want in (("bursts up", bursts, "moving up"), ("hop", hop, "bouncing"),
                           ("still", still, "standing still"),
                           ("bursts left", [(i, 150.0 - 6.0 * (i // 3), 60.0) for i in range(45)],
                            "moving left")):
        got = A.classify_motion(tr)[0]
        if got != want:
            fails.append(f"track '{name}' read as {got}, expected {want}")
    # negative case: noise (what an untrained model draws) is no object at all
    noise = np.random.default_rng(1).integers(0, 256, (8, 16, 24, 3), dtype=np.uint8)
    noise = noise.repeat(8, 1).repeat(8, 2)              # 8x8-pixel blocks, 128x192
    if any(A.analyze_frame(f)["present"] for f in noise):
        fails.append("block noise read as an object")
    print(f"{n} rendered prompts: {n - len([f for f in fails if not f.startswith('switch')])} read "
          f"right (colour, background, motion); shape right in {shape_ok / shape_n:.1%} of "
          f"{shape_n} frames")
    if shape_ok / shape_n < 0.9:
        fails.append(f"shape right in only {shape_ok / shape_n:.1%} of frames")
    for f in fails:
        print("FAIL", f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
