"""Cluster-only settings for pipeline tasks: resources, caching, GPU, node placement.

kfp's local runner ignores all of this (accelerators, resources, caching,
Kubernetes platform config), so it lives in one layer that the pipeline
applies to every task and that only matters on a real cluster. Every value
comes from `imgclf.settings` (CLUSTER, GPU_IMAGE).

Usage in the DAG (wiring only)::

    train_task = apply_platform(train_op(...), "train", gpu=gpu)
"""

from __future__ import annotations

from kfp import kubernetes
from kfp.dsl import PipelineTask

from imgclf import settings

STEPS = ("ingest", "validate", "label_audit", "hyperparameters", "tune", "katib_stage", "katib_tune", "train", "evaluate",
         "export_tflite", "push")
# Steps that get the larger CPU/memory limits and, with gpu=True, a GPU.
HEAVY_STEPS = ("tune", "train")
# Never cache: ingest reads a mutable URI; push has a side effect (a new served version);
# and every task inside the dsl.If/Elif/Else branches that feed dsl.OneOf: the backend resolves the OneOf
# from the branch DAG's state, which only the launcher updates, and a cached task skips the launcher
# ("processing OneOf: No successful task found" on a re-run with the same parameters).
ONEOF_BRANCH_STEPS = ("tune", "katib_stage", "katib_tune", "hyperparameters")
UNCACHED_STEPS = ("ingest", "push", *ONEOF_BRANCH_STEPS)
# Steps that read or write URIs (data, schema, reference statistics, pushed models): they get the
# S3 endpoint and credentials of settings (KFP's MinIO by default) as AWS_* variables.
STORAGE_STEPS = ("ingest", "validate", "evaluate", "push")


def apply_platform(task: PipelineTask, step: str, gpu: bool) -> PipelineTask:
    """Set requests/limits, caching and (for GPU heavy steps) accelerator, image and placement.

    task: a task of a single-container component; step: one of STEPS;
    gpu: True for the GPU variant of the pipeline. Returns the same task.
    Raises ValueError for an unknown step name.
    """
    if step not in STEPS:
        raise ValueError(f"unknown step {step!r}; expected one of {', '.join(STEPS)}")
    cluster = settings.CLUSTER
    heavy = step in HEAVY_STEPS
    task.set_cpu_request(cluster.cpu_request)
    task.set_memory_request(cluster.memory_request)
    task.set_cpu_limit(cluster.train_cpu_limit if heavy else cluster.cpu_limit)
    task.set_memory_limit(cluster.train_memory_limit if heavy else cluster.memory_limit)
    if step in UNCACHED_STEPS:
        task.set_caching_options(enable_caching=False)
    if step in STORAGE_STEPS:
        _use_object_store(task)
    if gpu and heavy:
        _use_gpu(task)
    return task


# kfp's local runner ignores the Kubernetes platform spec (the secret) but does apply container env
# variables, which would point local steps at the cluster's MinIO: pipelines.local_runner sets this to
# True so local steps keep the caller's own AWS_ENDPOINT_URL and credentials.
LOCAL_RUN = False


def _use_object_store(task: PipelineTask) -> None:
    """AWS_ENDPOINT_URL and the credentials secret of settings (an empty setting wires nothing).

    The secret is required: use_secret_as_env(optional=True) needs KFP backend >= 2.15.0 (kfp_compat)."""
    if LOCAL_RUN:
        return
    if settings.S3_ENDPOINT_URL:
        task.set_env_variable("AWS_ENDPOINT_URL", settings.S3_ENDPOINT_URL)
    if settings.S3_CREDENTIALS_SECRET:
        kubernetes.use_secret_as_env(task, secret_name=settings.S3_CREDENTIALS_SECRET,
                                     secret_key_to_env=settings.S3_CREDENTIALS_KEYS)


def _use_gpu(task: PipelineTask) -> None:
    """One GPU, the GPU image, a node selector for GPU nodes and a toleration of their taint."""
    gpu = settings.gpu_placement()
    task.set_accelerator_type(gpu.accelerator).set_accelerator_limit(gpu.count)
    # kfp >= 2.13: overrides the component's base_image for this task only.
    task.set_container_image(settings.GPU_IMAGE)
    for key, value in gpu.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    kubernetes.add_toleration(task, **gpu.toleration)
