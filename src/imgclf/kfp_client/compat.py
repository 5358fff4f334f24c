"""Which KFP backend a compiled pipeline needs, and whether a running backend is new enough.

The SDK compiles features that older backends cannot run. We support every backend from
MIN_BACKEND (KFP 2.5.0, shipped by Kubeflow 1.10) on, so the compiled YAML may only use
features at or below it. Each feature, the backend that first runs it, and why:

  dsl.OneOf over parameters    2.4.0   resolved by the driver from 2.4.0 (kubeflow/pipelines #11196)
  platform pvcNameParameter     2.5.0   a PVC name taken from a pipeline parameter; 2.4.0 rejects the field
  task display names            2.14.0  set_display_name / dsl.If(..., name=...) break the v2 driver before
                                        2.14.0: "cannot find producer task" (#11173, #12456; fixed by #11938/#12061)
  secretAsEnv `optional`        2.15.0  kfp-kubernetes >= 2.15 writes `optional: false` on every use_secret_as_env;
                                        older drivers fail with 'unknown field "optional"' (#12495), so
                                        `make compile` drops the field when it is false (its default)

    python -m imgclf.kfp_client.compat pipelines/training_pipeline.yaml pipelines/training_pipeline_gpu.yaml
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Iterator

from imgclf.errors import UserError, run_cli
from imgclf.kfp_client.spec_check import load_pipeline_docs

MIN_BACKEND = "2.5.0"
ONEOF, PVC_PARAMETER, DISPLAY_NAME = "dsl.OneOf over parameters", "platform pvcNameParameter", "task display name"
SECRET_OPTIONAL = "platform secretAsEnv optional"
FEATURE_MIN_BACKEND = {ONEOF: "2.4.0", PVC_PARAMETER: "2.5.0", DISPLAY_NAME: "2.14.0", SECRET_OPTIONAL: "2.15.0"}
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from '2.5.0', 'v2.14.3', '2.5.0-rc.1'; None for '', 'dev', 'unknown'."""
    match = _VERSION.match((text or "").strip())
    if not match:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _dags(spec: dict) -> Iterator[tuple[str, dict]]:
    yield "root", spec.get("root", {}).get("dag", {})
    for name, comp in (spec.get("components") or {}).items():
        if "dag" in comp:
            yield name, comp["dag"]


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def features_used(spec: dict, platform: dict | None) -> list[tuple[str, str]]:
    """(feature, where) for every version-gated feature in a compiled pipeline (sorted, unique)."""
    found = set()
    for dag_name, dag in _dags(spec):
        for task_name, task in (dag.get("tasks") or {}).items():
            shown = (task.get("taskInfo") or {}).get("name", task_name)
            if shown != task_name:
                found.add((DISPLAY_NAME, f"{dag_name}/{task_name} shown as {shown!r}"))
        for out_name, out in ((dag.get("outputs") or {}).get("parameters") or {}).items():
            if "valueFromOneof" in out:
                found.add((ONEOF, f"{dag_name}/{out_name}"))
    for key, value in _walk(platform or {}):
        if key == "pvcNameParameter":
            found.add((PVC_PARAMETER, "platform spec"))
        if key == "secretAsEnv" and any("optional" in item for item in value):
            found.add((SECRET_OPTIONAL, "platform spec"))
    return sorted(found)


def without_default_secret_optional(platform: dict) -> dict:
    """The platform spec without `optional: false` on secretAsEnv entries (false is the default, so the
    meaning is unchanged and backends older than 2.15.0 accept it). `optional: true` cannot be dropped
    without changing the meaning: ValueError."""
    for key, value in _walk(platform):
        if key == "secretAsEnv":
            for item in value:
                if item.get("optional"):
                    raise ValueError(f"secretAsEnv {item.get('secretName')!r}: optional=True needs KFP backend >= "
                                     f"{FEATURE_MIN_BACKEND[SECRET_OPTIONAL]}; drop it to support {MIN_BACKEND}")
                item.pop("optional", None)
    return platform


def min_backend(path: str | Path) -> tuple[str, list[tuple[str, str, str]]]:
    """(lowest backend version that runs the pipeline, [(feature, its minimum, where)])."""
    spec, platform = load_pipeline_docs(path)
    used = [(feature, FEATURE_MIN_BACKEND[feature], where) for feature, where in features_used(spec, platform)]
    needed = max((v for _, v, _ in used), key=parse_version, default="2.0.0")
    return needed, used


def above_minimum(path: str | Path, minimum: str = MIN_BACKEND) -> list[str]:
    """One problem line per feature that needs a newer backend than `minimum`."""
    _, used = min_backend(path)
    return [f"{path}: {feature} at {where} needs KFP backend >= {version} (our minimum is {minimum})"
            for feature, version, where in used if parse_version(version) > parse_version(minimum)]


def check_backend_version(health: dict, host: str, minimum: str = MIN_BACKEND) -> str:
    """The backend's tag_name from a healthz answer; UserError in one line when it is older than `minimum`.

    Returns '' when the backend does not say (dev builds): the caller decides whether to go on.
    """
    tag = str(health.get("tag_name") or "")
    found = parse_version(tag)
    if found is not None and found < parse_version(minimum):
        raise UserError(f"KFP backend at {host} is {tag}, older than the minimum {minimum} this pipeline needs: "
                        f"upgrade Kubeflow Pipelines to >= {minimum} (Kubeflow >= 1.10)")
    return tag if found is not None else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.kfp_client.compat", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="compiled pipeline YAML files")
    parser.add_argument("--minimum", default=MIN_BACKEND, help=f"backend version to stay within (default {MIN_BACKEND})")
    args = parser.parse_args(argv)
    if parse_version(args.minimum) is None:
        raise UserError(f"--minimum {args.minimum!r}: not a version like 2.5.0")
    problems = []
    for path in args.paths:
        needed, used = min_backend(path)
        print(f"{path}: needs KFP backend >= {needed} ({', '.join(sorted({f for f, _, _ in used})) or 'no gated features'})")
        problems += above_minimum(path, args.minimum)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
