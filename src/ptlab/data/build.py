"""Build a dataset directory from one config: SFT, preference and unpaired rows
from the same examples, train / in-distribution / shortcut-breaking splits,
JSONL and/or Parquet, and a dataset card.

Layout of the output directory:

    <out>/sft/train.jsonl         prompt / completion          (+ metadata columns)
    <out>/paired/train.jsonl      prompt / chosen / rejected
    <out>/unpaired/train.jsonl    prompt / completion / label  (2 rows per example)
    <out>/<fmt>/eval_id.*  <out>/<fmt>/eval_break.*
    <out>/card.json  <out>/card.md

Building is deterministic from the config (seed included) and atomic: the
directory appears complete or not at all. Without `out`, datasets are cached
under ptlab's home by fingerprint, so a study re-uses what it built.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ptlab.atomic import atomic_dir, check_replaceable
from ptlab.config import Strict, load_config, validate
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir

BUILD_VERSION = "data-v1"
REAL_SOURCES = ("gsm8k", "ifbench", "squad", "hotpotqa")


class SpuriousConfig(Strict):
    feature: str
    artifact: Literal["feature_ambiguity", "distributional_narrowness"]
    rate: float = Field(ge=0.0, le=1.0)


class SizesConfig(Strict):
    train: int = Field(2000, ge=0)
    eval_id: int = Field(500, ge=0)
    eval_break: int = Field(500, ge=0)
    eval_neutral: int = Field(500, ge=0, description="the no-cue twins (Feature Ambiguity features that can be absent)")


class DataConfig(Strict):
    """`ptlab data build` config: which task, which spurious feature, how much, which formats."""

    task: str
    source: Literal["synthetic", "gsm8k", "ifbench", "squad", "hotpotqa"] = "synthetic"
    real_path: str | None = Field(None, description="a real-data file to use instead of the packaged one")
    seed: int = 0
    spurious: SpuriousConfig | None = None
    knobs: dict[str, Any] = Field(default_factory=dict)
    sizes: SizesConfig = Field(default_factory=SizesConfig)
    formats: list[Literal["sft", "paired", "unpaired"]] = Field(default_factory=lambda: ["sft", "paired", "unpaired"])
    output: list[Literal["jsonl", "parquet"]] = Field(default_factory=lambda: ["jsonl"])
    out: str | None = None

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        from ptlab.tasks import available_tasks

        if v not in available_tasks():
            raise ValueError(f"unknown task {v!r}; choose from {', '.join(sorted(available_tasks()))}")
        return v

    @field_validator("formats", "output")
    @classmethod
    def _non_empty(cls, v: list) -> list:
        if not v:
            raise ValueError("must name at least one")
        return list(dict.fromkeys(v))


def load_data_config(path: str | Path | None, overrides: list[str] | None = None) -> DataConfig:
    return load_config(DataConfig, path, overrides)


def _examples(cfg: DataConfig) -> tuple[dict[str, list], dict[str, Any]]:
    """Examples per split, and what the card should say about how they were made."""
    from ptlab.tasks import SpuriousSpec, get_task

    spec = SpuriousSpec(**cfg.spurious.model_dump()) if cfg.spurious else None
    task = get_task(cfg.task)
    if cfg.source != "synthetic":
        from ptlab.data.real import real_examples

        splits, info = real_examples(cfg.task, cfg.source, dict(cfg.sizes), cfg.seed, spec, cfg.real_path)
        return splits, {"source": cfg.source, **info}
    from ptlab.tasks import FEATURE_AMBIGUITY
    from ptlab.tasks.base import prompt_key
    from ptlab.tasks.spurious import resolve

    knobs = task.knobs(**cfg.knobs)
    sizes = dict(cfg.sizes)
    feat = resolve(cfg.task, spec, knobs) if spec is not None else None
    if spec is None:
        sizes["eval_break"] = 0  # nothing to break without a shortcut
    if feat is None or feat.artifact != FEATURE_AMBIGUITY or not feat.absent:
        sizes["eval_neutral"] = 0  # no cue to take away
    splits = {name: task.generate(n, seed=cfg.seed, split=name, spurious=spec, **cfg.knobs)
              for name, n in sizes.items() if name != "train" and n}
    # Training never holds an evaluation prompt (any twin's): excluded by construction, not dropped afterwards.
    exclude = {prompt_key(ex.prompt) for exs in splits.values() for ex in exs}
    splits = {"train": task.generate(sizes["train"], seed=cfg.seed, split="train", spurious=spec, exclude=exclude,
                                     **cfg.knobs), **splits}
    return splits, {"source": "synthetic", "knobs": knobs.model_dump()}


def _dedupe(splits: dict[str, list]) -> dict[str, int]:
    """Drop evaluation examples whose prompt also appears in training (real data; synthetic data excludes them)."""
    seen = {ex.prompt for ex in splits.get("train", [])}
    dropped = {}
    for name in ("eval_id", "eval_break", "eval_neutral"):
        keep = [ex for ex in splits.get(name, []) if ex.prompt not in seen]
        dropped[name] = len(splits.get(name, [])) - len(keep)
        splits[name] = keep
    return dropped


def write_rows(rows: list[dict], base: Path, outputs: list[str]) -> list[str]:
    """Write rows as `base.jsonl` and/or `base.parquet`; returns the file names written."""
    written = []
    base.parent.mkdir(parents=True, exist_ok=True)
    if "jsonl" in outputs:
        with open(base.with_suffix(".jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        written.append(base.with_suffix(".jsonl").name)
    if "parquet" in outputs:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), base.with_suffix(".parquet"))
        written.append(base.with_suffix(".parquet").name)
    return written


def config_fingerprint(cfg: DataConfig) -> str:
    from ptlab.tasks.base import TASKS_VERSION

    return fingerprint(cfg.model_dump(exclude={"out", "output"}), BUILD_VERSION, TASKS_VERSION)


def build_dataset(config: DataConfig | dict, out: str | Path | None = None) -> Path:
    """Build (or reuse, when the fingerprint matches) the dataset a config describes; return its directory."""
    from ptlab.data.card import make_card, render_markdown
    from ptlab.tasks.rows import to_rows

    cfg = config if isinstance(config, DataConfig) else validate(DataConfig, dict(config))
    fp = config_fingerprint(cfg)
    target = Path(out or cfg.out or cache_dir("data") / f"{cfg.task}-{fp}")
    check_replaceable(target)
    card_path = target / "card.json"
    if card_path.is_file():
        old = json.loads(card_path.read_text())
        if old.get("fingerprint") == fp and set(old.get("outputs", [])) >= set(cfg.output):
            return target
    start = time.perf_counter()
    splits, info = _examples(cfg)
    dropped = _dedupe(splits)
    files: dict[str, dict[str, list[str]]] = {}
    rows_by: dict[str, dict[str, list[dict]]] = {}
    with atomic_dir(target) as tmp:
        for fmt in cfg.formats:
            for split, examples in splits.items():
                if not examples:
                    continue
                rows = to_rows(examples, fmt)
                rows_by.setdefault(fmt, {})[split] = rows
                files.setdefault(fmt, {})[split] = write_rows(rows, tmp / fmt / split, cfg.output)
        card = make_card(cfg, fp, rows_by, files, info, dropped, time.perf_counter() - start)
        (tmp / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
        (tmp / "card.md").write_text(render_markdown(card))
    return target
