"""Training precision: float32 against mixed_bfloat16, same seeds, same configurations, in one process.

    .venv/bin/python bench/precision.py --dataset DIR [--seeds 1,2,3] [--tuned-seeds 1,2]
        [--output bench/results-precision.jsonl]

For each seed, the untuned default (batch 128) and the configuration the halving search picks in
`make bench` (batch 16; --tuned-seeds, none: skip it) train 3 epochs on the dataset's train split in
float32 and in mixed_bfloat16, in turns. Each run records training seconds (validation passes apart),
final val accuracy, and the test accuracy of the float32 model the trainer would save
(imgclf.model.network.float32_twin). Appends one JSON line per run to --output, then prints a summary
line per configuration: mean val / test accuracy of each precision and the bf16 speed-up.
What `auto` picks here is in each line (bf16_hardware).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# The halving search's pick in every `make bench` run so far (bench/results*.json, tune section).
TUNED = {"conv1_filters": 32, "conv2_filters": 96, "kernel_size": 3, "dense_units": 64, "dropout": 0.1,
         "learning_rate": 0.00186, "batch_size": 16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--seeds", default="1,2,3", help="seeds for the untuned default")
    parser.add_argument("--tuned-seeds", default="1,2", help="seeds for the tuned configuration ('none': skip)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results-precision.jsonl"))
    args = parser.parse_args()

    from imgclf.data import datasets
    from imgclf.model import input_pipeline
    from imgclf.model.hyperparams import HyperParams
    from imgclf.model.network import float32_twin
    from imgclf.model.precision import bf16_hardware
    from imgclf.steps.train import fit

    train_xy, eval_xy = datasets.load_split(args.dataset, "train"), datasets.load_split(args.dataset, "eval")
    test_xy = datasets.load_split(args.dataset, "test")
    configs = [("default", HyperParams(epochs=args.epochs), [int(s) for s in args.seeds.split(",")])]
    if args.tuned_seeds != "none":
        tuned_seeds = [int(s) for s in args.tuned_seeds.split(",")]
        configs.append(("tuned", HyperParams(epochs=args.epochs, **TUNED), tuned_seeds))
    rows = []
    with open(args.output, "a") as out:
        for name, hp, seeds in configs:
            for i, seed in enumerate(seeds):
                order = ("float32", "mixed_bfloat16") if i % 2 == 0 else ("mixed_bfloat16", "float32")
                for choice in order:
                    start = time.perf_counter()
                    model, history = fit(hp, train_xy, eval_xy, seed, metrics_format="none", precision=choice)
                    fit_seconds = time.perf_counter() - start
                    saved = float32_twin(model, hp)
                    test = saved.evaluate(input_pipeline.eval_batches(*test_xy), verbose=0, return_dict=True)
                    row = {"config": name, "precision": choice, "seed": seed, "epochs": hp.epochs,
                           "batch_size": hp.batch_size, "train_examples": int(len(train_xy[1])),
                           "fit_seconds": round(fit_seconds, 1),
                           "train_seconds": round(sum(history["train_seconds"]), 2),
                           "val_accuracy": round(history["val_accuracy"][-1], 4),
                           "test_accuracy_saved_float32": round(float(test["accuracy"]), 4),
                           "bf16_hardware": bf16_hardware()}
                    rows.append(row)
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    print(json.dumps(row), file=sys.stderr, flush=True)
    for name, _, _ in configs:
        mine = [r for r in rows if r["config"] == name]

        def mean(choice, key):
            return round(statistics.mean(r[key] for r in mine if r["precision"] == choice), 4)

        print(json.dumps({"config": name, "runs_per_precision": len(mine) // 2,
                          "val_float32": mean("float32", "val_accuracy"),
                          "val_bf16": mean("mixed_bfloat16", "val_accuracy"),
                          "test_float32": mean("float32", "test_accuracy_saved_float32"),
                          "test_bf16": mean("mixed_bfloat16", "test_accuracy_saved_float32"),
                          "train_speedup_bf16": round(mean("float32", "train_seconds")
                                                      / mean("mixed_bfloat16", "train_seconds"), 2)}))


if __name__ == "__main__":
    main()
