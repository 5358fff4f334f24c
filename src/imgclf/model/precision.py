"""Training precision: float32, or Keras' mixed_bfloat16 (bf16 compute, float32 weights) where the hardware
has bf16 arithmetic.

`auto` (the default everywhere: imgclf-train, imgclf-tune, the pipeline's `precision` parameter) picks
mixed_bfloat16 on
- an NVIDIA GPU of compute capability 8.0 or newer (A100, L4, H100, H200) or a TPU, either backend;
- a CPU with AVX512_BF16 or AMX-BF16 on the TensorFlow backend (oneDNN runs bf16 convolutions there);
and float32 anywhere else (older GPUs, other CPUs, XLA's CPU backend under JAX, which measured no faster).

Measured on this project's 2-core CPU (AVX512_BF16; bench/precision.py, README "Training precision"): the
default CNN trained 1.58x faster in bf16 and the tuned batch-16 one 1.04-1.41x, with test accuracy within
the seed-to-seed spread of float32.
Only training runs in bf16: the trainer saves a float32 model (imgclf.model.network.float32_twin), so
evaluation, the TFLite export and serving see float32 weights and computations as before.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from imgclf import settings
from imgclf.errors import UserError

CHOICES = settings.PRECISIONS
AUTO, FLOAT32, MIXED_BFLOAT16 = CHOICES

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MIN_GPU_COMPUTE_CAPABILITY = (8, 0)


def cpu_bf16_flags(cpuinfo: str) -> list[str]:
    """The bf16 instruction-set flags named on the `flags` lines of /proc/cpuinfo text."""
    found = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            found.update(flag for flag in value.split() if flag in CPU_BF16_FLAGS)
    return sorted(found)


def _read_cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell, so no bf16
        return ""


def _compute_capability(text_or_tuple) -> tuple[int, int]:
    """(8, 0) from (8, 0) (TensorFlow's device details) or "8.0" (JAX's device attribute)."""
    if isinstance(text_or_tuple, (tuple, list)):
        return int(text_or_tuple[0]), int(text_or_tuple[1])
    major, _, minor = str(text_or_tuple).partition(".")
    return int(major), int(minor or 0)


@functools.lru_cache(maxsize=1)
def bf16_hardware() -> str:
    """Why this process's Keras backend would train in bf16 ("" when it would not): the device it found."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform == "tpu":
            return "TPU"
        if device.platform == "gpu":
            capability = getattr(device, "compute_capability", None)
            if capability and _compute_capability(capability) >= MIN_GPU_COMPUTE_CAPABILITY:
                return f"GPU {device.device_kind} (compute capability {capability})"
        return ""  # XLA's CPU backend: bf16 no faster (bench/jax_step.py --dtype bfloat16)
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            capability = details.get("compute_capability")
            if capability and _compute_capability(capability) >= MIN_GPU_COMPUTE_CAPABILITY:
                return f"GPU {details.get('device_name', gpu.name)} (compute capability {capability})"
        if gpus:
            return ""  # an older GPU trains in float32, whatever the host CPU has
        flags = cpu_bf16_flags(_read_cpuinfo())
        return f"CPU with {', '.join(flags)}" if flags else ""
    return ""


def resolve(precision: str) -> str:
    """The Keras dtype policy name for a precision choice: float32 or mixed_bfloat16 (auto decided here)."""
    if precision not in CHOICES:
        raise UserError(f"precision {precision!r}: expected one of {', '.join(CHOICES)}")
    if precision == AUTO:
        return MIXED_BFLOAT16 if bf16_hardware() else FLOAT32
    return precision


def add_flag(parser: argparse.ArgumentParser) -> None:
    """--precision, shared by imgclf-train and imgclf-tune."""
    parser.add_argument("--precision", choices=CHOICES, default=AUTO,
                        help="training precision; auto: mixed_bfloat16 where the hardware has bf16 arithmetic "
                             "(GPU compute capability >= 8.0, TPU, CPU with AVX512_BF16/AMX on TensorFlow), "
                             "else float32. Saved models are float32 either way")
