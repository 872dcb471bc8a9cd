"""Design checks: what a cell's built data and its base model actually are, measured, not assumed.

`data_metrics` turns a cell's rows into metrics the store keeps (`data/...`): the
share of training examples whose cue agrees with their behaviour, the share of
each cue value and each behaviour (Feature Ambiguity), the share inside the slice
(Distributional Narrowness), and each evaluation split's effective size.
`check_table` reads them back across rates: only the agreement may move with
the rate. `base_features` is the base's own record (its model card) of which
cues it met in pretraining and how the cues move it on twins.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd

from ptlab.tasks.spurious import FEATURE_AMBIGUITY

CARD = "model_card.json"
BASE_FILE = "base_features.json"  # the base's card entries, copied into the study directory


def data_metrics(train_rows: list[dict] | None, eval_rows: dict[str, list[dict]], n_eval: int,
                 validation_rows: list[dict] = ()) -> dict:
    from ptlab.tasks.base import prompt_key

    out: dict = {}
    for split, rows in eval_rows.items():
        out[f"data/{split}_n"] = len({r["id"] for r in rows})
        out[f"data/{split}_requested"] = n_eval
    if not train_rows:
        return out
    held_out = {prompt_key(r["prompt"]) for rows in [*eval_rows.values(), validation_rows] for r in rows}
    out["data/eval_overlap"] = len({prompt_key(r["prompt"]) for r in train_rows} & held_out)  # must be 0
    rows = list({r["id"]: r for r in train_rows}.values())  # unpaired data has two rows an example
    metas = [json.loads(r["meta"]) if isinstance(r.get("meta"), str) else (r.get("meta") or {}) for r in rows]
    out["data/train_n"] = len(rows)
    if rows[0].get("artifact") == FEATURE_AMBIGUITY:  # agreement among the examples that show the cue
        cued = [r for r in rows if r["has_feature"]]
        out["data/agree_share"] = sum(bool(r["shortcut_agrees"]) for r in cued) / len(cued) if cued else float("nan")
    out["data/feature_share"] = sum(bool(r["has_feature"]) for r in rows) / len(rows)
    for key in ("cue", "label"):
        counts = Counter(str(m.get(key)) for m in metas if key in m)
        for value, c in counts.items():
            out[f"data/{key}={value}"] = c / len(rows)
    return out


def check_table(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Per task / artifact / feature: how the built training data changes across rates (post-training cells).

    `largest marginal shift` is the largest change of any cue-value or behaviour share between two rates, with
    four binomial standard errors as the bar (`ok` when under it); agreement is expected to move, and for
    Distributional Narrowness the inside share is expected to equal the rate.
    """
    m = results[results["metric"].str.startswith("data/") & results["cell_id"].isin(cells["cell_id"])]
    rows = []
    for (task, artifact, feature), g in m.groupby(["task", "artifact", "feature"], sort=True):
        wide = g.pivot_table(index="rate", columns="metric", values="value", aggfunc="mean")
        if "data/train_n" not in wide:
            continue
        n = float(wide["data/train_n"].min())
        row = {"task": task, "artifact": artifact, "feature": feature,
               "rates": ", ".join(f"{r:g}" for r in wide.index), "train n": int(n)}
        if artifact == FEATURE_AMBIGUITY:
            marg = [c for c in wide.columns if c.startswith(("data/cue=", "data/label="))]
            shares = wide[marg].fillna(0.0)
            shift = float((shares.max() - shares.min()).max()) if marg else float("nan")
            bar = 4 * math.sqrt(0.25 / n) * math.sqrt(2)
            row.update({"agreement by rate": ", ".join(f"{v:.2f}" for v in wide["data/agree_share"]),
                        "cue present": ", ".join(f"{v:.2f}" for v in wide["data/feature_share"]),
                        "largest marginal shift": f"{shift:.3f} (bar {bar:.3f})", "ok": bool(shift < bar)})
        else:
            inside = wide["data/feature_share"]
            row.update({"inside share by rate": ", ".join(f"{v:.2f}" for v in inside),
                        "ok": bool(all(abs(v - r) <= 1.0 / n + 1e-9 for r, v in inside.items()))})
        rows.append(row)
    return pd.DataFrame(rows)


def eval_size_table(results: pd.DataFrame, cells: pd.DataFrame) -> pd.DataFrame:
    """Effective evaluation size per task / feature / split (after deduplication against training and pretraining)."""
    m = results[results["metric"].str.match(r"data/eval_\w+_(n|requested)$") & results["cell_id"].isin(cells["cell_id"])]
    if m.empty:
        return pd.DataFrame()
    m = m.assign(split=m["metric"].str.extract(r"data/(eval_\w+)_(?:n|requested)")[0],
                 kind=m["metric"].str.rsplit("_", n=1).str[-1])
    wide = m.pivot_table(index=["task", "feature", "split"], columns="kind", values="value", aggfunc="min")
    return wide.astype(int).reset_index()


def base_features(model_dir: str | Path) -> dict | None:
    """The base's card: {"features_seen": {task: [features]}, "feature_twins": {...}}, or None (no ptlab card)."""
    path = Path(model_dir) / CARD
    if not path.is_file():
        return None
    card = json.loads(path.read_text(encoding="utf-8"))
    if "features_seen" not in card:
        return None
    return {"model": card.get("name"), "features_seen": card["features_seen"], "feature_twins": card.get("feature_twins", {})}


def unseen_features(card: dict | None, wanted: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (task, feature) pairs the base never met in pretraining, by its card (none without a card)."""
    if card is None:
        return []
    return [(t, f) for t, f in wanted if f not in card["features_seen"].get(t, [])]
