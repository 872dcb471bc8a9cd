"""Per-pair training diagnostics for preference runs: why does log π(y+) go down?

For each pair (x, y+, y−) of a run, given the trained policy π and the reference π_ref
(the model training started from):

* **likelihood displacement** — summed completion log-probs under both models and their change,
  Δ+ = log π(y+|x) − log π_ref(y+|x) and Δ− likewise. Log-probs are computed with ptlab's own
  tokenisation (`tokenize_rows(..., "paired", max_length)`) and forward (`no_grad_logps`), so they are
  exactly the ones training optimised: the completion includes the EOS token training appends, and
  `len_*` count those tokens.
* **ranking accuracy** of the policy and of the reference: log π(y+) > log π(y−) (Chen et al., 2024).
* **idealised ranking accuracy** (Chen et al., 2024, "Preference Learning Algorithms Do Not Learn
  Preference Rankings", arXiv 2405.19534, Thm 3.1 / idealised ranking accuracy): under Bradley–Terry with
  ground-truth preference probability α = P(y+ ≻ y−), the optimum π* of the DPO (and RLHF) objective with
  KL strength β satisfies

      π*(y+|x) / π*(y−|x) = π_ref(y+|x) / π_ref(y−|x) · (α / (1 − α))^{1/β}

  so the perfectly optimised model ranks the pair correctly iff
  log π_ref(y+) − log π_ref(y−) + (1/β)·log(α/(1−α)) > 0. See `idealised_correct`.
* **CHES score** (Razin et al., 2024, "Unintentional Unalignment: Likelihood Displacement in Direct
  Preference Optimization", arXiv 2410.08847, Definition 2), computed with the reference model (the paper
  scores pairs before training); see `ches`.
* pair attributes for joining: token lengths, their difference, token-level Levenshtein distance between
  the chosen and rejected completion ids, and row metadata passed through (`keep`).

Ties (a margin of exactly 0) count as incorrect rankings everywhere, for the policy, the reference and
the idealised model alike — as `ptlab.evaluate.ranking.ranking_correct` does.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

IDEAL_ALPHA = 0.9
"""Default declared preference strength α = P(y+ ≻ y−) for the idealised ranking accuracy.

Our synthetic pairs are verified (chosen correct, rejected wrong), so α near 1 is honest; α < 1 models
label uncertainty and keeps the idealised optimum finite. At 0.9, log(α/(1−α)) = log 9 ≈ 2.197 nats,
so with β = 0.1 the idealised model adds ≈ 21.97 nats to the reference margin: a pair is idealised-
incorrect only when the reference prefers the rejected response by more than that. α = 0.5 gives the
reference ranking back; α = 1 makes every pair (with a finite reference margin) idealised-correct.
"""

FIELDS = ("logp_chosen_ref", "logp_rejected_ref", "logp_chosen", "logp_rejected", "d_chosen", "d_rejected",
          "margin_ref", "margin", "margin_ideal", "ranked_ref", "ranked", "ranked_ideal", "ches", "ln_ches",
          "len_chosen", "len_rejected", "len_diff", "edit_distance")


# ---------------------------------------------------------------------------------------------- pure parts


def _log_odds(alpha) -> np.ndarray:
    """log(α/(1−α)) with the limits ±inf at α = 1 and α = 0."""
    a = np.asarray(alpha, dtype=np.float64)
    if np.any(~np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    with np.errstate(divide="ignore"):
        return np.log(a) - np.log1p(-a)


def idealised_margin(ref_chosen, ref_rejected, beta: float, alpha=IDEAL_ALPHA) -> np.ndarray:
    """log π*(y+) − log π*(y−) of the perfectly optimised DPO model (Chen et al. 2024, arXiv 2405.19534):

        log π_ref(y+) − log π_ref(y−) + (1/β) · log(α / (1 − α)).

    `alpha` may be a scalar or one value per pair. α = 1 gives +inf (α = 0, −inf).
    """
    try:
        b = float(beta)
    except (TypeError, ValueError):
        b = float("nan")
    if not (math.isfinite(b) and b > 0):
        raise ValueError(f"beta must be a positive finite number, got {beta!r}")
    c = np.asarray(ref_chosen, dtype=np.float64)
    r = np.asarray(ref_rejected, dtype=np.float64)
    return (c - r) + _log_odds(alpha) / b


def idealised_correct(ref_chosen, ref_rejected, beta: float, alpha: float = IDEAL_ALPHA) -> np.ndarray:
    """Whether the idealised DPO optimum ranks each pair correctly (boolean array, one per pair).

    Chen et al. 2024, "Preference Learning Algorithms Do Not Learn Preference Rankings" (arXiv 2405.19534):
    under Bradley–Terry with ground-truth preference probability α = P(y+ ≻ y−), the optimum of the DPO
    objective with KL coefficient β satisfies π*(y+|x)/π*(y−|x) = π_ref(y+|x)/π_ref(y−|x) · (α/(1−α))^{1/β}.
    The pair is idealised-correct iff that ratio is > 1, i.e.
    log π_ref(y+) − log π_ref(y−) + (1/β)·log(α/(1−α)) > 0.

    `ref_chosen`/`ref_rejected` are summed reference log-probs. A margin of exactly 0 (a tie) is
    incorrect, as is a NaN margin (e.g. −inf reference log-probs with α = 1). α = 0.5 returns the
    reference's own ranking; α = 1 marks every pair with finite reference log-probs correct. (The authors'
    released code additionally treats ratios within 5% of 1 as ties when scoring rankings; we use the exact
    inequality.)
    """
    with np.errstate(invalid="ignore"):
        margin = idealised_margin(ref_chosen, ref_rejected, beta, alpha)
    return np.asarray(margin > 0)


def ches(h_chosen_sum, h_rejected_sum, len_chosen=None, len_rejected=None) -> tuple[np.ndarray, np.ndarray]:
    """(CHES, length-normalised CHES) per pair from summed hidden embeddings, arrays of shape (N, d).

    Razin et al. 2024, "Unintentional Unalignment: Likelihood Displacement in Direct Preference
    Optimization" (arXiv 2410.08847), Definition 2:

        CHES(x, y+, y−) = ⟨Σ_k h_{x,y+<k}, Σ_k' h_{x,y−<k'}⟩ − ‖Σ_k h_{x,y+<k}‖²

    where h_{x,y<k} is the model's final hidden representation (the LM head's input) at the position
    that predicts token k of response y, summed over the response's tokens (in the authors' code
    `ches/ches.py`: positions from the last prompt token to the one before the last response token). The
    length-normalised variant (their Section 6, used for filtering) is

        ln-CHES = ⟨Σh+, Σh−⟩ / (|y+|·|y−|) − ‖Σh+‖² / |y+|²,

    i.e. CHES of the mean embeddings. High CHES means the two responses look alike to the model, which
    drives likelihood displacement of y+. Without lengths, ln-CHES is NaN.
    """
    hc = np.atleast_2d(np.asarray(h_chosen_sum, dtype=np.float64))
    hr = np.atleast_2d(np.asarray(h_rejected_sum, dtype=np.float64))
    if hc.shape != hr.shape:
        raise ValueError(f"h_chosen_sum {hc.shape} and h_rejected_sum {hr.shape} must have the same shape")
    cross = np.einsum("nd,nd->n", hc, hr)
    self_sq = np.einsum("nd,nd->n", hc, hc)
    score = cross - self_sq
    if len_chosen is None or len_rejected is None:
        return score, np.full_like(score, np.nan)
    lc = np.broadcast_to(np.asarray(len_chosen, dtype=np.float64), score.shape)
    lr = np.broadcast_to(np.asarray(len_rejected, dtype=np.float64), score.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ln = cross / (lc * lr) - self_sq / (lc * lc)
    return score, ln


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance between two token-id sequences (unit insert / delete / substitute)."""
    try:
        from rapidfuzz.distance import Levenshtein
    except ImportError:  # small DP over ids, two rows
        a, b = list(a), list(b)
        if len(a) < len(b):
            a, b = b, a
        prev = list(range(len(b) + 1))
        for i, x in enumerate(a, 1):
            cur = [i] + [0] * len(b)
            for j, y in enumerate(b, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
            prev = cur
        return prev[-1]
    return int(Levenshtein.distance(list(a), list(b)))


# ---------------------------------------------------------------------------------------------- model pass


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _tokenize(tokenizer, rows: list[dict], max_length):
    from ptlab.data.tokenize import tokenize_rows

    return tokenize_rows(tokenizer, [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows],
                         "paired", max_length)


def _states(model, tok_rows, pad_id: int, batch_size: int, as_reference: bool = False) -> dict:
    """One forward per batch: summed log-probs from `no_grad_logps` and, captured from the LM head's input
    in that same forward, the summed final hidden states at the positions that predict completion tokens."""
    from ptlab.train.step import no_grad_logps

    head = model.get_output_embeddings()
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, args, out: captured.append(args[0].detach()))
    was_training = model.training
    model.eval()
    logps, hsums = [], []
    try:
        for start in range(0, len(tok_rows), batch_size):
            part = tok_rows[start: start + batch_size]
            captured.clear()
            seq = no_grad_logps(model, part, pad_id, as_reference=as_reference)
            h = torch.cat([c.reshape(-1, c.shape[-1]) for c in captured])
            if h.shape[0] != seq.seq_id.numel():
                raise RuntimeError(f"captured {h.shape[0]} LM-head inputs for {seq.seq_id.numel()} completion tokens")
            sums = torch.zeros(seq.n_seqs, h.shape[-1], dtype=torch.float64, device=h.device)
            sums.index_add_(0, seq.seq_id.to(h.device), h.double())
            b = len(part)
            lp = seq.sums().double().cpu().numpy()
            logps.append(np.stack([lp[:b], lp[b:]], axis=1))
            hs = sums.cpu().numpy()
            hsums.append(np.stack([hs[:b], hs[b:]], axis=1))
    finally:
        hook.remove()
        model.train(was_training)
    d = int(hsums[0].shape[-1]) if hsums else int(getattr(model.config, "hidden_size", 0))
    return {
        "logp": np.concatenate(logps) if logps else np.zeros((0, 2)),
        "h_sum": np.concatenate(hsums) if hsums else np.zeros((0, 2, d)),
        "len": np.array([[len(r.completions[0]), len(r.completions[1])] for r in tok_rows], dtype=np.int64
                        ).reshape(-1, 2),
        "ids": [(list(r.completions[0]), list(r.completions[1])) for r in tok_rows],
    }


@torch.no_grad()
def pair_states(model, tokenizer, rows: list[dict], max_length: int | None = None, batch_size: int = 32,
                as_reference: bool = False) -> dict[str, np.ndarray]:
    """Per-pair log-probs and summed final hidden states of `model` on paired rows.

    Returns `logp` (N, 2) summed completion log-probs of (chosen, rejected) — the same numbers as
    `ptlab.evaluate.ranking.pair_logps`; `h_sum` (N, 2, d) float64 sums of the final hidden state (after the
    final norm: the LM head's input, `hidden_states[-1]`) over the positions that predict each completion
    token (prompt length − 1 … total − 2); `len` (N, 2) completion token counts (EOS included, after
    `max_length` truncation); `ids` a list of (chosen_ids, rejected_ids) completion token ids.
    `as_reference` runs a LoRA model with its adapters disabled (the base model).
    """
    return _states(model, _tokenize(tokenizer, rows, max_length), _pad_id(tokenizer), batch_size, as_reference)


_MISSING = object()


def _row_value(row: dict, key: str):
    """`row[key]`, else the key inside `row["meta"]` (a dict or the JSON string `to_rows` writes); `_MISSING`
    when neither has it."""
    if key in row:
        return row.get(key)
    meta = row.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = None
    if isinstance(meta, dict) and key in meta:
        return meta[key]
    return _MISSING


def _py(x):
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    return x


@torch.no_grad()
def pair_diagnostics(policy, reference, tokenizer, rows: list[dict], beta: float, alpha: float = IDEAL_ALPHA,
                     max_length: int | None = None, batch_size: int = 32,
                     keep: Sequence[str] = ("id", "shortcut_agrees", "error")) -> list[dict]:
    """One dict of diagnostics per paired row (see the module docstring).

    Fields: `logp_chosen_ref`, `logp_rejected_ref`, `logp_chosen`, `logp_rejected` (summed log-probs);
    `d_chosen`, `d_rejected` (policy − reference); `margin_ref`, `margin` (chosen − rejected) and
    `margin_ideal` (`idealised_margin`); `ranked_ref`, `ranked`, `ranked_ideal` (margin > 0; ties incorrect);
    `ches`, `ln_ches` (reference model); `len_chosen`, `len_rejected`, `len_diff` (= chosen − rejected),
    `edit_distance` (token-level Levenshtein); then each `keep` key the row has, top-level or inside
    `row["meta"]`. `reference=None` means the policy with its LoRA adapters disabled (PEFT policies only).
    """
    from ptlab.train.step import is_peft

    clash = set(keep) & set(FIELDS)
    if clash:
        raise ValueError(f"keep names computed fields: {sorted(clash)}")
    idealised_margin(0.0, 0.0, beta, alpha)  # validate beta and alpha before any forward
    if reference is None and not is_peft(policy):
        raise ValueError("reference=None needs a LoRA (PEFT) policy, whose base is the reference")
    tok_rows = _tokenize(tokenizer, rows, max_length)
    pad_id = _pad_id(tokenizer)
    ref = _states(policy if reference is None else reference, tok_rows, pad_id, batch_size,
                  as_reference=reference is None)
    pol = _states(policy, tok_rows, pad_id, batch_size)

    lr, lp, lens = ref["logp"], pol["logp"], ref["len"]
    margin_ideal = idealised_margin(lr[:, 0], lr[:, 1], beta, alpha)
    with np.errstate(invalid="ignore"):
        ranked_ideal = margin_ideal > 0
    ches_s, ln_ches = ches(ref["h_sum"][:, 0], ref["h_sum"][:, 1], lens[:, 0], lens[:, 1])

    out = []
    for i, row in enumerate(rows):
        d = {}
        for k in keep:
            v = _row_value(row, k)
            if v is not _MISSING:
                d[k] = v
        ids_c, ids_r = ref["ids"][i]
        d.update({
            "logp_chosen_ref": lr[i, 0], "logp_rejected_ref": lr[i, 1],
            "logp_chosen": lp[i, 0], "logp_rejected": lp[i, 1],
            "d_chosen": lp[i, 0] - lr[i, 0], "d_rejected": lp[i, 1] - lr[i, 1],
            "margin_ref": lr[i, 0] - lr[i, 1], "margin": lp[i, 0] - lp[i, 1], "margin_ideal": margin_ideal[i],
            "ranked_ref": lr[i, 0] > lr[i, 1], "ranked": lp[i, 0] > lp[i, 1], "ranked_ideal": ranked_ideal[i],
            "ches": ches_s[i], "ln_ches": ln_ches[i],
            "len_chosen": lens[i, 0], "len_rejected": lens[i, 1], "len_diff": lens[i, 0] - lens[i, 1],
            "edit_distance": edit_distance(ids_c, ids_r),
        })
        out.append({k: _py(v) for k, v in d.items()})
    return out


def summarise(diags: list[dict]) -> dict:
    """Run-level summary of `pair_diagnostics` output.

    `n`; `ranking_accuracy`, `ranking_accuracy_ref`, `idealised_ranking_accuracy` (shares of pairs ranked
    correctly, ties incorrect) and `alignment_gap` (idealised − policy, Chen et al.); `mean_d_chosen`,
    `mean_d_rejected`; `share_chosen_down` (pairs with d_chosen < 0); `spearman_ln_ches_d_chosen` and its
    p-value `spearman_ln_ches_d_chosen_p` (scipy; Razin et al. predict a negative correlation). Values are
    NaN where undefined (no pairs; fewer than 3 pairs or a constant column for the correlation).
    """
    n = len(diags)

    def col(k):
        return np.array([d[k] for d in diags], dtype=np.float64)

    def mean(k):
        return float(col(k).mean()) if n else float("nan")

    rho = p = float("nan")
    if n >= 3:
        x, y = col("ln_ches"), col("d_chosen")
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
            from scipy.stats import spearmanr

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = spearmanr(x[ok], y[ok])
            rho, p = float(res.statistic), float(res.pvalue)
    acc, acc_ideal = mean("ranked"), mean("ranked_ideal")
    return {
        "n": n,
        "ranking_accuracy": acc,
        "ranking_accuracy_ref": mean("ranked_ref"),
        "idealised_ranking_accuracy": acc_ideal,
        "alignment_gap": acc_ideal - acc,
        "mean_d_chosen": mean("d_chosen"),
        "mean_d_rejected": mean("d_rejected"),
        "share_chosen_down": float((col("d_chosen") < 0).mean()) if n else float("nan"),
        "spearman_ln_ches_d_chosen": rho,
        "spearman_ln_ches_d_chosen_p": p,
    }


def grouped_summary(diags: list[dict]) -> dict:
    """`summarise` within groups of pairs by their attributes, as flat `<group>/<stat>` keys: all pairs; where the
    cue agrees / conflicts (rows with `has_feature` and `shortcut_agrees`); chosen longer than rejected or not;
    edit distance below / at-or-above the median of these pairs. Empty groups are left out."""
    edit = sorted(d["edit_distance"] for d in diags)[len(diags) // 2] if diags else 0
    groups = {"all": diags,
              "agree": [d for d in diags if d.get("has_feature") and d.get("shortcut_agrees")],
              "conflict": [d for d in diags if d.get("has_feature") and not d.get("shortcut_agrees")],
              "chosen_longer": [d for d in diags if d["len_diff"] > 0],
              "chosen_not_longer": [d for d in diags if d["len_diff"] <= 0],
              "edit_small": [d for d in diags if d["edit_distance"] < edit],
              "edit_large": [d for d in diags if d["edit_distance"] >= edit]}
    return {f"{group}/{k}": v for group, members in groups.items() if members
            for k, v in summarise(members).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
