"""Shared figure helpers: PNG bytes from a Matplotlib figure (Agg backend, no display), one colour per arm.

Colours come from `ptlab.report.colours` (the same arm, the same colour, in every study's figures);
`COLORS` is that mapping under its older name.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ptlab.report.colours import ARM_COLOURS, colour, colours  # noqa: E402

COLORS = ARM_COLOURS  # the older name: `COLORS.get(arm)` still works, `colour(arm)` also covers unknown arms

__all__ = ["ARM_COLOURS", "COLORS", "colour", "colours", "plt", "png"]


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
