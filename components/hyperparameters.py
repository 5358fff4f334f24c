"""KFP component: turn the pipeline's hyperparameter parameters into a hyperparameters artifact.

Train always reads its hyperparameters from an artifact holding
best_hyperparameters.json; this step writes it when no tuner ran, and the
tuning components write the same file when one did (dsl.OneOf picks it).
"""

from kfp import dsl
from kfp.dsl import Artifact, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def default_hyperparameters_op(conv1_filters: int, conv2_filters: int, kernel_size: int, dense_units: int,
                               dropout: float, learning_rate: float, batch_size: int,
                               hyperparameters: Output[Artifact]):
    """Write the given (untuned) hyperparameters as <artifact>/best_hyperparameters.json."""
    import json
    import os

    from imgclf.model import HyperParams

    hp = HyperParams(conv1_filters=conv1_filters, conv2_filters=conv2_filters, kernel_size=kernel_size,
                     dense_units=dense_units, dropout=dropout, learning_rate=learning_rate, batch_size=batch_size)
    values = {k: v for k, v in hp.to_dict().items() if k != "epochs"}
    os.makedirs(hyperparameters.path, exist_ok=True)
    with open(os.path.join(hyperparameters.path, "best_hyperparameters.json"), "w") as f:
        json.dump(values, f, indent=2, sort_keys=True)
    hyperparameters.metadata.update({**values, "source": "pipeline parameters"})
