"""The one place for the project's facts: images, paths, data shape, defaults, thresholds.

Everything else (steps, KFP components, the compiled pipeline, Katib and the
serving manifests) reads these values; nothing repeats them. Values never
depend on the shell that imports this module, so compiled artifacts are
reproducible byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# --- Images (edit here; `make compile katib manifests` regenerates the rest) ---
IMAGE_REPOSITORY = "ghcr.io/imgclf/imgclf"
IMAGE_TAG = "0.1.0"
CPU_IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}"
GPU_IMAGE = f"{IMAGE_REPOSITORY}:{IMAGE_TAG}-gpu"
# Base of both images (Dockerfile ARG BASE_IMAGE). With no registry, `make images` builds a
# stand-in from the apt mirror (images/Containerfile.python-base) under the local names below.
# (Its own name, not .../python:3.11-slim-bookworm: podman would resolve the short name to it.)
PYTHON_BASE_IMAGE = "python:3.11-slim-bookworm"
LOCAL_PYTHON_BASE_IMAGE = "localhost/imgclf/python-from-debian:3.11-bookworm"
DEBIAN_ROOTFS_IMAGE = "localhost/imgclf/debian-minbase:bookworm"
# TF Serving images used by the plain Deployment (pinned, never :latest).
TF_SERVING_IMAGE = "tensorflow/serving:2.19.0"
TF_SERVING_GPU_IMAGE = "tensorflow/serving:2.19.0-gpu"
# KServe's TensorFlow runtime versions (a "-gpu" version needs a GPU and vice versa).
KSERVE_TF_RUNTIME_VERSION = "2.19.0"
KSERVE_TF_GPU_RUNTIME_VERSION = "2.19.0-gpu"

# --- Repository paths ---
REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIR = REPO_ROOT / "pipelines"
PIPELINE_YAML = PIPELINE_DIR / "training_pipeline.yaml"
PIPELINE_GPU_YAML = PIPELINE_DIR / "training_pipeline_gpu.yaml"
KATIB_DIR = REPO_ROOT / "katib"
MANIFESTS_DIR = REPO_ROOT / "manifests"
# Local working area for `make run-local` (ignored by git).
LOCAL_RUNS_DIR = REPO_ROOT / "runs"

# --- Data ---
DEFAULT_DATA_URI = "/usr/share/datasets/fashion-mnist"
DEBIAN_DATA_PACKAGE = "dataset-fashion-mnist"
IMAGE_HEIGHT = 28
IMAGE_WIDTH = 28
NUM_CLASSES = 10
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# IDX file stems: <prefix>-images-idx3-ubyte[.gz], <prefix>-labels-idx1-ubyte[.gz]
IDX_SOURCES = {"train": "train", "test": "t10k"}
DATASET_FORMAT = "imgclf-npz-v1"
SPLITS = ("train", "eval", "test")

# --- Pipeline parameters with a closed set of values (checked before a run starts: a misspelt
# tuner would otherwise fall through to dsl.Else and silently mean "none") ---
TUNERS = ("none", "keras-tuner", "katib")
PARAMETER_CHOICES = {"tuner": TUNERS}

# --- Katib: trials read the dataset from this PersistentVolumeClaim, mounted read-only here ---
KATIB_DATA_PVC = "imgclf-data"
KATIB_DATA_MOUNT = "/data"
KATIB_DATASET_DIR = "fashion-mnist"  # the generated Experiments read <KATIB_DATA_MOUNT>/<this> by default

# --- Model input signature (the serving contract) ---
SERVING_INPUT_NAME = "images"
SERVING_OUTPUT_PROBABILITIES = "probabilities"
SERVING_OUTPUT_CLASS = "class_id"
SERVING_SIGNATURE_FLOAT = "serving_default"
SERVING_SIGNATURE_UINT8 = "serving_uint8"

# --- Serving ---
MODEL_NAME = "fashion-mnist"
DEFAULT_PUSH_BASE = str(LOCAL_RUNS_DIR / "serving")
SERVING_REST_PORT = 8501
SERVING_GRPC_PORT = 8500
# Where the pipeline pushes on a cluster: <SERVING_STORAGE_URI>/<MODEL_NAME>/<int version>/.
# KServe's storageUri and TF Serving's --model_base_path are <SERVING_STORAGE_URI>/<MODEL_NAME>.
SERVING_STORAGE_URI = "gs://YOUR_BUCKET/models"
SERVING_NAMESPACE = "imgclf-serving"
# Kubernetes service account whose credentials read the bucket (e.g. GKE Workload Identity).
SERVING_SERVICE_ACCOUNT = "imgclf-serving"


@dataclass(frozen=True)
class ServingDefaults:
    """Replicas and resources of the serving manifests (manifests/ is generated from these)."""

    min_replicas: int = 1
    max_replicas: int = 4
    target_cpu_utilization: int = 70
    cpu_request: str = "500m"
    cpu_limit: str = "2"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"
    run_as_user: int = 1000  # TF Serving images run as root by default; PSS "restricted" needs non-root


@dataclass(frozen=True)
class TrainDefaults:
    """Default hyperparameters of the classic MNIST CNN (the untuned baseline)."""

    conv1_filters: int = 32
    conv2_filters: int = 64
    kernel_size: int = 3
    dense_units: int = 0  # 0: no hidden dense layer (the classic architecture)
    dropout: float = 0.5
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 3
    seed: int = 42


@dataclass(frozen=True)
class IngestDefaults:
    eval_fraction: float = 0.2
    seed: int = 42
    max_train_examples: int = 0  # 0: all
    max_test_examples: int = 0


@dataclass(frozen=True)
class ValidateDefaults:
    # A class is "severely imbalanced" when its share is below this fraction
    # of the uniform share (1/num_classes).
    min_class_share_ratio: float = 0.2
    # Drift between splits: L-infinity distance of label distributions and
    # absolute shift of the mean pixel value (0..255 scale).
    max_label_linf: float = 0.1
    max_pixel_mean_shift: float = 10.0
    # Label audit (confident learning): how many train examples to audit (a seeded subset; 0: all).
    label_audit_examples: int = 5000


@dataclass(frozen=True)
class EvaluateDefaults:
    accuracy_threshold: float = 0.80  # TFX "value threshold"
    change_tolerance: float = 0.01  # TFX "change threshold": may be this much worse than the pushed model


@dataclass(frozen=True)
class ClusterDefaults:
    """Cluster-only settings (kfp's local runner ignores them)."""

    gpu_accelerator: str = "nvidia.com/gpu"
    gpu_count: int = 1
    gpu_node_selector_key: str = "cloud.google.com/gke-accelerator"
    gpu_node_selector_value: str = "nvidia-tesla-t4"
    gpu_toleration_key: str = "nvidia.com/gpu"
    cpu_request: str = "1"
    cpu_limit: str = "2"
    memory_request: str = "2Gi"
    memory_limit: str = "4Gi"
    train_cpu_limit: str = "4"
    train_memory_limit: str = "8Gi"


TRAIN = TrainDefaults()
INGEST = IngestDefaults()
VALIDATE = ValidateDefaults()
EVALUATE = EvaluateDefaults()
CLUSTER = ClusterDefaults()
SERVING = ServingDefaults()
PIPELINE_NAME = "imgclf-training"
