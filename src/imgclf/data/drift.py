"""Distribution profiles of an image split and the drift distances between two of them.

A *profile* summarises one split in a few kB of JSON (stored in statistics.json, so an
earlier run's statistics can be the reference of a later one):

    pixel_histogram     256 counts of pixel values
    mean_image          the split's mean image (H*W grey levels)
    class_mean_images   one mean image per class (null for a class the split lacks)
    row_mass/col_mass   the mean per-image share of ink in each row / column
    image_stats         fixed-bin histograms of per-image brightness (mean), contrast (std)
                        and edge density (share of neighbouring pixel pairs that differ by
                        more than EDGE_STEP grey levels)

`distances(base, other)` compares two profiles with one number per check; each check's
threshold is in settings.VALIDATE (calibrated on resamples of one distribution: see
bench/drift_calibration.py and the README) and is scaled by sqrt(calibration size /
effective size of the two splits), since sampling noise shrinks as 1/sqrt(n). Pure numpy, chunked: ~1 s for 70k 28x28 images.
"""

from __future__ import annotations

import numpy as np

EDGE_STEP = 64
CHUNK = 8192
# Fixed bins so profiles from different runs compare: (low, high, bins).
STAT_BINS = {"brightness": (0.0, 256.0, 128), "contrast": (0.0, 128.0, 128), "edge_density": (0.0, 1.0, 100)}


def profile(images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """The distribution profile of one split (images uint8 [N,H,W], labels [N])."""
    n = len(labels)
    h, w = images.shape[1:3]
    pixel_hist = np.zeros(256, dtype=np.int64)
    class_sums = np.zeros((num_classes, h * w), dtype=np.float64)
    row_mass = np.zeros(h)
    col_mass = np.zeros(w)
    stats = {name: [] for name in STAT_BINS}
    labels = labels.astype(np.int64)
    for start in range(0, n, CHUNK):
        chunk = images[start:start + CHUNK]
        y = labels[start:start + CHUNK]
        pixel_hist += _pixel_histogram(chunk)
        flat = chunk.reshape(len(chunk), -1).astype(np.float32)
        for c in np.unique(y[y < num_classes]):
            class_sums[c] += chunk[y == c].reshape(-1, h * w).sum(axis=0, dtype=np.int64)
        sums = flat.sum(axis=1)
        mean = sums / flat.shape[1]
        stats["brightness"].append(mean)
        stats["contrast"].append(np.sqrt(np.maximum(np.einsum("ij,ij->i", flat, flat) / flat.shape[1] - mean ** 2, 0)))
        edges = np.zeros(len(chunk), dtype=np.int64)
        for a, b in ((chunk[:, 1:, :], chunk[:, :-1, :]), (chunk[:, :, 1:], chunk[:, :, :-1])):
            edges += np.count_nonzero(((np.maximum(a, b) - np.minimum(a, b)) > EDGE_STEP).reshape(len(chunk), -1),
                                      axis=1)
        stats["edge_density"].append(edges / float((h - 1) * w + h * (w - 1)))
        f = flat.reshape(len(chunk), h, w)
        totals = np.maximum(sums, 1.0)[:, None]
        row_mass += (f.sum(axis=2) / totals).sum(axis=0)
        col_mass += (f.sum(axis=1) / totals).sum(axis=0)
    counts = np.bincount(labels[labels < num_classes], minlength=num_classes)
    class_means = [(class_sums[c] / counts[c]).round(2).tolist() if counts[c] else None for c in range(num_classes)]
    image_stats = {}
    for name, (lo, hi, bins) in STAT_BINS.items():
        values = np.concatenate(stats[name]) if stats[name] else np.zeros(0)
        hist, _ = np.histogram(np.clip(values, lo, hi - 1e-9), bins=bins, range=(lo, hi))
        image_stats[name] = {"range": [lo, hi], "counts": hist.astype(int).tolist()}
    return {
        "pixel_histogram": pixel_hist.tolist(),
        "mean_image": (class_sums.sum(axis=0) / max(counts.sum(), 1)).round(2).tolist(),
        "class_mean_images": class_means,
        "row_mass": (row_mass / max(n, 1)).round(6).tolist(),
        "col_mass": (col_mass / max(n, 1)).round(6).tolist(),
        "image_stats": image_stats,
    }


def _pixel_histogram(chunk: np.ndarray) -> np.ndarray:
    """256 counts of a uint8 array; counts byte pairs as uint16 (half the work of bincount on bytes)."""
    flat = np.ascontiguousarray(chunk).reshape(-1)
    if flat.size % 2:
        return np.bincount(flat, minlength=256)
    pairs = np.bincount(flat.view(np.uint16), minlength=65536).reshape(256, 256)
    return pairs.sum(axis=0) + pairs.sum(axis=1)


def _norm(counts) -> np.ndarray:
    a = np.asarray(counts, dtype=np.float64)
    return a / a.sum() if a.sum() > 0 else a


def js_divergence(p, q) -> float:
    """Jensen-Shannon divergence (base 2, 0..1) between two histograms."""
    p, q = _norm(p), _norm(q)
    m = (p + q) / 2

    def kl(a):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    return max(0.0, (kl(p) + kl(q)) / 2)


def wasserstein_hist(p, q, lo: float, hi: float) -> float:
    """Wasserstein-1 (earth mover's) distance between two histograms on the same bins, in the data's units."""
    p, q = _norm(p), _norm(q)
    width = (hi - lo) / len(p)
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum() * width)


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)))


# check name -> (what it measures, unit); the thresholds are settings.VALIDATE.max_<check>.
CHECKS = {
    "label_linf": ("largest difference of one class's share", "share"),
    "pixel_mean_shift": ("shift of the mean pixel value", "grey levels"),
    "intensity_js": ("Jensen-Shannon divergence of pixel-intensity histograms", "bits"),
    "mean_image_rms": ("RMS difference of the mean images", "grey levels"),
    "class_mean_image_rms": ("largest RMS difference of one class's mean image", "grey levels"),
    "brightness_w1": ("Wasserstein-1 distance of per-image brightness (mean)", "grey levels"),
    "contrast_w1": ("Wasserstein-1 distance of per-image contrast (std)", "grey levels"),
    "edge_density_w1": ("Wasserstein-1 distance of per-image edge density", "share of pixel pairs"),
    "row_mass_tv": ("total-variation distance of the mean per-row ink profile", "share"),
    "col_mass_tv": ("total-variation distance of the mean per-column ink profile", "share"),
}


def thresholds(cfg) -> dict[str, float]:
    """The calibrated thresholds (for comparisons of effective size cfg.drift_calibration_size)."""
    return {name: float(getattr(cfg, f"max_{name}")) for name in CHECKS}


def effective_size(n_base: int, n_other: int) -> float:
    """n1*n2/(n1+n2): the size that sets the sampling noise of a distance between two samples."""
    return n_base * n_other / max(n_base + n_other, 1)


def threshold_scale(n_base: int, n_other: int, cfg) -> float:
    """sqrt(calibration size / effective size), within [drift_min_scale, drift_max_scale]."""
    n = max(effective_size(n_base, n_other), 1.0)
    return float(np.clip(np.sqrt(cfg.drift_calibration_size / n), cfg.drift_min_scale, cfg.drift_max_scale))


def distances(base: dict, other: dict) -> dict[str, float]:
    """Every drift distance between two split statistics (validate.split_statistics, with 'profile').

    Statistics without a profile (from an older imgclf) get only the label and mean-pixel checks.
    """
    shares = [np.asarray(s["label_shares"], dtype=float) for s in (base, other)]
    width = max(len(x) for x in shares)
    a, b = (np.pad(x, (0, width - len(x))) for x in shares)
    out = {"label_linf": float(np.max(np.abs(a - b))),
           "pixel_mean_shift": abs(float(base["pixel_mean"]) - float(other["pixel_mean"]))}
    pb, po = base.get("profile"), other.get("profile")
    if not (pb and po):
        return out
    out["intensity_js"] = js_divergence(pb["pixel_histogram"], po["pixel_histogram"])
    out["mean_image_rms"] = _rms(pb["mean_image"], po["mean_image"])
    pairs = [(x, y) for x, y in zip(pb["class_mean_images"], po["class_mean_images"]) if x is not None and y is not None]
    out["class_mean_image_rms"] = max((_rms(x, y) for x, y in pairs), default=0.0)
    for name in STAT_BINS:
        lo, hi = pb["image_stats"][name]["range"]
        out[f"{name}_w1"] = wasserstein_hist(pb["image_stats"][name]["counts"], po["image_stats"][name]["counts"], lo, hi)
    out["row_mass_tv"] = float(np.abs(np.asarray(pb["row_mass"]) - np.asarray(po["row_mass"])).sum() / 2)
    out["col_mass_tv"] = float(np.abs(np.asarray(pb["col_mass"]) - np.asarray(po["col_mass"])).sum() / 2)
    return out


def drift_rows(base: dict, other: dict, cfg) -> list[dict]:
    """[{check, value, threshold, drifted}] for every distance between two split statistics; threshold is
    the calibrated one scaled to the two splits' sizes (threshold_scale)."""
    scale = threshold_scale(int(base["count"]), int(other["count"]), cfg)
    limits = {k: v * scale for k, v in thresholds(cfg).items()}
    return [{"check": name, "value": value, "threshold": limits[name], "drifted": value > limits[name]}
            for name, value in distances(base, other).items()]
