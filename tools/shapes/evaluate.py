#!/usr/bin/python3
"""Evaluates the shapes model on held-out prompts, from the pixels.

The images come from the C engine (`cdiffusers`, one generator per image,
seeds 0..n-1), 20 DPM-Solver++ (2M) steps, guidance 7.5 unless told. Each
image is measured without any learned classifier:
  background colour  median of the 2-pixel border ring -> nearest palette colour
  shape region       pixels far from that background colour (largest 4-connected blob)
  shape colour       median of the blob's core pixels -> nearest palette colour
  shape kind         best soft-IoU of the blob's coverage with the four shapes
                     rendered by make_data at the blob's box (centre/size searched)
  position, size     centroid region and box side (reported, not targeted)

  /usr/bin/python3 tools/shapes/evaluate.py --model models/shapes-tiny --cli build/cdiffusers --grid grid.png
  /usr/bin/python3 tools/shapes/evaluate.py --self-test    # the measures on rendered images
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_data  # noqa: E402
import sdmodules as sm  # noqa: E402

PALETTE = np.array([make_data.COLOURS[c] for c in make_data.COLOUR_NAMES], dtype=np.float64)
SHAPE_DIST = 60.0  # RGB distance from the background that counts as shape (palette pairs are >= 95 apart)


def nearest_colour(rgb):
    return make_data.COLOUR_NAMES[int(np.argmin(((PALETTE - rgb) ** 2).sum(1)))]


def largest_blob(mask):
    """Largest 4-connected component of a boolean image."""
    seen = np.zeros_like(mask)
    best = []
    H, W = mask.shape
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        stack, comp = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            comp.append((y, x))
            for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= yy < H and 0 <= xx < W and mask[yy, xx] and not seen[yy, xx]:
                    seen[yy, xx] = True
                    stack.append((yy, xx))
        if len(comp) > len(best):
            best = comp
    out = np.zeros_like(mask)
    for y, x in best:
        out[y, x] = True
    return out


def measure(img):
    """img: float [32, 32, 3] in [0, 255]. Returns a dict of measured attributes."""
    n = make_data.SIZE
    ring = np.ones((n, n), bool)
    ring[2:-2, 2:-2] = False
    bg = np.median(img[ring], axis=0)
    res = {"background": nearest_colour(bg), "colour": None, "shape": None, "position": None, "size": None}
    dist = np.sqrt(((img - bg) ** 2).sum(-1))
    blob = largest_blob(dist > SHAPE_DIST)
    if blob.sum() < 4:
        return res
    d = dist[blob]
    fg = np.median(img[blob][d >= 0.75 * d.max()], axis=0)
    res["colour"] = nearest_colour(fg)
    # coverage of each pixel by the shape colour (anti-aliased edges count partly)
    v = fg - bg
    cov = np.clip(((img - bg) @ v) / max(v @ v, 1e-6), 0, 1)
    grown = blob.copy()  # the blob plus its one-pixel rim (its anti-aliased edge)
    grown[1:] |= blob[:-1]; grown[:-1] |= blob[1:]; grown[:, 1:] |= blob[:, :-1]; grown[:, :-1] |= blob[:, 1:]
    cov = cov * grown
    ys, xs = np.nonzero(cov > 0.5)
    if len(xs) == 0:
        return res
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side0 = max(x1 - x0, y1 - y0)
    cx0, cy0 = (x0 + x1) / 2, (y0 + y1) / 2
    best = (-1.0, None)
    for kind in make_data.SHAPES:
        for side in np.arange(side0 - 1.5, side0 + 1.51, 0.5):
            for cx in np.arange(cx0 - 1.0, cx0 + 1.01, 0.5):
                for cy in np.arange(cy0 - 1.0, cy0 + 1.01, 0.5):
                    t = make_data.shape_mask(kind, cx, cy, side, ss=2)
                    iou = np.minimum(t, cov).sum() / np.maximum(t, cov).sum()
                    if iou > best[0]:
                        best = (iou, kind)
    res["shape"], res["iou"] = best[1], best[0]
    # position: the nearest of make_data's nominal centres for this size
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, side0 / 2
    n2 = n / 2
    centres = {"left": (2 + half, n2), "right": (n - 2 - half, n2), "top": (n2, 2 + half),
               "bottom": (n2, n - 2 - half), "center": (n2, n2)}
    res["position"] = min(centres, key=lambda k: (centres[k][0] - cx) ** 2 + (centres[k][1] - cy) ** 2)
    res["size"] = "small" if side0 < 15.5 else "large"
    return res


def score(attrs, images):
    keys = ["colour", "background", "shape", "position", "size"]
    hits = {k: 0 for k in keys}
    rows = []
    for a, im in zip(attrs, images):
        m = measure(im)
        for k in keys:
            hits[k] += m[k] == a[k]
        rows.append(m)
    return {k: hits[k] / len(attrs) for k in keys}, rows


def generate_c(cli, model, prompts, guidance, steps, scheduler, threads, chunk=50):
    """float images [n, 32, 32, 3] in [0, 255] from the C engine; image i uses seed i."""
    out = []
    with tempfile.TemporaryDirectory() as d:
        for s in range(0, len(prompts), chunk):
            ps = prompts[s:s + chunk]
            cmd = [cli, "--model", model, "--steps", str(steps), "-g", str(guidance), "-s", scheduler, "-q",
                   "--seeds", f"{s}-{s + len(ps) - 1}", "-t", str(threads), "-o", os.path.join(d, "img.png"),
                   "--output-tensor", os.path.join(d, "img.safetensors")]
            for p in ps:
                cmd += ["-p", p]
            subprocess.run(cmd, check=True)
            out.append(sm.load_safetensors(os.path.join(d, "img.safetensors"))["image"].numpy())
    return np.concatenate(out) * 255.0


def self_test(n=400):
    rng = np.random.default_rng(7)
    attrs = [make_data.sample_attributes(rng, make_data.all_triples()) for _ in range(n)]
    imgs = np.stack([make_data.render(a, rng).astype(np.float64) for a in attrs])
    acc, rows = score(attrs, imgs)
    print("measures on rendered images:", {k: f"{v:.1%}" for k, v in acc.items()})
    for a, m in zip(attrs, rows):
        if any(a[k] != m[k] for k in ("colour", "background", "shape")):
            print("  miss:", make_data.caption(a), "->", m)
    return acc


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/shapes-tiny")
    ap.add_argument("--cli", default="build/cdiffusers")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--scheduler", default="dpm++2m")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", help="PNG grid of all generated images (10 columns)")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    attrs = make_data.eval_prompts(args.n)
    prompts = [make_data.caption(a) for a in attrs]
    imgs = generate_c(args.cli, args.model, prompts, args.guidance, args.steps, args.scheduler, args.threads)
    acc, rows = score(attrs, imgs)
    print(f"{args.n} held-out prompts, {args.steps} steps {args.scheduler}, guidance {args.guidance}, seeds 0..{args.n - 1}")
    for k, v in acc.items():
        print(f"  {k:10s} right {v:.1%}")
    if args.verbose:
        for p, m in zip(prompts, rows):
            print(f"  {p:60s} -> {m['colour']} {m['shape']} {m['position']} {m['size']}, {m['background']}")
    if args.grid:
        make_data.save_grid(args.grid, np.clip(np.round(imgs), 0, 255).astype(np.uint8), cols=10)


if __name__ == "__main__":
    main()
