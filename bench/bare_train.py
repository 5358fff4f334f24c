"""The bare script `make bench` compares the pipeline with: the seed CNN, plain `model.fit` on numpy arrays.

    .venv/bin/python bench/bare_train.py [--train-examples 48000] [--epochs 3] [--batch-size 128]

What a person would write without the pipeline: read the Fashion-MNIST IDX
files, fit the classic CNN (the same layers and defaults as imgclf.model.network) on the
first --train-examples images with a 20% held-out validation split passed to
fit, evaluate on the test set. It imports nothing from imgclf on purpose.
Prints one JSON line: wall seconds (process start to end, imports included),
the seconds and samples/s of `fit` (validation included, as a bare script
pays it), and the test accuracy.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time

START = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train-examples", type=int, default=48000, help="images fitted on (the pipeline's train split)")
    parser.add_argument("--eval-examples", type=int, default=12000, help="validation images after them")
    parser.add_argument("--test-examples", type=int, default=0, help="first N test images (0: all)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import keras
    from keras import layers

    x = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    x_test = read_idx(os.path.join(args.data, "t10k-images-idx3-ubyte.gz"))
    y_test = read_idx(os.path.join(args.data, "t10k-labels-idx1-ubyte.gz"))
    if args.test_examples:
        x_test, y_test = x_test[: args.test_examples], y_test[: args.test_examples]
    n, m = args.train_examples, args.eval_examples
    x_train, y_train = x[:n, :, :, None], y[:n]
    x_val, y_val = x[n:n + m, :, :, None], y[n:n + m]

    keras.utils.set_random_seed(42)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(32, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    fit_start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
              validation_data=(x_val, y_val) if m else None)
    fit_seconds = time.perf_counter() - fit_start
    _, test_accuracy = model.evaluate(x_test[..., None], y_test, batch_size=1024, verbose=0)
    print(json.dumps({"wall_seconds": round(time.perf_counter() - START, 2), "fit_seconds": round(fit_seconds, 2),
                      "fit_samples_per_second": round(n * args.epochs / fit_seconds, 1),
                      "test_accuracy": round(float(test_accuracy), 4), "train_examples": n,
                      "epochs": args.epochs, "batch_size": args.batch_size}))


if __name__ == "__main__":
    main()
