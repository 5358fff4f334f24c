"""KFP component: TFLite dynamic-range and int8 export with size and accuracy vs the SavedModel (imgclf.steps.export_tflite)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from imgclf import settings


@dsl.component(base_image=settings.CPU_IMAGE, install_kfp_package=False)
def export_tflite_op(dataset: Input[Dataset], model: Input[Model], tflite: Output[Model], metrics: Output[Metrics]):
    """Write model_dynamic_range.tflite, model_int8.tflite and tflite_report.json; log sizes and accuracies."""
    from imgclf.errors import exit_on_user_error

    exit_on_user_error("export_tflite")  # a UserError ends the task in one line, no traceback

    from imgclf.steps.export_tflite import VARIANTS, export_tflite

    report = export_tflite(model.path, dataset.path, tflite.path)
    metrics.log_metric("saved_model_accuracy", report["saved_model"]["accuracy"])
    metrics.log_metric("saved_model_size_bytes", report["saved_model"]["size_bytes"])
    for variant in VARIANTS:
        for key in ("accuracy", "accuracy_delta", "size_bytes", "size_ratio"):
            metrics.log_metric(f"{variant}_{key}", report[variant][key])
    tflite.metadata.update({"format": "tflite", "variants": list(VARIANTS), "test_examples": report["test_examples"]})
