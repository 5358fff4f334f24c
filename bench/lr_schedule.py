"""The learning-rate schedule as a lever: one configuration trained at several peak rates and floors.

    .venv/bin/python bench/lr_schedule.py --dataset DIR [--hparams-json FILE] [--runs 0.001:1,0.001:0,0.003:0]

Each run is `LEARNING_RATE:MIN_LR_FRACTION` (min_lr_fraction 1 keeps the rate constant, 0 decays
it to 0 over the run, imgclf.model.network) on top of the given hyperparameters (the untuned
HyperParams(), then --hparams-json, then the trainer's --flags, read as imgclf-train reads them;
--runs sets the learning rate and its floor), trained by the trainer's own `fit` on the dataset's
train split with the same seed, then scored on the eval and test splits. Prints one JSON line per run: the val accuracy
after each epoch, the test accuracy and the seconds. README "Training: the learning-rate schedule"
quotes it for the default rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgclf.steps.train import add_hyperparameter_flags  # noqa: E402 (no TensorFlow import until fit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="an imgclf dataset directory (train, eval and test splits)")
    parser.add_argument("--hparams-json", help="hyperparameters to start from (default: HyperParams())")
    add_hyperparameter_flags(parser)  # the trainer's own flags, over --hparams-json; --runs sets the two rates
    parser.add_argument("--runs", default="0.001:1,0.001:0,0.003:1,0.003:0",
                        help="comma-separated LEARNING_RATE:MIN_LR_FRACTION pairs")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    from imgclf.data import datasets
    from imgclf.errors import UserError
    from imgclf.model import input_pipeline
    from imgclf.steps.train import fit, hyperparams_from_args

    if args.learning_rate is not None or args.min_lr_fraction is not None:
        raise SystemExit("--learning-rate and --min-lr-fraction: give them in --runs (LEARNING_RATE:MIN_LR_FRACTION)")
    try:
        base = hyperparams_from_args(args)
    except UserError as exc:
        raise SystemExit(str(exc)) from None
    try:
        runs = [tuple(float(v) for v in run.split(":")) for run in args.runs.split(",")]
        if any(len(r) != 2 for r in runs):
            raise ValueError
    except ValueError:
        raise SystemExit(f"--runs {args.runs!r}: expected LEARNING_RATE:MIN_LR_FRACTION pairs, comma-separated")
    train_xy, eval_xy, test_xy = (datasets.load_split(args.dataset, s) for s in ("train", "eval", "test"))
    for learning_rate, floor in runs:
        hp = dataclasses.replace(base, learning_rate=learning_rate, min_lr_fraction=floor)
        start = time.perf_counter()
        model, history = fit(hp, train_xy, eval_xy, args.seed, metrics_format="none")
        _, test_accuracy = model.evaluate(input_pipeline.eval_batches(*test_xy), verbose=0)
        print(json.dumps({"learning_rate": learning_rate, "min_lr_fraction": floor,
                          "val_accuracy": [round(v, 4) for v in history["val_accuracy"]],
                          "test_accuracy": round(float(test_accuracy), 4),
                          "seconds": round(time.perf_counter() - start, 1), "batch_size": hp.batch_size,
                          "epochs": hp.epochs, "train_examples": int(len(train_xy[1]))}), flush=True)


if __name__ == "__main__":
    main()
