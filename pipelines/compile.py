"""Compile the pipeline's CPU and GPU variants to deterministic YAML under pipelines/.

Usage: python -m pipelines.compile [--output-dir DIR]
Re-running gives byte-identical files (kfp's compiler output holds no
timestamps; tests/pipelines/test_pipeline.py checks it and that the committed files are current).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import yaml
from kfp import compiler

from imgclf import settings
from imgclf.kfp_client.compat import without_default_secret_optional
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
            _for_min_backend(Path(tmp))
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        written.append(target)
    return written


def _for_min_backend(path: Path) -> None:
    """Rewrite a compiled file so the minimum backend (imgclf.kfp_client.compat.MIN_BACKEND) accepts it, written the
    way kfp writes it (its header comments, then yaml.dump_all with sorted keys)."""
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    header = "".join(line for line in lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    docs = list(yaml.safe_load_all(text))
    if len(docs) > 1:
        docs[1] = without_default_secret_optional(docs[1])
    with path.open("w") as f:
        f.write(header)
        yaml.dump_all(docs, f, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.compile", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=settings.PIPELINE_DIR)
    args = parser.parse_args(argv)
    for path in compile_all(args.output_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
