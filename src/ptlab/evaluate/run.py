"""Evaluate one model on a task: generate on each split, verify, summarise; rank held-out pairs.

`evaluate_model` returns per-example records (what the statistics need) and a
flat metrics dict: `<split>/accuracy` (+ `_lo`/`_hi`), `<split>/reliance`,
`<split>/n`, and `pairs/rank_accuracy` / `pairs/reward_accuracy` when pairs are given.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ptlab.atomic import make_dir, write_json, write_text
from ptlab.evaluate.generate import GenerationSettings, generate
from ptlab.evaluate.ranking import pair_logps, ranking_correct
from ptlab.evaluate.score import score
from ptlab.evaluate.stats import mean_ci, reliance_ci

# Tight generation budgets per task: the longest correct response plus a margin.
MAX_NEW_TOKENS = {"math": 32, "instruct": 128, "docqa": 28}


@dataclass
class EvalResult:
    metrics: dict
    records: list[dict]  # one per (split, example); pairs records carry split "pairs"
    seconds: dict = field(default_factory=dict)

    def save(self, out: Path) -> None:
        out = make_dir(Path(out), "--out")
        write_text(out / "examples.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records))
        write_json(out / "metrics.json", {"metrics": self.metrics, "seconds": self.seconds})

    @classmethod
    def load(cls, out: Path) -> "EvalResult":
        out = Path(out)
        meta = json.loads((out / "metrics.json").read_text())
        records = [json.loads(line) for line in (out / "examples.jsonl").read_text().splitlines() if line.strip()]
        return cls(meta["metrics"], records, meta.get("seconds", {}))


def summarise(records: list[dict]) -> dict:
    """Accuracy with a 95% bootstrap interval and spurious reliance, per split."""
    metrics: dict = {}
    for split in sorted({r["split"] for r in records if r["split"] != "pairs"}):
        rs = [r for r in records if r["split"] == split]
        correct = np.array([r["correct"] for r in rs], float)
        agrees = np.array([r["shortcut_agrees"] for r in rs], bool)
        acc = mean_ci(correct)
        metrics.update({f"{split}/accuracy": acc.value, f"{split}/accuracy_lo": acc.lo,
                        f"{split}/accuracy_hi": acc.hi, f"{split}/n": len(rs),
                        f"{split}/reliance": reliance_ci(correct, agrees).value,
                        f"{split}/shortcut_agree_rate": float(agrees.mean())})
    gen = [r for r in records if r["split"] != "pairs"]
    if gen:  # over every split: agreeing examples come mostly from eval_id, conflicting ones from eval_break
        metrics["reliance"] = reliance_ci(np.array([r["correct"] for r in gen], float),
                                          np.array([r["shortcut_agrees"] for r in gen], bool)).value
    pairs = [r for r in records if r["split"] == "pairs"]
    for key in ("rank", "reward"):
        vals = [r[key] for r in pairs if key in r]
        if vals:
            est = mean_ci(np.array(vals, float))
            metrics.update({f"pairs/{key}_accuracy": est.value, f"pairs/{key}_accuracy_lo": est.lo,
                            f"pairs/{key}_accuracy_hi": est.hi})
    return metrics


def evaluate_model(model, tokenizer, task: str, splits: dict[str, list[dict]], settings: GenerationSettings | None = None,
                   pairs: list[dict] | None = None, ref_model=None, ref_logps: np.ndarray | None = None,
                   progress=None) -> EvalResult:
    """Generate and verify on each split of rows (TRL rows with `prompt`, `answer`, `id`, `shortcut_agrees`).

    `pairs` (paired rows) adds ranking accuracy; the reference for the implicit
    reward is `ref_logps` (precomputed `pair_logps` of the base) or `ref_model`.
    `progress(n)` is called as generation batches finish.
    """
    settings = settings or GenerationSettings(max_new_tokens=MAX_NEW_TOKENS.get(task, 64))
    records: list[dict] = []
    seconds: dict = {}
    for split, rows in splits.items():
        t0 = time.perf_counter()
        responses = generate(model, tokenizer, [r["prompt"] for r in rows], settings, progress=progress)
        for rec in score(task, rows, responses):
            rec["split"] = split
            records.append(rec)
        seconds[f"generate/{split}"] = round(time.perf_counter() - t0, 3)
    if pairs:
        t0 = time.perf_counter()
        if ref_logps is None and ref_model is not None:
            ref_logps = pair_logps(ref_model, tokenizer, pairs)
        ranked = ranking_correct(pair_logps(model, tokenizer, pairs), ref_logps)
        for i, row in enumerate(pairs):
            rec = {"id": row["id"], "split": "pairs", "shortcut_agrees": bool(row.get("shortcut_agrees", True))}
            rec.update({k: bool(v[i]) for k, v in ranked.items()})
            records.append(rec)
        seconds["pairs"] = round(time.perf_counter() - t0, 3)
    return EvalResult(summarise(records), records, seconds)
