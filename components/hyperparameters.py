"""KFP component: the pipeline's hyperparameter parameters as the JSON string train consumes.

Train reads its hyperparameters from one JSON string: this step's when no tuner
ran, a tuning component's otherwise (dsl.OneOf picks the branch that ran; kfp's
local runner resolves OneOf over parameters but not over artifacts).
"""

from kfp import dsl

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def default_hyperparameters_op(conv1_filters: int, conv2_filters: int, kernel_size: int, dense_units: int,
                               dropout: float, learning_rate: float, min_lr_fraction: float,
                               batch_size: int) -> str:
    """Check the given (untuned) hyperparameters and return them as JSON."""
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("hyperparameters")  # a UserError ends the task in one line, no traceback

    import json

    from imgclf.model.hyperparams import HyperParams

    hp = HyperParams(conv1_filters=conv1_filters, conv2_filters=conv2_filters, kernel_size=kernel_size,
                     dense_units=dense_units, dropout=dropout, learning_rate=learning_rate,
                     min_lr_fraction=min_lr_fraction, batch_size=batch_size)
    return json.dumps({k: v for k, v in hp.to_dict().items() if k != "epochs"}, sort_keys=True)
