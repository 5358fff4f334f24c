"""TFLite export: both variants written, int8 really integer, accuracy parity with the SavedModel."""

import json

import numpy as np

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
