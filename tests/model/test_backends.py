"""The trainer on Keras' JAX backend: trains, and still exports a SavedModel TensorFlow serves.

`make venv` installs jax (CPU) with the dev set, so `make test` runs this; skipped only where jax is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

from imgclf.steps.evaluate import evaluate


@pytest.mark.skipif(find_spec("jax") is None, reason="jax not installed (pip install -e .[jax])")
@pytest.mark.parametrize("choice, expected", [("auto", "float32"), ("mixed_bfloat16", "mixed_bfloat16")])
def test_train_on_jax_exports_a_servable_model(small_dataset, tmp_path, choice, expected):
    """auto is float32 on JAX's CPU backend; mixed_bfloat16 (what auto picks on a recent GPU) trains in bf16 on JAX
    and still saves a float32 model TensorFlow serves."""
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-m", "imgclf.steps.train", "--dataset", small_dataset,
                           "--output", str(tmp_path / "m"), "--epochs", "2", "--batch-size", "64",
                           "--precision", choice],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["precision"] == expected
    result = evaluate(small_dataset, str(tmp_path / "m"), str(tmp_path / "e"), str(tmp_path / "none"), "m", 0.5)
    assert result["metrics"]["accuracy"] > 0.6
    assert abs(result["metrics"]["accuracy"] - summary["final_val_accuracy"]) < 0.1
