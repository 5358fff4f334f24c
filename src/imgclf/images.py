"""Build and push the CPU and GPU images, tagged only from settings (CPU_IMAGE, GPU_IMAGE).

    python -m imgclf.images tags                 # print the two image references
    python -m imgclf.images build [--variant cpu|gpu|all] [--dry-run]
    python -m imgclf.images push  [--variant cpu|gpu|all] [--dry-run]

The engine is docker or podman, whichever answers `<engine> info` (a docker
binary whose daemon is not running does not count); --engine picks one.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from imgclf import settings
from imgclf.errors import UserError, run_cli

ENGINES = ("docker", "podman")
IMAGES_DIR = settings.REPO_ROOT / "images"
INFO_TIMEOUT_S = 20


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
        f"no working container engine: {'; '.join(reasons)}. Start Docker or install podman, then retry"
    )


def build_command(engine: str, spec: ImageSpec) -> list[str]:
    return [
        engine, "build",
        "--file", str(spec.dockerfile),
        "--tag", spec.reference,
        "--label", f"org.opencontainers.image.version={settings.IMAGE_TAG}",
        str(settings.REPO_ROOT),
    ]


def push_command(engine: str, spec: ImageSpec) -> list[str]:
    return [engine, "push", spec.reference]


def _selected(variant: str) -> list[ImageSpec]:
    specs = image_specs()
    return list(specs.values()) if variant == "all" else [specs[variant]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imgclf.images",
        description="Build or push the imgclf CPU/GPU images; names and tags come from imgclf.settings.",
    )
    parser.add_argument("action", choices=("tags", "build", "push"), help="what to do")
    parser.add_argument("--variant", choices=("cpu", "gpu", "all"), default="all", help="which image (default: all)")
    parser.add_argument("--engine", choices=ENGINES, help="container engine (default: first that answers `info`)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)

    specs = _selected(args.variant)
    if args.action == "tags":
        for spec in specs:
            print(f"{spec.variant} {spec.reference}")
        return 0
    engine = (args.engine or "docker") if args.dry_run else find_engine(args.engine)
    make = build_command if args.action == "build" else push_command
    for spec in specs:
        command = make(engine, spec)
        print("+ " + shlex.join(command), flush=True)
        if args.dry_run:
            continue
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            raise UserError(f"`{engine} {args.action}` of {spec.reference} failed with exit status {result.returncode}")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
