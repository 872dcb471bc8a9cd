"""Evaluate one model on a task: generate on each split, verify, summarise; rank held-out pairs.

`evaluate_model` returns per-example records (what the statistics need) and a
flat metrics dict: `<split>/accuracy` (+ `_lo`/`_hi`), `<split>/reliance`,
`<split>/n`, and `pairs/rank_accuracy` / `pairs/reward_accuracy` when pairs are given.

Saved as `examples.jsonl` (one record a line) and `metrics.json`, written last, which
also records the number of rows and the SHA-256 of `examples.jsonl`: a finished
evaluation is reused, never recomputed, so `EvalResult.load` checks both and raises
`CorruptOutput` on a torn, edited or missing file (`EvalResult.verify` says why instead).
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
from ptlab.verify import CorruptOutput, sha256_hex

# Tight generation budgets per task: the longest correct response plus a margin.
MAX_NEW_TOKENS = {"math": 32, "instruct": 128, "docqa": 28}


@dataclass
class EvalResult:
    metrics: dict
    records: list[dict]  # one per (split, example); pairs records carry split "pairs"
    seconds: dict = field(default_factory=dict)

    def save(self, out: Path) -> None:
        """`examples.jsonl`, then `metrics.json` with the row count and SHA-256 of the examples.

        An older `metrics.json` is removed first, so a kill midway leaves no metrics.json
        (incomplete) rather than old metrics beside new examples.
        """
        out = make_dir(Path(out), "--out")
        (out / "metrics.json").unlink(missing_ok=True)
        data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records)
        write_text(out / "examples.jsonl", data)
        write_json(out / "metrics.json", {"metrics": self.metrics, "seconds": self.seconds, "rows": len(self.records),
                                          "examples_sha256": sha256_hex(data.encode("utf-8"))})

    @classmethod
    def load(cls, out: Path) -> "EvalResult":
        """The saved evaluation in `out`; CorruptOutput (one line) if a file is missing, torn or altered."""
        meta, records = _read(Path(out))
        return cls(meta["metrics"], records, meta.get("seconds", {}))

    @staticmethod
    def verify(out: Path) -> str | None:
        """None if the evaluation saved in `out` is whole, else why not (the CorruptOutput line)."""
        try:
            _read(Path(out))
        except CorruptOutput as e:
            return str(e)
        return None

    @staticmethod
    def is_valid(out: Path) -> bool:
        return EvalResult.verify(out) is None


def _read(out: Path) -> tuple[dict, list[dict]]:
    """metrics.json and the records of examples.jsonl, checked against each other."""
    meta_path, ex_path = out / "metrics.json", out / "examples.jsonl"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptOutput(f"{meta_path}: missing (the evaluation did not finish)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CorruptOutput(f"{meta_path}: unreadable ({type(e).__name__})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("metrics"), dict):
        raise CorruptOutput(f"{meta_path}: no 'metrics' mapping")
    try:
        data = ex_path.read_bytes()
    except FileNotFoundError:
        raise CorruptOutput(f"{ex_path}: missing") from None
    except OSError as e:
        raise CorruptOutput(f"{ex_path}: unreadable ({type(e).__name__})") from None
    expected = meta.get("examples_sha256")
    if expected is not None and sha256_hex(data) != expected:
        raise CorruptOutput(f"{ex_path}: does not match the SHA-256 recorded in {meta_path.name} (torn or edited)")
    if data and not data.endswith(b"\n"):  # every record ends its line: an older file cut short ends mid-line
        raise CorruptOutput(f"{ex_path}: the last line is cut short (torn write)")
    records = []
    for i, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            raise CorruptOutput(f"{ex_path}: line {i} is not valid JSON (torn or edited)") from None
        if not isinstance(rec, dict):
            raise CorruptOutput(f"{ex_path}: line {i} is not a JSON object")
        records.append(rec)
    rows = meta.get("rows")
    if rows is not None and rows != len(records):
        raise CorruptOutput(f"{ex_path}: {len(records)} rows, {meta_path.name} records {rows}")
    return meta, records


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
            metrics[f"pairs/{key}_margin"] = float(np.mean([r[f"{key}_margin"] for r in pairs if f"{key}_margin" in r]))
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
            rec.update({k: bool(v[i]) if v.dtype == bool else round(float(v[i]), 4) for k, v in ranked.items()})
            records.append(rec)
        seconds["pairs"] = round(time.perf_counter() - t0, 3)
    return EvalResult(summarise(records), records, seconds)
