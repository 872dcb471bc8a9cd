"""Leak check: how much of a query expansion is copied from the query's gold passage.

Why: SoftQE distils an LLM's pseudo-document (query2doc's "expansion") into the
query encoder. If the pseudo-document is mostly the gold passage's own text
(ptlab's simulated oracle copies the gold evidence sentence with 30% of words
dropped), distilling toward it is close to what the contrastive term already
does with the gold passage, and its gains say nothing about a real LLM. A real
LLM may legitimately share *topic words* with the gold passage; what it should
not share is long word sequences beyond what chance and the query explain.

What is measured, per expansion and word n-gram order n:

* overlap = the share of the expansion's *distinct* n-grams that occur anywhere
  in the reference passages (n=1: content words only, i.e. not stopwords;
  n>=2: all n-grams, stopwords included, since "the capital of" is a span too);
* n-grams that occur in the query are left out of numerator and denominator:
  an expansion that restates the query copies no evidence, and the gold passage
  shares the query's words by construction (that is why it is gold);
* the gold overlap (expansion vs the query's gold passages) is compared with a
  baseline: the same expansion vs random non-gold passages of the same corpus.
  Same-corpus text shares genre, stopword runs ("in the early", "one of the")
  and often topic with any passage, so a raw gold overlap alone cannot say what
  is copied; gold minus random is the overlap the gold passage explains beyond
  chance. Each baseline draw takes as many random passages as the query has
  gold passages (their union is the reference, like the gold side), and the
  baseline is the mean over `n_random` draws, seeded per query id (so a query's
  baseline does not depend on which other queries are checked or on dict order).

Flag rule: an expansion source *leaks* when the per-query paired difference
gold - random at n = LEAK_N (3) has a 95% bootstrap interval whose lower bound
is above LEAK_MARGIN (0.10): at least ten points of the expansion's trigrams are
found in the gold passage beyond chance. Trigrams because unigrams measure topic
(legitimate) and 8-grams are too strict for paraphrases (the oracle's 30% word
drop breaks most 8-grams but keeps about half of its trigrams). The report also
gives, per n, the share of queries whose gold overlap is >= VERBATIM_LEVEL (0.5);
at n = VERBATIM_N (8) that is the share of expansions made mostly of verbatim
spans of the gold passage.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ptlab.retrieval.stats import Interval, mean_ci

LEAK_N = 3
LEAK_MARGIN = 0.10
VERBATIM_N = 8
VERBATIM_LEVEL = 0.5
N_VALUES = (1, 3, 8)

_WORD = re.compile(r"\w+")

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having he
    her here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
    now of off on once only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves""".split()
)


def tokens(text: str | None) -> list[str]:
    """Lowercase word tokens."""
    return _WORD.findall(text.lower()) if text else []


def ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """Distinct word n-grams; for n=1 content words only (stopwords dropped)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n == 1:
        return {(w,) for w in words if w not in STOPWORDS}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _candidates(expansion: str | None, query: str | None, n: int) -> set[tuple[str, ...]]:
    return ngrams(tokens(expansion), n) - ngrams(tokens(query), n)


def _share(cands: set, refs: Sequence[set]) -> float | None:
    if not cands:
        return None
    hit = set().union(*refs) & cands if refs else set()
    return len(hit) / len(cands)


def overlap(expansion: str | None, passages: Sequence[str], query: str | None, n: int) -> float | None:
    """Share of the expansion's distinct n-grams (n=1: content unigrams) that occur in any of `passages`,
    n-grams that occur in the query excluded; None when the expansion has no such n-grams."""
    cands = _candidates(expansion, query, n)
    return _share(cands, [ngrams(tokens(p), n) for p in passages])


@dataclass(frozen=True)
class OrderStats:
    """Overlap at one n-gram order over the scored queries (those whose expansion has n-grams beyond the query)."""

    n: int
    n_scored: int
    gold: float | None  # mean gold overlap
    random: float | None  # mean baseline overlap
    diff: Interval | None  # paired gold - random, mean and 95% bootstrap interval
    share_gold_high: float | None  # share of scored queries with gold overlap >= VERBATIM_LEVEL
    share_random_high: float | None  # the same for the baseline


@dataclass
class LeakReport:
    n_queries: int  # expansions given
    by_n: dict[int, OrderStats]
    leaks: bool
    reason: str
    leak_n: int = LEAK_N
    margin: float = LEAK_MARGIN
    n_random: int = 3
    seed: int = 0
    # qid -> n -> (gold overlap, baseline overlap), for the queries scored at that n
    per_query: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict, repr=False)

    @property
    def verbatim_share(self) -> float | None:
        """Share of scored queries whose expansion has gold overlap >= VERBATIM_LEVEL at n = VERBATIM_N."""
        s = self.by_n.get(VERBATIM_N)
        return s.share_gold_high if s else None

    def as_dict(self, per_query: bool = False) -> dict:
        out = {
            "leaks": self.leaks,
            "reason": self.reason,
            "leak_n": self.leak_n,
            "margin": self.margin,
            "n_random": self.n_random,
            "seed": self.seed,
            "n_queries": self.n_queries,
            "verbatim_share": self.verbatim_share,
            "by_n": {str(n): asdict(s) for n, s in self.by_n.items()},
        }
        if per_query:
            out["per_query"] = {q: {str(n): list(v) for n, v in d.items()} for q, d in self.per_query.items()}
        return out


def _rng(seed: int, qid: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}\0{qid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def leak_check(
    expansions: Mapping[str, str | None],
    queries: Mapping[str, str],
    gold: Mapping[str, Sequence[str]],
    corpus_texts: Sequence[str] | Mapping[str, str],
    n_values: Sequence[int] = N_VALUES,
    n_random: int = 3,
    seed: int = 0,
    leak_n: int = LEAK_N,
    margin: float = LEAK_MARGIN,
) -> LeakReport:
    """Gold vs random-passage n-gram overlap of each expansion; flags a leak by the rule in the module docstring.

    expansions: qid -> pseudo-document (None / empty: not scored); queries: qid -> query text;
    gold: qid -> gold passage texts; corpus_texts: the corpus passages (a list, or id -> text; ids are sorted).
    Baseline passages are drawn from the corpus minus texts equal to the query's gold passages.
    """
    n_values = tuple(dict.fromkeys(int(n) for n in n_values))
    if leak_n not in n_values:
        raise ValueError(f"leak_n={leak_n} is not among n_values={n_values}")
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    if isinstance(corpus_texts, Mapping):
        texts = [corpus_texts[k] for k in sorted(corpus_texts)]
    else:
        texts = list(corpus_texts)
    cache: dict[tuple[int, int], set] = {}  # (corpus index, n) -> n-grams

    def corpus_ngrams(i: int, n: int) -> set:
        key = (i, n)
        if key not in cache:
            cache[key] = ngrams(tokens(texts[i]), n)
        return cache[key]

    per_query: dict[str, dict[int, tuple[float, float]]] = {}
    for qid in sorted(expansions):
        exp = expansions[qid]
        if not exp or not exp.strip():
            continue
        if qid not in gold or not gold[qid]:
            raise ValueError(f"query {qid!r} has an expansion but no gold passages")
        golds = list(gold[qid])
        gold_set = set(golds)
        pool = [i for i, t in enumerate(texts) if t not in gold_set]
        if not pool:
            raise ValueError(f"query {qid!r}: the corpus has no non-gold passages for the baseline")
        k = min(len(golds), len(pool))
        rng = _rng(seed, qid)
        draws = [rng.choice(len(pool), size=k, replace=False) for _ in range(n_random)]
        query = queries.get(qid, "")
        row = {}
        for n in n_values:
            cands = _candidates(exp, query, n)
            if not cands:
                continue
            g = _share(cands, [ngrams(tokens(p), n) for p in golds])
            r = float(np.mean([_share(cands, [corpus_ngrams(pool[j], n) for j in d]) for d in draws]))
            row[n] = (g, r)
        if row:
            per_query[qid] = row

    by_n = {}
    for n in n_values:
        pairs = np.array([d[n] for d in per_query.values() if n in d], dtype=np.float64).reshape(-1, 2)
        if len(pairs) == 0:
            by_n[n] = OrderStats(n, 0, None, None, None, None, None)
            continue
        by_n[n] = OrderStats(
            n=n,
            n_scored=len(pairs),
            gold=float(pairs[:, 0].mean()),
            random=float(pairs[:, 1].mean()),
            diff=mean_ci(pairs[:, 0] - pairs[:, 1], seed=seed),
            share_gold_high=float((pairs[:, 0] >= VERBATIM_LEVEL).mean()),
            share_random_high=float((pairs[:, 1] >= VERBATIM_LEVEL).mean()),
        )

    s = by_n[leak_n]
    if s.diff is None:
        leaks, reason = False, f"no expansion has {leak_n}-grams beyond the query: nothing to check"
    else:
        leaks = s.diff.low > margin
        verdict = "leaks" if leaks else "no leak"
        cmp = ">" if leaks else "<="
        reason = (
            f"{verdict}: gold-random {leak_n}-gram overlap {s.diff.mean:+.3f} "
            f"[95% CI {s.diff.low:+.3f}, {s.diff.high:+.3f}], lower bound {cmp} margin {margin:.2f} "
            f"(gold {s.gold:.3f} vs random {s.random:.3f}, {s.n_scored} queries)"
        )
    return LeakReport(
        n_queries=len(expansions),
        by_n=by_n,
        leaks=leaks,
        reason=reason,
        leak_n=leak_n,
        margin=margin,
        n_random=n_random,
        seed=seed,
        per_query=per_query,
    )
