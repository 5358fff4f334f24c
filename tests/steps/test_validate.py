"""Validate: statistics and schema on real data; anomalies on damaged datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.data import datasets
from imgclf.errors import UserError
from tests.conftest import assert_self_contained
from imgclf.steps.validate import validate


def _rewrite(src: str, dst, **changes):
    """Copy dataset src to dst with some splits replaced: changes = {split: (images, labels)}."""
    meta = datasets.read_metadata(src)
    splits = {s: changes.get(s) or datasets.load_split(src, s) for s in meta["splits"]}
    datasets.write_dataset(dst, splits, {"source": meta["source"]})
    return str(dst)


def test_clean_real_data_has_no_anomalies(small_dataset, tmp_path):
    result = validate(small_dataset, str(tmp_path / "v"))
    assert result["anomalies"] == []
    stats = json.loads((tmp_path / "v" / "statistics.json").read_text())
    x, y = datasets.load_split(small_dataset, "test")
    assert stats["test"]["count"] == 500
    assert stats["test"]["pixel_mean"] == pytest.approx(float(x.mean()))
    assert stats["test"]["label_counts"] == np.bincount(y, minlength=10).tolist()
    schema = json.loads((tmp_path / "v" / "schema.json").read_text())
    assert schema["image_shape"] == [28, 28] and schema["labels"] == list(range(10))
    html = (tmp_path / "v" / "report.html").read_text()
    assert "No anomalies" in html
    assert_self_contained(html)


def test_missing_class_and_drift_stop_the_pipeline(small_dataset, tmp_path):
    x, y = datasets.load_split(small_dataset, "test")
    keep = y != 3  # the test split loses every "Dress"
    damaged = _rewrite(small_dataset, tmp_path / "d", test=(x[keep], y[keep]))
    with pytest.raises(UserError) as exc:
        validate(damaged, str(tmp_path / "v"))
    message = str(exc.value)
    assert "split 'test'" in message and "\n" not in message
    assert "missing_class: test.npz field 'labels': class 3 (Dress) has no examples" in message
    kinds = {a["kind"] for a in json.loads((tmp_path / "v" / "anomalies.json").read_text())}
    assert "missing_class" in kinds
    assert "anomalies" in (tmp_path / "v" / "report.html").read_text()


def test_pixel_drift_and_imported_schema(small_dataset, tmp_path):
    x, y = datasets.load_split(small_dataset, "eval")
    brighter = np.clip(x.astype(int) + 40, 0, 255).astype(np.uint8)
    drifted = _rewrite(small_dataset, tmp_path / "d", eval=(brighter, y))
    result = validate(drifted, str(tmp_path / "v"), fail_on_anomalies=False)
    assert {a["kind"] for a in result["anomalies"]} == {"drift"}
    caught = {a["check"] for a in result["anomalies"] if a["split"] == "eval"}
    assert {"pixel_mean_shift", "intensity_js", "brightness_w1"} <= caught and "label_linf" not in caught
    # An imported schema that expects other labels flags the data as unseen labels.
    schema = json.loads((tmp_path / "v" / "schema.json").read_text())
    schema["labels"] = list(range(9))
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    with pytest.raises(UserError, match="unseen_label"):
        validate(small_dataset, str(tmp_path / "v2"), schema_path=str(tmp_path / "schema.json"))


def test_empty_split_is_an_anomaly(small_dataset, tmp_path):
    empty = (np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8))
    damaged = _rewrite(small_dataset, tmp_path / "d", eval=empty)
    with pytest.raises(UserError, match="empty_split"):
        validate(damaged, str(tmp_path / "v"))


def test_out_of_range_label_in_one_split_is_reported_not_a_crash(small_dataset, tmp_path):
    x, y = datasets.load_split(small_dataset, "test")
    y = y.copy()
    y[0] = 10
    damaged = _rewrite(small_dataset, tmp_path / "d", test=(x, y))
    result = validate(damaged, str(tmp_path / "v"), fail_on_anomalies=False)
    assert {"split": "test", "kind": "unseen_label", "detail": "labels [10] are not in the schema's label set"} \
        in result["anomalies"]


def test_malformed_imported_schema_is_a_one_line_error(small_dataset, tmp_path):
    (tmp_path / "schema.json").write_text(json.dumps({"image_shape": [28, 28], "dtype": "uint8", "pixel_range": [0],
                                                      "labels": [0, 1], "required_splits": ["train"]}))
    with pytest.raises(UserError, match="schema field 'pixel_range' has an invalid value"):
        validate(small_dataset, str(tmp_path / "v"), schema_path=str(tmp_path / "schema.json"))


def test_drift_against_a_reference_run(small_dataset, tmp_path):
    validate(small_dataset, str(tmp_path / "ref"))
    reference = str(tmp_path / "ref" / "statistics.json")
    # The same data against its own statistics: no drift.
    assert validate(small_dataset, str(tmp_path / "same"), reference_statistics=reference)["anomalies"] == []
    # A later dataset whose test split holds only T-shirts and trousers: label drift vs the reference's test.
    x, y = datasets.load_split(small_dataset, "test")
    keep = y < 2
    later = _rewrite(small_dataset, tmp_path / "later", test=(x[keep], y[keep]))
    result = validate(later, str(tmp_path / "v"), fail_on_anomalies=False, reference_statistics=reference)
    kinds = {(a["split"], a["kind"], a.get("check")) for a in result["anomalies"]}
    assert ("test", "drift_vs_reference", "label_linf") in kinds
    with pytest.raises(UserError, match="not a statistics.json"):
        validate(small_dataset, str(tmp_path / "w"), reference_statistics=str(tmp_path / "ref" / "schema.json"))


@pytest.mark.parametrize("reference", [
    {"train": {"count": 5, "label_shares": "abc", "pixel_mean": 3}},
    {"train": {"count": 5, "label_shares": [0.5], "pixel_mean": "x"}},
    {"train": {"count": 5, "label_shares": [[0.1], [0.9]], "pixel_mean": 3}},
    {},
    {"other": {"count": 5, "label_shares": [1.0], "pixel_mean": 3.0}},
])
def test_malformed_reference_statistics_are_one_line_errors(small_dataset, tmp_path, reference):
    (tmp_path / "ref.json").write_text(json.dumps(reference))
    with pytest.raises(UserError, match="ref.json: (not a statistics.json|no split in common)"):
        validate(small_dataset, str(tmp_path / "v"), reference_statistics=str(tmp_path / "ref.json"))
    assert not (tmp_path / "v").exists()
