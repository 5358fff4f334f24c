"""Contract test of `imgclf.serving.server`: TF Serving REST paths and bodies, 4xx JSON errors, new-version pickup."""

from __future__ import annotations

import base64
import json
import logging
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
from imgclf.serving import client as predict_client, server as serve
from imgclf.errors import UserError, run_cli
from imgclf.serving.payload import DEFAULT_MAX_BATCH, BadRequest, parse_request
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


# --- request checks without a server -------------------------------------------------------------

IMG = [[0] * 28] * 28


@pytest.mark.parametrize("instances, needle", [
    ([{"images": IMG}, IMG], "mix objects and arrays"),
    ([IMG, {"images": IMG}], "mix objects and arrays"),
])
def test_parse_rejects_mixed_instance_forms(instances, needle):
    with pytest.raises(BadRequest, match=needle):
        parse_request({"instances": instances})


@pytest.mark.parametrize("value, needle", [
    (1e300, "1e+300"), (float("nan"), "nan"), (float("inf"), "inf"), (-1, "-1"), (255.5, "255.5")])
@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_parse_rejects_non_finite_and_out_of_range_pixels(key, value, needle):
    img = [row[:] for row in IMG]
    img[3][4] = value
    with pytest.raises(BadRequest, match=r"0\.\.255") as exc:
        parse_request({key: [IMG, img]})
    assert needle in str(exc.value) and key in str(exc.value)


def test_parse_accepts_full_pixel_range():
    img = [[0.0] * 14 + [255.0] * 14] * 28
    parsed = parse_request({"instances": [img]})
    assert parsed.images.dtype == np.float32 and parsed.images.max() == 255


# --- serve CLI and version watching without TF ---------------------------------------------------

@pytest.mark.parametrize("port", ["99999", "0", "-5"])
def test_serve_rejects_bad_port_in_one_line(port, tmp_path, capsys):
    assert run_cli(serve.main, ["--push-base", str(tmp_path), "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --port") and port in err and err.count("\n") == 1


def test_serve_max_batch_default_is_the_payload_constant():
    assert serve.build_parser().get_default("max_batch") == DEFAULT_MAX_BATCH


def _fake_versions(base, monkeypatch, broken=()):
    """Versions are plain directories with an empty saved_model.pb; `broken` ones fail to load."""
    loads = []

    def fake_load(version, uri):
        loads.append(version)
        if version in broken:
            raise RuntimeError(f"corrupt saved_model.pb in {uri}\nsecond line of the TF message")
        return serve.Servable(version, uri, loaded=None)

    monkeypatch.setattr(serve, "load_servable", fake_load)
    return loads


def _add_version(base, version):
    d = base / NAME / str(version)
    d.mkdir(parents=True)
    (d / "saved_model.pb").write_bytes(b"")
    return d


def test_watcher_logs_a_broken_version_once_and_keeps_serving(tmp_path, monkeypatch, caplog):
    loads = _fake_versions(tmp_path, monkeypatch, broken={2})
    _add_version(tmp_path, 1)
    watcher = serve.VersionWatcher(str(tmp_path), NAME)
    assert watcher.refresh() and watcher.current.version == 1
    _add_version(tmp_path, 2)
    with caplog.at_level(logging.ERROR, logger="imgclf.serving.server"):
        for _ in range(5):
            assert not watcher.refresh()
    assert watcher.current.version == 1
    assert loads == [1, 2]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "version 2" in errors[0].getMessage()
    _add_version(tmp_path, 3)
    assert watcher.refresh() and watcher.current.version == 3


def test_watcher_falls_back_when_the_newest_version_is_deleted(tmp_path, monkeypatch):
    _fake_versions(tmp_path, monkeypatch)
    for v in (1, 2, 3):
        _add_version(tmp_path, v)
    watcher = serve.VersionWatcher(str(tmp_path), NAME)
    assert watcher.refresh() and watcher.current.version == 3
    shutil.rmtree(tmp_path / NAME / "3")
    assert watcher.refresh() and watcher.current.version == 2
    assert not watcher.refresh()


def test_watcher_starts_on_an_older_version_when_the_newest_is_broken(tmp_path, monkeypatch):
    _fake_versions(tmp_path, monkeypatch, broken={2})
    _add_version(tmp_path, 1)
    _add_version(tmp_path, 2)
    watcher = serve.VersionWatcher(str(tmp_path), NAME)
    assert watcher.refresh() and watcher.current.version == 1


def test_serve_fails_in_one_line_when_no_version_loads(tmp_path, monkeypatch, capsys):
    _fake_versions(tmp_path, monkeypatch, broken={1, 2})
    _add_version(tmp_path, 1)
    _add_version(tmp_path, 2)
    assert run_cli(serve.main, ["--push-base", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "version 2" in err and "corrupt saved_model.pb" in err


# --- predict client -------------------------------------------------------------------------------

@pytest.mark.parametrize("url", ["notaurl", "ftp://host/x", "http://"])
def test_predict_client_rejects_bad_url_in_one_line(url, capsys):
    assert run_cli(predict_client.main, ["--url", url, "--data", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --url") and url in err and err.count("\n") == 1


def test_predict_client_connection_refused_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserError, match="cannot connect") as exc:
        predict_client.predict(f"http://127.0.0.1:{port}", NAME, np.zeros((28, 28), np.uint8), timeout=5)
    assert "\n" not in str(exc.value)


def test_parse_b64_matches_the_json_numbers():
    img = np.arange(784, dtype=np.uint8).reshape(28, 28)
    from_b64 = parse_request({"inputs": [{"b64": _b64(img)}, {"b64": _b64(img[::-1])}]})
    from_json = parse_request({"inputs": [img.tolist(), img[::-1].tolist()]})
    assert from_b64.columnar and from_b64.images.dtype == np.float32
    np.testing.assert_array_equal(from_b64.images, from_json.images)
    with pytest.raises(BadRequest, match="exceeds the limit of 1"):
        parse_request({"instances": [{"b64": _b64(img)}] * 2}, max_batch=1)
