"""Ingest: read MNIST-format IDX files (local, gs:// or s3://) and write a split Dataset.

The source directory holds train-{images,labels} and t10k-{images,labels}
IDX files (gzipped or raw). The training file is split into train/eval by a
seeded permutation; t10k becomes the test split. Output: the imgclf-npz-v1
directory described in imgclf.data.datasets.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np

from imgclf import settings
from imgclf.data import datasets, idx, storage
from imgclf.errors import UserError, run_cli


def split_train_eval(images: np.ndarray, labels: np.ndarray, eval_fraction: float, seed: int):
    """Deterministic shuffle-and-split: same seed and input give the same split on any machine."""
    if not 0.0 < eval_fraction < 1.0:
        raise UserError(f"eval_fraction={eval_fraction}: must be strictly between 0 and 1")
    order = np.random.default_rng(seed).permutation(len(labels))
    n_eval = int(round(len(labels) * eval_fraction))
    if n_eval == 0 or n_eval == len(labels):
        raise UserError(f"eval_fraction={eval_fraction} on {len(labels)} examples leaves an empty split")
    eval_idx, train_idx = np.sort(order[:n_eval]), np.sort(order[n_eval:])
    return (images[train_idx], labels[train_idx]), (images[eval_idx], labels[eval_idx])


def ingest(data_uri: str, output_dir: str, eval_fraction: float = settings.INGEST.eval_fraction,
           seed: int = settings.INGEST.seed, max_train_examples: int = settings.INGEST.max_train_examples,
           max_test_examples: int = settings.INGEST.max_test_examples) -> dict:
    """Read IDX files from data_uri, split, and write the Dataset to output_dir. Returns its metadata.

    max_*_examples > 0 keeps a seeded random subset (for quick runs and tests).
    """
    for name, limit in (("max_train_examples", max_train_examples), ("max_test_examples", max_test_examples)):
        if limit < 0:
            raise UserError(f"{name}={limit}: must be >= 0 (0: all)")
    storage.check_new_output(output_dir)
    shape = (settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH)
    loaded = {name: idx.load_idx_pair(data_uri, prefix, shape) for name, prefix in settings.IDX_SOURCES.items()}
    for name, (_, labels) in loaded.items():
        bad = labels >= settings.NUM_CLASSES
        if bad.any():
            first = int(np.argmax(bad))
            raise UserError(f"{data_uri}: {name} label {int(labels[first])} at index {first} is out of range "
                            f"0..{settings.NUM_CLASSES - 1}")
    rng = np.random.default_rng(seed + 1)
    for name, limit in (("train", max_train_examples), ("test", max_test_examples)):
        images, labels = loaded[name]
        if 0 < limit < len(labels):
            keep = np.sort(rng.choice(len(labels), size=limit, replace=False))
            loaded[name] = (images[keep], labels[keep])
    train, eval_ = split_train_eval(*loaded["train"], eval_fraction=eval_fraction, seed=seed)
    source = {
        "uri": data_uri,
        "files_sha256": {name: hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
                         for name, (x, _) in loaded.items()},
    }
    return datasets.write_dataset(
        output_dir,
        {"train": train, "eval": eval_, "test": loaded["test"]},
        {"source": source, "seed": seed, "eval_fraction": eval_fraction,
         "max_train_examples": max_train_examples, "max_test_examples": max_test_examples},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--data-uri", default=settings.DEFAULT_DATA_URI,
                        help="directory (local path, gs:// or s3:// prefix) with MNIST-format IDX files")
    parser.add_argument("--output", required=True, help="dataset directory to create")
    parser.add_argument("--eval-fraction", type=float, default=settings.INGEST.eval_fraction)
    parser.add_argument("--seed", type=int, default=settings.INGEST.seed)
    parser.add_argument("--max-train-examples", type=int, default=0, help="keep a random subset (0: all)")
    parser.add_argument("--max-test-examples", type=int, default=0, help="keep a random subset (0: all)")
    args = parser.parse_args(argv)
    meta = ingest(args.data_uri, args.output, args.eval_fraction, args.seed,
                  args.max_train_examples, args.max_test_examples)
    counts = ", ".join(f"{k}={v['count']}" for k, v in meta["splits"].items())
    print(f"wrote dataset {args.output}: {counts}")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
