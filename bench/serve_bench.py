"""Benchmark the local TF-Serving-compatible server against the in-process SavedModel, in one run.

    python bench/serve_bench.py --push-base runs/serving          (starts `imgclf.serving.server` on a free port)
    python bench/serve_bench.py --url http://localhost:8501        (an already running `make serve`)

Prints single-image p50/p99 latency and batch-64 images/s for: the SavedModel's
traced endpoint in-process, `signatures["serving_default"]` in-process, the
server with JSON numbers and with TF Serving's binary {"b64": ...} instances; the
per-stage cost of one batch-64 request (JSON parse, numpy, model, JSON write; the integer
JSON body takes payload.py's fast path, the same pixels written as floats its general path); the
server/in-process ratios, the load average before and after, and the server's peak RSS.
Real Fashion-MNIST test images, the same ones for every row.

Fair by construction, since the machine is shared and its load drifts: the rows are
timed in turns (request i of every row, in a fresh random order, before request i+1
of any), so a load change hits all of them alike; the server is already running while
the in-process rows are timed; the client sends request bodies prepared before timing
(as a real client holds its encoded images) over one persistent HTTP/1.1 connection.
--also URL (repeatable) adds rows for other running servers, e.g. an older build, in
the same turns: an A/B comparison in one run. --json adds one JSON line of every
figure at the end (bench/bench.py reads it).

Measured 2026-12-02 on the 2 shared cores (a 1-epoch model; other benchmarks running):
before (the previous server, --url, load 5.5-5.9): batch-64 0.51 of in-process for JSON
numbers, 0.68 for b64; single p99 2.45x and 2.53x, p50 2.18x and 2.13x. After (this
server, load 4.9-5.3): batch-64 0.70 and 0.78; p99 1.57x and 1.51x; p50 1.71x and 1.62x.
In one run with both servers and --tf-threads 0 as --also rows (load 4.9-5.9): this server
0.70 and 0.75, p99 1.79x and 2.42x, p50 1.61x and 1.52x; the previous one 0.54 and 0.68,
p99 2.16x and 2.78x, p50 2.04x and 1.99x. At these loads p99 of 800-1000 requests is set by
the scheduler (the in-process p99 alone moved between 4 and 55 ms from run to run), so it
passes or fails the 2x target by chance; the batch ratios and p50 repeat within ~0.03.
The server's docstring lists each lever with its figure.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import orjson

from imgclf import settings
from imgclf.data import versions
from imgclf.serving.client import load_test_image


def timed(fn, n: int) -> np.ndarray:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.array(out)


def in_turns(fns: dict, n: int, seed: int = 0) -> dict:
    """Time every fn n times, taking turns in a fresh random order each round; {name: seconds per call}.

    Random, not rotating: with a rotation each row always follows the same row, and a server's
    TensorFlow threads still spinning after its answer would always tax the same neighbour.
    """
    rng, times = np.random.default_rng(seed), {name: [] for name in fns}
    for _ in range(n):
        for name in rng.permutation(list(fns)):
            t = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t)
    return {name: np.array(v) for name, v in times.items()}


def summary(name: str, single: np.ndarray, batch: np.ndarray, batch_size: int) -> dict:
    row = {"p50_ms": np.percentile(single, 50) * 1e3, "p99_ms": np.percentile(single, 99) * 1e3,
           "img_s": batch_size / np.median(batch), "batch_max_ms": batch.max() * 1e3}
    print(f"{name:34s} single p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms   "
          f"batch-{batch_size} {row['img_s']:8.0f} img/s (slowest batch {row['batch_max_ms']:.1f} ms)")
    return row


def start_server(push_base: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "imgclf.serving.server", "--push-base", push_base, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", f"/v1/models/{settings.MODEL_NAME}")
            if c.getresponse().status == 200:
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def poster(url: str):
    """post(body): one predict request on a persistent connection to url; checks the answer is 200."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    path = f"/v1/models/{settings.MODEL_NAME}:predict"
    headers = {"Content-Type": "application/json"}

    def post(body: bytes) -> None:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data[:200]

    return post


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-base", default=settings.DEFAULT_PUSH_BASE)
    parser.add_argument("--url", help="benchmark this running server instead of starting one")
    parser.add_argument("--also", action="append", default=[], metavar="URL",
                        help="also time this running server, in the same turns (repeatable)")
    parser.add_argument("--data", default=settings.DEFAULT_DATA_URI)
    parser.add_argument("--n", type=int, default=1000, help="single-image requests per row")
    parser.add_argument("--batches", type=int, default=100, help="batch requests per row")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true", help="end with one JSON line of all figures")
    args = parser.parse_args()

    import tensorflow as tf

    from imgclf.serving.payload import format_response, parse_request

    latest = versions.latest_servable(versions.model_base(args.push_base, settings.MODEL_NAME))
    if latest is None:
        raise SystemExit(f"nothing pushed under {args.push_base}/{settings.MODEL_NAME}")
    loaded = tf.saved_model.load(latest[1])
    endpoint, signature = getattr(loaded, settings.SERVING_SIGNATURE_FLOAT), loaded.signatures["serving_default"]
    image = load_test_image(args.data, 0)[0]
    batch = np.stack([load_test_image(args.data, i)[0] for i in range(args.batch_size)])
    one_f, batch_f = image[None].astype(np.float32), batch.astype(np.float32)

    body_one = orjson.dumps({"instances": [image.tolist()]})
    body_batch = orjson.dumps({"instances": batch.tolist()})  # integers: the parser's fast path
    body_batch_floats = orjson.dumps({"instances": batch.astype(float).tolist()})  # "3.0": its general path

    def b64(images):
        return orjson.dumps({"instances": [{"b64": base64.b64encode(i.astype(np.uint8).tobytes()).decode()}
                                           for i in images]})

    body_one_b64, body_batch_b64 = b64(image[None]), b64(batch)
    stages = {
        "orjson.loads": lambda: orjson.loads(body_batch),
        "parse_request (json+numpy+checks)": lambda: parse_request(body_batch),
        "same pixels as floats (general)": lambda: parse_request(body_batch_floats),
        "parse_request (b64 instances)": lambda: parse_request(body_batch_b64),
        "model call": lambda: endpoint(tf.constant(batch_f)),
        "format_response + orjson.dumps": lambda: orjson.dumps(format_response(
            np.zeros((args.batch_size, 10), np.float32), np.zeros(args.batch_size, np.int64), False),
            option=orjson.OPT_SERIALIZE_NUMPY),
    }

    proc = None
    url = args.url
    load_before = load_average()
    if url is None:
        proc, url = start_server(args.push_base)
    try:
        servers = {"server": poster(url), **{f"--also {u}": poster(u) for u in args.also}}
        single = {"in-process endpoint attribute": lambda: endpoint(tf.constant(one_f)),
                  "in-process signatures[...]": lambda: signature(images=tf.constant(one_f))}
        batched = {"in-process endpoint attribute": lambda: endpoint(tf.constant(batch_f)),
                   "in-process signatures[...]": lambda: signature(images=tf.constant(batch_f))}
        for name, post in servers.items():
            single[f"{name}, JSON numbers"] = lambda post=post: post(body_one)
            single[f"{name}, b64 instances"] = lambda post=post: post(body_one_b64)
            batched[f"{name}, JSON numbers"] = lambda post=post: post(body_batch)
            batched[f"{name}, b64 instances"] = lambda post=post: post(body_batch_b64)
        in_turns(single, 20), in_turns(batched, 20)  # warm-up: first calls, connections, caches
        print(f"model {settings.MODEL_NAME} version {latest[0]}; {os.cpu_count()} CPUs; load average {load_before}")
        single_s, batch_s = in_turns(single, args.n), in_turns(batched, args.batches)
        rows = {name: summary(name, single_s[name], batch_s[name], args.batch_size) for name in single}
        peak_rss_mib = None
        if proc:  # the server's own high-water mark, read before it exits
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_rss_mib = round(int(line.split()[1]) / 1024, 1)
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
    load_after = load_average()
    print(f"per-stage cost of one batch-{args.batch_size} request ({len(body_batch)} bytes of JSON, "
          f"{len(body_batch_b64)} as b64), in this process:")
    stage_ms = {}
    for name, fn in stages.items():
        stage_ms[name] = round(float(np.median(timed(fn, 30)) * 1e3), 3)
        print(f"  {name:34s} {stage_ms[name]:7.3f} ms")
    inproc = rows["in-process endpoint attribute"]
    ratios = {}
    for name in servers:
        for form, key in (("JSON numbers", ""), ("b64 instances", "_b64")):
            row = rows[f"{name}, {form}"]
            ratios[name + key] = (row["img_s"] / inproc["img_s"], row["p99_ms"] / inproc["p99_ms"])
            print(f"ratios {name}, {form} / in-process: batch-{args.batch_size} throughput "
                  f"{ratios[name + key][0]:.2f} (target >= 0.6), single p99 {ratios[name + key][1]:.2f}x "
                  f"(target <= 2), p50 {row['p50_ms'] / inproc['p50_ms']:.2f}x")
    print(f"load average before {load_before}, after {load_after}")
    if args.json:
        def rounded(row):
            return {k: round(float(v), 3) for k, v in row.items()}

        print(json.dumps({
            "in_process": rounded(inproc), "server_json": rounded(rows["server, JSON numbers"]),
            "server_b64": rounded(rows["server, b64 instances"]),
            "stage_ms": stage_ms, "batch_size": args.batch_size, "server_peak_rss_mib": peak_rss_mib,
            "load_average_start": load_before, "load_average_end": load_after,
            "ratio_batch_throughput": round(ratios["server"][0], 3), "ratio_p99": round(ratios["server"][1], 3),
            "ratio_batch_throughput_b64": round(ratios["server_b64"][0], 3),
            "ratio_p99_b64": round(ratios["server_b64"][1], 3)}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
