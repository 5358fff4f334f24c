"""Train: fit the CNN on a Dataset's train split, validate on eval, export a SavedModel.

Output model directory:
    saved_model/          TF SavedModel with the serving signatures (imgclf.model.export)
    model.keras           the Keras model (TFLite conversion, fine-tuning)
    (both in float32 even after a mixed_bfloat16 run: --precision, imgclf.model.precision)
    hyperparameters.json  what was trained
    history.json          per-epoch loss/accuracy on train and eval

The CLI doubles as the Katib trial command: with --metrics-format katib the
Keras progress output is off and each epoch prints `name=value` lines that
Katib's StdOut metrics collector parses (e.g. `val_accuracy=0.8912`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from imgclf import settings
from imgclf.data import datasets, storage
from imgclf.model import input_pipeline
from imgclf.errors import UserError, run_cli
from imgclf.model.hyperparams import HyperParams
from imgclf.model import precision as precisions
from imgclf.model.network import build_model, float32_twin, learning_schedule_steps


def _epoch_printer(fmt: str):
    """A Keras callback printing one line per epoch: `name=value` lines (katib) or a summary."""
    import keras

    class EpochLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs, stream = logs or {}, sys.stdout
            if fmt == "katib":
                print(f"epoch={epoch + 1}", file=stream)
                for key in sorted(logs):
                    print(f"{key}={float(logs[key]):.6f}", file=stream)
            else:
                body = " ".join(f"{k}={float(v):.4f}" for k, v in sorted(logs.items()))
                print(f"epoch {epoch + 1}/{self.params.get('epochs')}: {body}", file=stream)
            stream.flush()

    return EpochLines()


# Training steps per call into the compiled function: fewer Python round trips per batch.
# bench/train_speed.py measures it against 1 (see README "Speed").
STEPS_PER_EXECUTION = 16


def epoch_timer():
    """A Keras callback timing each epoch: `train` seconds (validation passes excluded), `validation` seconds,
    and `train_cpu` (this process's CPU seconds in training: steadier than wall time on a busy machine)."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.train, self.validation, self.train_cpu = [], [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._in_validation = time.perf_counter(), 0.0
            self._cpu, self._cpu_in_validation = time.process_time(), 0.0

        def _sync(self):
            # JAX dispatches asynchronously: reading one weight waits for the steps queued so far.
            keras.ops.convert_to_numpy(self.model.trainable_weights[-1])

        def on_test_begin(self, logs=None):
            self._sync()
            self._validation_start, self._validation_cpu = time.perf_counter(), time.process_time()

        def on_test_end(self, logs=None):
            self._in_validation += time.perf_counter() - self._validation_start
            self._cpu_in_validation += time.process_time() - self._validation_cpu

        def on_epoch_end(self, epoch, logs=None):
            self._sync()
            self.train.append(time.perf_counter() - self._start - self._in_validation)
            self.validation.append(self._in_validation)
            self.train_cpu.append(time.process_time() - self._cpu - self._cpu_in_validation)

    return EpochTimer()


def fit(hp: HyperParams, train_xy, eval_xy, seed: int, tensorboard_dir: str | None = None,
        metrics_format: str = "progress", early_stopping_patience: int = 0, extra_callbacks=(),
        steps_per_execution: int = STEPS_PER_EXECUTION, train_input=input_pipeline.train_batches,
        precision: str = settings.DEFAULT_PRECISION):
    """Build and fit a model; returns (model, history dict). Data stays in memory as uint8.

    precision: auto | float32 | mixed_bfloat16 (imgclf.model.precision); the model returned computes in it.

    metrics_format: progress | katib | none (no per-epoch lines). The history carries per-epoch
    `train_seconds` and `validation_seconds` beside Keras' metrics.
    """
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model(hp, steps_per_execution=steps_per_execution,
                        decay_steps=learning_schedule_steps(hp, len(train_xy[1])), precision=precision)
    timer = epoch_timer()
    callbacks = [timer, *extra_callbacks]
    if metrics_format != "none":
        callbacks.append(_epoch_printer(metrics_format))
    if tensorboard_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=tensorboard_dir, histogram_freq=0))
    if early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=early_stopping_patience,
                                                       restore_best_weights=True))
    history = model.fit(
        train_input(*train_xy, batch_size=hp.batch_size, seed=seed),
        validation_data=input_pipeline.eval_batches(*eval_xy),
        epochs=hp.epochs, shuffle=False,  # the pipeline shuffles (seeded); Keras would only warn
        # Keras' own bar when a person watches; our one-line-per-epoch printer otherwise.
        verbose=1 if (metrics_format == "progress" and sys.stdout.isatty()) else 0,
        callbacks=callbacks,
    )
    record = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    record["train_seconds"] = [round(t, 3) for t in timer.train]
    record["validation_seconds"] = [round(t, 3) for t in timer.validation]
    record["train_cpu_seconds"] = [round(t, 3) for t in timer.train_cpu]
    return model, record


def train(dataset_dir: str, model_dir: str, hp: HyperParams = HyperParams(), seed: int = settings.SEED,
          tensorboard_dir: str | None = None, metrics_format: str = "progress",
          precision: str = settings.DEFAULT_PRECISION) -> dict:
    """Train on dataset_dir and write the model directory atomically. Returns a summary dict.

    The saved model is float32 whatever `precision` trained it (float32_twin)."""
    from imgclf.model.export import export_saved_model

    storage.check_new_output(model_dir)  # before spending the training time
    policy = precisions.resolve(precision)  # a bad value fails here, before any data is read
    meta = datasets.read_metadata(dataset_dir)
    train_xy = datasets.load_split(dataset_dir, "train")
    eval_xy = datasets.load_split(dataset_dir, "eval")
    start = time.perf_counter()
    model, history = fit(hp, train_xy, eval_xy, seed, tensorboard_dir, metrics_format, precision=policy)
    seconds = time.perf_counter() - start
    train_seconds = sum(history["train_seconds"])
    model = float32_twin(model, hp, STEPS_PER_EXECUTION, learning_schedule_steps(hp, len(train_xy[1])))

    with storage.atomic_directory(model_dir) as tmp:
        export_saved_model(model, tmp / "saved_model")
        model.save(tmp / "model.keras")
        (tmp / "hyperparameters.json").write_text(json.dumps({**hp.to_dict(), "seed": seed}, indent=2))
        (tmp / "history.json").write_text(json.dumps(history, indent=2))
    summary = {
        "train_examples": int(len(train_xy[1])),
        "eval_examples": int(len(eval_xy[1])),
        "precision": policy,  # what training computed in; the saved model is float32
        "dataset_train_sha256": meta["splits"]["train"]["sha256"],
        "fit_seconds": round(seconds, 2),  # training + validation + callbacks
        "train_seconds": round(train_seconds, 2),  # training steps only
        "validation_seconds": round(sum(history["validation_seconds"]), 2),
        "samples_per_second": round(len(train_xy[1]) * hp.epochs / max(train_seconds, 1e-9), 1),
        "final_val_accuracy": history["val_accuracy"][-1],
        "final_val_loss": history["val_loss"][-1],
        "best_val_accuracy": max(history["val_accuracy"]),
    }
    return summary


def add_hyperparameter_flags(parser: argparse.ArgumentParser) -> None:
    """One --flag per HyperParams field (names with dashes); the Katib trial parameters use the same names."""
    for f in fields(HyperParams):
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=float if f.type == "float" else int,
                            default=None, help=f"default {f.default}")


def hyperparams_from_args(args: argparse.Namespace) -> HyperParams:
    """Defaults, then --hparams-json (e.g. tuner output), then explicit flags."""
    values: dict = {}
    if getattr(args, "hparams_json", None):
        try:
            loaded = json.loads(Path(args.hparams_json).read_text())
        except FileNotFoundError:
            raise UserError(f"{args.hparams_json}: no such file") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{args.hparams_json}: invalid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"{args.hparams_json}: expected a JSON object of hyperparameters")
        values.update(loaded)
        values.pop("seed", None)
    values.update({f.name: getattr(args, f.name) for f in fields(HyperParams) if getattr(args, f.name) is not None})
    return HyperParams.from_dict(values, source=args.hparams_json or "flags")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-train", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--output", required=True, help="model directory to create")
    parser.add_argument("--hparams-json", help="JSON file of hyperparameters (flags override it)")
    add_hyperparameter_flags(parser)
    parser.add_argument("--seed", type=int, default=settings.SEED)
    parser.add_argument("--tensorboard-dir", help="write TensorBoard logs here")
    parser.add_argument("--metrics-format", choices=("progress", "katib"), default="progress",
                        help="katib: print only `name=value` metric lines (Katib StdOut collector)")
    precisions.add_flag(parser)
    args = parser.parse_args(argv)
    hp = hyperparams_from_args(args)
    summary = train(args.dataset, args.output, hp, args.seed, args.tensorboard_dir, args.metrics_format,
                    precision=args.precision)
    if args.metrics_format == "katib":
        print(f"val_accuracy={summary['best_val_accuracy']:.6f}")
    else:
        print(json.dumps(summary, indent=2))
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
