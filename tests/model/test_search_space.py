"""The one search space: the packaged file is valid, bad ones fail with one line naming the field."""

from __future__ import annotations

import copy
import math
from dataclasses import fields

import pytest
import yaml

from imgclf.model import search_space
from imgclf.errors import UserError
from imgclf.model.hyperparams import HyperParams


def raw_space() -> dict:
    return yaml.safe_load(search_space.DEFAULT_PATH.read_text())


def test_packaged_space_matches_the_issue():
    space = search_space.load()
    names = [p.name for p in space.parameters]
    assert set(names) <= {f.name for f in fields(HyperParams)}
    assert space.parameter("batch_size").values == (16, 32, 64, 128)
    lr = space.parameter("learning_rate")
    assert (lr.type, lr.scale, lr.min, lr.max) == ("float", "log", 1e-4, 1e-2)
    assert 0 in space.parameter("dense_units").values
    dropout = space.parameter("dropout")
    assert (dropout.min, dropout.max, dropout.step, dropout.scale) == (0.1, 0.6, 0.1, "linear")
    assert dropout.grid() == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    assert (lr.step, space.parameter("conv1_filters").grid()) == (None, (16, 32))
    assert (space.objective.metric, space.objective.direction, space.algorithm) == ("val_accuracy", "maximize",
                                                                                     "halving")
    assert (space.budget.max_trials, space.budget.epochs_per_trial) == (10, 3)


def test_float_step_is_a_grid_both_tuners_share():
    dropout = search_space.load().parameter("dropout")
    assert dropout.contains(0.5) and dropout.contains(0.1 + 2 * 0.1)  # float noise is still on the grid
    assert not dropout.contains(0.25) and not dropout.contains(0.7)
    assert dropout.cast(0.30000000000000004) == 0.3 and dropout.cast("0.4") == 0.4  # KerasTuner / Katib values
    assert HyperParams().dropout in dropout.grid()  # the untuned baseline stays a point of the space


def test_to_hyperparams_casts_katib_strings_and_keeps_defaults():
    space = search_space.load()
    hp = space.to_hyperparams({"batch_size": "64", "learning_rate": "0.00123", "dense_units": "128.0"})
    assert (hp.batch_size, hp.learning_rate, hp.dense_units) == (64, 0.00123, 128)
    assert hp.kernel_size == HyperParams().kernel_size
    with pytest.raises(UserError, match="batch_size='64.5': expected an integer"):
        space.to_hyperparams({"batch_size": "64.5"})
    with pytest.raises(UserError, match="kernel_size not in the search space"):
        space.to_hyperparams({"kernel_size": 3})


def _edit(path: list, value):
    raw = raw_space()
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    (["parameters", 2, "min"], 128, r"parameters\[2\] 'conv1_filters': min 128 > max 32"),
    (["parameters", 0, "type"], "enum", r"parameters\[0\] 'batch_size': type: 'enum' is not one of int, float, choice"),
    (["parameters", 0, "values"], [], r"parameters\[0\] 'batch_size': values: empty choice list"),
    (["parameters", 0, "values"], [0, 32], r"'batch_size': values: hyperparameter batch_size=0: must be >= 1"),
    (["parameters", 5, "max"], math.nan, r"parameters\[5\] 'dropout': max: nan is not a finite number"),
    (["parameters", 5, "max"], 1.0, r"'dropout': min/max: hyperparameter dropout=1.0: must be in \[0, 1\)"),
    (["parameters", 1, "name"], "batch_size", r"parameters\[1\]: duplicate parameter name 'batch_size'"),
    (["parameters", 1, "name"], "momentum", r"parameters\[1\]: name 'momentum' is not a tunable HyperParams field"),
    (["parameters", 1, "name"], "epochs", r"epochs is budget.epochs_per_trial"),
    (["parameters", 1, "min"], 0.0, r"'learning_rate': scale log needs min > 0"),
    (["parameters", 1, "min"], "small", r"'learning_rate': min: 'small' is not a number"),
    (["parameters", 2, "stepp"], 4, r"'conv1_filters': unknown key\(s\) stepp"),
    (["parameters", 2, "min"], 16.5, r"'conv1_filters': min: 16.5 is not an integer"),
    (["parameters", 2, "min"], _DELETE, r"'conv1_filters': min is required for type int"),
    (["parameters", 4, "values"], [0, 64.5], r"'dense_units': values: 64.5 is not an integer"),
    (["parameters", 4, "values"], [64, 64], r"'dense_units': values: duplicates"),
    (["parameters", 5, "type"], "int", r"'dropout': type int for a float field"),
    (["parameters", 5, "step"], 0.3, r"'dropout': step 0.3 does not divide max - min \(0.6 - 0.1\)"),
    (["parameters", 5, "step"], 0, r"'dropout': step: 0.0 must be > 0"),
    (["parameters", 5, "step"], "fine", r"'dropout': step: 'fine' is not a number"),
    (["parameters", 1, "step"], 0.001, r"'learning_rate': scale log cannot be combined with step"),
    (["parameters", 2, "step"], 8.5, r"'conv1_filters': step: 8.5 is not an integer"),
    (["parameters"], [], r"parameters: empty list"),
    (["objective", "direction"], "up", r"objective.direction: 'up' is not one of maximize, minimize"),
    (["objective", "additional_metrics"], ["val_accuracy"], r"additional_metrics repeats the objective metric"),
    (["algorithm"], "grid", r"algorithm: 'grid' is not one of bayesian, random, hyperband, halving"),
    (["budget", "max_trials"], 0, r"budget.max_trials: 0 must be >= 1"),
    (["budget", "parallel_trials"], 11, r"budget.parallel_trials 11 > max_trials 10"),
    (["budget", "max_trials"], True, r"budget.max_trials: True is not an integer"),
    (["budget", "patience"], 2, r"budget: unknown key\(s\) patience"),
])
def test_invalid_spaces_raise_one_line_naming_the_field(path, value, message):
    with pytest.raises(UserError, match=message) as info:
        search_space.parse(_edit(path, value), source="space.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("space.yaml")


def test_load_reports_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="no such search-space file"):
        search_space.load(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: [\n")
    with pytest.raises(UserError, match=r"bad.yaml: invalid YAML") as info:
        search_space.load(bad)
    assert "\n" not in str(info.value)
    assert copy.deepcopy(raw_space()) == raw_space()  # the packaged file is untouched by the edits above
