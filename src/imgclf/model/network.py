"""The classifier: the classic MNIST CNN, sizes configurable, written against Keras 3 only.

Conv(c1)-MaxPool-Conv(c2)-MaxPool-Flatten-Dropout-[Dense(units)]-Dense(10, softmax).
No backend-specific ops, so the same code trains on TensorFlow (default; needed
for SavedModel/TFLite export) or JAX (KERAS_BACKEND=jax). Pixel scaling is
part of the model, so it takes raw 0..255 values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from imgclf import settings
from imgclf.errors import UserError


@dataclass(frozen=True)
class HyperParams:
    """Everything that shapes the model and its training; defaults from settings.TRAIN."""

    conv1_filters: int = settings.TRAIN.conv1_filters
    conv2_filters: int = settings.TRAIN.conv2_filters
    kernel_size: int = settings.TRAIN.kernel_size
    dense_units: int = settings.TRAIN.dense_units
    dropout: float = settings.TRAIN.dropout
    learning_rate: float = settings.TRAIN.learning_rate
    batch_size: int = settings.TRAIN.batch_size
    epochs: int = settings.TRAIN.epochs

    def __post_init__(self):
        for name in ("conv1_filters", "conv2_filters", "kernel_size", "batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"hyperparameter {name}={getattr(self, name)}: must be >= 1")
        if self.dense_units < 0:
            raise UserError(f"hyperparameter dense_units={self.dense_units}: must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"hyperparameter dropout={self.dropout}: must be in [0, 1)")
        if not self.learning_rate > 0:
            raise UserError(f"hyperparameter learning_rate={self.learning_rate}: must be > 0")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str = "hyperparameters") -> "HyperParams":
        """Build from a dict (e.g. tuner output); unknown keys are an error, missing keys take defaults."""
        if not isinstance(values, dict):
            raise UserError(f"{source}: expected a JSON object of hyperparameters, got {type(values).__name__}")
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"{source}: unknown hyperparameter(s) {', '.join(unknown)} (known: {', '.join(known)})")
        cast = {}
        for key, value in values.items():
            try:
                if isinstance(value, bool):
                    raise ValueError
                number = float(value)
                if not math.isfinite(number) or (known[key] == "int" and not number.is_integer()):
                    raise ValueError
                cast[key] = number if known[key] == "float" else int(number)
            except (TypeError, ValueError):
                raise UserError(f"{source}: hyperparameter {key}={value!r} is not a valid {known[key]}") from None
        return cls(**cast)


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
