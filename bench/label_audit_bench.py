"""Label audit against injected flips: precision and recall of the confident cut, wall and CPU time.

    .venv/bin/python bench/label_audit_bench.py [--dataset DIR] [--flip-fraction 0.02] [--out runs/bench/audit]

Takes the train split of DIR (default: a fresh ingest of Fashion-MNIST, 48,000 train images), flips
--flip-fraction of its labels (half to a confusable class, half to a random other class), runs the
label audit on all of it, and prints precision and recall of the confident cut (and of the top-k
ranks) against the flipped set, with the audit's wall and CPU time (including the Keras and
TensorFlow import, also given apart) and the 1-minute load average before and after. --folds, --epochs, --hidden-units and --components override the audit's defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

def score(suspects: list[dict], flipped: set[int]) -> dict:
    cut = [s["index"] for s in suspects if s["in_cut"]]
    hits = len(set(cut) & flipped)
    out = {"cut": len(cut), "precision": hits / max(len(cut), 1), "recall": hits / max(len(flipped), 1)}
    for k in (500, 1000, 1500):
        top = {s["index"] for s in suspects[:k]}
        out[f"top{k}"] = (round(len(top & flipped) / max(len(top), 1), 3), round(len(top & flipped) / len(flipped), 3))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="an imgclf dataset (default: ingest Fashion-MNIST into --out)")
    parser.add_argument("--flip-fraction", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default="runs/bench/audit")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--folds", type=int)
    parser.add_argument("--hidden-units", type=int)
    parser.add_argument("--components", type=int)
    args = parser.parse_args()

    from imgclf import settings
    from imgclf.data import datasets
    from imgclf.steps.ingest import ingest
    from imgclf.steps.label_audit import inject_label_flips, label_audit

    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    source = args.dataset or str(out / "clean")
    if not args.dataset:
        ingest(settings.DEFAULT_DATA_URI, source)
    meta = datasets.read_metadata(source)
    splits = {s: datasets.load_split(source, s) for s in meta["splits"]}
    x, y = splits["train"]
    noisy, flipped = inject_label_flips(y, args.flip_fraction, args.seed)
    splits["train"] = (x, noisy)
    datasets.write_dataset(out / "noisy", splits, {"source": meta.get("source", {})})
    extra = {k: v for k, v in (("epochs", args.epochs), ("folds", args.folds), ("hidden_units", args.hidden_units),
                                           ("components", args.components))
             if v}
    load_before = os.getloadavg()[0]
    start, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    import keras  # noqa: F401  (timed on its own: every TensorFlow step pays it, whatever it computes)

    imported, cpu_imported = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    summary = label_audit(str(out / "noisy"), str(out / "audit"), max_examples=0, seed=settings.SEED,
                          log=print, **extra)
    wall, cpu1 = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    cpu_import = (cpu_imported.ru_utime - cpu0.ru_utime) + (cpu_imported.ru_stime - cpu0.ru_stime)
    suspects = json.loads((out / "audit" / "label_issues.json").read_text())["suspects"]
    result = {"train_examples": len(y), "flipped": len(flipped), "wall_seconds": round(wall, 1),
              "cpu_seconds": round(cpu, 1),
              "of_which_import_keras": {"wall": round(imported - start, 1), "cpu": round(cpu_import, 1)},
              "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # before, after
              "estimated_noise_rate": summary["estimated_noise_rate"], "suspects": summary["issues"],
              "oof_accuracy": summary["oof_accuracy"], "audit_seconds": summary["seconds"],
              **score(suspects, set(flipped.tolist()))}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
