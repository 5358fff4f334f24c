"""Input pipelines: every row once per epoch in a fresh seeded order, and tf.data's autotuning off."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.data import datasets
from imgclf.model import input_pipeline


def _epoch(ds) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in ds))
    return np.concatenate(xs), np.concatenate(ys)


def test_train_batches_cover_every_row_once_per_epoch_in_a_new_seeded_order(small_dataset):
    x, _ = datasets.load_split(small_dataset, "train")
    x = x[:700]
    row_ids = np.arange(700, dtype=np.int64)  # as labels: each batch says which rows it holds
    ds = input_pipeline.train_batches(x, row_ids, batch_size=128, seed=5)
    assert int(ds.cardinality()) == input_pipeline.steps_per_epoch(700, 128) == 6
    first, second = _epoch(ds), _epoch(ds)
    for images, rows in (first, second):
        assert images.shape == (700, 28, 28, 1) and images.dtype == np.uint8
        assert sorted(rows.tolist()) == list(range(700))
        np.testing.assert_array_equal(images[..., 0], x[rows])  # each image with its own row's label
    assert not np.array_equal(first[1], second[1])  # reshuffled each epoch
    again = _epoch(input_pipeline.train_batches(x, row_ids, batch_size=128, seed=5))
    np.testing.assert_array_equal(again[1], first[1])  # seeded


def test_shuffled_batches_take_any_feature_shape():
    features = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    labels = np.arange(50, dtype=np.int64)
    got_x, got_y = _epoch(input_pipeline.shuffled_batches(features, labels, batch_size=16, seed=0))
    assert got_x.shape == (50, 3) and sorted(got_y.tolist()) == list(range(50))
    np.testing.assert_array_equal(got_x, features[got_y])


@pytest.mark.parametrize("make", [input_pipeline.train_batches, input_pipeline.shuffle_buffer_train_batches,
                                  input_pipeline.gathered_train_batches,
                                  lambda x, y, batch_size, seed: input_pipeline.eval_batches(x, y, batch_size)])
def test_every_input_pipeline_runs_without_autotuning(make):
    # Autotuned iterators stalled fits for seconds when Keras destroyed them (README "Speed").
    x, y = np.zeros((40, 28, 28), np.uint8), np.zeros(40, np.uint8)
    ds = make(x, y, batch_size=8, seed=0)
    assert ds.options().autotune.enabled is False
    assert sum(1 for _ in ds) == 5
