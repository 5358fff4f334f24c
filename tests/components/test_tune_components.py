"""The tune and katib_tune KFP components, called as plain functions with local artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp.dsl import Artifact, Dataset, Markdown, Metrics

from components.katib_stage import katib_stage_op
from components.katib_tune import katib_tune_op
from components.tune import tune_op
from imgclf import settings
from imgclf.katib import client as katib_client
from imgclf.model.hyperparams import HyperParams
from tests.k8s_contract_server import ContractServer


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from imgclf.steps.ingest import ingest

    out = tmp_path_factory.mktemp("components") / "dataset"
    ingest(settings.DEFAULT_DATA_URI, str(out), max_train_examples=600, max_test_examples=100)
    return str(out)


def _artifact(cls, path: Path):
    return cls(name=path.name, uri=str(path))


def test_tune_op_writes_what_train_op_reads(tiny_dataset, tmp_path):
    hparams, metrics, report = (_artifact(Artifact, tmp_path / "hp"), _artifact(Metrics, tmp_path / "m"),
                                _artifact(Markdown, tmp_path / "report.md"))
    tune_op.python_func(dataset=_artifact(Dataset, Path(tiny_dataset)), algorithm="random",
                        max_trials=1, epochs=1, seed=1, state_dir=str(tmp_path / "state"), precision="float32",
                        hyperparameters=hparams, metrics=metrics, report=report)
    values = json.loads((tmp_path / "hp" / "best_hyperparameters.json").read_text())
    HyperParams.from_dict(values)
    assert metrics.metadata["trials_total"] == 1 and 0 < metrics.metadata["best_val_accuracy"] <= 1
    assert "| trial | status |" in (tmp_path / "report.md").read_text()
    assert hparams.metadata["source"] == "keras-tuner random"


def test_katib_stage_then_tune_against_the_contract_server(tiny_dataset, tmp_path, monkeypatch):
    data_volume = tmp_path / "pvc"
    data_volume.mkdir()
    from imgclf.steps import katib_stage

    real_stage = katib_stage.stage_dataset
    monkeypatch.setattr(katib_stage, "stage_dataset", lambda d: real_stage(d, str(data_volume)))
    monkeypatch.setattr(katib_client, "current_namespace", lambda: "kubeflow-user")
    staged = katib_stage_op.python_func(dataset=_artifact(Dataset, Path(tiny_dataset)))
    assert staged.startswith(str(data_volume / "datasets")) and Path(staged, "metadata.json").is_file()
    with ContractServer() as server:
        real_api_client = katib_client.api_client
        monkeypatch.setattr(katib_client, "api_client", lambda: real_api_client(host=server.url))
        hparams, metrics = _artifact(Artifact, tmp_path / "hp"), _artifact(Metrics, tmp_path / "m")
        katib_tune_op.python_func(dataset_path=staged, namespace="", data_pvc="imgclf-data", algorithm="random",
                                  max_trials=2, parallel_trials=1, epochs=2, seed=7, gpu=False, timeout_minutes=1,
                                  hyperparameters=hparams, metrics=metrics)
        [(key, created)] = server.experiments.items()
    assert key[0] == "kubeflow-user"  # the run's own namespace: the one holding the PVC
    spec = created["spec"]
    command = spec["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert f"--dataset={staged}" in command and "--epochs=2" in command and "--seed=7" in command
    assert spec["algorithm"]["algorithmName"] == "random"
    best = HyperParams.from_dict(json.loads((tmp_path / "hp" / "best_hyperparameters.json").read_text()))
    assert best.epochs == 2
    assert metrics.metadata["trials_total"] == 2
    assert hparams.metadata["source"].startswith("katib kubeflow-user/imgclf-tune-")
    # staging again reuses the content-addressed copy
    assert real_stage(tiny_dataset, str(data_volume)) == staged


def test_katib_tune_op_refuses_a_namespace_without_the_staged_pvc(tmp_path, monkeypatch):
    from imgclf.errors import UserError

    monkeypatch.setattr(katib_client, "current_namespace", lambda: "team-a")
    with pytest.raises(UserError) as info:
        katib_tune_op.python_func(dataset_path="/data/datasets/x", namespace="team-b", data_pvc="imgclf-data",
                                  algorithm="", max_trials=0, parallel_trials=0, epochs=0, seed=1, gpu=False,
                                  timeout_minutes=1, hyperparameters=_artifact(Artifact, tmp_path / "hp"),
                                  metrics=_artifact(Metrics, tmp_path / "m"))
    assert str(info.value) == ("katib_namespace='team-b': trials could not mount PVC 'imgclf-data', which the run "
                               "staged in namespace 'team-a'; leave katib_namespace empty or run the pipeline in "
                               "'team-b'")
