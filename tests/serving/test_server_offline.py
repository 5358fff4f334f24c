"""The serve CLI, version watching and the predict client, without TensorFlow or a live server."""

from __future__ import annotations

import logging
import shutil
import socket

import numpy as np
import pytest

from imgclf import settings
from imgclf.errors import UserError, run_cli
from imgclf.serving import client as predict_client, server as serve
from imgclf.serving.payload import DEFAULT_MAX_BATCH

NAME = settings.MODEL_NAME


# --- serve CLI and version watching without TF ---------------------------------------------------

@pytest.mark.parametrize("port", ["99999", "0", "-5"])
def test_serve_rejects_bad_port_in_one_line(port, tmp_path, capsys):
    assert run_cli(serve.main, ["--push-base", str(tmp_path), "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --port") and port in err and err.count("\n") == 1


def test_serve_rejects_negative_tf_threads_in_one_line(tmp_path, capsys):
    assert run_cli(serve.main, ["--push-base", str(tmp_path), "--tf-threads", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --tf-threads -1") and err.count("\n") == 1


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
