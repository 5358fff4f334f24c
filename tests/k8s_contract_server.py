"""A local HTTP server speaking the subset of the Kubernetes REST API that imgclf.katib_client uses.

    POST /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments          create (201; 409 if it exists)
    GET  /apis/kubeflow.org/v1beta1/namespaces/{ns}/experiments/{name}   read (404 Status if missing)

Modes (attributes of the server): `crds_installed=False` answers every kubeflow.org/v1beta1
path the way an API server without the CRDs does (404, text/plain "404 page not found");
`outcome` "succeed" moves each Experiment Created -> Running (one trial per read) ->
Succeeded with status.currentOptimalTrial; "fail" ends in Failed like Katib's
ExperimentMaxFailedTrialsReached. Only `namespaces` listed in `known_namespaces` exist.
Bodies and status follow the shapes of Kubernetes Status objects and Katib v1beta1 status.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = re.compile(r"^/apis/kubeflow\.org/v1beta1/namespaces/([a-z0-9-]+)/experiments(?:/([a-z0-9-]+))?$")
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _status(code: int, reason: str, message: str, kind: str = "experiments", name: str = "") -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "details": {"name": name, "group": "kubeflow.org", "kind": kind}, "code": code}


def _condition(kind: str, reason: str, message: str) -> dict:
    return {"type": kind, "status": "True", "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z"}


class ContractServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, outcome: str = "succeed", crds_installed: bool = True,
                 known_namespaces: tuple[str, ...] = ("kubeflow-user",)):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.outcome, self.crds_installed, self.known_namespaces = outcome, crds_installed, known_namespaces
        self.experiments: dict[tuple[str, str], dict] = {}
        self.reads: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

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

    def _route(self):
        self.server.requests.append((self.command, self.path))
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
