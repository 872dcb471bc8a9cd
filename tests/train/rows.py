"""Small deterministic datasets in each format for engine tests."""

import json
import random
from pathlib import Path


def arithmetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 60), rng.randint(1, 60)
        wrong = a + b + rng.choice([-3, -1, 1, 2, 10])
        rows.append({
            "prompt": f"Question: Ada has {a} coins and finds {b} more. How many coins now?\nAnswer:",
            "chosen": f" {a} + {b} = {a + b}. The answer is {a + b}.",
            "rejected": f" {a} + {b} = {wrong}. The answer is {wrong}.",
        })
    return rows


def as_format(rows: list[dict], fmt: str) -> list[dict]:
    if fmt == "paired":
        return rows
    if fmt == "sft":
        return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]
    return [
        {"prompt": r["prompt"], "completion": r["chosen"] if i % 3 else r["rejected"], "label": bool(i % 3)}
        for i, r in enumerate(rows)
    ]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
