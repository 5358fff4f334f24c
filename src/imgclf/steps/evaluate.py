"""Evaluate: score the exported SavedModel on the full test split and decide the blessing.

Metrics: accuracy, loss (mean cross-entropy), per-class precision / recall / F1,
confusion matrix (rows = true class, columns = predicted), calibration (ECE and
the reliability diagram's bins), accuracy per class / brightness band / contrast
band, and the worst confusions (imgclf.model.evaluation). Blessing, as TFX's
Evaluator does it: accuracy >= a value threshold AND, when a model is already
pushed under `<base>/<model>/`, accuracy not worse than that model's accuracy on
the same test split by more than a change tolerance. The pushed model is scored
on the same split with the same analysis, for the comparison in the report.

Writes to the output directory:
    evaluation.json  metrics + "analysis" (calibration, slices, worst confusions) + "baseline_analysis"
    blessing.json    blessed, reasons, thresholds, the pushed model's scores, the SavedModel's sha256
    report.html      self-contained evaluation report (renders in the KFP UI as an HTML artifact)
    model_card.md    the model card; push copies it into the pushed version beside saved_model.pb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from imgclf import settings
from imgclf.data import datasets, storage, versions
from imgclf.errors import UserError, run_cli

BATCH = 1000
MODEL_CARD = "model_card.md"  # next to blessing.json; push copies it into the pushed version


def predict_probabilities(saved_model_dir: str | Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities [N, classes] from an exported SavedModel, in batches."""
    from imgclf.model.export import load_serving_fn

    if not (Path(saved_model_dir) / versions.SAVED_MODEL_PB).is_file():
        raise UserError(f"{saved_model_dir}: no {versions.SAVED_MODEL_PB} (not an exported SavedModel)")
    predict = load_serving_fn(saved_model_dir)
    return np.concatenate([predict(images[i:i + BATCH]) for i in range(0, len(images), BATCH)])


def classification_metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int = settings.NUM_CLASSES) -> dict:
    """Accuracy, loss, confusion matrix and per-class precision/recall/F1 from probabilities."""
    labels = labels.astype(np.int64)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    true_pos = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(true_pos, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_pos, actual, out=np.zeros(num_classes), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(num_classes),
                   where=(precision + recall) > 0)
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    names = settings.CLASS_NAMES
    return {
        "examples": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "loss": float(-np.log(picked).mean()),
        "confusion_matrix": confusion.tolist(),
        "per_class": {names[c]: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                                 "support": int(actual[c])} for c in range(num_classes)},
    }


def bless(accuracy: float, threshold: float, baseline_accuracy: float | None, tolerance: float) -> tuple[bool, list[str]]:
    """The blessing rule; returns (blessed, reasons) where reasons explain every check."""
    reasons = []
    ok = accuracy >= threshold
    reasons.append(f"accuracy {accuracy:.4f} {'>=' if ok else '<'} threshold {threshold:.4f}")
    if baseline_accuracy is not None:
        floor = baseline_accuracy - tolerance
        better = accuracy >= floor
        reasons.append(f"accuracy {accuracy:.4f} {'>=' if better else '<'} pushed model's {baseline_accuracy:.4f} "
                       f"- tolerance {tolerance:.4f}")
        ok = ok and better
    else:
        reasons.append("no pushed model to compare with")
    return ok, reasons


def score_pushed_model(push_base: str, model_name: str, images: np.ndarray, labels: np.ndarray,
                       candidate_probs: np.ndarray | None = None) -> dict | None:
    """Accuracy, loss, ECE (and the full analysis under "analysis") of the newest pushed version on the
    same test split; None when nothing is pushed. With candidate_probs, also the share of images on
    which the two models' predictions differ ("disagreement").

    A version that cannot be loaded (corrupt, another format) must not block every
    later push, so it is reported as {"version", "uri", "error"} instead of raising.
    """
    latest = versions.latest_servable(versions.model_base(push_base, model_name))
    if latest is None:
        return None
    version, uri = latest
    local, tmp = storage.local_copy(uri)
    try:
        probs = predict_probabilities(local, images)
        scored = classification_metrics(probs, labels)
    except Exception as exc:  # noqa: BLE001 - any load failure means "no usable baseline"
        return {"version": version, "uri": uri, "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]}
    finally:
        if tmp is not None:
            tmp.cleanup()
    from imgclf.model import evaluation as eval_analysis

    analysis = eval_analysis.analyse(images, probs, labels.astype(np.int64))
    out = {"version": version, "uri": uri, "accuracy": scored["accuracy"], "loss": scored["loss"],
           "ece": analysis["calibration"]["ece"], "mean_confidence": analysis["calibration"]["mean_confidence"],
           "analysis": analysis}
    if candidate_probs is not None:
        out["disagreement"] = float((candidate_probs.argmax(axis=1) != probs.argmax(axis=1)).mean())
    return out


def evaluate(dataset_dir: str, model_dir: str, output_dir: str, push_base: str = settings.DEFAULT_PUSH_BASE,
             model_name: str = settings.MODEL_NAME, accuracy_threshold: float = settings.EVALUATE.accuracy_threshold,
             change_tolerance: float = settings.EVALUATE.change_tolerance) -> dict:
    """Evaluate model_dir/saved_model on the test split; write evaluation.json and blessing.json to output_dir."""
    from imgclf.model import evaluation as eval_analysis
    from imgclf.reports.eval_report import model_card, render_report

    storage.check_new_output(output_dir)
    meta = datasets.read_metadata(dataset_dir)
    images, labels = datasets.load_split(dataset_dir, "test")
    if len(labels) == 0:
        raise UserError(f"{dataset_dir}: test split is empty")
    num_classes = int(meta.get("num_classes", settings.NUM_CLASSES))
    absent = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
    if absent:
        names = ", ".join(f"{c} ({settings.CLASS_NAMES[c] if c < len(settings.CLASS_NAMES) else c})" for c in absent)
        raise UserError(f"{Path(dataset_dir) / 'test.npz'}: field 'labels': class {names} missing from the test split "
                        "(per-class metrics and the blessing need every class)")
    saved_model = Path(model_dir) / "saved_model"
    probs = predict_probabilities(saved_model, images)
    metrics = classification_metrics(probs, labels)
    analysis = eval_analysis.analyse(images, probs, labels.astype(np.int64))

    baseline = score_pushed_model(push_base, model_name, images, labels, probs)
    comparable = baseline is not None and "accuracy" in baseline
    baseline_analysis = baseline.pop("analysis", None) if baseline else None
    blessed, reasons = bless(metrics["accuracy"], accuracy_threshold,
                             baseline["accuracy"] if comparable else None, change_tolerance)
    if baseline is not None and not comparable:
        reasons[-1] = f"pushed version {baseline['version']} could not be loaded ({baseline['error']}); not compared"
    blessing = {"blessed": blessed, "reasons": reasons, "accuracy": metrics["accuracy"],
                "accuracy_threshold": accuracy_threshold, "change_tolerance": change_tolerance, "baseline": baseline,
                "model_sha256": versions.saved_model_digest(saved_model)}
    hp_file = Path(model_dir) / "hyperparameters.json"
    hyperparameters = json.loads(hp_file.read_text()) if hp_file.is_file() else {}
    report = render_report(metrics, analysis, blessing, images, baseline_analysis, baseline if comparable else None)
    card = model_card(model_name=model_name, metrics=metrics, analysis=analysis, blessing=blessing,
                      dataset_meta=meta, hyperparameters=hyperparameters, baseline_metrics=baseline if comparable else None)
    with storage.atomic_directory(output_dir) as tmp:
        (tmp / "evaluation.json").write_text(json.dumps(
            {**metrics, "analysis": analysis, "baseline_analysis": baseline_analysis}, indent=1))
        (tmp / "blessing.json").write_text(json.dumps(blessing, indent=2))
        (tmp / "report.html").write_text(report)
        (tmp / MODEL_CARD).write_text(card)
    return {"metrics": metrics, "blessing": blessing, "analysis": analysis}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--model", required=True, help="model directory written by imgclf-train")
    parser.add_argument("--output", required=True, help="directory for evaluation.json and blessing.json")
    parser.add_argument("--push-base", default=settings.DEFAULT_PUSH_BASE,
                        help="where pushed models live (to compare with the latest): local path, gs:// or s3://")
    parser.add_argument("--model-name", default=settings.MODEL_NAME)
    parser.add_argument("--accuracy-threshold", type=float, default=settings.EVALUATE.accuracy_threshold)
    parser.add_argument("--change-tolerance", type=float, default=settings.EVALUATE.change_tolerance)
    args = parser.parse_args(argv)
    result = evaluate(args.dataset, args.model, args.output, args.push_base, args.model_name,
                      args.accuracy_threshold, args.change_tolerance)
    b = result["blessing"]
    print(f"test accuracy {result['metrics']['accuracy']:.4f}; blessed={b['blessed']} ({'; '.join(b['reasons'])})")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
