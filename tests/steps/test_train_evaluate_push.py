"""Train, evaluate and push on real data: model contract, metrics, blessing and versioned push."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgclf import settings
from imgclf.data import datasets
from imgclf.errors import UserError
from tests.conftest import assert_self_contained
from imgclf.model.hyperparams import HyperParams
from imgclf.steps import evaluate as evaluate_step
from imgclf.steps import push as push_step


def test_trained_model_directory_and_serving_signature(trained_model, small_dataset):
    import tensorflow as tf

    root = Path(trained_model)
    assert (root / "saved_model" / "saved_model.pb").is_file() and (root / "model.keras").is_file()
    history = json.loads((root / "history.json").read_text())
    assert len(history["val_accuracy"]) == 2 and history["val_accuracy"][-1] > 0.5
    x, y = datasets.load_split(small_dataset, "test")
    loaded = tf.saved_model.load(str(root / "saved_model"))
    assert set(loaded.signatures) == {"serving_default", "serving_uint8"}
    as_float = loaded.serving_default(x[:8].astype(np.float32))
    as_uint8 = loaded.serving_uint8(x[:8, :, :, None])
    np.testing.assert_allclose(as_float["probabilities"].numpy(), as_uint8["probabilities"].numpy(), atol=1e-5)
    np.testing.assert_allclose(as_float["probabilities"].numpy().sum(axis=1), 1.0, atol=1e-4)
    assert (as_float["class_id"].numpy() == as_float["probabilities"].numpy().argmax(axis=1)).all()
    for bad in (np.zeros((2, 28, 28, 2), np.float32), np.zeros((1, 14, 56), np.float32), np.zeros((784,), np.float32)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must be \[N,28,28\]"):
            loaded.serving_default(bad)


def test_metrics_match_a_hand_computation():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    labels = np.array([0, 1, 1, 2])
    m = evaluate_step.classification_metrics(probs, labels, num_classes=3)
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.3, 0.6])))
    first = next(iter(m["per_class"].values()))
    assert first["precision"] == 0.5 and first["recall"] == 1.0


@pytest.mark.parametrize("acc, threshold, baseline, tol, expected", [
    (0.90, 0.85, None, 0.01, True),
    (0.80, 0.85, None, 0.01, False),
    (0.90, 0.85, 0.905, 0.01, True),   # slightly worse, within tolerance
    (0.90, 0.85, 0.92, 0.01, False),   # worse than the pushed model by more than the tolerance
])
def test_blessing_rule(acc, threshold, baseline, tol, expected):
    blessed, reasons = evaluate_step.bless(acc, threshold, baseline, tol)
    assert blessed is expected and len(reasons) == 2


def test_evaluate_then_push_versions(trained_model, small_dataset, tmp_path):
    base = tmp_path / "serving"
    first = evaluate_step.evaluate(small_dataset, trained_model, str(tmp_path / "e1"), str(base), "m", 0.5, 0.01)
    x, y = datasets.load_split(small_dataset, "test")
    assert first["metrics"]["examples"] == len(y) == 500
    assert first["blessing"]["blessed"] and first["blessing"]["baseline"] is None
    assert sum(map(sum, first["metrics"]["confusion_matrix"])) == 500
    v1 = push_step.push(trained_model, str(tmp_path / "e1" / "blessing.json"), str(base), "m")
    assert v1["version"] == 1 and (base / "m" / "1" / "saved_model.pb").is_file()
    # Second round compares with version 1 (same model: same accuracy, blessed); pushing it again is
    # idempotent: version 1 already holds this model, so nothing new is created.
    second = evaluate_step.evaluate(small_dataset, trained_model, str(tmp_path / "e2"), str(base), "m", 0.5, 0.01)
    assert second["blessing"]["baseline"]["version"] == 1
    assert second["blessing"]["baseline"]["accuracy"] == pytest.approx(first["metrics"]["accuracy"])
    # The evaluation report compares with version 1 on the same data; the model card lies beside the blessing.
    report = (tmp_path / "e2" / "report.html").read_text()
    body = report.split("<body>")[1]
    assert_self_contained(report)
    assert "pushed version 1" in body
    assert body.count("data:image/png;base64,") >= 2 + 6  # reliability + slices charts, confusion thumbnails
    analysis = second["analysis"]
    assert 0.0 <= analysis["calibration"]["ece"] <= 1.0
    assert sum(b["count"] for b in analysis["calibration"]["bins"]) == 500
    for kind in ("class", "brightness", "contrast"):
        assert sum(r["count"] for r in analysis["slices"][kind]) == 500
    worst = analysis["worst_confusions"][0]
    assert worst["count"] == max(v for i, row in enumerate(second["metrics"]["confusion_matrix"])
                                 for j, v in enumerate(row) if i != j)
    card = (tmp_path / "e2" / evaluate_step.MODEL_CARD).read_text()
    meta = datasets.read_metadata(small_dataset)
    assert meta["splits"]["test"]["sha256"] in card and "## Known limits" in card and "batch_size | 64" in card
    assert f"{analysis['calibration']['ece']:.4f}" in card
    again = push_step.push(trained_model, str(tmp_path / "e2" / "blessing.json"), str(base), "m")
    assert again["version"] == 1 and again["created"] is False
    # Push copied the first evaluation's model card into version 1; the folder with that extra file is
    # still servable and loads in the local server.
    assert (base / "m" / "1" / evaluate_step.MODEL_CARD).read_text() == (tmp_path / "e1" / evaluate_step.MODEL_CARD).read_text()
    from imgclf.data import versions
    from imgclf.serving import server as serve

    assert versions.latest_servable(versions.model_base(str(base), "m"))[0] == 1
    servable = serve.load_servable(1, str(base / "m" / "1"))
    out = servable.endpoints[settings.SERVING_SIGNATURE_UINT8](x[:4])
    assert np.asarray(out[settings.SERVING_OUTPUT_PROBABILITIES]).shape == (4, 10)
    # A half-written numeric dir never becomes "latest".
    (base / "m" / "3").mkdir()
    assert push_step.push(trained_model, str(tmp_path / "e2" / "blessing.json"), str(base), "m")["version"] == 1
    assert sorted(p.name for p in (base / "m").iterdir()) == [".claims", "1", "3"]


def test_a_class_missing_from_the_test_split_is_a_one_line_error(trained_model, small_dataset, tmp_path):
    meta = datasets.read_metadata(small_dataset)
    splits = {s: datasets.load_split(small_dataset, s) for s in meta["splits"]}
    x, y = splits["test"]
    splits["test"] = (x[y != 5], y[y != 5])
    datasets.write_dataset(tmp_path / "d", splits, {"source": meta["source"]})
    with pytest.raises(UserError) as exc:
        evaluate_step.evaluate(str(tmp_path / "d"), trained_model, str(tmp_path / "e"), str(tmp_path / "s"), "m")
    assert str(exc.value).startswith(f"{tmp_path / 'd' / 'test.npz'}: field 'labels': class 5 (Sandal) missing")
    assert "\n" not in str(exc.value) and not (tmp_path / "e").exists()


def test_unblessed_model_is_not_pushed(trained_model, small_dataset, tmp_path):
    result = evaluate_step.evaluate(small_dataset, trained_model, str(tmp_path / "e"), str(tmp_path / "s"), "m",
                                    accuracy_threshold=0.999)
    assert not result["blessing"]["blessed"]
    with pytest.raises(UserError, match="not blessed"):
        push_step.push(trained_model, str(tmp_path / "e" / "blessing.json"), str(tmp_path / "s"), "m")
    assert not (tmp_path / "s" / "m").exists()


def test_hyperparameters_are_checked():
    with pytest.raises(UserError, match="dropout=1.5"):
        HyperParams(dropout=1.5)
    with pytest.raises(UserError, match=r"min_lr_fraction=1.5: must be in \[0, 1\]"):
        HyperParams(min_lr_fraction=1.5)
    with pytest.raises(UserError, match="unknown hyperparameter"):
        HyperParams.from_dict({"units": 3})
    assert HyperParams.from_dict({"batch_size": "32", "learning_rate": "0.01"}).batch_size == 32


@pytest.mark.parametrize("min_lr_fraction", [0.25, 1.0])
def test_learning_rate_decays_over_the_whole_run_to_its_floor(small_dataset, min_lr_fraction):
    import keras

    from imgclf.steps.train import fit

    (x, y), eval_xy = datasets.load_split(small_dataset, "train"), datasets.load_split(small_dataset, "eval")
    hp = HyperParams(epochs=2, batch_size=100, learning_rate=0.004, min_lr_fraction=min_lr_fraction)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    model, _ = fit(hp, (x[:500], y[:500]), eval_xy, seed=1, metrics_format="none", extra_callbacks=[Record()])
    assert int(model.optimizer.iterations) == 2 * 5  # ceil(500 / 100) steps per epoch, the last batch kept
    if min_lr_fraction == 1.0:  # constant: no schedule at all
        assert seen == pytest.approx([0.004, 0.004])
    else:  # cosine: halfway it is the mean of start and floor, and it ends on the floor
        assert seen == pytest.approx([0.004 * (1 + min_lr_fraction) / 2, 0.004 * min_lr_fraction], rel=1e-5)


def test_train_cli_katib_format_prints_metric_lines(small_dataset, tmp_path, capsys):
    from imgclf.steps import train as train_step

    train_step.main(["--dataset", small_dataset, "--output", str(tmp_path / "m"), "--epochs", "1",
                     "--batch-size", "128", "--metrics-format", "katib"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "epoch=1" in lines and any(line.startswith("val_accuracy=") for line in lines)
    assert all("=" in line and " " not in line for line in lines), lines


def test_a_blessing_only_pushes_its_own_model(trained_model, small_dataset, tmp_path):
    import shutil

    evaluate_step.evaluate(small_dataset, trained_model, str(tmp_path / "e"), str(tmp_path / "s"), "m", 0.5)
    other = tmp_path / "other"
    shutil.copytree(trained_model, other)
    (other / "saved_model" / "variables" / "variables.index").write_bytes(b"changed")
    with pytest.raises(UserError, match="written for another model"):
        push_step.push(str(other), str(tmp_path / "e" / "blessing.json"), str(tmp_path / "s"), "m")


def test_an_unloadable_pushed_version_does_not_block_blessing(trained_model, small_dataset, tmp_path):
    broken = tmp_path / "s" / "m" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    result = evaluate_step.evaluate(small_dataset, trained_model, str(tmp_path / "e"), str(tmp_path / "s"), "m", 0.5)
    blessing = result["blessing"]
    assert blessing["blessed"] and blessing["baseline"]["version"] == 1 and "error" in blessing["baseline"]
    assert "could not be loaded" in blessing["reasons"][-1]
    pushed = push_step.push(trained_model, str(tmp_path / "e" / "blessing.json"), str(tmp_path / "s"), "m")
    assert pushed["version"] == 2


@pytest.mark.parametrize("content, needle", [
    ('{"batch_size": null}', "batch_size=None is not a valid int"),
    ('{"dropout": "abc"}', "dropout='abc' is not a valid float"),
    ('{"conv1_filters": 3.9}', "conv1_filters=3.9 is not a valid int"),
    ('{"learning_rate": Infinity}', "learning_rate=inf is not a valid float"),
    ("[1, 2]", "expected a JSON object"),
    ("{", "invalid JSON"),
])
def test_bad_hparams_json_is_a_one_line_error(small_dataset, tmp_path, capsys, content, needle):
    from imgclf.errors import run_cli
    from imgclf.steps import train as train_step

    (tmp_path / "hp.json").write_text(content)
    status = run_cli(train_step.main, ["--dataset", small_dataset, "--output", str(tmp_path / "m"),
                                       "--hparams-json", str(tmp_path / "hp.json")])
    err = capsys.readouterr().err
    assert status == 2 and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "m").exists()


def test_os_errors_are_one_line(tmp_path, capsys):
    from imgclf.errors import run_cli
    from imgclf.steps import validate as validate_step

    assert run_cli(validate_step.main, ["--dataset", "/etc/passwd", "--output", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: /etc/passwd") and err.count("\n") == 1, err
