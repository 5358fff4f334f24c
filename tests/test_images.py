"""images/: Dockerfiles install the pinned set, run as non-root, no :latest; imgclf.images picks a working engine."""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path

import pytest

from imgclf import images, settings
from imgclf.errors import UserError, run_cli

ROOT = settings.REPO_ROOT
CPU = (ROOT / "images" / "Dockerfile.cpu").read_text()
GPU = (ROOT / "images" / "Dockerfile.gpu").read_text()
GPU_CONSTRAINTS = (ROOT / "images" / "constraints-gpu.txt").read_text()


def pins(text: str) -> dict[str, str]:
    """name -> version of `name==version` lines, names normalised as pip does."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


def tf_cpu_pin() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    [requirement] = project["optional-dependencies"]["tf-cpu"]
    name, version = requirement.split("==")
    assert name == "tensorflow-cpu"
    return version


def instructions(dockerfile: str, keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in dockerfile.splitlines() if line.startswith(keyword + " ")]


def test_cpu_image_installs_package_through_constraints():
    assert 'pip install -c constraints.txt ".[tf-cpu]"' in CPU
    assert "and-cuda" not in CPU


def test_gpu_image_installs_and_cuda_at_the_tf_cpu_pin():
    [run] = [r for r in instructions(GPU, "RUN") if "pip install" in r]
    assert "-c constraints.txt" in run and "-c constraints-gpu.txt" in run
    assert "tf-cpu" not in run
    versions = re.findall(r'"tensorflow\[and-cuda\]==([^"]+)"', run)
    assert versions == [tf_cpu_pin()]
    assert pins(GPU_CONSTRAINTS)["tensorflow"] == tf_cpu_pin()


def test_gpu_constraints_do_not_contradict_the_shared_pins():
    shared = pins((ROOT / "constraints.txt").read_text())
    clashes = {n: (v, shared[n]) for n, v in pins(GPU_CONSTRAINTS).items() if n in shared and shared[n] != v}
    assert clashes == {}


@pytest.mark.parametrize("dockerfile", [CPU, GPU], ids=["cpu", "gpu"])
def test_images_run_as_non_root(dockerfile):
    users = instructions(dockerfile, "USER")
    assert users, "no USER instruction: the image would run as root"
    uid = users[-1].split(":")[0].strip()
    assert uid not in ("root", "0")
    assert re.search(rf"useradd .*--uid {uid}\b", dockerfile)


@pytest.mark.parametrize("dockerfile", [CPU, GPU], ids=["cpu", "gpu"])
def test_base_images_are_tagged_never_latest(dockerfile):
    for base in instructions(dockerfile, "FROM"):
        reference = base.split()[0]
        assert ":" in reference.rsplit("/", 1)[-1], reference
        assert not reference.endswith(":latest"), reference


@pytest.mark.parametrize("dockerfile", [CPU, GPU], ids=["cpu", "gpu"])
def test_images_copy_what_pip_install_needs(dockerfile):
    copied = " ".join(instructions(dockerfile, "COPY"))
    for needed in ("pyproject.toml", "constraints.txt", "README.md", "src"):
        assert needed in copied


def test_settings_image_references_come_with_a_real_tag(capsys):
    assert run_cli(images.main, ["tags"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"cpu {settings.CPU_IMAGE}", f"gpu {settings.GPU_IMAGE}"]
    for reference in (settings.CPU_IMAGE, settings.GPU_IMAGE):
        assert not reference.endswith(":latest")
        assert reference.startswith(settings.IMAGE_REPOSITORY + ":" + settings.IMAGE_TAG)


def test_dry_run_build_uses_settings_tags_and_dockerfiles(capsys):
    assert run_cli(images.main, ["build", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"--file {ROOT / 'images' / 'Dockerfile.cpu'} --tag {settings.CPU_IMAGE}" in out
    assert f"--file {ROOT / 'images' / 'Dockerfile.gpu'} --tag {settings.GPU_IMAGE}" in out


def fake_engine(bin_dir: Path, name: str, info_rc: int) -> None:
    script = bin_dir / name
    script.write_text(f'#!/bin/sh\nif [ "$1" = info ]; then exit {info_rc}; fi\necho "{name} $*"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_no_working_engine_is_one_clear_line(tmp_path, monkeypatch, capsys):
    fake_engine(tmp_path, "docker", info_rc=1)  # binary present, daemon down (like this machine)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run_cli(images.main, ["push"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "docker is installed but `docker info` fails" in err and "podman not found" in err


def test_working_podman_is_used_when_docker_has_no_daemon(tmp_path, monkeypatch, capfd):
    fake_engine(tmp_path, "docker", info_rc=1)
    fake_engine(tmp_path, "podman", info_rc=0)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert images.find_engine() == "podman"
    assert run_cli(images.main, ["push", "--variant", "gpu"]) == 0
    assert f"podman push {settings.GPU_IMAGE}" in capfd.readouterr().out


def test_asking_for_a_missing_engine_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError, match="podman not found"):
        images.find_engine("podman")
