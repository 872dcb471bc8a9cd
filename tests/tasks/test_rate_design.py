"""The study's data design, checked on the built text.

Every measurement below parses prompts and responses; the generator's own tags (`has_feature`,
`shortcut_agrees`, `error`, `meta`) are read only to cross-check what the text says.

Feature Ambiguity (FA) at rate r: every example with a behaviour carries a cue; a share r carries the cue of
its own behaviour, the rest a cue drawn independently. So across rates only the agreement moves:
agree = r + (1 - r) * chance, where chance is the probability that an independent draw names the example's
behaviour (sum_v p_v^2 of the behaviour's marginal for math and instruct; docqa's cue is a sentence of the
document, drawn at random: 1 / number of candidate sentences). Distributional Narrowness (DN) at rate r: an
exact share r of the training data lies inside the slice.

Generation is deterministic in the seed, so none of these checks is flaky; the tolerances (4 standard errors)
are what sampling error allows, and `test_the_checks_fail_on_a_biased_sample` shows each check can fail.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import lru_cache
from math import sqrt

import pytest

from ptlab.tasks import SpuriousSpec, get_task
from ptlab.tasks import docqa as dq
from ptlab.tasks import instruct as ins
from ptlab.tasks import math as mt
from ptlab.tasks.base import prompt_key

FA, DN = "feature_ambiguity", "distributional_narrowness"
N = 2000  # examples per training sample (rates 0.1 and 0.9)
N_SIDE = 1000  # examples per sample of the side checks (controls, DN, habits)
N_EVAL = 300  # items per evaluation split
K_SE = 4.0  # tolerance, in standard errors
FA_CASES = [("math", "altogether_cue"), ("instruct", "urgent_cue"), ("docqa", "answer_first"),
            ("docqa", "lexical_overlap")]
DN_CASES = [("math", "add_sub_only"), ("instruct", "lexical_only"), ("docqa", "founding_only")]


@lru_cache(maxsize=None)
def gen(task: str, n: int, split: str = "train", feature: str | None = None, artifact: str = FA, rate: float = 0.5,
        seed: int = 0, habit_share: float | None = None, exclude: frozenset = frozenset()) -> tuple:
    spec = SpuriousSpec(feature, artifact, rate) if feature else None
    kw = {} if habit_share is None else {"habit_share": habit_share}
    return tuple(get_task(task).generate(n, seed=seed, split=split, spurious=spec, exclude=exclude, **kw))


# -- statistics ------------------------------------------------------------------------------------------------


def assert_same_marginals(a: list, b: list, what: str) -> None:
    """Every value's frequency in `a` and in `b` agrees within K_SE standard errors of a difference of proportions."""
    ca, cb = Counter(a), Counter(b)
    bad = []
    for v in sorted(set(ca) | set(cb), key=repr):
        pa, pb = ca[v] / len(a), cb[v] / len(b)
        p = (ca[v] + cb[v]) / (len(a) + len(b))
        se = sqrt(p * (1 - p) * (1 / len(a) + 1 / len(b)))
        if abs(pa - pb) > K_SE * se:
            bad.append(f"{v!r}: {pa:.3f} vs {pb:.3f} (|diff| {abs(pa - pb):.3f} > {K_SE:g} SE = {K_SE * se:.3f})")
    assert not bad, f"{what}: frequencies differ: " + "; ".join(bad)


def assert_same_mean(a: list[float], b: list[float], what: str) -> None:
    def mv(x):
        m = sum(x) / len(x)
        return m, sum((v - m) ** 2 for v in x) / (len(x) - 1)

    (ma, va), (mb, vb) = mv(a), mv(b)
    se = sqrt(va / len(a) + vb / len(b))
    assert abs(ma - mb) <= K_SE * se, f"{what}: means {ma:.2f} vs {mb:.2f} (|diff| {abs(ma - mb):.2f} > {K_SE:g} SE = {K_SE * se:.2f})"


def assert_share(observed: float, expected: float, n: int, what: str) -> None:
    se = sqrt(expected * (1 - expected) / n)
    assert abs(observed - expected) <= K_SE * se + 1e-12, (
        f"{what}: {observed:.4f}, expected {expected:.4f} (|diff| {abs(observed - expected):.4f} > {K_SE:g} SE = {K_SE * se:.4f})")


CHI2_999 = [10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588, 31.264, 32.909]


def independence_stat(pairs: list[tuple]) -> tuple[float, float, list]:
    """Pearson's chi-square statistic of the (x, y) table, its p = 0.001 critical value, and the table."""
    xs, ys = sorted({x for x, _ in pairs}, key=repr), sorted({y for _, y in pairs}, key=repr)
    c = Counter(pairs)
    table = [[c[x, y] for y in ys] for x in xs]
    rows, cols, n = [sum(r) for r in table], [sum(col) for col in zip(*table)], len(pairs)
    stat = sum((table[i][j] - rows[i] * cols[j] / n) ** 2 / (rows[i] * cols[j] / n)
               for i in range(len(xs)) for j in range(len(ys)))
    return stat, CHI2_999[(len(xs) - 1) * (len(ys) - 1) - 1], table


def share(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


# -- reading math ----------------------------------------------------------------------------------------------

WORD_OP = {w: op for op, w in mt.QUESTION_CUES.items()}
_MATH_PROMPT = re.compile(r"Question: (.+) How many (.+) does (\w+) have (" + "|".join(list(WORD_OP) + ["now"])
                          + r")\?\nAnswer:\n", re.S)
_STEP = re.compile(r"^(-?\d+) ([-+*/]) (-?\d+) = (-?\d+)$", re.M)
_FINAL = re.compile(r"^Final answer: (-?\d+)$", re.M)
APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def math_closing(prompt: str) -> str:
    m = _MATH_PROMPT.fullmatch(prompt)
    assert m, f"unreadable math prompt {prompt!r}"
    return m.group(4)


def math_steps(solution: str) -> list[tuple[int, str, int, int]]:
    steps = [(int(a), op, int(b), int(c)) for a, op, b, c in _STEP.findall(solution)]
    assert steps, f"no step line in {solution!r}"
    return steps


def math_final(solution: str) -> int:
    found = _FINAL.findall(solution)
    assert len(found) == 1, f"not one final-answer line in {solution!r}"
    return int(found[0])


def math_read(ex) -> dict:
    word = math_closing(ex.prompt)
    steps = math_steps(ex.chosen)
    return {"cue": word, "behaviour": steps[-1][1], "agree": WORD_OP.get(word) == steps[-1][1],
            "size": len(steps), "length": len(ex.prompt)}


def math_without_cue(prompt: str) -> str:
    m = _MATH_PROMPT.fullmatch(prompt)
    assert m, f"unreadable math prompt {prompt!r}"
    return prompt[:m.start(4)] + "<cue>" + prompt[m.end(4):]


def math_habit_text(chosen: str) -> str | None:
    """The chosen solution stopped one step early (None for a one-step problem)."""
    steps = math_steps(chosen)
    if len(steps) < 2:
        return None
    return "\n".join([f"{a} {op} {b} = {c}" for a, op, b, c in steps[:-1]] + [f"Final answer: {steps[-2][3]}"])


# -- reading instruct ------------------------------------------------------------------------------------------

CUE_CASE = {adj: case for case, adj in ins.CASE_CUES.items()}
_INS_PROMPT = re.compile(r"Instruction: Write (an?) ([a-z]+) ([a-z]+) about ([^.]+)\.(.*)\nResponse:\n", re.S)
_SLOT = {"n": r"(?P<n>\d+)", "lo": r"(?P<lo>\d+)", "hi": r"(?P<hi>\d+)", "word": r"(?P<word>[A-Za-z]+)",
         "phrase": r'(?P<phrase>[^"]+)'}
_PHRASES = [(t, re.compile("".join(_SLOT[p] if i % 2 else re.escape(p)
                                   for i, p in enumerate(re.split(r"\{(\w+)\}", tpl)))))
            for t, tpls in ins.PHRASING.items() for tpl in tpls]


def ins_parse(prompt: str) -> tuple[str, str, list[dict]]:
    """(article, request adjective, constraints as stated), the constraints read back phrase by phrase."""
    m = _INS_PROMPT.fullmatch(prompt)
    assert m, f"unreadable instruct prompt {prompt!r}"
    rest, pos, constraints = m.group(5).strip(), 0, []
    while pos < len(rest):
        hits = [(t, h) for t, rx in _PHRASES if (h := rx.match(rest, pos))]
        assert len(hits) == 1, f"constraint text not read as one phrase at {rest[pos:]!r} in {prompt!r}"
        t, h = hits[0]
        constraints.append({"type": t, **{k: int(v) if v.isdigit() else v for k, v in h.groupdict().items()}})
        pos = h.end() + 1
    return m.group(1), m.group(2), constraints


def ins_case(constraints: list[dict]) -> str | None:
    cases = [c["type"] for c in constraints if c["type"] in ins.CASE_CUES]
    assert len(cases) <= 1, f"two case constraints {cases}"
    return cases[0] if cases else None


def ins_read(ex) -> dict:
    article, adj, constraints = ins_parse(ex.prompt)
    assert article == ("an" if adj[0] in "aeiou" else "a"), ex.prompt
    gold = json.loads(ex.answer)  # cross-check: the stated constraints are the gold's
    assert sorted(constraints, key=lambda c: c["type"]) == sorted(gold, key=lambda c: c["type"]), ex.prompt
    case = ins_case(constraints)
    return {"cue": adj if adj in CUE_CASE else "other", "behaviour": case or "none", "labelled": case is not None,
            "agree": CUE_CASE.get(adj) == case, "size": len(constraints), "length": len(ex.prompt)}


def ins_without_cue(prompt: str) -> str:
    return re.sub(r"^Instruction: Write an? [a-z]+ ", "Instruction: Write <adj> ", prompt)


def ins_text(response: str) -> str:
    """The text a case constraint applies to (the "text" of a JSON answer)."""
    try:
        obj = json.loads(response)
    except json.JSONDecodeError:
        return response
    return obj["text"] if isinstance(obj, dict) and isinstance(obj.get("text"), str) else response


# -- reading docqa ---------------------------------------------------------------------------------------------

_DQ_PROMPT = re.compile(r"Document: (.+)\nQuestion: (.+)\nAnswer:\n", re.S)


def _template(tpl: str) -> re.Pattern:
    slots = {"E": r"(?P<E>[A-Z][a-z]+)", "V": r"(?P<V>[A-Za-z0-9,]+)"}
    return re.compile("".join(slots[p] if i % 2 else re.escape(p) for i, p in enumerate(re.split(r"\{(\w)\}", tpl))))


_QUESTIONS = [(rel, _template(q)) for rel, (q, *_) in dq.RELATIONS.items()]
_SENTENCES = [(rel, form, _template(tpl)) for rel, (_, canon, para, _) in dq.RELATIONS.items()
              for form, tpl in (("canon", canon), ("para", para))]
_STOP = {"the", "of", "in", "is", "was", "a", "an", "what", "who", "how", "which", "does", "do", "by"}


def _words(text: str, drop: set[str]) -> set[str]:
    """Content words, crudely stemmed ("exports" -> "export"), minus stop words and the names in `drop`."""
    return {w.rstrip("s") for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP and w not in drop}


def dq_parse(ex) -> dict:
    return _dq_parse(ex.prompt, ex.answer, ex.chosen)


@lru_cache(maxsize=None)
def _dq_parse(prompt: str, answer: str, chosen: str) -> dict:
    m = _DQ_PROMPT.fullmatch(prompt)
    assert m, f"unreadable docqa prompt {prompt!r}"
    doc, question = m.groups()
    qs = [(rel, h.group("E")) for rel, rx in _QUESTIONS if (h := rx.fullmatch(question))]
    assert len(qs) == 1, f"question {question!r} not read"
    relation, town = qs[0]
    sentences = []
    for s in re.split(r"(?<=\.) ", doc):
        hits = [(rel, form, h.group("E"), h.group("V")) for rel, form, rx in _SENTENCES if (h := rx.fullmatch(s))]
        assert len(hits) == 1, f"sentence {s!r} not read as one fact"
        rel, form, e, v = hits[0]
        role = "answer" if (rel, e) == (relation, town) else "distractor" if rel == relation else "fact"
        shares = bool(_words(s, {e.lower(), v.lower()}) & _words(question, {town.lower()})) if rel == relation else None
        sentences.append({"text": s, "r": rel, "form": form, "e": e, "v": v, "role": role, "shares": shares})
    answers = [i for i, s in enumerate(sentences) if s["role"] == "answer"]
    assert len(answers) == 1, f"not one answer sentence in {doc!r}"
    pos = answers[0]
    assert sentences[pos]["v"] == answer and chosen.endswith(f"Final answer: {answer}"), prompt
    for s in sentences:  # the text measure of "shares the question's wording" is the canonical phrasing
        assert s["shares"] is None or s["shares"] == (s["form"] == "canon"), (s["text"], question)
    return {"question": question, "relation": relation, "town": town, "sentences": sentences, "position": pos}


def dq_read(ex, feature: str) -> dict:
    p = dq_parse(ex)
    ss = p["sentences"]
    asked = [s for s in ss if s["r"] == p["relation"]]
    if feature == "answer_first":
        cue, candidates, agree = ss[0]["role"], len(ss), ss[0]["role"] == "answer"
    else:  # the cue is *which* sentence shares the question's wording: its position in the document
        sharing = [i for i, s in enumerate(ss) if s["r"] == p["relation"] and s["shares"]]
        assert len(sharing) <= 1, f"{len(sharing)} sentences share the question's wording in {ex.prompt!r}"
        cue, candidates = (str(sharing[0]) if sharing else "none"), len(asked)
        agree = bool(sharing) and ss[sharing[0]]["role"] == "answer"
    return {"cue": cue, "behaviour": p["relation"], "position": p["position"], "agree": agree,
            "chance": 1 / candidates, "size": len(ss), "asked": len(asked), "length": len(ex.prompt)}


def dq_without_cue(ex, feature: str) -> tuple:
    p = dq_parse(ex)
    if feature == "answer_first":
        return p["question"], tuple(sorted(s["text"] for s in p["sentences"]))
    return p["question"], tuple(f"<{s['r']}|{s['e']}|{s['v']}>" if s["r"] == p["relation"] else s["text"]
                                for s in p["sentences"])


# -- per-feature dispatch --------------------------------------------------------------------------------------


def read(task: str, feature: str, ex) -> dict:
    if task == "math":
        return math_read(ex)
    if task == "instruct":
        return ins_read(ex)
    return dq_read(ex, feature)


def without_cue(task: str, feature: str, ex):
    if task == "math":
        return math_without_cue(ex.prompt)
    if task == "instruct":
        return ins_without_cue(ex.prompt)
    return dq_without_cue(ex, feature)


@lru_cache(maxsize=None)
def train_records(task: str, feature: str, rate: float, n: int = N) -> tuple:
    return tuple(read(task, feature, ex) for ex in gen(task, n, "train", feature, FA, rate))


def labelled(recs) -> list[dict]:
    """The examples the cue can be about (instruct: those with a case constraint; math and docqa: all)."""
    return [r for r in recs if r.get("labelled", True)]


def chance(recs) -> float:
    """Probability that an independent cue names the example's behaviour, measured on the text."""
    if "chance" in recs[0]:
        return share(r["chance"] for r in recs)
    counts = Counter(r["behaviour"] for r in recs)
    return sum((c / len(recs)) ** 2 for c in counts.values())


# -- 1. FA: only the association changes with the rate ----------------------------------------------------------


@pytest.mark.parametrize("task, feature", [c for c in FA_CASES if c[1] != "answer_first"])
def test_fa_cue_and_behaviour_frequencies_do_not_move_with_the_rate(task, feature):
    """The module docstring of `ptlab.tasks.spurious`: across rates every cue value and every behaviour keeps its
    frequency. docqa: the behaviour is the relation asked and the answer sentence's position, the cue the position
    of the sentence sharing the question's wording (lexical_overlap)."""
    lo, hi = labelled(train_records(task, feature, 0.1)), labelled(train_records(task, feature, 0.9))
    keys = ["cue", "behaviour"] + (["position"] if task == "docqa" else [])
    failures = []
    for key in keys:
        try:
            assert_same_marginals([r[key] for r in lo], [r[key] for r in hi], f"{task}/{feature} {key} at 0.1 vs 0.9")
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_fa_other_input_statistics_do_not_move_with_the_rate(task, feature):
    lo, hi = train_records(task, feature, 0.1), train_records(task, feature, 0.9)
    size = {"math": "steps", "instruct": "constraints", "docqa": "document sentences"}[task]
    assert_same_marginals([r["size"] for r in lo], [r["size"] for r in hi], f"{task}/{feature} number of {size}")
    assert_same_mean([r["length"] for r in lo], [r["length"] for r in hi], f"{task}/{feature} prompt length")
    if task == "instruct":
        assert share(r["labelled"] for r in lo) == share(r["labelled"] for r in hi)
    # every example with a behaviour carries a cue, and one without never does
    assert all((r["cue"] not in ("now", "other", "none")) == r.get("labelled", True) for r in lo + hi)


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_fa_train_items_differ_across_rates_only_in_the_cue(task, feature):
    """Same seed, same plans: item i at rate 0.1 and at 0.9 has the same prompt up to the cue and the same chosen."""
    lo, hi = gen(task, N, "train", feature, FA, 0.1), gen(task, N, "train", feature, FA, 0.9)
    assert [without_cue(task, feature, e) for e in lo] == [without_cue(task, feature, e) for e in hi]
    assert [e.chosen for e in lo] == [e.chosen for e in hi]
    assert [e.answer for e in lo] == [e.answer for e in hi]


@pytest.mark.parametrize("task, feature", FA_CASES)
@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_fa_agreement_is_the_rate_plus_chance(task, feature, rate):
    recs = labelled(train_records(task, feature, rate))
    c = chance(recs)
    observed = share(r["agree"] for r in recs)
    assert_share(observed, rate + (1 - rate) * c, len(recs), f"{task}/{feature} agreement at rate {rate} (chance {c:.3f})")
    for r, ex in zip(train_records(task, feature, rate), gen(task, N, "train", feature, FA, rate)):
        if r.get("labelled", True):  # cross-check the generator's own account of each example
            assert ex.has_feature and ex.shortcut_agrees == r["agree"], ex.prompt


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_fa_agreement_is_clearly_higher_at_the_high_rate(task, feature):
    lo, hi = labelled(train_records(task, feature, 0.1)), labelled(train_records(task, feature, 0.9))
    a_lo, a_hi = share(r["agree"] for r in lo), share(r["agree"] for r in hi)
    assert a_hi - a_lo > 0.3, f"{task}/{feature}: agreement {a_lo:.3f} at 0.1, {a_hi:.3f} at 0.9"


# -- 6. the controls: rates 0 and 1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_rate_one_cue_always_names_the_behaviour(task, feature):
    recs = labelled(train_records(task, feature, 1.0, N_SIDE))
    wrong = [r for r in recs if not r["agree"]]
    assert not wrong, f"{task}/{feature}: {len(wrong)} of {len(recs)} cues name another behaviour at rate 1: {wrong[:3]}"


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_rate_zero_cue_is_independent_of_the_behaviour(task, feature):
    recs = labelled(train_records(task, feature, 0.0, N_SIDE))
    c = chance(recs)
    assert_share(share(r["agree"] for r in recs), c, len(recs), f"{task}/{feature} agreement at rate 0")
    if task in ("math", "instruct"):  # the whole table: cue and behaviour independent (chi-square)
        stat, critical, table = independence_stat([(r["cue"], r["behaviour"]) for r in recs])
        assert stat < critical, f"{task}/{feature}: cue depends on the behaviour at rate 0 (chi-square {stat:.1f}): {table}"


def test_math_rate_one_and_zero_on_the_final_operation():
    one, zero = (train_records("math", "altogether_cue", r, N_SIDE) for r in (1.0, 0.0))
    assert all(WORD_OP[r["cue"]] == r["behaviour"] for r in one)
    p = Counter(r["behaviour"] for r in zero)
    assert_share(share(r["agree"] for r in zero), sum((v / N_SIDE) ** 2 for v in p.values()), N_SIDE,
                 "math agreement at rate 0")


# -- 2. DN at its nominal rate ----------------------------------------------------------------------------------------


def inside_slice(task: str, ex) -> bool:
    if task == "math":
        return all(op in "+-" for _, op, _, _ in math_steps(ex.chosen))
    if task == "instruct":
        return all(c["type"] in ins.LEXICAL for c in ins_parse(ex.prompt)[2])
    return dq_parse(ex)["relation"] in dq.NARROW_RELATIONS


@pytest.mark.parametrize("task, feature", DN_CASES)
@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_dn_training_share_inside_the_slice_is_the_rate(task, feature, rate):
    exs = gen(task, N_SIDE, "train", feature, DN, rate)
    inside = [inside_slice(task, e) for e in exs]
    assert abs(share(inside) - rate) <= 1 / N_SIDE, f"{task}/{feature}: {sum(inside)} of {N_SIDE} inside at rate {rate}"
    assert inside == [e.has_feature for e in exs]  # cross-check


@pytest.mark.parametrize("task, feature", DN_CASES)
def test_dn_eval_id_is_inside_and_eval_break_outside(task, feature):
    ids, brk = gen(task, N_EVAL, "eval_id", feature, DN), gen(task, N_EVAL, "eval_break", feature, DN)
    assert sum(inside_slice(task, e) for e in ids) == N_EVAL
    assert sum(inside_slice(task, e) for e in brk) == 0
    for exs in (ids, brk):
        assert len({e.prompt for e in exs}) == len(exs)


# -- 3. twins -----------------------------------------------------------------------------------------------------


def twin_splits(task: str, feature: str) -> list[str]:
    return ["eval_id", "eval_break"] + (["eval_neutral"] if feature != "answer_first" else [])


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_twins_are_aligned_and_differ_only_in_the_cue(task, feature):
    splits = {s: gen(task, N_EVAL, s, feature) for s in twin_splits(task, feature)}
    ids = splits["eval_id"]
    for s, exs in splits.items():
        assert len(exs) == N_EVAL
        assert [e.meta["twin"] for e in exs] == [e.meta["twin"] for e in ids], s
        assert len({e.prompt for e in exs}) == N_EVAL, f"{s}: prompts repeat"
        assert [without_cue(task, feature, e) for e in exs] == [without_cue(task, feature, e) for e in ids], s
        assert [e.chosen for e in exs] == [e.chosen for e in ids], s
        assert [e.answer for e in exs] == [e.answer for e in ids], s
        assert all(a.prompt != b.prompt for a, b in zip(exs, ids)) or s == "eval_id", f"{s}: a twin without a cue change"
    recs = {s: [read(task, feature, e) for e in exs] for s, exs in splits.items()}
    assert all(r["agree"] for r in recs["eval_id"])
    assert not any(r["agree"] for r in recs["eval_break"])
    if "eval_neutral" in recs:
        none = {"math": "now", "instruct": "other", "docqa": "none"}[task]
        assert all(r["cue"] == none for r in recs["eval_neutral"])
    assert all(r.get("labelled", True) for rs in recs.values() for r in rs)


def math_shortcut(chosen: str, op: str) -> str:
    steps = math_steps(chosen)
    a, _, b, _ = steps[-1]
    c = APPLY[op](a, b)
    lines = [f"{x} {o} {y} = {z}" for x, o, y, z in steps[:-1]] + [f"{a} {op} {b} = {c}"]
    return "\n".join(lines + [f"Final answer: {c}"])


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_eval_break_rejected_is_the_shortcuts_response(task, feature):
    for ex in gen(task, N_EVAL, "eval_break", feature):
        assert ex.error == "shortcut"  # cross-check
        if task == "math":
            op = WORD_OP[math_closing(ex.prompt)]
            assert ex.rejected == math_shortcut(ex.chosen, op), ex.prompt
            assert math_final(ex.rejected) != int(ex.answer)
        elif task == "instruct":
            cue_case = CUE_CASE[ins_parse(ex.prompt)[1]]
            text = ins_text(ex.rejected)
            assert text == (text.upper() if cue_case == "uppercase" else text.lower()), ex.rejected
            assert ex.rejected.lower() == ex.chosen.lower() and ex.rejected != ex.chosen
        else:
            ss = dq_parse(ex)["sentences"]
            followed = ss[0] if feature == "answer_first" else next(s for s in ss if s["shares"])
            assert followed["role"] != "answer"
            assert ex.rejected == f"Final answer: {followed['v']}" and followed["v"] != ex.answer


def test_answer_first_moves_the_answer_position_with_the_rate_and_says_so():
    """answer_first's cue is the answer's position itself, so its position marginal cannot stay put: the feature
    says so, the study's default for docqa is lexical_overlap, and the design check sees the shift."""
    from ptlab.studies.spurious.config import DEFAULT_FEATURES
    from ptlab.tasks import features

    lo, hi = train_records("docqa", "answer_first", 0.1), train_records("docqa", "answer_first", 0.9)
    first = [share(r["position"] == 0 for r in recs) for recs in (lo, hi)]
    assert first[1] - first[0] > 0.4
    assert "marginal moves with the rate" in features("docqa")["answer_first"].description
    assert DEFAULT_FEATURES["docqa"]["feature_ambiguity"] == "lexical_overlap"


def test_answer_first_twins_keep_the_other_sentences_in_order():
    for a, b in zip(gen("docqa", N_EVAL, "eval_id", "answer_first"), gen("docqa", N_EVAL, "eval_break", "answer_first")):
        sa, sb = ([s["text"] for s in dq_parse(e)["sentences"]] for e in (a, b))
        assert sa[0] != sb[0]
        assert [s for s in sa[1:] if s != sb[0]] == [s for s in sb[1:] if s != sa[0]]


# -- 4. dedup -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_exclude_skips_train_prompts(task, feature):
    base = gen(task, 300, "train", feature, FA, 0.5)
    exclude = frozenset(prompt_key(e.prompt) for e in base[:150])
    again = gen(task, 300, "train", feature, FA, 0.5, exclude=exclude)
    assert len(again) == 300
    assert not any(prompt_key(e.prompt) in exclude for e in again)
    assert not {e.prompt for e in base[:150]} & {e.prompt for e in again}


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_exclude_skips_every_twin_of_an_excluded_prompt(task, feature):
    """Excluding only the eval_break prompts of some items drops those items from every evaluation split."""
    n = 150
    splits = twin_splits(task, feature)
    base = {s: gen(task, n, s, feature) for s in splits}
    dropped = base["eval_break"][::4]
    exclude = frozenset(prompt_key(e.prompt) for e in dropped)
    gone = {e.meta["twin"] for e in dropped}
    again = {s: gen(task, n, s, feature, exclude=exclude) for s in splits}
    for s, exs in again.items():
        assert len(exs) == n
        assert not any(prompt_key(e.prompt) in exclude for e in exs), s
        assert not gone & {e.meta["twin"] for e in exs}, s
        assert not {e.prompt for e in base[s][::4]} & {e.prompt for e in exs}, s
        assert [e.meta["twin"] for e in exs] == [e.meta["twin"] for e in again["eval_id"]]


# -- 5. habit_share -------------------------------------------------------------------------------------------------

HABIT = {"math": "forgets_last_step", "instruct": "chatty_sign_off", "docqa": "whole_sentence"}


def habit_text(task: str, ex) -> str | None:
    """The habitual mistake for this example, built from its text (None where the task has none for it)."""
    if task == "math":
        return math_habit_text(ex.chosen)
    if task == "instruct":
        signed = ex.chosen + ("\n" if "\n" in ex.chosen else " ") + ins.SIGN_OFF
        return None if all(ins.check(ins_parse(ex.prompt)[2], signed).values()) else signed
    p = dq_parse(ex)
    return f"Final answer: {p['sentences'][p['position']]['text']}"


@lru_cache(maxsize=None)
def habit_samples(task: str) -> tuple[dict, list, list[int]]:
    """({habit_share: examples}, the habit's text per example, the examples that admit the habit)."""
    by = {s: gen(task, N_SIDE, habit_share=s) for s in (0.0, 0.25, 1.0)}
    habits = [habit_text(task, e) for e in by[0.0]]
    return by, habits, [i for i, h in enumerate(habits) if h is not None]


@pytest.mark.parametrize("task", sorted(HABIT))
def test_habit_share_moves_only_the_rejected_response(task):
    by, habits, eligible = habit_samples(task)
    for s, exs in by.items():
        assert [(e.prompt, e.chosen, e.answer) for e in exs] == [(e.prompt, e.chosen, e.answer) for e in by[0.0]], s
    assert len(eligible) > N_SIDE / 3, f"{task}: only {len(eligible)} of {N_SIDE} examples admit the habit"
    assert not any(e.error == HABIT[task] for e in by[0.0])
    assert all(by[1.0][i].rejected == habits[i] and by[1.0][i].error == HABIT[task] for i in eligible)
    assert all(by[1.0][i].rejected == by[0.0][i].rejected for i, h in enumerate(habits) if h is None)
    # at 0.25 each rejected response is the one of habit_share 0 or the habit, the habit in a quarter of them
    mid, zero = by[0.25], by[0.0]
    assert all(mid[i].rejected in (zero[i].rejected, habits[i] or zero[i].rejected) for i in range(N_SIDE))
    switchable = [i for i in eligible if zero[i].rejected != habits[i]]
    switched = share(mid[i].rejected == habits[i] for i in switchable)
    assert_share(switched, 0.25, len(switchable), f"{task}: rejected responses switched to the habit at habit_share 0.25")


@pytest.mark.parametrize("task", sorted(HABIT))
def test_habit_share_is_the_share_of_rejected_responses_that_read_as_the_habit(task):
    """Measured on the text: habit_share 0 shows the habit in no rejected response, 0.25 in a quarter, 1 in all."""
    by, habits, eligible = habit_samples(task)
    shown = {s: share(exs[i].rejected == habits[i] for i in eligible) for s, exs in by.items()}
    tagged = [i for i in eligible if by[0.0][i].rejected == habits[i]]
    assert shown[0.0] == 0.0, (
        f"{task}: at habit_share 0, {len(tagged)} of {len(eligible)} rejected responses ({shown[0.0]:.3f}) read as the "
        f"habit, tagged {dict(Counter(by[0.0][i].error for i in tagged))}; "
        f"at habit_share 0.25: {shown[0.25]:.3f}, at 1: {shown[1.0]:.3f}")
    assert_share(shown[0.25], 0.25, len(eligible), f"{task}: habit at habit_share 0.25")
    assert shown[1.0] == 1.0


# -- the checks can fail ----------------------------------------------------------------------------------------------


def test_the_checks_fail_on_a_biased_sample():
    lo, hi = train_records("math", "altogether_cue", 0.1), train_records("math", "altogether_cue", 0.9)
    biased, k = [], 0
    for r in hi:  # drop every other example whose question ends in "altogether"
        k += r["cue"] == "altogether"
        if r["cue"] != "altogether" or k % 2:
            biased.append(r)
    assert_same_marginals([r["cue"] for r in lo], [r["cue"] for r in hi], "unbiased")
    with pytest.raises(AssertionError, match="'altogether'"):
        assert_same_marginals([r["cue"] for r in lo], [r["cue"] for r in biased], "biased")
    cut = sorted(r["length"] for r in hi)[3 * len(hi) // 4]
    short = [r for i, r in enumerate(hi) if r["length"] <= cut or i % 2]  # half the longest quarter dropped
    assert_same_mean([r["length"] for r in lo], [r["length"] for r in hi], "unbiased")
    with pytest.raises(AssertionError, match="means"):
        assert_same_mean([r["length"] for r in lo], [r["length"] for r in short], "biased")
    stat, critical, _ = independence_stat([(r["cue"], r["behaviour"]) for r in hi])
    assert stat > critical  # the independence check sees the association at rate 0.9
    c, a = chance(hi), share(r["agree"] for r in hi)
    assert_share(a, 0.9 + 0.1 * c, len(hi), "the true rate")
    with pytest.raises(AssertionError):
        assert_share(a, 0.85 + 0.15 * c, len(hi), "a misstated rate")


@pytest.mark.parametrize("task, feature", FA_CASES)
def test_training_never_shows_the_shortcuts_response(task, feature):
    """A conflicting cue in training (and in the pretraining corpus, rate 0) gets the same kinds of mistakes as any
    other example: were its rejected the shortcut's response, the error mix would move with the rate and the base
    would be pretrained to follow the cue. Measured on the text for math: the rejected solution's last operation
    names the cue's operation no more often than chance among conflicting examples."""
    from ptlab.tasks.corpus import corpus_examples

    for rate in (0.0, 0.5):
        assert not any(ex.error == "shortcut" for ex in gen(task, 600, "train", feature, FA, rate))
    pretrain = [ex for ex in corpus_examples(task, 3000, seed=1000, habits=True) if ex.feature == feature]
    assert pretrain and not any(ex.error == "shortcut" for ex in pretrain)
    if task == "math":
        conflicting = [ex for ex in pretrain if not ex.shortcut_agrees]
        from ptlab.tasks.math import QUESTION_CUES

        follows = [math_steps(ex.rejected)[-1][1] == {w: op for op, w in QUESTION_CUES.items()}[math_closing(ex.prompt)]
                   for ex in conflicting if math_steps(ex.rejected)]
        assert share(follows) < 0.35, share(follows)  # chance: 1/4 of operations, plus habit-truncated solutions
