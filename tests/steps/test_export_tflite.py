"""TFLite export: both variants written, int8 really integer, accuracy parity with the SavedModel."""

import json

import numpy as np
import pytest

from imgclf.steps.export_tflite import _interpreter, export_tflite


def test_tflite_export_parity(tmp_path, trained_model, small_dataset):
    report = export_tflite(trained_model, small_dataset, str(tmp_path / "tflite"), representative_examples=100)
    assert json.loads((tmp_path / "tflite" / "tflite_report.json").read_text()) == report
    assert report["test_examples"] == 500
    for variant in ("dynamic_range", "int8"):
        r = report[variant]
        assert 0 < r["size_bytes"] < report["saved_model"]["size_bytes"] / 3, r
        assert abs(r["accuracy_delta"]) <= 0.01, (variant, r, report["saved_model"])
    interp = _interpreter((tmp_path / "tflite" / "model_int8.tflite").read_bytes())
    assert interp.get_input_details()[0]["dtype"] == np.uint8
    assert interp.get_output_details()[0]["dtype"] == np.uint8
    float_inputs = _interpreter((tmp_path / "tflite" / "model_dynamic_range.tflite").read_bytes())
    assert float_inputs.get_input_details()[0]["dtype"] == np.float32


def test_bad_inputs_are_one_line_errors_and_write_nothing(tmp_path, trained_model, small_dataset, capsys):
    from imgclf.errors import run_cli
    from imgclf.steps.export_tflite import main

    (tmp_path / "empty_model").mkdir()
    cases = [(["--model", "/nonexistent", "--dataset", small_dataset], "/nonexistent"),
             (["--model", str(tmp_path / "empty_model"), "--dataset", small_dataset], "model.keras"),
             (["--model", trained_model, "--dataset", str(tmp_path / "nodata")], "nodata"),
             (["--model", trained_model, "--dataset", str(tmp_path / "empty_model")], "train.npz")]
    for i, (args, needle) in enumerate(cases):
        out = tmp_path / f"out{i}"
        assert run_cli(main, [*args, "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err
        assert not out.exists()


def test_failed_int8_conversion_leaves_no_output(tmp_path, trained_model, small_dataset, monkeypatch):
    from imgclf.steps import export_tflite as step

    def convert(model_dir, representative):
        if representative is not None:
            raise RuntimeError("int8 calibration failed")
        return b"dynamic"

    monkeypatch.setattr(step, "convert", convert)
    monkeypatch.setattr(step, "tflite_predict", lambda content, images: np.zeros(len(images), np.int64))
    out = tmp_path / "tflite"
    with pytest.raises(RuntimeError, match="int8 calibration"):
        export_tflite(trained_model, small_dataset, str(out), representative_examples=10, max_test_examples=20)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_existing_output_is_refused_before_any_work(tmp_path, trained_model, small_dataset):
    from imgclf.errors import UserError

    out = tmp_path / "tflite"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        export_tflite(trained_model, small_dataset, str(out))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
