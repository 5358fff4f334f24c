"""Submit the compiled pipeline to a Kubeflow Pipelines v2 cluster and start a run.

    python -m imgclf.kfp_client.submit --host https://kubeflow.example.com/pipeline --namespace team-a \\
        --pipeline-root gs://bucket/pipeline-root --param epochs=5 --wait

Everything that can be checked offline is checked before contacting the server:
the compiled YAML exists and is valid, every --param / --params-file name is a
root input of the pipeline and every value casts to its declared type. Then it
uploads the pipeline (or, when the name exists, a new timestamped VERSION, so
submitting twice works), creates the experiment if needed, starts a run named
`<pipeline>-<UTC timestamp>` and prints its dashboard URL. --wait polls it and
exits non-zero unless it ends SUCCEEDED.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from imgclf import settings
from imgclf.errors import UserError, run_cli
from imgclf.kfp_client.compat import MIN_BACKEND, check_backend_version
from imgclf.kfp_client.connect import AUTH_MODES, explain_api_error, make_client, preflight, resolve_auth
from imgclf.kfp_client.params import (check_values, declared_parameters, effective_values, load_params_file,
                               parse_param_flags, resolve_parameters)
from imgclf.kfp_client.spec_check import load_pipeline_docs, validate_pipeline_yaml

FINAL_STATES = ("SUCCEEDED", "FAILED", "SKIPPED", "CANCELED")


def utc_stamp(now: dt.datetime | None = None) -> str:
    """UTC timestamp for run and version names, e.g. 20260719T101530.123Z (sortable, unique per ms)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%S}.{now.microsecond // 1000:03d}Z"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgclf-submit",
        description=__doc__.split("\n\n")[0] + " Upload a new pipeline version when the name exists.",
    )
    conn = parser.add_argument_group("connection")
    conn.add_argument("--host", default=os.environ.get("KFP_HOST"),
                      help="KFP API endpoint, e.g. http://localhost:8080 or https://HOST/pipeline (env KFP_HOST)")
    conn.add_argument("--ui-host", help="dashboard base URL for the printed link (default: --host)")
    conn.add_argument("--namespace", help="Kubeflow profile namespace (required on multi-user installs)")
    conn.add_argument("--auth", choices=AUTH_MODES, default="auto",
                      help="auto: token, then cookie, then in-cluster service account, then none")
    conn.add_argument("--token-file", type=Path, help="file holding a bearer token (else env KFP_TOKEN)")
    conn.add_argument("--cookie-file", type=Path,
                      help="file holding a Dex/Istio session cookie 'authservice_session=...' (else env KFP_COOKIE)")
    what = parser.add_argument_group("what to run")
    what.add_argument("--gpu", action="store_true", help=f"submit {settings.PIPELINE_GPU_YAML.name} (train on a GPU)")
    what.add_argument("--pipeline-file", type=Path, help="compiled YAML to submit (default: from settings, see --gpu)")
    what.add_argument("--pipeline-name", help="pipeline name on the server (default: the YAML's pipelineInfo.name)")
    what.add_argument("--experiment", default=settings.PIPELINE_NAME, help="experiment (created if missing)")
    what.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                      help="pipeline parameter, repeatable; overrides --params-file")
    what.add_argument("--params-file", type=Path, help="YAML/JSON mapping of pipeline parameters")
    what.add_argument("--pipeline-root", help="artifact root for this run: gs://bucket/path or s3://bucket/path")
    cache = what.add_mutually_exclusive_group()
    cache.add_argument("--enable-caching", dest="caching", action="store_true", default=True,
                       help="(default) reuse cached results of unchanged steps; ingest and push never cache")
    cache.add_argument("--disable-caching", dest="caching", action="store_false",
                       help="rerun every step: the uploaded version has caching off for all tasks")
    what.add_argument("--service-account", help="Kubernetes service account the run's pods use")
    wait = parser.add_argument_group("waiting")
    wait.add_argument("--wait", action="store_true", help="poll the run until it ends; exit 1 unless SUCCEEDED")
    wait.add_argument("--poll-interval", type=float, default=10.0, help="seconds between polls (default 10)")
    wait.add_argument("--timeout", type=float, default=0, help="give up waiting after this many seconds (0: never)")
    return parser


def _prepare(args: argparse.Namespace) -> tuple[Path, str, dict[str, Any]]:
    """Offline checks: (pipeline YAML, pipeline name, typed parameters)."""
    if args.pipeline_file:
        path = args.pipeline_file
    elif settings.checkout_root() is None:
        raise UserError("no --pipeline-file: outside the source checkout pass the compiled pipeline YAML "
                        "(pipelines/training_pipeline.yaml of the repository)")
    else:
        path = settings.PIPELINE_GPU_YAML if args.gpu else settings.PIPELINE_YAML
    if not path.is_file():
        raise UserError(f"{path} not found: run `make compile` first")
    problems = validate_pipeline_yaml(path)
    if problems:
        raise UserError(f"{path} is not a valid compiled pipeline: {problems[0]} ({len(problems)} problem(s))")
    spec, _ = load_pipeline_docs(path)
    file_values = load_params_file(args.params_file) if args.params_file else {}
    params = resolve_parameters(
        declared_parameters(spec), file_values, parse_param_flags(args.param), file_label=f"{args.params_file}"
    )
    # Every value the run will use (compiled defaults included) checked against its meaning, offline.
    check_values(effective_values(declared_parameters(spec), params), "--param NAME=VALUE")
    name = args.pipeline_name or spec.get("pipelineInfo", {}).get("name") or settings.PIPELINE_NAME
    return path, name, params


def without_caching(path: Path, workdir: Path) -> Path:
    """A copy of the compiled YAML with caching off for every task of every DAG.

    kfp.Client.run_pipeline applies enable_caching only to a package it submits
    itself (and only to root tasks), not to a run of an uploaded version; so the
    switch goes into the version we upload.
    """
    spec, platform = load_pipeline_docs(path)
    dags = [spec.get("root", {}).get("dag", {})]
    dags += [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task["cachingOptions"] = {}  # proto3 JSON: enableCache false is the empty message
    copy = workdir / path.name
    copy.write_text(yaml.safe_dump_all([d for d in (spec, platform) if d is not None], sort_keys=False))
    return copy


def _find_pipeline_id(client, name: str, namespace: str | None) -> str | None:
    if not namespace:
        return client.get_pipeline_id(name)
    flt = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    found = client.list_pipelines(filter=flt, namespace=namespace).pipelines or []
    return found[0].pipeline_id if found else None


def publish(client, path: Path, name: str, namespace: str | None, stamp: str) -> tuple[str, str]:
    """Upload the pipeline, or a new version of it when the name exists: (pipeline_id, version_id)."""
    pipeline_id = _find_pipeline_id(client, name, namespace)
    if pipeline_id is None:
        pipeline = client.upload_pipeline(str(path), pipeline_name=name, namespace=namespace,
                                          description="imgclf training pipeline")
        versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc", page_size=1)
        if not versions.pipeline_versions:
            raise UserError(f"KFP created pipeline {name!r} but listed no version for it")
        return pipeline.pipeline_id, versions.pipeline_versions[0].pipeline_version_id
    version = client.upload_pipeline_version(str(path), pipeline_version_name=f"{name}-{stamp}",
                                             pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def wait_for_run(client, run_id: str, poll_s: float, timeout_s: float) -> str:
    """Poll get_run until a final state, with a rich spinner on a terminal; returns the state."""
    from rich.console import Console

    console = Console(stderr=True)
    start = time.monotonic()
    last = None
    with console.status(f"run {run_id}: waiting") as status:
        while True:
            run = client.get_run(run_id)
            state = str(run.state or "PENDING")
            elapsed = time.monotonic() - start
            status.update(f"run {run_id}: {state} ({elapsed:.0f}s)")
            if state != last:
                print(f"[{elapsed:6.0f}s] {state}", flush=True)
                last = state
            if state in FINAL_STATES:
                if state != "SUCCEEDED" and getattr(run, "error", None):
                    print(f"error: {getattr(run.error, 'message', run.error)}", file=sys.stderr)
                return state
            if timeout_s and elapsed >= timeout_s:
                raise UserError(f"run {run_id} still {state} after {timeout_s:.0f}s (--timeout); it keeps running")
            time.sleep(poll_s)


def require_backend_version(health: dict, host: str) -> None:
    """Refuse a KFP backend older than kfp_compat.MIN_BACKEND (its healthz tag_name); warn when it does not say."""
    if not check_backend_version(health, host):
        print(f"warning: KFP at {host} reports no version (tag_name {health.get('tag_name')!r}); this pipeline "
              f"needs backend >= {MIN_BACKEND}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path, name, params = _prepare(args)
    if not args.host:
        raise UserError("no KFP host: pass --host URL or set KFP_HOST (e.g. after "
                        "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`: http://localhost:8080)")
    host = args.host.rstrip("/")
    if not host.startswith(("http://", "https://")):
        host = "https://" + host
    auth = resolve_auth(args.auth, args.token_file, args.cookie_file)
    health = preflight(host, auth)
    require_backend_version(health, host)
    if health.get("multi_user") and not args.namespace:
        raise UserError(f"KFP at {host} is multi-user: pass --namespace <your profile namespace>")

    stamp = utc_stamp()
    action = "connecting"
    try:
        client = make_client(host, auth, args.namespace)
        action = f"getting or creating experiment {args.experiment!r}"
        experiment = client.create_experiment(args.experiment, namespace=args.namespace)
        action = f"uploading pipeline {name!r}"
        with tempfile.TemporaryDirectory() as tmp:
            package = path if args.caching else without_caching(path, Path(tmp))
            pipeline_id, version_id = publish(client, package, name, args.namespace, stamp)
        action = "creating the run"
        run = client.run_pipeline(
            experiment_id=experiment.experiment_id, job_name=f"{name}-{stamp}", params=params,
            pipeline_id=pipeline_id, version_id=version_id, pipeline_root=args.pipeline_root,
            service_account=args.service_account,
        )
        url = f"{(args.ui_host or host).rstrip('/')}/#/runs/details/{run.run_id}"
        print(f"run {name}-{stamp} ({run.run_id}) of pipeline {name} version {version_id}")
        print(f"dashboard: {url}", flush=True)
        if not args.wait:
            return 0
        action = f"waiting for run {run.run_id}"
        state = wait_for_run(client, run.run_id, args.poll_interval, args.timeout)
    except UserError:
        raise
    except Exception as exc:  # kfp_server_api.ApiException, urllib3 connection errors
        from kfp_server_api import ApiException
        from urllib3.exceptions import HTTPError

        if isinstance(exc, (ApiException, HTTPError)):
            raise explain_api_error(exc, host, auth, args.namespace, action) from None
        if isinstance(exc, ValueError):  # e.g. kfp: several pipelines/experiments share the name
            raise UserError(f"KFP at {host} while {action}: {exc}") from None
        raise
    print(f"run {run.run_id} finished: {state}")
    return 0 if state == "SUCCEEDED" else 1


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
