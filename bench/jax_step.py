"""The trainer on Keras' JAX backend against a hand-written jitted JAX train step, same CNN, batch 1024, one run.

    KERAS_BACKEND=jax .venv/bin/python bench/jax_step.py --dataset DIR [--examples 24576] [--epochs 3]

Reference: the seed CNN (Conv32-Pool-Conv64-Pool-Dropout-Dense10, Adam 1e-3) written
directly in jax.numpy/lax, one `jax.jit`-compiled step (forward, gradient, Adam update)
over data already on the device (a permutation gather per batch, no host copies).
Trainer: imgclf.steps.train.fit with the same batch size on the same images.
--dtype bfloat16 runs the reference's convolutions and matmuls in bf16 (f32 weights and
loss); the accuracy of both after the last epoch is printed so a dtype that loses
accuracy shows. Steady-state samples/s (the first epoch, with compilation, apart).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def reference(x_all, y_all, x_eval, y_eval, batch: int, epochs: int, dtype: str, seed: int = 0) -> dict:
    import jax
    import jax.numpy as jnp

    compute = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    key = jax.random.PRNGKey(seed)
    k1, k2, k3 = jax.random.split(key, 3)

    def glorot(k, shape, fan_in, fan_out):
        limit = (6.0 / (fan_in + fan_out)) ** 0.5
        return jax.random.uniform(k, shape, jnp.float32, -limit, limit)

    params = {"c1": glorot(k1, (3, 3, 1, 32), 9, 9 * 32), "b1": jnp.zeros(32),
              "c2": glorot(k2, (3, 3, 32, 64), 9 * 32, 9 * 64), "b2": jnp.zeros(64),
              "w": glorot(k3, (7 * 7 * 64, 10), 7 * 7 * 64, 10), "b": jnp.zeros(10)}

    def forward(p, images, dropout_key=None):
        h = (images.astype(jnp.float32) / 255.0).astype(compute)
        for c, b in (("c1", "b1"), ("c2", "b2")):
            h = jax.lax.conv_general_dilated(h, p[c].astype(compute), (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + p[b].astype(compute))
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
        h = h.reshape(h.shape[0], -1)
        if dropout_key is not None:
            keep = jax.random.bernoulli(dropout_key, 0.5, h.shape)
            h = jnp.where(keep, h * 2, 0).astype(compute)
        return (h @ p["w"].astype(compute)).astype(jnp.float32) + p["b"]

    def loss_fn(p, images, labels, dropout_key):
        logits = forward(p, images, dropout_key)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-7
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    @jax.jit
    def step(p, m, v, t, x, y, rows, dropout_key):
        images, labels = x[rows], y[rows]
        loss, g = jax.value_and_grad(loss_fn)(p, images, labels, dropout_key)
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        alpha = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p = jax.tree_util.tree_map(lambda w, a, b: w - alpha * a / (jnp.sqrt(b) + eps), p, m, v)
        return p, m, v, loss

    predict = jax.jit(lambda p, images: jnp.argmax(forward(p, images), axis=1))
    x = jax.device_put(x_all[..., None])
    y = jax.device_put(y_all.astype(jnp.int32))
    n, steps = len(y_all), len(y_all) // batch
    seconds, t = [], 0
    for epoch in range(epochs):
        key, perm_key = jax.random.split(key)
        perm = jax.random.permutation(perm_key, n)
        start = time.perf_counter()
        for i in range(steps):
            key, dk = jax.random.split(key)
            t += 1
            params, m, v, loss = step(params, m, v, t, x, y, perm[i * batch:(i + 1) * batch], dk)
        loss.block_until_ready()
        seconds.append(time.perf_counter() - start)
    accuracy = float(jnp.mean(predict(params, jax.device_put(x_eval[..., None])) == y_eval))
    steady = seconds[1:] or seconds
    return {"samples_per_second": round(steps * batch * len(steady) / sum(steady), 1), "val_accuracy": round(accuracy, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--examples", type=int, default=24576)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args()

    import jax
    import keras

    from imgclf.data import datasets
    from imgclf.model.hyperparams import HyperParams
    from imgclf.steps import train as train_step

    if keras.backend.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    x, y = datasets.load_split(args.dataset, "train")
    x, y = x[: args.examples], y[: args.examples]
    x_eval, y_eval = datasets.load_split(args.dataset, "eval")
    ref = reference(x, y, x_eval, y_eval, args.batch_size, args.epochs, args.dtype)
    ref_bf16 = reference(x, y, x_eval, y_eval, args.batch_size, args.epochs, "bfloat16") \
        if args.dtype == "float32" else None
    hp = HyperParams(batch_size=args.batch_size, epochs=args.epochs)
    _, history = train_step.fit(hp, (x, y), (x_eval, y_eval), seed=0, metrics_format="none")
    steady = history["train_seconds"][1:] or history["train_seconds"]
    trainer_rate = len(y) * len(steady) / sum(steady)
    print(json.dumps({
        "backend": keras.backend.backend(), "devices": [str(d) for d in jax.devices()], "batch_size": args.batch_size,
        "examples": int(len(y)), "epochs": args.epochs, "dtype": args.dtype,
        "reference_samples_per_second": ref["samples_per_second"], "reference_val_accuracy": ref["val_accuracy"],
        "reference_bf16_samples_per_second": ref_bf16["samples_per_second"] if ref_bf16 else None,
        "reference_bf16_val_accuracy": ref_bf16["val_accuracy"] if ref_bf16 else None,
        "trainer_samples_per_second": round(trainer_rate, 1),
        "trainer_val_accuracy": round(history["val_accuracy"][-1], 4),
        "ratio_trainer_to_reference": round(trainer_rate / ref["samples_per_second"], 3),
        "target_ratio_min": 0.5}))


if __name__ == "__main__":
    main()
