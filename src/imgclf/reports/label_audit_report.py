"""The label audit's HTML report: noise-rate estimate, the confident cut, and thumbnails of the cut
(given label, suggested label, confidence), plus a chart of the ranked self-confidences."""

from __future__ import annotations

import numpy as np

from imgclf import settings
from imgclf.reports.html import esc, figure_png, page, pyplot, table, thumbnail

THUMBNAILS = 60


def _name(c: int) -> str:
    return settings.CLASS_NAMES[c] if c < len(settings.CLASS_NAMES) else str(c)


def confidence_chart(suspects: list[dict], cut: float) -> str:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    conf = [s["self_confidence"] for s in suspects]
    ax.plot(np.arange(1, len(conf) + 1), conf, lw=1.2, color="#1f77b4", label="cleanlab suspects, ranked")
    ax.axhline(cut, color="#b00", ls="--", lw=1.2, label=f"confident cut (<= {cut})")
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1)
    ax.set_xlabel("rank")
    ax.set_ylabel("out-of-fold P(given label)")
    ax.legend(fontsize=8)
    return figure_png(fig)


def render_report(summary: dict, suspects: list[dict], images: np.ndarray) -> str:
    """suspects carry "row" (row of `images`), "index" (row in the train split) and the fields of label_issues.json."""
    in_cut = [s for s in suspects if s["in_cut"]]
    cells = "".join(
        f"<figure><img src='{thumbnail(images[s['row']], 3)}' alt='train #{s['index']}'><figcaption>train "
        f"#{s['index']}<br>given <b>{esc(_name(s['given']))}</b><br>suggested <b>{esc(_name(s['suggested']))}</b><br>"
        f"P(given) {s['self_confidence']:.3f}, P(suggested) {s['suggested_confidence']:.3f}</figcaption></figure>"
        for s in in_cut[:THUMBNAILS])
    rows = [[_name(c), n, summary["cut_per_given_class"][c]] for c, n in enumerate(summary["issues_per_given_class"])]
    body = (
        "<h2>Label audit (confident learning)</h2>"
        f"<p>Audited <b>{summary['audited']}</b> training examples. cleanlab estimates a label-noise rate of "
        f"<b>{summary['estimated_noise_rate']:.2%}</b> ({summary['estimated_issues']} examples) and lists "
        f"{summary['issues']} suspects. The <b>confident cut</b> holds the <b>{summary['cut']}</b> suspects "
        f"({summary['cut_fraction']:.2%} of audited) to which models that never saw them gave their label a "
        f"probability of at most <b>{summary['max_self_confidence']}</b>; only these are dropped by "
        f"<code>--cleaned-output</code>"
        + (f" (<b>{summary['dropped']}</b> dropped)" if "dropped" in summary else "")
        + f". Out-of-fold accuracy of the audit models: {summary['oof_accuracy']:.3f}; "
          f"{summary['seconds']} s ({summary['cpu_seconds']} s CPU).</p>"
        f"<p class='muted'>{esc(summary['method'])}</p>"
        + (confidence_chart(suspects, summary["max_self_confidence"]) if suspects else "")
        + table(["given class", "suspects", "in the cut"], rows)
        + f"<h3>The confident cut, most suspicious first ({min(len(in_cut), THUMBNAILS)} of {len(in_cut)} shown)</h3>"
        + (cells or "<p>No example is in the cut.</p>")
    )
    return page("Label audit", body)
