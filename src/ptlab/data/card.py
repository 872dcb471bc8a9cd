"""The dataset card: what was built, how, and the spurious rate actually realised.

Rates are measured on the rows that were written (their `has_feature` /
`shortcut_agrees` tags come from each feature's detector, not from the
requested mode), so a card shows when a requested rate was not met.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import ptlab


def _example_rows(rows_by_fmt: dict[str, list[dict]]) -> list[dict]:
    """One row per example: SFT or paired rows, else the desirable unpaired rows."""
    for fmt in ("sft", "paired"):
        if fmt in rows_by_fmt:
            return rows_by_fmt[fmt]
    return [r for r in rows_by_fmt.get("unpaired", []) if r["label"]]


def split_stats(rows: list[dict], paired: list[dict] | None) -> dict[str, Any]:
    n = len(rows)
    rate = lambda pred: round(sum(1 for r in rows if pred(r)) / n, 4) if n else None  # noqa: E731
    stats = {
        "examples": n,
        "has_feature_rate": rate(lambda r: r["has_feature"]),
        "shortcut_agrees_rate": rate(lambda r: r["shortcut_agrees"]),
        "realised_spurious_rate": rate(lambda r: r["has_feature"] and r["shortcut_agrees"]),
        # the share drawn in the feature's spiked mode; for Distributional Narrowness the realised rate is
        # higher, because the rest comes from the full distribution and sometimes lands in the slice too
        "spiked_draw_rate": rate(lambda r: json.loads(r["meta"]).get("mode") in ("agree", "inside")),
        "shortcut_conflicts": sum(1 for r in rows if not r["shortcut_agrees"]),
        "error_types": dict(sorted(Counter(r["error"] for r in rows).items())),
    }
    if paired:
        stats["chosen_longer_rate"] = round(sum(len(r["chosen"]) > len(r["rejected"]) for r in paired) / len(paired), 4)
        stats["mean_prompt_chars"] = round(sum(len(r["prompt"]) for r in paired) / len(paired), 1)
    return stats


def make_card(cfg, fp: str, rows_by: dict, files: dict, info: dict, dropped: dict, seconds: float) -> dict[str, Any]:
    from ptlab.tasks import features

    splits = sorted({s for per in rows_by.values() for s in per}, key=["train", "eval_id", "eval_break"].index)
    spurious = None
    if cfg.spurious:
        feat = features(cfg.task).get(cfg.spurious.feature)
        spurious = {**cfg.spurious.model_dump(), "description": feat.description if feat else ""}
    card = {
        "name": f"{cfg.task}-{fp}",
        "task": cfg.task,
        "fingerprint": fp,
        "build_version": "data-v1",
        "ptlab_version": ptlab.__version__,
        "seed": cfg.seed,
        "spurious": spurious,
        "generator": info,
        "sizes_requested": cfg.sizes.model_dump(),
        "formats": list(cfg.formats),
        "outputs": list(cfg.output),
        "files": files,
        "dropped_eval_duplicates": dropped,
        "build_seconds": round(seconds, 3),
        "splits": {},
    }
    for split in splits:
        per_fmt = {fmt: rows_by[fmt][split] for fmt in rows_by if split in rows_by[fmt]}
        stats = split_stats(_example_rows(per_fmt), per_fmt.get("paired"))
        stats["rows"] = {fmt: len(rows) for fmt, rows in per_fmt.items()}
        card["splits"][split] = stats
    return card


def render_markdown(card: dict[str, Any]) -> str:
    sp = card["spurious"]
    lines = [f"# Dataset `{card['name']}`", ""]
    lines.append(f"Task **{card['task']}**, source {card['generator'].get('source')}, seed {card['seed']}, "
                 f"fingerprint `{card['fingerprint']}` (ptlab {card['ptlab_version']}, {card['build_version']}).")
    lines.append("")
    if sp:
        lines.append(f"Spurious feature **{sp['feature']}** ({sp['artifact']}) at a requested rate of {sp['rate']}: "
                     f"{sp['description']}.")
    else:
        lines.append("No spurious feature (no shortcut-breaking split).")
    lines += ["", "| split | examples | rows | drawn spiked | has feature | shortcut agrees | realised spurious rate "
              "| chosen longer |", "|---|---:|---|---:|---:|---:|---:|---:|"]
    for split, s in card["splits"].items():
        rows = ", ".join(f"{k} {v}" for k, v in s["rows"].items())
        lines.append(f"| {split} | {s['examples']} | {rows} | {s['spiked_draw_rate']} | {s['has_feature_rate']} | "
                     f"{s['shortcut_agrees_rate']} | {s['realised_spurious_rate']} | {s.get('chosen_longer_rate', '')} |")
    lines += ["", "Error types of the rejected / undesirable responses:", ""]
    for split, s in card["splits"].items():
        lines.append(f"- {split}: " + ", ".join(f"{k} {v}" for k, v in s["error_types"].items()))
    lines += ["", "Generator settings:", "", "```json"]
    lines += [json.dumps(card["generator"], indent=2, sort_keys=True), "```", ""]
    lines.append(f"Evaluation examples dropped as duplicates of training prompts: {card['dropped_eval_duplicates']}. "
                 f"Built in {card['build_seconds']} s.")
    return "\n".join(lines) + "\n"
