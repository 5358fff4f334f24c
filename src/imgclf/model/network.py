"""The classifier: the classic MNIST CNN, sizes configurable, written against Keras 3 only.

Conv(c1)-MaxPool-Conv(c2)-MaxPool-Flatten-Dropout-[Dense(units)]-Dense(10, softmax).
Also the label audit's cheaper model (build_audit_model), a one-hidden-layer perceptron.
No backend-specific ops, so the same code trains on TensorFlow (default; needed
for SavedModel/TFLite export) or JAX (KERAS_BACKEND=jax). Pixel scaling is
part of the model, so it takes raw 0..255 values.
"""

from __future__ import annotations

from imgclf import settings
from imgclf.model.hyperparams import HyperParams


def build_model(hp: HyperParams, steps_per_execution: int = 1):
    """Build and compile the CNN for hyperparameters hp.

    steps_per_execution > 1 runs that many training steps per call into the compiled
    function (less Python per step; Keras' own option).
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH, 1), name=settings.SERVING_INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Conv2D(hp.conv1_filters, hp.kernel_size, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(hp.conv2_filters, hp.kernel_size, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(hp.dropout)(x)
    if hp.dense_units:
        x = layers.Dense(hp.dense_units, activation="relu")(x)
    outputs = layers.Dense(settings.NUM_CLASSES, activation="softmax", name=settings.SERVING_OUTPUT_PROBABILITIES)(x)
    model = keras.Model(inputs, outputs, name="cnn")
    model.compile(optimizer=keras.optimizers.Adam(hp.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)
    return model


def build_audit_model(hidden_units: int, input_dropout: float, learning_rate: float, decay_steps: int,
                      steps_per_execution: int = 1):
    """Build and compile the label audit's model: Flatten-Dropout(input_dropout)-Dense(hidden_units, relu)-
    Dense(10, softmax), Adam with its learning rate cosine-decayed to 0 over decay_steps.

    A one-hidden-layer perceptron on the raw pixels: on 2 CPU cores, as the label audit's k-fold model,
    it finds injected label flips as well as the seed CNN did (bench/label_audit_bench.py) in about a
    seventh of the CPU time, which is what auditing the whole train split needs.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=(settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH, 1), name=settings.SERVING_INPUT_NAME)
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    x = layers.Flatten()(x)
    x = layers.Dropout(input_dropout)(x)
    x = layers.Dense(hidden_units, activation="relu")(x)
    outputs = layers.Dense(settings.NUM_CLASSES, activation="softmax", name=settings.SERVING_OUTPUT_PROBABILITIES)(x)
    model = keras.Model(inputs, outputs, name="audit_mlp")
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(decay_steps, 1))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  steps_per_execution=steps_per_execution)
    return model
