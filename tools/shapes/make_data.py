#!/usr/bin/python3
"""Synthetic captioned shapes: 32x32 RGB images of one shape on a plain background.

Every image is drawn from attributes (shape, colour, size, position,
background colour) with a little positional and size jitter, anti-aliased by
4x supersampling. Everything is a function of the seed.

Held-out set: some (colour, shape, background) triples never occur in the
training data; the evaluation prompts use only those triples, so the
numbers measure composition, not recall.

  /usr/bin/python3 tools/shapes/make_data.py --preview grid.png   # 8x8 sample grid
"""
import argparse
import itertools

import numpy as np

SIZE = 32
SS = 4  # supersampling factor
SHAPES = ["circle", "square", "triangle", "diamond"]
COLOURS = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 50),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "white": (240, 240, 240),
    "black": (25, 25, 25),
}
COLOUR_NAMES = list(COLOURS)
SIZES = ["small", "large"]
POSITIONS = ["left", "right", "top", "bottom", "center"]
POS_PHRASE = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
              "center": "in the center"}
HOLDOUT_FRACTION = 0.1


def all_triples():
    return [(c, s, b) for c in COLOUR_NAMES for s in SHAPES for b in COLOUR_NAMES if b != c]


def holdout_triples(seed=1234):
    """About 10% of the (colour, shape, background) triples, chosen so that every
    pair of two attributes still occurs in training."""
    rng = np.random.default_rng(seed)
    triples = all_triples()
    order = rng.permutation(len(triples))
    want = int(round(HOLDOUT_FRACTION * len(triples)))
    held = []
    pairs = {}
    for t in triples:
        for key in ((0, t[0], t[1]), (1, t[1], t[2]), (2, t[0], t[2])):
            pairs[key] = pairs.get(key, 0) + 1
    for i in order:
        if len(held) == want:
            break
        t = triples[i]
        keys = ((0, t[0], t[1]), (1, t[1], t[2]), (2, t[0], t[2]))
        if all(pairs[k] > 2 for k in keys):  # keep at least two training triples per pair
            for k in keys:
                pairs[k] -= 1
            held.append(t)
    return sorted(held)


def caption(a, form="full"):
    """The caption of attributes a = dict(shape, colour, size, position, background)."""
    s, c, z, p, b = a["shape"], a["colour"], a["size"], POS_PHRASE[a["position"]], a["background"]
    if form == "full":
        return f"a {z} {c} {s} {p}, {b} background"
    if form == "no_size":
        return f"a {c} {s} {p}, {b} background"
    if form == "no_pos":
        return f"a {z} {c} {s}, {b} background"
    if form == "on_bg":
        return f"a {z} {c} {s} {p} on a {b} background"
    if form == "short":
        return f"a {c} {s} on a {b} background"
    if form == "no_bg":
        return f"a {z} {c} {s} {p}"
    raise ValueError(form)


# The training captions: the full form half of the time, the rest spread over
# forms that leave attributes out (so short prompts work too).
FORMS = ["full", "no_size", "no_pos", "on_bg", "short", "no_bg"]
FORM_P = [0.5, 0.1, 0.1, 0.1, 0.1, 0.1]


def geometry(a, rng):
    """Centre (x, y) and bounding-box side in pixels, jittered."""
    side = rng.uniform(10.0, 13.0) if a["size"] == "small" else rng.uniform(17.0, 21.0)
    if a["shape"] == "diamond":  # the same visual weight as the others
        side *= 1.15
    margin = 2.0 + side / 2
    pos = a["position"]
    cx = cy = SIZE / 2
    if pos == "left":
        cx = margin
    elif pos == "right":
        cx = SIZE - margin
    elif pos == "top":
        cy = margin
    elif pos == "bottom":
        cy = SIZE - margin
    cx += rng.uniform(-1.5, 1.5)
    cy += rng.uniform(-1.5, 1.5)
    if pos in ("left", "right", "center"):
        cy += rng.uniform(-1.0, 1.0)
    if pos in ("top", "bottom", "center"):
        cx += rng.uniform(-1.0, 1.0)
    return cx, cy, side


def shape_mask(shape, cx, cy, side, n=SIZE, ss=SS):
    """Coverage in [0, 1] of each pixel of an n x n image (supersampled)."""
    m = n * ss
    c = (np.arange(m) + 0.5) / ss
    X, Y = np.meshgrid(c, c)
    dx, dy, r = X - cx, Y - cy, side / 2
    if shape == "circle":
        inside = dx * dx + dy * dy <= r * r
    elif shape == "square":
        inside = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    elif shape == "diamond":
        inside = np.abs(dx) + np.abs(dy) <= r
    elif shape == "triangle":  # apex up, base at the bottom of the box
        t = (dy + r) / (2 * r)  # 0 at the apex, 1 at the base
        inside = (t >= 0) & (t <= 1) & (np.abs(dx) <= r * t)
    else:
        raise ValueError(shape)
    return inside.reshape(n, ss, n, ss).mean(axis=(1, 3))


def render(a, rng):
    """uint8 [32, 32, 3] image of attributes a."""
    cx, cy, side = geometry(a, rng)
    cov = shape_mask(a["shape"], cx, cy, side)[..., None]
    fg = np.array(COLOURS[a["colour"]], dtype=np.float64)
    bg = np.array(COLOURS[a["background"]], dtype=np.float64)
    img = cov * fg + (1 - cov) * bg
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def sample_attributes(rng, allowed):
    """Uniform over the allowed (colour, shape, background) triples, sizes and positions."""
    c, s, b = allowed[rng.integers(len(allowed))]
    return {"shape": s, "colour": c, "background": b, "size": SIZES[rng.integers(2)],
            "position": POSITIONS[rng.integers(len(POSITIONS))]}


def make_dataset(n, seed):
    """n training images: (uint8 [n,32,32,3], list of attribute dicts)."""
    rng = np.random.default_rng(seed)
    held = set(holdout_triples())
    allowed = [t for t in all_triples() if t not in held]
    imgs = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    attrs = []
    for i in range(n):
        a = sample_attributes(rng, allowed)
        imgs[i] = render(a, rng)
        attrs.append(a)
    return imgs, attrs


def all_caption_forms(a):
    return [caption(a, f) for f in FORMS]


def eval_prompts(n=100, seed=4321):
    """n held-out prompts: attribute dicts whose (colour, shape, background) never
    occurs in training, sizes and positions spread evenly."""
    rng = np.random.default_rng(seed)
    held = holdout_triples()
    out = []
    combos = list(itertools.product(range(len(held)), SIZES, POSITIONS))
    for k in rng.permutation(len(combos))[:n]:
        i, z, p = combos[k]
        c, s, b = held[i]
        out.append({"shape": s, "colour": c, "background": b, "size": z, "position": p})
    return out


def test_prompts(n=8):
    """The first evaluation prompt of each of the first n distinct held-out triples
    (the C unit test's prompts)."""
    out, seen = [], set()
    for a in eval_prompts():
        t = (a["colour"], a["shape"], a["background"])
        if t not in seen and len(out) < n:
            seen.add(t)
            out.append(a)
    return out


def all_words():
    """Every caption the grammar can produce, for the tokenizer (one per form and attribute set)."""
    caps = []
    for c, s, b in all_triples():
        for z in SIZES:
            for p in POSITIONS:
                a = {"shape": s, "colour": c, "background": b, "size": z, "position": p}
                caps.extend(all_caption_forms(a))
    return caps


def save_grid(path, imgs, cols=8, scale=4):
    from PIL import Image
    n = len(imgs)
    rows = (n + cols - 1) // cols
    g = np.full((rows * (SIZE + 2), cols * (SIZE + 2), 3), 128, dtype=np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        g[r * (SIZE + 2) + 1:r * (SIZE + 2) + 1 + SIZE, c * (SIZE + 2) + 1:c * (SIZE + 2) + 1 + SIZE] = im
    Image.fromarray(g).resize((g.shape[1] * scale, g.shape[0] * scale), Image.NEAREST).save(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--preview", help="write an 8-column grid PNG of the first n images")
    ap.add_argument("--out", help="write images and captions to this .npz")
    args = ap.parse_args()
    imgs, attrs = make_dataset(args.n, args.seed)
    print(f"{len(holdout_triples())} held-out triples of {len(all_triples())}")
    for a in attrs[:8]:
        print(caption(a))
    if args.preview:
        save_grid(args.preview, imgs)
    if args.out:
        np.savez_compressed(args.out, images=imgs, captions=np.array([caption(a) for a in attrs]))


if __name__ == "__main__":
    main()
