"""pipelines.container_runner: the restricted pod's run arguments reach kfp's DockerRunner; pushes stay under the mount."""

from __future__ import annotations

import pytest
from kfp import local

from imgclf.errors import UserError
from pipelines import container_runner


def test_restricted_run_args_are_accepted_by_kfps_docker_runner():
    assert set(container_runner.RESTRICTED_RUN_ARGS) <= local.DockerRunner.DOCKER_CONTAINER_RUN_ARGS
    runner = container_runner.restricted_runner()
    args = runner.container_run_args
    assert args["network_mode"] == "none" and args["read_only"] is True and args["user"] == "1000:1000"
    assert "/tmp" in args["tmpfs"] and args["cap_drop"] == ["ALL"]


def test_push_base_must_be_under_the_mounted_pipeline_root(tmp_path):
    root = tmp_path / "root"
    container_runner._check_push_base(str(root / "serving"), root)
    with pytest.raises(UserError, match="outside the mounted pipeline root"):
        container_runner._check_push_base(str(tmp_path / "elsewhere"), root)
    with pytest.raises(UserError, match="no network"):
        container_runner._check_push_base("gs://bucket/models", root)


def test_default_push_base_is_under_the_container_pipeline_root(monkeypatch):
    seen = {}

    def fake_run(params):
        seen.update(params)
        return {"seconds": 0.0, "run_dir": None, "test_accuracy": None, "blessed": False, "reasons": [],
                "pushed_version": None, "pushed_uri": None}

    monkeypatch.setattr(container_runner, "run_in_containers", fake_run)
    monkeypatch.setattr(container_runner.local_runner, "run_local", fake_run)
    from pipelines import local_runner

    assert local_runner.main(["--push-base", "x"], run=fake_run) == 0
    assert seen["push_base"] == "x"
    monkeypatch.setattr(local_runner, "main", lambda argv, run: seen.update(argv=argv) or 0)
    assert container_runner.main(["--epochs", "1"]) == 0
    assert seen["argv"] == ["--epochs", "1", "--push-base", str(container_runner.PIPELINE_ROOT / "serving")]


class FakeContainer:
    def __init__(self, status):
        self.status, self.removed = status, False

    def logs(self, stream, follow):
        return iter([b"step log line\n"])

    def wait(self):
        return {"StatusCode": self.status}

    def remove(self, force):
        self.removed = True


class FakeClient:
    def __init__(self, status):
        self.container = FakeContainer(status)
        self.images = self
        self.containers = self
        self.run_args = None

    def get(self, image):
        return image

    def run(self, **kwargs):
        self.run_args = kwargs
        return self.container


@pytest.mark.parametrize("status", [0, 1])
def test_step_exit_status_is_read_before_the_container_is_removed(status, capsys):
    client = FakeClient(status)
    code = container_runner.run_container_keep_status(client, "img:1", ["sh"], {"/r": {}},
                                                      **container_runner.RESTRICTED_RUN_ARGS)
    assert code == status and client.container.removed
    assert "auto_remove" not in client.run_args and client.run_args["network_mode"] == "none"
    assert "step log line" in capsys.readouterr().out


def test_kfps_container_function_is_swapped_only_during_the_run():
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    with container_runner._steps_keep_their_exit_status():
        assert docker_task_handler.run_docker_container is container_runner.run_container_keep_status
    assert docker_task_handler.run_docker_container is original
