"""KFP component: test-set metrics for the dashboard and the blessing (imgclf.steps.evaluate)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def evaluate_op(dataset: Input[Dataset], model: Input[Model], push_base: str, model_name: str,
                accuracy_threshold: float, change_tolerance: float, evaluation: Output[Artifact],
                metrics: Output[Metrics], confusion: Output[ClassificationMetrics], report: Output[HTML]) -> bool:
    """Evaluate on the full test split; returns blessed = above threshold and not worse than the pushed model.

    evaluation holds evaluation.json, blessing.json, report.html and model_card.md (push copies the
    card into the pushed version); report is the same HTML page for the dashboard.

    (A single return value rather than a NamedTuple: kfp's local runner resolves
    dsl.If conditions on a task's single "Output" but not on named outputs.)
    """
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("evaluate")  # a UserError ends the task in one line, no traceback

    import os
    import shutil

    from imgclf import settings
    from imgclf.steps.evaluate import evaluate

    result = evaluate(dataset.path, model.path, evaluation.path, push_base, model_name,
                      accuracy_threshold, change_tolerance)
    m, blessing = result["metrics"], result["blessing"]
    metrics.log_metric("accuracy", m["accuracy"])
    metrics.log_metric("loss", m["loss"])
    metrics.log_metric("ece", result["analysis"]["calibration"]["ece"])
    for name, values in m["per_class"].items():
        metrics.log_metric(f"precision/{name}", values["precision"])
        metrics.log_metric(f"recall/{name}", values["recall"])
    if blessing["baseline"] and "accuracy" in blessing["baseline"]:
        metrics.log_metric("baseline_accuracy", blessing["baseline"]["accuracy"])
    metrics.log_metric("blessed", float(blessing["blessed"]))
    confusion.log_confusion_matrix(list(settings.CLASS_NAMES), m["confusion_matrix"])
    shutil.copyfile(os.path.join(evaluation.path, "report.html"), report.path)
    evaluation.metadata.update({"blessed": blessing["blessed"], "reasons": blessing["reasons"]})
    return bool(blessing["blessed"])
