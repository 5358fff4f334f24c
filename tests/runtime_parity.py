"""Runtime parity: the serving image's TensorFlow loads our SavedModel in graph mode and predicts what training does.

    python -m tests.runtime_parity [--serving-tf 2.20.0] [--venv DIR] [--model DIR]

TF Serving 2.20.0 (settings.TF_SERVING_IMAGE, KSERVE_TF_RUNTIME_VERSION) is older than the TensorFlow we train
with, and TensorFlow only promises that newer runtimes load older SavedModels. So this check:
  1. exports a SavedModel with the training runtime (a tiny model trained on real Fashion-MNIST, or --model);
  2. runs both signatures (serving_default float, serving_uint8) on 64 test images in this runtime;
  3. installs tensorflow-cpu==<serving version> from PyPI into a throwaway virtualenv (--venv DIR keeps it) and
     there loads the SavedModel the way TF Serving's C++ loader does: a v1 graph-mode Session,
     `saved_model.loader.load(sess, ["serve"])`, feeds and fetches by the SignatureDef's tensor names;
  4. fails unless probabilities agree within 1e-5 and class ids are equal.
Too slow for `make test` (the install alone takes minutes): `make runtime-parity`, run by .ci/run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from imgclf import settings

TOLERANCE = 1e-5
SIGNATURES = (settings.SERVING_SIGNATURE_FLOAT, settings.SERVING_SIGNATURE_UINT8)

# Runs inside the serving-version venv: TF1-style graph mode, as tensorflow_serving's SavedModelBundle loads.
SERVING_SIDE = r'''
import json, sys
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
model_dir, inputs_npz, out_npz = sys.argv[1:4]
signatures = json.loads(sys.argv[4])
data = np.load(inputs_npz)
results = {}
with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta_graph = tf.compat.v1.saved_model.loader.load(sess, ["serve"], model_dir)
    for name in signatures:
        sig = meta_graph.signature_def[name]
        [(input_key, input_info)] = sig.inputs.items()
        fetches = {key: info.name for key, info in sig.outputs.items()}
        out = sess.run(fetches, {input_info.name: data[name]})
        for key, value in out.items():
            results[f"{name}/{key}"] = value
np.savez(out_npz, **results)
print(f"serving runtime: tensorflow {tf.__version__}, graph mode, signatures {', '.join(signatures)}")
'''


def serving_tf_version() -> str:
    """The TensorFlow version of the configured serving image: the tag of settings.TF_SERVING_IMAGE."""
    tag = settings.TF_SERVING_IMAGE.rsplit(":", 1)[1]
    assert settings.KSERVE_TF_RUNTIME_VERSION == tag, "KServe runtime and TF Serving image disagree"
    return tag


def make_venv(version: str, venv: Path) -> Path:
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import tensorflow as tf; assert tf.__version__ == {version!r}"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", f"tensorflow-cpu=={version}"], check=True)
    return python


def tiny_model(work: Path) -> Path:
    """Train 1 epoch on 2,000 real Fashion-MNIST images and export (the real train step)."""
    from imgclf.model.hyperparams import HyperParams
    from imgclf.steps.ingest import ingest
    from imgclf.steps.train import train

    ingest(settings.DEFAULT_DATA_URI, str(work / "dataset"), max_train_examples=2000, max_test_examples=64)
    train(str(work / "dataset"), str(work / "model"), HyperParams(epochs=1, batch_size=64), seed=3)
    return work / "model"


def saved_model_dir(model: Path) -> Path:
    return model / "saved_model" if (model / "saved_model" / "saved_model.pb").is_file() else model


def test_images(count: int = 64) -> np.ndarray:
    from imgclf.data import idx

    images, _ = idx.load_idx_pair(settings.DEFAULT_DATA_URI, settings.IDX_SOURCES["test"],
                                  (settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH))
    return np.asarray(images[:count], dtype=np.uint8)


def training_side(model_dir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(model_dir))
    results = {}
    for name in SIGNATURES:
        out = loaded.signatures[name](**{settings.SERVING_INPUT_NAME: tf.constant(inputs[name])})
        for key, value in out.items():
            results[f"{name}/{key}"] = value.numpy()
    return results


def compare(train: dict[str, np.ndarray], serve: dict[str, np.ndarray]) -> list[str]:
    problems = []
    if sorted(train) != sorted(serve):
        return [f"outputs differ: training {sorted(train)} vs serving {sorted(serve)}"]
    for key in sorted(train):
        a, b = train[key], serve[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{key}: training {a.dtype}{a.shape} vs serving {b.dtype}{b.shape}")
        elif key.endswith(settings.SERVING_OUTPUT_CLASS) and not np.array_equal(a, b):
            problems.append(f"{key}: {int((a != b).sum())} of {a.size} class ids differ")
        elif np.abs(a.astype(np.float64) - b.astype(np.float64)).max() > TOLERANCE:
            problems.append(f"{key}: max abs difference {np.abs(a - b).max():.2e} > {TOLERANCE}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.runtime_parity", description=__doc__.splitlines()[0])
    parser.add_argument("--serving-tf", default=serving_tf_version(), help="TensorFlow version of the serving image")
    parser.add_argument("--venv", type=Path, help="keep the serving virtualenv here (default: a temp dir)")
    parser.add_argument("--model", type=Path, help="a model directory from imgclf-train (default: train a tiny one)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="runtime-parity-") as tmp:
        work = Path(tmp)
        model_dir = saved_model_dir(args.model or tiny_model(work))
        pixels = test_images()
        inputs = {settings.SERVING_SIGNATURE_FLOAT: pixels.astype(np.float32), settings.SERVING_SIGNATURE_UINT8: pixels}
        np.savez(work / "inputs.npz", **inputs)
        expected = training_side(model_dir, inputs)
        print(f"training runtime: tensorflow {tf.__version__}, eager, {len(pixels)} test images")
        t0 = time.monotonic()
        python = make_venv(args.serving_tf, args.venv or work / "serving-venv")
        print(f"serving venv ready (tensorflow-cpu=={args.serving_tf}) in {time.monotonic() - t0:.0f} s")
        subprocess.run([str(python), "-c", SERVING_SIDE, str(model_dir), str(work / "inputs.npz"),
                        str(work / "served.npz"), json.dumps(SIGNATURES)], check=True)
        served = dict(np.load(work / "served.npz"))
    problems = compare(expected, served)
    for line in problems:
        print(f"FAIL {line}", file=sys.stderr)
    diff = max(float(np.abs(expected[k].astype(np.float64) - served[k]).max()) for k in expected
               if k.endswith(settings.SERVING_OUTPUT_PROBABILITIES))
    verdict = "differ" if problems else "agree"
    print(f"runtime parity: training tensorflow {tf.__version__} vs serving {args.serving_tf}: predictions {verdict} "
          f"(max |dp| {diff:.1e}, tolerance {TOLERANCE}) in {time.monotonic() - start:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
