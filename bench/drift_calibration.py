"""Drift thresholds: false-alarm rate on resamples of one distribution, and distances of shifted data.

    .venv/bin/python bench/drift_calibration.py [--resamples 1000] [--full-resamples 40] [--seed 7]

Pools Fashion-MNIST's 70,000 images (train + t10k), then:
1. null: draws two disjoint random samples (a "train" and an "other" split) many times, at the size
   of the test fixtures (1,600 vs 400, the smallest splits the thresholds are meant for) and at the
   pipeline's size (48,000 vs 12,000); prints each check's largest distance seen, its threshold
   (settings.VALIDATE) and how many resamples tripped any check (the false-alarm rate);
2. shifts: applies each shift case to the "other" sample and prints every distance and which
   checks caught it, at both sizes.
Use a --seed other than the one the thresholds were set from to measure a fresh false-alarm rate.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from imgclf import settings
from imgclf.data import drift, idx
from imgclf.steps.validate import split_statistics


def shift_cases(rng: np.random.Generator) -> dict:
    """name -> function (images, labels) -> (images, labels): one per kind of shift."""
    from scipy import ndimage

    def clip(a):
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)

    def noise(x, y, sigma):
        return clip(x + rng.normal(0, sigma, x.shape)), y

    def shift(x, y, px):
        out = np.zeros_like(x)
        out[:, px:, px:] = x[:, :-px, :-px]
        return out, y

    def contrast(x, y, k):
        m = x.reshape(len(x), -1).mean(axis=1)[:, None, None]
        return clip((x - m) * k + m), y

    def prior(x, y):  # classes 0 and 1 keep all their examples, the others a third: shares ~0.21 vs ~0.07
        keep = (y < 2) | (rng.random(len(y)) < 1 / 3)
        return x[keep], y[keep]

    def swap(x, y):  # concept shift: T-shirt/top and Shirt labels swapped
        y = y.copy()
        t, s = y == 0, y == 6
        y[t], y[s] = 6, 0
        return x, y

    return {
        "gaussian noise sigma=10": lambda x, y: noise(x, y, 10),
        "gaussian noise sigma=25": lambda x, y: noise(x, y, 25),
        "rotate 90": lambda x, y: (np.rot90(x, 1, axes=(1, 2)).copy(), y),
        "rotate 10 degrees": lambda x, y: (ndimage.rotate(x, 10, axes=(1, 2), reshape=False, order=1), y),
        "horizontal flip": lambda x, y: (x[:, :, ::-1].copy(), y),
        "vertical flip": lambda x, y: (x[:, ::-1, :].copy(), y),
        "shift 2 px right+down": lambda x, y: shift(x, y, 2),
        "contrast x0.7 (about image mean)": lambda x, y: contrast(x, y, 0.7),
        "contrast x1.3 (about image mean)": lambda x, y: contrast(x, y, 1.3),
        "brightness +15": lambda x, y: (clip(x.astype(float) + 15), y),
        "brightness -15 (dimmer, x0.8)": lambda x, y: (clip(x * 0.8), y),
        "inversion 255-x": lambda x, y: (255 - x, y),
        "label prior: classes 2-9 thinned to 1/3": prior,
        "concept: T-shirt/Shirt labels swapped": swap,
    }


def stats_of(x, y):
    return split_statistics(x, y, settings.NUM_CLASSES, drift.profile(x, y, settings.NUM_CLASSES))


class Pool:
    """Per-image parts of drift.profile computed once for the whole pool, so a resample's statistics are
    sums over its rows (the null runs draw thousands of samples). Checked equal to drift.profile below."""

    def __init__(self, x, y):
        self.y, n = y, len(y)
        self.flat = x.reshape(n, -1).astype(np.float32)
        self.hist = np.bincount((np.arange(n)[:, None] * 256 + x.reshape(n, -1)).ravel(),
                                minlength=n * 256).reshape(n, 256).astype(np.int32)
        parts = [drift_parts(x[i:i + 8192]) for i in range(0, n, 8192)]
        self.parts = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def stats(self, rows):
        y, k = self.y[rows], settings.NUM_CLASSES
        counts = np.bincount(y, minlength=k)
        onehot = np.zeros((len(rows), k), dtype=np.float32)
        onehot[np.arange(len(rows)), y] = 1.0
        sums = (onehot.T @ self.flat[rows]).astype(np.float64)
        image_stats = {}
        for name, (lo, hi, bins) in drift.STAT_BINS.items():
            h, _ = np.histogram(np.clip(self.parts[name][rows], lo, hi - 1e-9), bins=bins, range=(lo, hi))
            image_stats[name] = {"range": [lo, hi], "counts": h.tolist()}
        hist = self.hist[rows].sum(axis=0)
        prof = {"pixel_histogram": hist.tolist(),
                "mean_image": (sums.sum(axis=0) / len(rows)).round(2).tolist(),
                "class_mean_images": [(sums[c] / counts[c]).round(2).tolist() if counts[c] else None for c in range(k)],
                "row_mass": (self.parts["row_mass"][rows].sum(axis=0) / len(rows)).round(6).tolist(),
                "col_mass": (self.parts["col_mass"][rows].sum(axis=0) / len(rows)).round(6).tolist(),
                "image_stats": image_stats}
        values = np.arange(256)
        mean = float(hist @ values / hist.sum())
        return {"count": len(rows), "pixel_mean": mean, "label_shares": (counts / len(rows)).tolist(), "profile": prof}


def drift_parts(chunk):
    """Per-image brightness, contrast, edge density and row/column ink shares, as drift.profile computes them."""
    flat = chunk.reshape(len(chunk), -1).astype(np.float32)
    sums = flat.sum(axis=1)
    mean = sums / flat.shape[1]
    h, w = chunk.shape[1:]
    edges = np.zeros(len(chunk), dtype=np.int64)
    for a, b in ((chunk[:, 1:, :], chunk[:, :-1, :]), (chunk[:, :, 1:], chunk[:, :, :-1])):
        edges += ((np.maximum(a, b) - np.minimum(a, b)) > drift.EDGE_STEP).sum(axis=(1, 2))
    f = flat.reshape(len(chunk), h, w) / np.maximum(sums, 1.0)[:, None, None]
    return {"brightness": mean,
            "contrast": np.sqrt(np.maximum(np.einsum("ij,ij->i", flat, flat) / flat.shape[1] - mean ** 2, 0)),
            "edge_density": edges / float((h - 1) * w + h * (w - 1)),
            "row_mass": f.sum(axis=2).astype(np.float64), "col_mass": f.sum(axis=1).astype(np.float64)}


def check_pool(pool, x, y, rng):
    rows = np.sort(rng.choice(len(y), 500, replace=False))
    a, b = pool.stats(rows), stats_of(x[rows], y[rows])
    d = drift.distances(a, b)
    assert all(v <= 0.02 * drift.thresholds(settings.VALIDATE)[k] * settings.VALIDATE.drift_min_scale
               for k, v in d.items()), d


def draw(rng, n_pool, n_base, n_other):
    order = rng.permutation(n_pool)
    return order[:n_base], order[n_base:n_base + n_other]


def null_run(pool, rng, n_base, n_other, resamples, limits):
    worst = {k: 0.0 for k in limits}
    tripped = 0
    trips_by_check = {k: 0 for k in limits}
    for _ in range(resamples):
        a, b = draw(rng, len(pool.y), n_base, n_other)
        d = drift.distances(pool.stats(a), pool.stats(b))
        over = [k for k, v in d.items() if v > limits[k]]
        tripped += bool(over)
        for k, v in d.items():
            worst[k] = max(worst[k], v)
        for k in over:
            trips_by_check[k] += 1
    return worst, tripped, trips_by_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=settings.DEFAULT_DATA_URI)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--full-resamples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-shifts", action="store_true")
    args = parser.parse_args()
    shape = (settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH)
    parts = [idx.load_idx_pair(args.data, p, shape) for p in settings.IDX_SOURCES.values()]
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    base_limits = drift.thresholds(settings.VALIDATE)

    def limits_for(n_base, n_other):
        scale = drift.threshold_scale(n_base, n_other, settings.VALIDATE)
        return {k: v * scale for k, v in base_limits.items()}

    rng = np.random.default_rng(args.seed)
    pool = Pool(x, y)
    check_pool(pool, x, y, rng)
    sizes = [(1600, 400, args.resamples), (48000, 12000, args.full_resamples)]
    for n_base, n_other, r in sizes:
        if r <= 0:
            continue
        t0 = time.perf_counter()
        limits = limits_for(n_base, n_other)
        worst, tripped, by_check = null_run(pool, rng, n_base, n_other, r, limits)
        upper = 1 - 0.05 ** (1 / r) if tripped == 0 else float("nan")  # one-sided 95% bound when none tripped
        print(f"\nnull {n_base} vs {n_other}: {tripped} of {r} resamples tripped a check "
              f"(false-alarm rate {tripped / r:.4f}" + (f", 95% upper bound {upper:.4f}" if tripped == 0 else "")
              + f"); {time.perf_counter() - t0:.0f} s", flush=True)
        for k in limits:
            print(f"  {k:22s} max {worst[k]:10.5f}  threshold {limits[k]:10.5f}  "
                  f"ratio {worst[k] / limits[k]:5.2f}  trips {by_check[k]}", flush=True)
    if args.skip_shifts:
        return
    for n_base, n_other, _ in sizes:
        a, b = draw(rng, len(y), n_base, n_other)
        base = stats_of(x[a], y[a])
        limits = limits_for(n_base, n_other)
        print(f"\nshifts ({n_base} vs {n_other}): distance / threshold for the checks that caught it")
        for name, fn in shift_cases(rng).items():
            shifted = stats_of(*fn(x[b], y[b]))
            limits = limits_for(n_base, shifted["count"])
            d = drift.distances(base, shifted)
            caught = {k: v for k, v in d.items() if v > limits[k]}
            body = ", ".join(f"{k} {v:.4g} ({v / limits[k]:.1f}x)" for k, v in
                             sorted(caught.items(), key=lambda kv: -kv[1] / limits[kv[0]]))
            print(f"  {'CAUGHT' if caught else 'MISSED'} {name}: {body or max(d, key=lambda k: d[k] / limits[k])}", flush=True)


if __name__ == "__main__":
    main()
