"""What evaluate reports beyond accuracy: calibration, slices and the worst confusions (pure numpy).

- calibration: expected calibration error (ECE) over CALIBRATION_BINS equal-width bins of the
  top-class probability, with the per-bin confidence / accuracy / count of the reliability diagram;
- slices: accuracy per class, per brightness band and per contrast band (per-image pixel mean and
  std; band edges are fixed in settings.EVALUATE so slices compare across runs and models);
- confusions: the largest off-diagonal cells of the confusion matrix, each with the rows of its
  most confident mistakes (for thumbnails).
"""

from __future__ import annotations

import numpy as np

from imgclf import settings

CALIBRATION_BINS = 15


def calibration(probs: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        if n:
            acc, mean_conf = float(correct[mask].mean()), float(conf[mask].mean())
            ece += n / len(labels) * abs(acc - mean_conf)
        else:
            acc = mean_conf = None
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": n, "accuracy": acc,
                     "confidence": mean_conf})
    return {"ece": float(ece), "bins": rows, "mean_confidence": float(conf.mean())}


def _band_rows(values: np.ndarray, correct: np.ndarray, edges: tuple[float, ...], unit: str) -> list[dict]:
    rows = []
    bounds = [-np.inf, *edges, np.inf]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mask = (values >= lo) & (values < hi)
        name = (f"< {hi:g}" if lo == -np.inf else f">= {lo:g}" if hi == np.inf else f"{lo:g}-{hi:g}") + f" {unit}"
        rows.append({"slice": name, "count": int(mask.sum()),
                     "accuracy": float(correct[mask].mean()) if mask.any() else None})
    return rows


def slices(images: np.ndarray, probs: np.ndarray, labels: np.ndarray, cfg=settings.EVALUATE) -> dict:
    correct = probs.argmax(axis=1) == labels
    flat = images.reshape(len(images), -1).astype(np.float32)
    brightness, contrast = flat.mean(axis=1), flat.std(axis=1)
    names = settings.CLASS_NAMES
    per_class = [{"slice": names[c] if c < len(names) else str(c), "count": int((labels == c).sum()),
                  "accuracy": float(correct[labels == c].mean()) if (labels == c).any() else None}
                 for c in range(probs.shape[1])]
    return {"class": per_class,
            "brightness": _band_rows(brightness, correct, cfg.brightness_bands, "mean grey level"),
            "contrast": _band_rows(contrast, correct, cfg.contrast_bands, "std grey levels")}


def worst_confusions(probs: np.ndarray, labels: np.ndarray, top: int = 6, examples: int = 8) -> list[dict]:
    pred = probs.argmax(axis=1)
    k = probs.shape[1]
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    np.fill_diagonal(confusion, 0)
    out = []
    for flat in np.argsort(confusion, axis=None)[::-1][:top]:
        true, predicted = divmod(int(flat), k)
        if confusion[true, predicted] == 0:
            break
        rows = np.flatnonzero((labels == true) & (pred == predicted))
        rows = rows[np.argsort(-probs[rows, predicted])][:examples]
        out.append({"true": true, "predicted": predicted, "count": int(confusion[true, predicted]),
                    "share_of_class": float(confusion[true, predicted] / max((labels == true).sum(), 1)),
                    "rows": rows.tolist(), "confidences": [float(probs[r, predicted]) for r in rows]})
    return out


def analyse(images: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> dict:
    """Calibration + slices + worst confusions of one model on one split."""
    return {"calibration": calibration(probs, labels), "slices": slices(images, probs, labels),
            "worst_confusions": worst_confusions(probs, labels)}
