"""KFP component: run the generated Katib Experiment and return its best hyperparameters (imgclf.katib_client)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def katib_tune_op(dataset: Input[Dataset], namespace: str, data_pvc: str, max_trials: int, parallel_trials: int,
                  gpu: bool, timeout_minutes: int, hyperparameters: Output[Artifact], metrics: Output[Metrics]) -> str:
    """Stage the dataset on the data PVC, create the Experiment, follow it, write best_hyperparameters.json.

    The task must mount PVC `data_pvc` at /data (kfp-kubernetes mount_pvc), and its service account must be
    allowed to create experiments.kubeflow.org (Kubeflow's default-editor is). namespace '' means the pod's
    own; max_trials / parallel_trials 0 take the search space's budget.
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("katib_tune")  # a UserError ends the task in one line, no traceback

    import json
    import os
    import shutil
    import tempfile

    from imgclf import katib_client
    from imgclf.katib_experiment import ExperimentOptions

    data_path = katib_client.stage_dataset(dataset.path)
    opts = ExperimentOptions(gpu=gpu, data_pvc=data_pvc, max_trials=max_trials or None,
                             parallel_trials=parallel_trials or None)
    work = tempfile.mkdtemp(prefix="katib-")
    result = katib_client.run_experiment(katib_client.api_client(), namespace or katib_client.current_namespace(),
                                         work, dataset_path=data_path, opts=opts,
                                         timeout_seconds=timeout_minutes * 60, log=lambda line: print(line, flush=True))
    os.makedirs(hyperparameters.path, exist_ok=True)
    shutil.copyfile(os.path.join(work, "best_hyperparameters.json"),
                    os.path.join(hyperparameters.path, "best_hyperparameters.json"))
    hyperparameters.metadata.update({**result["best_hyperparameters"], "source": f"katib {result['experiment']}"})
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, value)
    return json.dumps(result["best_hyperparameters"], sort_keys=True)
