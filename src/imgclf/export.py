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
    """Write model as a TF SavedModel directory at path (TensorFlow backend required)."""
    import keras
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
