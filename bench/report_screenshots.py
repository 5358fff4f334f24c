"""Regenerate the README's report pictures: each report rendered in headless Chromium, saved as PNG.

    make report-screenshots          # .venv/bin/python bench/report_screenshots.py [--work runs/screenshots]

On all of Fashion-MNIST (a few minutes on 2 cores; the label audit and two trainings dominate):
1. validate: the test split rotated by 10 degrees (a shift the mean pixel barely sees) -> drift report;
2. label audit: 2% of the train labels flipped (half confusable, half random) -> label audit report;
3. evaluate: a 3-epoch model against a pushed 1-epoch model on the full test split -> evaluation report.
Screenshots go to bench/screenshots/{validate,label_audit,evaluation}.png. Needs Debian's `chromium`
(apt-get install chromium); run as root it needs --no-sandbox, which this script passes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHOTS = Path(__file__).resolve().parent / "screenshots"
HEIGHTS = {"validate": 2500, "label_audit": 1900, "evaluation": 2700}


def screenshot(html: Path, png: Path, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        raise SystemExit("error: chromium not found: apt-get install chromium")
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--hide-scrollbars", f"--window-size=1280,{height}", f"--screenshot={png}",
                    html.resolve().as_uri()], check=True, capture_output=True, timeout=180)
    print(f"wrote {png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/screenshots", help="scratch directory (replaced)")
    parser.add_argument("--only", choices=sorted(HEIGHTS), action="append", help="just these reports")
    args = parser.parse_args()
    from scipy import ndimage

    from imgclf import settings
    from imgclf.data import datasets
    from imgclf.model.hyperparams import HyperParams
    from imgclf.steps.evaluate import evaluate
    from imgclf.steps.ingest import ingest
    from imgclf.steps.label_audit import inject_label_flips, label_audit
    from imgclf.steps.push import push
    from imgclf.steps.train import train
    from imgclf.steps.validate import validate

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    ingest(settings.DEFAULT_DATA_URI, str(work / "data"))
    meta = datasets.read_metadata(work / "data")
    splits = {s: datasets.load_split(work / "data", s) for s in meta["splits"]}
    wanted = set(args.only or HEIGHTS)

    if "validate" in wanted:
        x, y = splits["test"]
        rotated = {**splits, "test": (ndimage.rotate(x, 10, axes=(1, 2), reshape=False, order=1), y)}
        datasets.write_dataset(work / "rotated", rotated, {"source": meta["source"]})
        start = time.perf_counter()
        validate(str(work / "rotated"), str(work / "validate"), fail_on_anomalies=False)
        print(f"validate: {time.perf_counter() - start:.1f} s")
        screenshot(work / "validate" / "report.html", SHOTS / "validate.png", HEIGHTS["validate"])

    if "label_audit" in wanted:
        x, y = splits["train"]
        noisy, _ = inject_label_flips(y, 0.02, seed=11)
        datasets.write_dataset(work / "noisy", {**splits, "train": (x, noisy)}, {"source": meta["source"]})
        label_audit(str(work / "noisy"), str(work / "audit"), log=print)
        screenshot(work / "audit" / "report.html", SHOTS / "label_audit.png", HEIGHTS["label_audit"])

    if "evaluation" in wanted:
        data = str(work / "data")
        train(data, str(work / "model_1epoch"), HyperParams(epochs=1))
        evaluate(data, str(work / "model_1epoch"), str(work / "eval_1epoch"), str(work / "serving"))
        push(str(work / "model_1epoch"), str(work / "eval_1epoch" / "blessing.json"), str(work / "serving"))
        train(data, str(work / "model"), HyperParams(epochs=3))
        result = evaluate(data, str(work / "model"), str(work / "evaluation"), str(work / "serving"))
        print(f"evaluate: accuracy {result['metrics']['accuracy']:.4f}, ECE "
              f"{result['analysis']['calibration']['ece']:.4f}, blessed {result['blessing']['blessed']}")
        screenshot(work / "evaluation" / "report.html", SHOTS / "evaluation.png", HEIGHTS["evaluation"])


if __name__ == "__main__":
    main()
