"""Label audit: label flips injected into real data are found by confident learning on the audit model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.data import datasets
from imgclf.errors import UserError
from tests.conftest import assert_self_contained
from imgclf.steps.label_audit import inject_label_flips, label_audit, principal_components


def test_injected_label_flips_are_found_and_only_the_cut_is_dropped(small_dataset, tmp_path):
    meta = datasets.read_metadata(small_dataset)
    splits = {s: datasets.load_split(small_dataset, s) for s in meta["splits"]}
    x, y = splits["train"]
    noisy, flipped = inject_label_flips(y, 0.05, seed=3)  # 80 of 1,600: half confusable, half random
    splits["train"] = (x, noisy)
    datasets.write_dataset(tmp_path / "noisy", splits, {"source": meta["source"]})

    summary = label_audit(str(tmp_path / "noisy"), str(tmp_path / "audit"), cleaned_output=str(tmp_path / "clean"))
    issues = json.loads((tmp_path / "audit" / "label_issues.json").read_text())
    cut = {s["index"] for s in issues["suspects"] if s["in_cut"]}
    hits = len(cut & set(flipped.tolist()))
    precision, recall = hits / max(len(cut), 1), hits / len(flipped)
    # Floors for this 1,600-image slice (measured 0.53 / 0.64 with the defaults: 2 folds of 800 images
    # underfit; the full split does better, README "Label audit").
    assert precision >= PRECISION_FLOOR and recall >= RECALL_FLOOR, (precision, recall, len(cut))
    assert all(s["self_confidence"] <= summary["max_self_confidence"] for s in issues["suspects"] if s["in_cut"])
    ranks = [s["self_confidence"] for s in issues["suspects"]]
    assert ranks == sorted(ranks) and 0 < summary["estimated_noise_rate"] < 0.5
    # Only the confident cut is dropped, and the report says how many.
    assert summary["dropped"] == summary["cut"] == len(cut) < summary["issues"]
    cleaned = datasets.read_metadata(tmp_path / "clean")
    assert cleaned["splits"]["train"]["count"] == len(y) - len(cut) and cleaned["label_audit_dropped"] == len(cut)
    assert cleaned["splits"]["test"] == meta["splits"]["test"]
    page = (tmp_path / "audit" / "report.html").read_text()
    body = page.split("<body>")[1]
    assert_self_contained(page)
    assert f"<b>{len(cut)}</b> dropped" in body
    assert body.count("data:image/png;base64,") == 1 + min(len(cut), 60)  # chart + thumbnails
    assert "suggested <b>" in body and "P(given)" in body
    with np.load(tmp_path / "audit" / "oof_probabilities.npz") as oof:
        assert oof["probabilities"].shape == (len(y), 10)


PRECISION_FLOOR = 0.4
RECALL_FLOOR = 0.4


@pytest.mark.parametrize("kwargs, needle", [({"folds": 1}, "folds=1"), ({"epochs": 0}, "epochs=0"),
                                            ({"hidden_units": 0}, "hidden_units=0"),
                                            ({"components": 0}, "components=0"),
                                            ({"max_self_confidence": 1.5}, "max_self_confidence=1.5")])
def test_audit_rejects_bad_settings(small_dataset, tmp_path, kwargs, needle):
    with pytest.raises(UserError, match=needle):
        label_audit(small_dataset, str(tmp_path / "a"), **kwargs)
    assert not (tmp_path / "a").exists()


def test_principal_components_are_orthonormal_coordinates_by_falling_variance(small_dataset):
    x, _ = datasets.load_split(small_dataset, "train")
    top = principal_components(x, 16, seed=0)
    assert top.shape == (len(x), 16) and top.dtype == np.float32
    variances = top.var(axis=0)
    assert np.all(np.diff(variances) <= 1e-6) and variances[0] > 5 * variances[-1]
    # All 784 axes: a rotation of the centred pixels, so distances between images are kept.
    full = principal_components(x, 784, seed=0)
    pixels = x.reshape(len(x), -1).astype(np.float64) / 255.0
    np.testing.assert_allclose(np.linalg.norm(full[:50] - full[50:100], axis=1),
                               np.linalg.norm(pixels[:50] - pixels[50:100], axis=1), rtol=1e-3)
    np.testing.assert_allclose(full[:, :16], top, atol=1e-4)
    with pytest.raises(UserError, match="components=785"):
        principal_components(x, 785, seed=0)
