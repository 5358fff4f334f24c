"""The seed-style tuning search `make bench` compares `imgclf-tune` with.

    .venv/bin/python bench/seed_search.py --dataset DIR --output DIR [--max-trials 10] [--epochs 3]

What the seed note does: KerasTuner BayesianOptimization with a custom
`Tuner.run_trial` so that batch size (16 or 32) is tuned, every trial fitting
for the full epoch budget on the whole train split (numpy arrays, validation on
the eval split each epoch). The other parameters span the same ranges as
src/imgclf/model/search_space.yaml. Prints one JSON line: wall seconds of the search
(from before the first trial to after the last), best val_accuracy, its
hyperparameters and the number of trials.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="an imgclf dataset directory (train and eval splits)")
    parser.add_argument("--output", required=True, help="KerasTuner's working directory (overwritten)")
    parser.add_argument("--max-trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-examples", type=int, default=0, help="first N train images (0: all)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    import keras
    import keras_tuner as kt
    import numpy as np
    from keras import layers

    def split(name):
        with np.load(os.path.join(args.dataset, f"{name}.npz")) as d:
            return d["images"][..., None], d["labels"]

    (x, y), (x_val, y_val) = split("train"), split("eval")
    if args.train_examples:
        x, y = x[: args.train_examples], y[: args.train_examples]

    def build(hp):
        model = keras.Sequential([
            keras.Input(shape=(28, 28, 1)),
            layers.Rescaling(1.0 / 255),
            layers.Conv2D(hp.Int("conv1_filters", 16, 32, step=16), 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Conv2D(hp.Int("conv2_filters", 32, 128, step=32), 3, activation="relu", padding="same"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(hp.Float("dropout", 0.1, 0.6, step=0.1)),
        ])
        units = hp.Choice("dense_units", [0, 64, 128])
        if units:
            model.add(layers.Dense(units, activation="relu"))
        model.add(layers.Dense(10, activation="softmax"))
        model.compile(optimizer=keras.optimizers.Adam(hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    class SeedTuner(kt.BayesianOptimization):
        def run_trial(self, trial, *fit_args, **fit_kwargs):
            hp = trial.hyperparameters
            model = self.hypermodel.build(hp)
            history = model.fit(x, y, batch_size=hp.Choice("batch_size", [16, 32]), epochs=args.epochs,
                                validation_data=(x_val, y_val), verbose=0)
            return {"val_accuracy": max(history.history["val_accuracy"])}

    tuner = SeedTuner(hypermodel=build, objective=kt.Objective("val_accuracy", "max"), max_trials=args.max_trials,
                      seed=args.seed, directory=args.output, project_name="seed", overwrite=True)
    start = time.perf_counter()
    tuner.search()
    seconds = time.perf_counter() - start
    best = tuner.oracle.get_best_trials(1)[0]
    print(json.dumps({"search_seconds": round(seconds, 1), "best_val_accuracy": round(float(best.score), 4),
                      "best_hyperparameters": best.hyperparameters.values, "trials": len(tuner.oracle.trials),
                      "epochs_per_trial": args.epochs, "train_examples": int(len(y))}))


if __name__ == "__main__":
    main()
