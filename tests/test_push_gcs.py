"""push to gs:// against gcp-storage-emulator: upload, version numbering, no partial version after a crash."""

from __future__ import annotations

import json
import os

import pytest

from imgclf import settings, storage, versions
from imgclf.steps.push import push
from tests.conftest import GCS_TEST_BUCKET

BUCKET = GCS_TEST_BUCKET
NAME = settings.MODEL_NAME
FILES = {"saved_model.pb": b"graph" * 50, "fingerprint.pb": b"fp", "variables/variables.index": b"idx",
         "variables/variables.data-00000-of-00001": b"w" * 4096, "assets/vocab.txt": b"a"}


@pytest.fixture
def model_dir(tmp_path):
    for rel, data in FILES.items():
        path = tmp_path / "model" / "saved_model" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    digest = versions.saved_model_digest(tmp_path / "model" / "saved_model")
    (tmp_path / "blessing.json").write_text(json.dumps({"blessed": True, "model_sha256": digest}))
    return tmp_path


def _push(model_dir, base):
    return push(str(model_dir / "model"), str(model_dir / "blessing.json"), base)


def _names(bucket, prefix):
    return sorted(b.name[len(prefix):] for b in bucket.client.list_blobs(BUCKET, prefix=prefix))


def test_upload_creates_version_one_with_every_file(emulator, model_dir):
    base = f"gs://{BUCKET}/upload"
    result = _push(model_dir, base)
    assert result["version"] == 1 and result["uri"] == f"{base}/{NAME}/1"
    assert _names(emulator, f"upload/{NAME}/") == sorted(f"1/{rel}" for rel in FILES)
    for rel, data in FILES.items():
        assert emulator.blob(f"upload/{NAME}/1/{rel}").download_as_bytes() == data
    assert versions.latest_servable(versions.model_base(base, NAME)) == (1, f"{base}/{NAME}/1")


def test_next_version_skips_every_taken_number(emulator, model_dir):
    base = f"gs://{BUCKET}/numbering"
    for name in ("1/saved_model.pb", "3/saved_model.pb", "7/variables/variables.index", "notes/readme.txt"):
        emulator.blob(f"numbering/{NAME}/{name}").upload_from_string(b"x")
    mb = versions.model_base(base, NAME)
    assert versions.taken_versions(mb) == [1, 3, 7] and versions.servable_versions(mb) == [1, 3]
    assert _push(model_dir, base)["version"] == 8  # 7 is incomplete but taken
    assert _push(model_dir, base)["version"] == 9
    assert versions.servable_versions(mb) == [1, 3, 8, 9]


@pytest.mark.parametrize("phase", ["upload", "copy"])
def test_interrupted_push_leaves_no_servable_version(emulator, model_dir, monkeypatch, phase):
    from google.cloud.storage import Blob, Bucket

    base = f"gs://{BUCKET}/crash-{phase}"
    assert _push(model_dir, base)["version"] == 1
    target, method = (Blob, "upload_from_filename") if phase == "upload" else (Bucket, "copy_blob")
    real, calls = getattr(target, method), {"n": 0}

    def fail_midway(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("network dropped mid-push")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(target, method, fail_midway)
    with pytest.raises(ConnectionError):
        _push(model_dir, base)
    monkeypatch.setattr(target, method, real)

    mb = versions.model_base(base, NAME)
    assert versions.servable_versions(mb) == [1], "a half-pushed version must not be servable"
    assert versions.latest_servable(mb)[0] == 1
    assert not [n for n in _names(emulator, f"crash-{phase}/{NAME}/") if n.startswith(".staging")]
    nxt = _push(model_dir, base)["version"]
    assert nxt == (2 if phase == "upload" else 3)  # a partly copied version number stays taken
    assert versions.servable_versions(mb) == [1, nxt]
    assert _names(emulator, f"crash-{phase}/{NAME}/{nxt}/") == sorted(FILES)


def test_a_number_claimed_by_a_racing_push_is_skipped(emulator, model_dir, monkeypatch):
    """Real GCS rejects the second create-if-absent of <v>/.claim; the loser takes the next number."""
    from google.api_core import exceptions as gexc
    from google.cloud.storage import Blob

    original = Blob.upload_from_string
    lost = []

    def racing(self, data, *args, **kwargs):
        if self.name.endswith("/1/.claim") and not lost:
            lost.append(self.name)
            original(self, b"", *args, **kwargs)  # the other pusher got there first
            raise gexc.PreconditionFailed("conditionNotMet")
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(Blob, "upload_from_string", racing)
    base = f"gs://{BUCKET}/race"
    assert _push(model_dir, base)["version"] == 2 and lost
    assert versions.servable_versions(versions.model_base(base, NAME)) == [2]
    assert not emulator.blob(f"race/{NAME}/2/.claim").exists()
