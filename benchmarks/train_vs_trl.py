"""ptlab vs TRL 1.16 on CPU: steps/s, peak memory and model FLOP/s for SFT, DPO (sigmoid) and KTO.

    python benchmarks/train_vs_trl.py            # default: ~5-6 min on 2 cores
    python benchmarks/train_vs_trl.py --quick    # ~1 min smoke run
    python benchmarks/train_vs_trl.py --steps 40 --repeats 3 --trl-no-gc

Everything runs in one process except the peak-memory measurements:

* Same model (`tiny-4m`, a fresh copy loaded from the same directory for every
  run), same 512 deterministic arithmetic rows, batch size 32, same lr, fp32.
* Speed: each (tool, objective) runs `warmup + steps` optimizer steps; the first
  `warmup` steps (and model load, tokenisation, reference pass) are excluded.
  ptlab: from its `history` (`elapsed_s` at step `warmup` and at the last step,
  `log_every = warmup`). TRL: a `TrainerCallback` stamps `on_step_end`; steps/s
  is measured between the end of step `warmup` and the end of the last step,
  so both include collation, optimizer, logging — everything a step costs.
  The tools run interleaved (ptlab, TRL, ptlab, TRL, …) `--repeats` times
  because the machine is shared; the table gives the median and [min–max].
* TRL runs with its defaults except: fp32 (`bf16=False`), batch 32, the lr,
  `max_steps`, no saving/reporting, no tqdm. Its defaults include
  `gradient_checkpointing=True` and, for DPO, a reference-model copy run on
  the fly (`precompute_ref_log_probs=False`); DPO is also measured with
  `precompute_ref_log_probs=True`, and `--trl-no-gc` adds runs with
  gradient checkpointing off.
* Peak memory: each (tool, objective) runs again in a fresh subprocess
  (`--child`), reporting its peak RSS (`VmHWM`, the per-address-space form of
  `ru_maxrss`, which Linux would carry over from this parent) minus the RSS after imports
  and model load, so runs do not contaminate each other.
* FLOP/s: model FLOPs per step = 6·P·T_train + 2·P·T_kl, with P the model's
  parameter count, T_train the tokens fed to the trained forward/backward
  (padding included; DPO: chosen + rejected) and T_kl the tokens of KTO's
  no-grad KL forward; divided by the step time, as a fraction of the
  fp32 matmul peak measured here (best of repeated 2048×2048 `torch.mm` loops).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODEL = "tiny-4m"
BATCH = 32
LR = 1e-4
N_ROWS = 512
RESULTS = Path(__file__).resolve().parent / "results" / "train_vs_trl.md"

# ---------------------------------------------------------------------------------------------- data

NAMES = ["Ann", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jill", "Kai", "Lena"]
ITEMS = ["apples", "books", "coins", "pens", "cards", "shells", "stamps", "marbles"]


def make_data(n: int = N_ROWS, seed: int = 0) -> dict[str, list[dict]]:
    """Deterministic arithmetic word problems in the three formats (~40 tokens prompt+completion)."""
    rng = random.Random(seed)
    sft, paired, unpaired = [], [], []
    for i in range(n):
        name, item = rng.choice(NAMES), rng.choice(ITEMS)
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        if rng.random() < 0.5:
            prompt = f"Q: {name} has {a} {item} and gets {b} more. How many {item} does {name} have now?\nA:"
            ans = a + b
            work = f"{a} + {b} = {ans}"
        else:
            a = a + b
            prompt = f"Q: {name} has {a} {item} and gives away {b}. How many {item} are left?\nA:"
            ans = a - b
            work = f"{a} - {b} = {ans}"
        wrong = ans + rng.choice([-3, -2, -1, 1, 2, 3, 10])
        good = f" {work}, so {name} has {ans} {item}."
        bad = f" {work.split('=')[0]}= {wrong}, so {name} has {wrong} {item}."
        sft.append({"prompt": prompt, "completion": good})
        paired.append({"prompt": prompt, "chosen": good, "rejected": bad})
        label = i % 2 == 0
        unpaired.append({"prompt": prompt, "completion": good if label else bad, "label": label})
    return {"sft": sft, "dpo": paired, "kto": unpaired}


def write_jsonl(rows, path: Path) -> Path:
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


# ---------------------------------------------------------------------------------------------- peak


def matmul_peak(n: int = 2048, reps: int = 4, rounds: int = 3) -> tuple[float, list[float]]:
    """fp32 matmul FLOP/s: best and all of `rounds` timings of `reps` n×n `torch.mm`."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b, out=out)
        rates.append(2 * n**3 * reps / (time.perf_counter() - t))
    return max(rates), rates


# ---------------------------------------------------------------------------------------------- ptlab

PTLAB_OBJ = {"sft": ("sft", {}), "dpo": ("dpo", {"loss_type": "sigmoid", "beta": 0.1}), "kto": ("kto", {"beta": 0.1})}


def ptlab_config(obj: str, data_path: Path, out: Path, steps: int, warmup: int) -> dict:
    name, params = PTLAB_OBJ[obj]
    return {
        "model": MODEL, "objective": name, "params": params, "data": {"path": str(data_path)},
        "output_dir": str(out), "batch_size": BATCH, "max_steps": warmup + steps, "log_every": warmup,
        "save_every": 0, "lr": LR, "precision": "fp32", "max_length": 256,
    }


def run_ptlab(obj: str, data_path: Path, tmp: Path, steps: int, warmup: int, tag: str) -> dict:
    """Train with ptlab; steps/s from history, tokens per step from the collated batches."""
    import ptlab.train.loop as loop
    import ptlab.train.step as step_mod
    from ptlab.data import batching

    tokens: list[int] = []
    kl_tokens: list[int] = []

    def counting_collate(rows, pad_id):
        seqs = batching.collate(rows, pad_id)
        tokens.append(seqs.input_ids.numel())
        return seqs

    def counting_collate_kl(rows, pad_id):
        seqs = batching.collate_kl(rows, pad_id)
        kl_tokens.append(seqs.input_ids.numel())
        return seqs

    orig_collate, orig_kl = loop.collate, step_mod.collate_kl
    loop.collate, step_mod.collate_kl = counting_collate, counting_collate_kl
    try:
        res = loop.train(ptlab_config(obj, data_path, tmp / f"ptlab-{obj}-{tag}", steps, warmup), quiet=True)
    finally:
        loop.collate, step_mod.collate_kl = orig_collate, orig_kl
    h = {r["step"]: r["elapsed_s"] for r in res.history}
    total = warmup + steps
    step_s = (h[total] - h[warmup]) / steps
    # loop.collate is used only by the training forward (one per step here); the KL collations
    # of the reference pass come first, so the last `total` KL collations are the training ones.
    timed = tokens[-steps:]
    timed_kl = kl_tokens[-steps:] if obj == "kto" else []
    return {"steps_per_s": 1.0 / step_s, "tokens": statistics.mean(timed),
            "kl_tokens": statistics.mean(timed_kl) if timed_kl else 0.0, "loss": res.metrics.get("loss")}


# ---------------------------------------------------------------------------------------------- TRL


def trl_trainer(obj: str, rows: list[dict], out: Path, steps: int, model, tokenizer, callbacks=(), **extra):
    from datasets import Dataset

    common = dict(output_dir=str(out), per_device_train_batch_size=BATCH, learning_rate=LR, max_steps=steps,
                  bf16=False, use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True, **extra)
    ds = Dataset.from_list(rows)
    if obj == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer(model=model, args=SFTConfig(**common), train_dataset=ds, processing_class=tokenizer,
                          callbacks=list(callbacks))
    if obj == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer(model=model, args=DPOConfig(loss_type="sigmoid", beta=0.1, **common), train_dataset=ds,
                          processing_class=tokenizer, callbacks=list(callbacks))
    from trl import KTOConfig, KTOTrainer

    return KTOTrainer(model=model, args=KTOConfig(beta=0.1, **common), train_dataset=ds,
                      processing_class=tokenizer, callbacks=list(callbacks))


def run_trl(obj: str, rows: list[dict], tmp: Path, steps: int, warmup: int, tag: str, **extra) -> dict:
    from transformers import TrainerCallback

    from ptlab.models import load

    class Stamps(TrainerCallback):
        def __init__(self):
            self.begin, self.end = [], []

        def on_step_begin(self, args, state, control, **kw):
            self.begin.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            self.end.append(time.perf_counter())

    stamps = Stamps()
    model, tokenizer = load(MODEL)
    trainer = trl_trainer(obj, rows, tmp / f"trl-{obj}-{tag}", warmup + steps, model, tokenizer, [stamps], **extra)
    tokens: list[int] = []
    collator = trainer.data_collator

    def counting(features):
        batch = collator(features)
        tokens.append(sum(v.numel() for k, v in batch.items() if k.endswith("input_ids") and hasattr(v, "numel")))
        return batch

    trainer.data_collator = counting
    trainer.train()
    end = stamps.end
    step_s = (end[warmup + steps - 1] - end[warmup - 1]) / steps
    inner = statistics.mean(e - b for b, e in zip(stamps.begin[warmup:], end[warmup:]))
    return {"steps_per_s": 1.0 / step_s, "inner_s": inner,
            "tokens": statistics.mean(tokens[-steps:]) if tokens else float("nan")}


# ---------------------------------------------------------------------------------------------- memory


def rss_kb(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_kb() -> int:
    """This process's peak RSS: `VmHWM`, falling back to `ru_maxrss`.

    `ru_maxrss` alone is wrong here: Linux carries the parent's high-water mark
    across fork+exec into the child's `ru_maxrss`, so every child would report
    the (larger) parent's peak. `VmHWM` belongs to the child's own address space.
    """
    return rss_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(args) -> None:
    """One (tool, objective) run in this fresh process; prints peak RSS above the post-load baseline."""
    import torch  # noqa: F401
    import transformers  # noqa: F401
    import trl  # noqa: F401

    import ptlab.models
    import ptlab.train.loop  # noqa: F401
    from ptlab.models import load

    rows = make_data()
    tmp = Path(args.tmp)
    model, tokenizer = load(MODEL)
    base_rss, base_max = rss_kb(), peak_rss_kb()
    extra = json.loads(args.extra)
    if args.child == "ptlab":
        orig = ptlab.models.load
        given = [False]

        def load_once(name, *a, **kw):  # hand the already-loaded model to ptlab's build_model
            if not given[0]:
                given[0] = True
                return model, tokenizer
            return orig(name, *a, **kw)

        ptlab.models.load = load_once
        path = write_jsonl(rows[args.obj], tmp / f"mem-{args.obj}.jsonl")
        import ptlab.train.loop as loop

        cfg = {**ptlab_config(args.obj, path, tmp / f"mem-ptlab-{args.obj}-{len(extra)}", args.steps, 1), **extra}
        loop.train(cfg, quiet=True)
    else:
        trainer = trl_trainer(args.obj, rows[args.obj], tmp / f"mem-trl-{args.obj}", args.steps + 1,
                              model, tokenizer, **extra)
        trainer.train()
    peak = peak_rss_kb()
    print("CHILD_RESULT " + json.dumps({"base_rss_kb": base_rss, "base_hwm_kb": base_max, "peak_kb": peak,
                                        "delta_mb": (peak - base_rss) / 1024}))


def measure_memory(tool: str, obj: str, steps: int, tmp: Path, extra: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, "--obj", obj, "--steps", str(steps), "--tmp", str(tmp),
           "--extra", json.dumps(extra or {})]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("CHILD_RESULT "):
            return json.loads(line[len("CHILD_RESULT "):])
    raise RuntimeError(f"memory child {tool}/{obj} failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")


# ---------------------------------------------------------------------------------------------- main


def fmt_spread(vals: list[float], digits: int = 2) -> str:
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{statistics.median(vals):.{digits}f} [{min(vals):.{digits}f}–{max(vals):.{digits}f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run (default 10; --quick 4)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 2)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats (default 2; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    ap.add_argument("--trl-no-gc", action="store_true", help="also time TRL with gradient_checkpointing=False")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--out", default=str(RESULTS), help="markdown results file")
    ap.add_argument("--child", choices=["ptlab", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--obj", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    ap.add_argument("--extra", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # memory children inherit it
        import torch

        torch.set_num_threads(args.threads)
    if args.child:
        return child(args)

    steps = args.steps or (4 if args.quick else 10)
    warmup = args.warmup or 2
    repeats = args.repeats or (1 if args.quick else 2)
    mem_steps = 3 if args.quick else 4

    import datasets
    import torch
    import transformers
    import trl

    import ptlab.train.loop  # noqa: F401
    from ptlab.models import load

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    t_start = time.time()
    load_avg = os.getloadavg()
    model, _ = load(MODEL)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    peak, peak_all = matmul_peak(rounds=2 if args.quick else 3)
    print(f"fp32 matmul peak (2048x2048 torch.mm, {torch.get_num_threads()} threads): best {peak / 1e9:.1f} GFLOP/s "
          f"of {[round(r / 1e9, 1) for r in peak_all]}; load avg {load_avg[0]:.2f}", flush=True)

    data = make_data()
    trl_variants = {
        "sft": [("default", {})],
        "dpo": [("default", {}), ("precompute_ref", {"precompute_ref_log_probs": True})],
        "kto": [("default", {})],
    }
    if args.trl_no_gc:
        for obj in trl_variants:
            base = list(trl_variants[obj])
            trl_variants[obj] += [(f"{n}+no_gc", {**e, "gradient_checkpointing": False}) for n, e in base]

    results: dict = {obj: {"ptlab": [], **{v: [] for v, _ in trl_variants[obj]}} for obj in data}
    tokens: dict = {}
    with tempfile.TemporaryDirectory(prefix="ptlab-bench-") as td:
        tmp = Path(td)
        paths = {obj: write_jsonl(rows, tmp / f"{obj}.jsonl") for obj, rows in data.items()}
        for rep in range(repeats):
            for obj in data:
                r = run_ptlab(obj, paths[obj], tmp, steps, warmup, f"r{rep}")
                results[obj]["ptlab"].append(r["steps_per_s"])
                tokens[(obj, "ptlab")] = r
                print(f"[rep {rep}] ptlab {obj}: {r['steps_per_s']:.3f} steps/s "
                      f"({r['tokens']:.0f} tok/step + {r['kl_tokens']:.0f} KL)", flush=True)
                for v, extra in trl_variants[obj]:
                    r = run_trl(obj, data[obj], tmp, steps, warmup, f"{v}-r{rep}", **extra)
                    results[obj][v].append(r["steps_per_s"])
                    tokens[(obj, v)] = r
                    print(f"[rep {rep}] TRL   {obj} ({v}): {r['steps_per_s']:.3f} steps/s "
                          f"({r['tokens']:.0f} input-id tokens/step)", flush=True)
        t_speed = time.time() - t_start
        memory: dict = {}
        if not args.no_memory:  # after the timing, so two children at a time cannot disturb it
            from concurrent.futures import ThreadPoolExecutor

            jobs = [(obj, "ptlab", "ptlab", {}) for obj in data]
            # grad_accum=2 gives exactly the same gradient (ptlab normalises by whole-step counts) while each
            # forward holds 16 pairs = 32 sequences, as SFT's does: the memory-matched DPO setting.
            if "dpo" in data:
                jobs.append(("dpo", "ptlab-accum2", "ptlab", {"grad_accum": 2}))
            jobs += [(obj, v, "trl", extra) for obj in data for v, extra in trl_variants[obj]]
            with ThreadPoolExecutor(2) as pool:
                futures = {(obj, v): pool.submit(measure_memory, tool, obj, mem_steps, tmp, extra)
                           for obj, v, tool, extra in jobs}
                for (obj, v), fut in futures.items():
                    memory[(obj, v)] = fut.result()
                    print(f"memory {obj} ({v}): +{memory[(obj, v)]['delta_mb']:.1f} MB", flush=True)
    load_end = os.getloadavg()

    # ------------------------------------------------------------------------------------ table
    goal = {"sft": 2.0, "dpo": 3.0, "kto": 3.0}
    label = {"sft": "SFT", "dpo": "DPO (sigmoid)", "kto": "KTO"}
    lines = [
        "| objective | TRL setting | ptlab steps/s | TRL steps/s | ratio (goal) | ptlab peak MB | TRL peak MB "
        "| ptlab model FLOP/s | % of matmul peak |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summary = {}
    for obj in data:
        p = results[obj]["ptlab"]
        tk = tokens[(obj, "ptlab")]
        flops = 6 * n_params * tk["tokens"] + 2 * n_params * tk["kl_tokens"]
        fl = statistics.median(p) * flops
        for v, _ in trl_variants[obj]:
            t = results[obj][v]
            ratios = [a / b for a, b in zip(p, t)]
            ratio = statistics.median(p) / statistics.median(t)
            pm = memory.get((obj, "ptlab"), {}).get("delta_mb", float("nan"))
            tm = memory.get((obj, v), {}).get("delta_mb", float("nan"))
            ok = "✓" if ratio >= goal[obj] else "✗"
            lines.append(
                f"| {label[obj]} | {v} | {fmt_spread(p)} | {fmt_spread(t)} | {ratio:.2f}× "
                f"[{min(ratios):.2f}–{max(ratios):.2f}] (≥{goal[obj]:.0f}× {ok}) | {pm:.0f} | {tm:.0f} "
                f"| {fl / 1e9:.1f} G | {100 * fl / peak:.0f}% |"
            )
            summary[(obj, v)] = ratio
    notes = [
        "",
        f"- Model `{MODEL}`: P = {n_params:,} parameters, fp32, batch {BATCH}, lr {LR}, {N_ROWS} rows; "
        f"{warmup} warm-up + {steps} timed steps per run, {repeats} interleaved repeat(s) "
        "(ptlab, TRL, ptlab, TRL, …); steps/s = median [min–max] over repeats, ratio = median ptlab / median TRL "
        "[min–max of per-repeat ratios].",
        "- Timing excludes model load, tokenisation, the reference pass and the warm-up steps for both tools "
        "(ptlab: `history[].elapsed_s`; TRL: a `TrainerCallback` stamping `on_step_end`, end-to-end between steps).",
        "- TRL 1.16 defaults except fp32 (`bf16=False`), batch, lr, max_steps, no saving/reporting: "
        "`gradient_checkpointing=True` (TRL's default); `default` DPO = reference-model copy evaluated on the fly; "
        "`precompute_ref` = `precompute_ref_log_probs=True`"
        + ("; `+no_gc` = `gradient_checkpointing=False`." if args.trl_no_gc else "."),
        "- ptlab: length-grouped batches (default), reference log-probs from its on-disk cache (computed once).",
        f"- Peak memory: each (tool, objective) in a fresh subprocess, peak RSS (`VmHWM`; `ru_maxrss` would inherit the parent's peak across fork+exec) at the end minus the RSS after "
        f"imports + model load ({mem_steps + 1} steps). Goal: ptlab DPO peak ≤ 1.3× ptlab SFT peak → "
        + (f"{memory[('dpo', 'ptlab')]['delta_mb'] / memory[('sft', 'ptlab')]['delta_mb']:.2f}× at grad_accum=1, "
           f"{memory[('dpo', 'ptlab-accum2')]['delta_mb'] / memory[('sft', 'ptlab')]['delta_mb']:.2f}× at "
           "grad_accum=2 (same gradient, 32 sequences per forward)."
           if memory else "not measured."),
        f"- Model FLOPs per step = 6·P·T_train + 2·P·T_kl (T_train: tokens in the trained forward incl. padding, "
        f"DPO chosen+rejected; T_kl: KTO's no-grad KL forward). ptlab tokens/step: "
        + ", ".join(f"{label[o]} {tokens[(o, 'ptlab')]['tokens']:.0f}"
                    + (f" + KL {tokens[(o, 'ptlab')]['kl_tokens']:.0f}" if o == "kto" else "") for o in data)
        + ". TRL input-id tokens/step (info): "
        + ", ".join(f"{label[o]} {tokens[(o, 'default')]['tokens']:.0f}" for o in data) + ".",
        f"- fp32 matmul peak: best of {len(peak_all)} loops of 4× 2048×2048 `torch.mm` = {peak / 1e9:.1f} GFLOP/s "
        f"(all: {', '.join(f'{r / 1e9:.1f}' for r in peak_all)}), {torch.get_num_threads()} threads.",
        f"- torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; "
        f"{os.cpu_count()} CPUs; load average at start {load_avg[0]:.2f} / end {load_end[0]:.2f} "
        f"(shared machine: timings are noisy). Speed section {t_speed:.0f} s, total {time.time() - t_start:.0f} s.",
    ]
    table = "\n".join(lines + notes)
    print()
    print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/train_vs_trl.py " + " ".join(sys.argv[1:])
    out.write_text(f"# ptlab vs TRL 1.16 on CPU\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
                   f"with `{cmd.strip()}`.\n\n{table}\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
