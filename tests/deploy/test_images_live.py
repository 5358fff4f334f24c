"""The built CPU image, checked by running it (`make test-images`; skipped in `make test`).

Needs settings.CPU_IMAGE built (`make test-images` builds it from nothing first) and
podman or docker. Every container runs as a restricted pod would: no network,
read-only root filesystem, tmpfs /tmp, uid 1000 (pipelines.container_runner).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from imgclf import settings
from imgclf.deploy import images
from pipelines import container_runner

pytestmark = pytest.mark.skipif(os.environ.get("IMGCLF_IMAGE_TESTS") != "1",
                                reason="image tests run in `make test-images` (IMGCLF_IMAGE_TESTS=1)")

ROOT = settings.REPO_ROOT
IMAGE = settings.CPU_IMAGE
# What a restricted pod gets, as engine CLI flags (container_runner.RESTRICTED_RUN_ARGS for kfp).
RESTRICTED = ["--network", "none", "--read-only", "--tmpfs", "/tmp:rw,size=1g,mode=1777",
              "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
# Compiler packages (gcc-12-base is only libgcc's runtime companion, in every Debian image).
TOOLCHAIN_PACKAGES = re.compile(r"^((gcc|g\+\+|cpp|clang)(-\d+)?|binutils.*|build-essential|libc6-dev|libgcc-\d+-dev|make)$")
TOOLCHAIN = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "make", "cpp")
# A slice small enough for CI, big enough that the model passes the blessing threshold.
SLICE = ["--epochs", "1", "--param", "max_train_examples=6000", "--param", "max_test_examples=2000",
         "--param", "label_audit_examples=1000", "--param", "accuracy_threshold=0.5"]
FIGURES = settings.LOCAL_RUNS_DIR / "image_facts.json"


@pytest.fixture(scope="module")
def engine() -> str:
    engine = images.find_engine()
    if subprocess.run([engine, "image", "inspect", IMAGE], capture_output=True).returncode != 0:
        pytest.fail(f"{IMAGE} is not built: make images ARGS='--variant cpu'")
    return engine


def run_in_image(engine: str, script: str, user: str | None = None) -> subprocess.CompletedProcess:
    command = [engine, "run", "--rm", *RESTRICTED]
    if user:
        command += ["--user", user]
    return subprocess.run([*command, IMAGE, "sh", "-c", script], capture_output=True, text=True, timeout=600)


def record(**figures) -> None:
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps({**known, **figures}, indent=1, sort_keys=True) + "\n")


def test_image_runs_as_uid_1000_not_root(engine):
    user = subprocess.run([engine, "image", "inspect", "--format", "{{.Config.User}}", IMAGE],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert user.split(":")[0] == "1000", f"image USER is {user!r}: it would run as root"
    result = run_in_image(engine, "id -u; id -g")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000", "1000"]


def test_image_has_no_compiler_toolchain(engine):
    found = run_in_image(engine, " ; ".join(f"command -v {tool}" for tool in TOOLCHAIN) + " ; true")
    assert found.stdout.split() == [], f"compiler tools in the image: {found.stdout.split()}"
    packages = run_in_image(engine, "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n'")
    installed = {line.split()[0] for line in packages.stdout.splitlines() if line.split()[1:] == ["ii"]}
    unwanted = {p for p in installed if TOOLCHAIN_PACKAGES.match(p)}
    assert installed and not unwanted, f"toolchain packages installed: {sorted(unwanted)}"


def test_every_component_cli_answers_help_in_the_image(engine):
    # The pipeline steps' CLIs (imgclf.steps.*); serving (imgclf-serve: the `serve` extra) is not in this image.
    scripts = {name: target for name, target in
               tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"].items()
               if target.startswith("imgclf.steps.")}
    assert len(scripts) >= 7
    # One Python process (TensorFlow imported once) calls every console script's entry point with --help.
    probe = (
        "import importlib.metadata as m, shutil, sys\n"
        f"names = {sorted(scripts)!r}\n"
        "eps = {e.name: e for e in m.entry_points(group='console_scripts')}\n"
        "for name in names:\n"
        "    assert shutil.which(name), name + ' not on PATH'\n"
        "    sys.argv = [name, '--help']\n"
        "    try:\n"
        "        eps[name].load()()\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (name, exc.code)\n"
        "    print('help ok', name, file=sys.stderr)\n"
        "import kfp.dsl.executor_main\n"
    )
    result = run_in_image(engine, f"python - <<'EOF'\n{probe}EOF\n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("help ok") == len(scripts)


def test_cold_start_of_one_step(engine):
    """A fresh restricted container, measured and kept (runs/image_facts.json): to a step's --help, to
    TensorFlow imported (what train/evaluate pay first), and one whole small ingest step."""
    figures = {}
    for name, script in (("help", "imgclf-train --help >/dev/null"),
                         ("tensorflow_import", "python -c 'import imgclf.steps.train, tensorflow'"),
                         ("ingest_step", "imgclf-ingest --output /tmp/ds --max-train-examples 1000 "
                                         "--max-test-examples 200 >/dev/null")):
        start = time.perf_counter()
        result = run_in_image(engine, script)
        figures[f"cold_start_{name}_s"] = round(time.perf_counter() - start, 1)
        assert result.returncode == 0, (name, result.stderr[-2000:])
    size = subprocess.run([engine, "image", "inspect", "--format", "{{.Size}}", IMAGE],
                          capture_output=True, text=True, check=True).stdout.strip()
    record(**figures, cpu_image_bytes=int(size))
    print(f"cold start in a fresh container: {figures}; image {int(size) / 1e9:.2f} GB")
    assert figures["cold_start_help_s"] < 60


def test_whole_dag_runs_in_the_image_restricted_and_the_pushed_model_loads(engine, tmp_path):
    run_id = time.strftime("ci-%Y%m%d-%H%M%S")
    push_base = container_runner.PIPELINE_ROOT / run_id / "serving"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pipelines.container_runner", *SLICE, "--push-base", str(push_base)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-4000:])
    out = result.stdout
    assert "network none, read-only root" in out
    assert "pushed         version 1 ->" in out, out[-2000:]
    assert "blessed        True" in out and "test accuracy" in out
    record(container_dag_wall_s=round(seconds, 1))
    print(out[out.index("=== imgclf local run ==="):])

    version_dir = push_base / settings.MODEL_NAME / "1"
    assert (version_dir / "saved_model.pb").is_file()
    import tensorflow as tf

    model = tf.saved_model.load(str(version_dir))
    images_uint8 = np.zeros((2, settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH), np.uint8)
    outputs = model.signatures[settings.SERVING_SIGNATURE_UINT8](**{settings.SERVING_INPUT_NAME: tf.constant(images_uint8)})
    probabilities = outputs[settings.SERVING_OUTPUT_PROBABILITIES].numpy()
    assert probabilities.shape == (2, settings.NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-4)
