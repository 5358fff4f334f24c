"""Make KServe serve a newly pushed version: patch the InferenceService so that it starts a new revision.

KServe's storage initializer copies `storageUri` once, when a predictor pod starts, so a version pushed
later is not served until new pods start. Changing the predictor's pod template does that: we write the
pushed version into an annotation of `spec.predictor.annotations` (KServe copies these onto the predictor
pods), with a JSON merge patch through the Kubernetes API using the caller's service account. In
Serverless mode Knative creates a new Revision and moves traffic once it is ready; in RawDeployment
(Standard) mode the Deployment rolls. The storageUri stays the model base (TF Serving loads the newest
numeric version under it), so nothing else changes.

    python -m imgclf.steps.rollout --inferenceservice imgclf-serving/fashion-mnist --version 3

The step's service account needs `patch` (and `get`) on inferenceservices.serving.kserve.io in the
serving namespace (a Role + RoleBinding; see README "New versions reach KServe").
"""

from __future__ import annotations

import argparse
import json

from imgclf import kube, settings
from imgclf.errors import UserError, run_cli

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
VERSION_ANNOTATION = "imgclf.io/pushed-version"
URI_ANNOTATION = "imgclf.io/pushed-uri"


def parse_target(target: str, default_namespace: str = settings.SERVING_NAMESPACE) -> tuple[str, str]:
    """'[NAMESPACE/]NAME' -> (namespace, name)."""
    namespace, _, name = target.rpartition("/")
    if not name or "/" in namespace:
        raise UserError(f"InferenceService {target!r}: expected NAME or NAMESPACE/NAME")
    return namespace or default_namespace, name


def _explain(exc, namespace: str, name: str) -> UserError:
    try:
        status = json.loads(exc.body or "")
    except (TypeError, ValueError):
        status = None  # an API server without the CRD answers with plain text
    if exc.status == 404 and not isinstance(status, dict):
        return UserError(f"KServe is not installed: the API server does not serve {GROUP}/{VERSION} {PLURAL}")
    message = status.get("message", exc.reason) if isinstance(status, dict) else exc.reason
    if exc.status == 404:
        return UserError(f"InferenceService {namespace}/{name} not found ({message}): apply it first "
                         f"(kubectl apply -f manifests/rendered/cpu.yaml) or fix the name")
    if exc.status in (401, 403):
        return UserError(f"not allowed to patch InferenceService {namespace}/{name} (HTTP {exc.status}): give the "
                         f"step's service account get/patch on {PLURAL}.{GROUP} in namespace {namespace}")
    return UserError(f"cannot patch InferenceService {namespace}/{name}: HTTP {exc.status} {message}")


def rollout_patch(version: int, uri: str) -> dict:
    """The merge patch: new pod-template annotations on the predictor (a new revision in KServe)."""
    return {"spec": {"predictor": {"annotations": {VERSION_ANNOTATION: str(version), URI_ANNOTATION: uri}}}}


def roll(api, namespace: str, name: str, version: int, uri: str) -> dict:
    """Patch InferenceService namespace/name to start a revision for `version`; returns what changed."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    objects = client.CustomObjectsApi(api)
    try:
        before = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        # A dict body goes out as application/merge-patch+json (a list would be a JSON patch).
        after = objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                       rollout_patch(version, uri))
    except ApiException as exc:
        raise _explain(exc, namespace, name) from None
    predictor = after.get("spec", {}).get("predictor", {})
    storage_uri = predictor.get("model", {}).get("storageUri") or predictor.get("tensorflow", {}).get("storageUri", "")
    previous = before.get("spec", {}).get("predictor", {}).get("annotations", {}).get(VERSION_ANNOTATION)
    return {"inferenceservice": f"{namespace}/{name}", "version": version, "previous_version": previous,
            "storage_uri": storage_uri, "generation": after.get("metadata", {}).get("generation")}


def roll_after_push(target: str, pushed: dict, api=None) -> str:
    """Roll `target` ([NAMESPACE/]NAME) to a push result {"version", "uri"}; returns a one-line summary."""
    namespace, name = parse_target(target)
    result = roll(api or kube.api_client(), namespace, name, int(pushed["version"]), pushed["uri"])
    line = (f"rolled InferenceService {result['inferenceservice']} to version {result['version']} "
            f"(was {result['previous_version'] or 'unset'}; KServe starts a new revision)")
    base = pushed["uri"].rstrip("/").rsplit("/", 1)[0]
    if pushed["uri"] and result["storage_uri"] and result["storage_uri"].rstrip("/") != base:
        line += f"; warning: it serves storageUri {result['storage_uri']}, not {base}"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.steps.rollout", description=__doc__.splitlines()[0])
    parser.add_argument("--inferenceservice", required=True, metavar="[NAMESPACE/]NAME",
                        help=f"the InferenceService to roll (namespace default {settings.SERVING_NAMESPACE})")
    parser.add_argument("--version", type=int, required=True, help="the pushed version number")
    parser.add_argument("--uri", default="", help="the pushed version's URI (recorded in an annotation)")
    parser.add_argument("--kube-host", help="Kubernetes API URL (default: in-cluster config, else ~/.kube/config)")
    args = parser.parse_args(argv)
    print(roll_after_push(args.inferenceservice, {"version": args.version, "uri": args.uri},
                          kube.api_client(args.kube_host) if args.kube_host else None))
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
