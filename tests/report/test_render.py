"""A report rendered as a person sees it (headless Chromium): the PNG exists, has the width asked for, is not
blank, and shows the Findings table (with its coloured badge) at the top. Skipped where no browser is installed."""

import numpy as np
import pandas as pd
import pytest

from ptlab.errors import PtlabError
from ptlab.report import render
from ptlab.report.document import Document
from ptlab.report.figures import colour, plt, png
from ptlab.report.verdicts import Check, Finding

needs_browser = pytest.mark.skipif(render.find_browser() is None, reason="no headless Chromium installed")


def _document() -> Document:
    doc = Document("Rendered report")
    doc.findings([Finding("sft beats dpo on math", "supported", "+4.1 points", "[+1.0, +7.2]", "0.004", "0.012"),
                  Finding("kto beats dpo on docqa", "inconclusive (underpowered)", "+0.5 points", "[−3.0, +4.0]",
                          "0.61", "0.61")])
    doc.checks([Check("Same held-out examples", True, "200 examples"), Check("Seeds ≥ 2", False, "1 seed"),
                Check("Convergence", None, "not recorded")])
    fig, ax = plt.subplots(figsize=(5, 3))
    for i, arm in enumerate(("sft", "dpo", "kto")):
        ax.bar(i, i + 1, color=colour(arm))
    doc.image("figure.png", png(fig), "a figure")
    doc.heading("Details")
    doc.table(pd.DataFrame({"arm": ["sft", "dpo"], "accuracy": ["0.81", "0.77"], "empty": ["", ""]}))
    return doc


@needs_browser
def test_screenshot_of_a_report_shows_its_findings(tmp_path):
    from PIL import Image

    _document().write(tmp_path / "report")
    out = render.screenshot(tmp_path / "report" / "report.html", tmp_path / "shot.png", width=1000)
    assert out.is_file()
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    h, w, _ = img.shape
    assert w == 1000 and h > 600  # the whole page: findings, checks, figure, table
    assert img.std() > 10  # not blank
    top = img[: min(h, 420)]
    assert (top.sum(axis=2) < 600).mean() > 0.01  # text and table borders where the Findings table is
    green = (top[..., 1] - top[..., 0] > 20) & (top[..., 1] > 150)
    assert green.sum() > 50  # the "supported" badge's green
    fixed = render.screenshot(tmp_path / "report" / "report.html", tmp_path / "top.png", width=800, height=300)
    assert Image.open(fixed).size == (800, 300)


@needs_browser
def test_the_script_renders_a_report(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    _document().write(tmp_path / "report")
    script = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.py"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "report" / "report.html"),
                           str(tmp_path / "out.png"), "--width", "900"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.png").is_file() and done.stdout.strip().endswith("out.png")


def test_no_browser_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(render, "find_browser", lambda: None)
    (tmp_path / "r.html").write_text("<html><body>x</body></html>")
    with pytest.raises(PtlabError, match="no headless browser") as err:
        render.screenshot(tmp_path / "r.html", tmp_path / "r.png")
    assert "\n" not in str(err.value)
