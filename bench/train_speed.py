"""Trainer samples/s against a bare `model.fit` on numpy arrays, same model and batch size, interleaved in one process.

    .venv/bin/python bench/train_speed.py --dataset DIR [--examples 48000] [--epochs 3] [--rounds 2]
        [--variants ours,float32,shuffle-buffer,gather,spe1]

Each round fits the bare seed CNN (model.fit(x, y, batch_size), no validation) and
then each trainer variant (imgclf.steps.train.fit, validation on the eval split as
the train step does), order alternating between rounds so drift hits both. Training
samples/s comes from per-epoch timing callbacks: time in validation passes is
subtracted and reported on its own; the first epoch (tracing) is reported apart from
the steady state. Samples per CPU second (this process's user+system time) is reported
beside samples/s: on a machine shared with other work it moves less than wall time.
Prints one JSON object.
Variants: ours (the trainer as shipped: batches cut from the numpy arrays by a per-epoch
permutation, precision auto: mixed_bfloat16 on bf16 hardware), float32 (ours in float32, the bare
script's precision), shuffle-buffer (from_tensor_slices + a per-example shuffle buffer over the whole
split), gather (batches gathered by shuffled row index from one tensor), spe1
(steps_per_execution=1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def rates(train_seconds: list, validation_seconds: list, cpu_seconds: list, n: int) -> dict:
    steady = train_seconds[1:] or train_seconds
    steady_cpu = cpu_seconds[1:] or cpu_seconds
    return {"samples_per_second": round(n * len(steady) / sum(steady), 1),
            "samples_per_cpu_second": round(n * len(steady_cpu) / sum(steady_cpu), 1),
            "first_epoch_samples_per_second": round(n / train_seconds[0], 1),
            "validation_seconds_per_epoch": round(statistics.mean(validation_seconds), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--examples", type=int, default=48000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="ours")
    args = parser.parse_args()

    import keras

    from imgclf.data import datasets
    from imgclf.model import input_pipeline
    from imgclf.model.hyperparams import HyperParams
    from imgclf.model.network import build_model
    from imgclf.model.precision import bf16_hardware
    from imgclf.model.precision import resolve as resolve_precision
    from imgclf.steps import train as train_step

    x, y = datasets.load_split(args.dataset, "train")
    x, y = x[: args.examples], y[: args.examples]
    eval_xy = datasets.load_split(args.dataset, "eval")
    hp = HyperParams(batch_size=args.batch_size, epochs=args.epochs)
    n = len(y)

    def bare() -> dict:
        keras.utils.set_random_seed(0)
        # Compiled as a person would: steps_per_execution left at 1, float32 (Keras' default policy).
        model = build_model(hp, precision="float32")
        timer = train_step.epoch_timer()
        model.fit(x[..., None], y, batch_size=args.batch_size, epochs=args.epochs, verbose=0, callbacks=[timer])
        return rates(timer.train, timer.validation, timer.train_cpu, n)

    def ours(**fit_kwargs) -> dict:
        _, history = train_step.fit(hp, (x, y), eval_xy, seed=0, metrics_format="none", **fit_kwargs)
        return rates(history["train_seconds"], history["validation_seconds"], history["train_cpu_seconds"], n)

    variants = {"ours": lambda: ours(),
                "float32": lambda: ours(precision="float32"),
                "shuffle-buffer": lambda: ours(train_input=input_pipeline.shuffle_buffer_train_batches),
                "gather": lambda: ours(train_input=input_pipeline.gathered_train_batches),
                "spe1": lambda: ours(steps_per_execution=1)}
    chosen = {"bare": bare, **{v: variants[v] for v in args.variants.split(",")}}
    results: dict[str, list] = {name: [] for name in chosen}
    for r in range(args.rounds):
        order = list(chosen) if r % 2 == 0 else list(reversed(chosen))
        for name in order:
            results[name].append(chosen[name]())
            print(f"round {r + 1} {name}: {results[name][-1]}", file=sys.stderr, flush=True)

    def med(name, key):
        return statistics.median(row[key] for row in results[name])

    summary = {"examples": n, "epochs": args.epochs, "batch_size": args.batch_size, "rounds": args.rounds,
               "eval_examples": int(len(eval_xy[1])), "input_pipeline_eval_batch": input_pipeline.EVAL_BATCH_SIZE,
               "ours_precision": resolve_precision("auto"), "bf16_hardware": bf16_hardware()}
    for name in chosen:
        summary[name] = {k: med(name, k) for k in results[name][0]}
        summary[name]["ratio_to_bare"] = round(med(name, "samples_per_second") / med("bare", "samples_per_second"), 3)
        summary[name]["cpu_ratio_to_bare"] = round(med(name, "samples_per_cpu_second")
                                                   / med("bare", "samples_per_cpu_second"), 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
