"""One colour per arm, the same in every figure of every study.

An *arm* is what a figure draws as one series: a post-training algorithm of the
spurious study, a data strategy (or reference) of the budget study, a
retrieval system of the SoftQE study. An arm that appears in several studies
(`base`) has one colour everywhere. Named arms come from Paul Tol's
colour-blind-safe palettes (bright, vibrant, muted); an arm not named here gets
a stable fallback from `colour`, derived from its name with CRC-32 (not
Python's per-process randomised `hash`), so it is the same in every run.
"""

from __future__ import annotations

import colorsys
import zlib
from types import MappingProxyType

ARM_COLOURS = MappingProxyType({
    # references, shared by every study
    "base": "#555555",
    # spurious study: post-training algorithms (every registered objective) and their chains
    "sft": "#4477AA",
    "dpo": "#EE6677",
    "kto": "#228833",
    "simpo": "#CCBB44",
    "orpo": "#66CCEE",
    "cpo": "#AA3377",
    "sft+dpo": "#882255",
    "sft+kto": "#44AA99",
    # budget study: synthetic-data strategies and the seed-set-only reference
    "answer_augmentation": "#332288",
    "question_rephrase": "#009988",
    "new_question": "#EE7733",
    "seeds_only": "#997700",
    # SoftQE study: the fixed systems (`ptlab.studies.softqe.cells.FIXED_SYSTEMS`) and the usual students
    "base + LLM exp.": "#DDAA33",
    "teacher (q+)": "#0077BB",
    "teacher (q)": "#88CCEE",
    "SoftQE α=0": "#BBBBBB",
    "SoftQE α=0.25": "#AA4499",
    "SoftQE α=0.5": "#CC3311",
    "SoftQE α=0.75": "#EE3377",
    "SoftQE α=1": "#117733",
})


def _fallback(arm: str) -> str:
    """A mid-saturation colour whose hue comes from the arm's name (deterministic across processes)."""
    h = zlib.crc32(arm.encode("utf-8"))
    hue = (h & 0xFFFF) / 0x10000
    lightness = 0.38 + 0.14 * ((h >> 16) & 0xFF) / 0xFF
    saturation = 0.55 + 0.3 * ((h >> 24) & 0xFF) / 0xFF
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    out = f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"
    if out in ARM_COLOURS.values():  # never a named arm's colour
        return _fallback(arm + "\0")
    return out


def colour(arm: str) -> str:
    """The arm's colour: its `ARM_COLOURS` entry, else a stable colour derived from its name."""
    arm = str(arm)
    return ARM_COLOURS.get(arm) or _fallback(arm)


def colours(arms) -> list[str]:
    """`colour` of each arm, in order."""
    return [colour(a) for a in arms]
