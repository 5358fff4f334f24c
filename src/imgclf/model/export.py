"""SavedModel export with the serving contract every consumer relies on.

Two signatures, both taking one input named "images" with raw pixel values
(0..255) shaped [N, 28, 28] or [N, 28, 28, 1]:
  serving_default  float32 input (what TF Serving's REST JSON maps to)
  serving_uint8    uint8 input (compact gRPC / TensorProto clients)
Both return {"probabilities": float32 [N, 10], "class_id": int64 [N]}.
We use keras.export.ExportArchive (what model.export() uses underneath)
because model.export() alone gives one fixed-dtype, fixed-rank signature.
"""

from __future__ import annotations

from pathlib import Path

from imgclf import settings


def export_saved_model(model, path: str | Path) -> Path:
    """Write model as a TF SavedModel directory at path.

    On the TensorFlow backend the live model is traced directly. On any other
    backend (e.g. JAX, for speed on GPU) the model is saved as .keras and exported
    by a TensorFlow-backend subprocess, since the signatures accept an unknown rank,
    which jax2tf cannot trace.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return _export_via_tensorflow(model, Path(path))
    import tensorflow as tf

    h, w = settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH

    def serve(images):
        wrong = f"images must be [N,{h},{w}] or [N,{h},{w},1]"
        shape = tf.shape(images)
        rank = tf.size(shape)
        dims = tf.concat([shape, tf.ones([4], tf.int32)], axis=0)[:4]  # rank 3 gets a trailing 1
        ok = (rank >= 3) & (rank <= 4) & (dims[1] == h) & (dims[2] == w) & (dims[3] == 1)
        tf.debugging.assert_equal(ok, True, message=wrong)
        x = tf.reshape(tf.cast(images, tf.float32), [-1, h, w, 1])
        probs = model(x, training=False)
        return {settings.SERVING_OUTPUT_PROBABILITIES: probs,
                settings.SERVING_OUTPUT_CLASS: tf.argmax(probs, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, dtype in ((settings.SERVING_SIGNATURE_FLOAT, tf.float32), (settings.SERVING_SIGNATURE_UINT8, tf.uint8)):
        archive.add_endpoint(name, serve, input_signature=[tf.TensorSpec(None, dtype, name=settings.SERVING_INPUT_NAME)])
    archive.write_out(str(path), verbose=False)
    return Path(path)


def _export_via_tensorflow(model, path: Path) -> Path:
    import os
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="imgclf-export-") as tmp:
        keras_file = Path(tmp) / "model.keras"
        model.save(keras_file)
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        done = subprocess.run([sys.executable, "-m", "imgclf.model.export", str(keras_file), str(path)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"SavedModel export on the TensorFlow backend failed: {tail}")
    return path


def load_serving_fn(path: str | Path):
    """Load an exported SavedModel; returns a callable float32 images -> probabilities (numpy)."""
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    endpoint = getattr(loaded, settings.SERVING_SIGNATURE_FLOAT)

    def predict(images):
        return endpoint(np.asarray(images, dtype=np.float32))[settings.SERVING_OUTPUT_PROBABILITIES].numpy()

    predict.loaded = loaded  # keep the SavedModel alive with the function
    return predict


def main(argv: list[str] | None = None) -> int:
    """`python -m imgclf.model.export MODEL.keras OUTPUT_DIR`: export a saved Keras model (TensorFlow backend)."""
    import argparse

    import keras

    from imgclf.errors import UserError

    parser = argparse.ArgumentParser(prog="python -m imgclf.model.export", description=main.__doc__)
    parser.add_argument("model", help="a .keras file written by imgclf-train")
    parser.add_argument("output", help="SavedModel directory to write")
    args = parser.parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise UserError(f"KERAS_BACKEND={keras.backend.backend()}: export needs the tensorflow backend")
    if not Path(args.model).is_file():
        raise UserError(f"{args.model}: no such Keras model file")
    export_saved_model(keras.models.load_model(args.model), args.output)
    print(f"exported {args.model} -> {args.output}")
    return 0


if __name__ == "__main__":
    from imgclf.errors import run_cli

    raise SystemExit(run_cli(main))
