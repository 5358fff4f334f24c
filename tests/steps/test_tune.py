"""KerasTuner step on a tiny slice of real Fashion-MNIST: resume, an interrupted trial, outputs train can read."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgclf import settings
from imgclf.model import search_space
from imgclf.errors import UserError
from imgclf.model.hyperparams import HyperParams
from imgclf.steps.ingest import ingest
from imgclf.steps import tune as tune_step
from imgclf.steps.tune import tune

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    if not Path(settings.DEFAULT_DATA_URI).exists():
        pytest.skip("Fashion-MNIST not installed (make data)")
    out = tmp_path_factory.mktemp("tune") / "dataset"
    ingest(settings.DEFAULT_DATA_URI, str(out), max_train_examples=600, max_test_examples=100)
    return str(out)


@pytest.fixture(scope="module")
def small_space():
    """The real space with cheap models, so a trial takes about a second."""
    space = search_space.load()
    cheap = {"conv1_filters": search_space.Parameter("conv1_filters", "choice", values=(8,)),
             "conv2_filters": search_space.Parameter("conv2_filters", "choice", values=(8, 16))}
    params = tuple(cheap.get(p.name, p) for p in space.parameters)
    return dataclasses.replace(space, parameters=params, algorithm="bayesian")  # KerasTuner's resumable search


def test_resume_runs_only_the_missing_trials(tiny_dataset, small_space, tmp_path):
    lines: list[str] = []
    first = tune(tiny_dataset, str(tmp_path), small_space, max_trials=2, epochs=1, log=lines.append)
    assert (first["trials_run"], first["trials_total"]) == (2, 2)
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]  # one progress line per trial

    second = tune(tiny_dataset, str(tmp_path), small_space, max_trials=3, epochs=1, log=lines.append)
    assert (second["trials_run"], second["trials_total"]) == (1, 3)

    best = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    hp = HyperParams.from_dict(best)  # what train's --hparams-json does
    assert hp.batch_size in small_space.parameter("batch_size").values
    assert hp.dropout in small_space.parameter("dropout").grid()  # a grid point, as Katib would pick
    assert not list(tmp_path.glob(".*")) and not list((tmp_path / "tuner").glob(".*"))  # no temp files left
    assert 0 < second["best_val_accuracy"] <= 1
    assert json.loads((tmp_path / "metrics.json").read_text())["trials_total"] == 3
    table = (tmp_path / "trials.md").read_text()
    assert table.count("| completed |") == 3 and "(best)" in table

    with pytest.raises(UserError, match="different epochs"):
        tune(tiny_dataset, str(tmp_path), small_space, max_trials=3, epochs=2)

    # KerasTuner's own state, cut short by a kill mid-write: one line naming the file and the way out.
    oracle = tmp_path / "tuner" / "oracle.json"
    oracle.write_text(oracle.read_text()[:40])
    with pytest.raises(UserError, match=r"oracle.json: corrupt search state .*remove .*tuner to start it over") as info:
        tune(tiny_dataset, str(tmp_path), small_space, max_trials=4, epochs=1)
    assert "\n" not in str(info.value)


def test_interrupted_trial_runs_again(tiny_dataset, small_space, tmp_path, monkeypatch):
    """A search killed inside trial 2 resumes: trial 1 is kept, trial 2 runs again from the start."""
    import imgclf.model.network

    real_build = imgclf.model.network.build_model

    def build_then_die(hp, **options):
        if len(list((tmp_path / "tuner").glob("trial_*"))) == 2:
            raise KeyboardInterrupt  # what Ctrl-C or a pod eviction does mid-trial
        return real_build(hp, **options)

    monkeypatch.setattr(imgclf.model.network, "build_model", build_then_die)
    with pytest.raises(KeyboardInterrupt):
        tune(tiny_dataset, str(tmp_path), small_space, max_trials=2, epochs=1, log=lambda _: None)
    monkeypatch.setattr(imgclf.model.network, "build_model", real_build)

    result = tune(tiny_dataset, str(tmp_path), small_space, max_trials=2, epochs=1, log=lambda _: None)
    assert (result["trials_run"], result["trials_total"], result["trials_failed"]) == (1, 2, 0)


def test_cli_help_and_bad_space(tmp_path):
    out = subprocess.run([sys.executable, "-m", "imgclf.steps.tune", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--max-trials" in out.stdout
    bad = tmp_path / "space.yaml"
    bad.write_text("parameters: []\n")
    out = subprocess.run([sys.executable, "-m", "imgclf.steps.tune", "--dataset", str(tmp_path), "--output",
                          str(tmp_path / "o"), "--space", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [f"error: {bad}: parameters: empty list, give at least one parameter"]


def test_first_trial_is_the_untuned_baseline(tiny_dataset, tmp_path):
    # KerasTuner's trial 1; halving's configuration 1 is checked by test_halving_samples_the_baseline_first_...
    result = tune(tiny_dataset, str(tmp_path), algorithm="bayesian", max_trials=1, epochs=1, log=lambda _: None)
    assert result["best_hyperparameters"] == {**HyperParams().to_dict(), "epochs": 1}


@pytest.mark.parametrize("relative, text, problem", [
    ("tuner/imgclf-search.json", '{"space": "ab', "Unterminated string"),
    ("tuner/imgclf-search.json", "", "Expecting value"),
    ("tuner/imgclf-search.json", "[1]", "expected a JSON object, got list"),
    ("tuner/imgclf-trial-seconds.json", '{"00": 4', "Expecting"),
    ("tuner/oracle.json", "{", "Expecting property name"),
    ("tuner/trial_01/trial.json", '{"trial_id": "01", "hyperpa', "Unterminated string"),
])
def test_corrupt_state_is_one_line_naming_the_file(tmp_path, relative, text, problem):
    """A state file truncated by a kill: UserError naming it and how to recover, before any training."""
    path = tmp_path / relative
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(UserError) as info:
        tune_step._check_resumable(tmp_path, {"space": "ab"})
    message = str(info.value)
    assert message.startswith(f"{path}: corrupt search state (") and problem in message
    assert f"remove {tmp_path / 'tuner'} to start it over, or choose a new output directory" in message
    assert "\n" not in message


def test_fingerprint_is_written_whole_and_checked(tmp_path):
    tune_step._check_resumable(tmp_path, {"space": "ab", "epochs": 1})
    assert json.loads((tmp_path / "tuner" / tune_step.FINGERPRINT_FILE).read_text()) == {"space": "ab", "epochs": 1}
    assert [p.name for p in (tmp_path / "tuner").iterdir()] == [tune_step.FINGERPRINT_FILE]  # no temp file left
    with pytest.raises(UserError, match="different epochs; use a new output directory"):
        tune_step._check_resumable(tmp_path, {"space": "ab", "epochs": 2})


def test_halving_promotes_the_best_quarter_and_writes_what_train_reads(tiny_dataset, small_space, tmp_path):
    lines: list[str] = []
    space = dataclasses.replace(small_space, algorithm="halving")
    result = tune(tiny_dataset, str(tmp_path), space, max_trials=5, epochs=2, log=lines.append)
    rung1, rung2, rung3 = ([line for line in lines if line.startswith(f"rung {r} ")] for r in (1, 2, 3))
    assert (len(rung1), len(rung2), len(rung3)) == (10, 3, 2)  # 2 x 5 configurations, ceil(10 / 4), 2 finalists
    assert " 60 images)" in rung1[0] and " 160 images)" in rung2[0] and " 480 images)" in rung3[0]
    assert result["best_trial"] in {line.split()[3].split("/")[0] for line in rung3}  # the pick ran on all data
    saved = json.loads((tmp_path / "best_hyperparameters.json").read_text())
    assert saved == result["best_hyperparameters"] and saved["epochs"] == 2
    HyperParams.from_dict(saved)
    assert result["algorithm"] == "halving" and result["trials_total"] == 10
    assert "(best)" in (tmp_path / "trials.md").read_text()


def test_halving_samples_the_baseline_first_then_distinct_points(small_space):
    from imgclf.steps import halving

    configs = halving.sample_configurations(search_space.load(), 10, seed=1)
    assert configs[0] == {p.name: getattr(HyperParams(), p.name) for p in search_space.load().parameters}
    assert len(configs) == 10 and all(configs.count(c) == 1 for c in configs)
    assert configs == halving.sample_configurations(search_space.load(), 10, seed=1)
    for c in configs:
        assert all(p.contains(c[p.name]) for p in search_space.load().parameters), c


def test_halving_promotes_a_quarter_then_the_finalists():
    from imgclf.steps import halving

    assert [halving.promoted(0, n) for n in (1, 4, 5, 10, 20)] == [1, 1, 2, 3, 5]
    assert [halving.promoted(1, n) for n in (1, 2, 4, 5)] == [1, 2, 2, 2]
    assert halving.RUNGS[-1] == (1.0, 1.0)  # the last rung sees the whole train and eval splits
