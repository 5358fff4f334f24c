"""tf.data input pipelines over in-memory uint8 arrays, shared by train and tune.

Built once per fit from arrays already in memory (no decoding, no files). The
images go into one TF tensor; each epoch shuffles only the row indices (seeded,
reshuffled every epoch) and a batch is one `tf.gather` of its rows. The older
path (`from_tensor_slices(images).shuffle(len)`) paid per-example overhead and
held a third copy of the split in its shuffle buffer; bench/train_speed.py
compares the two in one run. Evaluation uses large batches in order (no gradient
step, so big batches are cheap). XLA (jit_compile=True) was ~8x slower on the
2-core CPU, so it stays off. Works on every Keras backend: Keras consumes tf.data on JAX too.
"""

from __future__ import annotations

import numpy as np

EVAL_BATCH_SIZE = 1024


def train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Shuffled (reshuffled each epoch, seeded) batches of ([B,28,28,1] uint8, [B] labels)."""
    import tensorflow as tf

    x = tf.constant(images[..., None])  # the one TF-side copy; the numpy array can be dropped by the caller
    y = tf.constant(labels)
    order = tf.data.Dataset.range(len(labels)).shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return (order.batch(batch_size)
            .map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows)), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int = EVAL_BATCH_SIZE):
    """Batches in order for validation/evaluation."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((images[..., None], labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
