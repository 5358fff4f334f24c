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
import tempfile
import time
import warnings
from pathlib import Path

from imgclf import settings
from imgclf.data import versions
from imgclf.errors import STEP_ERROR_FILE_ENV, UserError, run_cli
from imgclf.kfp_client import params as kfp_params
from imgclf.kfp_client.spec_check import load_pipeline_docs
from imgclf.model.hyperparams import HyperParams

PIPELINE_ROOT = settings.LOCAL_RUNS_DIR / "local_outputs"
LOCAL_TUNERS = tuple(t for t in settings.TUNERS if t != "katib")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _newest_run_dir(before: set[str], pipeline_root: Path = PIPELINE_ROOT) -> Path | None:
    runs = [p for p in pipeline_root.iterdir() if p.is_dir() and p.name not in before] if pipeline_root.exists() else []
    return max(runs, key=lambda p: p.stat().st_mtime, default=None)


# The human-readable outputs of a run, printed at the end (relative to the run directory).
REPORTS = {"data report": "validate-op/statistics/report.html", "label audit": "label-audit-op/issues/report.html",
           "evaluation": "evaluate-op/evaluation/report.html", "model card": "evaluate-op/evaluation/model_card.md"}


def run_local(params: dict, pipeline_root: Path = PIPELINE_ROOT, runner=None, warm: bool = True,
              side_in_background: bool = True) -> dict:
    """Run the CPU pipeline locally with params; returns a summary read from the run's artifacts.

    runner: a kfp.local runner (default SubprocessRunner in this venv; pipelines.container_runner
    passes a DockerRunner). warm: fork the subprocess runner's steps from one process that imported
    TensorFlow once (pipelines.warm_steps; --cold-steps turns it off). side_in_background: the label
    audit and the TFLite export run beside the main line, as on a cluster (pipelines.side_tasks;
    --serial-steps turns it off)."""
    from kfp import local

    from pipelines import platform
    from pipelines.side_tasks import side_tasks_in_background
    from pipelines.warm_steps import warm_steps
    from pipelines.training_pipeline import build_pipeline

    # Steps inherit this environment: keep TensorFlow's C++ start-up chatter out of the step logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # OpenBLAS' worker threads spin against each other and TensorFlow on 2 cores: the label audit's small
    # matrix products took 92 s instead of 5 s (README "Speed"). TensorFlow keeps its own thread pools.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    pipeline_root.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in pipeline_root.iterdir()}
    local.init(runner=runner or local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root),
               raise_on_error=True)
    base = versions.model_base(params["push_base"], params["model_name"])
    pushed_before = versions.servable_versions(base)
    start = time.perf_counter()
    # A step that fails on a user error writes its one line here (imgclf.errors.exit_on_user_error); set
    # before the warm fork server starts, so forked steps inherit it too.
    with warnings.catch_warnings(), tempfile.NamedTemporaryFile("r", prefix="imgclf-step-error-") as errors:
        # Our image name does not contain "python"; locally the step runs in this venv anyway.
        warnings.filterwarnings("ignore", message=".*non-Python base image.*")
        os.environ[STEP_ERROR_FILE_ENV] = errors.name
        platform.LOCAL_RUN = True  # keep the cluster's MinIO endpoint out of local steps' environment
        try:
            with warm_steps(warm and runner is None), side_tasks_in_background(side_in_background):
                build_pipeline(gpu=False)(**params)
        except RuntimeError as exc:
            step_errors = [line.strip() for line in errors.read().splitlines() if line.startswith("error: ")]
            if step_errors:  # the run's last line repeats the step's own one-line error
                raise UserError(step_errors[-1][len("error: "):]) from None
            first = ANSI_ESCAPE.sub("", str(exc).splitlines()[0])
            raise UserError(f"local pipeline run failed: {first} (the step's own error is in its log above)") from None
        finally:
            os.environ.pop(STEP_ERROR_FILE_ENV, None)
            platform.LOCAL_RUN = False
    seconds = time.perf_counter() - start
    run_dir = _newest_run_dir(before, pipeline_root)
    blessing_files = sorted(run_dir.glob("*/evaluation/blessing.json")) if run_dir else []
    blessing = json.loads(blessing_files[0].read_text()) if blessing_files else {}
    found = {name: sorted(run_dir.glob(pattern)) if run_dir else [] for name, pattern in REPORTS.items()}
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
        "reports": {name: str(paths[0]) for name, paths in found.items() if paths},
    }


def main(argv: list[str] | None = None, run=None) -> int:
    spec = load_pipeline_docs(settings.PIPELINE_YAML)[0]
    declared = kfp_params.declared_parameters(spec)
    parser = argparse.ArgumentParser(prog="python -m pipelines.local_runner", description=__doc__.splitlines()[0])
    # Precedence: local defaults < --params-file < the flags below < --param.
    defaults = {"data_uri": settings.DEFAULT_DATA_URI, "epochs": HyperParams().epochs,
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
    parser.add_argument("--serial-steps", action="store_true",
                        help="run every step in kfp's own order, one at a time (default: the label audit and the "
                             "TFLite export run beside the main line, as on a cluster)")
    args = parser.parse_args(argv)
    file_values = kfp_params.load_params_file(args.params_file) if args.params_file else {}
    given = {k: v for k, v in vars(args).items() if k in defaults and v is not None}
    params = kfp_params.resolve_parameters(declared, {**defaults, **file_values, **given},
                                           kfp_params.parse_param_flags(args.param), str(args.params_file))
    if params["tuner"] not in LOCAL_TUNERS:
        raise UserError(f"tuner={params['tuner']!r}: Katib needs a cluster (make submit); locally use "
                        f"{' or '.join(LOCAL_TUNERS)}")
    # Every value checked against its meaning before any step starts.
    kfp_params.check_values(kfp_params.effective_values(declared, params), "--param NAME=VALUE")
    if run:  # pipelines.container_runner passes its own
        summary = run(params)
    else:
        summary = run_local(params, **({"warm": False} if args.cold_steps else {}),
                            **({"side_in_background": False} if args.serial_steps else {}))
    print("\n=== imgclf local run ===")
    print(f"wall time      {summary['seconds']} s   (artifacts: {summary['run_dir']})")
    if summary["test_accuracy"] is not None:
        print(f"test accuracy  {summary['test_accuracy']:.4f}")
    print(f"blessed        {summary['blessed']}  ({'; '.join(summary['reasons'])})")
    if summary["pushed_uri"]:
        print(f"pushed         version {summary['pushed_version']} -> {summary['pushed_uri']}")
    else:
        print("pushed         nothing (model not blessed)")
    for name, path in summary.get("reports", {}).items():
        print(f"{name:14s} {path}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
