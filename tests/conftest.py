"""Shared fixtures: small slices of the real Fashion-MNIST data and a tiny trained model.

The data comes from the Debian package dataset-fashion-mnist (`make test`
installs it). Session-scoped fixtures are built once and must not be modified.
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from imgclf import settings  # noqa: E402
from imgclf.data import storage

GCS_TEST_BUCKET = "imgclf-test"


@pytest.fixture(scope="session")
def fmnist_dir() -> str:
    path = Path(settings.DEFAULT_DATA_URI)
    if not (path / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"{path}: Fashion-MNIST missing; run `make data` (Debian package {settings.DEBIAN_DATA_PACKAGE})")
    return str(path)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory, fmnist_dir) -> str:
    """An ingested dataset: 2,000 train examples (1,600 train / 400 eval) and 500 test examples."""
    from imgclf.steps.ingest import ingest

    out = tmp_path_factory.mktemp("data") / "dataset"
    ingest(fmnist_dir, str(out), max_train_examples=2000, max_test_examples=500)
    return str(out)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, small_dataset) -> str:
    """A model directory (saved_model/, model.keras, ...) trained 2 epochs on small_dataset."""
    from imgclf.model.hyperparams import HyperParams
    from imgclf.steps.train import train

    out = tmp_path_factory.mktemp("model") / "model"
    train(small_dataset, str(out), HyperParams(epochs=2, batch_size=64), seed=1)
    return str(out)


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = True) -> Path:
    """Write an IDX file (gzipped when compress) for test inputs."""
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """A raw (not gzipped) MNIST-format directory with 300 train and 100 test examples of random pixels."""
    rng = np.random.default_rng(0)
    root = tmp_path / "idx"
    root.mkdir()
    for prefix, n in (("train", 300), ("t10k", 100)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), 0x803, compress=False)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, 0x801, compress=False)
    return root


@pytest.fixture(scope="session")
def emulator():
    """A gcp-storage-emulator on a free port with bucket GCS_TEST_BUCKET; STORAGE_EMULATOR_HOST set meanwhile."""
    from gcp_storage_emulator.server import create_server

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    server = create_server("localhost", port, in_memory=True, default_bucket=GCS_TEST_BUCKET)
    server.start()
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://localhost:{port}"
    yield storage.gcs_client().bucket(GCS_TEST_BUCKET)
    server.stop()
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST")
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


def assert_self_contained(page: str) -> None:
    """An HTML report that renders offline (KFP's HTML viewer): no script, no link or source outside the page."""
    import re

    assert "<script" not in page
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", page), "external reference in the report"
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", page)


S3_TEST_BUCKET = "imgclf-test"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto_server(extra_env: dict | None = None):
    """moto's standalone S3-compatible server (honours If-None-Match: *) as a subprocess; returns (proc, url)."""
    import subprocess
    import sys
    import time

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(extra_env or {})})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    pytest.fail("moto server did not start (pip install 'moto[server]')")


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server with bucket S3_TEST_BUCKET; AWS_ENDPOINT_URL and test credentials set meanwhile."""
    proc, url = start_moto_server()
    env = {**S3_ENV, "AWS_ENDPOINT_URL": url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    storage.filesystem("s3").mkdir(S3_TEST_BUCKET)
    yield url
    proc.kill()
    proc.wait()
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
