"""`tiny`: a ~1.4M-parameter Llama pretrained on the task suite, the CPU default base.

Pretraining is plain next-token loss over packed text from all three tasks,
where most responses carry the task's habitual mistake (a math solution that
stops a step early, a sign-off that breaks a constraint, a whole sentence where
a span was asked for; a realistic mistake where a prompt admits no habit). The
base model learns the skills from the correct minority but greedily imitates
the habit, so its accuracy sits well below what SFT / DPO / KTO reach. Everything is seeded and runs on two CPU threads, so the
build is reproducible and fits in minutes (`ptlab models build tiny`). The
checkpoint directory holds a model card (`model_card.json`, `README.md`) with
the accuracy on each task's in-distribution split.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ptlab.atomic import atomic_dir, write_json


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


@torch.no_grad()
def task_accuracy(model, tokenizer, n: int, seed: int = 0, batch: int = 50) -> dict[str, dict]:
    """Greedy accuracy on each task's in-distribution split (default knobs, no spurious feature)."""
    from ptlab.tasks import get_task

    tokenizer.padding_side = "left"
    out = {}
    for name, max_new in MAX_NEW_TOKENS.items():
        task = get_task(name)
        examples = task.generate(n, seed=seed, split="eval_id")
        correct, parsed = 0, 0
        for i in range(0, n, batch):
            chunk = examples[i: i + batch]
            enc = tokenizer([ex.prompt for ex in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            gen = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for ex, text in zip(chunk, texts):
                correct += task.verify(ex, text)["correct"]
                parsed += "Final answer:" in text or name == "instruct"
        out[name] = {"accuracy": round(correct / n, 4), "n": n, "final_line_rate": round(parsed / n, 4)}
    tokenizer.padding_side = "right"
    return out


def model_card(spec: PretrainSpec, params: int, history: list[dict], accuracy: dict, seconds: dict, tokens: int) -> str:
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
        f"Final pretraining loss {history[-1]['loss']:.3f}; built in {seconds['total']:.0f} s "
        f"(pretraining {seconds['pretrain']:.0f} s; {seconds.get('cpu', 0):.0f} CPU-seconds) on {spec.threads} CPU threads.\n"
    )


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_tiny_base(out: Path, spec: PretrainSpec = SPEC, log=_stderr) -> None:
    """Pretrained ~1.4M-param Llama on the math / instruct / docqa tasks (CPU default base, minutes to build)"""
    from transformers import LlamaForCausalLM

    from ptlab.models.corpus import get_corpus
    from ptlab.models.tiny import TinySpec, llama_config
    from ptlab.models.tokenizer import train_bpe
    from ptlab.tasks.corpus import pretrain_texts

    threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        tokenizer = train_bpe(get_corpus("tasks", spec.seed), spec.vocab)
        blocks = packed_blocks(tokenizer, pretrain_texts(spec.examples_per_task, spec.seed, spec.wrong_rate,
                                                         weights=dict(spec.task_weights), habits=spec.habits),
                               spec.block, spec.seed)
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
        seconds = {"data": round(t1 - t0, 1), "pretrain": round(t2 - t1, 1),
                   "evaluate": round(time.perf_counter() - t2, 1), "total": round(time.perf_counter() - t0, 1),
                   "cpu": round(time.process_time() - cpu0, 1)}
        params = sum(p.numel() for p in model.parameters())
        card = {"name": "tiny", "version": build_tiny_base.version, "params": params, "pretrain": asdict(spec),
                "tokens_seen": spec.steps * spec.batch * spec.block, "corpus_blocks": len(blocks),
                "loss_history": history, "accuracy_eval_id": accuracy, "seconds": seconds}
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "model_card.json", card)
            write_json(tmp / "ptlab_model.json", {"name": "tiny", "spec": asdict(arch), "pretrain": asdict(spec)})
            (tmp / "README.md").write_text(model_card(spec, params, history, accuracy, seconds, card["tokens_seen"]))
        if log:
            log(f"tiny: accuracy {json.dumps({k: v['accuracy'] for k, v in accuracy.items()})} in {seconds['total']} s")
    finally:
        torch.set_num_threads(threads)


def _version() -> str:
    from ptlab.tasks.base import TASKS_VERSION

    return f"tiny-base-v3|{TASKS_VERSION}|" + ",".join(f"{k}={v}" for k, v in asdict(SPEC).items())


build_tiny_base.version = _version()


def register() -> None:
    from ptlab.models.tiny import TINY_BUILDERS

    TINY_BUILDERS["tiny"] = build_tiny_base


register()
