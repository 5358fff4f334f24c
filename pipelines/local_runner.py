"""Run the training pipeline on this machine with kfp's local runner (no cluster).

Usage: python -m pipelines.local_runner [--epochs 3] [--param name=value ...]
Each step runs as a subprocess in the current Python environment
(SubprocessRunner(use_venv=False)); artifacts go under runs/local_outputs/ and
blessed models are pushed to runs/serving/<model>/<version>/. Ends by printing
the test accuracy, the blessing decision and where the pushed model is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

from imgclf import kfp_params, settings, storage, versions
from imgclf.errors import UserError, run_cli
from imgclf.kfp_spec_check import load_pipeline_docs

PIPELINE_ROOT = settings.LOCAL_RUNS_DIR / "local_outputs"
LOCAL_TUNERS = tuple(t for t in settings.TUNERS if t != "katib")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _newest_run_dir(before: set[str]) -> Path | None:
    runs = [p for p in PIPELINE_ROOT.iterdir() if p.is_dir() and p.name not in before] if PIPELINE_ROOT.exists() else []
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


def run_local(params: dict, pipeline_root: Path = PIPELINE_ROOT, warm: bool = True) -> dict:
    """Run the CPU pipeline locally with params; returns a summary read from the run's artifacts.

    warm: fork the steps from one process that imported TensorFlow once (imgclf.warm_steps).
    """
    from kfp import local

    from imgclf.warm_steps import warm_steps
    from pipelines.training_pipeline import build_pipeline

    # Steps inherit this environment: keep TensorFlow's C++ start-up chatter out of the step logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # OpenBLAS' worker threads spin against each other and TensorFlow on 2 cores: the label audit's small
    # matrix products took 92 s instead of 5 s (README "Speed"). TensorFlow keeps its own thread pools.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in pipeline_root.iterdir()}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True)
    base = versions.model_base(params["push_base"], params["model_name"])
    pushed_before = versions.servable_versions(base)
    start = time.perf_counter()
    with warnings.catch_warnings(), warm_steps(warm):
        # Our image name does not contain "python"; locally the step runs in this venv anyway.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        try:
            build_pipeline(gpu=False)(**params)
        except RuntimeError as exc:
            first = ANSI_ESCAPE.sub("", str(exc).splitlines()[0])
            raise UserError(f"local pipeline run failed: {first} (the step's own error is in its log above)") from None
    seconds = time.perf_counter() - start
    run_dir = _newest_run_dir(before)
    blessing_files = sorted(run_dir.glob("*/evaluation/blessing.json")) if run_dir else []
    blessing = json.loads(blessing_files[0].read_text()) if blessing_files else {}
    pushed_after = versions.servable_versions(base)
    new = sorted(set(pushed_after) - set(pushed_before))
    return {
        "seconds": round(seconds, 1),
        "run_dir": str(run_dir) if run_dir else None,
        "test_accuracy": blessing.get("accuracy"),
        "blessed": blessing.get("blessed"),
        "reasons": blessing.get("reasons", []),
        "pushed_version": new[-1] if new else None,
        "pushed_uri": base.child(str(new[-1])).uri() if new else None,
    }


def main(argv: list[str] | None = None) -> int:
    spec = load_pipeline_docs(settings.PIPELINE_YAML)[0]
    declared = kfp_params.declared_parameters(spec)
    parser = argparse.ArgumentParser(prog="python -m pipelines.local_runner", description=__doc__.splitlines()[0])
    # Precedence: local defaults < --params-file < the flags below < --param.
    defaults = {"data_uri": settings.DEFAULT_DATA_URI, "epochs": settings.TRAIN.epochs,
                "push_base": settings.DEFAULT_PUSH_BASE, "model_name": settings.MODEL_NAME, "tuner": "none"}
    parser.add_argument("--data-uri", help=f"default {defaults['data_uri']}")
    parser.add_argument("--epochs", type=int, help=f"default {defaults['epochs']}")
    parser.add_argument("--push-base", help=f"default {defaults['push_base']}")
    parser.add_argument("--model-name", help=f"default {defaults['model_name']}")
    parser.add_argument("--tuner", choices=LOCAL_TUNERS,
                        help="search hyperparameters first with KerasTuner (katib needs a cluster)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help=f"any pipeline parameter: {', '.join(sorted(declared))}")
    parser.add_argument("--params-file", type=Path, help="YAML mapping of pipeline parameters (flags win)")
    parser.add_argument("--cold-steps", action="store_true",
                        help="start every step as a fresh interpreter (kfp's default; slower: TF imported per step)")
    args = parser.parse_args(argv)
    file_values = kfp_params.load_params_file(args.params_file) if args.params_file else {}
    given = {k: v for k, v in vars(args).items() if k in defaults and v is not None}
    params = kfp_params.resolve_parameters(declared, {**defaults, **file_values, **given},
                                           kfp_params.parse_param_flags(args.param), str(args.params_file))
    if params["tuner"] not in LOCAL_TUNERS:
        raise UserError(f"tuner={params['tuner']!r}: Katib needs a cluster (make submit); locally use "
                        f"{' or '.join(LOCAL_TUNERS)}")
    storage.parse_uri(params["push_base"])  # fail fast on a bad scheme
    summary = run_local(params, **({"warm": False} if args.cold_steps else {}))
    print("\n=== imgclf local run ===")
    print(f"wall time      {summary['seconds']} s   (artifacts: {summary['run_dir']})")
    if summary["test_accuracy"] is not None:
        print(f"test accuracy  {summary['test_accuracy']:.4f}")
    print(f"blessed        {summary['blessed']}  ({'; '.join(summary['reasons'])})")
    if summary["pushed_uri"]:
        print(f"pushed         version {summary['pushed_version']} -> {summary['pushed_uri']}")
    else:
        print("pushed         nothing (model not blessed)")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
