"""KFP component: ingest IDX files into a Dataset artifact (imgclf.steps.ingest)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def ingest_op(data_uri: str, eval_fraction: float, seed: int, max_train_examples: int, max_test_examples: int,
              dataset: Output[Dataset]):
    """Read MNIST-format IDX files from data_uri (local, gs:// or s3://) and write the split dataset."""
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("ingest")  # a UserError ends the task in one line, no traceback

    from imgclf.steps.ingest import ingest

    meta = ingest(data_uri, dataset.path, eval_fraction=eval_fraction, seed=seed,
                  max_train_examples=max_train_examples, max_test_examples=max_test_examples)
    dataset.metadata["format"] = meta["format"]
    for split, info in meta["splits"].items():
        dataset.metadata[f"{split}_count"] = info["count"]
        dataset.metadata[f"{split}_sha256"] = info["sha256"]
