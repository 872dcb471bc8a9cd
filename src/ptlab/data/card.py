"""The dataset card: what was built, how, and the spurious rate actually realised.

Rates are measured on the rows that were written, so a card shows when a
requested rate was not met. The card states what "rate" means for the artifact
(`RATE_DEFINITION`) and, for Feature Ambiguity, the share of every cue value and
every behaviour, which must not depend on the rate.
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
        "shortcut_conflicts": sum(1 for r in rows if not r["shortcut_agrees"]),
        "error_types": dict(sorted(Counter(r["error"] for r in rows).items())),
    }
    metas = [json.loads(r["meta"]) for r in rows]
    for key in ("cue", "label"):  # Feature Ambiguity: the marginals the rate must not move
        counts = Counter(str(m[key]) for m in metas if key in m)
        if counts:
            stats[f"{key}_shares"] = {k: round(v / n, 4) for k, v in sorted(counts.items())}
    if paired:
        stats["chosen_longer_rate"] = round(sum(len(r["chosen"]) > len(r["rejected"]) for r in paired) / len(paired), 4)
        stats["mean_prompt_chars"] = round(sum(len(r["prompt"]) for r in paired) / len(paired), 1)
    return stats


RATE_DEFINITION = {
    "feature_ambiguity": "every training example whose behaviour the cue can be about carries a cue; a share `rate` "
                         "carries the cue of its own behaviour, the rest a cue drawn independently of the behaviour (from "
                         "its marginal), so cue and behaviour frequencies do not depend on the rate — only their "
                         "agreement does (`shortcut agrees`). Rate 0: the cue is independent of the behaviour; rate 1: "
                         "it always names it. Evaluation splits are counterfactual twins of the same items: the cue "
                         "agreeing (eval_id), conflicting (eval_break), absent (eval_neutral)",
    "distributional_narrowness": "a share `rate` of the training examples lies inside the slice (exactly, up to "
                                 "rounding), the rest outside it; eval_id is inside, eval_break outside",
}


def make_card(cfg, fp: str, rows_by: dict, files: dict, info: dict, dropped: dict, seconds: float) -> dict[str, Any]:
    from ptlab.tasks import features

    splits = sorted({s for per in rows_by.values() for s in per}, key=["train", "eval_id", "eval_break", "eval_neutral"].index)
    spurious = None
    if cfg.spurious:
        feat = features(cfg.task).get(cfg.spurious.feature)
        spurious = {**cfg.spurious.model_dump(), "description": feat.description if feat else "",
                    "rate_definition": RATE_DEFINITION[cfg.spurious.artifact]}
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
        lines += ["", f"Rate, for {sp['artifact']}: {sp.get('rate_definition', '')}."]
    else:
        lines.append("No spurious feature (no shortcut-breaking split).")
    lines += ["", "| split | examples | rows | has feature (DN: inside) | shortcut agrees | realised spurious rate "
              "| chosen longer |", "|---|---:|---|---:|---:|---:|---:|"]
    for split, s in card["splits"].items():
        rows = ", ".join(f"{k} {v}" for k, v in s["rows"].items())
        lines.append(f"| {split} | {s['examples']} | {rows} | {s['has_feature_rate']} | "
                     f"{s['shortcut_agrees_rate']} | {s['realised_spurious_rate']} | {s.get('chosen_longer_rate', '')} |")
    shares = [(split, key, s[f"{key}_shares"]) for split, s in card["splits"].items() for key in ("cue", "label")
              if f"{key}_shares" in s]
    if shares:
        lines += ["", "Shares of each cue value and each behaviour (the rate must not move them):", ""]
        lines += [f"- {split} {key}: " + ", ".join(f"{k} {v}" for k, v in d.items()) for split, key, d in shares]
    lines += ["", "Error types of the rejected / undesirable responses:", ""]
    for split, s in card["splits"].items():
        lines.append(f"- {split}: " + ", ".join(f"{k} {v}" for k, v in s["error_types"].items()))
    lines += ["", "Generator settings:", "", "```json"]
    lines += [json.dumps(card["generator"], indent=2, sort_keys=True), "```", ""]
    lines.append("Training data never holds an evaluation prompt (synthetic data excludes them by construction; "
                 f"real data drops evaluation duplicates: {card['dropped_eval_duplicates']}). "
                 f"Built in {card['build_seconds']} s.")
    return "\n".join(lines) + "\n"
