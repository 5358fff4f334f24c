"""Label audit: find likely mislabelled training examples with confident learning (cleanlab).

Out-of-fold predicted probabilities come from a cheap, deterministic model
(PCA to a few dozen components + multinomial logistic regression, k-fold), so
the audit costs seconds, not a training run; cleanlab's `find_label_issues`
then ranks examples whose given label the other folds confidently disagree
with. Audits a seeded subset of the train split (`max_examples`) to bound time.

Writes to the output directory:
    label_issues.json  summary + suspects [{index, given, suggested, self_confidence}]
                       (index = row in the dataset's train split), most suspicious first
    report.html        self-contained (thumbnails inlined as PNG data URIs)
With --cleaned-output, also writes a copy of the dataset without the suspects.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json

import numpy as np

from imgclf import datasets, settings, storage
from imgclf.errors import UserError, run_cli

PCA_COMPONENTS = 40
THUMBNAILS = 24


def out_of_fold_probabilities(images: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """[N, classes] probabilities where each row comes from a model that never saw that row."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    features = images.reshape(len(images), -1).astype(np.float32) / 255.0
    components = min(PCA_COMPONENTS, len(labels) - len(labels) // folds - 1, features.shape[1])
    model = make_pipeline(PCA(components, random_state=seed), LogisticRegression(max_iter=300))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, features, labels.astype(np.int64), cv=cv, method="predict_proba")


def _thumbnail(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).resize((56, 56), Image.NEAREST).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def render_report(summary: dict, suspects: list[dict], images: np.ndarray) -> str:
    names = settings.CLASS_NAMES
    cells = "".join(
        f"<figure><img src='{_thumbnail(images[s['row']])}' alt='#{s['index']}'><figcaption>#{s['index']}<br>"
        f"given <b>{html.escape(names[s['given']])}</b><br>model says {html.escape(names[s['suggested']])}"
        f"</figcaption></figure>" for s in suspects[:THUMBNAILS])
    rows = "".join(f"<tr><td>{html.escape(names[c])}</td><td>{n}</td></tr>"
                   for c, n in enumerate(summary["issues_per_given_class"]))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Label audit</title>
<style>body{{font-family:sans-serif;margin:1em}}figure{{display:inline-block;margin:4px;font-size:11px;width:110px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head><body>
<h2>Label audit (confident learning)</h2>
<p>{summary['issues']} of {summary['audited']} audited training examples ({summary['issue_fraction']:.2%}) look
mislabelled; out-of-fold accuracy of the audit model {summary['oof_accuracy']:.3f}.</p>
<table><tr><th>given class</th><th>suspects</th></tr>{rows}</table>
<h3>Most suspicious</h3>{cells}</body></html>"""


def label_audit(dataset_dir: str, output_dir: str, max_examples: int = settings.VALIDATE.label_audit_examples,
                folds: int = 3, seed: int = settings.TRAIN.seed, cleaned_output: str | None = None) -> dict:
    """Audit the train split's labels; write label_issues.json and report.html. Returns the summary."""
    from cleanlab.filter import find_label_issues

    if folds < 2:
        raise UserError(f"folds={folds}: need at least 2 for out-of-fold predictions")
    if max_examples < 0:
        raise UserError(f"max_examples={max_examples}: must be >= 0 (0: all)")
    for path in filter(None, (output_dir, cleaned_output)):
        storage.check_new_output(path)  # before the audit's work, and before writing anything
    images, labels = datasets.load_split(dataset_dir, "train")
    rows = np.arange(len(labels))
    if 0 < max_examples < len(labels):
        rows = np.sort(np.random.default_rng(seed).choice(len(labels), max_examples, replace=False))
    x, y = images[rows], labels[rows].astype(np.int64)
    counts = np.bincount(y, minlength=settings.NUM_CLASSES)
    if counts.min() < folds:
        raise UserError(f"{dataset_dir}: class {int(counts.argmin())} has {int(counts.min())} audited examples, "
                        f"need at least folds={folds}")
    probs = out_of_fold_probabilities(x, y, folds, seed)
    ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    suspects = [{"index": int(rows[i]), "row": int(i), "given": int(y[i]), "suggested": int(probs[i].argmax()),
                 "self_confidence": float(probs[i, y[i]])} for i in ranked]
    summary = {
        "audited": int(len(y)), "issues": len(suspects), "issue_fraction": len(suspects) / len(y),
        "oof_accuracy": float((probs.argmax(axis=1) == y).mean()),
        "issues_per_given_class": np.bincount([s["given"] for s in suspects],
                                              minlength=settings.NUM_CLASSES).astype(int).tolist(),
        "method": f"cleanlab.filter.find_label_issues on {folds}-fold PCA({PCA_COMPONENTS})+logistic regression",
    }
    public = [{k: v for k, v in s.items() if k != "row"} for s in suspects]
    with storage.atomic_directory(output_dir) as tmp:
        (tmp / "label_issues.json").write_text(json.dumps({**summary, "suspects": public}, indent=2))
        (tmp / "report.html").write_text(render_report(summary, suspects, x))
    if cleaned_output:
        meta = datasets.read_metadata(dataset_dir)
        drop = np.zeros(len(labels), dtype=bool)
        drop[[s["index"] for s in suspects]] = True
        splits = {s: (images[~drop], labels[~drop]) if s == "train" else datasets.load_split(dataset_dir, s)
                  for s in meta["splits"]}
        kept = {k: meta[k] for k in ("source", "seed", "eval_fraction") if k in meta}
        datasets.write_dataset(cleaned_output, splits, kept | {"label_audit_dropped": int(drop.sum())})
        summary["dropped"] = int(drop.sum())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-label-audit", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--output", required=True, help="directory for label_issues.json and report.html")
    parser.add_argument("--max-examples", type=int, default=settings.VALIDATE.label_audit_examples,
                        help="audit a seeded subset of train (0: all)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=settings.TRAIN.seed)
    parser.add_argument("--cleaned-output", help="also write the dataset without the suspects here")
    args = parser.parse_args(argv)
    s = label_audit(args.dataset, args.output, args.max_examples, args.folds, args.seed, args.cleaned_output)
    print(f"{s['issues']} of {s['audited']} audited examples look mislabelled ({s['issue_fraction']:.2%}); "
          f"report in {args.output}/report.html")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
