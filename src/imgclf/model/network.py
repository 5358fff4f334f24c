"""The classifier: the classic MNIST CNN, sizes configurable, written against Keras 3 only.

Conv(c1)-MaxPool-Conv(c2)-MaxPool-Flatten-Dropout-[Dense(units)]-Dense(10, softmax), trained with
Adam whose learning rate cosine-decays over the whole run (HyperParams.min_lr_fraction sets the floor).
Also the label audit's cheaper model (build_audit_model), a one-hidden-layer perceptron on principal components.
No backend-specific ops, so the same code trains on TensorFlow (default; needed
for SavedModel/TFLite export) or JAX (KERAS_BACKEND=jax). Pixel scaling is
part of the model, so it takes raw 0..255 values.
"""

from __future__ import annotations

from imgclf import settings
from imgclf.model.hyperparams import HyperParams


def build_model(hp: HyperParams, steps_per_execution: int = 1, decay_steps: int = 0,
                precision: str = settings.DEFAULT_PRECISION):
    """Build and compile the CNN for hyperparameters hp.

    decay_steps > 0: Adam's learning rate cosine-decays from hp.learning_rate to
    hp.min_lr_fraction of it over that many training steps (the whole run: learning_schedule_steps),
    then stays there; 0 (or min_lr_fraction 1) keeps it constant.
    steps_per_execution > 1 runs that many training steps per call into the compiled
    function (less Python per step; Keras' own option).
    precision: auto | float32 | mixed_bfloat16 (imgclf.model.precision): every layer but the softmax takes
    that dtype policy (set per layer, not globally, so models built later in the process are unaffected).
    """
    import keras
    from keras import layers

    from imgclf.model.precision import resolve

    dtype = resolve(precision)
    inputs = keras.Input(shape=(settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH, 1), name=settings.SERVING_INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0, dtype=dtype)(inputs)
    x = layers.Conv2D(hp.conv1_filters, hp.kernel_size, activation="relu", padding="same", dtype=dtype)(x)
    x = layers.MaxPooling2D(2, dtype=dtype)(x)
    x = layers.Conv2D(hp.conv2_filters, hp.kernel_size, activation="relu", padding="same", dtype=dtype)(x)
    x = layers.MaxPooling2D(2, dtype=dtype)(x)
    x = layers.Flatten(dtype=dtype)(x)
    x = layers.Dropout(hp.dropout, dtype=dtype)(x)
    if hp.dense_units:
        x = layers.Dense(hp.dense_units, activation="relu", dtype=dtype)(x)
    # The softmax in float32 under any policy (bf16 probabilities would round to 3 significant digits).
    outputs = layers.Dense(settings.NUM_CLASSES, activation="softmax", dtype="float32",
                           name=settings.SERVING_OUTPUT_PROBABILITIES)(x)
    model = keras.Model(inputs, outputs, name="cnn")
    learning_rate = hp.learning_rate
    if decay_steps > 0 and hp.min_lr_fraction < 1.0:
        learning_rate = keras.optimizers.schedules.CosineDecay(hp.learning_rate, decay_steps, alpha=hp.min_lr_fraction)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model


def float32_twin(model, hp: HyperParams, steps_per_execution: int = 1, decay_steps: int = 0):
    """The same network in float32 carrying `model`'s weights: what the trainer saves after a mixed_bfloat16
    run (mixed precision keeps its weights in float32, so nothing is rounded). Returns `model` itself when
    it already computes in float32. The twin's optimizer is new (compiled, no state)."""
    if all(layer.compute_dtype == "float32" for layer in model.layers):
        return model
    twin = build_model(hp, steps_per_execution=steps_per_execution, decay_steps=decay_steps, precision="float32")
    twin.set_weights(model.get_weights())
    return twin


def learning_schedule_steps(hp: HyperParams, train_examples: int) -> int:
    """The training steps of a whole run (hp.epochs over train_examples): what build_model's decay spans."""
    from imgclf.model.input_pipeline import steps_per_epoch

    return steps_per_epoch(train_examples, hp.batch_size) * hp.epochs


def build_audit_model(features: int, hidden_units: int, input_dropout: float, learning_rate: float,
                      decay_steps: int, steps_per_execution: int = 1):
    """Build and compile the label audit's model: Dropout(input_dropout)-Dense(hidden_units, relu)-
    Dense(10, softmax) on `features` inputs, Adam with its learning rate cosine-decayed to 0 over decay_steps.

    A one-hidden-layer perceptron on each image's principal-component coordinates
    (imgclf.steps.label_audit.principal_components): on 2 CPU cores, as the label audit's k-fold
    model, it finds injected label flips as well as the seed CNN did (bench/label_audit_bench.py)
    for a small part of its CPU time, which is what auditing the whole train split needs.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(features,), name="components")
    x = layers.Dropout(input_dropout)(inputs)
    x = layers.Dense(hidden_units, activation="relu")(x)
    outputs = layers.Dense(settings.NUM_CLASSES, activation="softmax", name=settings.SERVING_OUTPUT_PROBABILITIES)(x)
    model = keras.Model(inputs, outputs, name="audit_mlp")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(decay_steps, 1))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    return model
