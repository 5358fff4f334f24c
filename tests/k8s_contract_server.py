"""A local HTTP server speaking the subset of the Kubernetes REST API that imgclf.katib.client uses.

    POST /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments          create (201; 409 if it exists)
    GET  /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}   read (404 Status if missing)

Modes (attributes of the server): `crds_installed=False` answers every kubeflow.org/v1beta1
path the way an API server without the CRDs does (404, text/plain "404 page not found");
`outcome` "succeed" moves each Experiment Created -> Running (one trial per read) ->
Succeeded with status.currentOptimalTrial; "fail" ends in Failed like Katib's
ExperimentMaxFailedTrialsReached. Only `namespaces` listed in `known_namespaces` exist.
Bodies and status follow the shapes of Kubernetes Status objects and Katib v1beta1 status.

Any other object (namespaces, PVCs, nodes, ConfigMaps, CRDs, InferenceServices, ServingRuntimes) is
seeded with `server.put(obj)` (its API path comes from apiVersion, kind, namespace and name) and served
like the API server does: GET of an object, GET of a collection (a `kind`List, `labelSelector` k=v
honoured), PATCH of an object with `application/merge-patch+json` (RFC 7386; metadata.generation
bumps when spec changes; any other patch type is 415), 404 Status for a missing object or namespace,
and 404 text/plain for a group/version nobody serves (`served` lists the group/versions beyond core v1
and apiextensions; CRDs seeded with put() add theirs).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = re.compile(r"^/apis/kubeflow\.org/v1beta1/namespaces/([a-z0-9-]+)/experiments(?:/([a-z0-9-]+))?$")
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _status(code: int, reason: str, message: str, kind: str = "experiments", name: str = "") -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": {"name": name, "group": "kubeflow.org", "kind": kind}, "code": code}


def _condition(kind: str, reason: str, message: str) -> dict:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z"}


# kind -> (plural, namespaced); what put() needs to place an object at its API path.
KINDS = {
    "Namespace": ("namespaces", False), "Node": ("nodes", False),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True), "ConfigMap": ("configmaps", True),
    "CustomResourceDefinition": ("customresourcedefinitions", False),
    "InferenceService": ("inferenceservices", True), "ServingRuntime": ("servingruntimes", True),
    "ClusterServingRuntime": ("clusterservingruntimes", False),
}
ALWAYS_SERVED = ("v1", "apiextensions.k8s.io/v1")


def object_path(api_version: str, kind: str, name: str, namespace: str = "") -> str:
    plural, namespaced = KINDS[kind]
    root = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{root}/namespaces/{namespace}/{plural}/{name}" if namespaced else f"{root}/{plural}/{name}"


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class ContractServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, outcome: str = "succeed", crds_installed: bool = True,
                 known_namespaces: tuple[str, ...] = ("kubeflow-user",), served: tuple[str, ...] = ()):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.outcome, self.crds_installed, self.known_namespaces = outcome, crds_installed, known_namespaces
        self.experiments: dict[tuple[str, str], dict] = {}
        self.reads: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self.patches: list[tuple[str, str, dict]] = []  # (path, content type, body)
        self.objects: dict[str, dict] = {}
        self.served = set(served)
        self.lock = threading.Lock()

    def put(self, obj: dict) -> dict:
        """Seed (or replace) an object; a CustomResourceDefinition also serves its group/versions."""
        meta = obj["metadata"]
        self.objects[object_path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace", ""))] = obj
        if obj["kind"] == "CustomResourceDefinition":
            self.served |= {f"{obj['spec']['group']}/{v['name']}" for v in obj["spec"]["versions"]}
        return obj

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict | None:
        return self.objects.get(object_path(api_version, kind, name, namespace))

    def namespace_exists(self, namespace: str) -> bool:
        return namespace in self.known_namespaces or f"/api/v1/namespaces/{namespace}" in self.objects

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    def advance(self, key: tuple[str, str]) -> dict:
        """The Experiment as of this read: one more trial per read, then the terminal condition."""
        exp = self.experiments[key]
        reads = self.reads[key] = self.reads.get(key, 0) + 1
        spec = exp["spec"]
        total = spec["maxTrialCount"]
        trials = min(reads - 1, total)
        failed = trials if self.outcome == "fail" else 0
        conditions = [_condition("Created", "ExperimentCreated", "Experiment is created")]
        status = {"startTime": "2026-01-01T00:00:00Z", "trials": trials, "trialsSucceeded": trials - failed,
                  "trialsFailed": failed, "trialsRunning": 0 if trials == total else 1}
        if reads > 1:
            conditions.append(_condition("Running", "ExperimentRunning", "Experiment is running"))
        if self.outcome == "fail" and failed >= max(1, spec.get("maxFailedTrialCount", 1)):
            conditions.append(_condition("Failed", "ExperimentMaxFailedTrialsReached",
                                         "Experiment has failed because max failed count has reached"))
            status["trialsRunning"] = 0
        elif self.outcome == "succeed" and trials >= 1:
            first = {p["name"]: (p["feasibleSpace"].get("list") or [p["feasibleSpace"]["min"]])[0]
                     for p in spec["parameters"]}
            metric = spec["objective"]["objectiveMetricName"]
            status["currentOptimalTrial"] = {
                "bestTrialName": f"{exp['metadata']['name']}-abcd1234",
                "parameterAssignments": [{"name": k, "value": v} for k, v in first.items()],
                "observation": {"metrics": [{"name": metric, "latest": "0.8812", "max": "0.9012", "min": "0.81"},
                                            {"name": "val_loss", "latest": "unavailable", "max": "unavailable",
                                             "min": "unavailable"}]},
            }
            if trials == total:
                conditions.append(_condition("Succeeded", "ExperimentMaxTrialsReached",
                                             "Experiment has succeeded because max trial count has reached"))
        status["conditions"] = conditions
        return {**exp, "status": status}


class _Handler(BaseHTTPRequestHandler):
    server: ContractServer

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code: int, body, content_type: str = "application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _generic(self) -> bool:
        """Serve a seeded object or collection (see the module docstring); False when it is a Katib path."""
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path.rstrip("/"), dict(urllib.parse.parse_qsl(url.query))
        if PATH.match(path):
            return False
        parts = path.split("/")
        group_version = "v1" if parts[1:2] == ["api"] else "/".join(parts[2:4])
        if parts[1:2] not in (["api"], ["apis"]) or (group_version not in ALWAYS_SERVED
                                                     and group_version not in self.server.served):
            self._send(404, "404 page not found\n", "text/plain; charset=utf-8")
            return True
        rest = parts[3:] if group_version == "v1" else parts[4:]
        if rest[:1] == ["namespaces"] and len(rest) >= 3 and not self.server.namespace_exists(rest[1]):
            self._send(404, _status(404, "NotFound", f'namespaces "{rest[1]}" not found', "namespaces", rest[1]))
            return True
        srv = self.server
        with srv.lock:
            if self.command == "PATCH":
                return self._patch(path) or True
            if path in srv.objects:
                self._send(200, srv.objects[path])
                return True
            selector = dict(kv.split("=", 1) for kv in query.get("labelSelector", "").split(",") if "=" in kv)
            items = [o for p, o in sorted(srv.objects.items()) if p.rsplit("/", 1)[0] == path
                     and all(o["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
            kinds = [k for k, (plural, _) in KINDS.items() if plural == rest[-1]] if rest else []
            if kinds and (len(rest) == 1 or rest[:1] == ["namespaces"] and len(rest) == 3):
                self._send(200, {"apiVersion": group_version, "kind": f"{kinds[0]}List", "metadata": {},
                                 "items": items})
                return True
        self._send(404, _status(404, "NotFound", f'{rest[-2] if len(rest) > 1 else "object"} "{rest[-1]}" '
                                f"not found", kind=rest[-2] if len(rest) > 1 else "", name=rest[-1]))
        return True

    def _patch(self, path: str) -> None:
        content_type = self.headers.get("Content-Type", "")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.patches.append((path, content_type, body))
        if path not in self.server.objects:
            name = path.rsplit("/", 1)[-1]
            self._send(404, _status(404, "NotFound", f'"{name}" not found', kind=path.rsplit("/", 2)[-2], name=name))
            return
        if content_type.split(";")[0] != "application/merge-patch+json":
            self._send(415, _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                                    f"format - accepted media types include: application/merge-patch+json"))
            return
        before = self.server.objects[path]
        after = merge_patch(before, body)
        meta = after.setdefault("metadata", {})
        if after.get("spec") != before.get("spec"):
            meta["generation"] = int(before.get("metadata", {}).get("generation", 1)) + 1
        self.server.objects[path] = after
        self._send(200, after)

    def _route(self):
        self.server.requests.append((self.command, self.path))
        if self._generic():
            return None
        match = PATH.match(self.path.split("?")[0])
        if not self.server.crds_installed and self.path.startswith("/apis/kubeflow.org/"):
            self._send(404, "404 page not found\n", "text/plain; charset=utf-8")
            return None
        if not match:
            self._send(404, "404 page not found\n", "text/plain; charset=utf-8")
            return None
        namespace, name = match.groups()
        if namespace not in self.server.known_namespaces:
            self._send(404, _status(404, "NotFound", f'namespaces "{namespace}" not found', "namespaces", namespace))
            return None
        return namespace, name

    def do_POST(self):
        route = self._route()
        if route is None:
            return
        namespace, name = route
        if name:
            self._send(405, _status(405, "MethodNotAllowed", "the server does not allow this method"))
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        meta = body.get("metadata", {})
        if (body.get("apiVersion"), body.get("kind")) != ("kubeflow.org/v1beta1", "Experiment") \
                or not NAME.match(meta.get("name", "")) or meta.get("namespace", namespace) != namespace:
            self._send(422, _status(422, "Invalid", "Experiment.kubeflow.org is invalid", name=meta.get("name", "")))
            return
        key = (namespace, meta["name"])
        with self.server.lock:
            if key in self.server.experiments:
                self._send(409, _status(409, "AlreadyExists",
                                        f'experiments.kubeflow.org "{meta["name"]}" already exists', name=meta["name"]))
                return
            created = {**body, "metadata": {**meta, "namespace": namespace, "uid": "0000-1111",
                                            "creationTimestamp": "2026-01-01T00:00:00Z"}}
            self.server.experiments[key] = created
        self._send(201, created)

    def do_GET(self):
        route = self._route()
        if route is None:
            return
        namespace, name = route
        with self.server.lock:
            if (namespace, name) not in self.server.experiments:
                self._send(404, _status(404, "NotFound", f'experiments.kubeflow.org "{name}" not found', name=name))
                return
            self._send(200, self.server.advance((namespace, name)))

    def do_PATCH(self):
        self._route()
