"""A local TF-Serving-compatible REST server for the latest pushed model, on KServe's Python ModelServer.

    python -m imgclf.serving.server --push-base runs/serving --port 8501     (or `make serve`)

Serves `<push base>/<model name>/<latest integer version>/` (local, gs:// or s3://) with
TF Serving's REST API (paths, bodies and {"error": ...} answers):
    GET  /v1/models/NAME[/versions/N]            model_version_status
    GET  /v1/models/NAME[/versions/N]/metadata   signature_def of both signatures
    POST /v1/models/NAME[/versions/N]:predict    "instances" (row) or "inputs" (columnar)
A background thread polls the base directory and swaps in a newly pushed version
without a restart (like TF Serving, only the latest version is loaded). A version that
fails to load is logged once and skipped; deleting the newest version rolls back to
the newest remaining one.

Why routes of our own: kserve 0.21's V1 protocol answers GET /v1/models/NAME with
{"name", "ready"} rather than TF Serving's model_version_status and has no
/metadata or /versions/N routes, so those are registered on its FastAPI app ahead
of its own. Both :predict routes (unversioned and /versions/N) are ours too, plain ASGI
endpoints (app.PredictEndpoint): raw body bytes -> parse_request -> model -> orjson bytes,
skipping FastAPI's request handling and kserve's DataPlane (its decode, the Model's
pre/postprocess timing and metrics, the response wrapping). KServe stays the server base:
its uvicorn, middleware, health and V2 routes, and the Model that reports readiness.

Speed (bench/serve_bench.py, which times server and in-process rows in turns in one run;
2 shared cores at load average 5-9, so only ratios from one run mean anything):
- our :predict route instead of kserve's, with the JSON fast path below (the previous server
  as a second row of the same runs): batch-64 JSON 0.49-0.52 -> 0.65-0.68 of in-process,
  b64 (the route alone: b64 skips the JSON parse) 0.64-0.69 -> 0.72-0.75; single-image p50
  2.0-2.2x -> 1.8-1.9x in-process;
- JSON integers read from the body text (payload._dense_numbers) instead of orjson's nested
  lists + np.asarray: parse of a batch of 64 ~2.3 ms -> ~0.9 ms in the same process (the usual
  body; floats and every malformed body still go through the general parser);
- no access-log line per request (TF Serving writes none; --access-log turns it on): the
  levels were set before kserve's ModelServer() configured logging, which put uvicorn.access
  back at INFO, so every request was logged; set after it, batch-64 JSON went from
  8,100-8,700 to 10,800-11,000 images/s with one client on the idle machine;
- uvloop (kserve starts uvicorn inside its own asyncio.run(), so uvicorn's loop="auto" never
  applied it): single p50 -3%, batch within noise; kept, kserve means to use it;
- TensorFlow's thread pools: --tf-threads 1 (intra- and inter-op) against TF's default of one per
  core (--tf-threads 0, the default). At load 5-9 (2 cores shared with the client and other
  work) 1 won at p50 (1.61x vs 1.81x, 1.68x vs 1.80x, 1.63x vs 1.81x of in-process) and mostly
  on batch-64 JSON (0.70 vs 0.67, 0.71 vs 0.68, 0.55 vs 0.65). On the idle machine TF's default
  won on throughput, the figure a server is for: batch-64 0.62 vs 0.56 (JSON) and 0.70 vs 0.64
  (b64), single p50 1.73x vs 1.56x, p99 1.65x vs 1.53x; and with the roles swapped (the benched
  server at 0, the --also row at 1) 0.66 vs 0.58 and 0.75 vs 0.66, p99 1.63x vs 1.67x (two runs,
  both servers in the same turns, load 0.8-1.0). So the default is TF's own; --tf-threads 1 suits a node shared with other work.
  2/1 (intra/inter): between the two;
- the model runs on the event-loop thread: a worker thread (run_in_executor) was 3-5% slower
  at p50; gc.freeze() after start: no change;
- the same predict function on a bare uvicorn app (no kserve, no Starlette) was p50 ~0.6 ms
  and batch ~0.04 better still; kserve's middleware stack costs ~55 us of that per request
  (timed in-process), the rest is not accounted for.
The model is called through the SavedModel's traced endpoint attribute (not
`signatures[...]`, ~10x slower per call), with fixed dtypes so nothing retraces, and
numpy arrays are written by orjson directly.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import orjson

from imgclf import settings
from imgclf.data import storage, versions
from imgclf.errors import UserError, run_cli
from imgclf.serving.app import VersionNotFound, install
from imgclf.serving.payload import DEFAULT_MAX_BATCH, SIGNATURES, BadRequest, format_response, parse_request

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
TF_THREADS = 0  # TensorFlow's intra- and inter-op threads (0: its default); main() sets --tf-threads
log = logging.getLogger("imgclf.serving.server")


@dataclass
class Servable:
    version: int
    uri: str
    loaded: object
    endpoints: dict = field(default_factory=dict)
    _tmp: object = None  # downloaded copy of a gs:// version, kept while loaded


def load_servable(version: int, uri: str) -> Servable:
    """Load one SavedModel version and warm both endpoints up (first calls build TF's kernels)."""
    import tensorflow as tf

    if TF_THREADS and tf.config.threading.get_intra_op_parallelism_threads() != TF_THREADS:
        try:  # only before TF's first op; later (TF already ran in this process) its pools stay as they are
            tf.config.threading.set_intra_op_parallelism_threads(TF_THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(TF_THREADS)
        except RuntimeError as exc:
            log.warning("--tf-threads %d not applied: %s", TF_THREADS, exc)
    path, tmp = storage.local_copy(uri)
    loaded = tf.saved_model.load(str(path))
    endpoints = {name: getattr(loaded, name) for name in SIGNATURES}
    for name, dtype in zip(SIGNATURES, (np.float32, np.uint8)):
        endpoints[name](tf.constant(np.zeros((1, settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH), dtype)))
    return Servable(version, uri, loaded, endpoints, tmp)


class VersionWatcher:
    """Keeps the newest loadable version of a model base loaded; polls for changes in a thread.

    A version that fails to load is logged once and remembered (by number, while its
    directory exists), so the poller keeps serving the current model without retrying it.
    When the newest version is deleted (a rollback), the newest remaining one is loaded.
    """

    def __init__(self, push_base: str, model_name: str, poll_seconds: float = 2.0):
        self.base = versions.model_base(push_base, model_name)
        self.poll_seconds = poll_seconds
        self.current: Servable | None = None
        self.failed: dict[int, str] = {}  # version -> first line of why it could not be loaded
        self._stop = threading.Event()
        self._last_poll_error = ""

    def refresh(self) -> bool:
        """Load the newest loadable servable version unless it is the current one; True when swapped."""
        found = versions.servable_versions(self.base)
        self.failed = {v: why for v, why in self.failed.items() if v in found}  # a re-pushed number is retried
        for version in reversed(found):
            if self.current is not None and version == self.current.version:
                return False
            if version in self.failed:
                continue
            uri = self.base.child(str(version)).uri()
            try:
                servable = load_servable(version, uri)
            except Exception as exc:  # a broken version must not stop serving the current one
                why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                self.failed[version] = why
                log.error("cannot load version %d from %s (not retried; still serving %s): %s", version, uri,
                          f"version {self.current.version}" if self.current else "nothing", why)
                continue
            self.current = servable  # one reference swap: requests see the old or the new model, whole
            log.warning("serving %s version %d from %s", self.base.uri(), servable.version, servable.uri)
            return True
        return False

    def get(self, version: int | None) -> Servable:
        current = self.current
        if current is None or (version is not None and version != current.version):
            wanted = "any version" if version is None else f"version {version}"
            raise VersionNotFound(f"Servable not found for request: {wanted} of {self.base.uri()}")
        return current

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
                self._last_poll_error = ""
            except Exception as exc:  # e.g. listing a gs:// base failed; log each new problem once
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if message != self._last_poll_error:
                    log.error("cannot look for new versions under %s: %s", self.base.uri(), message)
                self._last_poll_error = message

    def start(self) -> None:
        threading.Thread(target=self._loop, name="version-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def make_predict(watcher: VersionWatcher, max_batch: int):
    """predict(body, version) -> TF Serving's JSON answer as bytes (BadRequest, VersionNotFound)."""
    import tensorflow as tf

    def predict(body: bytes, version: int | None) -> bytes:
        parsed = parse_request(body, max_batch)
        out = watcher.get(version).endpoints[parsed.signature](tf.constant(parsed.images))
        return orjson.dumps(format_response(out[settings.SERVING_OUTPUT_PROBABILITIES].numpy(),
                                            out[settings.SERVING_OUTPUT_CLASS].numpy(), parsed.columnar),
                            option=orjson.OPT_SERIALIZE_NUMPY)

    return predict


def make_model(name: str, watcher: VersionWatcher, max_batch: int):
    import kserve
    import tensorflow as tf
    from kserve.errors import InvalidInput

    class TFServingModel(kserve.Model):
        """kserve Model (readiness, kserve's own routes); the TF Serving :predict routes call make_predict's function."""

        def load(self) -> bool:
            self.ready = watcher.current is not None
            return self.ready

        def preprocess(self, body, headers=None):
            try:
                parsed = parse_request(body, max_batch)
            except BadRequest as exc:
                raise InvalidInput(str(exc)) from None
            return parsed

        def predict(self, parsed, headers=None):
            servable = watcher.get(None)
            out = servable.endpoints[parsed.signature](tf.constant(parsed.images))
            return format_response(out[settings.SERVING_OUTPUT_PROBABILITIES].numpy(),
                                   out[settings.SERVING_OUTPUT_CLASS].numpy(), parsed.columnar)

    return TFServingModel(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imgclf.serving.server", description=__doc__.splitlines()[0])
    parser.add_argument("--push-base", default=settings.DEFAULT_PUSH_BASE, help="local directory, gs://bucket/prefix or s3://bucket/prefix")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--port", type=int, default=settings.SERVING_REST_PORT, help="1..65535")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="how often to look for a new version")
    parser.add_argument("--wait-seconds", type=float, default=0.0,
                        help="wait this long for a first version (0: fail at once when none is pushed)")
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="most images in one request")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    parser.add_argument("--tf-threads", type=int, default=0,
                        help="TensorFlow's intra- and inter-op threads (0, the default: TensorFlow's own, one per "
                             "core); 1 was faster on 2 busy shared cores, see the module docstring")
    return parser


def check_args(args: argparse.Namespace) -> None:
    """UserError naming the flag and value for settings the server cannot run with."""
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be a TCP port number in 1..65535")
    for flag, value in (("--max-batch", args.max_batch), ("--max-body-bytes", args.max_body_bytes)):
        if value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    if args.tf_threads < 0:
        raise UserError(f"--tf-threads {args.tf_threads}: must be 0 (TensorFlow's default) or more")
    if not (args.poll_seconds > 0 and math.isfinite(args.poll_seconds)):
        raise UserError(f"--poll-seconds {args.poll_seconds}: must be a positive number of seconds")
    if not (args.wait_seconds >= 0 and math.isfinite(args.wait_seconds)):
        raise UserError(f"--wait-seconds {args.wait_seconds}: must be zero or a positive number of seconds")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_args(args)
    sys.argv = sys.argv[:1]  # kserve.model_server parses sys.argv when imported

    global TF_THREADS
    TF_THREADS = args.tf_threads
    watcher = VersionWatcher(args.push_base, args.model_name, args.poll_seconds)
    deadline = time.monotonic() + args.wait_seconds
    while not watcher.refresh():
        if time.monotonic() >= deadline:
            if watcher.failed:
                newest = max(watcher.failed)
                raise UserError(f"{watcher.base.uri()}: no version could be loaded ({len(watcher.failed)} tried); "
                                f"version {newest}: {watcher.failed[newest]}")
            raise UserError(f"{watcher.base.uri()}: no servable version (<int>/saved_model.pb); push a model first")
        time.sleep(min(args.poll_seconds, 1.0))

    import kserve
    import uvloop
    from kserve.model_server import app

    model = make_model(args.model_name, watcher, args.max_batch)
    model.load()
    install(app, model, watcher, make_predict(watcher, args.max_batch), args.max_body_bytes)
    watcher.start()
    print(f"serving {args.model_name} version {watcher.current.version} on http://localhost:{args.port}"
          f"/v1/models/{args.model_name}", flush=True)
    # kserve starts uvicorn inside its own asyncio.run(), so uvicorn's loop="auto" never picks uvloop: set it here.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.set_event_loop(asyncio.new_event_loop())  # kserve's setup_event_loop() asks for a current loop
    server = kserve.ModelServer(http_port=args.port, enable_grpc=False, workers=1, enable_latency_logging=False)
    # After ModelServer(): it configures logging (uvicorn.access at INFO), which undid levels set before it.
    for name in ("kserve.trace", "uvicorn.access") if not args.access_log else ():
        logging.getLogger(name).setLevel(logging.WARNING)
    server.start([model])
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
