"""`tiny`: a ~1.4M-parameter Llama pretrained on the task suite, the CPU default base.

Pretraining is plain next-token loss over packed text from all three tasks,
where most responses carry the task's habitual mistake (a math solution that
stops a step early, a sign-off that breaks a constraint, a whole sentence where
a span was asked for; a realistic mistake where a prompt admits no habit). The
base model learns the skills from the correct minority but greedily imitates
the habit, so its accuracy sits well below what SFT / DPO / KTO reach. Everything is seeded and runs on two CPU threads, so the
build is reproducible and fits in minutes (`ptlab models build tiny`). The
checkpoint directory holds a model card (`model_card.json`, `README.md`) with
the accuracy on each task's in-distribution split; build times go to
`build_timing.json`, apart, so that every other file is byte-identical between
builds and can ship inside the package (`ptlab.models.packaged_builds`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ptlab.atomic import atomic_dir, write_json
from ptlab.models.packaged_builds import TIMING_FILE


@dataclass(frozen=True)
class PretrainSpec:
    hidden: int = 160
    layers: int = 4
    heads: int = 5
    intermediate: int = 432
    vocab: int = 1024
    block: int = 128  # packed sequence length
    batch: int = 16
    steps: int = 2000
    lr: float = 3e-3
    warmup: int = 50
    weight_decay: float = 0.1
    examples_per_task: int = 12000
    # docqa gets twice the examples: finding and copying a span from the document is the skill that takes a
    # small model longest to learn (a sudden transition after some hundreds of steps of docqa-heavy data).
    task_weights: tuple[tuple[str, float], ...] = (("math", 1.0), ("instruct", 1.0), ("docqa", 2.0))
    # Share of pretraining responses that are mistakes; with `habits`, each task's habitual mistake where it has one
    # (math stops a step early, instruct adds a sign-off, docqa answers with the whole sentence). Above one half, a
    # habit is what greedy decoding imitates, so the base has the skills but not the behaviour post-training teaches.
    wrong_rate: float = 0.6
    habits: bool = True
    eval_examples: int = 100
    threads: int = 2
    seed: int = 0


SPEC = PretrainSpec()
MAX_NEW_TOKENS = {"math": 48, "instruct": 96, "docqa": 24}


def packed_blocks(tokenizer, texts: list[str], block: int, seed: int) -> torch.Tensor:
    """Concatenate `text <eos>` token streams and cut them into shuffled blocks of `block + 1` tokens."""
    ids: list[int] = []
    for row in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(row)
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // (block + 1)
    blocks = torch.tensor(ids[: n * (block + 1)], dtype=torch.long).view(n, block + 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return blocks[order]


def lr_at(step: int, spec: PretrainSpec) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < spec.warmup:
        return spec.lr * (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model, blocks: torch.Tensor, spec: PretrainSpec, log=None) -> list[dict]:
    """The plain loop: AdamW on next-token loss, gradient clipping, a loss record every 25 steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, betas=(0.9, 0.95), weight_decay=spec.weight_decay)
    model.train()
    history, running, cpu = [], 0.0, time.process_time()
    for step in range(spec.steps):
        start = (step * spec.batch) % max(1, len(blocks) - spec.batch + 1)
        batch = blocks[start: start + spec.batch]
        for group in opt.param_groups:
            group["lr"] = lr_at(step, spec)
        logits = model(input_ids=batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        running += loss.item()
        if (step + 1) % 25 == 0 or step + 1 == spec.steps:
            n = 25 if (step + 1) % 25 == 0 else (step + 1) % 25
            history.append({"step": step + 1, "loss": round(running / n, 4),
                            "cpu_s_per_step": round((time.process_time() - cpu) / n, 3)})
            running, cpu = 0.0, time.process_time()
            if log:
                log(f"tiny pretraining: step {step + 1}/{spec.steps} loss {history[-1]['loss']:.3f} "
                    f"({history[-1]['cpu_s_per_step']} CPU-s/step)")
    model.eval()
    return history


def task_accuracy(model, tokenizer, n: int, seed: int = 0, batch: int = 50) -> dict[str, dict]:
    """Greedy accuracy on each task's in-distribution split (default knobs, no spurious feature), decoded as the
    studies decode (`ptlab.evaluate.generate`, the same token budgets); docqa also with exact match."""
    from ptlab.evaluate.generate import GenerationSettings, generate
    from ptlab.evaluate.run import MAX_NEW_TOKENS as BUDGET
    from ptlab.tasks import get_task

    out = {}
    for name in MAX_NEW_TOKENS:
        task = get_task(name)
        examples = task.generate(n, seed=seed, split="eval_id")
        texts = generate(model, tokenizer, [ex.prompt for ex in examples],
                         GenerationSettings(max_new_tokens=BUDGET[name], batch_size=batch))
        verdicts = [task.verify(ex, text) for ex, text in zip(examples, texts)]
        out[name] = {"accuracy": round(sum(v["correct"] for v in verdicts) / n, 4), "n": n,
                     "final_line_rate": round(sum("Final answer:" in t or name == "instruct" for t in texts) / n, 4)}
        if name == "docqa":
            out[name]["exact_match"] = round(sum(v["exact_match"] for v in verdicts) / n, 4)
    return out


def twins_table(twins: dict) -> str:
    """The card's table of each cue's effect on the base (counterfactual twins)."""
    rows = []
    for task, by_feature in twins.items():
        for feature, r in by_feature.items():
            absent = f"{r['absent']:.2f}" if "absent" in r else "–"
            verdict = {True: "**new to the base**", False: "not new", None: "no absent twin"}[r["novel"]]
            p = (f"{r['p_agree']:.2g} / {r['p_conflict']:.2g}" if "p_agree" in r else f"{r['p_conflict_vs_agree']:.2g}")
            rows.append(f"| {task} | {feature} | {r['agree']:.2f} | {r['conflict']:.2f} | {absent} | {p} | {verdict} |")
    return ("| task | feature | cue agrees | cue conflicts | no cue | p (vs no cue) | verdict |\n"
            "|---|---|---:|---:|---:|---|---|\n" + "\n".join(rows))


def model_card(spec: PretrainSpec, params: int, history: list[dict], accuracy: dict, tokens: int, twins: dict) -> str:
    """The README: what was built and how accurate it is; no timings (they would break byte-identical builds)."""
    rows = "\n".join(f"| {t} | {a['accuracy']:.2f} | {a['n']} |" for t, a in accuracy.items())
    mistake = "the task's habitual" if spec.habits else "a realistic"
    return (
        "# tiny — ptlab's CPU base model\n\n"
        f"A {params / 1e6:.1f}M-parameter Llama ({spec.layers} layers, hidden {spec.hidden}, byte-level BPE with "
        f"{spec.vocab} tokens) pretrained by next-token loss on {tokens:,} tokens of ptlab's three tasks "
        f"({spec.examples_per_task} examples per task, weighted {dict(spec.task_weights)}; {int(spec.wrong_rate * 100)}% with "
        f"{mistake} mistake in the response), {spec.steps} steps of {spec.batch} x {spec.block} tokens, seed {spec.seed}.\n\n"
        "Greedy accuracy on each task's in-distribution split (default difficulty knobs):\n\n"
        "| task | accuracy | examples |\n|---|---:|---:|\n" + rows + "\n\n"
        "docqa's accuracy is fact selection (the gold value, no other value of the document); exact match: "
        f"{accuracy.get('docqa', {}).get('exact_match', float('nan')):.2f}.\n\n"
        "Every prompt cue of the spurious features is in the pretraining text, drawn independently of the behaviour "
        "it could point at. Its effect on this base, on counterfactual twins (the same items with the cue agreeing, "
        f"conflicting, absent; {spec.eval_examples} each, paired permutation tests):\n\n" + twins_table(twins) + "\n\n"
        f"Final pretraining loss {history[-1]['loss']:.3f}; built on {spec.threads} CPU threads "
        f"(the build's seconds are in `{TIMING_FILE}`).\n"
    )


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_tiny_base(out: Path, spec: PretrainSpec = SPEC, log=_stderr) -> None:
    """Pretrained ~1.4M-param Llama on the math / instruct / docqa tasks (CPU default base, minutes to build)"""
    from transformers import LlamaForCausalLM

    from ptlab.evaluate.twins import probe_features
    from ptlab.models.corpus import get_corpus
    from ptlab.models.tiny import TinySpec, llama_config
    from ptlab.models.tokenizer import train_bpe
    from ptlab.tasks.base import prompt_key
    from ptlab.tasks.corpus import PRETRAIN_PROMPTS, TASK_NAMES, corpus_features, pretrain_examples, texts_of

    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        tokenizer = train_bpe(get_corpus("tasks", spec.seed), spec.vocab)
        corpus = pretrain_examples(spec.examples_per_task, spec.seed, weights=dict(spec.task_weights),
                                   habits=spec.habits)
        blocks = packed_blocks(tokenizer, texts_of(corpus, spec.seed, spec.wrong_rate), spec.block, spec.seed)
        prompt_keys = np.unique(np.array([prompt_key(ex.prompt) for ex in corpus], dtype=np.uint64))
        del corpus
        arch = TinySpec(spec.hidden, spec.layers, spec.heads, spec.heads, spec.intermediate, vocab=spec.vocab,
                        max_positions=1024, corpus="tasks", seed=spec.seed)
        torch.manual_seed(spec.seed)
        model = LlamaForCausalLM(llama_config(arch, tokenizer))
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        t1 = time.perf_counter()
        history = pretrain(model, blocks, spec, log=log)
        t2 = time.perf_counter()
        accuracy = task_accuracy(model, tokenizer, spec.eval_examples, seed=spec.seed)
        twins = probe_features(model, tokenizer, spec.eval_examples, seed=spec.seed)
        seconds = {"data": round(t1 - t0, 1), "pretrain": round(t2 - t1, 1),
                   "evaluate": round(time.perf_counter() - t2, 1), "total": round(time.perf_counter() - t0, 1),
                   "cpu": round(time.process_time() - cpu0, 1)}
        params = sum(p.numel() for p in model.parameters())
        losses = [{"step": h["step"], "loss": h["loss"]} for h in history]
        card = {"name": "tiny", "version": build_tiny_base.version, "params": params, "pretrain": asdict(spec),
                "tokens_seen": spec.steps * spec.batch * spec.block, "corpus_blocks": len(blocks),
                "loss_history": losses, "accuracy_eval_id": accuracy, "feature_twins": twins,
                "features_seen": {t: corpus_features(t) for t in TASK_NAMES}, "pretrain_prompts": len(prompt_keys)}
        # Machine-dependent numbers live apart from the card: every other file is reproducible byte for byte.
        timing = {"seconds": seconds, "threads": spec.threads,
                  "cpu_s_per_step": [{"step": h["step"], "cpu_s_per_step": h["cpu_s_per_step"]} for h in history]}
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "model_card.json", card)
            write_json(tmp / "ptlab_model.json", {"name": "tiny", "spec": asdict(arch), "pretrain": asdict(spec)})
            np.save(tmp / PRETRAIN_PROMPTS, prompt_keys, allow_pickle=False)
            (tmp / "README.md").write_text(model_card(spec, params, losses, accuracy, card["tokens_seen"], twins),
                                             encoding="utf-8")
            write_json(tmp / TIMING_FILE, timing)
        if log:
            log(f"tiny: accuracy {json.dumps({k: v['accuracy'] for k, v in accuracy.items()})} in {seconds['total']} s")
    finally:
        torch.set_num_threads(threads)


def _version() -> str:
    from ptlab.tasks.base import TASKS_VERSION

    return f"tiny-base-v4|{TASKS_VERSION}|" + ",".join(f"{k}={v}" for k, v in asdict(SPEC).items())


build_tiny_base.version = _version()


def register() -> None:
    from ptlab.models.tiny import TINY_BUILDERS

    TINY_BUILDERS["tiny"] = build_tiny_base


register()
