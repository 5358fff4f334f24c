"""Validate: statistics, a schema, anomaly and drift checks over a Dataset, like TFX's
StatisticsGen + SchemaGen (or ImportSchemaGen) + ExampleValidator.

Writes to the output directory:
    statistics.json  per split: count, pixel mean/std/min/max, label counts and shares
    schema.json      image shape, dtype, pixel range, label set, required splits
                     (inferred from the train split, or the imported --schema)
    anomalies.json   a list of {"split", "kind", "detail"}
    report.html      all of the above, self-contained (renders in the KFP UI)
Anomalies (shape, dtype, value range, unseen label, empty split, severe class
imbalance, drift between train and the other splits, and drift against an
earlier run's statistics.json when one is given) stop the pipeline with a
one-line error naming the first anomaly.
"""

from __future__ import annotations

import argparse
import html
import json
import math
from pathlib import Path

import numpy as np

from imgclf import datasets, settings, storage
from imgclf.errors import UserError, run_cli

SCHEMA_VERSION = 1


def split_statistics(images: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes) if len(labels) else np.zeros(num_classes)
    pixels = images.astype(np.float64)
    return {
        "count": int(len(labels)),
        "shape": list(images.shape[1:]),
        "dtype": str(images.dtype),
        "pixel_mean": float(pixels.mean()) if images.size else 0.0,
        "pixel_std": float(pixels.std()) if images.size else 0.0,
        "pixel_min": int(images.min()) if images.size else 0,
        "pixel_max": int(images.max()) if images.size else 0,
        "label_counts": [int(c) for c in counts],
        "label_shares": [float(c) / max(len(labels), 1) for c in counts],
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


def drift(base: dict, other: dict, base_name: str, cfg=settings.VALIDATE) -> list[tuple[str, str]]:
    """(kind, detail) for each drift check `other` fails against `base` (two split statistics)."""
    found = []
    shares = [np.asarray(s["label_shares"], dtype=float) for s in (base, other)]
    width = max(len(x) for x in shares)
    a, b = (np.pad(x, (0, width - len(x))) for x in shares)
    linf = float(np.max(np.abs(a - b)))
    if linf > cfg.max_label_linf:
        found.append(("label_drift", f"label distribution L-inf distance to {base_name} {linf:.3f} > {cfg.max_label_linf}"))
    shift = abs(base["pixel_mean"] - other["pixel_mean"])
    if shift > cfg.max_pixel_mean_shift:
        found.append(("pixel_drift", f"mean pixel shift vs {base_name} {shift:.2f} > {cfg.max_pixel_mean_shift}"))
    return found


def find_anomalies(stats: dict, schema: dict, cfg=settings.VALIDATE, reference: dict | None = None) -> list[dict]:
    """Compare statistics with the schema, between splits (drift vs train) and, when given, with a
    reference run's statistics (drift of each split vs the same split then); returns the anomalies."""
    found = []

    def add(split, kind, detail):
        found.append({"split": split, "kind": kind, "detail": detail})

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
        floor = cfg.min_class_share_ratio / len(labels)
        rare = [c for c in labels if c < len(s["label_shares"]) and s["label_shares"][c] < floor]
        if rare:
            add(split, "class_imbalance", f"classes {rare} hold under {floor:.3%} of examples each")
    train = stats.get("train")
    if train and train["count"]:
        for split in (k for k in stats if k != "train" and stats[k]["count"]):
            for kind, detail in drift(train, stats[split], "train", cfg):
                add(split, kind, detail)
    for split, ref in (reference or {}).items():
        if split in stats and stats[split]["count"] and ref.get("count"):
            for kind, detail in drift(ref, stats[split], f"the reference's {split}", cfg):
                add(split, f"{kind}_vs_reference", detail)
    return found


def render_report(stats: dict, schema: dict, anomalies: list[dict]) -> str:
    """A self-contained HTML page (no external assets) with statistics, schema and anomalies."""
    names = settings.CLASS_NAMES
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{s['count']}</td><td>{s['pixel_mean']:.2f}</td><td>{s['pixel_std']:.2f}</td>"
        f"<td>{s['pixel_min']}..{s['pixel_max']}</td></tr>" for k, s in stats.items())
    label_rows = "".join(
        f"<tr><td>{html.escape(names[c] if c < len(names) else str(c))}</td>"
        + "".join(f"<td>{s['label_shares'][c]:.3f}</td>" for s in stats.values()) + "</tr>"
        for c in range(len(next(iter(stats.values()))["label_shares"])))
    anomaly_rows = "".join(f"<tr><td>{html.escape(a['split'])}</td><td>{html.escape(a['kind'])}</td>"
                           f"<td>{html.escape(a['detail'])}</td></tr>" for a in anomalies)
    verdict = (f"<p style='color:#b00'><b>{len(anomalies)} anomalies</b></p>" if anomalies
               else "<p style='color:#070'><b>No anomalies</b></p>")
    split_heads = "".join(f"<th>{html.escape(k)}</th>" for k in stats)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Data validation</title>
<style>body{{font-family:sans-serif;margin:1em}}table{{border-collapse:collapse;margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h2>Data validation</h2>{verdict}
<h3>Statistics</h3><table><tr><th>split</th><th>count</th><th>pixel mean</th><th>pixel std</th><th>range</th></tr>{rows}</table>
<h3>Label shares</h3><table><tr><th>class</th>{split_heads}</tr>{label_rows}</table>
<h3>Anomalies</h3><table><tr><th>split</th><th>kind</th><th>detail</th></tr>{anomaly_rows}</table>
<h3>Schema</h3><pre>{html.escape(json.dumps(schema, indent=2))}</pre></body></html>"""


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


def load_reference(path: str) -> dict:
    """A statistics.json written by an earlier validate run (local, gs:// or s3://)."""
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
    return ref


def validate(dataset_dir: str, output_dir: str, schema_path: str | None = None, fail_on_anomalies: bool = True,
             reference_statistics: str | None = None) -> dict:
    """Compute statistics, infer or import the schema, check anomalies; write the four outputs.

    reference_statistics: an earlier run's statistics.json; each split is also checked for
    drift against the same split there (label shares, mean pixel), like TFX's drift comparator.

    Raises UserError naming the first anomaly when fail_on_anomalies and any are found
    (the outputs are written first, so the report is there to read).
    """
    storage.check_new_output(output_dir)
    meta = datasets.read_metadata(dataset_dir)
    num_classes = int(meta["num_classes"])
    loaded = {split: datasets.load_split(dataset_dir, split) for split in meta["splits"]}
    # One label-count length for every split, so an out-of-range label in one split is reported
    # as an unseen label rather than breaking the comparison between splits.
    width = max([num_classes] + [int(labels.max(initial=0)) + 1 for _, labels in loaded.values()])
    stats = {split: split_statistics(images, labels, width) for split, (images, labels) in loaded.items()}
    schema = load_schema(schema_path) if schema_path else infer_schema(stats.get("train") or next(iter(stats.values())),
                                                                       num_classes)
    reference = load_reference(reference_statistics) if reference_statistics else None
    if reference is not None and not set(reference) & set(stats):
        raise UserError(f"{reference_statistics}: no split in common with {dataset_dir} "
                        f"({', '.join(sorted(reference))} vs {', '.join(sorted(stats))})")
    anomalies = find_anomalies(stats, schema, reference=reference)
    out = Path(output_dir)
    with storage.atomic_directory(out) as tmp:
        (tmp / "statistics.json").write_text(json.dumps(stats, indent=2))
        (tmp / "schema.json").write_text(json.dumps(schema, indent=2))
        (tmp / "anomalies.json").write_text(json.dumps(anomalies, indent=2))
        (tmp / "report.html").write_text(render_report(stats, schema, anomalies))
    if anomalies and fail_on_anomalies:
        first = anomalies[0]
        more = f" (and {len(anomalies) - 1} more, see {out / 'anomalies.json'})" if len(anomalies) > 1 else ""
        raise UserError(f"{dataset_dir}: data anomaly in split '{first['split']}': {first['kind']}: "
                        f"{first['detail']}{more}")
    return {"statistics": stats, "schema": schema, "anomalies": anomalies}


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
