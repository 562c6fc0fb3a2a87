"""The demo's prompt language: "a {color} {shape} {motion} on a {background} background".

Shared by the renderer (what each word looks like), the trainer (which combinations it may
see) and the CI checks (tests/demo_analysis.py parses prompts with the same tables).
docs/DEMO.md documents the grammar. Plain Python (no torch) so the tests can import it.
"""
import itertools
import re

# RGB in 0..255. Chosen far apart so a pixel-statistics check can name them.
COLORS = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 255),
    "yellow": (240, 220, 40), "white": (245, 245, 245), "magenta": (230, 50, 220),
    "cyan": (40, 220, 230), "orange": (250, 140, 30),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS = ("moving left", "moving right", "moving up", "moving down", "bouncing",
           "standing still")
BACKGROUNDS = {"black": (8, 8, 8), "gray": (110, 110, 110), "dark blue": (15, 25, 90),
               "dark green": (15, 70, 25)}

# Pixels per video frame (16 fps): horizontal 2 px (a 192-px frame is crossed in 6 s),
# vertical 1.5 px. Objects wrap around the frame edges (they leave on one side and come
# back on the other), so an object stays in view however long the video runs.
VELOCITY = {"moving left": (-2.0, 0.0), "moving right": (2.0, 0.0), "moving up": (0.0, -1.5),
            "moving down": (0.0, 1.5), "bouncing": (0.0, 0.0), "standing still": (0.0, 0.0)}
BOUNCE_HEIGHT = 36.0     # px: the object hops up from its base line and falls back
BOUNCE_PERIOD = 24       # frames per hop (1.5 s)

# Combinations never rendered during training: the checks use them to show the model
# composes words it learned separately.
HELD_OUT_COLOR_SHAPE = {("magenta", "triangle"), ("orange", "square"), ("cyan", "circle")}
HELD_OUT_COLOR_MOTION = {("red", "moving up"), ("white", "bouncing")}


def prompt(color, shape, motion, background):
    return f"a {color} {shape} {motion} on a {background} background"


_RX = re.compile(r"^a (\w+) (circle|square|triangle) (moving left|moving right|moving up|"
                 r"moving down|bouncing|standing still) on a (black|gray|dark blue|dark green) "
                 r"background$")


def parse(text):
    """prompt text -> (color, shape, motion, background); ValueError if not in the grammar."""
    m = _RX.match(" ".join(text.strip().lower().split()))
    if not m or m.group(1) not in COLORS:
        raise ValueError(f"'{text}' is not in the demo grammar (docs/DEMO.md)")
    return m.group(1), m.group(2), m.group(3), m.group(4)


def held_out(color, shape, motion):
    return (color, shape) in HELD_OUT_COLOR_SHAPE or (color, motion) in HELD_OUT_COLOR_MOTION


def all_combinations():
    return list(itertools.product(COLORS, SHAPES, MOTIONS, BACKGROUNDS))


def training_combinations():
    return [c for c in all_combinations() if not held_out(*c[:3])]


def corpus_lines():
    """Every prompt of the grammar (held-out ones too: the tokenizer must spell them; only the
    DiT never sees their videos)."""
    return [prompt(*c) for c in all_combinations()]
