"""A local stand-in for the KFP v2beta1 REST API: the subset kfp.Client 2.17 calls to submit a run.

Contract test, not a cluster: it speaks the paths, query parameters, JSON field
names and multipart upload that kfp_server_api sends (read from
kfp/client/client.py and kfp_server_api/api/*.py), keeps state like the real
server where our CLI depends on it (an existing pipeline name cannot be
uploaded again; a run names an existing version and declared parameters),
and records every request so tests can assert on what reached the wire.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

API = "/apis/v2beta1"
NOW = "2026-07-19T10:15:30Z"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, {"fields": ..., "files": ...} for multipart, or None


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class KfpState:
    """Server state and knobs a test may set before submitting."""

    required_token: str | None = None  # when set, Authorization must be "Bearer <token>"
    healthz_public: bool = False  # like a port-forward to the API server: healthz without auth
    multi_user: bool = False
    tag_name: str = "2.5.0"  # the backend version healthz reports (Kubeflow 1.10 ships 2.5.0)
    namespaces: tuple[str, ...] = ("kubeflow-user",)
    run_states: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEEDED")
    pipelines: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, list[dict]] = field(default_factory=dict)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    ids: Any = field(default_factory=lambda: itertools.count(1))

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self.ids)}"


def _display_name_filter(query: dict[str, str]) -> str | None:
    if "filter" not in query:
        return None
    [predicate] = json.loads(query["filter"])["predicates"]
    # kfp.Client sends the enum's number (1), JSON clients often its name; grpc-gateway takes both.
    if predicate["key"] != "display_name" or predicate["operation"] not in (1, "EQUALS"):
        raise ApiError(400, 3, f"unsupported filter {predicate}")
    return predicate["stringValue"]


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields, files = {}, {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename():
            files[name] = part.get_payload(decode=True).decode()
        else:
            fields[name] = part.get_content()
    return {"fields": fields, "files": files}


class KfpApi:
    """Route table: (method, path) -> state change and JSON answer."""

    def __init__(self, state: KfpState):
        self.s = state

    def _check_namespace(self, namespace: str | None) -> None:
        if self.s.multi_user and namespace and namespace not in self.s.namespaces:
            raise ApiError(403, 7, f"PermissionDenied: user is not authorized to access namespace '{namespace}'")

    def handle(self, method: str, path: str, q: dict[str, str], body: Any) -> dict:
        s = self.s
        if (method, path) == ("GET", f"{API}/healthz"):
            # The shape of the API server's own handler (backend/src/apiserver/main.go); TAG_NAME defaults to "unknown".
            return {"commit_sha": "0a1b2c3", "tag_name": s.tag_name, "multi_user": s.multi_user,
                    "pipeline_store": "database"}
        if (method, path) == ("GET", f"{API}/pipelines"):
            self._check_namespace(q.get("namespace"))
            wanted = _display_name_filter(q)
            found = [p for p in s.pipelines.values() if wanted in (None, p["display_name"])]
            return {"pipelines": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/pipelines/upload"):
            self._check_namespace(q.get("namespace"))
            name = q.get("name") or q.get("display_name")
            if any(p["display_name"] == name for p in s.pipelines.values()):
                raise ApiError(409, 6, f"Failed to create a pipeline: pipeline {name} already exists")
            pid = s.new_id("pipeline")
            s.pipelines[pid] = {"pipeline_id": pid, "display_name": name, "created_at": NOW,
                                "namespace": q.get("namespace", "")}
            s.versions[pid] = []
            self._add_version(pid, name, body["files"]["uploadfile"])
            return s.pipelines[pid]
        if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
            pid, name = q.get("pipelineid"), q.get("name")
            if pid not in s.pipelines:
                raise ApiError(404, 5, f"pipeline {pid} not found")
            if any(v["display_name"] == name for v in s.versions[pid]):
                raise ApiError(409, 6, f"pipeline version {name} already exists")
            return self._add_version(pid, name, body["files"]["uploadfile"])
        if method == "GET" and path.startswith(f"{API}/pipelines/") and path.endswith("/versions"):
            pid = path.split("/")[-2]
            newest_first = sorted(s.versions.get(pid, []), key=lambda v: v["seq"], reverse=True)
            listed = [self._public(v) for v in newest_first[: int(q.get("page_size") or 20)]]
            return {"pipeline_versions": listed, "total_size": len(listed)}
        if (method, path) == ("GET", f"{API}/experiments"):
            self._check_namespace(q.get("namespace"))
            wanted = _display_name_filter(q)
            found = [e for e in s.experiments.values() if e["display_name"] == wanted]
            return {"experiments": found, "total_size": len(found)} if found else {}
        if (method, path) == ("POST", f"{API}/experiments"):
            self._check_namespace(body.get("namespace"))
            eid = s.new_id("experiment")
            s.experiments[eid] = {"experiment_id": eid, "created_at": NOW, **body}
            return s.experiments[eid]
        if (method, path) == ("POST", f"{API}/runs"):
            return self._create_run(body)
        if method == "GET" and path.startswith(f"{API}/runs/"):
            run_id = path.rsplit("/", 1)[-1]
            if run_id not in s.runs:
                raise ApiError(404, 5, f"run {run_id} not found")
            poll = s.polls[run_id] = s.polls.get(run_id, 0) + 1
            state = s.run_states[min(poll, len(s.run_states) - 1)]
            run = {**s.runs[run_id], "state": state}
            if state == "FAILED":
                run["error"] = {"code": 2, "message": "task train failed: exit status 1"}
            return run
        raise ApiError(404, 5, f"no route for {method} {path}")

    @staticmethod
    def _public(version: dict) -> dict:
        return {k: v for k, v in version.items() if k not in ("seq", "pipeline_spec")}

    def _add_version(self, pid: str, name: str, package: str) -> dict:
        spec = next(yaml.safe_load_all(package))
        version = {"pipeline_id": pid, "pipeline_version_id": self.s.new_id("version"), "display_name": name,
                   "created_at": NOW, "pipeline_spec": spec, "seq": len(self.s.versions[pid])}
        self.s.versions[pid].append(version)
        return self._public(version)

    def _create_run(self, body: dict) -> dict:
        if body.get("experiment_id") not in self.s.experiments:
            raise ApiError(400, 3, f"experiment {body.get('experiment_id')} not found")
        ref = body.get("pipeline_version_reference") or {}
        versions = {v["pipeline_version_id"]: v for v in self.s.versions.get(ref.get("pipeline_id"), [])}
        if ref.get("pipeline_version_id") not in versions:
            raise ApiError(400, 3, f"pipeline version reference {ref} not found")
        spec = versions[ref["pipeline_version_id"]]["pipeline_spec"]
        declared = spec["root"].get("inputDefinitions", {}).get("parameters", {})
        for name in (body.get("runtime_config") or {}).get("parameters") or {}:
            if name not in declared:
                raise ApiError(400, 3, f"parameter {name} is not declared by the pipeline")
        run_id = self.s.new_id("run")
        self.s.runs[run_id] = {**body, "run_id": run_id, "created_at": NOW, "state": "PENDING"}
        return self.s.runs[run_id]


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            body = _parse_multipart(content_type, raw)
        else:
            body = json.loads(raw) if raw else None
        state = self.server.state
        headers = {k.lower(): v for k, v in self.headers.items()}  # HTTP header names are case-insensitive
        state.requests.append(Recorded(self.command, url.path, query, headers, body))
        try:
            public = state.healthz_public and url.path == f"{API}/healthz"
            token_ok = headers.get("authorization") == f"Bearer {state.required_token}"
            if state.required_token and not public and not token_ok:
                raise ApiError(401, 16, "Unauthenticated: invalid or missing bearer token")
            status, answer = 200, KfpApi(state).handle(self.command, url.path, query, body)
        except ApiError as exc:
            status, answer = exc.status, {"error": exc.message, "code": exc.code, "message": exc.message}
        except Exception as exc:  # a bug here must show up as a 500, not a dropped connection
            status, answer = 500, {"error": repr(exc), "code": 13, "message": repr(exc)}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: KfpState


class ContractServer:
    """`with ContractServer() as kfp: ... kfp.url, kfp.state.requests`."""

    def __init__(self, state: KfpState | None = None, port: int = 0):
        self.state = state or KfpState()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = self.state
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> "ContractServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def calls(self, method: str, path_suffix: str) -> list[Recorded]:
        return [r for r in self.state.requests if r.method == method and r.path.endswith(path_suffix)]


def main(argv: list[str] | None = None) -> int:
    """Serve the contract API in the foreground, to try `make submit` by hand (not a cluster)."""
    import argparse
    import time

    parser = argparse.ArgumentParser(prog="python -m tests.kfp_contract_server", description=main.__doc__)
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args(argv)
    with ContractServer(port=args.port) as server:
        print(f"KFP v2beta1 contract server on {server.url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
