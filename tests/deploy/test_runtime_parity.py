"""The comparison behind `make runtime-parity` (the check itself installs TensorFlow, so it runs outside `make test`)."""

from __future__ import annotations

import numpy as np

from tests.runtime_parity import TOLERANCE, compare, serving_tf_version


def _outputs(probabilities, classes):
    return {"serving_default/probabilities": np.asarray(probabilities, np.float32),
            "serving_default/class_id": np.asarray(classes, np.int64)}


def test_compare_accepts_equal_and_tiny_differences_only():
    p = np.full((4, 10), 0.1, np.float32)
    assert compare(_outputs(p, [1, 2, 3, 4]), _outputs(p + TOLERANCE / 2, [1, 2, 3, 4])) == []
    assert compare(_outputs(p, [1, 2, 3, 4]), _outputs(p + 1e-3, [1, 2, 3, 4])) == [
        "serving_default/probabilities: max abs difference 1.00e-03 > 1e-05"]
    assert compare(_outputs(p, [1, 2, 3, 4]), _outputs(p, [1, 2, 0, 4])) == [
        "serving_default/class_id: 1 of 4 class ids differ"]
    assert compare(_outputs(p, [1, 2, 3, 4]), _outputs(p[:3], [1, 2, 3])) == [
        "serving_default/class_id: training int64(4,) vs serving int64(3,)",
        "serving_default/probabilities: training float32(4, 10) vs serving float32(3, 10)"]


def test_serving_version_comes_from_the_configured_images():
    assert serving_tf_version() == "2.20.0"
