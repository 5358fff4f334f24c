"""KFP component: train the CNN and export a SavedModel (imgclf.steps.train)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def train_op(dataset: Input[Dataset], hyperparameters: str, epochs: int, seed: int, precision: str,
             model: Output[Model], tensorboard: Output[Artifact], metrics: Output[Metrics]):
    """Train with `hyperparameters`, a JSON object from a tuner or the defaults step.

    epochs, seed and precision (auto | float32 | mixed_bfloat16: imgclf.model.precision) always come from the
    pipeline parameters. The model is saved in float32 whatever precision trained it.
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("train")  # a UserError ends the task in one line, no traceback

    import json

    from imgclf.model.hyperparams import HyperParams
    from imgclf.steps.train import train

    values = json.loads(hyperparameters)
    values.pop("seed", None)
    values["epochs"] = epochs
    hp = HyperParams.from_dict(values, source="train_op hyperparameters")
    summary = train(dataset.path, model.path, hp, seed=seed, tensorboard_dir=tensorboard.path, precision=precision)
    model.metadata.update({**hp.to_dict(), "framework": "keras", "format": "saved_model",
                           "training_precision": summary["precision"]})
    for key in ("final_val_accuracy", "final_val_loss", "best_val_accuracy", "train_seconds", "samples_per_second"):
        metrics.log_metric(key, summary[key])
