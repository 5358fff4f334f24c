"""KFP component: run the generated Katib Experiment and return its best hyperparameters (imgclf.katib.client)."""

from kfp import dsl
from kfp.dsl import Artifact, Metrics, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def katib_tune_op(dataset_path: str, namespace: str, data_pvc: str, algorithm: str, max_trials: int,
                  parallel_trials: int, epochs: int, seed: int, gpu: bool, timeout_minutes: int,
                  hyperparameters: Output[Artifact], metrics: Output[Metrics]) -> str:
    """Create the Experiment (trials read dataset_path from PVC data_pvc), follow it, write best_hyperparameters.json.

    Holds no volume itself: katib_stage_op put the data on the claim and has finished. Its service account must
    be allowed to create experiments.kubeflow.org (Kubeflow's default-editor is). namespace '' means the pod's own
    (the only one whose PVC trials can mount; another is refused); algorithm '' and max_trials / parallel_trials /
    epochs 0 take the search space's values.
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("katib_tune")  # a UserError ends the task in one line, no traceback

    import json
    import os
    import shutil
    import tempfile

    from imgclf.katib import client as katib_client
    from imgclf.katib.experiment import ExperimentOptions

    namespace = katib_client.experiment_namespace(namespace, data_pvc)
    opts = ExperimentOptions(gpu=gpu, data_pvc=data_pvc, algorithm=algorithm or None, max_trials=max_trials or None,
                             parallel_trials=parallel_trials or None, epochs=epochs or None, seed=seed)
    work = tempfile.mkdtemp(prefix="katib-")
    result = katib_client.run_experiment(katib_client.api_client(), namespace, work, dataset_path=dataset_path,
                                         opts=opts, timeout_seconds=timeout_minutes * 60,
                                         log=lambda line: print(line, flush=True))
    os.makedirs(hyperparameters.path, exist_ok=True)
    shutil.copyfile(os.path.join(work, "best_hyperparameters.json"),
                    os.path.join(hyperparameters.path, "best_hyperparameters.json"))
    hyperparameters.metadata.update({**result["best_hyperparameters"], "source": f"katib {result['experiment']}"})
    for key, value in result.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, value)
    return json.dumps(result["best_hyperparameters"], sort_keys=True)
