"""The hyperparameters, defined once: one frozen dataclass with the defaults of the untuned model.

Everything else reads it: the pipeline's parameters (pipelines/training_pipeline.py takes its
defaults from HyperParams(); tests/pipelines/test_pipeline.py fails on any drift in names, types or
defaults), the untuned-branch component (components/hyperparameters.py), the trainer's --flags
(steps/train.py, generated from the fields), the search space (model/search_space.py validates its
parameter names and types against the fields) and so the Katib trial parameters generated from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from imgclf.errors import UserError


@dataclass(frozen=True)
class HyperParams:
    """Everything that shapes the model and its training. The defaults are the untuned baseline, the
    classic MNIST CNN."""

    conv1_filters: int = 32
    conv2_filters: int = 64
    kernel_size: int = 3
    dense_units: int = 0  # 0: no hidden dense layer (the classic architecture)
    dropout: float = 0.5
    # Adam's peak rate. 3e-3, not Keras' 1e-3: under the decay below, 1e-3 undertrains in 3 epochs (test 0.8699
    # against 0.8833 constant); 3e-3 reaches 0.8907 (README "Training: the learning-rate schedule").
    learning_rate: float = 3e-3
    # The learning rate cosine-decays over the whole run from learning_rate to this fraction of it; 1.0 keeps it
    # constant.
    min_lr_fraction: float = 0.0
    batch_size: int = 128
    epochs: int = 3

    def __post_init__(self):
        for name in ("conv1_filters", "conv2_filters", "kernel_size", "batch_size", "epochs"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"hyperparameter {name}={getattr(self, name)}: must be >= 1")
        if self.dense_units < 0:
            raise UserError(f"hyperparameter dense_units={self.dense_units}: must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"hyperparameter dropout={self.dropout}: must be in [0, 1)")
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            raise UserError(f"hyperparameter min_lr_fraction={self.min_lr_fraction}: must be in [0, 1]")
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


def tunable_fields() -> tuple[str, ...]:
    """Every field but `epochs` (a run's budget, not a searched parameter): the untuned branch's inputs."""
    return tuple(f.name for f in fields(HyperParams) if f.name != "epochs")
