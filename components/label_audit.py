"""KFP component: confident-learning label audit of the train split (imgclf.steps.label_audit)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def label_audit_op(dataset: Input[Dataset], max_examples: int, seed: int, issues: Output[Artifact],
                   report: Output[HTML], metrics: Output[Metrics]):
    """Report suspected mislabelled training examples (label_issues.json + an HTML page with thumbnails):
    cleanlab on k-fold out-of-fold probabilities of a one-hidden-layer network; max_examples 0 audits all
    of train."""
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("label_audit")  # a UserError ends the task in one line, no traceback

    import os
    import shutil

    from imgclf.steps.label_audit import label_audit

    summary = label_audit(dataset.path, issues.path, max_examples=max_examples, seed=seed)
    shutil.copyfile(os.path.join(issues.path, "report.html"), report.path)
    for key in ("audited", "issues", "estimated_noise_rate", "cut", "cut_fraction", "oof_accuracy"):
        metrics.log_metric(f"label_audit_{key}", summary[key])
