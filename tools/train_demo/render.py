"""Procedural videos for the demo family, rendered on the fly (torch, any device).

A video is one object (color, shape, size) moving over a flat background. The scene is a
function of the frame index, so any stretch of a long video (frames 1000..1011, say) can be
rendered without the frames before it: positions come from a cumulative sum of per-frame
velocities. A sample may switch prompt once (color and/or motion) at a frame; the object
keeps its place and shape and takes the new color / motion from that frame on.
"""
import math

import torch

try:
    from . import grammar as G
except ImportError:  # run as a script from this folder
    import grammar as G

COLOR_LIST = list(G.COLORS)
BG_LIST = list(G.BACKGROUNDS)
COLOR_RGB = torch.tensor([G.COLORS[c] for c in COLOR_LIST], dtype=torch.float32) / 255.0
BG_RGB = torch.tensor([G.BACKGROUNDS[b] for b in BG_LIST], dtype=torch.float32) / 255.0
VEL = torch.tensor([G.VELOCITY[m] for m in G.MOTIONS], dtype=torch.float32)
BOUNCE = G.MOTIONS.index("bouncing")


class Scenes:
    """A batch of scene descriptions (integer indices into the grammar tables)."""

    def __init__(self, color, color2, shape, motion, motion2, bg, switch, x0, y0, radius):
        self.color, self.color2, self.shape, self.bg = color, color2, shape, bg
        self.motion, self.motion2, self.switch = motion, motion2, switch
        self.x0, self.y0, self.radius = x0, y0, radius

    def __len__(self):
        return self.color.shape[0]

    def prompts(self, after_switch=False):
        c = self.color2 if after_switch else self.color
        m = self.motion2 if after_switch else self.motion
        return [G.prompt(COLOR_LIST[int(c[i])], G.SHAPES[int(self.shape[i])],
                         G.MOTIONS[int(m[i])], BG_LIST[int(self.bg[i])]) for i in range(len(self))]


def sample_scenes(n, gen, H, W, switch_prob=0.0, switch_range=(0, 0), allowed=None,
                  fixed_start=False, radius_px=0.0):
    """n random scenes drawn with the torch.Generator gen (CPU). allowed: list of (color,
    shape, motion, background) name tuples to draw from (default: the training set, held-out
    combinations excluded); a switch draws a second color/motion from the same set.
    fixed_start: the object starts at the frame centre with radius 15 (scene_from_prompt's
    defaults), so a video is a function of its prompt (and switch): the DiT's x0 target is then
    unique, which a few-step sampler needs (a random start makes chunk 0's x0 the average over
    positions, a blur that fades to the background).
    radius_px: > 0 gives every object that radius (the prompt says nothing of size, so a random
    radius is one more thing a few-step sampler can only average over); 0 draws 13-18 px."""
    allowed = allowed if allowed is not None else G.training_combinations()
    idx = torch.randint(len(allowed), (n,), generator=gen)
    idx2 = torch.randint(len(allowed), (n,), generator=gen)
    pick = [allowed[int(i)] for i in idx]
    pick2 = [allowed[int(i)] for i in idx2]
    color = torch.tensor([COLOR_LIST.index(p[0]) for p in pick])
    shape = torch.tensor([G.SHAPES.index(p[1]) for p in pick])
    motion = torch.tensor([G.MOTIONS.index(p[2]) for p in pick])
    bg = torch.tensor([BG_LIST.index(p[3]) for p in pick])
    color2 = torch.tensor([COLOR_LIST.index(p[0]) for p in pick2])
    motion2 = torch.tensor([G.MOTIONS.index(p[2]) for p in pick2])
    # a switch must keep the pair (color2, shape) and (color2, motion2) inside the training set
    for i in range(n):
        c2, m2 = COLOR_LIST[int(color2[i])], G.MOTIONS[int(motion2[i])]
        if G.held_out(c2, G.SHAPES[int(shape[i])], m2):
            color2[i], motion2[i] = color[i], motion[i]
    sw = torch.rand(n, generator=gen) < switch_prob
    lo, hi = switch_range
    switch = torch.where(sw, torch.randint(lo, max(hi, lo + 1), (n,), generator=gen),
                         torch.full((n,), 1 << 30))
    radius = 13.0 + 5.0 * torch.rand(n, generator=gen)
    if radius_px > 0:
        radius = torch.full((n,), float(radius_px))
    x0 = W * torch.rand(n, generator=gen)
    y0 = radius + 4 + (H - 2 * radius - 8) * torch.rand(n, generator=gen)
    if fixed_start:
        radius, x0, y0 = torch.full((n,), 15.0), torch.full((n,), W / 2), torch.full((n,), H / 2)
    return Scenes(color, color2, shape, motion, motion2, bg, switch, x0, y0, radius)


def scene_from_prompt(text, H, W, x=None, y=None, radius=15.0, switch_to=None, switch=1 << 30):
    c, s, m, b = G.parse(text)
    c2, m2 = c, m
    if switch_to is not None:
        c2, _, m2, _ = G.parse(switch_to)
    t = lambda v: torch.tensor([v])  # noqa: E731
    return Scenes(t(COLOR_LIST.index(c)), t(COLOR_LIST.index(c2)), t(G.SHAPES.index(s)),
                  t(G.MOTIONS.index(m)), t(G.MOTIONS.index(m2)), t(BG_LIST.index(b)), t(switch),
                  torch.tensor([W / 2 if x is None else x], dtype=torch.float32),
                  torch.tensor([H / 2 if y is None else y], dtype=torch.float32),
                  torch.tensor([radius], dtype=torch.float32))


def trajectory(sc, t_max):
    """Object centre (x, y) for frames 0..t_max-1: [n, t_max] each (unwrapped x/y before the
    bounce offset, plus the offset), and the per-frame motion index."""
    n = len(sc)
    f = torch.arange(t_max)
    after = f[None, :] >= sc.switch[:, None]                                  # [n, T]
    mot = torch.where(after, sc.motion2[:, None], sc.motion[:, None])        # [n, T]
    v = VEL[mot]                                                              # [n, T, 2]
    pos = torch.cumsum(v, 1) - v                                              # sum over u < t
    x = sc.x0[:, None] + pos[..., 0]
    y = sc.y0[:, None] + pos[..., 1]
    seg_start = torch.where(after, sc.switch[:, None], torch.zeros(n, 1, dtype=torch.long))
    ph = (f[None, :] - seg_start).float() * math.pi / G.BOUNCE_PERIOD
    hop = -G.BOUNCE_HEIGHT * torch.sin(ph).abs()
    y = y + torch.where(mot == BOUNCE, hop, torch.zeros_like(hop))
    return x, y, mot


def render(sc, frames, H, W, device="cpu"):
    """Frames [n, T, 3, H, W] in [0, 1] for the frame indices `frames` (1-D LongTensor, the
    same for every scene). Edges are anti-aliased over one pixel; positions wrap."""
    frames = frames.cpu()
    x, y, _ = trajectory(sc, int(frames.max()) + 1)
    x, y = x[:, frames].to(device), y[:, frames].to(device)                   # [n, T]
    after = (frames[None, :] >= sc.switch[:, None]).to(device)
    col = torch.where(after[..., None], COLOR_RGB[sc.color2].to(device)[:, None],
                      COLOR_RGB[sc.color].to(device)[:, None])                 # [n, T, 3]
    bg = BG_RGB[sc.bg].to(device)                                             # [n, 3]
    r = sc.radius.to(device)[:, None, None, None]
    py = torch.arange(H, device=device, dtype=torch.float32)[None, None, :, None] + 0.5
    px = torch.arange(W, device=device, dtype=torch.float32)[None, None, None, :] + 0.5
    dx = torch.remainder(px - x[..., None, None] + W / 2, W) - W / 2          # torus offsets
    dy = torch.remainder(py - y[..., None, None] + H / 2, H) - H / 2
    shape = sc.shape.to(device)[:, None, None, None]
    d_circle = torch.sqrt(dx * dx + dy * dy) - r
    d_square = torch.maximum(dx.abs(), dy.abs()) - 0.88 * r
    rt = 1.3 * r                                                              # circumradius
    d_tri = torch.maximum(torch.maximum(dy, 0.866 * dx - 0.5 * dy), -0.866 * dx - 0.5 * dy) - rt / 2
    d = torch.where(shape == 0, d_circle, torch.where(shape == 1, d_square, d_tri))
    a = (0.5 - d).clamp(0, 1)[:, :, None]                                     # [n, T, 1, H, W]
    return bg[:, None, :, None, None] * (1 - a) + col[..., None, None] * a
