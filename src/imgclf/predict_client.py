"""Send one Fashion-MNIST test image to a TF-Serving-compatible server and print its class name.

    python -m imgclf.predict_client --url http://localhost:8501 --index 0     (or `make predict`)
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request

from imgclf import idx, settings
from imgclf.errors import UserError, run_cli


def load_test_image(data_uri: str, index: int):
    """(image uint8 [28,28], label) from the IDX test split under data_uri."""
    images, labels = idx.load_idx_pair(data_uri, settings.IDX_SOURCES["test"],
                                       (settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH))
    if not 0 <= index < len(labels):
        raise UserError(f"--index {index}: the test split has {len(labels)} images (0..{len(labels) - 1})")
    return images[index], int(labels[index])


def predict(url: str, model_name: str, image, timeout: float = 30.0) -> dict:
    """POST one image in row form; returns the first prediction {"probabilities", "class_id"}."""
    body = json.dumps({"instances": [image.tolist()]}).encode()
    req = urllib.request.Request(f"{url.rstrip('/')}/v1/models/{model_name}:predict", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())["predictions"][0]
    except urllib.error.HTTPError as exc:
        raise UserError(f"{req.full_url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
    except urllib.error.URLError as exc:
        raise UserError(f"{req.full_url}: cannot connect ({exc.reason}); is `make serve` running?") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgclf.predict_client", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://localhost:{settings.SERVING_REST_PORT}")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--data", default=settings.DEFAULT_DATA_URI, help="directory with the t10k IDX files")
    parser.add_argument("--index", type=int, default=0, help="which test image to send")
    args = parser.parse_args(argv)
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
