"""Strict offline validation of a compiled KFP v2 pipeline YAML, with kfp's own protobufs.

A compiled pipeline is one or two YAML documents: a PipelineSpec (schemaVersion
2.1.0) and, when kfp-kubernetes was used, a PlatformSpec whose Kubernetes
executor configs hold node selectors, tolerations, secrets and volumes. The KFP
backend parses both with these same messages, so a field kfp does not know,
a misspelt key or a wrong type is caught here instead of at submit time.

    python -m imgclf.kfp_client.spec_check pipelines/training_pipeline.yaml
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format
from kfp.kubernetes import kubernetes_executor_config_pb2
from kfp.pipeline_spec import pipeline_spec_pb2

from imgclf.errors import UserError, run_cli

SCHEMA_VERSION = "2.1.0"


def load_pipeline_docs(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read a compiled pipeline YAML: (pipeline spec dict, platform spec dict or None).

    Raises UserError when the file is missing, is not YAML, or does not hold 1-2 mappings.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such compiled pipeline (run `make compile`)")
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not 1 <= len(docs) <= 2 or not all(isinstance(d, dict) for d in docs):
        raise UserError(f"{path}: expected a PipelineSpec and an optional platform spec, got {len(docs)} documents")
    return docs[0], (docs[1] if len(docs) == 2 else None)


def _parse(data: Any, message: Any, where: str, problems: list[str]) -> Any:
    """ParseDict with unknown fields rejected; records a problem and returns None on failure."""
    try:
        return json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        problems.append(f"{where}: {exc}")
        return None


def _check_image(name: str, image: str) -> list[str]:
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return []
    if ":" not in last:
        return [f"executor {name}: image {image!r} has no tag"]
    if last.endswith(":latest"):
        return [f"executor {name}: image {image!r} uses :latest"]
    return []


def _check_pipeline_spec(spec_dict: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Check the first document; returns the executors mapping (name -> executor dict)."""
    spec = _parse(spec_dict, pipeline_spec_pb2.PipelineSpec(), "PipelineSpec", problems)
    if spec is None:
        return {}
    if spec.schema_version != SCHEMA_VERSION:
        problems.append(f"PipelineSpec: schemaVersion {spec.schema_version!r}, expected {SCHEMA_VERSION!r}")
    deployment = spec_dict.get("deploymentSpec", {})
    parsed = _parse(deployment, pipeline_spec_pb2.PipelineDeploymentConfig(), "deploymentSpec", problems)
    executors = dict(deployment.get("executors", {})) if parsed is not None else {}
    for comp_name, comp in spec.components.items():
        label = comp.executor_label
        if label and label not in executors:
            problems.append(f"component {comp_name}: executor {label!r} is not in deploymentSpec")
    for task_name, task in spec.root.dag.tasks.items():
        ref = task.component_ref.name
        if ref not in spec.components:
            problems.append(f"root task {task_name}: component {ref!r} is not defined")
    for name, executor in executors.items():
        container = executor.get("container")
        if container is None:
            continue
        problems.extend(_check_image(name, container.get("image", "")))
        command = " ".join(str(part) for part in container.get("command", []))
        if "pip install" in command:
            problems.append(f"executor {name}: installs packages at run time (pip install in its command)")
    return executors


def _check_platform_spec(platform: dict[str, Any], executors: dict[str, Any], problems: list[str]) -> None:
    if _parse(platform, pipeline_spec_pb2.PlatformSpec(), "PlatformSpec", problems) is None:
        return
    k8s = platform.get("platforms", {}).get("kubernetes", {})
    for name, config in k8s.get("deploymentSpec", {}).get("executors", {}).items():
        if executors and name not in executors:
            problems.append(f"platform spec: executor {name!r} is not in the PipelineSpec")
        _parse(
            config,
            kubernetes_executor_config_pb2.KubernetesExecutorConfig(),
            f"platform spec executor {name}",
            problems,
        )


def validate_pipeline_yaml(path: str | Path) -> list[str]:
    """Validate a compiled pipeline YAML offline; returns problems (empty list: valid).

    Checks: both documents parse strictly into kfp's PipelineSpec / PlatformSpec
    protos, deploymentSpec into PipelineDeploymentConfig, every Kubernetes
    executor config into KubernetesExecutorConfig and names a real executor;
    component and executor references resolve; images are tagged, never :latest;
    no executor runs pip at run time.
    """
    try:
        spec_dict, platform = load_pipeline_docs(path)
    except UserError as exc:
        return [str(exc)]
    problems: list[str] = []
    executors = _check_pipeline_spec(spec_dict, problems)
    if platform is not None:
        _check_platform_spec(platform, executors, problems)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imgclf.kfp_client.spec_check",
        description="Validate compiled KFP pipeline YAMLs offline against kfp's own protobuf schemas.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="compiled pipeline YAML file(s)")
    args = parser.parse_args(argv)
    failed = 0
    for path in args.paths:
        problems = validate_pipeline_yaml(path)
        for problem in problems:
            print(f"{path}: {problem}")
        failed += bool(problems)
        if not problems:
            print(f"{path}: ok")
    return 1 if failed else 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
