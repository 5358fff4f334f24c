"""Compile the pipeline's CPU and GPU variants to deterministic YAML under pipelines/.

Usage: python -m pipelines.compile [--output-dir DIR]
Re-running gives byte-identical files (kfp's compiler output holds no
timestamps; tests/test_pipeline.py checks it and that the committed files are current).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from kfp import compiler

from imgclf import settings
from pipelines.training_pipeline import build_pipeline

VARIANTS = {settings.PIPELINE_YAML.name: False, settings.PIPELINE_GPU_YAML.name: True}


def compile_all(output_dir: Path = settings.PIPELINE_DIR) -> list[Path]:
    """Write every variant into output_dir (via temp file + rename); returns the paths."""
    written = []
    for name, gpu in VARIANTS.items():
        target = Path(output_dir) / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".yaml", dir=output_dir)
        os.close(fd)
        try:
            compiler.Compiler().compile(build_pipeline(gpu=gpu), package_path=tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=settings.PIPELINE_DIR)
    args = parser.parse_args(argv)
    for path in compile_all(args.output_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
