"""Contract tests: katib_client against a local server speaking the Kubernetes custom-objects REST subset."""

from __future__ import annotations

import json

import pytest

from imgclf import settings
from imgclf.katib import client as katib_client, experiment as katib_experiment
from imgclf.model import search_space
from imgclf.errors import UserError
from imgclf.model.hyperparams import HyperParams
from tests.k8s_contract_server import ContractServer

NS = "kubeflow-user"
OPTS = katib_experiment.ExperimentOptions(max_trials=3, parallel_trials=1)


def _run(server, tmp_path, lines, **kwargs):
    api = katib_client.api_client(host=server.url)
    return katib_client.run_experiment(api, NS, str(tmp_path), dataset_path="/data/datasets/abc", opts=OPTS,
                                       poll_seconds=0, log=lines.append, sleep=lambda _: None, **kwargs)


def test_succeeded_experiment_yields_best_hyperparameters(tmp_path):
    lines: list[str] = []
    with ContractServer(outcome="succeed") as server:
        result = _run(server, tmp_path, lines)
        (namespace, name), created = next(iter(server.experiments.items()))
    assert namespace == NS and name.startswith("imgclf-tune-")
    assert server.requests[0] == ("POST", f"/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments")
    assert ("GET", f"/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments/{name}") in server.requests
    command = created["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--dataset=/data/datasets/abc" in command

    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    hp = HyperParams.from_dict(best)  # what train's --hparams-json does
    assert (hp.batch_size, hp.learning_rate, hp.conv1_filters, hp.dense_units) == (16, 0.0001, 16, 0)  # first of each
    assert result["best_val_accuracy"] == pytest.approx(0.9012)  # metricStrategy max
    assert result["trials_total"] == 3 and result["experiment"] == f"{NS}/{name}"
    assert json.loads((tmp_path / "metrics.json").read_text())["best_trial"].startswith(name)
    # one progress line per change, ending with Succeeded
    assert lines[0].startswith(f"katib: created experiment {NS}/{name}")
    assert "Succeeded: 3/3 trials (3 succeeded" in lines[-1] and "best val_accuracy=0.9012" in lines[-1]
    assert len(lines) == len(set(lines))


def test_failed_experiment_is_one_line_error(tmp_path):
    with ContractServer(outcome="fail") as server, pytest.raises(UserError) as info:
        _run(server, tmp_path, [])
    message = str(info.value)
    assert "failed: Experiment has failed because max failed count has reached" in message
    assert "\n" not in message and not (tmp_path / "best_hyperparameters.json").exists()


def test_missing_crds_is_one_line_error(tmp_path):
    with ContractServer(crds_installed=False) as server, pytest.raises(UserError) as info:
        _run(server, tmp_path, [])
    assert str(info.value).startswith("Katib is not installed: the API server does not serve kubeflow.org/v1beta1")
    assert "\n" not in str(info.value)
    # The hint names a real pipeline parameter and one of its values (the runners check both).
    name, value = katib_client.FALLBACK_TUNER
    assert value in settings.PARAMETER_CHOICES[name] and f"run the pipeline with {name}={value}" in str(info.value)


def test_missing_namespace_and_conflict(tmp_path):
    with ContractServer(known_namespaces=("other",)) as server, pytest.raises(UserError, match="namespace 'kubeflow-user' not found"):
        _run(server, tmp_path, [])
    named = katib_experiment.ExperimentOptions(name="fixed-name", max_trials=3, parallel_trials=1)
    with ContractServer() as server:
        api = katib_client.api_client(host=server.url)
        body = katib_experiment.build_experiment(search_space.load(), named)
        katib_client.create_experiment(api, NS, body)
        with pytest.raises(UserError, match=r"cannot create experiment kubeflow-user/fixed-name: HTTP 409 .*already exists"):
            katib_client.create_experiment(api, NS, body)
        with pytest.raises(UserError, match="cannot read experiment kubeflow-user/nope: HTTP 404"):
            katib_client.get_experiment(api, NS, "nope")


def test_timeout_says_the_experiment_keeps_running():
    clock = iter(range(0, 1000, 10))
    with ContractServer(outcome="succeed") as server:
        api = katib_client.api_client(host=server.url)
        body = katib_experiment.build_experiment(search_space.load(), katib_experiment.ExperimentOptions(
            name="slow", max_trials=10))
        katib_client.create_experiment(api, NS, body)
        with pytest.raises(UserError, match=r"kubeflow-user/slow still Running after 20 s; it keeps running"):
            katib_client.wait_for_experiment(api, NS, "slow", "val_accuracy", timeout_seconds=20, log=lambda _: None,
                                             sleep=lambda _: None, clock=lambda: next(clock))


def test_succeeded_without_metrics_is_an_error():
    exp = {"metadata": {"name": "e"}, "status": {"currentOptimalTrial": {
        "parameterAssignments": [{"name": "batch_size", "value": "64"}],
        "observation": {"metrics": [{"name": "val_accuracy", "latest": "unavailable", "max": "unavailable"}]}}}}
    with pytest.raises(UserError, match=r"without an optimal trial reporting val_accuracy"):
        katib_client.best_hyperparameters(exp, search_space.load())
