"""Tune: search the one search space (search_space.yaml) with KerasTuner; write the best hyperparameters.

Output directory:
    best_hyperparameters.json  a full HyperParams dict: `imgclf-train --hparams-json` reads it
    metrics.json               best objective value, trials run / total / failed, seconds
    trials.md                  every trial as a Markdown table (KFP's Markdown viewer)
    tuner/                     KerasTuner state; re-running on the same output resumes the search

`halving` (imgclf.steps.halving: successive halving, proxy trials on subsets) runs without
KerasTuner state: it takes about a quarter of a full search's time, so it does not resume.
Batch size is tuned by overriding `HyperModel.fit` (KerasTuner's documented way), not
`Tuner.run_trial`: the stock Bayesian, Random and Hyperband tuners keep their own
run_trial (checkpointing, Hyperband's epoch budget and weight hand-over) unchanged.
The train and eval splits are read once and the same in-memory arrays serve every trial.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

from imgclf import settings
from imgclf.data import datasets
from imgclf.model import input_pipeline, search_space
from imgclf.model.precision import add_flag as add_precision_flag
from imgclf.model.precision import resolve as resolve_precision
from imgclf.data.storage import atomic_write_text
from imgclf.errors import UserError, run_cli
from imgclf.model.search_space import SearchSpace

PROJECT_NAME = "tuner"  # KerasTuner's state lives in <output_dir>/tuner
FINGERPRINT_FILE = "imgclf-search.json"
SECONDS_FILE = "imgclf-trial-seconds.json"
VALIDATION_BATCH_SIZE = input_pipeline.EVAL_BATCH_SIZE  # no gradient step: big batches make it cheap


def _declare(hp, space: SearchSpace) -> dict:
    """Register the search space on a KerasTuner HyperParameters object; returns the values for this trial."""
    values = {}
    for p in space.parameters:
        if p.type == "choice":
            values[p.name] = hp.Choice(p.name, list(p.values))
        elif p.type == "int":
            values[p.name] = hp.Int(p.name, p.min, p.max, step=p.step or 1)
        elif p.step is not None:
            # The grid as an ordered Choice, the same points as Katib's discrete list. Not hp.Float(step=...):
            # it counts grid points with float floor division, so (0.6 - 0.1) // 0.1 == 4 drops max (0.6).
            values[p.name] = hp.Choice(p.name, list(p.grid()), ordered=True)
        else:
            values[p.name] = hp.Float(p.name, p.min, p.max, sampling="log" if p.scale == "log" else "linear")
    return values


def _hypermodel(space: SearchSpace, epochs: int, seed: int, train_examples: int, precision: str):
    import keras
    import keras_tuner as kt

    from imgclf.model.network import build_model, learning_schedule_steps

    class CnnHyperModel(kt.HyperModel):
        def build(self, hp):
            keras.utils.set_random_seed(seed)  # same initial weights for a given architecture in every trial
            hparams = dataclasses.replace(space.to_hyperparams(_declare(hp, space)), epochs=epochs)
            # The trainer's learning-rate schedule over a trial's epochs (Hyperband: its largest budget).
            return build_model(hparams, decay_steps=learning_schedule_steps(hparams, train_examples),
                               precision=precision)

        def fit(self, hp, model, x, y, validation_data, callbacks=None, **kwargs):
            hparams = space.to_hyperparams({p.name: hp.get(p.name) for p in space.parameters})
            stop = keras.callbacks.EarlyStopping(monitor=space.objective.metric, mode=space.objective.direction[:3],
                                                 patience=space.budget.early_stopping_patience)
            kwargs.setdefault("epochs", epochs)  # Hyperband passes its own epochs / initial_epoch
            kwargs["verbose"] = 0  # one line per trial comes from ProgressTuner
            return model.fit(input_pipeline.train_batches(x, y, hparams.batch_size, seed),
                             validation_data=input_pipeline.eval_batches(*validation_data, VALIDATION_BATCH_SIZE),
                             callbacks=[*(callbacks or []), stop], **{**kwargs, "shuffle": False})

    return CnnHyperModel()


def _make_tuner(space: SearchSpace, algorithm: str, max_trials: int, epochs: int, seed: int, output_dir: Path, log,
                train_examples: int, precision: str):
    import keras_tuner as kt

    base = {"bayesian": kt.BayesianOptimization, "random": kt.RandomSearch, "hyperband": kt.Hyperband}[algorithm]
    seconds_file = output_dir / PROJECT_NAME / SECONDS_FILE

    class ProgressTuner(base):
        """One line per finished trial instead of KerasTuner's multi-line display."""

        def on_trial_begin(self, trial):
            self._trial_start = time.perf_counter()
            super().on_trial_begin(trial)

        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            seconds = time.perf_counter() - self._trial_start
            done = _read_state(seconds_file, output_dir) or {}
            done[trial.trial_id] = round(seconds, 1)
            atomic_write_text(seconds_file, json.dumps(done, indent=1))
            self.trials_run = getattr(self, "trials_run", 0) + 1
            t = self.oracle.get_trial(trial.trial_id)
            score = "n/a" if t.score is None else f"{t.score:.4f}"
            values = " ".join(f"{p.name}={_fmt(t.hyperparameters.values.get(p.name))}" for p in space.parameters)
            total = "" if algorithm == "hyperband" else f"/{max_trials}"
            log(f"trial {len(self.oracle.trials)}{total} {t.status.lower()}: "
                f"{space.objective.metric}={score} {values} ({seconds:.1f} s)")

    common = dict(objective=kt.Objective(space.objective.metric, direction=space.objective.direction[:3]),
                  seed=seed, directory=str(output_dir), project_name=PROJECT_NAME, overwrite=False,
                  max_consecutive_failed_trials=max(1, space.budget.max_failed_trials))
    hypermodel = _hypermodel(space, epochs, seed, train_examples, precision)
    if algorithm == "hyperband":
        return ProgressTuner(hypermodel, max_epochs=epochs, factor=3, **common)
    if algorithm == "bayesian":
        common["num_initial_points"] = space.budget.initial_random_trials
    tuner = ProgressTuner(hypermodel, max_trials=max_trials, **common)
    _start_from_baseline(tuner.oracle, space)
    return tuner


def _start_from_baseline(oracle, space: SearchSpace) -> None:
    """Make trial 1 the untuned defaults (HyperParams()) when they lie in the space.

    The search then reports the baseline beside its proposals, and its best can only match or beat it
    on the eval split. Hyperband is left alone: its brackets choose their own first trials.
    """
    from imgclf.model.hyperparams import HyperParams

    baseline = {p.name: getattr(HyperParams(), p.name) for p in space.parameters}
    if not all(p.contains(baseline[p.name]) for p in space.parameters):
        return
    populate = oracle.populate_space

    def populate_space(trial_id):
        if not oracle.trials:
            return {"status": "RUNNING", "values": dict(baseline)}
        return populate(trial_id)

    oracle.populate_space = populate_space


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _read_state(path: Path, output_dir: Path) -> dict | None:
    """A search-state JSON object (ours or KerasTuner's), None when absent; UserError when unreadable."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        problem = " ".join(str(exc).split()) or type(exc).__name__
    else:
        if isinstance(state, dict):
            return state
        problem = f"expected a JSON object, got {type(state).__name__}"
    raise UserError(f"{path}: corrupt search state ({problem}), so the search cannot resume; "
                    f"remove {output_dir / PROJECT_NAME} to start it over, or choose a new output directory")


def _check_state(output_dir: Path) -> None:
    """Read every state file KerasTuner reloads on resume, so a truncated one is one line naming it, not a traceback."""
    project = output_dir / PROJECT_NAME
    for path in (project / "oracle.json", project / SECONDS_FILE, *sorted(project.glob("trial_*/trial.json"))):
        _read_state(path, output_dir)


def _check_resumable(output_dir: Path, fingerprint: dict) -> None:
    """Refuse to resume a search run with another space, algorithm, epochs or seed (KerasTuner would mix them)."""
    path = output_dir / PROJECT_NAME / FINGERPRINT_FILE
    previous = _read_state(path, output_dir)
    if previous is not None:
        if previous != fingerprint:
            changed = sorted(k for k in fingerprint if previous.get(k) != fingerprint[k])
            raise UserError(f"{output_dir}: holds a search with a different {', '.join(changed)}; "
                            f"use a new output directory to start over")
    _check_state(output_dir)
    atomic_write_text(path, json.dumps(fingerprint, indent=2, sort_keys=True))


def tune(dataset_dir: str, output_dir: str, space: SearchSpace | str | None = None, algorithm: str | None = None,
         max_trials: int | None = None, epochs: int | None = None, seed: int = settings.SEED,
         log=print, precision: str = settings.DEFAULT_PRECISION) -> dict:
    """Search `space` (default: the packaged search_space.yaml) on dataset_dir; write results into output_dir.

    algorithm, max_trials and epochs override the space's own (`bayesian|random|hyperband`; Hyperband sets its
    own trial count from epochs). Re-running on the same output_dir resumes: finished trials are kept and only
    the missing ones run (a trial cut off mid-way runs again). Returns the metrics dict (also in metrics.json)
    with `best_hyperparameters` added. precision: auto | float32 | mixed_bfloat16, as imgclf-train's.
    """
    from imgclf.steps.tuning_report import trials_markdown

    space = space if isinstance(space, SearchSpace) else search_space.load(space)
    algorithm = algorithm or space.algorithm
    if algorithm not in search_space.ALGORITHMS:
        raise UserError(f"algorithm {algorithm!r}: not one of {', '.join(search_space.ALGORITHMS)}")
    max_trials = max_trials or space.budget.max_trials
    epochs = epochs or space.budget.epochs_per_trial
    if max_trials < 1 or epochs < 1:
        raise UserError(f"max_trials={max_trials}, epochs={epochs}: both must be >= 1")
    precision = resolve_precision(precision)
    out = Path(output_dir)
    meta = datasets.read_metadata(dataset_dir)
    if algorithm == "halving":
        return _tune_halving(space, dataset_dir, out, max_trials, epochs, seed, log, precision)
    fingerprint = {"space": hashlib.sha256(repr(space.parameters).encode()).hexdigest()[:16],
                   "objective": space.objective.metric, "algorithm": algorithm,
                   "epochs": epochs, "seed": seed, "dataset": meta["splits"]["train"]["sha256"][:16],
                   "precision": precision}
    _check_resumable(out, fingerprint)

    # Read once; every trial reuses these arrays (uint8; the model rescales).
    x_train, y_train = datasets.load_split(dataset_dir, "train")
    x_eval, y_eval = datasets.load_split(dataset_dir, "eval")
    # The Gaussian process fit warns on every trial when a length scale hits its bound; noise here.
    warnings.filterwarnings("ignore", module="sklearn.gaussian_process")
    start = time.perf_counter()
    tuner = _make_tuner(space, algorithm, max_trials, epochs, seed, out, log, len(y_train), precision)
    tuner.search(x_train, y_train, validation_data=(x_eval, y_eval), verbose=0)
    seconds = time.perf_counter() - start

    trials = [tuner.oracle.trials[i] for i in sorted(tuner.oracle.trials)]
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
    if not completed:
        raise UserError(f"{out / PROJECT_NAME}: no trial completed; see trial_*/trial.json for the errors")
    best = tuner.oracle.get_best_trials(1)[0]
    hp = space.to_hyperparams({p.name: best.hyperparameters.values[p.name] for p in space.parameters})
    hp = dataclasses.replace(hp, epochs=epochs)
    atomic_write_text(out / "best_hyperparameters.json", json.dumps(hp.to_dict(), indent=2))
    metrics = {
        f"best_{space.objective.metric}": float(best.score),
        "best_trial": best.trial_id,
        "trials_run": getattr(tuner, "trials_run", 0),
        "trials_total": len(trials),
        "trials_failed": sum(t.status in ("FAILED", "INVALID") for t in trials),
        "seconds": round(seconds, 1),
        "algorithm": algorithm,
        "epochs_per_trial": epochs,
        "precision": precision,
        "train_examples": int(len(y_train)),
        "eval_examples": int(len(y_eval)),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    trial_seconds = _read_state(out / PROJECT_NAME / SECONDS_FILE, out) or {}
    atomic_write_text(out / "trials.md", trials_markdown(space, trials, best.trial_id, metrics, trial_seconds))
    return {**metrics, "best_hyperparameters": hp.to_dict()}


def _tune_halving(space: SearchSpace, dataset_dir: str, out: Path, max_trials: int, epochs: int, seed: int,
                  log, precision: str) -> dict:
    from imgclf.steps import halving

    train_xy = datasets.load_split(dataset_dir, "train")
    eval_xy = datasets.load_split(dataset_dir, "eval")
    out.mkdir(parents=True, exist_ok=True)
    result = halving.search(space, train_xy, eval_xy, max_trials, seed, log, precision=precision)
    hp = dataclasses.replace(space.to_hyperparams(result["best"]), epochs=epochs)
    atomic_write_text(out / "best_hyperparameters.json", json.dumps(hp.to_dict(), indent=2))
    metric = space.objective.metric
    metrics = {
        f"best_{metric}": result["best_score"],
        "best_trial": str(result["best_trial"]),
        "trials_run": len(result["trials"]),
        "trials_total": len(result["trials"]),
        "trials_failed": 0,
        "seconds": result["seconds"],
        "algorithm": "halving",
        "epochs_per_trial": epochs,
        "precision": precision,
        "train_examples": int(len(train_xy[1])),
        "eval_examples": int(len(eval_xy[1])),
    }
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "trials.md", halving.markdown(space, result, metrics))
    return {**metrics, "best_hyperparameters": hp.to_dict()}


def final_retrain(dataset_dir: str, hp_values: dict, seed: int,
                  precision: str = settings.DEFAULT_PRECISION) -> dict:
    """Train the best hyperparameters on the whole train split (what the train step does); val accuracy and seconds."""
    from imgclf.model.hyperparams import HyperParams
    from imgclf.steps.train import fit

    start = time.perf_counter()
    _, history = fit(HyperParams.from_dict(hp_values), datasets.load_split(dataset_dir, "train"),
                     datasets.load_split(dataset_dir, "eval"), seed, metrics_format="none",
                     precision=precision)
    return {"final_val_accuracy": history["val_accuracy"][-1],
            "final_retrain_seconds": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-tune", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--output", required=True, help="output directory (re-run on it to resume)")
    parser.add_argument("--space", help=f"search-space YAML (default: {search_space.DEFAULT_PATH.name} in the package)")
    parser.add_argument("--algorithm", choices=search_space.ALGORITHMS, help="default: the space's algorithm")
    parser.add_argument("--max-trials", type=int, help="default: the space's budget.max_trials")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the space's budget.epochs_per_trial)")
    parser.add_argument("--seed", type=int, default=settings.SEED)
    add_precision_flag(parser)
    parser.add_argument("--final-retrain", action="store_true",
                        help="then train the best hyperparameters on the whole train split for --epochs and add "
                             "final_val_accuracy / final_retrain_seconds to the output (make bench)")
    args = parser.parse_args(argv)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.final_retrain else \
        (lambda line: print(line, flush=True))
    result = tune(args.dataset, args.output, args.space, args.algorithm, args.max_trials, args.epochs, args.seed,
                  log=log, precision=args.precision)
    if args.final_retrain:
        result.update(final_retrain(args.dataset, result["best_hyperparameters"], args.seed, args.precision))
        print(json.dumps(result))  # one line: bench/bench.py reads it
    else:
        json.dump(result, sys.stdout, indent=2)
        print()
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
