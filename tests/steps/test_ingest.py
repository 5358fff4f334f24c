"""Ingest on the real data and on broken IDX inputs."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from imgclf.data import datasets
from imgclf.errors import UserError
from imgclf.steps import ingest as ingest_step
from tests.conftest import write_idx


def test_ingest_real_data_split_is_deterministic_and_complete(fmnist_dir, small_dataset, tmp_path):
    meta = datasets.read_metadata(small_dataset)
    assert {k: v["count"] for k, v in meta["splits"].items()} == {"train": 1600, "eval": 400, "test": 500}
    x, y = datasets.load_split(small_dataset, "train")
    assert x.shape == (1600, 28, 28) and x.dtype == np.uint8 and set(np.unique(y)) <= set(range(10))
    assert len(set(np.unique(y))) == 10
    assert datasets.split_hash(x, y) == meta["splits"]["train"]["sha256"]
    # Same seed -> identical split; another seed -> a different one.
    again = ingest_step.ingest(fmnist_dir, str(tmp_path / "again"), max_train_examples=2000, max_test_examples=500)
    other = ingest_step.ingest(fmnist_dir, str(tmp_path / "other"), seed=7, max_train_examples=2000,
                               max_test_examples=500)
    assert again["splits"] == meta["splits"]
    assert other["splits"]["train"]["sha256"] != meta["splits"]["train"]["sha256"]
    # train and eval are disjoint parts of the source training file
    xe, _ = datasets.load_split(small_dataset, "eval")
    train_rows = {row.tobytes() for row in x}
    assert not any(row.tobytes() in train_rows for row in xe)


def test_ingest_reads_raw_and_gzipped_idx(idx_dir, tmp_path):
    raw = ingest_step.ingest(str(idx_dir), str(tmp_path / "raw"))
    for f in idx_dir.iterdir():
        f.with_name(f.name + ".gz").write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    gz = ingest_step.ingest(str(idx_dir), str(tmp_path / "gz"))
    assert raw["splits"] == gz["splits"]
    assert raw["splits"]["test"]["count"] == 100 and raw["splits"]["eval"]["count"] == 60


def _run(argv):
    """Run the CLI as a user would; return (exit status, stderr)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        from imgclf.errors import run_cli

        status = run_cli(ingest_step.main, argv)
    return status, err.getvalue()


def _corrupt(idx_dir: Path, case: str) -> str:
    """Break the dataset in idx_dir; returns the file name the error must name."""
    images = idx_dir / "train-images-idx3-ubyte"
    labels = idx_dir / "train-labels-idx1-ubyte"
    if case == "truncated":
        images.write_bytes(images.read_bytes()[:5000])
        return images.name
    if case == "truncated-header":
        images.write_bytes(images.read_bytes()[:9])
        return images.name
    if case == "corrupt-gzip":
        images.unlink()
        (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + b"garbage" * 10)
        return "train-images-idx3-ubyte.gz"
    if case == "wrong-magic":
        data = bytearray(labels.read_bytes())
        data[3] = 0x03
        labels.write_bytes(bytes(data))
        return labels.name
    if case == "count-mismatch":
        write_idx(labels, np.zeros(299), 0x801, compress=False)
        return labels.name
    if case == "label-out-of-range":
        write_idx(labels, np.full(300, 10), 0x801, compress=False)
        return "label 10"
    if case == "missing-file":
        labels.unlink()
        return labels.name
    if case in ("float-nan", "float-inf"):
        pixels = np.zeros((300, 28, 28), np.float32)
        pixels[7, 3, 4] = np.nan if case == "float-nan" else np.inf
        _write_float_idx(images, pixels, ndim=3)
        return f"{images.name}: field 'pixel values' holds 1 NaN or infinite float value(s), first in item 7"
    raise AssertionError(case)


def _write_float_idx(path: Path, array: np.ndarray, ndim: int) -> None:
    """A raw IDX file of big-endian float32 (type code 0x0D)."""
    header = struct.pack(">I", 0x0D00 | ndim) + struct.pack(f">{ndim}I", *array.shape)
    path.write_bytes(header + array.astype(">f4").tobytes())


def test_float_idx_with_finite_pixels_is_read_as_uint8(idx_dir, tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (300, 28, 28)).astype(np.float32)
    _write_float_idx(idx_dir / "train-images-idx3-ubyte", pixels, ndim=3)
    ingest_step.ingest(str(idx_dir), str(tmp_path / "d"), eval_fraction=0.5)
    x, _ = datasets.load_split(tmp_path / "d", "train")
    assert x.dtype == np.uint8 and {int(v) for v in np.unique(x)} <= set(range(256)) and len(x) == 150


@pytest.mark.parametrize("case", ["truncated", "truncated-header", "corrupt-gzip", "wrong-magic", "count-mismatch",
                                  "label-out-of-range", "missing-file", "float-nan", "float-inf"])
def test_bad_idx_gives_one_line_error_and_writes_nothing(idx_dir, tmp_path, case):
    needle = _corrupt(idx_dir, case)
    out = tmp_path / "out"
    status, err = _run(["--data-uri", str(idx_dir), "--output", str(out)])
    assert status == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err
    assert not out.exists() and not list(tmp_path.glob(".out*")), "nothing may be half-written"


@pytest.mark.parametrize("uri, needle", [("ftp://bucket/data", "unknown URI scheme 'ftp://'"),
                                         ("/no/such/dir", "/no/such/dir: no such directory")])
def test_bad_uri(tmp_path, uri, needle):
    status, err = _run(["--data-uri", uri, "--output", str(tmp_path / "out")])
    assert status == 2 and needle in err and err.count("\n") == 1


def test_existing_output_is_not_overwritten(idx_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    status, err = _run(["--data-uri", str(idx_dir), "--output", str(out)])
    assert status == 2 and "already exists" in err
    assert (out / "keep.txt").read_text() == "mine"


def test_cli_help_and_metadata(idx_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        ingest_step.main(["--help"])
    assert exc.value.code == 0 and "--data-uri" in capsys.readouterr().out
    ingest_step.main(["--data-uri", str(idx_dir), "--output", str(tmp_path / "d"), "--eval-fraction", "0.5"])
    meta = json.loads((tmp_path / "d" / "metadata.json").read_text())
    assert meta["splits"]["eval"]["count"] == 150 and meta["source"]["uri"] == str(idx_dir)
    with pytest.raises(UserError, match="eval_fraction=1.5"):
        ingest_step.ingest(str(idx_dir), str(tmp_path / "e"), eval_fraction=1.5)


def test_ingest_from_gcs_matches_local(emulator, fmnist_dir, tmp_path):
    """The same IDX files read from gs:// (gcp-storage-emulator) give the same dataset as from disk."""
    for f in Path(fmnist_dir).iterdir():
        emulator.blob(f"fmnist/{f.name}").upload_from_filename(str(f))
    bucket = emulator.name
    remote = ingest_step.ingest(f"gs://{bucket}/fmnist", str(tmp_path / "remote"), max_train_examples=500,
                                max_test_examples=100)
    local = ingest_step.ingest(fmnist_dir, str(tmp_path / "local"), max_train_examples=500, max_test_examples=100)
    assert remote["splits"] == local["splits"] and remote["source"]["uri"] == f"gs://{bucket}/fmnist"
    status, err = _run(["--data-uri", f"gs://{bucket}/nothing-here", "--output", str(tmp_path / "none")])
    assert status == 2 and "nothing-here: no such directory" in err and not (tmp_path / "none").exists()
