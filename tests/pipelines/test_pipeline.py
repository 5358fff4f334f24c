"""The pipeline: committed YAML is current and valid; the whole DAG runs locally end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from imgclf import settings
from imgclf.data import versions
from imgclf.model.hyperparams import HyperParams
from pipelines import compile as compile_mod

ROOT = Path(__file__).resolve().parents[2]


def test_committed_pipeline_yaml_is_current_and_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = compile_mod.compile_all(tmp_path / "a")
    again = compile_mod.compile_all(tmp_path / "b")
    for path in first:
        committed = settings.PIPELINE_DIR / path.name
        assert committed.is_file(), f"{committed} missing: run `make compile` and commit it"
        assert path.read_bytes() == committed.read_bytes(), f"{committed.name} is stale: run `make compile`"
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]


def test_hyperparameters_are_defined_once():
    """The pipeline's parameters and the untuned-branch component take every HyperParams field, with the
    dataclass's types and defaults: a field added, renamed, retyped or re-defaulted in only one place fails."""
    import inspect
    from dataclasses import fields

    from components.hyperparameters import default_hyperparameters_op
    from imgclf.model.hyperparams import tunable_fields
    from pipelines.training_pipeline import build_pipeline

    pipeline_params = inspect.signature(build_pipeline(gpu=False).pipeline_func).parameters
    for f in fields(HyperParams):
        assert f.name in pipeline_params, f"pipeline parameter {f.name} missing"
        assert pipeline_params[f.name].annotation.__name__ == f.type
        assert pipeline_params[f.name].default == f.default
    step_params = inspect.signature(default_hyperparameters_op.python_func).parameters
    assert tuple(step_params) == tunable_fields()
    assert all(step_params[n].annotation.__name__ == HyperParams.__dataclass_fields__[n].type for n in step_params)
    import argparse

    from imgclf.steps.train import add_hyperparameter_flags  # imgclf-train's flags come from the same fields

    parser = argparse.ArgumentParser()
    add_hyperparameter_flags(parser)
    assert {f.name for f in fields(HyperParams)} <= {action.dest for action in parser._actions}


def test_compiled_yaml_loads_and_has_the_dag():
    from kfp import components

    for path in (settings.PIPELINE_YAML, settings.PIPELINE_GPU_YAML):
        component = components.load_component_from_file(str(path))
        assert component.component_spec.inputs["epochs"].default == HyperParams().epochs
        spec = yaml.safe_load(path.read_text().split("\n---\n")[0])
        assert spec["schemaVersion"] == "2.1.0"
        executors = spec["deploymentSpec"]["executors"]
        assert {"exec-ingest-op", "exec-validate-op", "exec-train-op", "exec-evaluate-op", "exec-push-op",
                "exec-export-tflite-op"} <= set(executors)
        for executor in executors.values():
            container = executor["container"]
            assert container["image"] in (settings.CPU_IMAGE, settings.GPU_IMAGE)
            script = " ".join(container["command"])
            assert "pip install" not in script, "components must not pip install at run time"


def test_local_pipeline_end_to_end_pushes_only_blessed(tmp_path, monkeypatch, fmnist_dir):
    from pipelines import local_runner

    monkeypatch.setattr(local_runner, "PIPELINE_ROOT", tmp_path / "outputs")
    base = str(tmp_path / "serving")
    params = {"data_uri": fmnist_dir, "max_train_examples": 1500, "max_test_examples": 300, "epochs": 1,
              "batch_size": 32, "push_base": base, "model_name": "fm", "accuracy_threshold": 0.5}
    first = local_runner.run_local(params, tmp_path / "outputs")
    assert first["blessed"] is True and first["pushed_version"] == 1, first
    assert 0.5 <= first["test_accuracy"] <= 1.0
    assert versions.servable_versions(versions.model_base(base, "fm")) == [1]
    run_dir = tmp_path / "outputs" / first["run_dir"].rsplit("/", 1)[-1]
    report = next(run_dir.glob("validate-op/report"))
    assert "No anomalies" in report.read_text()
    evaluation = json.loads(next(run_dir.glob("evaluate-op/evaluation/evaluation.json")).read_text())
    assert evaluation["examples"] == 300
    audit = json.loads(next(run_dir.glob("label-audit-op/issues/label_issues.json")).read_text())
    assert audit["audited"] == 1200 and audit["issues"] == len(audit["suspects"])
    assert set(first["reports"]) == {"data report", "label audit", "evaluation", "model card"}
    assert "<h3>Calibration</h3>" in next(run_dir.glob("evaluate-op/report")).read_text()
    with open(first["reports"]["model card"]) as card:
        assert "## Known limits" in card.read()
    tflite = json.loads(next(run_dir.glob("export-tflite-op/tflite/tflite_report.json")).read_text())
    assert tflite["test_examples"] == 300 and (run_dir / "export-tflite-op/tflite/model_int8.tflite").is_file()
    # Second run: KerasTuner picks the hyperparameters (2 trials of 1 epoch) and train uses them;
    # an impossible threshold -> not blessed -> push skipped, still only version 1.
    second = local_runner.run_local({**params, "accuracy_threshold": 0.999, "tuner": "keras-tuner",
                                     "tune_max_trials": 2, "tune_epochs": 1}, tmp_path / "outputs")
    assert second["blessed"] is False and second["pushed_version"] is None
    assert versions.servable_versions(versions.model_base(base, "fm")) == [1]
    run_dir = tmp_path / "outputs" / second["run_dir"].rsplit("/", 1)[-1]
    best = json.loads(next(run_dir.glob("tune-op/hyperparameters/best_hyperparameters.json")).read_text())
    trained = json.loads(next(run_dir.glob("train-op/model/hyperparameters.json")).read_text())
    assert {k: trained[k] for k in best if k != "epochs"} == {k: v for k, v in best.items() if k != "epochs"}
    assert trained["epochs"] == 1 and not list(run_dir.glob("default-hyperparameters-op"))


@pytest.mark.parametrize("argv, needle", [
    (["--param", "epochz=3"], "unknown parameter 'epochz'"),
    (["--param", "epochs=three"], "epochs='three' (--param) is not a valid integer"),
    (["--param", "tuner=keras_tuner"], "must be one of none, keras-tuner, katib"),
    (["--push-base", "ftp://b/m"], "unknown URI scheme 'ftp://'"),
    (["--param", "tuner=katib"], "Katib needs a cluster"),
    (["--param", "epochs=-1"], "parameter epochs=-1 must be at least 1"),
    (["--param", "batch_size=0"], "parameter batch_size=0 must be at least 1"),
    (["--param", "accuracy_threshold=1.5"], "accuracy_threshold=1.5 must be in [0, 1]"),
    (["--param", "change_tolerance=-0.1"], "change_tolerance=-0.1 must be in [0, 1]"),
    (["--param", "eval_fraction=1"], "eval_fraction=1.0 must be in (0, 1)"),
    (["--param", "tune_algorithm=grid"], "tune_algorithm='grid' must be '' (the search space's) or one of"),
    (["--push-base", "gs://YOUR_BUCKET/models"], "push_base='gs://YOUR_BUCKET/models' still holds a placeholder"),
    (["--param", "schema_uri=hdfs://x/schema.json"], "schema_uri='hdfs://x/schema.json' is not a supported URI"),
])
def test_local_runner_rejects_bad_parameters_before_running(capsys, argv, needle):
    from imgclf.errors import run_cli
    from pipelines import local_runner

    assert run_cli(local_runner.main, argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_a_failing_step_s_own_error_is_the_run_s_last_line(tmp_path):
    """The step prints one line, no traceback; the local run ends by repeating it."""
    done = subprocess.run([sys.executable, "-m", "pipelines.local_runner", "--data-uri", str(tmp_path / "nope"),
                           "--push-base", str(tmp_path / "serving")], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2
    last = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert last == f"error: ingest: {tmp_path / 'nope'}: no such directory", last
    assert "Traceback" not in done.stdout + done.stderr


def test_local_runner_precedence_defaults_file_flags_params(tmp_path, monkeypatch):
    from pipelines import local_runner

    seen = {}
    monkeypatch.setattr(local_runner, "run_local", lambda params: seen.update(params) or {
        "seconds": 0, "run_dir": None, "test_accuracy": None, "blessed": None, "reasons": [],
        "pushed_version": None, "pushed_uri": None})
    (tmp_path / "p.yaml").write_text("epochs: 10\ntuner: keras-tuner\nbatch_size: 64\nseed: 7\n")
    local_runner.main(["--epochs", "3", "--tuner", "none", "--params-file", str(tmp_path / "p.yaml"),
                       "--param", "seed=9"])
    assert (seen["epochs"], seen["tuner"], seen["batch_size"], seen["seed"]) == (3, "none", 64, 9)
    assert seen["data_uri"] == settings.DEFAULT_DATA_URI
