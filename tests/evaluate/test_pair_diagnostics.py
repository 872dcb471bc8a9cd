"""Per-pair preference diagnostics: idealised ranking (Chen et al. 2024), CHES (Razin et al. 2024), displacement."""

import copy
import json
import math
import sys

import numpy as np
import pytest
import torch

from ptlab.evaluate.pair_diagnostics import (
    IDEAL_ALPHA,
    ches,
    edit_distance,
    idealised_correct,
    idealised_margin,
    pair_diagnostics,
    pair_states,
    summarise,
)

# ------------------------------------------------------------------------------------------------ pure parts

# Four pairs of summed reference log-probs (chosen, rejected):
#   1: (-10, -12) margin +2   reference right
#   2: (-15, -12) margin -3   reference wrong
#   3: (-20, -15) margin -5   reference wrong
#   4: ( -7,  -7) margin  0   a tie: reference wrong
REF_C = np.array([-10.0, -15.0, -20.0, -7.0])
REF_R = np.array([-12.0, -12.0, -15.0, -7.0])


def test_idealised_correct_hand_example():
    # beta = 0.5, alpha = 0.9: shift = log(0.9/0.1)/0.5 = 2 ln 9 = 4.394449...
    shift = 2 * math.log(9.0)
    assert shift == pytest.approx(4.394449154672439)
    np.testing.assert_allclose(idealised_margin(REF_C, REF_R, 0.5, 0.9),
                               [2 + shift, -3 + shift, -5 + shift, 0 + shift])  # 6.39, 1.39, -0.61, 4.39
    assert idealised_correct(REF_C, REF_R, beta=0.5, alpha=0.9).tolist() == [True, True, False, True]
    # a large beta barely moves the reference: shift = ln 9 / 10 = 0.2197
    assert idealised_correct(REF_C, REF_R, beta=10.0, alpha=0.9).tolist() == [True, False, False, True]
    # alpha = 0.5: no preference signal, the idealised model keeps the reference ranking (tie stays incorrect)
    ref_ranking = (REF_C > REF_R).tolist()
    assert ref_ranking == [True, False, False, False]
    for beta in (0.1, 1.0, 10.0):
        assert idealised_correct(REF_C, REF_R, beta=beta, alpha=0.5).tolist() == ref_ranking
    # alpha -> 1: every pair correct for finite beta (ln(0.999999/1e-6)/0.5 = 27.6 > 5)
    assert idealised_correct(REF_C, REF_R, beta=0.5, alpha=1 - 1e-6).all()
    for beta in (0.1, 1.0, 100.0):
        assert idealised_correct(REF_C, REF_R, beta=beta, alpha=1.0).all()
    assert idealised_correct(REF_C, REF_R, beta=1.0, alpha=0.0).tolist() == [False] * 4
    # per-pair alpha, beta = 1: log-odds [0, ln 9, ln 99, ln 0.25] = [0, 2.197, 4.595, -1.386]
    # margins: 2, -0.803, -0.405, -1.386
    alpha = np.array([0.5, 0.9, 0.99, 0.2])
    np.testing.assert_allclose(idealised_margin(REF_C, REF_R, 1.0, alpha),
                               [2.0, -3 + math.log(9), -5 + math.log(99), math.log(0.25)])
    assert idealised_correct(REF_C, REF_R, 1.0, alpha).tolist() == [True, False, False, False]
    assert IDEAL_ALPHA == 0.9


def test_idealised_rejects_bad_parameters():
    for beta in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta"):
            idealised_correct(REF_C, REF_R, beta=beta)
    for alpha in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            idealised_correct(REF_C, REF_R, beta=0.1, alpha=alpha)


def test_ches_hand_case():
    h_plus = np.array([[1.0, 2.0], [1.0, 1.0], [0.5, -1.0]])
    h_minus = np.array([[3.0, 0.0], [2.0, 2.0], [0.5, -1.0]])
    # pair 1: <h+,h-> = 3, |h+|^2 = 5 -> CHES = -2; lengths (2, 3): 3/6 - 5/4 = -0.75
    # pair 2: <h+,h-> = 4, |h+|^2 = 2 -> CHES = 2;  lengths (1, 4): 4/4 - 2/1 = -1
    # pair 3: identical sums -> CHES = 0; lengths (2, 2): 1.25/4 - 1.25/4 = 0
    score, ln = ches(h_plus, h_minus, [2, 1, 2], [3, 4, 2])
    np.testing.assert_allclose(score, [-2.0, 2.0, 0.0])
    np.testing.assert_allclose(ln, [-0.75, -1.0, 0.0])
    score1, ln1 = ches(h_plus, h_minus)  # without lengths: CHES only
    np.testing.assert_allclose(score1, score)
    assert np.isnan(ln1).all()


def test_edit_distance_dp_and_library_agree(monkeypatch):
    cases = [([], [1, 2], 2), ([1, 2, 3], [1, 2, 3], 0), ([5, 1, 2], [1, 2], 1),
             ([ord(c) for c in "kitten"], [ord(c) for c in "sitting"], 3), ([1, 2, 3, 4], [4, 3, 2, 1], 4)]
    for a, b, want in cases:
        assert edit_distance(a, b) == want
    monkeypatch.setitem(sys.modules, "rapidfuzz", None)  # force the fallback DP
    monkeypatch.setitem(sys.modules, "rapidfuzz.distance", None)
    for a, b, want in cases:
        assert edit_distance(a, b) == want == edit_distance(b, a)


def test_summarise_hand_case():
    diags = [
        {"ranked": True, "ranked_ref": True, "ranked_ideal": True, "d_chosen": -1.0, "d_rejected": -2.0, "ln_ches": 1.0},
        {"ranked": False, "ranked_ref": True, "ranked_ideal": True, "d_chosen": -2.0, "d_rejected": -3.0, "ln_ches": 3.0},
        {"ranked": True, "ranked_ref": False, "ranked_ideal": True, "d_chosen": 0.5, "d_rejected": 0.0, "ln_ches": -2.0},
        {"ranked": True, "ranked_ref": False, "ranked_ideal": True, "d_chosen": -0.1, "d_rejected": -1.0, "ln_ches": 0.0},
    ]
    s = summarise(diags)
    assert s["n"] == 4
    assert s["ranking_accuracy"] == 0.75 and s["ranking_accuracy_ref"] == 0.5
    assert s["idealised_ranking_accuracy"] == 1.0 and s["alignment_gap"] == 0.25
    assert s["mean_d_chosen"] == pytest.approx(-0.65) and s["mean_d_rejected"] == pytest.approx(-1.5)
    assert s["share_chosen_down"] == 0.75
    # ranks of ln_ches [3, 4, 1, 2] against d_chosen [2, 1, 4, 3]: exactly reversed -> rho = -1
    assert s["spearman_ln_ches_d_chosen"] == pytest.approx(-1.0)
    empty = summarise([])
    assert empty["n"] == 0 and math.isnan(empty["ranking_accuracy"]) and math.isnan(empty["spearman_ln_ches_d_chosen"])


# ------------------------------------------------------------------------------------------- the tiny model


@pytest.fixture(scope="module")
def tiny():
    from ptlab.models import load

    torch.manual_seed(0)
    model, tok = load("tiny")
    model.eval()
    return model, tok


@pytest.fixture(scope="module")
def rows():
    from ptlab.tasks import get_task
    from ptlab.tasks.rows import to_rows

    return to_rows(get_task("math").generate(8, seed=0, split="train"), "paired")


def test_pair_states_match_training_logps_and_manual_hidden_states(tiny, rows):
    from ptlab.data.tokenize import tokenize_rows
    from ptlab.evaluate.ranking import pair_logps

    model, tok = tiny
    st = pair_states(model, tok, rows)
    n, d = len(rows), model.config.hidden_size
    assert st["logp"].shape == (n, 2) and st["h_sum"].shape == (n, 2, d) and st["len"].shape == (n, 2)
    np.testing.assert_allclose(st["logp"], pair_logps(model, tok, rows), rtol=1e-6, atol=1e-6)
    small = pair_states(model, tok, rows, batch_size=3)  # other padding, same numbers
    np.testing.assert_allclose(small["logp"], st["logp"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(small["h_sum"], st["h_sum"], rtol=1e-5, atol=1e-4)

    tok_rows = tokenize_rows(tok, [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows], "paired")
    assert st["len"].tolist() == [[len(t.completions[0]), len(t.completions[1])] for t in tok_rows]
    assert st["ids"] == [(t.completions[0], t.completions[1]) for t in tok_rows]
    assert all(c[-1] == tok.eos_token_id for pair in st["ids"] for c in pair)  # EOS counts, as in training

    # manual loop, one unpadded sequence at a time: the shortest pair (padded inside the batch) and the longest
    lengths = [len(t.prompt_ids) + max(map(len, t.completions)) for t in tok_rows]
    for i in {int(np.argmin(lengths)), int(np.argmax(lengths))}:
        p = tok_rows[i].prompt_ids
        for s in (0, 1):
            ids = p + tok_rows[i].completions[s]
            with torch.no_grad():
                out = model(torch.tensor([ids]), output_hidden_states=True)
            h = out.hidden_states[-1][0].double()
            pos = list(range(len(p) - 1, len(ids) - 1))  # prompt length - 1 ... total - 2
            np.testing.assert_allclose(st["h_sum"][i, s], h[pos].sum(0).numpy(), rtol=1e-4, atol=1e-4)
            logprobs = torch.log_softmax(out.logits[0].double(), -1)
            manual = sum(logprobs[t, ids[t + 1]].item() for t in pos)
            assert st["logp"][i, s] == pytest.approx(manual, abs=1e-3)
            assert st["len"][i, s] == len(ids) - len(p)


def test_pair_diagnostics_same_model_has_no_displacement(tiny, rows):
    model, tok = tiny
    diags = pair_diagnostics(model, model, tok, rows, beta=0.1, keep=("id", "error", "steps", "not_a_column"))
    assert len(diags) == len(rows)
    st = pair_states(model, tok, rows)
    want_ches, want_ln = ches(st["h_sum"][:, 0], st["h_sum"][:, 1], st["len"][:, 0], st["len"][:, 1])
    ideal = idealised_correct(st["logp"][:, 0], st["logp"][:, 1], 0.1, IDEAL_ALPHA)
    for i, (d, row) in enumerate(zip(diags, rows)):
        assert d["d_chosen"] == pytest.approx(0.0, abs=1e-9) and d["d_rejected"] == pytest.approx(0.0, abs=1e-9)
        assert d["ranked"] == d["ranked_ref"] == (st["logp"][i, 0] > st["logp"][i, 1])
        assert d["ranked_ideal"] == bool(ideal[i])
        assert d["ches"] == pytest.approx(want_ches[i]) and d["ln_ches"] == pytest.approx(want_ln[i])
        assert (d["len_chosen"], d["len_rejected"]) == tuple(st["len"][i])
        assert d["len_diff"] == d["len_chosen"] - d["len_rejected"]
        assert d["edit_distance"] == edit_distance(*st["ids"][i])
        assert d["id"] == row["id"] and d["error"] == row["error"]
        assert d["steps"] == json.loads(row["meta"])["steps"]  # flattened from the meta JSON
        assert "not_a_column" not in d
        assert all(type(v) in (bool, int, float, str, type(None)) for v in d.values())  # plain, JSON-ready
    s = summarise(diags)
    assert s["n"] == 8 and s["mean_d_chosen"] == pytest.approx(0.0, abs=1e-9) and s["share_chosen_down"] == 0.0
    assert s["ranking_accuracy"] == s["ranking_accuracy_ref"]
    with pytest.raises(ValueError, match="keep"):
        pair_diagnostics(model, model, tok, rows, beta=0.1, keep=("ches",))
    with pytest.raises(ValueError, match="PEFT"):
        pair_diagnostics(model, None, tok, rows, beta=0.1)


def test_pair_diagnostics_perturbed_policy(tiny, rows):
    from ptlab.evaluate.ranking import pair_logps

    model, tok = tiny
    policy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        w = policy.get_output_embeddings().weight
        w.add_(0.05 * torch.randn(w.shape, generator=gen))
    diags = pair_diagnostics(policy, model, tok, rows, beta=0.1)
    ref, pol = pair_logps(model, tok, rows), pair_logps(policy, tok, rows)
    dc = np.array([d["d_chosen"] for d in diags])
    dr = np.array([d["d_rejected"] for d in diags])
    assert np.abs(dc).min() > 1e-4 and np.abs(dr).min() > 1e-4
    np.testing.assert_allclose([[d["logp_chosen"], d["logp_rejected"]] for d in diags], pol, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose([[d["logp_chosen_ref"], d["logp_rejected_ref"]] for d in diags], ref,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dc, pol[:, 0] - ref[:, 0], atol=1e-9)
    np.testing.assert_allclose(dr, pol[:, 1] - ref[:, 1], atol=1e-9)
    assert [d["ranked"] for d in diags] == (pol[:, 0] > pol[:, 1]).tolist()
    assert [d["ranked_ref"] for d in diags] == (ref[:, 0] > ref[:, 1]).tolist()
    # CHES is a reference-model quantity: unchanged by the policy
    same = pair_diagnostics(model, model, tok, rows, beta=0.1)
    np.testing.assert_allclose([d["ches"] for d in diags], [d["ches"] for d in same])
    s = summarise(diags)
    assert s["mean_d_chosen"] == pytest.approx(dc.mean()) and s["share_chosen_down"] == pytest.approx((dc < 0).mean())
    assert -1.0 <= s["spearman_ln_ches_d_chosen"] <= 1.0


def test_grouped_summary_splits_pairs_by_their_attributes():
    from ptlab.evaluate.pair_diagnostics import grouped_summary

    def pair(agrees, len_diff, edit, ranked):
        return {"has_feature": True, "shortcut_agrees": agrees, "len_diff": len_diff, "edit_distance": edit,
                "ranked": ranked, "ranked_ref": False, "ranked_ideal": True, "d_chosen": -1.0, "d_rejected": -2.0,
                "ln_ches": 0.0}

    diags = [pair(True, 2, 1, True), pair(True, 0, 5, True), pair(False, -1, 9, False), pair(False, 3, 7, True)]
    g = grouped_summary(diags)
    assert g["all/n"] == 4 and g["agree/n"] == 2 and g["conflict/n"] == 2
    assert g["agree/ranking_accuracy"] == 1.0 and g["conflict/ranking_accuracy"] == 0.5
    assert g["chosen_longer/n"] == 2 and g["chosen_not_longer/n"] == 2
    assert (g["edit_small/n"], g["edit_large/n"]) == (2, 2)  # median 7: {1, 5} below, {7, 9} at or above
    assert g["all/share_chosen_down"] == 1.0 and "all/idealised_ranking_accuracy" in g
