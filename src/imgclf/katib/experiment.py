"""Generate Katib v1beta1 Experiments from the one search space; check them like Katib's admission webhook.

`make katib` (imgclf-katib) writes katib/experiment.yaml (CPU) and katib/experiment-gpu.yaml;
`imgclf-katib --check` fails when the committed files differ from what the generator makes.

Each trial is a batch/v1 Job running the trainer CLI in our image as a plain exec-form
command (no shell wrapper, so the StdOut metrics collector finds the process); the trainer
prints `name=value` lines (--metrics-format katib). Trials read the dataset from a
PersistentVolumeClaim mounted read-only at settings.KATIB_DATA_MOUNT: put an ingested dataset at
DEFAULT_DATASET_PATH (settings.KATIB_DATASET_DIR under the mount) once, with imgclf-ingest in a pod
that mounts the claim, or let the pipeline's katib_tune step copy its Dataset artifact there.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from imgclf import settings
from imgclf.model import search_space
from imgclf.errors import UserError, run_cli
from imgclf.katib.rules import KATIB_ALGORITHMS, validate_experiment
from imgclf.model.search_space import Parameter, SearchSpace
from imgclf.data.storage import atomic_write_text

API_VERSION = "kubeflow.org/v1beta1"
PRIMARY_CONTAINER = "training-container"
# The last four of Katib's algorithms need what a plain parameter search lacks
# (a resource parameter, a population, a NAS config), so the generator refuses them.
SUPPORTED_ALGORITHMS = KATIB_ALGORITHMS[:7]
# halving (successive halving on data subsets, imgclf.steps.halving) has no Katib form without a resource
# parameter: on a cluster the same space is searched by Bayesian optimisation, every trial at full budget.
FROM_SPACE_ALGORITHM = {"bayesian": "bayesianoptimization", "random": "random", "hyperband": "hyperband",
                        "halving": "bayesianoptimization"}
SEEDED_ALGORITHMS = ("bayesianoptimization", "random", "tpe", "multivariate-tpe", "cmaes")
# Katib's defaults for a batch/v1 Job trial, spelled out so the file says what "done" means.
JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILURE = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
DATA_VOLUME, DATA_MOUNT = "data", settings.KATIB_DATA_MOUNT
DEFAULT_DATA_PVC = settings.KATIB_DATA_PVC
DEFAULT_DATASET_PATH = f"{DATA_MOUNT}/{settings.KATIB_DATASET_DIR}"
SCRATCH_VOLUME, SCRATCH_MOUNT = "scratch", "/workspace"
ISTIO_INJECT = "sidecar.istio.io/inject"
TRIAL_UID = 1000  # the `imgclf` user of images/Dockerfile.*
STRATEGY = {"maximize": "max", "minimize": "min"}
OUTPUTS = {False: "experiment.yaml", True: "experiment-gpu.yaml"}


@dataclass(frozen=True)
class ExperimentOptions:
    """What varies between generated Experiments (the search space supplies the rest)."""

    name: str = "imgclf-tune"
    namespace: str | None = None  # None: kubectl apply -n <namespace> decides
    algorithm: str | None = None  # None: the space's algorithm, in Katib's spelling
    gpu: bool = False
    data_pvc: str = DEFAULT_DATA_PVC
    dataset_path: str = DEFAULT_DATASET_PATH
    seed: int = settings.SEED
    max_trials: int | None = None
    parallel_trials: int | None = None
    epochs: int | None = None  # None: the space's epochs_per_trial


def _feasible_space(p: Parameter) -> tuple[str, dict]:
    """Katib parameterType and feasibleSpace (all values strings) for one parameter."""
    if p.type == "choice":
        numeric = all(isinstance(v, (int, float)) for v in p.values)
        return ("discrete" if numeric else "categorical"), {"list": [str(v) for v in p.values]}
    if p.step is not None and not (p.type == "int" and p.step == 1):
        # Katib's skopt-based bayesianoptimization ignores a step, and samples every double log-uniformly
        # whatever its `distribution` (kubeflow/katib#2688): a discrete list keeps both tuners on one grid.
        return "discrete", {"list": [repr(v) if isinstance(v, float) else str(v) for v in p.grid()]}
    if p.type == "int":
        return "int", {"min": str(int(p.min)), "max": str(int(p.max))}
    space = {"min": repr(float(p.min)), "max": repr(float(p.max))}
    if p.scale == "log":
        space["distribution"] = "logUniform"  # what skopt does anyway; said so for the other algorithms
    return "double", space


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_experiment(space: SearchSpace, opts: ExperimentOptions = ExperimentOptions()) -> dict:
    """The Experiment as a plain dict (validated with `validate_experiment`)."""
    # Our tuner's names (bayesian, random, hyperband) are accepted too, so one `tune_algorithm` drives both tuners.
    algorithm = FROM_SPACE_ALGORITHM.get(opts.algorithm or space.algorithm, opts.algorithm)
    if algorithm not in KATIB_ALGORITHMS:
        raise UserError(f"Katib algorithm {algorithm!r}: unknown (known: {', '.join(KATIB_ALGORITHMS)})")
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise UserError(f"Katib algorithm {algorithm!r}: needs more than a parameter search space "
                        f"(resource parameter, population or NAS config); use one of {', '.join(SUPPORTED_ALGORITHMS)}")
    continuous = [p.name for p in space.parameters if p.type == "float" and p.step is None]
    if algorithm == "grid" and continuous:
        raise UserError(f"Katib algorithm 'grid': float parameter(s) {', '.join(continuous)} have no grid; "
                        f"give them a step or make them type choice")
    budget = space.budget
    settings_list = []
    if algorithm in SEEDED_ALGORITHMS:
        settings_list.append({"name": "random_state", "value": str(opts.seed)})
    if algorithm == "bayesianoptimization":
        settings_list.append({"name": "n_initial_points", "value": str(budget.initial_random_trials)})

    parameters, trial_parameters = [], []
    command = ["imgclf-train", f"--dataset={opts.dataset_path}", f"--output={SCRATCH_MOUNT}/model",
               "--metrics-format=katib", f"--epochs={opts.epochs or budget.epochs_per_trial}", f"--seed={opts.seed}"]
    for p in space.parameters:
        ptype, feasible = _feasible_space(p)
        parameters.append({"name": p.name, "parameterType": ptype, "feasibleSpace": feasible})
        trial_parameters.append({"name": p.name, "description": f"imgclf-train {_flag(p.name)}", "reference": p.name})
        command.append(f"{_flag(p.name)}=${{trialParameters.{p.name}}}")

    cluster = settings.CLUSTER
    resources = {"requests": {"cpu": cluster.cpu_request, "memory": cluster.memory_request},
                 "limits": {"cpu": cluster.train_cpu_limit, "memory": cluster.train_memory_limit}}
    # Our image runs as uid/gid 1000; fsGroup makes the data volume's files readable by that group on volume
    # types that honour it, and OnRootMismatch skips the recursive chown when the root already matches.
    pod_spec: dict = {"restartPolicy": "Never",
                      "securityContext": {"runAsUser": TRIAL_UID, "runAsGroup": TRIAL_UID, "runAsNonRoot": True,
                                          "fsGroup": TRIAL_UID, "fsGroupChangePolicy": "OnRootMismatch"}}
    if opts.gpu:
        gpu = settings.gpu_placement()
        resources["limits"][gpu.accelerator] = str(gpu.count)
        pod_spec["nodeSelector"] = gpu.node_selector
        pod_spec["tolerations"] = [gpu.toleration]
    pod_spec["containers"] = [{
        "name": PRIMARY_CONTAINER,
        "image": settings.GPU_IMAGE if opts.gpu else settings.CPU_IMAGE,
        "command": command,
        "env": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}],
        "resources": resources,
        "volumeMounts": [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT, "readOnly": True},
                         {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_MOUNT}],
    }]
    pod_spec["volumes"] = [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": opts.data_pvc,
                                                                          "readOnly": True}},
                           {"name": SCRATCH_VOLUME, "emptyDir": {}}]
    objective = space.objective
    metadata = {"name": opts.name + ("-gpu" if opts.gpu and opts.name == ExperimentOptions.name else "")}
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    max_trials = opts.max_trials or budget.max_trials
    experiment = {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "metadata": metadata,
        "spec": {
            "objective": {
                "type": objective.direction,
                "objectiveMetricName": objective.metric,
                "additionalMetricNames": list(objective.additional_metrics),
                "metricStrategies": [{"name": m, "value": STRATEGY[objective.direction] if m == objective.metric
                                      else ("min" if "loss" in m else "max")}
                                     for m in (objective.metric, *objective.additional_metrics)],
            },
            "algorithm": {"algorithmName": algorithm, "algorithmSettings": settings_list},
            "maxTrialCount": max_trials,
            "parallelTrialCount": opts.parallel_trials or min(budget.parallel_trials, max_trials),
            "maxFailedTrialCount": min(budget.max_failed_trials, max_trials),
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": parameters,
            "trialTemplate": {
                "primaryContainerName": PRIMARY_CONTAINER,
                "successCondition": JOB_SUCCESS,
                "failureCondition": JOB_FAILURE,
                "trialParameters": trial_parameters,
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "backoffLimit": 0,  # a failed trial is a result, not something to retry
                        "template": {
                            # Katib >= 0.19 and current Istio read the label; older Istio the annotation.
                            "metadata": {"labels": {ISTIO_INJECT: "false"}, "annotations": {ISTIO_INJECT: "false"}},
                            "spec": pod_spec,
                        },
                    },
                },
            },
        },
    }
    validate_experiment(experiment)
    return experiment


def render(exp: dict, gpu: bool) -> str:
    """YAML text with a header that says where it comes from and what a GPU trial costs."""
    import yaml

    spec = exp["spec"]
    header = [
        "# Generated by `make katib` (imgclf-katib) from the search space and imgclf.settings.",
        "# Do not edit: `make check-katib` (also run by make test) fails when this file is stale.",
        f"# Apply: kubectl apply -n <profile-namespace> -f katib/{OUTPUTS[gpu]}",
        "#   (the namespace needs label katib.kubeflow.org/metrics-collector-injection=enabled,",
        f"#   and PVC {DEFAULT_DATA_PVC!r} holding an ingested dataset at {DEFAULT_DATASET_PATH}; see README).",
    ]
    if gpu:
        header.append(f"# GPU quota: parallelTrialCount {spec['parallelTrialCount']} means up to "
                      f"{spec['parallelTrialCount']} x {settings.CLUSTER.gpu_count} {settings.CLUSTER.gpu_accelerator} "
                      "held at once; keep it within the namespace's GPU quota.")
    return "\n".join(header) + "\n" + yaml.safe_dump(exp, sort_keys=False, width=120)


def generate(out_dir: Path = settings.KATIB_DIR, space: SearchSpace | None = None,
             opts: ExperimentOptions = ExperimentOptions()) -> dict[Path, str]:
    """Path -> YAML text for the CPU and GPU Experiments (not written)."""
    space = space or search_space.load()
    files = {}
    for gpu in (False, True):
        exp = build_experiment(space, ExperimentOptions(**{**opts.__dict__, "gpu": gpu}))
        files[Path(out_dir) / OUTPUTS[gpu]] = render(exp, gpu)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-katib", description=__doc__.splitlines()[0])
    parser.add_argument("--space", help="search-space YAML (default: the packaged one)")
    parser.add_argument("--output-dir", help="default: katib/ of the source checkout")
    parser.add_argument("--algorithm", choices=SUPPORTED_ALGORITHMS, help="default: from the space (bayesian -> "
                        "bayesianoptimization)")
    parser.add_argument("--data-pvc", default=DEFAULT_DATA_PVC, help=f"PVC holding the dataset (mounted at {DATA_MOUNT})")
    parser.add_argument("--dataset-path", default=DEFAULT_DATASET_PATH, help="dataset directory inside the pod")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ (stale)")
    args = parser.parse_args(argv)
    opts = ExperimentOptions(algorithm=args.algorithm, data_pvc=args.data_pvc, dataset_path=args.dataset_path)
    out_dir = Path(args.output_dir) if args.output_dir else settings.require_checkout("imgclf-katib") / "katib"
    files = generate(out_dir, search_space.load(args.space) if args.space else None, opts)
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"stale: {p} (run `make katib` and commit)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        atomic_write_text(path, text)
        print(f"wrote {path}")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
