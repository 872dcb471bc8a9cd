"""BEIR-format collections: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.

Reading validates as it goes, so a malformed file fails with one line naming the
file and line (duplicate or missing ids, qrels naming unknown documents or
queries) instead of silently skewing metrics later. Writing is atomic.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ptlab.atomic import atomic_dir
from ptlab.data.io import iter_jsonl, read_utf8
from ptlab.errors import DataError

Qrels = dict[str, dict[str, int]]  # query id -> {doc id: relevance}


@dataclass
class Collection:
    """A retrieval collection: documents, queries (with optional metadata) and qrels per split."""

    corpus: dict[str, dict]  # doc id -> {"title": str, "text": str}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, Qrels]  # split -> qrels
    query_meta: dict[str, dict] = field(default_factory=dict)  # query id -> metadata (answers, evidence)

    def split_queries(self, split: str) -> dict[str, str]:
        if split not in self.qrels:
            raise DataError(f"collection has no qrels split {split!r}; has {sorted(self.qrels)}")
        return {qid: self.queries[qid] for qid in self.qrels[split]}

    def doc_text(self, doc_id: str) -> str:
        doc = self.corpus[doc_id]
        return f"{doc['title']}. {doc['text']}" if doc.get("title") else doc["text"]


def _read_jsonl(path: Path, kind: str, text_required: bool = True) -> dict[str, dict]:
    if not path.is_file():
        raise DataError(f"{path}: missing {kind} file")
    rows: dict[str, dict] = {}
    for lineno, row in iter_jsonl(path):
        rid = row.get("_id")
        if rid is None or str(rid).strip() == "":
            raise DataError(f"{path}:{lineno}: missing '_id'")
        rid = str(rid)
        if rid in rows:
            raise DataError(f"{path}:{lineno}: duplicate id {rid!r}")
        text = row.get("text")
        if text_required and (not isinstance(text, str) or not text.strip()):
            raise DataError(f"{path}:{lineno}: {kind} {rid!r} has no 'text'")
        rows[rid] = row
    if not rows:
        raise DataError(f"{path}: no {kind} rows")
    return rows


def read_qrels(path: Path, corpus: dict, queries: dict) -> Qrels:
    """Read a qrels TSV (header `query-id corpus-id score`), checking every id it names."""
    qrels: Qrels = {}
    with io.StringIO(read_utf8(path), newline="") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (lineno == 1 and row[0] == "query-id"):
                continue
            if len(row) != 3:
                raise DataError(f"{path}:{lineno}: expected 3 tab-separated fields (query-id, corpus-id, score)")
            qid, did, score = row
            if qid not in queries:
                raise DataError(f"{path}:{lineno}: unknown query id {qid!r}")
            if did not in corpus:
                raise DataError(f"{path}:{lineno}: unknown document id {did!r}")
            try:
                rel = int(score)
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {score!r} is not an integer") from None
            if did in qrels.get(qid, {}):
                raise DataError(f"{path}:{lineno}: duplicate judgement for ({qid!r}, {did!r})")
            qrels.setdefault(qid, {})[did] = rel
    if not qrels:
        raise DataError(f"{path}: no judgements")
    return qrels


def load_beir(folder: str | Path, splits: list[str] | None = None) -> Collection:
    """Load and validate a BEIR folder; `splits` defaults to every `qrels/*.tsv`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory")
    raw_corpus = _read_jsonl(folder / "corpus.jsonl", "document")
    raw_queries = _read_jsonl(folder / "queries.jsonl", "query")
    corpus = {k: {"title": str(v.get("title") or ""), "text": v["text"]} for k, v in raw_corpus.items()}
    queries = {k: v["text"] for k, v in raw_queries.items()}
    meta = {k: v["metadata"] for k, v in raw_queries.items() if isinstance(v.get("metadata"), dict)}
    qdir = folder / "qrels"
    if splits is None:
        splits = sorted(p.stem for p in qdir.glob("*.tsv")) if qdir.is_dir() else []
    if not splits:
        raise DataError(f"{qdir}: no qrels/<split>.tsv files")
    qrels = {}
    for split in splits:
        path = qdir / f"{split}.tsv"
        if not path.is_file():
            raise DataError(f"{path}: missing qrels file for split {split!r}")
        qrels[split] = read_qrels(path, corpus, queries)
    return Collection(corpus=corpus, queries=queries, qrels=qrels, query_meta=meta)


def save_beir(collection: Collection, folder: str | Path) -> Path:
    """Write a collection as a BEIR folder, atomically (a reader never sees half of it)."""
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as f:
            for did, doc in collection.corpus.items():
                f.write(json.dumps({"_id": did, "title": doc.get("title", ""), "text": doc["text"]}) + "\n")
        with (tmp / "queries.jsonl").open("w", encoding="utf-8") as f:
            for qid, text in collection.queries.items():
                row = {"_id": qid, "text": text}
                if qid in collection.query_meta:
                    row["metadata"] = collection.query_meta[qid]
                f.write(json.dumps(row) + "\n")
        (tmp / "qrels").mkdir()
        for split, qrels in collection.qrels.items():
            with (tmp / "qrels" / f"{split}.tsv").open("w", encoding="utf-8", newline="") as f:
                w = csv.writer(f, delimiter="\t", lineterminator="\n")
                w.writerow(["query-id", "corpus-id", "score"])
                for qid, docs in qrels.items():
                    for did, rel in docs.items():
                        w.writerow([qid, did, rel])
    return folder
