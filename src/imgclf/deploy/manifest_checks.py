"""Offline checks of the rendered serving manifests (`make check-manifests`).

  core objects    kubernetes_validate, strict (unknown fields are errors), Kubernetes K8S_VERSION
  InferenceService jsonschema against the vendored KServe CRD schema subset
                  (manifests/schemas/), made strict the way the API server's field
                  validation is, plus KServe's TensorFlow rule: a GPU is requested
                  iff runtimeVersion ends with "-gpu"; storageUri names the model base
  pod templates   Pod Security Standards "restricted" (the rules encoded below)
  freshness       sources equal what settings generate; rendered files equal a fresh
                  render when a kustomize renderer is installed
  placeholders    no YOUR_... value left in anything a user applies (base, overlays, rendered)
"""

from __future__ import annotations

import argparse
import copy
from functools import lru_cache
from pathlib import Path

import yaml

from imgclf import settings
from imgclf.deploy import manifests
from imgclf.errors import UserError, run_cli

K8S_VERSION = "1.37.0"
ISVC_SCHEMA = settings.MANIFESTS_DIR / "schemas" / "kserve-inferenceservice-v1beta1.subset.yaml"
GPU_RESOURCE = settings.CLUSTER.gpu_accelerator
# PSS restricted: allowed volume types and the only capability that may be added.
RESTRICTED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                           "persistentVolumeClaim", "projected", "secret"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
PLACEHOLDER_MARK = "YOUR_"


def placeholder_errors(root: Path) -> list[str]:
    """One error per applied file that still holds a placeholder (YOUR_BUCKET, YOUR_PROJECT...)."""
    errors = []
    for path in sorted(p for d in ("base", "overlays", "rendered") for p in (root / d).rglob("*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PLACEHOLDER_MARK in line and not line.lstrip().startswith("#"):
                errors.append(f"{path}:{number}: placeholder left ({line.strip()}); set your value in "
                              "src/imgclf/settings.py (SERVING_STORAGE_URI, SERVING_SERVICE_ACCOUNT_ANNOTATIONS) "
                              "and run `make manifests`")
                break
    return errors


def load_docs(path: Path) -> list[dict]:
    try:
        return [d for d in yaml.safe_load_all(path.read_text()) if d]
    except FileNotFoundError:
        raise UserError(f"{path}: missing; run `make manifests`") from None


def _strict(schema):
    """Copy of a CRD schema where every object listing properties rejects unknown fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@lru_cache(maxsize=1)
def _isvc_validator():
    import jsonschema

    schema = _strict(yaml.safe_load(ISVC_SCHEMA.read_text()))
    return jsonschema.Draft7Validator(schema)


def _where(doc: dict) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def check_core(doc: dict) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(copy.deepcopy(doc), K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{_where(doc)}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{_where(doc)}: no schema for {exc}"]
    return []


def check_inference_service(doc: dict) -> list[str]:
    errors = [f"{_where(doc)}: {'.'.join(map(str, e.path)) or '<root>'}: {e.message}"
              for e in _isvc_validator().iter_errors(doc)]
    model = doc.get("spec", {}).get("predictor", {}).get("model", {})
    if model.get("modelFormat", {}).get("name") == "tensorflow":
        res = model.get("resources", {})
        wants_gpu = GPU_RESOURCE in res.get("limits", {}) or GPU_RESOURCE in res.get("requests", {})
        gpu_runtime = str(model.get("runtimeVersion", "")).endswith("-gpu")
        if wants_gpu != gpu_runtime:
            errors.append(f"{_where(doc)}: spec.predictor.model: KServe TensorFlow rule broken: "
                          f"{GPU_RESOURCE} {'requested' if wants_gpu else 'not requested'} but runtimeVersion "
                          f"{model.get('runtimeVersion')!r} {'does not end' if wants_gpu else 'ends'} with -gpu")
    if model.get("storageUri") != manifests.storage_uri():
        errors.append(f"{_where(doc)}: spec.predictor.model.storageUri is {model.get('storageUri')!r}, "
                      f"expected the model base {manifests.storage_uri()!r}")
    return errors


def check_restricted(doc: dict) -> list[str]:
    """Pod Security Standards "restricted" for a workload's pod template."""
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    where, errors = _where(doc), []
    psc = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            errors.append(f"{where}: {flag} must not be true")
    for vol in pod.get("volumes", []):
        kinds = set(vol) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            errors.append(f"{where}: volume {vol.get('name')!r} type {sorted(kinds)} not allowed")
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        sc, name = c.get("securityContext", {}), f"{where}: container {c.get('name')!r}"
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}: securityContext.allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            errors.append(f"{name}: privileged must not be true")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            errors.append(f"{name}: securityContext.capabilities.drop must include ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            errors.append(f"{name}: capabilities.add may only hold NET_BIND_SERVICE")
        if not sc.get("runAsNonRoot", psc.get("runAsNonRoot")):
            errors.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            errors.append(f"{name}: runAsUser must not be 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            errors.append(f"{name}: seccompProfile.type must be RuntimeDefault or Localhost, got {seccomp!r}")
    return errors


def check_docs(docs: list[dict]) -> list[str]:
    errors = []
    for doc in docs:
        if doc.get("apiVersion", "").startswith("serving.kserve.io/"):
            errors += check_inference_service(doc)
        else:
            errors += check_core(doc)
        if doc.get("kind") in POD_TEMPLATE_KINDS:
            errors += check_restricted(doc)
    return errors


def check_all(root: Path = settings.MANIFESTS_DIR, rerender: bool = True) -> tuple[list[str], list[str]]:
    """Run every check; returns (errors, notes)."""
    errors = [f"{root / rel}: stale; run `make manifests`" for rel in manifests.stale_sources(root)]
    errors += placeholder_errors(root)
    notes = []
    for overlay in manifests.OVERLAYS:
        path = manifests.rendered_path(overlay, root)
        docs = load_docs(path)
        errors += [f"{path}: {e}" for e in check_docs(docs)]
        if rerender and manifests.renderer() is not None and not errors:
            fresh = [d for d in yaml.safe_load_all(manifests.render(overlay, root)) if d]
            if fresh != docs:
                errors.append(f"{path}: differs from a fresh `kustomize` render; run `make manifests`")
        elif rerender:
            notes.append(f"{path}: not re-rendered (no kustomize renderer); checked as committed")
        notes.append(f"{path}: {len(docs)} objects checked")
    return errors, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.deploy.manifest_checks", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="default: manifests/ of the source checkout")
    args = parser.parse_args(argv)
    args.root = args.root or settings.require_checkout("python -m imgclf.deploy.manifest_checks") / "manifests"
    errors, notes = check_all(args.root)
    for line in notes:
        print(line)
    if errors:
        raise UserError(f"{len(errors)} manifest problem(s):\n  " + "\n  ".join(errors))
    print("manifests OK")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
