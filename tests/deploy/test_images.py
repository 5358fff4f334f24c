"""images/: Dockerfiles install the pinned set, run as non-root, no :latest; imgclf.deploy.images picks a working engine."""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path

import pytest

from imgclf import settings
from imgclf.deploy import images
from imgclf.errors import UserError, run_cli

ROOT = settings.REPO_ROOT
CPU = (ROOT / "images" / "Dockerfile.cpu").read_text()
GPU = (ROOT / "images" / "Dockerfile.gpu").read_text()
BASE = (ROOT / "images" / "Containerfile.python-base").read_text()
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


def logical_lines(dockerfile: str) -> list[str]:
    """Instructions with their `\\` continuation lines joined; comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(l for l in dockerfile.splitlines() if not l.lstrip().startswith("#")))
    return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def instructions(dockerfile: str, keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in logical_lines(dockerfile) if line.startswith(keyword + " ")]


def pip_install_run(dockerfile: str) -> str:
    [run] = [r for r in instructions(dockerfile, "RUN") if "pip install" in r]
    return run


@pytest.mark.parametrize("dockerfile", [CPU, GPU], ids=["cpu", "gpu"])
def test_python_packages_install_offline_from_the_wheelhouse(dockerfile):
    run = pip_install_run(dockerfile)
    assert run.startswith("--mount=type=bind,target=/tmp/context "), "wheels must be mounted, not copied"
    assert "--no-index --find-links /tmp/context/wheels" in run
    assert "-c /tmp/context/constraints.txt" in run
    assert not instructions(dockerfile, "COPY") and not instructions(dockerfile, "ADD")


def test_cpu_image_installs_package_through_constraints():
    assert '"imgclf[tf-cpu]"' in pip_install_run(CPU)
    assert "and-cuda" not in CPU


def test_gpu_image_installs_and_cuda_at_the_tf_cpu_pin():
    run = pip_install_run(GPU)
    assert "-c /tmp/context/images/constraints-gpu.txt" in run
    assert "tf-cpu" not in run
    versions = re.findall(r'"tensorflow\[and-cuda\]==([^"]+)"', run)
    assert versions == [tf_cpu_pin()] == [images.GPU_TENSORFLOW.split("==")[1]]
    assert pins(GPU_CONSTRAINTS)["tensorflow"] == tf_cpu_pin()


@pytest.mark.parametrize("dockerfile", [CPU, GPU], ids=["cpu", "gpu"])
def test_base_image_is_a_build_arg_defaulting_to_the_official_one(dockerfile):
    assert instructions(dockerfile, "FROM") == ["${BASE_IMAGE}"]
    assert f"ARG BASE_IMAGE={settings.PYTHON_BASE_IMAGE}" in dockerfile.splitlines()


@pytest.mark.parametrize("dockerfile", [CPU, GPU, BASE], ids=["cpu", "gpu", "base"])
def test_nothing_machine_specific_in_the_dockerfiles(dockerfile):
    code = "\n".join(logical_lines(dockerfile)).lower()
    for marker in ("/etc/ssl", "ca_bundle", "pip_cert", "requests_ca", "proxy", "/work/", "/opt/", "deb.debian.org",
                   "trusted-host", "--network"):
        assert marker not in code, marker


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


@pytest.mark.parametrize("dockerfile", [CPU, GPU, BASE], ids=["cpu", "gpu", "base"])
def test_base_images_are_tagged_never_latest(dockerfile):
    defaults = [a.split("=", 1)[1] for a in instructions(dockerfile, "ARG") if a.endswith(("bookworm",))]
    assert defaults, "FROM ${ARG} needs a tagged default"
    for reference in defaults:
        assert ":" in reference.rsplit("/", 1)[-1], reference
        assert not reference.endswith(":latest"), reference


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_the_build_context_lets_the_wheelhouse_and_constraints_in(variant):
    ignore = (ROOT / "images" / f"Dockerfile.{variant}.dockerignore").read_text().splitlines()
    for needed in ("!constraints.txt", "!wheels", "!wheels/*.whl"):
        assert needed in ignore
    assert "/wheels/" in (ROOT / ".gitignore").read_text().splitlines()


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


def test_wheelhouse_command_pins_both_variants():
    cpu = images.wheel_command("cpu", python="py")
    assert cpu[:4] == ["py", "-m", "pip", "wheel"] and cpu[-3:] == ["-c", "constraints.txt", ".[tf-cpu]"]
    gpu = images.wheel_command("gpu", python="py")
    assert gpu[-6:] == ["-c", "constraints.txt", "-c", "images/constraints-gpu.txt", ".", images.GPU_TENSORFLOW]


def test_build_passes_the_base_as_a_build_arg():
    spec = images.image_specs()["cpu"]
    command = images.build_command("podman", spec, settings.LOCAL_PYTHON_BASE_IMAGE)
    assert f"BASE_IMAGE={settings.LOCAL_PYTHON_BASE_IMAGE}" in command
    # A short name podman could resolve to the stand-in is never checked or pulled.
    assert images.official_base() == f"docker.io/library/{settings.PYTHON_BASE_IMAGE}"
    assert settings.LOCAL_PYTHON_BASE_IMAGE.rsplit("/", 1)[1].split(":")[0] != "python"
    assert f"BASE_IMAGE={settings.PYTHON_BASE_IMAGE}" in images.build_command("docker", spec)


def test_apt_mirror_read_from_deb822_and_one_line_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    assert images.apt_mirror(tmp_path) == images.DEFAULT_MIRROR
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n")
    assert images.apt_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("# deb http://old/ bookworm main\n"
                                           "deb [signed-by=/k.gpg] https://corp.example/debian bookworm main\n")
    assert images.apt_mirror(tmp_path) == "https://corp.example/debian"


def test_no_registry_builds_the_base_from_the_apt_mirror(tmp_path, monkeypatch, capfd):
    """`podman pull` fails (no registry): the stand-in base is built, and the images use it."""
    calls = tmp_path / "calls"
    script = tmp_path / "podman"
    script.write_text(f'#!/bin/sh\necho "podman $*" >> {calls}\n'
                      'case "$1" in info) exit 0;; pull) echo "no such host" >&2; exit 125;; '
                      'image) exit 1;; esac\nexit 0\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    built = []
    monkeypatch.setattr(images, "build_debian_base", lambda engine, mirror, fresh=False: built.append(mirror)
                        or settings.LOCAL_PYTHON_BASE_IMAGE)
    assert run_cli(images.main, ["build", "--variant", "cpu", "--no-wheelhouse", "--mirror", "http://m/debian"]) == 0
    assert built == ["http://m/debian"]
    out = capfd.readouterr().out
    assert f"cannot pull {images.official_base()} (no such host)" in out
    assert f"BASE_IMAGE={settings.LOCAL_PYTHON_BASE_IMAGE}" in calls.read_text()
