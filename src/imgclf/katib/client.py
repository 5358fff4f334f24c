"""Run a Katib Experiment from the one search space and return its best hyperparameters.

Plain functions over the Kubernetes custom-objects API (group kubeflow.org, version
v1beta1, plural experiments) through the official `kubernetes` client: create the
Experiment, follow it with one progress line per change until it Succeeded or
Failed, read status.currentOptimalTrial.parameterAssignments, and write the same
best_hyperparameters.json as the KerasTuner step. The KFP component
(components/katib_tune.py) is a thin wrapper around `run_experiment`.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from imgclf.katib import experiment as katib_experiment
from imgclf.model import search_space
from imgclf.errors import UserError
from imgclf.kube import api_client, current_namespace  # noqa: F401 (part of this module's API)
from imgclf.model.search_space import SearchSpace
from imgclf.data.storage import atomic_write_text

GROUP, VERSION, PLURAL = "kubeflow.org", "v1beta1", "experiments"
TERMINAL = ("Succeeded", "Failed")
# What to run instead when Katib is missing: the pipeline parameter `tuner` (settings.PARAMETER_CHOICES),
# which the local runner also takes as --tuner.
FALLBACK_TUNER = ("tuner", "keras-tuner")


def _api_error(exc, action: str, namespace: str, name: str = "") -> UserError:
    """One line for an ApiException: missing CRDs, missing namespace, conflict, forbidden, other."""
    target = f"experiment {namespace}/{name}" if name else f"experiments in namespace {namespace}"
    try:
        status = json.loads(exc.body or "")
    except (TypeError, ValueError):
        status = None  # the API server answers a group/version it does not serve with plain text
    if exc.status == 404 and not isinstance(status, dict):
        return UserError(f"Katib is not installed: the API server does not serve {GROUP}/{VERSION} "
                         f"{PLURAL} (install Katib's CRDs, or run the pipeline with {'='.join(FALLBACK_TUNER)})")
    message = status.get("message", exc.reason) if isinstance(status, dict) else exc.reason
    if exc.status == 404 and status.get("details", {}).get("kind") == "namespaces":
        return UserError(f"cannot {action} {target}: namespace {namespace!r} not found")
    return UserError(f"cannot {action} {target}: HTTP {exc.status} {message}")


def create_experiment(api, namespace: str, body: dict) -> dict:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        return client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except ApiException as exc:
        raise _api_error(exc, "create", namespace, body["metadata"]["name"]) from None


def get_experiment(api, namespace: str, name: str) -> dict:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as exc:
        raise _api_error(exc, "read", namespace, name) from None


def phase(experiment: dict) -> tuple[str, str]:
    """(condition type, message) of the latest true condition: Created, Running, Restarting, Succeeded, Failed."""
    conditions = [c for c in experiment.get("status", {}).get("conditions", []) if c.get("status") == "True"]
    for c in conditions:
        if c.get("type") in TERMINAL:
            return c["type"], c.get("message", c.get("reason", ""))
    if not conditions:
        return "Pending", ""
    return conditions[-1]["type"], conditions[-1].get("message", "")


def _best_metric(experiment: dict, metric: str) -> float | None:
    optimal = experiment.get("status", {}).get("currentOptimalTrial", {})
    for m in optimal.get("observation", {}).get("metrics", []) or []:
        if m.get("name") == metric:
            for key in ("max", "latest", "min"):
                try:
                    return float(m[key])
                except (KeyError, TypeError, ValueError):
                    continue  # Katib writes "unavailable" when a trial printed no value
    return None


def progress_line(experiment: dict, metric: str) -> str:
    s = experiment.get("status", {})
    best = _best_metric(experiment, metric)
    return (f"katib: {experiment['metadata']['name']} {phase(experiment)[0]}: {s.get('trials', 0)}/"
            f"{experiment['spec'].get('maxTrialCount', '?')} trials ({s.get('trialsSucceeded', 0)} succeeded, "
            f"{s.get('trialsRunning', 0)} running, {s.get('trialsFailed', 0)} failed)"
            + (f", best {metric}={best:.4f}" if best is not None else ""))


def wait_for_experiment(api, namespace: str, name: str, metric: str, poll_seconds: float = 15.0,
                        timeout_seconds: float = 6 * 3600, log=print, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Poll until the Experiment Succeeded (returned) or Failed (UserError); a line each time progress changes."""
    deadline = clock() + timeout_seconds
    last = None
    while True:
        experiment = get_experiment(api, namespace, name)
        line = progress_line(experiment, metric)
        if line != last:
            log(line)
            last = line
        state, message = phase(experiment)
        if state == "Succeeded":
            return experiment
        if state == "Failed":
            raise UserError(f"Katib experiment {namespace}/{name} failed: {message or 'no message'} "
                            f"(kubectl describe experiment -n {namespace} {name})")
        if clock() >= deadline:
            raise UserError(f"Katib experiment {namespace}/{name} still {state} after {timeout_seconds:.0f} s; "
                            f"it keeps running in the cluster (kubectl get experiment -n {namespace} {name})")
        sleep(poll_seconds)


def best_hyperparameters(experiment: dict, space: SearchSpace):
    """HyperParams from status.currentOptimalTrial.parameterAssignments (strings cast by the space's types)."""
    name = experiment["metadata"]["name"]
    optimal = experiment.get("status", {}).get("currentOptimalTrial", {})
    assignments = optimal.get("parameterAssignments") or []
    if not assignments or _best_metric(experiment, space.objective.metric) is None:
        raise UserError(f"Katib experiment {name} finished without an optimal trial reporting "
                        f"{space.objective.metric} (did the trials print `{space.objective.metric}=...` lines?)")
    values = {a["name"]: a["value"] for a in assignments}
    return space.to_hyperparams(values, source=f"experiment {name} currentOptimalTrial")


def run_experiment(api, namespace: str, output_dir: str, dataset_path: str = katib_experiment.DEFAULT_DATASET_PATH,
                   space: SearchSpace | None = None, opts: katib_experiment.ExperimentOptions | None = None,
                   poll_seconds: float = 15.0, timeout_seconds: float = 6 * 3600, log=print, sleep=time.sleep) -> dict:
    """Create an Experiment for `space` (trials read dataset_path from the data PVC), follow it, write results.

    Writes <output_dir>/best_hyperparameters.json (epochs = the per-trial budget) and metrics.json;
    returns the metrics with `best_hyperparameters` and `experiment` added.
    """
    import dataclasses

    space = space or search_space.load()
    opts = opts or katib_experiment.ExperimentOptions()
    name = opts.name if opts.name != katib_experiment.ExperimentOptions.name else f"imgclf-tune-{uuid.uuid4().hex[:8]}"
    opts = dataclasses.replace(opts, name=name, namespace=namespace, dataset_path=dataset_path)
    body = katib_experiment.build_experiment(space, opts)
    start = time.monotonic()
    create_experiment(api, namespace, body)
    log(f"katib: created experiment {namespace}/{name} ({body['spec']['algorithm']['algorithmName']}, "
        f"{body['spec']['maxTrialCount']} trials, {body['spec']['parallelTrialCount']} in parallel)")
    experiment = wait_for_experiment(api, namespace, name, space.objective.metric, poll_seconds, timeout_seconds,
                                     log, sleep)
    hp = dataclasses.replace(best_hyperparameters(experiment, space), epochs=opts.epochs or space.budget.epochs_per_trial)
    status = experiment.get("status", {})
    metrics = {
        f"best_{space.objective.metric}": _best_metric(experiment, space.objective.metric),
        "best_trial": status.get("currentOptimalTrial", {}).get("bestTrialName", ""),
        "trials_total": int(status.get("trials", 0)),
        "trials_succeeded": int(status.get("trialsSucceeded", 0)),
        "trials_failed": int(status.get("trialsFailed", 0)),
        "seconds": round(time.monotonic() - start, 1),
        "algorithm": body["spec"]["algorithm"]["algorithmName"],
    }
    out = Path(output_dir)
    atomic_write_text(out / "best_hyperparameters.json", json.dumps(hp.to_dict(), indent=2))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    return {**metrics, "experiment": f"{namespace}/{name}", "best_hyperparameters": hp.to_dict()}


def experiment_namespace(requested: str, data_pvc: str, own: str | None = None) -> str:
    """The namespace for the Experiment: the run's own, where the staging step wrote to PVC `data_pvc`.

    A PVC belongs to one namespace, and trials can only mount claims of their own namespace, so an
    Experiment elsewhere would read another volume (or none): refuse in one line.
    """
    own = own or current_namespace()
    if requested and requested != own:
        raise UserError(f"katib_namespace={requested!r}: trials could not mount PVC {data_pvc!r}, which the run "
                        f"staged in namespace {own!r}; leave katib_namespace empty or run the pipeline in {requested!r}")
    return own
