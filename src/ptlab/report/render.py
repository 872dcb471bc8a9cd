"""A report's HTML as a person sees it: a PNG from headless Chromium.

`find_browser` looks for /usr/bin/chromium, then chromium, chromium-browser and
google-chrome on PATH. `screenshot` runs it headless with a fresh profile and no
network services. With `height=None` the page is laid out once at the requested
width to measure its full height (a copy of the page with a one-line script that
writes `scrollHeight` into the DOM, read back through `--dump-dom`), then
captured at that size. Nothing else in ptlab needs a browser.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ptlab.errors import PtlabError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--force-device-scale-factor=1")
MAX_HEIGHT = 16000  # px; Chromium's captures get unreliable much beyond this
TIMEOUT_S = 120
_MEASURE = ("<script>window.addEventListener('load',function(){document.body.setAttribute('data-ptlab-height',"
            "Math.ceil(Math.max(document.documentElement.scrollHeight,document.body.scrollHeight)));});</script>")


class RenderError(PtlabError):
    """No browser to render with, or the browser failed."""


def find_browser() -> str | None:
    """The path of a Chromium-family browser, or None."""
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser() -> str:
    browser = find_browser()
    if browser is None:
        raise RenderError("no headless browser found (looked for /usr/bin/chromium and chromium, chromium-browser, "
                          "google-chrome on PATH); install one, e.g. `apt-get install chromium`")
    return browser


def _run(browser: str, args: list[str], what: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="ptlab-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise RenderError(f"{what}: {Path(browser).name} did not finish within {TIMEOUT_S}s") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def page_height(html: Path, width: int = 1200) -> int:
    """The full height (px) of the page laid out `width` px wide."""
    browser = _browser()
    html = Path(html).resolve()
    text = html.read_text(encoding="utf-8")
    probe = text.replace("</body>", _MEASURE + "</body>", 1) if "</body>" in text else text + _MEASURE
    with tempfile.TemporaryDirectory(prefix="ptlab-measure-") as tmp:
        copy = Path(tmp) / html.name  # beside nothing: reports are self-contained (images inline)
        copy.write_text(probe, encoding="utf-8")
        done = _run(browser, ["--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},300",
                              copy.as_uri()], f"measuring {html}")
    found = re.search(r'data-ptlab-height="(\d+)"', done.stdout)
    if not found:
        raise RenderError(f"measuring {html}: could not read the page height ({_last_line(done.stderr)})")
    return int(found.group(1))


def screenshot(html: Path, png: Path, width: int = 1200, height: int | None = None) -> Path:
    """Render `html` in headless Chromium, `width` px wide, into `png`; `height=None`: the whole page."""
    html, png = Path(html).resolve(), Path(png).resolve()
    if not html.is_file():
        raise RenderError(f"{html}: no such file")
    browser = _browser()
    if height is None:
        height = min(page_height(html, width), MAX_HEIGHT)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    done = _run(browser, [f"--screenshot={png}", f"--window-size={width},{height}", html.as_uri()],
                f"rendering {html}")
    if not png.is_file() or png.stat().st_size == 0:
        raise RenderError(f"rendering {html}: {Path(browser).name} wrote no screenshot "
                          f"(exit {done.returncode}: {_last_line(done.stderr)})")
    return png
