"""Contract test of `imgclf.serving.server`: TF Serving REST paths and bodies, 4xx JSON errors, new-version pickup."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from imgclf import settings
from imgclf.data import datasets, versions
from imgclf.steps.push import push

NAME = settings.MODEL_NAME
MAX_BODY = 400_000


def call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _push(model_dir: str, base: str, tmp_path, baseline: int | None = None) -> int:
    """Push model_dir; with a baseline, push a copy that differs by one asset (push skips a model it already has)."""
    if baseline is not None:
        copy = tmp_path / f"model-after-{baseline}"
        shutil.copytree(model_dir, copy)
        (copy / "saved_model" / "assets").mkdir(exist_ok=True)
        (copy / "saved_model" / "assets" / "note.txt").write_text(f"pushed after version {baseline}")
        model_dir = str(copy)
    blessing = tmp_path / "blessing.json"
    digest = versions.saved_model_digest(Path(model_dir) / "saved_model")  # push checks the blessing is for this model
    blessing.write_text(json.dumps({"blessed": True, "model_sha256": digest,
                                    "baseline": None if baseline is None else {"version": baseline}}))
    return push(model_dir, str(blessing), base)["version"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_model):
    tmp = tmp_path_factory.mktemp("serve")
    base = str(tmp / "serving")
    assert _push(trained_model, base, tmp) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "imgclf.serving.server", "--push-base", base, "--port", str(port),
                             "--poll-seconds", "0.2", "--max-body-bytes", str(MAX_BODY)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v1/models/{NAME}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if call(url)[0] == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {(tmp / 'server.log').read_text()[-2000:]}")
        time.sleep(0.2)
    yield {"url": url, "base": base, "tmp": tmp, "model": trained_model}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def images(small_dataset):
    return datasets.load_split(small_dataset, "test")[0][:5]


def _check_outputs(probs, class_id, n):
    probs = np.asarray(probs)
    assert probs.shape == (n, settings.NUM_CLASSES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert list(class_id) == list(probs.argmax(axis=1))


def test_status_and_metadata(server):
    status, body = call(server["url"])
    assert status == 200
    assert body == {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                              "status": {"error_code": "OK", "error_message": ""}}]}
    assert call(server["url"] + "/versions/1")[0] == 200
    status, meta = call(server["url"] + "/metadata")
    assert status == 200 and meta["model_spec"] == {"name": NAME, "signature_name": "", "version": "1"}
    sigs = meta["metadata"]["signature_def"]["signature_def"]
    assert sigs[settings.SERVING_SIGNATURE_FLOAT]["inputs"][settings.SERVING_INPUT_NAME]["dtype"] == "DT_FLOAT"
    assert sigs[settings.SERVING_SIGNATURE_UINT8]["inputs"][settings.SERVING_INPUT_NAME]["dtype"] == "DT_UINT8"
    assert set(sigs[settings.SERVING_SIGNATURE_FLOAT]["outputs"]) == {"probabilities", "class_id"}


@pytest.mark.parametrize("form", ["rows", "rows-4d", "named-rows", "columnar", "columnar-named", "uint8", "versioned",
                                  "b64", "b64-named-uint8"])
def test_predict_forms(server, images, form):
    x = images[..., None] if form == "rows-4d" else images
    path = server["url"] + ("/versions/1" if form == "versioned" else "") + ":predict"
    body = {"columnar": {"inputs": x.tolist()}, "columnar-named": {"inputs": {"images": x.tolist()}},
            "named-rows": {"instances": [{"images": i.tolist()} for i in x]},
            "uint8": {"instances": x.tolist(), "signature_name": settings.SERVING_SIGNATURE_UINT8},
            "b64": {"instances": [{"b64": _b64(i)} for i in x]},
            "b64-named-uint8": {"instances": [{"images": {"b64": _b64(i)}} for i in x],
                                "signature_name": settings.SERVING_SIGNATURE_UINT8},
            }.get(form, {"instances": x.tolist()})
    status, out = call(path, json.dumps(body).encode())
    assert status == 200, out
    if form.startswith("columnar"):
        _check_outputs(out["outputs"]["probabilities"], out["outputs"]["class_id"], len(x))
    else:
        preds = out["predictions"]
        _check_outputs([p["probabilities"] for p in preds], [p["class_id"] for p in preds], len(x))


def test_json_integers_floats_and_b64_predict_alike(server, images):
    """Integer pixels take the payload fast path, the same pixels as floats ("3.0") the general
    parser, and b64 neither: the three answers must agree (row and columnar, versioned or not)."""
    answers = []
    for body, path in (({"instances": images.tolist()}, ":predict"),
                       ({"instances": images.astype(float).tolist()}, ":predict"),
                       ({"instances": [{"b64": _b64(i)} for i in images]}, "/versions/1:predict")):
        status, out = call(server["url"] + path, json.dumps(body).encode())
        assert status == 200, out
        answers.append(out["predictions"])
    assert answers[0] == answers[1] == answers[2]
    status, out = call(server["url"] + ":predict", json.dumps({"inputs": images.tolist()}).encode())
    assert status == 200 and out["outputs"]["class_id"] == [p["class_id"] for p in answers[0]]
    # No access-log line per request unless --access-log (it cost ~20% of batch-64 throughput).
    log_text = (server["tmp"] / "server.log").read_text()
    assert "uvicorn.access" not in log_text and "POST /v1/models/" not in log_text, log_text[-2000:]


def _b64(image) -> str:
    return base64.b64encode(np.asarray(image, np.uint8).tobytes()).decode()


GOOD = json.dumps({"instances": [[[0] * 28] * 28]}).encode()
BAD_BODIES = {
    "bad json": b"{not json",
    "not an object": b"[1, 2]",
    "no instances": b'{"images": []}',
    "both forms": json.dumps({"instances": [], "inputs": []}).encode(),
    "empty instances": b'{"instances": []}',
    "wrong shape": json.dumps({"instances": [[[0] * 27] * 28]}).encode(),
    "ragged": json.dumps({"instances": [[[0] * 28] * 28, [[0] * 28]]}).encode(),
    "strings": json.dumps({"instances": [[["x"] * 28] * 28]}).encode(),
    "nulls": json.dumps({"instances": [[[None] * 28] * 28]}).encode(),
    "booleans": json.dumps({"inputs": [[[True] * 28] * 28]}).encode(),
    "uint8 out of range": json.dumps({"instances": [[[300] * 28] * 28], "signature_name": "serving_uint8"}).encode(),
    "unknown signature": json.dumps({"instances": [[[0] * 28] * 28], "signature_name": "nope"}).encode(),
    "wrong input name": json.dumps({"inputs": {"pixels": [[[0] * 28] * 28]}}).encode(),
    "objects then arrays": json.dumps({"instances": [{"images": [[0] * 28] * 28}, [[0] * 28] * 28]}).encode(),
    "huge pixel": json.dumps({"instances": [[[1e300] * 28] * 28]}).encode(),
    "negative pixel": json.dumps({"instances": [[[-1] * 28] * 28]}).encode(),
    "pixel over 255": json.dumps({"inputs": [[[256.5] * 28] * 28]}).encode(),
    "b64 wrong length": json.dumps({"instances": [{"b64": base64.b64encode(b"x" * 783).decode()}]}).encode(),
    "b64 not base64": json.dumps({"instances": [{"b64": "%%%"}]}).encode(),
    "b64 then arrays": json.dumps({"instances": [{"b64": base64.b64encode(bytes(784)).decode()},
                                                 {"images": [[0] * 28] * 28}]}).encode(),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_requests_get_4xx_json_and_server_keeps_serving(server, case):
    status, body = call(server["url"] + ":predict", BAD_BODIES[case])
    assert status == 400, body
    assert isinstance(body.get("error"), str) and body["error"]
    assert call(server["url"] + ":predict", GOOD)[0] == 200


def test_wrong_names_versions_and_size(server):
    root = server["url"].rsplit("/", 1)[0]
    for path, code in ((root + "/other:predict", 404), (server["url"] + "/versions/7:predict", 404),
                       (server["url"] + "/versions/x:predict", 400)):
        status, body = call(path, GOOD)
        assert status == code and "error" in body, (path, status, body)
    assert call(server["url"] + "/versions/7")[0] == 404
    status, body = call(server["url"] + ":predict", b" " * (MAX_BODY + 1))
    assert status == 413 and "exceeds" in body["error"]
    assert call(server["url"] + ":predict", GOOD)[0] == 200


def test_new_version_is_picked_up_without_restart(server):
    assert _push(server["model"], server["base"], server["tmp"], baseline=1) == 2
    deadline = time.monotonic() + 60
    while call(server["url"])[1]["model_version_status"][0]["version"] != "2":
        assert time.monotonic() < deadline, "version 2 not picked up"
        time.sleep(0.2)
    assert call(server["url"] + "/versions/2:predict", GOOD)[0] == 200
    assert call(server["url"] + "/versions/1:predict", GOOD)[0] == 404  # like TF Serving: latest only


def _serving_version(server) -> str:
    return call(server["url"])[1]["model_version_status"][0]["version"]


def test_broken_version_is_logged_once_and_deleting_the_newest_rolls_back(server):
    assert _serving_version(server) == "2"
    broken = Path(server["base"]) / NAME / "3"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    time.sleep(2.0)  # ten polls
    assert _serving_version(server) == "2"
    assert call(server["url"] + ":predict", GOOD)[0] == 200
    log_text = (server["tmp"] / "server.log").read_text()
    assert log_text.count("cannot load version 3") == 1, log_text[-3000:]
    shutil.rmtree(broken)
    shutil.rmtree(Path(server["base"]) / NAME / "2")
    deadline = time.monotonic() + 60
    while _serving_version(server) != "1":
        assert time.monotonic() < deadline, "no rollback to version 1"
        time.sleep(0.2)
    assert call(server["url"] + "/versions/1:predict", GOOD)[0] == 200
