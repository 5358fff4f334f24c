"""tf.data input pipelines over in-memory uint8 arrays, shared by train and tune.

Built once per fit from arrays already in memory (no decoding, no files):
shuffled, batched and prefetched training batches, and large evaluation
batches (no gradient step, so big batches are cheap). `make bench` compared
this per-example shuffle with gathering each batch by shuffled row index (one
tensor, no shuffle buffer, so one copy of the split fewer): per-example was
1.10x and 1.14x bare `model.fit` in two runs, gathering 0.98x and 0.94x, so
this path stays (README "Speed"). XLA (jit_compile=True) was ~8x slower on the
2-core CPU, so it stays off. Works on every Keras backend: Keras consumes tf.data on JAX too.
"""

from __future__ import annotations

import numpy as np

EVAL_BATCH_SIZE = 1024


def train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Shuffled (reshuffled each epoch, seeded) batches of ([B,28,28,1] uint8, [B] labels)."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def gathered_train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """The alternative measured by bench/train_speed.py: one tensor, each batch gathered by shuffled row index."""
    import tensorflow as tf

    x, y = tf.constant(images[..., None]), tf.constant(labels)
    order = tf.data.Dataset.range(len(labels)).shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return (order.batch(batch_size)
            .map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows)), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int = EVAL_BATCH_SIZE):
    """Batches in order for validation/evaluation."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((images[..., None], labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
