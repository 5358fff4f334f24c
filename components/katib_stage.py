"""KFP component: copy the Dataset artifact onto the Katib data PVC (imgclf.steps.katib_stage)."""

from kfp import dsl
from kfp.dsl import Dataset, Input

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def katib_stage_op(dataset: Input[Dataset]) -> str:
    """Stage the dataset under /data/datasets/<sha> (content-addressed, atomic); returns the path trials read.

    The only task that mounts the data PVC read-write (kfp-kubernetes mount_pvc at /data); it ends before
    the Experiment starts, so trials on other nodes can mount the claim (read-only) without a Multi-Attach.
    """
    from imgclf.steps.katib_stage import stage_dataset

    return stage_dataset(dataset.path)
