"""Build and push the CPU and GPU images, tagged only from settings (CPU_IMAGE, GPU_IMAGE).

    python -m imgclf.deploy.images tags                 # print the two image references
    python -m imgclf.deploy.images build [--variant cpu|gpu|all] [--base auto|registry|debian] [--fresh] [--dry-run]
    python -m imgclf.deploy.images push  [--variant cpu|gpu|all] [--dry-run]
    python -m imgclf.deploy.images wheelhouse [--variant ...]   # only the host-side wheel download
    python -m imgclf.deploy.images base [--fresh]                # only the Python base from the apt mirror

The engine is docker or podman, whichever answers `<engine> info` (a docker
binary whose daemon is not running does not count); --engine picks one.

A build needs no network for Python packages: `wheelhouse` first runs `pip wheel`
on the host (this package plus every pin of constraints.txt) into wheels/, and the
Dockerfiles install from it with `pip install --no-index` (bind-mounted, so the
wheels add no layer). The base is python:3.11-slim-bookworm; when that cannot be
pulled (no registry) and is not already local, --base auto builds a stand-in from
the Debian apt mirror this host uses (debootstrap, then `<engine> import`, then
images/Containerfile.python-base) and passes it as the BASE_IMAGE build arg.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imgclf import settings
from imgclf.errors import UserError, run_cli

ENGINES = ("docker", "podman")
IMAGES_DIR = settings.REPO_ROOT / "images"
WHEELHOUSE = settings.REPO_ROOT / "wheels"
BASE_CONTAINERFILE = IMAGES_DIR / "Containerfile.python-base"
INFO_TIMEOUT_S = 20
PULL_TIMEOUT_S = 120
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
GPU_TENSORFLOW = "tensorflow[and-cuda]==2.21.0"


@dataclass(frozen=True)
class ImageSpec:
    variant: str
    reference: str
    dockerfile: Path


def image_specs() -> dict[str, ImageSpec]:
    """The images we build, by variant; references come from settings only."""
    return {
        "cpu": ImageSpec("cpu", settings.CPU_IMAGE, IMAGES_DIR / "Dockerfile.cpu"),
        "gpu": ImageSpec("gpu", settings.GPU_IMAGE, IMAGES_DIR / "Dockerfile.gpu"),
    }


def engine_status(engine: str) -> str | None:
    """None when `engine info` succeeds; otherwise why this engine cannot be used."""
    if shutil.which(engine) is None:
        return f"{engine} not found"
    try:
        result = subprocess.run(
            [engine, "info"], capture_output=True, text=True, timeout=INFO_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{engine} info` failed ({type(exc).__name__})"
    if result.returncode != 0:
        return f"{engine} is installed but `{engine} info` fails (no running engine/daemon)"
    return None


def find_engine(preferred: str | None = None) -> str:
    """The first working engine (or `preferred`); UserError naming what was tried."""
    reasons = []
    for engine in (preferred,) if preferred else ENGINES:
        reason = engine_status(engine)
        if reason is None:
            return engine
        reasons.append(reason)
    raise UserError(
        f"no working container engine: {'; '.join(reasons)}. "
        "Start Docker or install podman (make podman-setup), then retry"
    )


def wheel_command(variant: str, python: str = sys.executable) -> list[str]:
    """`pip wheel` of this package and its pinned dependencies into wheels/ (runs on the host)."""
    command = [python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE),
               "--find-links", str(WHEELHOUSE), "-c", "constraints.txt"]
    if variant == "gpu":
        return command + ["-c", "images/constraints-gpu.txt", ".", GPU_TENSORFLOW]
    return command + [".[tf-cpu]"]


def build_command(engine: str, spec: ImageSpec, base_image: str = settings.PYTHON_BASE_IMAGE) -> list[str]:
    return [
        engine, "build",
        "--file", str(spec.dockerfile),
        "--tag", spec.reference,
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--label", f"org.opencontainers.image.version={settings.IMAGE_TAG}",
        str(settings.REPO_ROOT),
    ]


def push_command(engine: str, spec: ImageSpec) -> list[str]:
    return [engine, "push", spec.reference]


def apt_mirror(sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror this host's apt uses (sources.list or deb822 .sources), else deb.debian.org."""
    files = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*"))]
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.MULTILINE))
                suites = fields.get("Suites", "").split()
                if "deb" in fields.get("Types", "").split() and SUITE in suites:
                    return fields["URIs"].split()[0].rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1].rstrip("/")
    return DEFAULT_MIRROR


def image_id(engine: str, reference: str) -> str | None:
    result = subprocess.run([engine, "image", "inspect", "--format", "{{.Id}}", reference],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def image_exists(engine: str, reference: str) -> bool:
    result = subprocess.run([engine, "image", "inspect", reference], capture_output=True, check=False)
    return result.returncode == 0


def _run(command: list[str], what: str, **kwargs) -> None:
    print("+ " + shlex.join(command), flush=True)
    result = subprocess.run(command, check=False, **kwargs)
    if result.returncode != 0:
        raise UserError(f"{what} failed with exit status {result.returncode} (command: {shlex.join(command)})")


def try_pull(engine: str, reference: str) -> str | None:
    """None when the pull worked; else its last error line (e.g. no route to the registry)."""
    print(f"+ {engine} pull {reference}", flush=True)
    try:
        result = subprocess.run([engine, "pull", reference], capture_output=True, text=True,
                                timeout=PULL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer within {PULL_TIMEOUT_S} s"
    if result.returncode == 0:
        return None
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def build_debian_base(engine: str, mirror: str, fresh: bool = False) -> str:
    """Build the stand-in for python:3.11-slim-bookworm from the apt mirror; returns its reference."""
    if not fresh and image_exists(engine, settings.LOCAL_PYTHON_BASE_IMAGE):
        print(f"using the local base {settings.LOCAL_PYTHON_BASE_IMAGE} (built earlier; --fresh rebuilds it)")
        return settings.LOCAL_PYTHON_BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap not found: the base image is built from the apt mirror with it "
                        "(make podman-setup installs it, or apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise UserError("debootstrap needs root to build the base image's root filesystem: run as root "
                        "(or sudo), or give the build a registry that serves "
                        f"{settings.PYTHON_BASE_IMAGE} (--base registry)")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="imgclf-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        # Python goes in through apt in Containerfile.python-base (debootstrap's --include does
        # not configure python3.11-venv's dependencies reliably).
        _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
             "debootstrap of the base root filesystem", stdout=subprocess.DEVNULL)
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        print(f"+ tar -C {rootfs} -c . | {engine} import - {settings.DEBIAN_ROOTFS_IMAGE}", flush=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([engine, "import", "-", settings.DEBIAN_ROOTFS_IMAGE], stdin=tar.stdout,
                                  stdout=subprocess.DEVNULL, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise UserError(f"importing the debootstrap root filesystem into {engine} failed")
    _run([engine, "build", "--file", str(BASE_CONTAINERFILE),
          "--build-arg", f"ROOTFS_IMAGE={settings.DEBIAN_ROOTFS_IMAGE}",
          "--tag", settings.LOCAL_PYTHON_BASE_IMAGE, str(IMAGES_DIR)], "build of the Python base image")
    print(f"base image {settings.LOCAL_PYTHON_BASE_IMAGE} built from {mirror} in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return settings.LOCAL_PYTHON_BASE_IMAGE


def official_base() -> str:
    """The official base, fully qualified: podman resolves a short name to any local .../python:<tag>."""
    return f"docker.io/library/{settings.PYTHON_BASE_IMAGE}"


def resolve_base(engine: str, mode: str, mirror: str, fresh: bool) -> str:
    """The BASE_IMAGE for the builds: the official one when it is local or pullable, else the stand-in."""
    if mode == "registry":
        return official_base()
    if mode == "auto" and not fresh:
        if image_exists(engine, official_base()):
            return official_base()
        error = try_pull(engine, official_base())
        if error is None:
            return official_base()
        print(f"cannot pull {official_base()} ({error}): building a stand-in from the apt "
              f"mirror {mirror}", flush=True)
    return build_debian_base(engine, mirror, fresh=fresh)


def build_wheelhouse(variant: str) -> None:
    start = time.perf_counter()
    _run(wheel_command(variant), f"pip wheel for the {variant} image", cwd=settings.REPO_ROOT)
    print(f"wheelhouse {WHEELHOUSE} ready for {variant} in {time.perf_counter() - start:.0f} s", flush=True)


def _selected(variant: str) -> list[ImageSpec]:
    specs = image_specs()
    return list(specs.values()) if variant == "all" else [specs[variant]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imgclf.deploy.images",
        description="Build or push the imgclf CPU/GPU images; names and tags come from imgclf.settings.",
    )
    parser.add_argument("action", choices=("tags", "build", "push", "wheelhouse", "base"), help="what to do")
    parser.add_argument("--variant", choices=("cpu", "gpu", "all"), default="all", help="which image (default: all)")
    parser.add_argument("--engine", choices=ENGINES, help="container engine (default: first that answers `info`)")
    parser.add_argument("--base", choices=("auto", "registry", "debian"), default="auto",
                        help=f"base image: {settings.PYTHON_BASE_IMAGE} when local or pullable, else built from "
                             "the apt mirror (auto, default); always the registry's; always the apt mirror's")
    parser.add_argument("--fresh", action="store_true",
                        help="rebuild the base from the apt mirror even if it exists (what CI does)")
    parser.add_argument("--mirror", help="Debian mirror for the base (default: the one in /etc/apt/sources.list*)")
    parser.add_argument("--no-wheelhouse", action="store_true", help="skip `pip wheel` (wheels/ already filled)")
    parser.add_argument("--dry-run", action="store_true", help="print the build/push commands, run nothing")
    args = parser.parse_args(argv)

    specs = _selected(args.variant)
    if args.action == "tags":
        for spec in specs:
            print(f"{spec.variant} {spec.reference}")
        return 0
    if args.action == "wheelhouse":
        for spec in specs:
            build_wheelhouse(spec.variant)
        return 0
    engine = (args.engine or "docker") if args.dry_run else find_engine(args.engine)
    mirror = args.mirror or apt_mirror()
    if args.action == "base":
        print(build_debian_base(engine, mirror, fresh=args.fresh))
        return 0
    if args.action == "push":
        for spec in specs:
            command = push_command(engine, spec)
            print("+ " + shlex.join(command), flush=True)
            if not args.dry_run:
                _run_engine(command, engine, "push", spec)
        return 0
    if args.dry_run:
        for spec in specs:
            print("+ " + shlex.join(wheel_command(spec.variant)))
            print("+ " + shlex.join(build_command(engine, spec)))
        return 0
    old_bases = [image_id(engine, ref) for ref in (settings.LOCAL_PYTHON_BASE_IMAGE, settings.DEBIAN_ROOTFS_IMAGE)]
    # The wheelhouse (pip, on the host) fills while the base is fetched and built.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        wheels = None if args.no_wheelhouse else pool.submit(
            lambda: [build_wheelhouse(spec.variant) for spec in specs])
        base = resolve_base(engine, args.base, mirror, args.fresh)
        if wheels is not None:
            wheels.result()
    for spec in specs:
        start = time.perf_counter()
        previous = image_id(engine, spec.reference)
        command = build_command(engine, spec, base)
        print("+ " + shlex.join(command), flush=True)
        _run_engine(command, engine, "build", spec)
        print(f"built {spec.reference} on {base} in {time.perf_counter() - start:.0f} s", flush=True)
        if previous and previous != image_id(engine, spec.reference):
            # The image this tag named before is now untagged: drop it (GBs per rebuild) unless in use.
            subprocess.run([engine, "rmi", previous], capture_output=True, check=False)
    for old in old_bases:  # a --fresh base replaced these; gone once no image builds on them
        if old and old not in {image_id(engine, settings.LOCAL_PYTHON_BASE_IMAGE),
                               image_id(engine, settings.DEBIAN_ROOTFS_IMAGE)}:
            subprocess.run([engine, "rmi", old], capture_output=True, check=False)
    return 0


def _run_engine(command: list[str], engine: str, action: str, spec: ImageSpec) -> None:
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise UserError(f"`{engine} {action}` of {spec.reference} failed with exit status {result.returncode}")


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
