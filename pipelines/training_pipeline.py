"""The training DAG: ingest -> validate -> (tune | katib_tune | hyperparameters) -> train -> evaluate -> push
(if blessed),
with ingest -> label_audit (confident-learning report on the train labels) beside validate and
with train -> export_tflite (quantised TFLite models, size and accuracy vs the SavedModel) beside evaluate.

Wiring only: every step's logic lives in imgclf.steps, every default in
imgclf.settings. `build_pipeline(gpu)` returns the CPU or the GPU variant; they
differ only in the cluster layer (pipelines/platform.py), which kfp's local
runner ignores.
"""


from kfp import dsl, kubernetes

from components.evaluate import evaluate_op
from components.export_tflite import export_tflite_op
from components.hyperparameters import default_hyperparameters_op
from components.ingest import ingest_op
from components.katib_stage import katib_stage_op
from components.katib_tune import katib_tune_op
from components.label_audit import label_audit_op
from components.push import push_op
from components.train import train_op
from components.tune import tune_op
from components.validate import validate_op
from imgclf import settings
from imgclf.model.hyperparams import HyperParams
from pipelines.platform import apply_platform

# Hyperparameter defaults come from the one HyperParams definition (tests/pipelines/test_pipeline.py checks
# that every field is a parameter here, with its type and default).
T, I, V, E = HyperParams(), settings.INGEST, settings.VALIDATE, settings.EVALUATE


def build_pipeline(gpu: bool = False):
    """The pipeline function; gpu=True puts train on a GPU node (accelerator, selector, toleration)."""

    @dsl.pipeline(name=settings.PIPELINE_NAME + ("-gpu" if gpu else ""),
                  description="Ingest, validate, train, evaluate and push an image classifier (imgclf).")
    def training_pipeline(
        data_uri: str = settings.DEFAULT_DATA_URI,
        eval_fraction: float = I.eval_fraction,
        seed: int = settings.SEED,
        max_train_examples: int = I.max_train_examples,
        max_test_examples: int = I.max_test_examples,
        schema_uri: str = "",
        reference_statistics_uri: str = "",
        label_audit_examples: int = V.label_audit_examples,
        tuner: str = settings.TUNERS[0],
        tune_algorithm: str = "",
        tune_max_trials: int = 0,
        tune_epochs: int = 0,
        katib_namespace: str = "",
        katib_data_pvc: str = settings.KATIB_DATA_PVC,
        katib_timeout_minutes: int = 360,
        conv1_filters: int = T.conv1_filters,
        conv2_filters: int = T.conv2_filters,
        kernel_size: int = T.kernel_size,
        dense_units: int = T.dense_units,
        dropout: float = T.dropout,
        learning_rate: float = T.learning_rate,
        min_lr_fraction: float = T.min_lr_fraction,
        batch_size: int = T.batch_size,
        epochs: int = T.epochs,
        precision: str = settings.DEFAULT_PRECISION,
        accuracy_threshold: float = E.accuracy_threshold,
        change_tolerance: float = E.change_tolerance,
        push_base: str = settings.SERVING_STORAGE_URI,
        model_name: str = settings.MODEL_NAME,
        rollout_inferenceservice: str = "",
    ):
        # No set_display_name and no condition names: both need KFP backend >= 2.14 (imgclf.kfp_client.compat).
        def step(task, name):
            return apply_platform(task, name, gpu=gpu)

        ingest = step(ingest_op(data_uri=data_uri, eval_fraction=eval_fraction, seed=seed,
                                max_train_examples=max_train_examples, max_test_examples=max_test_examples), "ingest")
        dataset = ingest.outputs["dataset"]
        validate = step(validate_op(dataset=dataset, schema_uri=schema_uri,
                                    reference_statistics_uri=reference_statistics_uri), "validate")
        step(label_audit_op(dataset=dataset, max_examples=label_audit_examples, seed=seed), "label_audit")
        # Hyperparameters: searched by KerasTuner or Katib, or taken from the parameters above.
        # tune_algorithm '' and tune_max_trials / tune_epochs 0 mean the search space's own values.
        with dsl.If(tuner == "keras-tuner"):
            keras_tuner = step(tune_op(dataset=dataset, algorithm=tune_algorithm, max_trials=tune_max_trials,
                                       epochs=tune_epochs, seed=seed, state_dir="", precision=precision),
                               "tune").after(validate)
        with dsl.Elif(tuner == "katib"):
            # Only the staging task mounts the claim (read-write) and it ends before the Experiment starts;
            # the launcher that waits on the Experiment holds no volume, and trials mount it read-only.
            stage = step(katib_stage_op(dataset=dataset), "katib_stage").after(validate)
            kubernetes.mount_pvc(stage, pvc_name=katib_data_pvc, mount_path=settings.KATIB_DATA_MOUNT)
            katib = step(katib_tune_op(dataset_path=stage.output, namespace=katib_namespace, data_pvc=katib_data_pvc,
                                       algorithm=tune_algorithm, max_trials=tune_max_trials, parallel_trials=0,
                                       epochs=tune_epochs, seed=seed, gpu=gpu,
                                       timeout_minutes=katib_timeout_minutes), "katib_tune")
        with dsl.Else():
            defaults = step(default_hyperparameters_op(
                conv1_filters=conv1_filters, conv2_filters=conv2_filters, kernel_size=kernel_size,
                dense_units=dense_units, dropout=dropout, learning_rate=learning_rate,
                min_lr_fraction=min_lr_fraction, batch_size=batch_size),
                "hyperparameters").after(validate)
        best = dsl.OneOf(keras_tuner.outputs["Output"], katib.outputs["Output"], defaults.output)
        train = step(train_op(dataset=dataset, hyperparameters=best, epochs=epochs, seed=seed,
                                precision=precision), "train")
        evaluate = step(evaluate_op(dataset=dataset, model=train.outputs["model"], push_base=push_base,
                                    model_name=model_name, accuracy_threshold=accuracy_threshold,
                                    change_tolerance=change_tolerance), "evaluate")
        step(export_tflite_op(dataset=dataset, model=train.outputs["model"]), "export_tflite")
        with dsl.If(evaluate.outputs["Output"] == True):  # noqa: E712 (KFP condition)
            step(push_op(model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"],
                         push_base=push_base, model_name=model_name,
                         rollout_inferenceservice=rollout_inferenceservice), "push")

    return training_pipeline
