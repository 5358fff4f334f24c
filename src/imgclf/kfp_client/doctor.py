"""Check a cluster before a run: one pass/fail line per check, with the fix when it fails.

    imgclf-doctor --host https://kubeflow.example.com/pipeline --namespace team-a --push-base gs://bucket/models

Groups (skip one with --skip GROUP): kfp (API reachable, backend >= the minimum, auth, namespace),
katib (CRDs, the namespace's metrics-collector label), pvc (the Katib data PVC and its access mode),
kserve (CRD, a TensorFlow ServingRuntime, node placement: Knative flags or raw deployment mode),
gpu (nodes with our label, allocatable nvidia.com/gpu, taints we tolerate), push (the push base is
readable and writable and holds integer version folders with a SavedModel). Kubernetes checks use
the in-cluster config or ~/.kube/config (--kube-host for `kubectl proxy`); KFP uses the same auth modes
as imgclf-submit. Exit status 1 when a check FAILs (something a run needs is missing), else 0; `warn`
lines do not block a run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from imgclf import kube, settings
from imgclf.data import storage, versions
from imgclf.errors import UserError, run_cli
from imgclf.kfp_client.compat import MIN_BACKEND, parse_version
from imgclf.kfp_client.connect import AUTH_MODES, HEALTHZ_PATH, resolve_auth

GROUPS = ("kfp", "katib", "pvc", "kserve", "gpu", "push")
OK, FAIL, WARN, SKIP = "ok", "FAIL", "warn", "skip"
KATIB_CRDS = ("experiments.kubeflow.org", "suggestions.kubeflow.org", "trials.kubeflow.org")
KATIB_LABEL = ("katib.kubeflow.org/metrics-collector-injection", "enabled")
KSERVE_CRD = "inferenceservices.serving.kserve.io"
KNATIVE_FLAGS = ("kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations")
RAW_MODES = ("RawDeployment", "Standard")  # KServe's names for plain Deployments (newer releases say Standard)
KSERVE_CONFIG_NAMESPACES = ("kserve", "kubeflow")  # standalone KServe, KServe inside Kubeflow
TIMEOUT_S = 10


@dataclass
class Check:
    group: str
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status:<4}  {self.group} {self.name}: {self.detail}"
        return text + (f" | fix: {self.fix}" if self.fix and self.status in (FAIL, WARN) else "")


@dataclass
class Options:
    host: str | None
    namespace: str | None
    auth_mode: str = "auto"
    token_file: Path | None = None
    cookie_file: Path | None = None
    kube_host: str | None = None
    data_pvc: str = settings.KATIB_DATA_PVC
    serving_namespace: str = settings.SERVING_NAMESPACE
    push_base: str = settings.SERVING_STORAGE_URI
    model_name: str = settings.MODEL_NAME


# --- Kubernetes reads (plain GETs through the official client's ApiClient) ---

class Kube:
    """GET helper: (status, JSON or None). Status 0 means the API server was not reachable."""

    def __init__(self, host: str | None):
        self.api = kube.api_client(host)

    def get(self, path: str, query: dict | None = None) -> tuple[int, dict | None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            data, status, _ = self.api.call_api(path, "GET", query_params=list((query or {}).items()),
                                                response_type=object, auth_settings=["BearerToken"],
                                                _return_http_data_only=False, _preload_content=True,
                                                _request_timeout=TIMEOUT_S)
            return status, data
        except ApiException as exc:
            try:
                body = json.loads(exc.body or "")
            except (TypeError, ValueError):
                body = None
            return exc.status, body if isinstance(body, dict) else None
        except HTTPError:
            return 0, None


# --- KFP ---

def _kfp_get(url: str, headers: dict) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    try:
        return status, json.loads(body or b"{}")
    except json.JSONDecodeError:
        return status, body.decode("utf-8", "replace")[:200]


def kfp_checks(opts: Options) -> list[Check]:
    fix_host = ("pass --host URL or set KFP_HOST (e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline-ui "
                "8080:80` then http://localhost:8080)")
    if not opts.host:
        return [Check("kfp", "api", FAIL, "no KFP host given", fix_host)]
    host = opts.host.rstrip("/")
    host = host if host.startswith(("http://", "https://")) else "https://" + host
    auth = resolve_auth(opts.auth_mode, opts.token_file, opts.cookie_file)
    try:
        status, health = _kfp_get(host + HEALTHZ_PATH, auth.headers)
    except (urllib.error.URLError, OSError) as exc:
        return [Check("kfp", "api", FAIL, f"cannot reach {host}: {getattr(exc, 'reason', exc)}", fix_host)]
    checks = []
    if status in (401, 403):
        checks.append(Check("kfp", "api", OK, f"{host} answers (healthz needs auth)"))
        health = {}
    elif status != 200 or not isinstance(health, dict):
        return [Check("kfp", "api", FAIL, f"{host}{HEALTHZ_PATH} answered HTTP {status}, not the KFP v2 API",
                      "point --host at the KFP API (the ml-pipeline-ui service or Kubeflow's /pipeline)")]
    else:
        checks.append(Check("kfp", "api", OK, f"{host} serves the KFP v2 API"))
    tag = str(health.get("tag_name") or "")
    found = parse_version(tag)
    upgrade = f"upgrade Kubeflow Pipelines to >= {MIN_BACKEND} (Kubeflow >= 1.10)"
    if found is None:
        checks.append(Check("kfp", "version", WARN, f"backend reports no version (tag_name {tag or 'absent'!r})",
                            f"check that the ml-pipeline image in namespace kubeflow is >= {MIN_BACKEND}"))
    elif found < parse_version(MIN_BACKEND):
        checks.append(Check("kfp", "version", FAIL, f"backend {tag} is older than the minimum {MIN_BACKEND}", upgrade))
    else:
        checks.append(Check("kfp", "version", OK, f"backend {tag} >= {MIN_BACKEND}"))
    multi_user = bool(health.get("multi_user"))
    if multi_user and not opts.namespace:
        checks.append(Check("kfp", "auth", SKIP, "not checked without a namespace"))
        checks.append(Check("kfp", "namespace", FAIL, "KFP is multi-user and no namespace was given",
                            "pass --namespace <your Kubeflow profile namespace> (kubectl get profiles)"))
        return checks
    query = "?page_size=1" + (f"&namespace={opts.namespace}" if opts.namespace else "")
    status, body = _kfp_get(f"{host}/apis/v2beta1/experiments{query}", auth.headers)
    message = str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else str(body)
    about_namespace = bool(opts.namespace) and "namespace" in message.lower()
    if status in (401, 403) and not about_namespace:
        hint = {"none": "pass a token (KFP_TOKEN / --token-file) or a session cookie (KFP_COOKIE / --cookie-file)",
                "token": "the bearer token was rejected or expired: create a fresh one (kubectl create token ...)",
                "cookie": "the session cookie was rejected or expired: log in again and copy a fresh one",
                "sa": "the service account token was rejected: check its audience pipelines.kubeflow.org and RBAC"}
        checks.append(Check("kfp", "auth", FAIL, f"HTTP {status} with auth mode '{auth.mode}'", hint[auth.mode]))
        checks.append(Check("kfp", "namespace", SKIP, "not checked without working auth"))
        return checks
    if status != 200 and not about_namespace:
        checks.append(Check("kfp", "auth", FAIL, f"listing experiments answered HTTP {status}: {message}",
                            "check the KFP API server's logs (kubectl logs -n kubeflow deploy/ml-pipeline)"))
        return checks
    checks.append(Check("kfp", "auth", OK, f"auth mode '{auth.mode}' accepted"))
    if not multi_user:
        checks.append(Check("kfp", "namespace", OK, "single-user install: runs go to the KFP namespace"))
    elif status == 200:
        checks.append(Check("kfp", "namespace", OK, f"profile namespace {opts.namespace!r} accessible"))
    else:
        checks.append(Check("kfp", "namespace", FAIL, f"KFP refused namespace {opts.namespace!r} (HTTP {status})",
                            "use a Kubeflow profile namespace you own or were added to as a contributor "
                            "(kubectl get profiles)"))
    return checks


# --- Kubernetes-side checks ---

def _crd_missing(k: Kube, names) -> list[str]:
    return [n for n in names if k.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}")[0] != 200]


def katib_checks(k: Kube, namespace: str) -> list[Check]:
    checks = []
    missing = _crd_missing(k, KATIB_CRDS)
    if missing:
        checks.append(Check("katib", "crds", FAIL, f"missing CRD(s) {', '.join(missing)}",
                            "install Katib (kubectl apply -k \"github.com/kubeflow/katib.git/manifests/v1beta1/installs/"
                            "katib-standalone?ref=v0.19.0\") or run the pipeline with tuner=keras-tuner"))
    else:
        checks.append(Check("katib", "crds", OK, ", ".join(KATIB_CRDS)))
    status, ns = k.get(f"/api/v1/namespaces/{namespace}")
    key, value = KATIB_LABEL
    if status != 200:
        checks.append(Check("katib", "namespace", FAIL, f"namespace {namespace!r} not found",
                            "create it or pass --namespace (your Kubeflow profile namespace)"))
    elif (ns.get("metadata", {}).get("labels") or {}).get(key) != value:
        checks.append(Check("katib", "namespace", FAIL, f"namespace {namespace!r} lacks label {key}={value} "
                            "(trials would end with no metrics)", f"kubectl label namespace {namespace} {key}={value}"))
    else:
        checks.append(Check("katib", "namespace", OK, f"namespace {namespace!r} has {key}={value}"))
    return checks


def pvc_checks(k: Kube, namespace: str, pvc: str) -> list[Check]:
    status, claim = k.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{pvc}")
    if status != 200:
        return [Check("pvc", pvc, FAIL, f"PVC {pvc!r} not found in namespace {namespace!r}",
                      f"create a ReadWriteMany PVC {pvc!r} in {namespace} (NFS, Filestore, EFS or Azure Files class), "
                      "or pass the pipeline parameter katib_data_pvc")]
    modes = claim.get("spec", {}).get("accessModes") or []
    phase = claim.get("status", {}).get("phase", "unknown")
    shown = f"PVC {namespace}/{pvc} ({phase}) access {', '.join(modes) or 'none'}"
    if "ReadWriteMany" in modes:
        return [Check("pvc", pvc, OK, f"{shown}: staging writes, trials on any node read")]
    if "ReadOnlyMany" in modes:
        return [Check("pvc", pvc, OK, f"{shown}: trials on any node read; fill it beforehand (the staging step "
                      "cannot write)")]
    fix = (f"recreate {pvc} with accessModes [ReadWriteMany] (a class that offers it: NFS, GKE Filestore, EFS, "
           "Azure Files), or keep every trial on the node holding it (parallel trials 1 and a node selector)")
    if "ReadWriteOnce" in modes:
        return [Check("pvc", pvc, FAIL, f"{shown}: trials on other nodes fail with Multi-Attach", fix)]
    return [Check("pvc", pvc, FAIL, f"{shown}: no access mode that several trial pods can share", fix)]


def _configmap(k: Kube, namespace: str, name: str) -> dict | None:
    status, cm = k.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return (cm.get("data") or {}) if status == 200 else None


def kserve_checks(k: Kube, serving_namespace: str, gpu: bool = True) -> list[Check]:
    checks = []
    if _crd_missing(k, [KSERVE_CRD]):
        return [Check("kserve", "crd", FAIL, f"missing CRD {KSERVE_CRD}",
                      "install KServe (Kubeflow includes it), or serve with the plain TF Serving Deployment "
                      "(manifests/base/tf-serving-deployment.yaml)")]
    checks.append(Check("kserve", "crd", OK, KSERVE_CRD))
    runtimes = []
    for path in ("/apis/serving.kserve.io/v1alpha1/clusterservingruntimes",
                 f"/apis/serving.kserve.io/v1alpha1/namespaces/{serving_namespace}/servingruntimes"):
        status, listing = k.get(path)
        for item in (listing or {}).get("items", []) if status == 200 else []:
            spec = item.get("spec", {})
            formats = [f.get("name") for f in spec.get("supportedModelFormats") or []]
            if "tensorflow" in formats and not spec.get("disabled"):
                runtimes.append(f"{item['kind']} {item['metadata']['name']}")
    if runtimes:
        checks.append(Check("kserve", "tf-runtime", OK, ", ".join(runtimes)))
    else:
        checks.append(Check("kserve", "tf-runtime", FAIL, "no ServingRuntime or ClusterServingRuntime for modelFormat "
                            "tensorflow", "install KServe's cluster serving runtimes (kserve-cluster-resources; "
                            f"kserve-tensorflow-serving) or add a ServingRuntime for tensorflow in {serving_namespace}"))
    if not gpu:  # only the GPU InferenceService sets nodeSelector and tolerations
        checks.append(Check("kserve", "placement", SKIP, "not needed without the GPU variant (--skip gpu)"))
        return checks
    mode = "Serverless"
    for ns in KSERVE_CONFIG_NAMESPACES:
        data = _configmap(k, ns, "inferenceservice-config")
        if data is not None:
            try:
                mode = json.loads(data.get("deploy") or "{}").get("defaultDeploymentMode") or mode
            except json.JSONDecodeError:
                pass
            break
    if mode in RAW_MODES:
        checks.append(Check("kserve", "placement", OK, f"deployment mode {mode}: nodeSelector/tolerations allowed"))
        return checks
    flags = _configmap(k, "knative-serving", "config-features") or {}
    off = [f for f in KNATIVE_FLAGS if flags.get(f) not in ("enabled", "allowed")]
    if off:
        patch = json.dumps({"data": {f: "enabled" for f in KNATIVE_FLAGS}}, separators=(",", ":"))
        checks.append(Check("kserve", "placement", FAIL, f"deployment mode {mode} and Knative flag(s) {', '.join(off)} "
                            "not enabled: the GPU InferenceService's nodeSelector/tolerations are rejected",
                            f"kubectl patch configmap/config-features -n knative-serving --type merge -p '{patch}'"))
    else:
        checks.append(Check("kserve", "placement", OK, f"deployment mode {mode}; Knative allows nodeSelector and "
                            "tolerations"))
    return checks


def gpu_checks(k: Kube) -> list[Check]:
    gpu = settings.gpu_placement()  # the placement our GPU tasks, trials and serving pods ask for
    tol = gpu.toleration
    label = ",".join(f"{key}={value}" for key, value in gpu.node_selector.items())
    status, listing = k.get("/api/v1/nodes", {"labelSelector": label})
    nodes = (listing or {}).get("items", []) if status == 200 else []
    if not nodes:
        return [Check("gpu", "nodes", FAIL, f"no node carries label {label}",
                      f"kubectl label node <gpu-node> {label}, or set ClusterDefaults.gpu_node_selector_key/value in "
                      "src/imgclf/settings.py and run make compile katib manifests")]
    names = [n["metadata"]["name"] for n in nodes]
    checks = [Check("gpu", "nodes", OK, f"{len(nodes)} node(s) with {label}: {', '.join(names)}")]
    with_gpus = [n["metadata"]["name"] for n in nodes
                 if int(str(n.get("status", {}).get("allocatable", {}).get(gpu.accelerator, "0")) or 0) >= gpu.count]
    if with_gpus:
        checks.append(Check("gpu", "allocatable", OK, f"{gpu.accelerator} >= {gpu.count} on {', '.join(with_gpus)}"))
    else:
        checks.append(Check("gpu", "allocatable", FAIL, f"no labelled node has allocatable {gpu.accelerator}",
                            "install the NVIDIA device plugin or GPU Operator on the GPU nodes"))
    blocking, untainted = [], []
    for node in nodes:
        taints = node.get("spec", {}).get("taints") or []
        for t in taints:
            tolerated = t.get("key") == tol["key"] and t.get("effect") == tol["effect"]
            if t.get("effect") in ("NoSchedule", "NoExecute") and not tolerated:
                blocking.append(f"{node['metadata']['name']} {t.get('key')}={t.get('value', '')}:{t.get('effect')}")
        if not any(t.get("key") == tol["key"] for t in taints):
            untainted.append(node["metadata"]["name"])
    if blocking:
        checks.append(Check("gpu", "taints", FAIL, f"taint(s) we do not tolerate: {'; '.join(blocking)}",
                            f"remove them, or set ClusterDefaults.gpu_toleration_key (we tolerate "
                            f"{tol['key']} {tol['operator']} {tol['effect']}) and run make compile katib manifests"))
    elif untainted:
        checks.append(Check("gpu", "taints", WARN, f"no {tol['key']} taint on {', '.join(untainted)}: "
                            "CPU pods may take these nodes", f"kubectl taint node <node> {tol['key']}="
                            f"present:{tol['effect']}"))
    else:
        checks.append(Check("gpu", "taints", OK, f"tainted {tol['key']}:{tol['effect']}, which we tolerate"))
    return checks


# --- Push base (through imgclf.data.storage and imgclf.data.versions only) ---

def _probe_local_write(path: str) -> None:
    directory = Path(path)
    while not directory.exists():  # push creates missing parents: the nearest existing one must be writable
        directory = directory.parent
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".imgclf-doctor-"):
        pass


def push_checks(push_base: str, model_name: str) -> list[Check]:
    try:
        base = versions.model_base(push_base, model_name)
    except UserError as exc:
        return [Check("push", "base", FAIL, str(exc), "pass --push-base (pipeline parameter push_base) with a "
                      "supported URI")]
    uri = base.uri()
    try:
        names = storage.list_children(uri)
    except Exception as exc:  # noqa: BLE001 (any backend: credentials, missing bucket, network)
        return [Check("push", "readable", FAIL, f"cannot list {uri}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                      "check the URI and that your credentials (the push step's service account) can read it")]
    checks = [Check("push", "readable", OK, f"{uri} lists {len(names)} entr{'y' if len(names) == 1 else 'ies'}")]
    if base.scheme == "file":
        try:
            _probe_local_write(base.path)
            checks.append(Check("push", "writable", OK, f"{uri} writable"))
        except OSError as exc:
            checks.append(Check("push", "writable", FAIL, f"cannot write under {uri}: {exc.strerror or exc}",
                                "make it writable by uid 1000 (our images' user) or choose another push_base"))
    else:
        checks.append(Check("push", "writable", WARN, f"write access to {uri} is not probed (doctor writes nothing "
                            "remote)", "grant the push step's service account object create/delete on it"))
    if versions.SAVED_MODEL_PB in names:
        checks.append(Check("push", "versions", FAIL, f"a SavedModel sits directly in {uri}: servers answer "
                            "'No versions of servable found'", f"move it into {uri}/1/"))
        return checks
    taken = versions.taken_versions(base)
    servable = versions.servable_versions(base)
    broken = sorted(set(taken) - set(servable))
    if broken and broken[-1] > max(servable, default=0):
        checks.append(Check("push", "versions", FAIL, f"newest version {broken[-1]} under {uri} has no "
                            f"{versions.SAVED_MODEL_PB} (an interrupted push): servers would try to load it",
                            f"delete {base.child(str(broken[-1])).uri()} (the next push takes a new number)"))
    elif servable:
        checks.append(Check("push", "versions", OK, f"servable version(s) {', '.join(map(str, servable))}"
                            + (f"; {len(broken)} incomplete older one(s) ignored" if broken else "")))
    else:
        checks.append(Check("push", "versions", OK, "no version pushed yet: the first push creates version 1"))
    return checks


# --- Running them ---

def run_checks(opts: Options, skip: set[str] = frozenset(), kube_factory: Callable[[str | None], Kube] = Kube
               ) -> list[Check]:
    checks = []
    if "kfp" not in skip:
        checks += kfp_checks(opts)
    namespace = opts.namespace or kube.current_namespace()
    k8s_groups = [g for g in ("katib", "pvc", "kserve", "gpu") if g not in skip]
    if k8s_groups:
        try:
            k = kube_factory(opts.kube_host)
            reachable = k.get("/version")[0] != 0
        except UserError as exc:
            k, reachable, why = None, False, str(exc)
        else:
            why = f"cannot reach the Kubernetes API{f' at {opts.kube_host}' if opts.kube_host else ''}"
        if not reachable:
            checks.append(Check("k8s", "api", FAIL, why, "point kubectl at the cluster (kubectl config use-context) "
                                "or pass --kube-host (e.g. after `kubectl proxy`: http://127.0.0.1:8001)"))
        else:
            runners = {"katib": lambda: katib_checks(k, namespace),
                       "pvc": lambda: pvc_checks(k, namespace, opts.data_pvc),
                       "kserve": lambda: kserve_checks(k, opts.serving_namespace, "gpu" not in skip), "gpu": lambda: gpu_checks(k)}
            for group in k8s_groups:
                checks += runners[group]()
    if "push" not in skip:
        checks += push_checks(opts.push_base, opts.model_name)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=os.environ.get("KFP_HOST"), help="KFP API endpoint (env KFP_HOST)")
    parser.add_argument("--namespace", help="Kubeflow profile namespace: KFP, Katib and the data PVC "
                        "(default: the pod's own, else 'kubeflow')")
    parser.add_argument("--auth", choices=AUTH_MODES, default="auto", help="KFP auth, as for imgclf-submit")
    parser.add_argument("--token-file", type=Path, help="bearer token file (else env KFP_TOKEN)")
    parser.add_argument("--cookie-file", type=Path, help="session cookie file (else env KFP_COOKIE)")
    parser.add_argument("--kube-host", help="Kubernetes API URL (default: in-cluster config, else ~/.kube/config)")
    parser.add_argument("--data-pvc", default=settings.KATIB_DATA_PVC, help="the Katib data PVC (katib_data_pvc)")
    parser.add_argument("--serving-namespace", default=settings.SERVING_NAMESPACE,
                        help="namespace of the InferenceService")
    parser.add_argument("--push-base", default=settings.SERVING_STORAGE_URI, help="the pipeline's push_base")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--skip", action="append", default=[], choices=GROUPS, help="skip a group (repeatable)")
    args = parser.parse_args(argv)
    opts = Options(host=args.host, namespace=args.namespace, auth_mode=args.auth, token_file=args.token_file,
                   cookie_file=args.cookie_file, kube_host=args.kube_host, data_pvc=args.data_pvc,
                   serving_namespace=args.serving_namespace, push_base=args.push_base, model_name=args.model_name)
    checks = run_checks(opts, set(args.skip))
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == FAIL]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed" + (f", {len(failed)} FAILED" if failed else ""))
    return 1 if failed else 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
