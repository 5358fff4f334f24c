"""The on-disk Dataset format shared by all steps ("imgclf-npz-v1").

A dataset is a directory:

    metadata.json   {"format": "imgclf-npz-v1", "image_shape": [28, 28],
                     "num_classes": 10, "class_names": [...],
                     "splits": {"train": {"count": N, "sha256": "..."}, ...},
                     "source": {...}, "seed": 42, "eval_fraction": 0.2}
    train.npz       arrays "images" (uint8, N x 28 x 28) and "labels" (uint8, N)
    eval.npz        same, the held-out split used for early stopping / tuning
    test.npz        same, the untouched test set used by evaluate

The sha256 of each split is over the raw image bytes followed by the raw label
bytes, so two datasets with equal hashes hold identical examples in the same order.
The directory is written next to its destination and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from imgclf import settings
from imgclf.data import storage
from imgclf.errors import UserError

METADATA_FILE = "metadata.json"


def split_hash(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def write_dataset(out_dir: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], metadata: dict) -> dict:
    """Write splits + metadata atomically into out_dir (which must not hold a dataset yet).

    Returns the full metadata written (with per-split counts and hashes added).
    """
    meta = {
        "format": settings.DATASET_FORMAT,
        "image_shape": [settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH],
        "num_classes": settings.NUM_CLASSES,
        "class_names": list(settings.CLASS_NAMES),
        **metadata,
        "splits": {},
    }
    with storage.atomic_directory(out_dir) as tmp:
        for name, (images, labels) in splits.items():
            np.savez(tmp / f"{name}.npz", images=images.astype(np.uint8), labels=labels.astype(np.uint8))
            meta["splits"][name] = {"count": int(len(labels)), "sha256": split_hash(images, labels)}
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    return meta


def read_metadata(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / METADATA_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing dataset metadata (is {dataset_dir} an ingested dataset?)") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc})") from None
    if meta.get("format") != settings.DATASET_FORMAT:
        raise UserError(f"{path}: field 'format' is {meta.get('format')!r}, expected {settings.DATASET_FORMAT!r}")
    return meta


def load_split(dataset_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one split as (images uint8 [N,H,W], labels uint8 [N])."""
    path = Path(dataset_dir) / f"{split}.npz"
    try:
        with np.load(path) as data:
            return data["images"], data["labels"]
    except FileNotFoundError:
        raise UserError(f"{path}: missing split '{split}'") from None
    except (KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path}: unreadable split '{split}' ({exc})") from None
