"""Validate: statistics, a schema, anomaly and drift checks over a Dataset, like TFX's
StatisticsGen + SchemaGen (or ImportSchemaGen) + ExampleValidator.

Writes to the output directory:
    statistics.json  per split: count, pixel mean/std/min/max, label counts and shares, and a
                     distribution profile (imgclf.data.drift: pixel histogram, mean images per class,
                     row/column ink profiles, histograms of per-image brightness/contrast/edges)
    schema.json      image shape, dtype, pixel range, label set, required splits
                     (inferred from the train split, or the imported --schema)
    drift.json       every drift distance: [{"split", "against", "check", "value", "threshold", "drifted"}]
    anomalies.json   a list of {"split", "kind", "detail"} (drift anomalies also carry "check")
    report.html      all of the above with pictures, self-contained (renders in the KFP UI)
Anomalies (shape, dtype, value range, unseen label, empty split, a class missing
from a split, severe class imbalance, drift between train and the other splits,
and drift against an earlier run's statistics.json when one is given) stop the
pipeline with a one-line error naming the first anomaly.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from imgclf import settings
from imgclf.data import datasets, drift, storage
from imgclf.errors import UserError, run_cli

SCHEMA_VERSION = 1


def split_statistics(images: np.ndarray, labels: np.ndarray, num_classes: int, profile: dict | None = None) -> dict:
    """Count, shape, dtype, pixel moments and label shares of one split (+ its drift profile when given)."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes) if len(labels) else np.zeros(num_classes)
    if profile is not None and images.size:  # exact moments from the profile's 256-bin pixel histogram
        hist = np.asarray(profile["pixel_histogram"], dtype=np.float64)
        values = np.arange(256, dtype=np.float64)
        mean = float(hist @ values / images.size)
        std = math.sqrt(max(float(hist @ (values - mean) ** 2 / images.size), 0.0))
        lo, hi = int(np.flatnonzero(hist)[0]), int(np.flatnonzero(hist)[-1])
    else:
        pixels = images.astype(np.float64)
        mean, std = (float(pixels.mean()), float(pixels.std())) if images.size else (0.0, 0.0)
        lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
    return {
        "count": int(len(labels)),
        "shape": list(images.shape[1:]),
        "dtype": str(images.dtype),
        "pixel_mean": mean,
        "pixel_std": std,
        "pixel_min": lo,
        "pixel_max": hi,
        "label_counts": [int(c) for c in counts],
        "label_shares": [float(c) / max(len(labels), 1) for c in counts],
        **({"profile": profile} if profile is not None else {}),
    }


def infer_schema(train_stats: dict, num_classes: int) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "image_shape": train_stats["shape"],
        "dtype": train_stats["dtype"],
        "pixel_range": [0, 255],
        "labels": list(range(num_classes)),
        "required_splits": list(settings.SPLITS),
    }


def drift_table(stats: dict, cfg=settings.VALIDATE, reference: dict | None = None) -> list[dict]:
    """Every drift distance: each non-empty split vs train, and each split vs the reference's same split."""
    rows = []
    train = stats.get("train")
    if train and train["count"]:
        for split in (k for k in stats if k != "train" and stats[k]["count"]):
            rows += [{"split": split, "against": "train", **r} for r in drift.drift_rows(train, stats[split], cfg)]
    for split, ref in (reference or {}).items():
        if split in stats and stats[split]["count"] and ref.get("count"):
            rows += [{"split": split, "against": f"reference {split}", **r}
                     for r in drift.drift_rows(ref, stats[split], cfg)]
    return rows


def find_anomalies(stats: dict, schema: dict, cfg=settings.VALIDATE, reference: dict | None = None,
                   drift_rows: list[dict] | None = None) -> list[dict]:
    """Compare statistics with the schema, between splits (drift vs train) and, when given, with a
    reference run's statistics (drift of each split vs the same split then); returns the anomalies."""
    found = []

    def add(split, kind, detail, **extra):
        found.append({"split": split, "kind": kind, "detail": detail, **extra})

    for split in schema["required_splits"]:
        if split not in stats:
            add(split, "missing_split", "split is missing from the dataset")
    labels = schema["labels"]
    for split, s in stats.items():
        if s["count"] == 0:
            add(split, "empty_split", "split has no examples")
            continue
        if s["shape"] != schema["image_shape"]:
            add(split, "shape", f"images are {s['shape']}, schema says {schema['image_shape']}")
        if s["dtype"] != schema["dtype"]:
            add(split, "dtype", f"dtype {s['dtype']}, schema says {schema['dtype']}")
        lo, hi = schema["pixel_range"]
        if s["pixel_min"] < lo or s["pixel_max"] > hi:
            add(split, "value_range", f"pixels span {s['pixel_min']}..{s['pixel_max']}, schema allows {lo}..{hi}")
        unseen = [c for c, n in enumerate(s["label_counts"]) if n and c not in labels]
        if unseen:
            add(split, "unseen_label", f"labels {unseen} are not in the schema's label set")
        missing = [c for c in labels if c >= len(s["label_counts"]) or s["label_counts"][c] == 0]
        for c in missing:
            add(split, "missing_class", f"{split}.npz field 'labels': class {c} ({_class_name(c)}) has no examples")
        floor = cfg.min_class_share_ratio / len(labels)
        rare = [c for c in labels if c not in missing and c < len(s["label_shares"]) and s["label_shares"][c] < floor]
        if rare:
            add(split, "class_imbalance", f"classes {rare} hold under {floor:.3%} of examples each")
    for row in drift_table(stats, cfg, reference) if drift_rows is None else drift_rows:
        if row["drifted"]:
            what, unit = drift.CHECKS[row["check"]]
            kind = "drift" if row["against"] == "train" else "drift_vs_reference"
            add(row["split"], kind, f"{row['check']} vs {row['against']}: {what} {row['value']:.4g} {unit} "
                f"> threshold {row['threshold']:.4g}", check=row["check"])
    return found


def _class_name(c: int) -> str:
    return settings.CLASS_NAMES[c] if 0 <= c < len(settings.CLASS_NAMES) else str(c)


def load_schema(path: str) -> dict:
    try:
        schema = json.loads(storage.read_bytes(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise UserError(f"{path}: schema must be a JSON object")
    missing = [k for k in ("image_shape", "dtype", "pixel_range", "labels", "required_splits") if k not in schema]
    if missing:
        raise UserError(f"{path}: schema lacks field(s) {', '.join(missing)}")
    checks = {"image_shape": lambda v: isinstance(v, list) and all(isinstance(d, int) for d in v),
              "dtype": lambda v: isinstance(v, str),
              "pixel_range": lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(d, int) for d in v),
              "labels": lambda v: isinstance(v, list) and bool(v) and all(isinstance(d, int) for d in v),
              "required_splits": lambda v: isinstance(v, list) and all(isinstance(d, str) for d in v)}
    for key, ok in checks.items():
        if not ok(schema[key]):
            raise UserError(f"{path}: schema field '{key}' has an invalid value {schema[key]!r}")
    return schema


def load_reference(path: str, shape: list[int] | None = None, num_classes: int | None = None,
                   splits: list[str] | None = None) -> dict:
    """A statistics.json written by an earlier validate run (local, gs:// or s3://).

    With shape / num_classes (this dataset's), a reference from data of another image shape or
    another class count is refused in one line naming the field."""
    try:
        ref = json.loads(storage.read_bytes(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON ({exc})") from None
    def finite(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def well_formed(v) -> bool:
        return (isinstance(v, dict) and isinstance(v.get("count"), int) and finite(v.get("pixel_mean"))
                and isinstance(v.get("label_shares"), list) and all(finite(x) for x in v["label_shares"]))

    bad = [k for k, v in (ref.items() if isinstance(ref, dict) else [("(root)", None)]) if not well_formed(v)]
    if bad or not ref:
        raise UserError(f"{path}: not a statistics.json from imgclf-validate (bad entry {(bad or ['(empty)'])[0]!r})")
    if splits is not None and not set(ref) & set(splits):
        raise UserError(f"{path}: no split in common with the dataset ({', '.join(sorted(ref))} vs "
                        f"{', '.join(sorted(splits))})")
    for split, v in ref.items():
        if shape is not None and "shape" in v and list(v["shape"]) != list(shape):
            raise UserError(f"{path}: field '{split}.shape' is {v['shape']}, but this dataset's images are {list(shape)} "
                            "(a reference from another kind of data)")
        if num_classes is not None and len(v["label_shares"]) != num_classes:
            raise UserError(f"{path}: field '{split}.label_shares' has {len(v['label_shares'])} classes, but this "
                            f"dataset has {num_classes} (a reference from another kind of data)")
        if "profile" in v and shape is not None and not _profile_ok(v["profile"], shape, len(v["label_shares"])):
            raise UserError(f"{path}: field '{split}.profile' is malformed or for images of another shape than "
                            f"{list(shape)}")
    return ref


def _profile_ok(prof, shape: list[int], n_classes: int) -> bool:
    """Whether a reference's drift profile has the layout drift.profile writes, for images of `shape`."""
    pixels = math.prod(shape)
    try:
        return (len(prof["pixel_histogram"]) == 256 and len(prof["mean_image"]) == pixels
                and len(prof["class_mean_images"]) == n_classes
                and all(m is None or len(m) == pixels for m in prof["class_mean_images"])
                and len(prof["row_mass"]) == shape[0] and len(prof["col_mass"]) == shape[-1]
                and all(len(prof["image_stats"][k]["counts"]) == bins and len(prof["image_stats"][k]["range"]) == 2
                        for k, (_, _, bins) in drift.STAT_BINS.items()))
    except (KeyError, TypeError, IndexError):
        return False


def validate(dataset_dir: str, output_dir: str, schema_path: str | None = None, fail_on_anomalies: bool = True,
             reference_statistics: str | None = None) -> dict:
    """Compute statistics, infer or import the schema, check anomalies and drift; write the five outputs.

    reference_statistics: an earlier run's statistics.json; each split is also checked for
    drift against the same split there (every check of imgclf.data.drift), like TFX's drift comparator.

    Raises UserError naming the first anomaly when fail_on_anomalies and any are found
    (the outputs are written first, so the report is there to read).
    """
    storage.check_new_output(output_dir)
    meta = datasets.read_metadata(dataset_dir)
    num_classes = int(meta["num_classes"])
    order = [s for s in settings.SPLITS if s in meta["splits"]] + [s for s in meta["splits"] if s not in settings.SPLITS]
    loaded = {split: datasets.load_split(dataset_dir, split) for split in order}
    # One label-count length for every split, so an out-of-range label in one split is reported
    # as an unseen label rather than breaking the comparison between splits.
    width = max([num_classes] + [int(labels.max(initial=0)) + 1 for _, labels in loaded.values()])
    schema = load_schema(schema_path) if schema_path else None
    shape = list(meta.get("image_shape") or [settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH])
    reference = (load_reference(reference_statistics, shape, num_classes, list(meta["splits"]))
                 if reference_statistics else None)
    stats = {split: split_statistics(images, labels, width, drift.profile(images, labels, width)
                                     if images.ndim == 3 and len(labels) and images.dtype == np.uint8 else None)
             for split, (images, labels) in loaded.items()}
    schema = schema or infer_schema(stats.get("train") or next(iter(stats.values())), num_classes)
    rows = drift_table(stats, reference=reference)
    anomalies = find_anomalies(stats, schema, reference=reference, drift_rows=rows)
    from imgclf.reports.validate_report import render_report

    page = render_report(stats, schema, anomalies, rows)
    out = Path(output_dir)
    with storage.atomic_directory(out) as tmp:
        (tmp / "statistics.json").write_text(json.dumps(stats, indent=1))
        (tmp / "schema.json").write_text(json.dumps(schema, indent=2))
        (tmp / "drift.json").write_text(json.dumps(rows, indent=2))
        (tmp / "anomalies.json").write_text(json.dumps(anomalies, indent=2))
        (tmp / "report.html").write_text(page)
    if anomalies and fail_on_anomalies:
        first = anomalies[0]
        more = f" (and {len(anomalies) - 1} more, see {out / 'anomalies.json'})" if len(anomalies) > 1 else ""
        raise UserError(f"{dataset_dir}: data anomaly in split '{first['split']}': {first['kind']}: "
                        f"{first['detail']}{more}")
    return {"statistics": stats, "schema": schema, "anomalies": anomalies, "drift": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imgclf-validate", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="dataset directory written by imgclf-ingest")
    parser.add_argument("--output", required=True, help="directory for statistics/schema/anomalies/report")
    parser.add_argument("--schema", help="import this schema.json instead of inferring one (local, gs:// or s3://)")
    parser.add_argument("--reference-statistics",
                        help="statistics.json of an earlier run: also check each split for drift against it")
    parser.add_argument("--no-fail", action="store_true", help="report anomalies but exit 0")
    args = parser.parse_args(argv)
    result = validate(args.dataset, args.output, args.schema, fail_on_anomalies=not args.no_fail,
                      reference_statistics=args.reference_statistics)
    print(f"validated {args.dataset}: {len(result['anomalies'])} anomalies; report in {args.output}/report.html")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
