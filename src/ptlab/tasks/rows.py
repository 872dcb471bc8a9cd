"""Examples -> TRL rows: the same examples feed SFT, preference and unpaired data.

SFT sees the correct response; a preference pair sees it against the
realistic mistake; unpaired (KTO) data gets both as separate rows labelled
desirable / undesirable, so every objective sees equivalent information.
Metadata columns travel with every row so evaluation can split by them.
"""

from __future__ import annotations

import json
from typing import Any

from ptlab.errors import ConfigError
from ptlab.tasks.base import Example
from ptlab.tasks.spurious import SpuriousSpec

FORMATS = ("sft", "paired", "unpaired")


def metadata(ex: Example) -> dict[str, Any]:
    return {
        "id": ex.id,
        "task": ex.task,
        "split": ex.split,
        "answer": ex.answer,
        "feature": ex.feature,
        "artifact": ex.artifact,
        "has_feature": ex.has_feature,
        "shortcut_agrees": ex.shortcut_agrees,
        "error": ex.error,
        "meta": json.dumps(ex.meta, sort_keys=True),
    }


def to_rows(examples: list[Example], fmt: str) -> list[dict]:
    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    rows: list[dict] = []
    for ex in examples:
        meta = metadata(ex)
        if fmt == "sft":
            rows.append({"prompt": ex.prompt, "completion": ex.chosen, **meta})
        elif fmt == "paired":
            rows.append({"prompt": ex.prompt, "chosen": ex.chosen, "rejected": ex.rejected, **meta})
        else:
            rows.append({"prompt": ex.prompt, "completion": ex.chosen, "label": True, **meta})
            rows.append({"prompt": ex.prompt, "completion": ex.rejected, "label": False, **meta})
    return rows


def make_rows(
    task: str,
    fmt: str,
    n: int,
    seed: int = 0,
    spurious: SpuriousSpec | None = None,
    split: str = "train",
    habit_share: float | None = None,
    exclude: Any = (),
    **knobs: Any,
) -> list[dict]:
    """`n` examples of `task` as rows of `fmt` (unpaired gives 2n rows: one desirable, one undesirable each)."""
    from ptlab.tasks import get_task

    if fmt not in FORMATS:
        raise ConfigError(f"format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    extra = {} if habit_share is None else {"habit_share": habit_share}
    return to_rows(get_task(task).generate(n, seed=seed, split=split, spurious=spurious, exclude=exclude, **extra,
                                           **knobs), fmt)


def reformat(paired_rows: list[dict], fmt: str) -> list[dict]:
    """Paired rows as rows of `fmt`: the same examples, as `to_rows` would have written them."""
    if fmt == "paired":
        return list(paired_rows)
    out: list[dict] = []
    for r in paired_rows:
        meta = {k: v for k, v in r.items() if k not in ("chosen", "rejected")}
        if fmt == "sft":
            out.append({**meta, "completion": r["chosen"]})
        elif fmt == "unpaired":
            out += [{**meta, "completion": r["chosen"], "label": True}, {**meta, "completion": r["rejected"], "label": False}]
        else:
            raise ConfigError(f"format: unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return out


def pairs_of(rows: list[dict]) -> list[dict]:
    """Paired rows from paired or unpaired (KTO) rows: an example's desirable and undesirable rows, joined by id."""
    if not rows or "chosen" in rows[0]:
        return list(rows)
    by_id: dict[str, dict] = {}
    for r in rows:
        meta = {k: v for k, v in r.items() if k not in ("completion", "label")}
        by_id.setdefault(r["id"], meta)["chosen" if r["label"] else "rejected"] = r["completion"]
    return [r for r in by_id.values() if "chosen" in r and "rejected" in r]
