"""KFP component: statistics, schema, anomalies and an HTML report (imgclf.steps.validate)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def validate_op(dataset: Input[Dataset], schema_uri: str, reference_statistics_uri: str, statistics: Output[Artifact],
                report: Output[HTML]):
    """Fail the run on data anomalies; schema_uri '' infers the schema from the train split.

    reference_statistics_uri: an earlier run's statistics.json (e.g. the statistics artifact of
    the last good run in the bucket) to check drift against; '' skips that check.
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("validate")  # a UserError ends the task in one line, no traceback

    import os
    import shutil

    from imgclf.steps.validate import validate

    try:
        result = validate(dataset.path, statistics.path, schema_uri or None,
                          reference_statistics=reference_statistics_uri or None)
    finally:
        if os.path.exists(os.path.join(statistics.path, "report.html")):
            shutil.copyfile(os.path.join(statistics.path, "report.html"), report.path)
    statistics.metadata["anomalies"] = len(result["anomalies"])
