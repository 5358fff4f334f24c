"""Label audit: find likely mislabelled training examples with confident learning (cleanlab).

Out-of-fold predicted probabilities come from a small model (imgclf.model.network.build_audit_model:
one hidden layer on each image's coordinates along the top principal components of the pixels)
fitted k times, each time on the other folds, so every example is scored by a model that never saw
its label (the components are fitted without labels). cleanlab then estimates the noise rate
(`num_label_issues`) and lists label issues (`find_label_issues`, pruned by noise rate, ranked by
self-confidence: the probability the out-of-fold model gave the example's own label). The
*confident cut* is the part of that list whose self-confidence is at most
settings.VALIDATE.label_audit_max_self_confidence; only the cut is dropped by
--cleaned-output. Audits the whole train split by default (`max_examples` > 0:
a seeded subset).

Writes to the output directory:
    label_issues.json   summary (noise rate, cut, accuracy of the audit models) + suspects
                        [{index, given, suggested, self_confidence, suggested_confidence, in_cut}]
                        (index = row in the dataset's train split), most suspicious first
    oof_probabilities.npz  the out-of-fold probabilities and the audited rows (to re-cut without retraining)
    report.html         self-contained: summary, per-class counts, thumbnails of the cut
With --cleaned-output, also writes a copy of the dataset without the cut.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from imgclf import settings
from imgclf.data import datasets, storage
from imgclf.errors import UserError, run_cli

A = settings.VALIDATE


# A confusable class for each Fashion-MNIST class (the seed CNN's usual confusions), for inject_label_flips.
CONFUSABLE = {0: 6, 1: 3, 2: 4, 3: 1, 4: 2, 5: 7, 6: 0, 7: 9, 8: 6, 9: 7}


def inject_label_flips(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """For measuring the audit: (noisy labels, sorted flipped rows). Half of the flips go to the label's
    CONFUSABLE class, half to a uniformly random other class."""
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), int(round(fraction * len(labels))), replace=False)
    noisy = labels.copy()
    half = len(flipped) // 2
    noisy[flipped[:half]] = [CONFUSABLE[int(c)] for c in labels[flipped[:half]]]
    noisy[flipped[half:]] = (labels[flipped[half:]] + rng.integers(1, settings.NUM_CLASSES, len(flipped) - half)) \
        % settings.NUM_CLASSES
    return noisy, np.sort(flipped)


# How each fold's model trains, picked by auditing all of train with 2% injected flips (README "Label
# audit"): against batch 128, 1 step per call and a constant 1e-3, these cost less CPU (16 steps per
# call: ~18% less) or found the flips better (the cosine schedule), and input dropout regularises.
BATCH_SIZE = 256
PEAK_LEARNING_RATE = 3e-3
INPUT_DROPOUT = 0.2
STEPS_PER_EXECUTION = 16
# The principal axes come from a seeded sample of this many images (the top 128 of 784 axes barely move
# with more), and the projection runs this many images at a time: no float copy of the whole split.
COMPONENTS_SAMPLE = 8192
PROJECTION_CHUNK = 8192


def principal_components(images: np.ndarray, components: int, seed: int) -> np.ndarray:
    """[N, components] float32: each image's coordinates along the top `components` principal axes of
    its pixels (scaled to 0..1), the axes fitted on a seeded sample of at most COMPONENTS_SAMPLE images."""
    pixels = images.reshape(len(images), -1)
    if not 1 <= components <= pixels.shape[1]:
        raise UserError(f"components={components}: must be in [1, {pixels.shape[1]}] (the pixels per image)")
    rng = np.random.default_rng(seed)
    sample = pixels[np.sort(rng.choice(len(pixels), min(len(pixels), COMPONENTS_SAMPLE), replace=False))]
    sample = sample.astype(np.float32) / 255.0
    mean = sample.mean(axis=0)
    sample -= mean
    _, axes = np.linalg.eigh(sample.T @ sample / len(sample))  # ascending eigenvalues
    top = np.ascontiguousarray(axes[:, ::-1][:, :components])
    out = np.empty((len(pixels), components), dtype=np.float32)
    for start in range(0, len(pixels), PROJECTION_CHUNK):
        chunk = pixels[start:start + PROJECTION_CHUNK].astype(np.float32) / 255.0
        out[start:start + PROJECTION_CHUNK] = (chunk - mean) @ top
    return out


def out_of_fold_probabilities(images: np.ndarray, labels: np.ndarray, folds: int, epochs: int, seed: int,
                              hidden_units: int = A.label_audit_hidden_units,
                              components: int = A.label_audit_components, log=None) -> np.ndarray:
    """[N, classes] probabilities; row i comes from the audit model (build_audit_model, hidden_units wide,
    on principal_components) trained `epochs` on the folds without i."""
    import keras
    from sklearn.model_selection import StratifiedKFold

    from imgclf.model.input_pipeline import EVAL_BATCH_SIZE, shuffled_batches, steps_per_epoch
    from imgclf.model.network import build_audit_model

    start = time.perf_counter()
    features = principal_components(images, components, seed)
    if log:
        log(f"label audit: {len(labels)} images on their top {components} principal components "
            f"({time.perf_counter() - start:.1f} s)")
    probs = np.zeros((len(labels), settings.NUM_CLASSES), dtype=np.float32)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for k, (fit_rows, held_rows) in enumerate(cv.split(np.zeros(len(labels)), labels)):
        start = time.perf_counter()
        keras.utils.set_random_seed(seed + k)
        steps = steps_per_epoch(len(fit_rows), BATCH_SIZE) * epochs
        model = build_audit_model(components, hidden_units, INPUT_DROPOUT, PEAK_LEARNING_RATE, steps,
                                  STEPS_PER_EXECUTION)
        model.fit(shuffled_batches(features[fit_rows], labels[fit_rows], BATCH_SIZE, seed + k), epochs=epochs,
                  shuffle=False, verbose=0)  # the batches come shuffled (seeded); Keras would only warn
        held = features[held_rows]
        step = EVAL_BATCH_SIZE  # direct calls: model.predict would retrace for every new model
        probs[held_rows] = np.concatenate([np.asarray(model(held[i:i + step], training=False))
                                           for i in range(0, len(held), step)])
        if log:
            acc = float((probs[held_rows].argmax(axis=1) == labels[held_rows]).mean())
            log(f"label audit: fold {k + 1}/{folds}: {len(fit_rows)} fitted x {epochs} epochs, "
                f"{len(held_rows)} scored, accuracy {acc:.3f} ({time.perf_counter() - start:.1f} s)")
        keras.backend.clear_session()
    return probs


def find_suspects(labels: np.ndarray, probs: np.ndarray, max_self_confidence: float) -> tuple[list[dict], dict]:
    """cleanlab's label issues, ranked by self-confidence, each marked in or out of the confident cut;
    and the noise-rate summary."""
    from cleanlab.count import num_label_issues
    from cleanlab.filter import find_label_issues

    # n_jobs=1: cleanlab's process pool costs more than it saves on 2 cores (0.45 vs 0.7 s on 48,000 rows)
    ranked = find_label_issues(labels, probs, filter_by="prune_by_noise_rate",
                               return_indices_ranked_by="self_confidence", n_jobs=1)
    estimated = int(num_label_issues(labels, probs))
    suspects = []
    for i in ranked:
        given, suggested = int(labels[i]), int(probs[i].argmax())
        confidence = float(probs[i, given])
        suspects.append({"row": int(i), "given": given, "suggested": suggested, "self_confidence": confidence,
                         "suggested_confidence": float(probs[i, suggested]),
                         "in_cut": confidence <= max_self_confidence})
    cut = sum(s["in_cut"] for s in suspects)
    return suspects, {"estimated_issues": estimated, "estimated_noise_rate": estimated / max(len(labels), 1),
                      "cut": cut, "max_self_confidence": max_self_confidence}


def label_audit(dataset_dir: str, output_dir: str, max_examples: int = A.label_audit_examples,
                folds: int = A.label_audit_folds, seed: int = settings.SEED, cleaned_output: str | None = None,
                epochs: int = A.label_audit_epochs, max_self_confidence: float = A.label_audit_max_self_confidence,
                hidden_units: int = A.label_audit_hidden_units, components: int = A.label_audit_components,
                log=None) -> dict:
    """Audit the train split's labels; write label_issues.json, oof_probabilities.npz and report.html.

    Returns the summary (with "dropped" when cleaned_output is given)."""
    if folds < 2:
        raise UserError(f"folds={folds}: need at least 2 for out-of-fold predictions")
    if epochs < 1:
        raise UserError(f"epochs={epochs}: must be >= 1")
    if hidden_units < 1:
        raise UserError(f"hidden_units={hidden_units}: must be >= 1")
    if components < 1:
        raise UserError(f"components={components}: must be >= 1")
    if max_examples < 0:
        raise UserError(f"max_examples={max_examples}: must be >= 0 (0: all)")
    if not 0.0 <= max_self_confidence < 1.0:
        raise UserError(f"max_self_confidence={max_self_confidence}: must be in [0, 1)")
    for path in filter(None, (output_dir, cleaned_output)):
        storage.check_new_output(path)  # before the audit's work, and before writing anything
    images, labels = datasets.load_split(dataset_dir, "train")
    rows = np.arange(len(labels))
    if 0 < max_examples < len(labels):
        rows = np.sort(np.random.default_rng(seed).choice(len(labels), max_examples, replace=False))
    # The whole split (the default) is audited in place: indexing it with every row would copy it.
    x = images if len(rows) == len(labels) else images[rows]
    y = labels[rows].astype(np.int64)
    counts = np.bincount(y, minlength=settings.NUM_CLASSES)
    if counts.min() < folds:
        raise UserError(f"{dataset_dir}/train.npz: field 'labels': class {int(counts.argmin())} has "
                        f"{int(counts.min())} audited examples, need at least folds={folds}")
    start, cpu = time.perf_counter(), time.process_time()
    probs = out_of_fold_probabilities(x, y, folds, epochs, seed, hidden_units, components, log)
    suspects, noise = find_suspects(y, probs, max_self_confidence)
    for s in suspects:
        s["index"] = int(rows[s["row"]])
    summary = {
        "audited": int(len(y)), "issues": len(suspects), "issue_fraction": len(suspects) / len(y), **noise,
        "cut_fraction": noise["cut"] / len(y),
        "oof_accuracy": float((probs.argmax(axis=1) == y).mean()),
        "issues_per_given_class": np.bincount([s["given"] for s in suspects],
                                              minlength=settings.NUM_CLASSES).astype(int).tolist(),
        "cut_per_given_class": np.bincount([s["given"] for s in suspects if s["in_cut"]],
                                           minlength=settings.NUM_CLASSES).astype(int).tolist(),
        "method": (f"cleanlab.filter.find_label_issues (prune_by_noise_rate, ranked by self-confidence) on "
                   f"{folds}-fold out-of-fold probabilities of a one-hidden-layer network on the top {components} "
                   f"principal components of the pixels ({hidden_units} units, {epochs} epochs per fold); "
                   f"confident cut: self-confidence <= {max_self_confidence}"),
        "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1),
    }
    public = [{k: s[k] for k in ("index", "given", "suggested", "self_confidence", "suggested_confidence", "in_cut")}
              for s in suspects]
    if cleaned_output:  # written first, so the report can say how many were dropped
        meta = datasets.read_metadata(dataset_dir)
        drop = np.zeros(len(labels), dtype=bool)
        drop[[s["index"] for s in suspects if s["in_cut"]]] = True
        splits = {s: (images[~drop], labels[~drop]) if s == "train" else datasets.load_split(dataset_dir, s)
                  for s in meta["splits"]}
        kept = {k: meta[k] for k in ("source", "seed", "eval_fraction") if k in meta}
        datasets.write_dataset(cleaned_output, splits, kept | {"label_audit_dropped": int(drop.sum())})
        summary["dropped"] = int(drop.sum())
    from imgclf.reports.label_audit_report import render_report

    page = render_report(summary, suspects, x)
    with storage.atomic_directory(output_dir) as tmp:
        (tmp / "label_issues.json").write_text(json.dumps({**summary, "suspects": public}, indent=1))
        np.savez_compressed(tmp / "oof_probabilities.npz", probabilities=probs, rows=rows, labels=y.astype(np.uint8))
        (tmp / "report.html").write_text(page)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-label-audit", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--output", required=True, help="directory for label_issues.json and report.html")
    parser.add_argument("--max-examples", type=int, default=A.label_audit_examples,
                        help="audit a seeded subset of train (0: all, the default)")
    parser.add_argument("--folds", type=int, default=A.label_audit_folds)
    parser.add_argument("--epochs", type=int, default=A.label_audit_epochs, help="training epochs per fold")
    parser.add_argument("--hidden-units", type=int, default=A.label_audit_hidden_units,
                        help="width of the audit model's hidden layer")
    parser.add_argument("--components", type=int, default=A.label_audit_components,
                        help="principal components of the pixels the audit model reads")
    parser.add_argument("--max-self-confidence", type=float, default=A.label_audit_max_self_confidence,
                        help="the confident cut: suspects whose out-of-fold probability of their label is at most this")
    parser.add_argument("--seed", type=int, default=settings.SEED)
    parser.add_argument("--cleaned-output", help="also write the dataset without the confident cut here")
    args = parser.parse_args(argv)
    s = label_audit(args.dataset, args.output, args.max_examples, args.folds, args.seed, args.cleaned_output,
                    args.epochs, args.max_self_confidence, args.hidden_units, args.components,
                    log=lambda m: print(m, file=sys.stderr, flush=True))
    dropped = f"; dropped {s['dropped']} into {args.cleaned_output}" if "dropped" in s else ""
    print(f"audited {s['audited']} examples in {s['seconds']} s: estimated noise rate {s['estimated_noise_rate']:.2%}; "
          f"{s['issues']} suspects, {s['cut']} in the confident cut (self-confidence <= {s['max_self_confidence']})"
          f"{dropped}; report in {args.output}/report.html")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
