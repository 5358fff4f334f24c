"""The evaluation report (one self-contained HTML page) and the model card (Markdown).

Report: blessing and its reasons, headline metrics next to the pushed model's on the same test
split, a reliability diagram with the ECE, accuracy per class / brightness band / contrast band
(both models), the worst confusions with thumbnails of their most confident mistakes, and the
confusion matrix.
"""

from __future__ import annotations

import numpy as np

from imgclf import settings
from imgclf.data import drift
from imgclf.reports.html import esc, figure_png, page, pyplot, table, thumbnail


def _name(c: int) -> str:
    return settings.CLASS_NAMES[c] if c < len(settings.CLASS_NAMES) else str(c)


def _fmt(v, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def reliability_chart(candidate: dict, baseline: dict | None) -> str:
    plt = pyplot()
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
    ax.plot([0, 1], [0, 1], color="#999", ls="--", lw=1, label="perfect calibration")
    for label, analysis, color in (("this model", candidate, "#1f77b4"), ("pushed model", baseline, "#ff7f0e")):
        if not analysis:
            continue
        bins = [b for b in analysis["calibration"]["bins"] if b["count"]]
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", ms=4, color=color,
                label=f"{label} (ECE {analysis['calibration']['ece']:.4f})")
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability diagram")
    ax.legend(fontsize=8, loc="upper left")
    bins = candidate["calibration"]["bins"]
    hx.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["count"] for b in bins], width=1 / len(bins) * 0.9,
           color="#1f77b4")
    hx.set_yscale("log")
    hx.set_xlabel("confidence")
    hx.set_ylabel("test images (log)")
    hx.set_title("Confidence histogram (this model)")
    fig.tight_layout()
    return figure_png(fig)


def slice_chart(candidate: dict, baseline: dict | None) -> str:
    plt = pyplot()
    kinds = ("class", "brightness", "contrast")
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    for ax, kind in zip(axes, kinds):
        rows = candidate["slices"][kind]
        xs = np.arange(len(rows))
        ax.bar(xs - 0.2, [r["accuracy"] or 0 for r in rows], 0.4, label="this model", color="#1f77b4")
        if baseline:
            ax.bar(xs + 0.2, [r["accuracy"] or 0 for r in baseline["slices"][kind]], 0.4, label="pushed model",
                   color="#ff7f0e")
        ax.set_xticks(xs, [r["slice"].replace(" mean grey level", "").replace(" std grey levels", "") for r in rows],
                      rotation=35 if kind == "class" else 0, ha="right" if kind == "class" else "center", fontsize=8)
        ax.set_ylim(max(0.0, min((r["accuracy"] or 0) for r in rows) - 0.15), 1.0)
        ax.set_title(f"Accuracy per {kind}" + (" band" if kind != "class" else ""))
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    return figure_png(fig)


def confusion_table(matrix: list[list[int]]) -> str:
    m = np.asarray(matrix)
    top = max(int(m.max()), 1)
    rows = []
    for t in range(len(m)):
        cells = [_name(t)]
        for p in range(len(m)):
            v = int(m[t, p])
            shade = int(255 - 180 * v / top) if t == p else int(255 - 200 * min(1.0, v / max(top * 0.1, 1)))
            color = f"rgb({shade},{shade},255)" if t == p else f"rgb(255,{shade},{shade})"
            cells.append(("html", f"<span style='display:block;background:{color}'>{v}</span>"))
        rows.append(cells)
    return table(["true \\ predicted"] + [_name(c) for c in range(len(m))], rows)


def render_report(metrics: dict, analysis: dict, blessing: dict, images: np.ndarray,
                  baseline_analysis: dict | None, baseline_metrics: dict | None) -> str:
    verdict = ("<p class='ok'><b>Blessed</b>: " if blessing["blessed"] else "<p class='bad'>Not blessed: ") + \
        esc("; ".join(blessing["reasons"])) + "</p>"
    b = blessing.get("baseline") or {}
    pushed = f"pushed version {b['version']}" if b.get("version") is not None else "pushed model"
    head = ["metric", "this model"] + ([pushed, "change"] if baseline_metrics else [])

    def row(name, ours, theirs, digits=4):
        cells = [name, _fmt(ours, digits)]
        if baseline_metrics:
            cells += [_fmt(theirs, digits), _fmt(None if theirs is None or ours is None else ours - theirs, digits)]
        return cells

    bm, ba = baseline_metrics or {}, baseline_analysis or {}
    headline = [row("accuracy", metrics["accuracy"], bm.get("accuracy")),
                row("loss (cross-entropy)", metrics["loss"], bm.get("loss")),
                row("expected calibration error", analysis["calibration"]["ece"],
                    (ba.get("calibration") or {}).get("ece")),
                row("mean confidence", analysis["calibration"]["mean_confidence"],
                    (ba.get("calibration") or {}).get("mean_confidence"))]
    if baseline_metrics and "disagreement" in bm:
        headline.append(["predictions that differ", f"{bm['disagreement']:.2%}", "", ""])
    comparison = ("" if baseline_metrics else
                  "<p class='muted'>No pushed model to compare with" +
                  (f" (version {b['version']} could not be loaded: {esc(b.get('error'))})" if b.get("error") else "")
                  + ".</p>")
    slice_tables = ""
    for kind in ("class", "brightness", "contrast"):
        rows = [[r["slice"], r["count"], _fmt(r["accuracy"])] + ([_fmt(ba["slices"][kind][i]["accuracy"])]
                                                                 if baseline_analysis else [])
                for i, r in enumerate(analysis["slices"][kind])]
        slice_tables += (f"<div style='display:inline-block;vertical-align:top;margin-right:1em'><b>{kind}</b>"
                         + table(["slice", "images", "accuracy"] + (["pushed"] if baseline_analysis else []), rows)
                         + "</div>")
    confusions = ""
    for c in analysis["worst_confusions"]:
        figs = "".join(f"<figure><img src='{thumbnail(images[r], 2)}' alt='test #{r}'><figcaption>test #{r}<br>"
                       f"P({esc(_name(c['predicted']))}) {p:.2f}</figcaption></figure>"
                       for r, p in zip(c["rows"], c["confidences"]))
        confusions += (f"<p><b>{esc(_name(c['true']))}</b> predicted as <b>{esc(_name(c['predicted']))}</b>: "
                       f"{c['count']} images ({c['share_of_class']:.1%} of the class); most confident mistakes:</p>"
                       f"{figs}")
    body = (f"<h2>Evaluation on the test split ({metrics['examples']} images)</h2>{verdict}"
            + table(head, headline) + comparison
            + f"<h3>Calibration</h3>{reliability_chart(analysis, baseline_analysis)}"
            + "<p class='muted'>ECE: the test images are put in 15 equal-width bins of the top-class probability; "
              "ECE is the image-weighted mean gap between each bin's accuracy and its mean confidence.</p>"
            + f"<h3>Slices</h3>{slice_chart(analysis, baseline_analysis)}{slice_tables}"
            + f"<h3>Worst confusions</h3>{confusions}"
            + f"<h3>Confusion matrix</h3>{confusion_table(metrics['confusion_matrix'])}")
    return page("Evaluation", body)


def model_card(*, model_name: str, metrics: dict, analysis: dict, blessing: dict, dataset_meta: dict,
               hyperparameters: dict, baseline_metrics: dict | None) -> str:
    """The model card (Markdown) stored beside blessing.json and copied into each pushed version."""
    lines = [f"# Model card: {model_name}", "",
             f"Seed CNN classifier for {dataset_meta.get('num_classes', settings.NUM_CLASSES)} classes of "
             f"{'x'.join(map(str, dataset_meta.get('image_shape', [])))} grey images, trained and evaluated by imgclf. "
             f"SavedModel sha256 `{blessing['model_sha256']}`. Blessed: **{blessing['blessed']}** "
             f"({'; '.join(blessing['reasons'])}).", "",
             "## Data", "", "| split | images | sha256 (images then labels) |", "| --- | --- | --- |"]
    for split, s in dataset_meta.get("splits", {}).items():
        lines.append(f"| {split} | {s['count']} | `{s['sha256']}` |")
    src = dataset_meta.get("source") or {}
    if src:
        lines += ["", f"Source: `{src.get('uri', src)}`; seed {dataset_meta.get('seed')}, eval fraction "
                      f"{dataset_meta.get('eval_fraction')}."]
    lines += ["", "## Hyperparameters", "", "| name | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in hyperparameters.items()]
    cal = analysis["calibration"]
    bm = baseline_metrics or {}
    lines += ["", "## Metrics (test split)", "", "| metric | this model | pushed model |", "| --- | --- | --- |",
              f"| accuracy | {metrics['accuracy']:.4f} | {_fmt(bm.get('accuracy'))} |",
              f"| loss | {metrics['loss']:.4f} | {_fmt(bm.get('loss'))} |",
              f"| expected calibration error (15 bins) | {cal['ece']:.4f} | {_fmt(bm.get('ece'))} |",
              f"| mean confidence | {cal['mean_confidence']:.4f} | {_fmt(bm.get('mean_confidence'))} |"]
    lines += ["", "## Slices (accuracy)", ""]
    for kind in ("class", "brightness", "contrast"):
        lines += [f"| {kind} | images | accuracy |", "| --- | --- | --- |"]
        lines += [f"| {r['slice']} | {r['count']} | {_fmt(r['accuracy'])} |" for r in analysis["slices"][kind]]
        lines.append("")
    lines += ["## Worst confusions", ""]
    lines += [f"- {_name(c['true'])} predicted as {_name(c['predicted'])}: {c['count']} images "
              f"({c['share_of_class']:.1%} of the class)" for c in analysis["worst_confusions"]]
    v, e = settings.VALIDATE, settings.EVALUATE
    lines += ["", "## Thresholds used", "",
              f"- Blessing: accuracy >= {blessing['accuracy_threshold']} and not worse than the pushed model by more "
              f"than {blessing['change_tolerance']}.",
              "- Data validation (drift vs train, imgclf.data.drift): "
              + ", ".join(f"{k} <= {getattr(v, 'max_' + k)}" for k in drift.CHECKS)
              + f" (for effective size {v.drift_calibration_size}; scaled by sqrt({v.drift_calibration_size} / "
                f"effective size) within {v.drift_min_scale}x..{v.drift_max_scale}x).",
              f"- Label audit: confident cut at out-of-fold self-confidence <= {v.label_audit_max_self_confidence} "
              f"({v.label_audit_folds} folds x {v.label_audit_epochs} epochs of a {v.label_audit_hidden_units}-unit "
              f"one-hidden-layer network on the top {v.label_audit_components} principal components of the pixels).",
              f"- Slice bands: brightness edges {list(e.brightness_bands)}, contrast edges {list(e.contrast_bands)} "
              "(grey levels).", "",
              "## Known limits", "",
              "- Measured on one test split of the training source; accuracy on other cameras, crops, backgrounds "
              "or clothing styles is unknown. Validate's drift checks compare new data with the training data's "
              "statistics and stop the pipeline on drift, but they cannot see a shift that keeps every statistic.",
              "- Classes that look alike (shirt, T-shirt/top, pullover, coat) carry most errors; see the worst "
              "confusions above. Do not use the top-class probability as a calibrated risk without checking the "
              "ECE and the reliability diagram.",
              "- Input contract: 28x28 grey images, 0..255, white object on black background, as in Fashion-MNIST. "
              "Inverted, rotated or noisy images fall outside what was measured.",
              "- Labels of the training data are audited (confident learning) but not corrected by default; some "
              "training labels are wrong.", ""]
    return "\n".join(lines)
