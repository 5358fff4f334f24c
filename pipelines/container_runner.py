"""Run the training pipeline with every step in the built CPU image, as a restricted pod would run it.

Usage: python -m pipelines.container_runner [same options as pipelines.local_runner]
(`make run-containers`; build the image first with `make images ARGS="--variant cpu"`).

kfp's local DockerRunner starts one container per step from settings.CPU_IMAGE,
with what a restricted Kubernetes pod gets: no network, a read-only root
filesystem, a tmpfs at /tmp, uid/gid 1000, no added capabilities. The pipeline
root (runs/container_outputs/) is the only host directory mounted (kfp mounts
it at the same path); the model is pushed under it too (<root>/serving unless
--push-base names another place under it, or a gs:// / s3:// URI, which a
no-network container cannot reach).

The engine is Docker when DOCKER_HOST is set or `docker info` answers; else
podman, through its Docker-compatible API (`podman system service` on a socket of
our own, stopped at the end). Needs the `docker` Python package (the dev extra).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imgclf import settings
from imgclf.errors import UserError, run_cli
from pipelines import local_runner

PIPELINE_ROOT = settings.LOCAL_RUNS_DIR / "container_outputs"
RUN_AS = "1000:1000"  # the images' USER; what runAsUser/runAsGroup set on a cluster
SOCKET_WAIT_S = 30
# docker-py containers.run() keyword arguments (kfp passes them through).
RESTRICTED_RUN_ARGS = {
    "network_mode": "none",
    "read_only": True,
    "tmpfs": {"/tmp": "rw,nosuid,nodev,size=1g,mode=1777"},
    "user": RUN_AS,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "environment": {"TF_CPP_MIN_LOG_LEVEL": "2"},
}


def run_container_keep_status(client, image: str, command: list[str], volumes: dict, **run_args) -> int:
    """Stand-in for kfp's docker_task_handler.run_docker_container, used while we run.

    kfp 2.17 starts each step with auto_remove=True and, when the container is gone before
    `wait()` answers, assumes exit status 0; podman's API then answers with an error kfp does
    not catch ("no such container"), failing a step that succeeded (seen in `make test-images`).
    Here the container is kept until its real exit status is read, then removed.
    """
    import docker

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise UserError(f"image {image} is not built: make images ARGS='--variant cpu'") from None
    container = client.containers.run(image=image, command=command, volumes=volumes, detach=True,
                                      stdout=True, stderr=True, **run_args)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return container.wait()["StatusCode"]
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


@contextlib.contextmanager
def _steps_keep_their_exit_status():
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = run_container_keep_status
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


def restricted_runner():
    """kfp's DockerRunner with the restricted pod's run arguments."""
    from kfp import local

    return local.DockerRunner(**RESTRICTED_RUN_ARGS)


@contextlib.contextmanager
def docker_api():
    """Yield with DOCKER_HOST pointing at a Docker-compatible API (Docker's, or podman's service)."""
    if os.environ.get("DOCKER_HOST"):
        yield os.environ["DOCKER_HOST"]
        return
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        yield "docker default socket"
        return
    if shutil.which("podman") is None:
        raise UserError("no container engine: set DOCKER_HOST, start Docker, or install podman (make podman-setup)")
    with tempfile.TemporaryDirectory(prefix="imgclf-podman-") as tmp:
        socket = Path(tmp) / "podman.sock"
        uri = f"unix://{socket}"
        service = subprocess.Popen(["podman", "system", "service", "--time=0", uri],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + SOCKET_WAIT_S
            while not socket.exists():
                if service.poll() is not None or time.monotonic() > deadline:
                    error = (service.stderr.read() if service.poll() is not None else "").strip().splitlines()
                    raise UserError(f"`podman system service` did not open {socket}: "
                                    f"{error[-1] if error else 'timed out'}")
                time.sleep(0.1)
            previous = os.environ.get("DOCKER_HOST")
            os.environ["DOCKER_HOST"] = uri
            try:
                yield uri
            finally:
                if previous is None:
                    os.environ.pop("DOCKER_HOST", None)
                else:
                    os.environ["DOCKER_HOST"] = previous
        finally:
            service.terminate()
            try:
                service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()


def _check_push_base(push_base: str, pipeline_root: Path) -> Path:
    """The push base as an absolute host path under the mounted pipeline root; UserError otherwise.

    Absolute because steps see the host's paths mounted at the same place: a relative one would resolve
    against the container's (read-only) working directory."""
    if "://" in push_base:
        raise UserError(f"push_base {push_base!r}: containers run with no network here; push under the "
                        f"mounted pipeline root {pipeline_root} (the default)")
    path = Path(push_base).resolve()
    if path != pipeline_root and pipeline_root not in path.parents:
        raise UserError(f"push_base {push_base!r} is outside the mounted pipeline root {pipeline_root}: "
                        "the step containers cannot write there")
    return path


def run_in_containers(params: dict, pipeline_root: Path = PIPELINE_ROOT) -> dict:
    """local_runner.run_local with the restricted DockerRunner; the image must exist already."""
    pipeline_root = pipeline_root.resolve()
    params = {**params, "push_base": str(_check_push_base(params["push_base"], pipeline_root))}
    pipeline_root.mkdir(parents=True, exist_ok=True)
    # The steps run as uid 1000 and create their output directories under the root: let them.
    pipeline_root.chmod(0o1777)
    Path(params["push_base"]).mkdir(parents=True, exist_ok=True)
    Path(params["push_base"]).chmod(0o1777)
    try:
        import docker  # noqa: F401  (kfp's DockerRunner imports it lazily; fail here in one line)
    except ImportError:
        raise UserError("the `docker` Python package is missing: pip install -e '.[dev]' (or make venv)") from None
    with docker_api() as api:
        import docker

        client = docker.from_env()
        try:
            client.images.get(settings.CPU_IMAGE)
        except docker.errors.ImageNotFound:
            raise UserError(f"image {settings.CPU_IMAGE} not built: make images ARGS='--variant cpu'") from None
        finally:
            client.close()
        print(f"steps run in {settings.CPU_IMAGE} through {api}: network none, read-only root, "
              f"tmpfs /tmp, uid {RUN_AS}", flush=True)
        with _steps_keep_their_exit_status():
            # Serial: kfp's DockerRunner shares one docker client, and containers side by side are not what this checks.
            return local_runner.run_local(params, pipeline_root=pipeline_root, runner=restricted_runner(),
                                          side_in_background=False)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Default push base under the mounted root (a --params-file push_base loses to this flag).
    if not any(a.startswith("--push-base") or "push_base=" in a for a in argv):
        argv += ["--push-base", str(PIPELINE_ROOT / "serving")]
    return local_runner.main(argv, run=run_in_containers)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
