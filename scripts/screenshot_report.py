#!/usr/bin/env python
"""Render a report's HTML as a person sees it: `python scripts/screenshot_report.py report.html out.png`.

Uses headless Chromium (`ptlab.report.render.screenshot`); the whole page by default, or
`--height` pixels of it. Prints the PNG's path; a missing browser is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import ptlab  # noqa: F401
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main(argv: list[str] | None = None) -> int:
    from ptlab.errors import PtlabError
    from ptlab.report.render import screenshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the report's HTML, e.g. runs/X/report/report.html")
    parser.add_argument("png", type=Path, help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1200, help="viewport width in px (default 1200)")
    parser.add_argument("--height", type=int, default=None, help="viewport height in px (default: the whole page)")
    args = parser.parse_args(argv)
    try:
        out = screenshot(args.html, args.png, width=args.width, height=args.height)
    except PtlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
