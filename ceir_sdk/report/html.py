"""A small HTML report builder.

Reports must open from a file, offline, with no console errors: everything (CSS, PNGs) is
inlined, there is no JavaScript, and all text is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ceir_sdk.atomic import atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2433;line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{font-size:1.25rem;border-bottom:1px solid #dde;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.05rem}
.sub{color:#5a6478;margin-top:0}
table{border-collapse:collapse;margin:.6rem 0;font-size:.92rem}
th,td{border:1px solid #d5d9e2;padding:.3rem .6rem;text-align:left}th{background:#f2f4f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:.8rem 0}figure img{max-width:100%;border:1px solid #e3e6ec}
figcaption{color:#5a6478;font-size:.88rem}
.grid{display:flex;flex-wrap:wrap;gap:6px;margin:.4rem 0}
.grid div{text-align:center;font-size:.75rem;color:#5a6478;max-width:90px}
.grid img{width:64px;height:64px;image-rendering:pixelated;border:1px solid #e3e6ec;display:block;margin:auto}
.note{background:#f6f8fb;border-left:3px solid #7a8cff;padding:.5rem .8rem}
code{background:#f2f4f8;padding:0 .2rem}
"""


def png_bytes_from_array(image: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""

    def render(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = []
        for row in self.rows:
            cells = []
            for value in row:
                css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
                cells.append(f"<td{css}>{html.escape(_fmt(value))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass
class Figure:
    png: bytes
    caption: str = ""
    alt: str = ""

    def render(self) -> str:
        alt = html.escape(self.alt or self.caption or "figure")
        cap = f"<figcaption>{html.escape(self.caption)}</figcaption>" if self.caption else ""
        return f'<figure><img alt="{alt}" src="{_data_uri(self.png)}">{cap}</figure>'


@dataclass
class ImageGrid:
    images: list[np.ndarray]
    labels: list[str] = field(default_factory=list)
    title: str = ""

    def render(self) -> str:
        cells = []
        for i, image in enumerate(self.images):
            label = html.escape(self.labels[i]) if i < len(self.labels) else ""
            uri = _data_uri(png_bytes_from_array(image))
            cells.append(f'<div><img alt="{label or "image"}" src="{uri}">{label}</div>')
        title = f"<h3>{html.escape(self.title)}</h3>" if self.title else ""
        return f'{title}<div class="grid">{"".join(cells)}</div>'


@dataclass
class Section:
    title: str
    parts: list[Any] = field(default_factory=list)

    def add_text(self, text: str, note: bool = False) -> Section:
        css = ' class="note"' if note else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")
        return self

    def add(self, part: Table | Figure | ImageGrid) -> Section:
        self.parts.append(part)
        return self

    def render(self) -> str:
        inner = "".join(p if isinstance(p, str) else p.render() for p in self.parts)
        return f"<section><h2>{html.escape(self.title)}</h2>{inner}</section>"


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def section(self, title: str) -> Section:
        section = Section(title)
        self.sections.append(section)
        return section

    def render(self) -> str:
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        # The machine-readable results ride along in a non-executed JSON block; script
        # content is raw text, so only "</" needs neutralising ("<\\/" is still valid JSON).
        payload = json.dumps(self.data, sort_keys=True).replace("</", "<\\/")
        return (
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}"
            + "".join(s.render() for s in self.sections)
            + f'<script type="application/json" id="ceir-results">{payload}</script>'
            + "</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        return atomic_write_text(Path(path), self.render())
