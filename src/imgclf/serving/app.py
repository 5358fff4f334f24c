"""TF Serving REST routes, JSON errors and a body-size limit, added to kserve's FastAPI app.

install() must run before kserve's ModelServer.start(), which appends kserve's own
routes after ours (so ours win for /v1/models/NAME and NAME:predict) and its exception handlers.
The :predict routes are plain ASGI endpoints (PredictEndpoint): the raw body goes to the
server's predict function and its JSON bytes come back, with no FastAPI request/response
models, kserve DataPlane or per-request dicts of headers in between.
"""

from __future__ import annotations

from typing import Callable

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Route

from imgclf.serving.payload import BadRequest


_DTYPES = {"float32": "DT_FLOAT", "uint8": "DT_UINT8", "int64": "DT_INT64"}


class VersionNotFound(LookupError):
    """A version that is not loaded (TF Serving answers 404)."""


def error(status: int, message: str) -> ORJSONResponse:
    return ORJSONResponse(status_code=status, content={"error": message})


class BodyLimit:
    """ASGI middleware: a request body over max_bytes gets 413 {"error": ...} before any parsing."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:  # buffer the body (up to the limit) so chunked uploads are bounded too
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._reject(scope, receive, send)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope, receive, send):
        await error(413, f"request body exceeds {self.max_bytes} bytes")(scope, receive, send)


class PredictEndpoint:
    """ASGI endpoint of POST /v1/models/NAME[/versions/N]:predict.

    predict(body bytes, version or None) -> JSON bytes, raising BadRequest (400) or
    VersionNotFound (404); anything else is kserve's 500 {"error": ...}.
    """

    JSON = (b"content-type", b"application/json")

    def __init__(self, name: str, predict: Callable[[bytes, int | None], bytes]):
        self.name, self.predict = name, predict

    async def __call__(self, scope, receive, send):
        params = scope["path_params"]
        version = params.get("version")
        chunks, more = [], True
        while more:  # BodyLimit has already buffered it: one message
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status = 200
        try:
            if params["name"] != self.name:
                raise VersionNotFound(f"Servable not found for request: Latest({params['name']})")
            if version is not None and not version.isdigit():
                raise BadRequest(f"version {version!r} is not an integer")
            content = self.predict(chunks[0] if len(chunks) == 1 else b"".join(chunks),
                                   int(version) if version is not None else None)
        except BadRequest as exc:
            status, content = 400, orjson.dumps({"error": str(exc)})
        except VersionNotFound as exc:
            status, content = 404, orjson.dumps({"error": str(exc)})
        await send({"type": "http.response.start", "status": status,
                    "headers": [self.JSON, (b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})


def _tensor_info(spec) -> dict:
    shape = spec.shape
    info = {"dtype": _DTYPES.get(spec.dtype.name, spec.dtype.name)}
    if shape.rank is None:
        info["tensor_shape"] = {"dim": [], "unknown_rank": True}
    else:
        info["tensor_shape"] = {"dim": [{"size": str(d if d is not None else -1), "name": ""} for d in shape],
                                "unknown_rank": False}
    return info


def signature_defs(servable) -> dict:
    """TF Serving's signature_def map, from the SavedModel's signatures (computed once per version)."""
    cached = getattr(servable, "_signature_defs", None)
    if cached is None:
        cached = {}
        for name, fn in servable.loaded.signatures.items():
            inputs = fn.structured_input_signature[1]
            cached[name] = {"inputs": {k: {**_tensor_info(v), "name": f"{name}_{k}:0"} for k, v in inputs.items()},
                            "outputs": {k: _tensor_info(v) for k, v in fn.structured_outputs.items()},
                            "method_name": "tensorflow/serving/predict"}
        servable._signature_defs = cached
    return cached


def install(app: FastAPI, model, watcher, predict: Callable[[bytes, int | None], bytes], max_body_bytes: int) -> None:
    """Add the TF Serving routes for `model` (a kserve Model; predict answers its :predict) and JSON error handlers."""
    def check(name: str, version: str | None) -> int | None:
        if name != model.name:
            raise HTTPException(404, f"Servable not found for request: Latest({name})")
        if version is not None and not version.isdigit():
            raise HTTPException(400, f"version {version!r} is not an integer")
        return int(version) if version is not None else None

    async def status(name: str, version: str | None = None):
        servable = watcher.get(check(name, version))
        return {"model_version_status": [{"version": str(servable.version), "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    async def metadata(name: str, version: str | None = None):
        servable = watcher.get(check(name, version))
        return {"model_spec": {"name": name, "signature_name": "", "version": str(servable.version)},
                "metadata": {"signature_def": {"signature_def": signature_defs(servable)}}}

    prefix = "/v1/models/{name}"
    app.add_api_route(prefix, status, methods=["GET"])
    app.add_api_route(prefix + "/metadata", metadata, methods=["GET"])
    app.add_api_route(prefix + "/versions/{version}", status, methods=["GET"])
    app.add_api_route(prefix + "/versions/{version}/metadata", metadata, methods=["GET"])
    endpoint = PredictEndpoint(model.name, predict)
    app.router.routes.append(Route(prefix + ":predict", endpoint, methods=["POST"]))
    app.router.routes.append(Route(prefix + "/versions/{version}:predict", endpoint, methods=["POST"]))
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(HTTPException, lambda _, exc: error(exc.status_code, str(exc.detail)))
    app.add_exception_handler(RequestValidationError, lambda _, exc: error(400, str(exc.errors())))
    app.add_exception_handler(VersionNotFound, lambda _, exc: error(404, str(exc)))
