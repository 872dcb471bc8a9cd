"""Query-expansion throughput: ptlab's batched `hf` teacher vs one-at-a-time `transformers.generate`.

    python benchmarks/expansion_throughput.py [--queries 64] [--batch-sizes 1,16,64] [--max-tokens 64] [--json out.json]

Writes query2doc pseudo-documents for the first SQuAD train queries with the
packaged SmolLM2-135M (greedy, `--max-tokens` new tokens at most), in one
process, on the same threads:

* reference: the loop a user would write with plain transformers — the chat
  template, `model.generate` on one query at a time (batch 1, no padding);
* ptlab: `HFTeacher.generate` (synthesis's `hf` backend, what the SoftQE study's
  expansion step calls) at each `--batch-sizes` value: requests sorted by
  prompt length, left-padded batches, replies cut at the end-of-sequence token.

Prints queries/s, generated tokens/s and the ratio to the reference; and how
many of the batched replies equal the reference's (left padding changes the
arithmetic slightly, so a greedy reply can differ in its last tokens).
No cache is involved: every call runs the model.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def reference(model, tok, prompts: list[str], max_new: int) -> tuple[list[str], int, float]:
    import torch

    texts, tokens, t0 = [], 0, time.perf_counter()
    for p in prompts:
        enc = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        tokens += int((new != tok.pad_token_id).sum())
        texts.append(tok.decode(new, skip_special_tokens=True).strip())
    return texts, tokens, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ptlab.retrieval.collections import ensure_collection
    from ptlab.retrieval.expansion import ExpansionSpec, prompt_for, request_for
    from ptlab.synth.teachers.hf import HFTeacher

    torch.set_num_threads(args.threads)
    _, squad = ensure_collection("squad")
    queries = [squad.queries[q] for q in list(squad.qrels["train"])[: args.queries]]
    spec = ExpansionSpec(max_tokens=args.max_tokens)
    teacher = HFTeacher("smollm2-135m")
    model, tok = teacher.load()
    tok.padding_side = "right"  # the reference runs unpadded; the teacher sets left padding for its batches
    reference(model, tok, [prompt_for(queries[0])], 4)  # warm-up
    ref_texts, ref_tokens, ref_s = reference(model, tok, [prompt_for(q) for q in queries], args.max_tokens)
    tok.padding_side = "left"
    rows = [{"system": "transformers generate, one at a time", "batch": 1, "seconds": ref_s,
             "queries_per_s": len(queries) / ref_s, "tokens_per_s": ref_tokens / ref_s, "ratio": 1.0,
             "same_as_reference": len(queries)}]
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        teacher.batch_size = bs
        t0 = time.perf_counter()
        replies = teacher.generate([request_for(q, spec) for q in queries])
        s = time.perf_counter() - t0
        rows.append({"system": "ptlab hf teacher", "batch": bs, "seconds": s, "queries_per_s": len(queries) / s,
                     "tokens_per_s": sum(r.completion_tokens for r in replies) / s, "ratio": ref_s / s,
                     "same_as_reference": sum(r.text.strip() == t for r, t in zip(replies, ref_texts))})
    print(f"{len(queries)} SQuAD queries, SmolLM2-135M, <= {args.max_tokens} new tokens, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'system':40} {'batch':>5} {'s':>7} {'q/s':>6} {'tok/s':>6} {'x ref':>6} {'same':>5}")
    for r in rows:
        print(f"{r['system']:40} {r['batch']:>5} {r['seconds']:>7.1f} {r['queries_per_s']:>6.2f} "
              f"{r['tokens_per_s']:>6.0f} {r['ratio']:>6.2f} {r['same_as_reference']:>5}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
