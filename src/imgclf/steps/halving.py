"""Successive halving over the search space: cheap proxy trials on subsets, the best promoted to full data.

The multi-fidelity search behind `imgclf-tune --algorithm halving` (the space's default for
KerasTuner). A budget of max_trials full trials buys CONFIGS_PER_TRIAL * max_trials configurations,
each rung 1 epoch continuing from the previous rung's weights:
  rung 1  every configuration trains on a seeded eighth of the train split, scored on a
          seeded half of the eval split;
  rung 2  the best quarter train on a seeded third of the train split, scored on the whole
          eval split;
  rung 3  the best FINALISTS (2) train on the whole train split, scored on the whole eval split.
The best of rung 3 is the answer; training it from scratch for the full `epochs` is the train
step's job (counted apart). Rung 3 is there because the proxy rungs see an eighth and a third of
the data: they favour what learns fastest (a high learning rate), not what ends best, and a last
epoch on all of it separates the finalists more the way a full run does. The rungs are one run
cut into pieces under the trainer's learning-rate schedule (cosine over all three rungs' steps),
so a finalist ends rung 3 at the low learning rate a full training ends at. Configuration 1 is
the untuned defaults (when they lie in the space), the others are drawn at random from the space
with the seed: random draws are what successive halving is built on, so rung 1 is kept cheap
to afford many of them, and a hopeless configuration stops after its first proxy epoch.
"""

from __future__ import annotations

import math
import time

import numpy as np

from imgclf import settings
from imgclf.model import input_pipeline
from imgclf.model.search_space import SearchSpace

CONFIGS_PER_TRIAL = 2  # configurations drawn per trial of the budget (rung 1 costs an eighth of an epoch each)
ETA = 4  # the best 1/ETA of rung 1 is promoted to rung 2
FINALISTS = 2  # the best of rung 2 promoted to rung 3 (the whole train split)
RUNGS = ((0.125, 0.5), (1 / 3, 1.0), (1.0, 1.0))  # (train fraction, eval fraction) of each rung, 1 epoch each


def sample_configurations(space: SearchSpace, count: int, seed: int) -> list[dict]:
    """count configurations: the defaults first (when in the space), then seeded random draws, no duplicates."""
    from imgclf.model.hyperparams import HyperParams

    rng = np.random.default_rng(seed)
    configs: list[dict] = []
    baseline = {p.name: getattr(HyperParams(), p.name) for p in space.parameters}
    if all(p.contains(baseline[p.name]) for p in space.parameters):
        configs.append(baseline)
    attempts = 0
    while len(configs) < count and attempts < 100 * count:
        attempts += 1
        values = {p.name: _draw(p, rng) for p in space.parameters}
        if values not in configs:
            configs.append(values)
    return configs


def _draw(p, rng):
    if p.type == "choice":
        return p.values[int(rng.integers(len(p.values)))]
    if p.step is not None:
        grid = p.grid()
        return grid[int(rng.integers(len(grid)))]
    if p.scale == "log":
        return float(math.exp(rng.uniform(math.log(p.min), math.log(p.max))))
    return float(rng.uniform(p.min, p.max))


def _subset(n: int, fraction: float, seed: int) -> np.ndarray:
    if fraction >= 1.0:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max(1, int(n * fraction)), replace=False))


def promoted(rung: int, alive: int) -> int:
    """How many of `alive` configurations that finished rung `rung` (0-based) go on to the next rung."""
    return math.ceil(alive / ETA) if rung == 0 else min(FINALISTS, alive)


def search(space: SearchSpace, train_xy, eval_xy, max_trials: int, seed: int, log=print,
           precision: str = settings.DEFAULT_PRECISION) -> dict:
    """Run the rungs over CONFIGS_PER_TRIAL * max_trials configurations; returns {"best": values, "best_score",
    "trials": [...], "seconds"}.

    Each trial row: {"trial", "values", "scores": [one per rung, None past the rung it stopped at], "seconds"}.
    """
    import keras

    from imgclf.model.network import build_model
    from imgclf.steps.train import STEPS_PER_EXECUTION

    metric = space.objective.metric
    sign = 1.0 if space.objective.direction == "maximize" else -1.0
    x, y = train_xy
    start = time.perf_counter()
    trials = [{"trial": i + 1, "values": v, "scores": [], "seconds": 0.0}
              for i, v in enumerate(sample_configurations(space, CONFIGS_PER_TRIAL * max_trials, seed))]
    models = {}
    alive = trials
    rung_rows = [_subset(len(y), train_fraction, seed + rung) for rung, (train_fraction, _) in enumerate(RUNGS)]
    for rung, (train_fraction, eval_fraction) in enumerate(RUNGS):
        rows = rung_rows[rung]
        eval_rows = _subset(len(eval_xy[1]), eval_fraction, seed + 100 + rung)
        validation = input_pipeline.eval_batches(eval_xy[0][eval_rows], eval_xy[1][eval_rows])
        for t in alive:
            t0 = time.perf_counter()
            hp = space.to_hyperparams(t["values"])
            if rung == 0:
                keras.utils.set_random_seed(seed)
                # The rungs are one run cut into pieces, under the trainer's schedule: the learning rate
                # decays over all of them, so a finalist ends the last rung where a full training ends.
                decay = sum(input_pipeline.steps_per_epoch(len(r), hp.batch_size) for r in rung_rows)
                models[t["trial"]] = build_model(hp, steps_per_execution=STEPS_PER_EXECUTION, decay_steps=decay,
                                                 precision=precision)
            model = models[t["trial"]]
            history = model.fit(input_pipeline.train_batches(x[rows], y[rows], hp.batch_size, seed + rung),
                                validation_data=validation, epochs=rung + 1, initial_epoch=rung,
                                shuffle=False, verbose=0)
            t["scores"].append(float(history.history[metric][-1]))
            t["seconds"] += time.perf_counter() - t0
            values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["values"].items())
            log(f"rung {rung + 1} trial {t['trial']}/{len(trials)}: {metric}={t['scores'][-1]:.4f} {values} "
                f"({time.perf_counter() - t0:.1f} s, {len(rows)} images)")
        if rung + 1 < len(RUNGS):
            keep = promoted(rung, len(alive))
            alive = sorted(alive, key=lambda t: -sign * t["scores"][-1])[:keep]
            for t in trials:
                if t not in alive:
                    models.pop(t["trial"], None)  # free the stopped configurations
    best = max(alive, key=lambda t: sign * t["scores"][-1])
    for t in trials:
        t["scores"] += [None] * (len(RUNGS) - len(t["scores"]))
    return {"best": best["values"], "best_trial": best["trial"], "best_score": best["scores"][-1],
            "trials": trials, "seconds": round(time.perf_counter() - start, 1)}


def markdown(space: SearchSpace, result: dict, metrics: dict) -> str:
    """The trials as a Markdown table (KFP's Markdown viewer): rung scores, seconds, values; best marked."""
    metric = space.objective.metric
    names = [p.name for p in space.parameters]
    rungs = "; ".join(f"rung {i + 1}: 1 epoch on {train:.0%} of the train split" for i, (train, _) in enumerate(RUNGS))
    lines = [f"# Hyperparameter search: successive halving ({len(RUNGS)} rungs: best 1/{ETA}, then best "
             f"{FINALISTS} promoted)", "",
             f"Best {metric}: **{result['best_score']:.4f}** (trial {result['best_trial']}); "
             f"{metrics['trials_total']} configurations in {metrics['seconds']:.0f} s. {rungs}.", "",
             "| trial | " + " | ".join(f"rung {i + 1} {metric}" for i in range(len(RUNGS))) + " | seconds | "
             + " | ".join(names) + " |",
             "|" + "---|" * (2 + len(RUNGS) + len(names))]

    def cell(v):
        return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))

    ordered = sorted(result["trials"], key=lambda t: [-(s if s is not None else -1) for s in reversed(t["scores"])])
    for t in ordered:
        mark = " (best)" if t["trial"] == result["best_trial"] else ""
        lines.append("| " + " | ".join([f"{t['trial']}{mark}", *(cell(s) for s in t["scores"]), cell(t["seconds"]),
                                         *(cell(t["values"][n]) for n in names)]) + " |")
    return "\n".join(lines) + "\n"
