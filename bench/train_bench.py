"""Training input-path benchmark: samples/s of one epoch of the seed CNN, three ways, in one run.

    .venv/bin/python bench/train_bench.py [--dataset DIR] [--examples 24000]

1. model.fit on in-memory numpy arrays (Keras adapts them batch by batch)
2. model.fit on a tf.data pipeline built once from the arrays (shuffle, batch, prefetch)
3. the same as 2 with XLA (jit_compile=True)
Prints each rate and its ratio to (1). The first epoch of each is a warm-up (tracing) and is not timed.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="runs/tune/dataset", help="an imgclf dataset directory")
    parser.add_argument("--examples", type=int, default=24000)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from imgclf.data import datasets
    from imgclf.model.hyperparams import HyperParams
    from imgclf.model.network import build_model

    x, y = datasets.load_split(args.dataset, "train")
    x, y = x[: args.examples, :, :, None], y[: args.examples]
    hp = HyperParams(batch_size=args.batch_size)

    def timed(fit_input, jit: bool, **kw) -> float:
        keras.utils.set_random_seed(0)
        model = build_model(hp)
        if jit:
            model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=True)
        model.fit(*fit_input, epochs=1, verbose=0, **kw)  # warm-up: tracing and compilation
        start = time.perf_counter()
        model.fit(*fit_input, epochs=1, verbose=0, **kw)
        return len(y) / (time.perf_counter() - start)

    def pipeline():
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0, reshuffle_each_iteration=True)
        return (ds.batch(args.batch_size).prefetch(tf.data.AUTOTUNE),)

    rates = {
        "fit(numpy arrays)": timed((x, y), False, batch_size=args.batch_size, shuffle=True),
        "fit(tf.data, prefetch)": timed(pipeline(), False, shuffle=False),
        "fit(tf.data, prefetch, XLA)": timed(pipeline(), True, shuffle=False),
    }
    base = rates["fit(numpy arrays)"]
    print(f"{len(y)} examples, batch {args.batch_size}, {os.cpu_count()} CPUs")
    for name, rate in rates.items():
        print(f"{name:30s} {rate:9.0f} samples/s   {rate / base:4.2f}x")


if __name__ == "__main__":
    main()
