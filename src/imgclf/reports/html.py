"""Shared pieces of the HTML reports: the page shell, tables, figures and thumbnails as data URIs."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

STYLE = """body{font-family:system-ui,sans-serif;margin:1.2em;color:#222;max-width:1200px}
h2{margin-bottom:.2em}h3{margin-top:1.4em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.4em 0 1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070}
.muted{color:#666;font-size:12px}img.fig{max-width:100%}
figure{display:inline-block;margin:4px;font-size:11px;width:118px;vertical-align:top;text-align:center}
figure img{border:1px solid #ccc}"""


def esc(value) -> str:
    return html.escape(str(value))


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def table(headers: list[str], rows: list[list], left: int = 1) -> str:
    """An HTML table; cells are escaped unless wrapped as ("html", markup). The first `left` columns align left."""

    def cell(i, v, tag):
        cls = " class='l'" if i < left else ""
        text = v[1] if isinstance(v, tuple) and v and v[0] == "html" else esc(v)
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell(i, h, "th") for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell(i, v, "td") for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_png(fig) -> str:
    """A matplotlib figure as an <img> with a base64 PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f"<img class='fig' src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def thumbnail(image: np.ndarray, scale: int = 3) -> str:
    """A grey (HxW) or RGB (HxWx3) uint8 image as a PNG data URI, enlarged by nearest neighbour."""
    from PIL import Image

    buf = io.BytesIO()
    h, w = image.shape[:2]
    Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((w * scale, h * scale), Image.NEAREST).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
