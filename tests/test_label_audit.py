"""Label audit: injected label flips in real data are found by confident learning."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf import datasets
from imgclf.errors import UserError
from imgclf.steps.label_audit import label_audit


def test_injected_label_flips_are_found_and_can_be_dropped(small_dataset, tmp_path):
    meta = datasets.read_metadata(small_dataset)
    x, y = datasets.load_split(small_dataset, "train")
    rng = np.random.default_rng(3)
    flipped = rng.choice(len(y), 80, replace=False)
    noisy = y.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, 10, 80)) % 10
    splits = {s: datasets.load_split(small_dataset, s) for s in meta["splits"]}
    splits["train"] = (x, noisy)
    datasets.write_dataset(tmp_path / "noisy", splits, {"source": meta["source"]})

    summary = label_audit(str(tmp_path / "noisy"), str(tmp_path / "audit"), max_examples=0,
                          cleaned_output=str(tmp_path / "clean"))
    found = {s["index"] for s in json.loads((tmp_path / "audit" / "label_issues.json").read_text())["suspects"]}
    recall = len(found & set(flipped.tolist())) / 80
    assert recall >= 0.6, f"only {recall:.0%} of injected flips found"
    # Flipped examples are much more likely to be flagged than clean ones.
    assert recall > 3 * len(found - set(flipped.tolist())) / (len(y) - 80)
    report = (tmp_path / "audit" / "report.html").read_text()
    assert "data:image/png;base64," in report and "http" not in report.split("<body>")[1]
    cleaned = datasets.read_metadata(tmp_path / "clean")
    assert cleaned["splits"]["train"]["count"] == len(y) - summary["issues"] == len(y) - summary["dropped"]
    assert cleaned["splits"]["test"] == meta["splits"]["test"]


def test_audit_rejects_too_few_folds(small_dataset, tmp_path):
    with pytest.raises(UserError, match="folds=1"):
        label_audit(small_dataset, str(tmp_path / "a"), folds=1)
