"""The validate step's HTML report: verdict, drift checks (value vs threshold) and pictures.

Pictures (PNG, inlined): drift distances against their thresholds, overlaid pixel-intensity
histograms per split, overlaid histograms of per-image brightness / contrast / edge density,
row and column ink profiles, and the mean image of each class per split (with the difference
to train).
"""

from __future__ import annotations

import json

import numpy as np

from imgclf import settings
from imgclf.data import drift
from imgclf.reports.html import esc, figure_png, page, pyplot, table, thumbnail

COLORS = {"train": "#1f77b4", "eval": "#ff7f0e", "test": "#2ca02c"}


def _color(split: str, i: int) -> str:
    return COLORS.get(split, f"C{i + 3}")


def _class_names(n: int) -> list[str]:
    names = settings.CLASS_NAMES
    return [names[c] if c < len(names) else str(c) for c in range(n)]


def drift_chart(rows: list[dict]) -> str:
    """Horizontal bars: each check's distance / threshold, one bar per compared pair; the line is the threshold."""
    plt = pyplot()
    checks = list(drift.CHECKS)
    pairs = list(dict.fromkeys(f"{r['split']} vs {r['against']}" for r in rows))
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(checks) * max(1, len(pairs)) ** 0.5 + 1.2))
    height = 0.8 / max(len(pairs), 1)
    for i, pair in enumerate(pairs):
        ratio = {r["check"]: r["value"] / r["threshold"] for r in rows if f"{r['split']} vs {r['against']}" == pair}
        ys = [k + i * height for k in range(len(checks))]
        vals = [max(ratio.get(c, 0.0), 1e-3) for c in checks]
        ax.barh(ys, vals, height=height, label=pair, color=_color(pair.split()[0], i), alpha=0.85)
    ax.axvline(1.0, color="#b00", lw=1.5, ls="--", label="threshold")
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(checks))], checks)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("distance / threshold (log scale; > 1 is drift)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Drift distances against their thresholds")
    return figure_png(fig)


def intensity_chart(stats: dict) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    ax = axes[0]
    for i, (split, s) in enumerate(stats.items()):
        if "profile" in s:
            h = np.asarray(s["profile"]["pixel_histogram"], dtype=float)
            ax.step(np.arange(256), h / max(h.sum(), 1), where="mid", color=_color(split, i), label=split, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("pixel value")
    ax.set_ylabel("share of pixels (log)")
    ax.set_title("Pixel intensities")
    ax.legend(fontsize=8)
    for ax, name in zip(axes[1:], drift.STAT_BINS):
        for i, (split, s) in enumerate(stats.items()):
            if "profile" not in s:
                continue
            st = s["profile"]["image_stats"][name]
            counts = np.asarray(st["counts"], dtype=float)
            lo, hi = st["range"]
            centers = lo + (np.arange(len(counts)) + 0.5) * (hi - lo) / len(counts)
            ax.step(centers, counts / max(counts.sum(), 1), where="mid", color=_color(split, i), label=split, lw=1.2)
        ax.set_title(f"Per-image {name.replace('_', ' ')}")
        ax.set_xlabel(name.replace("_", " "))
    fig.tight_layout()
    return figure_png(fig)


def mass_chart(stats: dict) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.6))
    for ax, key in zip(axes, ("row_mass", "col_mass")):
        for i, (split, s) in enumerate(stats.items()):
            if "profile" in s:
                ax.plot(s["profile"][key], color=_color(split, i), label=split, lw=1.2)
        ax.set_title("Ink per " + ("row" if key == "row_mass" else "column") + " (mean share)")
        ax.set_xlabel("row" if key == "row_mass" else "column")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def mean_images_table(stats: dict, shape: list[int]) -> str:
    """Rows: each split's per-class mean image, then |split - train| for each other split (brighter = more
    change, 0..64 grey levels). Thumbnails drawn with PIL (one table, no matplotlib axes: fast)."""
    import matplotlib

    splits = [k for k, s in stats.items() if "profile" in s]
    n_classes = max(len(stats[k]["profile"]["class_mean_images"]) for k in splits)
    train = stats.get("train", {}).get("profile")
    heat = matplotlib.colormaps["magma"]
    rows = []
    for split, kind in [(k, "mean") for k in splits] + [(k, "diff") for k in splits if k != "train" and train]:
        cells = [split if kind == "mean" else f"|{split} - train|"]
        for c in range(n_classes):
            img = stats[split]["profile"]["class_mean_images"][c]
            ref = train["class_mean_images"][c] if kind == "diff" and c < len(train["class_mean_images"]) else None
            if img is None or (kind == "diff" and ref is None):
                cells.append(("html", "<span class='bad'>none</span>"))
                continue
            if kind == "mean":
                pixels = np.clip(np.reshape(img, shape), 0, 255).astype(np.uint8)
            else:
                d = np.clip(np.abs(np.subtract(img, ref)).reshape(shape) / 64.0, 0, 1)
                pixels = (heat(d)[..., :3] * 255).astype(np.uint8)
            cells.append(("html", f"<img src='{thumbnail(pixels, 2)}' alt='{esc(split)} class {c}'>"))
        rows.append(cells)
    return table(["split"] + _class_names(n_classes), rows)


def render_report(stats: dict, schema: dict, anomalies: list[dict], drift_rows: list[dict]) -> str:
    verdict = (f"<p class='bad'>{len(anomalies)} anomalies: the pipeline stops here</p>" if anomalies
               else "<p class='ok'><b>No anomalies</b></p>")
    stat_rows = [[k, s["count"], f"{s['pixel_mean']:.2f}", f"{s['pixel_std']:.2f}", f"{s['pixel_min']}..{s['pixel_max']}"]
                 for k, s in stats.items()]
    n_classes = max(len(s["label_shares"]) for s in stats.values())
    names = _class_names(n_classes)
    label_rows = [[names[c]] + [f"{s['label_shares'][c]:.3f}" if c < len(s["label_shares"]) else "" for s in
                                stats.values()] for c in range(n_classes)]
    check_rows = [[r["split"], r["against"], r["check"], drift.CHECKS[r["check"]][0], f"{r['value']:.4g}",
                   f"{r['threshold']:.4g}", drift.CHECKS[r["check"]][1],
                   ("html", "<span class='bad'>DRIFT</span>" if r["drifted"] else "<span class='ok'>ok</span>")]
                  for r in drift_rows]
    anomaly_rows = [[a["split"], a["kind"], a["detail"]] for a in anomalies]
    shape = schema.get("image_shape") or [settings.IMAGE_HEIGHT, settings.IMAGE_WIDTH]
    has_profiles = any("profile" in s for s in stats.values())
    pictures = ""
    if has_profiles:
        pictures = (f"<h3>Distributions per split</h3>{intensity_chart(stats)}{mass_chart(stats)}"
                    f"<h3>Mean image of each class, per split</h3><p class='muted'>Last rows: absolute difference to "
                    f"train's mean image of the class (0..64 grey levels, brighter = more change).</p>"
                    f"{mean_images_table(stats, shape)}")
    body = (f"<h2>Data validation</h2>{verdict}"
            + (f"<h3>Anomalies</h3>{table(['split', 'kind', 'detail'], anomaly_rows, left=3)}" if anomalies else "")
            + "<h3>Drift checks</h3><p class='muted'>Each split against train, and against the reference run's same "
              "split when one is given. Thresholds come from settings.VALIDATE, calibrated so that two random "
              "samples of one distribution never exceed them (0 false alarms in 1,000 fresh resamples), and "
              "scale with the splits' sizes as sqrt(320 / effective size).</p>"
            + (drift_chart(drift_rows) if drift_rows else "")
            + table(["split", "against", "check", "what it measures", "value", "threshold", "unit", "status"],
                    check_rows, left=4)
            + pictures
            + f"<h3>Statistics</h3>{table(['split', 'count', 'pixel mean', 'pixel std', 'range'], stat_rows)}"
            + f"<h3>Label shares</h3>{table(['class'] + list(stats), label_rows)}"
            + f"<h3>Schema</h3><pre>{esc(json.dumps(schema, indent=2))}</pre>")
    return page("Data validation", body)
