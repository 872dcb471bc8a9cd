"""Parity with TRL 1.16: `ptlab.train.batch_loss` gives TRL's loss and metrics on the same batch.

The same model, tokenizer and rows go through TRL's own trainer — built on a
one-batch dataset (`per_device_train_batch_size = len(rows)`, sequential
sampling), so TRL tokenises, collates and computes the loss itself through
`compute_loss` — and through `batch_loss`. Losses agree to 1e-5 relative, and
so do the metrics both report under TRL's names (see `assert_close` for the
scale that "relative" refers to for rewards and the KL estimate).

* DPO and KTO use a reference that differs from the policy (a perturbed copy),
  so log-ratios, rewards and KTO's KL term are non-zero.
* Each TRL trainer gets its own copy of the models: TRL patches `forward`
  (fused LM head) and disables dropout in place; ptlab sees the untouched model.
* Prompts and completions differ in length, so padding and masking matter;
  `test_*_token_ids*` pin that both feed the model the same token ids.

Known differences, tested as such rather than hidden:
* ORPO: TRL's ORPOTrainer takes the NLL term over the chosen prompt *and*
  completion; ptlab over the completion only (see `orpo_completion_nll`).
* CPOTrainer/ORPOTrainer (trl.experimental) still tokenise the old way, which
  differs from TRL's DPO/KTO/SFT (and ptlab) when tokens merge across the
  prompt/completion boundary; such rows are compared on identical token ids.
* A prompt that fills `max_length`: TRL silently drops the row, ptlab raises.
* AlphaPO (`alpha` ≠ 0) on summed log-probs overflows float32 in both, so it is
  checked on length-averaged ones (ipo, simpo).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("trl")

import datasets  # noqa: E402
from datasets import Dataset  # noqa: E402

from ptlab.data.batching import collate, collate_kl  # noqa: E402
from ptlab.data.tokenize import tokenize_rows  # noqa: E402
from ptlab.errors import DataError  # noqa: E402
from ptlab.models import load  # noqa: E402
from ptlab.train import batch_loss  # noqa: E402

datasets.disable_progress_bars()

REL = 1e-5  # relative tolerance on losses and metrics

PAIRED_ROWS = [
    {"prompt": "The capital of France is", "chosen": " Paris.", "rejected": " a big city, I think."},
    {"prompt": "Q: 2+2?\nA:", "chosen": " 4", "rejected": " 5, or maybe 22"},
    {
        "prompt": "Write a haiku about the sea and the long grey sky above it:",
        "chosen": " waves fold into foam\n",
        "rejected": " no",
    },
    {"prompt": "Hi", "chosen": " Hello there! How can I help?", "rejected": " Go away."},
    {"prompt": "Name a colour.", "chosen": " Blue", "rejected": " Seven hundred"},
]

UNPAIRED_ROWS = [
    {"prompt": "The capital of France is", "completion": " Paris.", "label": True},
    {"prompt": "Q: 2+2?\nA:", "completion": " 5, or maybe 22", "label": False},
    {
        "prompt": "Write a haiku about the sea and the long grey sky above it:",
        "completion": " waves fold into foam\n",
        "label": True,
    },
    {"prompt": "Hi", "completion": " Go away.", "label": False},
    {"prompt": "Name a colour.", "completion": " Blue", "label": True},
    {"prompt": "Say something kind to a friend who is sad today.", "completion": " no", "label": False},
]

SFT_ROWS = [
    {"prompt": "The capital of France is", "completion": " Paris."},
    {"prompt": "Q: 2+2?\nA:", "completion": " 4"},
    {"prompt": "Write a haiku about the sea and the long grey sky above it:", "completion": " waves fold into foam\n"},
    {"prompt": "Hi", "completion": " Hello there! How can I help you today?"},
]


def _chat(text: str, role: str = "user") -> list[dict]:
    return [{"role": role, "content": text}]


CHAT_PAIRED_ROWS = [
    {"prompt": _chat(r["prompt"]), "chosen": _chat(r["chosen"].strip(), "assistant"),
     "rejected": _chat(r["rejected"].strip(), "assistant")}
    for r in PAIRED_ROWS
]
CHAT_SFT_ROWS = [
    {"prompt": _chat(r["prompt"]), "completion": _chat(r["completion"].strip(), "assistant")} for r in SFT_ROWS
]

# A prompt ending in a space: " 4" is one token, so tokens merge across the boundary for the
# chosen completion, and not for the rejected one (see test_old_style_trainers_on_identical_token_ids).
MERGE_ROWS = [*PAIRED_ROWS[:3], {"prompt": "Q: 2+2?\nA: ", "chosen": "4", "rejected": "\n5 I think"}]

PAIRED_METRICS = [
    "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
    "logps/chosen", "logps/rejected", "mean_token_accuracy",
]
UNPAIRED_METRICS = ["rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected", "kl"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """A 0.2M-parameter model on a shared CPU runs several times faster on one thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def models(_one_thread):
    """(policy, reference, tokenizer): the reference is the policy plus seeded noise."""
    policy, tokenizer = load("tiny-test")
    policy.eval()
    ref = copy.deepcopy(policy)
    gen = torch.Generator().manual_seed(2)  # a seed where KTO's KL estimate is > 0 (not clamped)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return policy, ref, tokenizer


# ------------------------------------------------------------------------------------------ helpers


def trl_args(config_cls, tmp_path_factory, n_rows: int, **kwargs):
    return config_cls(
        output_dir=str(tmp_path_factory.mktemp("trl")),
        per_device_train_batch_size=n_rows,
        train_sampling_strategy="sequential",
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        bf16=False,
        dataloader_num_workers=0,
        **kwargs,
    )


def one_batch(trainer) -> dict:
    """TRL's one training batch, through its own dataloader and collator."""
    batches = list(trainer.get_train_dataloader())
    assert len(batches) == 1
    return batches[0]


def trl_step(trainer, batch) -> tuple[float, dict[str, float]]:
    """TRL's loss for `batch` and the metrics it logged for it."""
    trainer.model.train()  # metrics are logged under "train"
    loss = float(trainer.compute_loss(trainer.model, batch).detach())
    store = trainer._metrics if hasattr(trainer, "_metrics") else trainer._stored_metrics  # old-style trainers
    return loss, {k: v[-1] for k, v in store["train"].items() if v}


def assert_close(ours, theirs, what: str, scale: float = 0.0) -> None:
    """|ours − theirs| ≤ REL · max(|theirs|, scale).

    `scale` is the size of the numbers a metric is computed from. A reward
    β (log π − log π_ref) is a small difference of two sequence log-probs of
    order −50 that each library sums in float32 in its own order (each ~1e-7
    relative off a float64 computation), so it can agree to REL relative to
    β·|log π|, not to its own, much smaller, size.
    """
    ours, theirs = float(ours), float(theirs)
    assert math.isfinite(ours) and math.isfinite(theirs), (what, ours, theirs)
    tol = REL * max(abs(theirs), scale, 1e-12)
    assert abs(ours - theirs) <= tol, f"{what}: ptlab {ours!r} != TRL {theirs!r} (tol {tol:.3g})"


def assert_metrics_close(ours: dict, theirs: dict, names: list[str], what: str, beta: float) -> None:
    logp_scale = max(abs(theirs["logps/chosen"]), abs(theirs["logps/rejected"]))
    for name in names:
        assert name in ours, f"{what}: ptlab reports no metric {name!r}"
        assert name in theirs, f"{what}: TRL logged no metric {name!r}"
        if name.startswith("rewards/"):
            scale = beta * logp_scale
        elif name == "kl" or name.startswith("log_odds"):  # differences of (mean) log-probs
            scale = logp_scale
        else:
            scale = 0.0
        assert_close(ours[name], theirs[name], f"{what} {name}", scale=scale)


# ---------------------------------------------------------------------------------------------- DPO

DPO_CASES = {
    **{t: {"loss_type": t} for t in [
        "sigmoid", "hinge", "ipo", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
        "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
    ]},
    "exo_pair": {"loss_type": "exo_pair", "label_smoothing": 1e-3},
    "exo_pair-label_smoothing0.2": {"loss_type": "exo_pair", "label_smoothing": 0.2},
    "robust": {"loss_type": "robust", "label_smoothing": 0.1},
    "sigmoid-beta0.25": {"loss_type": "sigmoid", "beta": 0.25},
    "sigmoid-label_smoothing": {"loss_type": "sigmoid", "label_smoothing": 0.2},  # ignored by both
    "aot-label_smoothing": {"loss_type": "aot", "label_smoothing": 0.2},
    "aot_unpaired-label_smoothing": {"loss_type": "aot_unpaired", "label_smoothing": 0.2},
    "discopop-tau": {"loss_type": "discopop", "discopop_tau": 0.5},
    "sigmoid-ld_alpha": {"loss_type": "sigmoid", "ld_alpha": 0.5},
    "ipo-ld_alpha": {"loss_type": "ipo", "ld_alpha": 0.3},
    "mixture": {"loss_type": ["sigmoid", "sft", "bco_pair"], "loss_weights": [0.8, 0.3, 1.0]},
    "mixture-unweighted": {"loss_type": ["apo_zero", "hinge"]},
    "forward_kl": {"loss_type": "sigmoid", "f_divergence_type": "forward_kl"},
    "js_divergence": {"loss_type": "sigmoid", "f_divergence_type": "js_divergence"},
    "alpha_divergence": {
        "loss_type": "sigmoid", "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 0.5,
    },
    "alpha_divergence-1": {  # the reverse-KL limit
        "loss_type": "sigmoid", "f_divergence_type": "alpha_divergence", "f_alpha_divergence_coef": 1.0,
    },
    "js_divergence-ipo": {"loss_type": "ipo", "f_divergence_type": "js_divergence"},
    "forward_kl-mixture": {"loss_type": ["hinge", "robust"], "label_smoothing": 0.1, "f_divergence_type": "forward_kl"},
}


def dpo_trainer(models, tmp_path_factory, rows=PAIRED_ROWS, **params):
    from trl import DPOConfig, DPOTrainer

    policy, ref, tokenizer = models
    return DPOTrainer(
        model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
        args=trl_args(DPOConfig, tmp_path_factory, len(rows), **params),
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    )


@pytest.mark.parametrize("rows", [PAIRED_ROWS, MERGE_ROWS, CHAT_PAIRED_ROWS], ids=["text", "merge", "chat"])
def test_dpo_token_ids_match_trl(models, tmp_path_factory, rows):
    tokenizer = models[2]
    batch = one_batch(dpo_trainer(models, tmp_path_factory, rows))
    seqs = collate(tokenize_rows(tokenizer, rows, "paired"), tokenizer.pad_token_id)
    assert torch.equal(batch["input_ids"], seqs.input_ids)
    assert torch.equal(batch["completion_mask"], seqs.completion_mask)


@pytest.mark.parametrize("case", list(DPO_CASES))
def test_dpo_matches_trl(models, tmp_path_factory, case):
    params = DPO_CASES[case]
    policy, ref, tokenizer = models
    trainer = dpo_trainer(models, tmp_path_factory, **params)
    trl_loss, trl_m = trl_step(trainer, one_batch(trainer))
    loss, metrics = batch_loss(policy, tokenizer, PAIRED_ROWS, "dpo", ref_model=ref, **params)
    assert_close(loss.detach(), trl_loss, f"dpo {case} loss")
    assert_metrics_close(metrics, trl_m, PAIRED_METRICS, f"dpo {case}", params.get("beta", 0.1))
    # the reference really differs from the policy, so the log-ratios are exercised
    assert abs(metrics["rewards/chosen"]) > 1e-3 and abs(metrics["rewards/rejected"]) > 1e-3


def test_dpo_chat_rows_match_trl(models, tmp_path_factory):
    policy, ref, tokenizer = models
    trainer = dpo_trainer(models, tmp_path_factory, CHAT_PAIRED_ROWS)
    trl_loss, trl_m = trl_step(trainer, one_batch(trainer))
    loss, metrics = batch_loss(policy, tokenizer, CHAT_PAIRED_ROWS, "dpo", ref_model=ref)
    assert_close(loss.detach(), trl_loss, "dpo chat loss")
    assert_metrics_close(metrics, trl_m, PAIRED_METRICS, "dpo chat", 0.1)


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_truncation_matches_trl(models, tmp_path_factory, loss_type):
    """max_length cuts completions (keep_start, EOS lost) the same way in both."""
    policy, ref, tokenizer = models
    rows, max_length = [r for r in PAIRED_ROWS if not r["prompt"].startswith("Write")], 16
    trainer = dpo_trainer(models, tmp_path_factory, rows, max_length=max_length, loss_type=loss_type)
    batch = one_batch(trainer)
    seqs = collate(tokenize_rows(tokenizer, rows, "paired", max_length), tokenizer.pad_token_id)
    assert batch["input_ids"].shape[1] == max_length  # truncation happened
    assert torch.equal(batch["input_ids"], seqs.input_ids)
    assert torch.equal(batch["completion_mask"], seqs.completion_mask)
    trl_loss, trl_m = trl_step(trainer, batch)
    loss, metrics = batch_loss(
        policy, tokenizer, rows, "dpo", ref_model=ref, max_length=max_length, loss_type=loss_type
    )
    assert_close(loss.detach(), trl_loss, f"dpo {loss_type} max_length loss")
    assert_metrics_close(metrics, trl_m, PAIRED_METRICS, f"dpo {loss_type} max_length", 0.1)


def test_prompt_filling_max_length_is_an_error_where_trl_drops_the_row(models, tmp_path_factory):
    """A deliberate difference: TRL silently drops a row whose prompt fills max_length; ptlab names it."""
    policy, ref, tokenizer = models
    trainer = dpo_trainer(models, tmp_path_factory, max_length=16)
    assert len(trainer.train_dataset) == len(PAIRED_ROWS) - 1
    with pytest.raises(DataError, match="row 3.*max_length=16"):
        batch_loss(policy, tokenizer, PAIRED_ROWS, "dpo", ref_model=ref, max_length=16)


# ---------------------------------------------------------------------------------------------- KTO

KTO_CASES = {
    "kto": {"loss_type": "kto"},
    "kto-weights": {"loss_type": "kto", "desirable_weight": 1.5, "undesirable_weight": 0.7},
    "kto-beta0.25": {"loss_type": "kto", "beta": 0.25, "undesirable_weight": 1.2},
    "apo_zero_unpaired": {"loss_type": "apo_zero_unpaired"},
    "apo_zero_unpaired-weights": {"loss_type": "apo_zero_unpaired", "desirable_weight": 0.6, "undesirable_weight": 1.3},
}


def kto_trainer(models, tmp_path_factory, rows=UNPAIRED_ROWS, **params):
    from trl import KTOConfig, KTOTrainer

    policy, ref, tokenizer = models
    # One batch = all rows: TRL pairs each prompt with the previous row's completion within a
    # `per_device_train_batch_size` chunk of the dataset, ptlab within the rows of `batch_loss`.
    return KTOTrainer(
        model=copy.deepcopy(policy), ref_model=copy.deepcopy(ref),
        args=trl_args(KTOConfig, tmp_path_factory, len(rows), **params),
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    )


def check_kto_ids(batch, tokenizer, rows, max_length=None):
    tok = tokenize_rows(tokenizer, rows, "unpaired", max_length, kl_chunk=len(rows))
    assert torch.equal(batch["input_ids"], collate(tok, tokenizer.pad_token_id).input_ids)
    assert torch.equal(batch["KL_input_ids"], collate_kl(tok, tokenizer.pad_token_id).input_ids)
    assert torch.equal(batch["KL_completion_mask"], collate_kl(tok, tokenizer.pad_token_id).completion_mask)
    assert batch["label"].tolist() == [r["label"] for r in rows]


def test_kto_token_ids_match_trl(models, tmp_path_factory):
    check_kto_ids(one_batch(kto_trainer(models, tmp_path_factory)), models[2], UNPAIRED_ROWS)


@pytest.mark.parametrize("case", list(KTO_CASES))
def test_kto_matches_trl(models, tmp_path_factory, case):
    params = KTO_CASES[case]
    policy, ref, tokenizer = models
    trainer = kto_trainer(models, tmp_path_factory, **params)
    trl_loss, trl_m = trl_step(trainer, one_batch(trainer))
    loss, metrics = batch_loss(policy, tokenizer, UNPAIRED_ROWS, "kto", ref_model=ref, **params)
    assert_close(loss.detach(), trl_loss, f"kto {case} loss")
    assert_metrics_close(metrics, trl_m, UNPAIRED_METRICS, f"kto {case}", params.get("beta", 0.1))
    if params["loss_type"] == "kto":
        assert metrics["kl"] > 1e-3  # the KL term is exercised, not clamped to zero
    else:
        assert metrics["kl"] == 0.0  # apo_zero_unpaired has no KL term; TRL logs 0


def test_kto_truncation_matches_trl(models, tmp_path_factory):
    """max_length cuts completions and the mismatched KL completions alike."""
    policy, ref, tokenizer = models
    rows = [r for r in UNPAIRED_ROWS if not r["prompt"].startswith(("Write", "Say"))]
    max_length = 16
    trainer = kto_trainer(models, tmp_path_factory, rows, max_length=max_length)
    batch = one_batch(trainer)
    assert batch["KL_input_ids"].shape[1] == max_length  # a KL sequence was truncated
    check_kto_ids(batch, tokenizer, rows, max_length)
    trl_loss, trl_m = trl_step(trainer, batch)
    loss, metrics = batch_loss(policy, tokenizer, rows, "kto", ref_model=ref, max_length=max_length)
    assert_close(loss.detach(), trl_loss, "kto max_length loss")
    assert_metrics_close(metrics, trl_m, UNPAIRED_METRICS, "kto max_length", 0.1)


# ---------------------------------------------------------------------------------------------- SFT


@pytest.mark.parametrize("rows", [SFT_ROWS, CHAT_SFT_ROWS], ids=["text", "chat"])
def test_sft_matches_trl(models, tmp_path_factory, rows):
    from trl import SFTConfig, SFTTrainer

    policy, _, tokenizer = models
    trainer = SFTTrainer(
        model=copy.deepcopy(policy), args=trl_args(SFTConfig, tmp_path_factory, len(rows)),
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    )
    batch = one_batch(trainer)
    seqs = collate(tokenize_rows(tokenizer, rows, "sft"), tokenizer.pad_token_id)
    assert torch.equal(batch["input_ids"], seqs.input_ids)
    assert torch.equal(batch["labels"] != -100, seqs.completion_mask.bool())  # completion-only loss
    trl_loss, trl_m = trl_step(trainer, batch)
    loss, metrics = batch_loss(policy, tokenizer, rows, "sft")
    assert_close(loss.detach(), trl_loss, "sft loss")
    assert_close(metrics["mean_token_accuracy"], trl_m["mean_token_accuracy"], "sft mean_token_accuracy")
    if rows is CHAT_SFT_ROWS:  # ptlab's `messages` rows: the last (assistant) turn is the completion
        as_messages = [{"messages": r["prompt"] + r["completion"]} for r in rows]
        loss_m, _ = batch_loss(policy, tokenizer, as_messages, "sft")
        assert_close(loss_m.detach(), trl_loss, "sft messages loss")


# ------------------------------------------------------------------------------------ CPO / SimPO / ORPO
# trl.experimental's CPOTrainer and ORPOTrainer tokenise the older way (`build_tokenized_answer`).
# On PAIRED_ROWS that gives ptlab's token ids (checked below), so the trainers run unchanged.

CPO_CASES = {
    "cpo-sigmoid": ("cpo", {"loss_type": "sigmoid"}),
    "cpo-sigmoid-label_smoothing": ("cpo", {"loss_type": "sigmoid", "label_smoothing": 0.1}),
    "cpo-hinge": ("cpo", {"loss_type": "hinge"}),
    "cpo-ipo": ("cpo", {"loss_type": "ipo"}),
    "cpo-cpo_alpha0.5": ("cpo", {"loss_type": "sigmoid", "cpo_alpha": 0.5, "beta": 0.2}),
    "cpo-ipo-alphapo": ("cpo", {"loss_type": "ipo", "alpha": 0.1}),
    "simpo": ("simpo", {}),
    "simpo-gamma": ("simpo", {"beta": 2.5, "simpo_gamma": 1.0, "label_smoothing": 0.1}),
    "simpo-alphapo": ("simpo", {"alpha": 0.25}),
    "cpo-simpo": ("simpo", {"cpo_alpha": 0.5}),
}


def trl_cpo_params(objective: str, params: dict) -> dict:
    """CPOConfig for ptlab's `cpo` / `simpo` params (ptlab's SimPO defaults spelled out)."""
    if objective == "simpo":
        return {"beta": 2.0, "cpo_alpha": 0.0, "simpo_gamma": 0.5, **params, "loss_type": "simpo"}
    return dict(params)


def cpo_trainer(models, tmp_path_factory, rows=PAIRED_ROWS, **params):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    policy, _, tokenizer = models
    return CPOTrainer(
        model=copy.deepcopy(policy), args=trl_args(CPOConfig, tmp_path_factory, len(rows), **params),
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    )


def orpo_trainer(models, tmp_path_factory, rows=PAIRED_ROWS, **params):
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    policy, _, tokenizer = models
    return ORPOTrainer(
        model=copy.deepcopy(policy), args=trl_args(ORPOConfig, tmp_path_factory, len(rows), **params),
        train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
    )


def old_style_batch(tokenizer, rows) -> dict:
    """ptlab's token ids in CPOTrainer/ORPOTrainer's batch layout (right-padded, prompt labels −100)."""
    tok = tokenize_rows(tokenizer, rows, "paired")
    batch = {}
    for k, side in enumerate(("chosen", "rejected")):
        seqs = [r.prompt_ids + r.completions[k] for r in tok]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        for i, (r, seq) in enumerate(zip(tok, seqs)):
            ids[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
            labels[i, len(r.prompt_ids) : len(seq)] = torch.tensor(r.completions[k])
        batch.update({f"{side}_input_ids": ids, f"{side}_attention_mask": mask, f"{side}_labels": labels})
    return batch


def same_rows(theirs: dict, ours: dict, key: str, i: int) -> bool:
    """Row i of `key` in both batches, padding ignored; for labels, also where the completion starts."""
    a, b = theirs[key][i], ours[key][i]
    if key.endswith("labels"):
        keep_a, keep_b = a != -100, b != -100
        same_start = keep_a.int().argmax() == keep_b.int().argmax()
        return bool(same_start) and a[keep_a].tolist() == b[keep_b].tolist()
    mask = key.replace("input_ids", "attention_mask")
    return a[theirs[mask][i].bool()].tolist() == b[ours[mask][i].bool()].tolist()


def test_cpo_orpo_token_ids_match_trl_on_these_rows(models, tmp_path_factory):
    ours = old_style_batch(models[2], PAIRED_ROWS)
    for trainer in (cpo_trainer(models, tmp_path_factory), orpo_trainer(models, tmp_path_factory)):
        theirs = one_batch(trainer)
        for key in ("chosen_input_ids", "rejected_input_ids", "chosen_labels", "rejected_labels"):
            for i in range(len(PAIRED_ROWS)):
                assert same_rows(theirs, ours, key, i), (type(trainer).__name__, key, i)


@pytest.mark.parametrize("case", list(CPO_CASES))
def test_cpo_simpo_match_trl(models, tmp_path_factory, case):
    objective, params = CPO_CASES[case]
    policy, _, tokenizer = models
    trl_params = trl_cpo_params(objective, params)
    trainer = cpo_trainer(models, tmp_path_factory, **trl_params)
    trl_loss, trl_m = trl_step(trainer, one_batch(trainer))
    loss, metrics = batch_loss(policy, tokenizer, PAIRED_ROWS, objective, **params)
    assert_close(loss.detach(), trl_loss, f"{case} loss")
    names = [n for n in PAIRED_METRICS if n != "mean_token_accuracy"]
    if trl_params.get("cpo_alpha", 1.0) != 0:
        names.append("nll_loss")
    assert_metrics_close(metrics, trl_m, names, case, trl_params.get("beta", 0.1))


def orpo_completion_nll(trainer, batch) -> float:
    """ORPO's NLL term over the chosen *completion* tokens, from TRL's own forward and labels.

    TRL's ORPOTrainer takes the NLL over the whole chosen sequence, prompt included
    (`labels = input_ids` wherever attention_mask is 1); ptlab's ORPO — like its SFT,
    and like TRL's own CPO NLL term — over the completion only. So the ORPO tests check
    the odds-ratio part (metrics), the NLL part against this completion-only NLL, and the
    loss as TRL's loss with this NLL swapped in for TRL's.
    """
    n = batch["chosen_labels"].shape[0]
    cat = trainer.concatenated_inputs(batch, padding_value=trainer.padding_value)
    with torch.no_grad():
        logits = trainer.model(
            cat["concatenated_input_ids"][:n], attention_mask=cat["concatenated_attention_mask"][:n], use_cache=False
        ).logits
    labels = cat["concatenated_labels"][:n]
    return float(F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100))


ORPO_METRICS = [n for n in PAIRED_METRICS if n != "mean_token_accuracy"] + ["log_odds_ratio", "log_odds_chosen"]


def check_orpo(trainer, batch, trl_loss: float, trl_m: dict, loss, metrics: dict, beta: float, what: str):
    assert_metrics_close(metrics, trl_m, ORPO_METRICS, what, beta)  # the odds-ratio part is identical
    completion_nll = orpo_completion_nll(trainer, batch)
    assert abs(trl_m["nll_loss"] - completion_nll) > 1e-3  # TRL's NLL really does include the prompt
    assert_close(metrics["nll_loss"], completion_nll, f"{what} nll_loss (completion tokens)")
    expected = trl_loss - trl_m["nll_loss"] + completion_nll
    assert_close(loss.detach(), expected, f"{what} loss (TRL's, completion-only NLL)", scale=abs(trl_loss))


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_orpo_matches_trl(models, tmp_path_factory, beta):
    policy, _, tokenizer = models
    trainer = orpo_trainer(models, tmp_path_factory, beta=beta)
    batch = one_batch(trainer)
    trl_loss, trl_m = trl_step(trainer, batch)
    loss, metrics = batch_loss(policy, tokenizer, PAIRED_ROWS, "orpo", beta=beta)
    check_orpo(trainer, batch, trl_loss, trl_m, loss, metrics, beta, f"orpo beta={beta}")


@pytest.mark.parametrize("objective", ["cpo", "simpo", "orpo"])
def test_old_style_trainers_on_identical_token_ids(models, tmp_path_factory, objective):
    """Where CPOTrainer/ORPOTrainer tokenise differently, compare on ptlab's token ids.

    TRL's DPO/KTO/SFT trainers (and ptlab) start every completion of a row at the common
    prefix of the prompt's and each prompt+completion's token ids. The older
    `build_tokenized_answer` cuts chosen and rejected each at its own boundary, so on the
    last MERGE_ROWS row (" 4" merges across the boundary, "\\n5" does not) the rejected
    completion starts one token later. ptlab's tokenisation, in those trainers' batch
    layout, goes through their own `get_batch_loss_metrics`.
    """
    policy, _, tokenizer = models
    if objective == "orpo":
        trainer, params, beta = orpo_trainer(models, tmp_path_factory, MERGE_ROWS), {}, 0.1
    else:
        params = {}
        trl_params = trl_cpo_params(objective, params)
        trainer, beta = cpo_trainer(models, tmp_path_factory, MERGE_ROWS, **trl_params), trl_params.get("beta", 0.1)
    theirs, ours = one_batch(trainer), old_style_batch(tokenizer, MERGE_ROWS)
    last = len(MERGE_ROWS) - 1
    assert not same_rows(theirs, ours, "rejected_labels", last)  # the tokenisations really differ here
    assert same_rows(theirs, ours, "rejected_input_ids", last)  # (same sequence, another prompt/completion cut)
    assert all(same_rows(theirs, ours, "chosen_labels", i) for i in range(len(MERGE_ROWS)))
    trainer.model.train()
    trl_loss, trl_m = trainer.get_batch_loss_metrics(trainer.model, ours, train_eval="train")
    trl_loss = float(trl_loss.detach())
    loss, metrics = batch_loss(policy, tokenizer, MERGE_ROWS, objective, **params)
    if objective == "orpo":
        check_orpo(trainer, ours, trl_loss, trl_m, loss, metrics, beta, "orpo (identical ids)")
    else:
        assert_close(loss.detach(), trl_loss, f"{objective} (identical ids) loss")
        names = [n for n in PAIRED_METRICS if n != "mean_token_accuracy"]
        assert_metrics_close(metrics, trl_m, names, f"{objective} (identical ids)", beta)
