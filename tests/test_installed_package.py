"""The installed package works outside a checkout: build the wheel, install it (not editable) into a
fresh virtualenv, and from an empty directory run every CLI's --help and ingest -> validate -> train ->
evaluate -> push (to the default push base under that directory, and to s3:// on the moto server).

The fresh venv gets imgclf from the wheel only; its third-party dependencies are the project venv's
(a .pth line), so the test needs no download and no second TensorFlow install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

from tests.conftest import S3_TEST_BUCKET

ROOT = Path(__file__).resolve().parents[1]
# Tools that write (or read) the checkout's own files: outside it they say so in one line.
CHECKOUT_ONLY = {"imgclf-katib": ["imgclf-katib"], "imgclf-submit": ["imgclf-submit", "--host", "http://127.0.0.1:9"],
                 "manifests": ["python", "-m", "imgclf.deploy.manifests"],
                 "check-manifests": ["python", "-m", "imgclf.deploy.manifest_checks"]}


def _run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_installed_outside_a_checkout_runs_every_cli_and_the_steps(tmp_path, fmnist_dir, s3_server):
    start = time.perf_counter()
    src = tmp_path / "source"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    [wheel] = wheels.glob("imgclf-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    (purelib / "imgclf_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    where = _run([str(python), "-c", "import imgclf; print(imgclf.__file__)"], work, env).stdout.strip()
    assert where.startswith(str(purelib)), f"imgclf imported from {where}, not from the installed wheel"

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    helps = {script: subprocess.Popen([str(venv / "bin" / script), "--help"], cwd=work, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for script in scripts}
    for script, proc in helps.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and "usage:" in out, (script, err[-2000:])
    for tool, (program, *args) in CHECKOUT_ONLY.items():
        done = _run([str(venv / "bin" / program), *args], work, env)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (tool, done.stderr)
        assert "checkout" in done.stderr, (tool, done.stderr)

    bin_ = venv / "bin"
    steps = [
        ["imgclf-ingest", "--data-uri", fmnist_dir, "--output", "data", "--max-train-examples", "1000",
         "--max-test-examples", "300"],
        ["imgclf-validate", "--dataset", "data", "--output", "validation"],
        ["imgclf-train", "--dataset", "data", "--output", "model", "--epochs", "1", "--batch-size", "64"],
        ["imgclf-evaluate", "--dataset", "data", "--model", "model", "--output", "evaluation",
         "--accuracy-threshold", "0.3"],
        ["imgclf-push", "--model", "model", "--blessing", "evaluation/blessing.json"],
        ["imgclf-push", "--model", "model", "--blessing", "evaluation/blessing.json",
         "--push-base", f"s3://{S3_TEST_BUCKET}/wheel-test"],
    ]
    outputs = []
    for step in steps:
        done = _run([str(bin_ / step[0]), *step[1:]], work, env)
        assert done.returncode == 0, (step, done.stderr[-3000:])
        outputs.append(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
    # The default push base is runs/serving under the current directory, not inside site-packages.
    assert (work / "runs" / "serving" / "fashion-mnist" / "1" / "saved_model.pb").is_file()
    assert outputs[-1] == f"pushed version 1 to s3://{S3_TEST_BUCKET}/wheel-test/fashion-mnist/1"
    assert not list(purelib.glob("**/runs")), "nothing may be written inside site-packages"
    print(f"\nwheel install test: {time.perf_counter() - start:.1f} s; {outputs[-2]}; {outputs[-1]}")
