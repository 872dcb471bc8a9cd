"""A report as a list of blocks, rendered to Markdown (PNGs beside it) and to one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;
padding:4px 8px;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:1px 4px}.note{color:#666;font-size:13px}"""


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def image(self, name: str, png: bytes, caption: str = "") -> None:
        self.images[name] = png
        self.blocks.append(("image", (name, caption)))

    def markdown(self) -> str:
        out = [f"# {self.title}\n"]
        for kind, body in self.blocks:
            if kind == "heading":
                out.append(f"{'#' * body[0]} {body[1]}\n")
            elif kind == "text":
                out.append(f"{body}\n")
            elif kind == "table":
                out.append(_md_table(body) + "\n")
            elif kind == "image":
                out.append(f"![{body[1]}]({body[0]})\n")
        return "\n".join(out)

    def html(self) -> str:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                 f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"]
        for kind, body in self.blocks:
            if kind == "heading":
                parts.append(f"<h{body[0]}>{html.escape(body[1])}</h{body[0]}>")
            elif kind == "text":
                parts.append(f"<p>{_inline(body)}</p>")
            elif kind == "table":
                parts.append(body.to_html(index=False, escape=True, border=0))
            elif kind == "image":
                data = base64.b64encode(self.images[body[0]]).decode()
                parts.append(f"<figure><img alt='{html.escape(body[1])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption class='note'>{html.escape(body[1])}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out: Path) -> None:
        """`report.md` with its PNGs beside it, and `report.html`, each file replaced atomically."""
        from ptlab.atomic import make_dir, write_file, write_text

        make_dir(out, "report folder")
        for name, png in self.images.items():
            write_file(out / name, lambda f, png=png: f.write(png))
        write_text(out / "report.md", self.markdown())
        write_text(out / "report.html", self.html())


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** (code spans first, so marks like `**` inside them stay literal)."""
    import re

    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(part)).replace("\n", "<br>"))
    return "".join(out)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("*", "\\*") for v in row) + " |")
    return "\n".join(lines)
