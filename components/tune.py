"""KFP component: KerasTuner search over the one search space (imgclf.steps.tune)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def tune_op(dataset: Input[Dataset], algorithm: str, max_trials: int, epochs: int, seed: int, state_dir: str,
            precision: str,
            hyperparameters: Output[Artifact], metrics: Output[Metrics], report: Output[Markdown]) -> str:
    """Write <hyperparameters>/best_hyperparameters.json, metrics and a trials table; return the best as JSON.

    The JSON string is what train_op consumes (through dsl.OneOf: kfp's local runner
    resolves OneOf over parameters, not over artifacts).

    algorithm '' / max_trials 0 / epochs 0 take the search space's values. state_dir '' keeps the tuner
    state in the pod; a path on a volume (e.g. a PVC) makes a retried or re-run step resume the search.
    precision: auto | float32 | mixed_bfloat16 (imgclf.model.precision).
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("tune")  # a UserError ends the task in one line, no traceback

    import json
    import os
    import shutil
    import tempfile

    from imgclf.steps.tune import tune

    work = state_dir or tempfile.mkdtemp(prefix="tune-")
    result = tune(dataset.path, work, algorithm=algorithm or None, max_trials=max_trials or None,
                  epochs=epochs or None, seed=seed, precision=precision)
    os.makedirs(hyperparameters.path, exist_ok=True)
    shutil.copyfile(os.path.join(work, "best_hyperparameters.json"),
                    os.path.join(hyperparameters.path, "best_hyperparameters.json"))
    shutil.copyfile(os.path.join(work, "trials.md"), report.path)
    hyperparameters.metadata.update({**result["best_hyperparameters"], "source": f"keras-tuner {result['algorithm']}"})
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, value)
    return json.dumps(result["best_hyperparameters"], sort_keys=True)
