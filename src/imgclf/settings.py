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
TF_SERVING_IMAGE = "tensorflow/serving:2.20.0"
TF_SERVING_GPU_IMAGE = "tensorflow/serving:2.20.0-gpu"
# KServe's TensorFlow runtime versions (a "-gpu" version needs a GPU and vice versa).
KSERVE_TF_RUNTIME_VERSION = "2.20.0"
KSERVE_TF_GPU_RUNTIME_VERSION = "2.20.0-gpu"

# --- Source checkout paths: only meaningful when running from the repository (editable install).
# An installed package (our images, a wheel) has no checkout: the tools that write these files
# (compile, Katib YAML, manifests, images) call require_checkout() and say so in one line.
REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIR = REPO_ROOT / "pipelines"
PIPELINE_YAML = PIPELINE_DIR / "training_pipeline.yaml"
PIPELINE_GPU_YAML = PIPELINE_DIR / "training_pipeline_gpu.yaml"
KATIB_DIR = REPO_ROOT / "katib"
MANIFESTS_DIR = REPO_ROOT / "manifests"
# Local working area for `make run-local`, relative to the current directory (ignored by git):
# never derived from where the package is installed.
LOCAL_RUNS_DIR = Path("runs")

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
# Training precision (imgclf.model.precision): auto picks mixed_bfloat16 where the hardware has bf16 arithmetic.
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
DEFAULT_PRECISION = PRECISIONS[0]
PARAMETER_CHOICES = {"tuner": TUNERS, "precision": PRECISIONS}

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
DEFAULT_PUSH_BASE = str(LOCAL_RUNS_DIR / "serving")  # relative: runs/serving under the current directory
SERVING_REST_PORT = 8501
SERVING_GRPC_PORT = 8500
# Where the pipeline pushes on a cluster: <SERVING_STORAGE_URI>/<MODEL_NAME>/<int version>/.
# KServe's storageUri and TF Serving's --model_base_path are <SERVING_STORAGE_URI>/<MODEL_NAME>.
# Default: a prefix in the bucket KFP itself keeps its artifacts in, on the MinIO every default
# Kubeflow install runs, so a run with default parameters pushes somewhere that exists. Storage
# steps get that MinIO's endpoint and KFP's own credentials secret (pipelines/platform.py).
# For your own bucket pass push_base=gs://... or s3://... per run (README "Storage").
SERVING_STORAGE_URI = "s3://mlpipeline/models"
# S3 endpoint and credentials given to the steps that read or write storage on a cluster.
# Empty endpoint: AWS S3 itself (credentials then come from the pod's identity or the secret).
S3_ENDPOINT_URL = "http://minio-service.kubeflow:9000"
S3_CREDENTIALS_SECRET = "mlpipeline-minio-artifact"  # KFP's MinIO secret, also present in profile namespaces
S3_CREDENTIALS_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
SERVING_NAMESPACE = "imgclf-serving"
# Kubernetes service account whose credentials read the bucket.
SERVING_SERVICE_ACCOUNT = "imgclf-serving"
# The one entry to edit for your cluster's identity (then `make manifests`): annotations on that
# service account, e.g. GKE Workload Identity {"iam.gke.io/gcp-service-account": "reader@PROJECT.iam.gserviceaccount.com"}
# or EKS {"eks.amazonaws.com/role-arn": "arn:aws:iam::ACCOUNT:role/reader"}. KFP's MinIO needs none.
SERVING_SERVICE_ACCOUNT_ANNOTATIONS: dict[str, str] = {}
# For an s3:// SERVING_STORAGE_URI: the Secret (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) that
# serving reads the bucket with; you create it in SERVING_NAMESPACE (README "Storage"), never in git.
SERVING_S3_SECRET = "imgclf-s3-credentials"


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


# The seed of every random choice in a run (splits, training, tuning, the label audit's folds). The
# hyperparameters and their defaults are defined once, in imgclf.model.hyperparams.HyperParams.
SEED = 42


@dataclass(frozen=True)
class IngestDefaults:
    eval_fraction: float = 0.2
    seed: int = SEED
    max_train_examples: int = 0  # 0: all
    max_test_examples: int = 0


@dataclass(frozen=True)
class ValidateDefaults:
    # A class is "severely imbalanced" when its share is below this fraction
    # of the uniform share (1/num_classes).
    min_class_share_ratio: float = 0.2
    # Drift between splits (each split vs train, and vs a reference run's same split): one threshold
    # per distance of imgclf.data.drift.CHECKS, calibrated by bench/drift_calibration.py: about 1.3x the
    # largest distance seen between two random samples of Fashion-MNIST of 1,600 and 400 images
    # (effective size 1600*400/2000 = 320) over 2,000 resamples. Sampling noise shrinks as
    # 1/sqrt(size), so a comparison of effective size n uses threshold * sqrt(320 / n), kept within
    # [drift_min_scale, drift_max_scale] of it (README "Data checks" has the measured false-alarm rate).
    drift_calibration_size: int = 320
    drift_min_scale: float = 0.15
    drift_max_scale: float = 3.0
    max_label_linf: float = 0.09
    max_pixel_mean_shift: float = 9.0
    max_intensity_js: float = 0.0036
    max_mean_image_rms: float = 14.0
    max_class_mean_image_rms: float = 40.0
    max_brightness_w1: float = 9.0
    max_contrast_w1: float = 5.5
    max_edge_density_w1: float = 0.009
    max_row_mass_tv: float = 0.06
    max_col_mass_tv: float = 0.06
    # Label audit (confident learning): how many train examples to audit (a seeded subset; 0: all),
    # the k-fold out-of-fold probabilities of a one-hidden-layer network (folds x epochs, hidden
    # width) on the images' coordinates along the top principal components of the pixels, and the confident cut: a suspect cleanlab finds is in the cut (reported first, dropped
    # by --cleaned-output) when the models that never saw it gave its label at most this probability.
    label_audit_examples: int = 0
    label_audit_folds: int = 2
    label_audit_epochs: int = 10
    label_audit_hidden_units: int = 512
    label_audit_components: int = 128
    label_audit_max_self_confidence: float = 0.05


@dataclass(frozen=True)
class EvaluateDefaults:
    accuracy_threshold: float = 0.80  # TFX "value threshold"
    change_tolerance: float = 0.01  # TFX "change threshold": may be this much worse than the pushed model
    # Slices of the evaluation report: band edges of per-image brightness (pixel mean) and contrast
    # (pixel std), in grey levels; fixed so slices compare across runs (Fashion-MNIST's test split
    # has roughly a quarter of its images in each band).
    brightness_bands: tuple = (48.0, 70.0, 97.0)
    contrast_bands: tuple = (67.0, 84.0, 98.0)


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


@dataclass(frozen=True)
class GpuPlacement:
    """Where and with what a GPU workload runs: the one definition read by KFP tasks
    (pipelines/platform.py), Katib trials (katib_experiment.py) and the serving manifests (manifests.py)."""

    accelerator: str  # the extended resource name, e.g. nvidia.com/gpu
    count: int
    node_selector: dict[str, str]
    toleration: dict[str, str]  # a Kubernetes toleration: key, operator, effect

    def limits(self) -> dict[str, int]:
        """The resource limit that asks for the GPUs: {accelerator: count}."""
        return {self.accelerator: self.count}


def gpu_placement(cluster: ClusterDefaults | None = None) -> GpuPlacement:
    """GPU placement from the cluster settings (fresh dicts on every call, so callers may embed them)."""
    cluster = cluster or CLUSTER
    return GpuPlacement(
        accelerator=cluster.gpu_accelerator,
        count=cluster.gpu_count,
        node_selector={cluster.gpu_node_selector_key: cluster.gpu_node_selector_value},
        toleration={"key": cluster.gpu_toleration_key, "operator": "Exists", "effect": "NoSchedule"},
    )


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None for an installed copy (site-packages)."""
    return REPO_ROOT if (REPO_ROOT / "pyproject.toml").is_file() and PIPELINE_DIR.is_dir() else None


def require_checkout(tool: str) -> Path:
    """The checkout root; UserError in one line when `tool` runs from an installed copy without one."""
    from imgclf.errors import UserError

    root = checkout_root()
    if root is None:
        raise UserError(f"{tool} writes files of the imgclf source checkout; run it from a clone of the "
                        "repository (make ...), not from an installed package")
    return root


INGEST = IngestDefaults()
VALIDATE = ValidateDefaults()
EVALUATE = EvaluateDefaults()
CLUSTER = ClusterDefaults()
SERVING = ServingDefaults()
PIPELINE_NAME = "imgclf-training"
