"""A report as a list of blocks, rendered to Markdown (PNGs beside it) and to one self-contained HTML file.

A study's report opens with what it can conclude: `findings` (one line per claim:
verdict, effect, interval, Holm-adjusted and raw p), `checks` (the design's
validity checks: pass / fail / not run), then one headline figure (`image`),
then the details (`heading`, `text`, `table`, more `image`s). Tables never show
an index or a column with nothing in it. In HTML the verdicts and check results
are badges that carry their word (and a symbol), so colour is never the only cue.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ptlab.report.verdicts import Check, Finding, check_status

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}td.num,th.num{text-align:right;
white-space:nowrap}img{max-width:100%;border:1px solid #eee}code{background:#f5f5f5;padding:1px 4px}
.note{color:#666;font-size:13px}h2{border-bottom:1px solid #e5e5e5;padding-bottom:.2em;margin-top:1.6em}
table.verdicts{font-size:14px;width:100%}table.verdicts td.detail{color:#555;font-size:12.5px}
table.findings td:first-child{min-width:16em;max-width:28em}table.verdicts td.detail{min-width:14em}table.checks td:first-child{min-width:14em}
table.verdicts td:nth-child(2){width:1%;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12.5px;white-space:nowrap;
border:1px solid}.badge .sym{margin-right:4px}
.b-supported,.b-pass{background:#dafbe1;color:#116329;border-color:#4ac26b}
.b-contradicted,.b-fail{background:#ffebe9;color:#a40e26;border-color:#ff8182}
.b-inconclusive{background:#fff8c5;color:#7d4e00;border-color:#d4a72c}
.b-no-effect{background:#ddf4ff;color:#0550ae;border-color:#54aeff}
.b-not-tested,.b-not-run{background:#eaeef2;color:#424a53;border-color:#afb8c1}"""

# verdict / check status -> (css class, symbol); the word itself is always printed beside the symbol
_BADGES = {"supported": ("b-supported", "✓"), "partly supported": ("b-inconclusive", "◐"),
           "contradicted": ("b-contradicted", "✗"),
           "inconclusive (underpowered)": ("b-inconclusive", "?"),
           "no effect (adequately powered)": ("b-no-effect", "="), "not tested": ("b-not-tested", "–"),
           "pass": ("b-pass", "✓"), "fail": ("b-fail", "✗"), "not run": ("b-not-run", "–")}


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
        """A table, without its index and without columns that are empty everywhere (NaN, None, "")."""
        self.blocks.append(("table", clean_table(df)))

    def image(self, name: str, png: bytes, caption: str = "") -> None:
        self.images[name] = png
        self.blocks.append(("image", (name, caption)))

    def findings(self, findings: list[Finding], title: str | None = "Findings", note: str = "") -> None:
        """One row per claim: verdict, effect, interval, Holm-adjusted p and raw p, under a heading (unless
        `title` is None), with an optional `note` under the table (how to read it: units, families, α)."""
        if title:
            self.heading(title)
        self.blocks.append(("findings", (list(findings), note)))

    def checks(self, checks: list[Check], title: str | None = "Design checks", note: str = "") -> None:
        """One row per design check: pass / fail / not run, with a short detail."""
        if title:
            self.heading(title)
        self.blocks.append(("checks", (list(checks), note)))

    def kinds(self) -> list[str]:
        """The blocks' kinds in order, headings left out (what a report opens with, for tests)."""
        return [kind for kind, _ in self.blocks if kind != "heading"]

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
            elif kind in ("findings", "checks"):
                rows, note = body
                frame = findings_frame(rows) if kind == "findings" else checks_frame(rows)
                out.append(_md_rows(frame, bold="verdict" if kind == "findings" else "result") + "\n")
                if note:
                    out.append(f"{note}\n")
        return "\n".join(out)

    def html(self) -> str:
        parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                 f"<style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"]
        for kind, body in self.blocks:
            if kind == "heading":
                parts.append(f"<h{body[0]}>{html.escape(body[1])}</h{body[0]}>")
            elif kind == "text":
                parts.append(f"<p>{_inline(body)}</p>")
            elif kind == "table":
                parts.append(_html_table(body))
            elif kind == "image":
                data = base64.b64encode(self.images[body[0]]).decode()
                parts.append(f"<figure><img alt='{html.escape(body[1])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption class='note'>{html.escape(body[1])}</figcaption></figure>")
            elif kind == "findings":
                parts.append(_html_table(findings_frame(body[0]), badge="verdict", css="verdicts findings",
                                         left={"claim", "detail"}))
            elif kind == "checks":
                parts.append(_html_table(checks_frame(body[0]), badge="result", css="verdicts checks",
                                         left={"check", "detail"}))
            if kind in ("findings", "checks") and body[1]:
                parts.append(f"<p class='note'>{_inline(body[1])}</p>")
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


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """The findings as a table (empty columns dropped): claim, verdict, effect, 95% interval, p (Holm), p (raw)."""
    return clean_table(pd.DataFrame(
        [{"claim": f.claim, "verdict": f.verdict, "effect": f.effect, "95% interval": f.interval,
          "p (Holm)": f.p_adj, "p (raw)": f.p, "detail": f.detail} for f in findings],
        columns=["claim", "verdict", "effect", "95% interval", "p (Holm)", "p (raw)", "detail"]))


def checks_frame(checks: list[Check]) -> pd.DataFrame:
    return clean_table(pd.DataFrame([{"check": c.name, "result": check_status(c.passed), "detail": c.detail}
                                     for c in checks], columns=["check", "result", "detail"]))


def _empty(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, str) and not v.strip():
        return True
    try:
        return bool(pd.isna(v)) if not isinstance(v, (list, tuple, dict)) else False
    except (TypeError, ValueError):
        return False


def clean_table(df: pd.DataFrame) -> pd.DataFrame:
    """A copy without an index (a named index becomes a column first) and without all-empty columns."""
    df = df.copy()
    named = any(n is not None for n in df.index.names)
    if named:
        df = df.reset_index()
    else:
        df = df.reset_index(drop=True)
    keep = [c for c in df.columns if not all(_empty(v) for v in df[c].tolist())]
    return df[keep] if len(df) else df


def _cell(v) -> str:
    return "" if _empty(v) else str(v)


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** (code spans first, so marks like `**` inside them stay literal)."""
    parts = re.split(r"(`[^`]+`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(part)).replace("\n", "<br>"))
    return "".join(out)


def _md_escape(v) -> str:
    return _cell(v).replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def _md_table(df: pd.DataFrame) -> str:
    df = clean_table(df)
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_md_escape(v) for v in row) + " |")
    return "\n".join(lines)


def _md_rows(df: pd.DataFrame, bold: str) -> str:
    """A findings / checks table: like `_md_table`, with the verdict column in bold."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = [f"**{_md_escape(v)}**" if c == bold and _cell(v) else _md_escape(v) for c, v in zip(cols, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_NUMERIC = re.compile(r"^\s*[\[(]?\s*[<>≈~+\-−]?\s*(\d|\.\d|∞|inf|nan)", re.IGNORECASE)


def _numeric(series: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return True
    values = [_cell(v) for v in series.tolist()]
    values = [v for v in values if v and v not in ("–", "-")]
    return bool(values) and all(_NUMERIC.match(v) for v in values)


def _badge(word: str) -> str:
    css, sym = _BADGES.get(word, ("b-not-run", "•"))
    return (f"<span class='badge {css}'><span class='sym' aria-hidden='true'>{sym}</span>"
            f"{html.escape(word)}</span>")


def _html_table(df: pd.DataFrame, badge: str | None = None, css: str = "", left: set[str] = frozenset()) -> str:
    cols = list(df.columns)
    num = {c: (str(c) not in left and c != badge and _numeric(df[c])) for c in cols}
    num_th = " class='num'"
    head = "".join(f"<th scope='col'{num_th if num[c] else ''}>{html.escape(str(c))}</th>" for c in cols)
    rows = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(cols, row):
            if c == badge and _cell(v):
                body = _badge(_cell(v))
            elif str(c) in left:  # claims, checks, details: the same inline marks as the report's text
                body = _inline(_cell(v))
            else:
                body = html.escape(_cell(v))
            klass = "num" if num[c] else "detail" if c == "detail" else ""
            cells.append(f"<td class='{klass}'>{body}</td>" if klass else f"<td>{body}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    klass = f" class='{css}'" if css else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
