"""Memory each training input path adds over the split it is given: resident set growth, one process per path.

    .venv/bin/python bench/input_memory.py [--rows 240000] [--paths ours,shuffle-buffer,gather]

For each path of imgclf.model.input_pipeline, a fresh interpreter makes a random uint8 split of
--rows 28x28 images (the numpy array a step loads), builds the path's dataset and iterates
one epoch of batch 128. It prints the split's own size and the resident memory added on top of
it (peak, read from /proc/self/status VmHWM) as a multiple of the split: 0 means the path holds
no copy of its own. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
PATHS = {"ours": "train_batches", "shuffle-buffer": "shuffle_buffer_train_batches", "gather": "gathered_train_batches"}


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(path: str, rows: int) -> dict:
    import numpy as np
    import tensorflow as tf  # noqa: F401 (imported before the baseline is read)

    from imgclf.model import input_pipeline

    images = np.random.default_rng(0).integers(0, 256, (rows, 28, 28), dtype=np.uint8)
    labels = np.zeros(rows, np.int64)
    before = peak_rss_bytes()
    for _ in getattr(input_pipeline, PATHS[path])(images, labels, batch_size=128, seed=0):
        pass
    split = images.nbytes + labels.nbytes
    added = max(peak_rss_bytes() - before, 0)
    return {"path": path, "split_mib": round(split / 2**20, 1), "added_mib": round(added / 2**20, 1),
            "added_copies": round(added / split, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=240000)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows)))
        return
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    results = []
    for path in args.paths.split(","):
        if path not in PATHS:
            raise SystemExit(f"--paths: unknown path {path!r} (known: {', '.join(PATHS)})")
        out = subprocess.run([sys.executable, __file__, "--child", path, "--rows", str(args.rows)], env=env,
                             capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{path:15s} split {results[-1]['split_mib']} MiB, added {results[-1]['added_mib']} MiB "
              f"({results[-1]['added_copies']} copies)", file=sys.stderr)
    print(json.dumps({"rows": args.rows, "paths": results}))


if __name__ == "__main__":
    main()
