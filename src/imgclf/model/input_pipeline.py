"""tf.data input pipelines over in-memory uint8 arrays, shared by train, tune and the label audit.

Training batches are cut from the numpy arrays the step loaded, by a seeded permutation
drawn afresh each epoch (`train_batches`): the only full copy of the split is that array,
each batch is a 128-row fancy index (~0.1 ms), and tf.data prefetches batches on its own
thread while the model trains. The two alternatives stay for `bench/train_speed.py`:
`shuffle_buffer_train_batches` (from_tensor_slices + a full-size shuffle buffer: the
split three more times in memory) and `gathered_train_batches` (one tensor, a gather per
batch). README "Speed" has the measurements. XLA (jit_compile=True) was ~8x slower on the
2-core CPU, so it stays off. Works on every Keras backend: Keras consumes tf.data on JAX too.

Every dataset here runs with tf.data's autotuning off and fixed prefetch buffers (`_finish`):
autotuning keeps a model-optimising thread per iterator, and destroying an iterator (Keras makes
one per epoch, and one per validation pass) waits for that thread, which stalled a 3-epoch fit by
3-4 s at an epoch boundary or at its end in most runs on 2 cores (README "Speed").
"""

from __future__ import annotations

import math

import numpy as np

EVAL_BATCH_SIZE = 1024
PREFETCH_BATCHES = 4


def steps_per_epoch(examples: int, batch_size: int) -> int:
    """Training steps in one epoch of train_batches: the last batch may be short, never dropped."""
    return math.ceil(examples / batch_size)


def _finish(ds, prefetch: int):
    """Prefetch `prefetch` batches on tf.data's own thread, with autotuning off (see the module docstring)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(prefetch).with_options(options)


def shuffled_batches(features: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Shuffled batches of (features[rows], labels[rows]), a new seeded order each epoch, no copy of the arrays."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    n = len(labels)

    def batches():  # called again by tf.data at the start of every epoch: a fresh permutation each time
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            yield features[rows], labels[rows]

    signature = (tf.TensorSpec((None, *features.shape[1:]), tf.as_dtype(features.dtype)),
                 tf.TensorSpec((None,), tf.as_dtype(labels.dtype)))
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # A known length: Keras then sizes epochs (and steps_per_execution) without probing for the end.
    return _finish(ds.apply(tf.data.experimental.assert_cardinality(steps_per_epoch(n, batch_size))),
                   PREFETCH_BATCHES)


def train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """Shuffled batches of ([B,28,28,1] uint8, [B] labels), a new seeded order each epoch, no copy of the split."""
    # A [N,28,28,1] view of the [N,28,28] array: the channel axis costs no copy.
    return shuffled_batches(images[..., None], labels, batch_size, seed)


def shuffle_buffer_train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """The alternative measured by bench/train_speed.py: per-example shuffle buffer over the whole split."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images[..., None], labels))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return _finish(ds.batch(batch_size), PREFETCH_BATCHES)


def gathered_train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """The alternative measured by bench/train_speed.py: one tensor, each batch gathered by shuffled row index."""
    import tensorflow as tf

    x, y = tf.constant(images[..., None]), tf.constant(labels)
    order = tf.data.Dataset.range(len(labels)).shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return _finish(order.batch(batch_size).map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows))),
                   PREFETCH_BATCHES)


def eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int = EVAL_BATCH_SIZE):
    """Batches in order for validation/evaluation."""
    import tensorflow as tf

    return _finish(tf.data.Dataset.from_tensor_slices((images[..., None], labels)).batch(batch_size), 2)
