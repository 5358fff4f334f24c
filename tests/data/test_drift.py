"""Drift beyond the mean: each kind of shift applied to a real test slice is caught; the clean slice is not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf import settings
from imgclf.data import datasets, drift
from imgclf.errors import UserError
from tests.conftest import assert_self_contained
from imgclf.steps.validate import split_statistics, validate


def _stats(x, y):
    return split_statistics(x, y, settings.NUM_CLASSES, drift.profile(x, y, settings.NUM_CLASSES))


def _clip(a):
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def _contrast(x, k):
    m = x.reshape(len(x), -1).mean(axis=1)[:, None, None]
    return _clip((x - m) * k + m)


def _shift(x, px):
    out = np.zeros_like(x)
    out[:, px:, px:] = x[:, :-px, :-px]
    return out


def _prior(x, y):
    keep = (y < 2) | (np.arange(len(y)) % 3 == 0)  # classes 0, 1 keep all, the others a third: ~0.21 vs ~0.07
    return x[keep], y[keep]


SHIFTS = {
    "gaussian noise sigma=25": lambda x, y: (_clip(x + np.random.default_rng(0).normal(0, 25, x.shape)), y),
    "rotate 90": lambda x, y: (np.rot90(x, 1, axes=(1, 2)).copy(), y),
    "vertical flip": lambda x, y: (x[:, ::-1, :].copy(), y),
    "shift 2 px": lambda x, y: (_shift(x, 2), y),
    "contrast x0.7": lambda x, y: (_contrast(x, 0.7), y),
    "brightness +15": lambda x, y: (_clip(x.astype(float) + 15), y),
    "inversion": lambda x, y: (255 - x, y),
    "label prior": _prior,
}


@pytest.fixture(scope="module")
def base_stats(small_dataset):
    return _stats(*datasets.load_split(small_dataset, "train"))


@pytest.fixture(scope="module")
def test_split(small_dataset):
    return datasets.load_split(small_dataset, "test")


def test_unshifted_test_slice_trips_no_check(base_stats, test_split):
    rows = drift.drift_rows(base_stats, _stats(*test_split), settings.VALIDATE)
    assert {r["check"] for r in rows} == set(drift.CHECKS)
    assert [r["check"] for r in rows if r["drifted"]] == []


@pytest.mark.parametrize("name", list(SHIFTS))
def test_each_kind_of_shift_is_caught(base_stats, test_split, name):
    x, y = SHIFTS[name](*test_split)
    rows = drift.drift_rows(base_stats, _stats(x, y), settings.VALIDATE)
    caught = {r["check"]: round(r["value"] / r["threshold"], 2) for r in rows if r["drifted"]}
    assert caught, f"{name} was not caught: {[(r['check'], r['value']) for r in rows]}"
    if name == "label prior":
        assert set(caught) == {"label_linf"}  # the images themselves did not change
    else:
        assert "label_linf" not in caught


def test_shifted_split_fails_validate_with_the_check_in_the_report(small_dataset, tmp_path, test_split):
    meta = datasets.read_metadata(small_dataset)
    splits = {s: datasets.load_split(small_dataset, s) for s in meta["splits"]}
    splits["test"] = SHIFTS["rotate 90"](*test_split)
    datasets.write_dataset(tmp_path / "d", splits, {"source": meta["source"]})
    with pytest.raises(UserError, match=r"split 'test': drift: .* > threshold"):
        validate(str(tmp_path / "d"), str(tmp_path / "v"))
    rows = json.loads((tmp_path / "v" / "drift.json").read_text())
    assert any(r["split"] == "test" and r["check"] == "mean_image_rms" and r["drifted"] for r in rows)
    assert not any(r["split"] == "eval" and r["drifted"] for r in rows)
    page = (tmp_path / "v" / "report.html").read_text()
    assert_self_contained(page)
    assert page.count("data:image/png;base64,") >= 3 + 10  # charts + per-class mean images
    for r in rows:  # every check with its value and threshold
        assert f"<td>{r['value']:.4g}</td><td>{r['threshold']:.4g}</td>" in page


def test_reference_from_other_data_is_a_one_line_error(small_dataset, tmp_path):
    validate(small_dataset, str(tmp_path / "ref"))
    stats = json.loads((tmp_path / "ref" / "statistics.json").read_text())
    other_shape = {k: {**v, "shape": [32, 32]} for k, v in stats.items()}
    other_classes = {k: {**v, "label_shares": v["label_shares"][:5]} for k, v in stats.items()}
    broken_profile = {k: {**v, "profile": {**v["profile"], "row_mass": [0.1] * 32}} for k, v in stats.items()}
    for name, ref, field in (("shape", other_shape, "train.shape"), ("classes", other_classes, "train.label_shares"),
                             ("profile", broken_profile, "train.profile")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(ref))
        with pytest.raises(UserError) as exc:
            validate(small_dataset, str(tmp_path / f"v-{name}"), reference_statistics=str(path))
        assert str(exc.value).startswith(f"{path}: field '{field}'") and "\n" not in str(exc.value)
        assert not (tmp_path / f"v-{name}").exists()


def test_schema_that_does_not_parse_is_a_one_line_error(small_dataset, tmp_path):
    (tmp_path / "schema.json").write_text('{"image_shape": [28, 28], "dtype": ')
    with pytest.raises(UserError) as exc:
        validate(small_dataset, str(tmp_path / "v"), schema_path=str(tmp_path / "schema.json"))
    assert str(exc.value).startswith(f"{tmp_path / 'schema.json'}: invalid JSON") and "\n" not in str(exc.value)
    assert not (tmp_path / "v").exists()
