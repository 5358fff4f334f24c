"""KFP component: push a blessed model to the serving layout (imgclf.steps.push)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def push_op(model: Input[Model], evaluation: Input[Artifact], push_base: str, model_name: str,
            rollout_inferenceservice: str, pushed: Output[Artifact]) -> str:
    """Copy the SavedModel to <push_base>/<model_name>/<next version>/; returns the version's URI.

    rollout_inferenceservice '[NAMESPACE/]NAME' (not ''): then patch that InferenceService so KServe serves it.
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("push")  # a UserError ends the task in one line, no traceback

    import json
    import os

    from imgclf.steps.push import push

    result = push(model.path, os.path.join(evaluation.path, "blessing.json"), push_base, model_name)
    if rollout_inferenceservice:
        from imgclf.steps import rollout as kserve_rollout

        print(kserve_rollout.roll_after_push(rollout_inferenceservice, result), flush=True)
    pushed.metadata.update(result)
    with open(pushed.path, "w") as f:
        json.dump(result, f)
    return result["uri"]
