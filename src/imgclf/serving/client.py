"""Send one Fashion-MNIST test image to a TF-Serving-compatible server and print its class name.

    python -m imgclf.serving.client --url http://localhost:8501 --index 0     (or `make predict`)
"""

from __future__ import annotations

import argparse
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request

from imgclf import settings
from imgclf.data import idx
from imgclf.errors import UserError, run_cli


def load_test_image(data_uri: str, index: int):
    """(image uint8 [28,28], label) from the IDX test split under data_uri."""
    images, labels = idx.load_idx_pair(data_uri, settings.IDX_SOURCES["test"],
                                       (settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH))
    if not 0 <= index < len(labels):
        raise UserError(f"--index {index}: the test split has {len(labels)} images (0..{len(labels) - 1})")
    return images[index], int(labels[index])


def check_url(url: str) -> str:
    """The server's base URL (http:// or https:// with a host); UserError naming --url otherwise."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UserError(f"--url {url!r}: expected a server address like http://localhost:{settings.SERVING_REST_PORT}")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port outside 0..65535 or not a number
    except ValueError as exc:
        raise UserError(f"--url {url!r}: {exc}") from None
    return url.rstrip("/")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "..."


def predict(url: str, model_name: str, image, timeout: float = 30.0) -> dict:
    """POST one image in row form; returns the first prediction {"probabilities", "class_id"}."""
    body = json.dumps({"instances": [image.tolist()]}).encode()
    full_url = f"{check_url(url)}/v1/models/{model_name}:predict"
    req = urllib.request.Request(full_url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            answer = resp.read()
    except urllib.error.HTTPError as exc:
        raise UserError(f"{full_url}: HTTP {exc.code}: {_one_line(exc.read().decode(errors='replace'))}") from None
    except urllib.error.URLError as exc:
        raise UserError(f"{full_url}: cannot connect ({_one_line(str(exc.reason))}); is `make serve` running?") from None
    except (OSError, http.client.HTTPException) as exc:  # timeout, reset, server closed the connection
        raise UserError(f"{full_url}: request failed ({_one_line(str(exc)) or type(exc).__name__})") from None
    try:
        return json.loads(answer)["predictions"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise UserError(f"{full_url}: not a TF Serving predict response: {_one_line(answer.decode(errors='replace'))}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.serving.client", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://localhost:{settings.SERVING_REST_PORT}")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--data", default=settings.DEFAULT_DATA_URI, help="directory with the t10k IDX files")
    parser.add_argument("--index", type=int, default=0, help="which test image to send")
    args = parser.parse_args(argv)
    check_url(args.url)
    image, label = load_test_image(args.data, args.index)
    pred = predict(args.url, args.model_name, image)
    cls = int(pred[settings.SERVING_OUTPUT_CLASS])
    prob = float(pred[settings.SERVING_OUTPUT_PROBABILITIES][cls])
    print(f"test image {args.index}: predicted {settings.CLASS_NAMES[cls]} (p={prob:.3f}), "
          f"true label {settings.CLASS_NAMES[label]}")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
