"""Shared figure helpers: PNG bytes from a Matplotlib figure (Agg backend, no display), one colour per arm."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"sft": "#4477aa", "dpo": "#ee6677", "kto": "#228833", "simpo": "#ccbb44", "orpo": "#66ccee", "cpo": "#aa3377"}


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
