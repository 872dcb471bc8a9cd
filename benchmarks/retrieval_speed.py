"""Speed of encoding, indexing and searching the SQuAD collection on CPU (prints figures).

    python benchmarks/retrieval_speed.py [--threads 2] [--queries all|test]

Target (issue 6): the whole pass (encode 1,204 paragraphs, build the FAISS index,
encode and search the queries) in <= 2 minutes on 2 CPU cores. The load average
is printed too, because on a shared machine it moves the numbers.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", choices=["all", "test"], default="all")
    ap.add_argument("--max-seq-length", type=int, default=256)
    args = ap.parse_args()

    from ptlab.retrieval.collections import SquadSpec, build_squad
    from ptlab.retrieval.encoders import encode_documents, encode_queries, load_encoder, set_threads
    from ptlab.retrieval.index import DenseIndex
    from ptlab.retrieval.metrics import per_query

    set_threads(args.threads)
    print(f"threads={args.threads} load average at start={os.getloadavg()[0]:.2f} (cores={os.cpu_count()})")
    col = build_squad(SquadSpec())
    splits = ["train", "dev", "test"] if args.queries == "all" else ["test"]
    qrels = {q: d for s in splits for q, d in col.qrels[s].items()}
    qids = list(qrels)
    model = load_encoder("all-minilm-l6-v2", args.max_seq_length)
    encode_queries(model, ["warm up"])

    t0 = time.perf_counter()
    docs = encode_documents(model, [col.doc_text(d) for d in col.corpus])
    t1 = time.perf_counter()
    index = DenseIndex(list(col.corpus), docs)
    t2 = time.perf_counter()
    q_emb = encode_queries(model, [col.queries[q] for q in qids])
    t3 = time.perf_counter()
    run = index.search(qids, q_emb, k=100)
    t4 = time.perf_counter()
    ndcg = per_query(qrels, run, ["nDCG@10"])["nDCG@10"]

    n_docs, n_q = len(col.corpus), len(qids)
    print(f"documents: {n_docs} encoded in {t1 - t0:.1f}s ({n_docs / (t1 - t0):.1f} docs/s)")
    print(f"index: FAISS IndexFlatIP built in {(t2 - t1) * 1000:.1f} ms")
    print(f"queries: {n_q} encoded in {t3 - t2:.1f}s ({n_q / (t3 - t2):.0f} queries/s)")
    print(f"search: top-100 for {n_q} queries in {(t4 - t3) * 1000:.1f} ms ({n_q / (t4 - t3):.0f} queries/s)")
    print(f"queries/s end to end (encode + search): {n_q / (t4 - t2):.0f}")
    print(f"total encode + index + search: {t4 - t0:.1f}s (target <= 120s)")
    print(f"nDCG@10 of the base encoder over these queries: {sum(ndcg.values()) / len(ndcg):.4f}")


if __name__ == "__main__":
    main()
