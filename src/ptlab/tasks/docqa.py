"""`docqa`: questions answered from a generated document about fictional towns.

Town names are built from random syllables and every fact is drawn at random,
so no prior knowledge can help: the answer must come from the document. People
and rivers come from fixed name lists (one word each), so answering is finding
the right sentence and copying a short span: a model of about a million
parameters learns that copying within minutes of pretraining, where random
four-syllable names kept it at the floor. Each document mixes facts about the
asked-about town with distractors — the same relation for other towns, and
other relations of the same town whose values have the same type. The
response ends with `Final answer: <span>`; the verifier scores normalised
exact match and token F1 (SQuAD-style). Rejected responses quote a
distractor's span, or (the habitual mistake, `HABIT_SHARE` of them) the whole
sentence that holds the answer: right fact, wrong answer under exact match.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter

from pydantic import Field, field_validator, model_validator

from ptlab.config import Strict
from ptlab.tasks import spurious as sp
from ptlab.tasks.base import Example, Task, pick, verbosity_feature

SYLLABLES = ["zor", "vik", "bran", "now", "tel", "mar", "quin", "dal", "ost", "ra", "kel", "fen", "lur", "ith",
             "mo", "sab", "gry", "pel", "tov", "un", "ar", "ves", "cor", "lin", "hal", "dre", "nik", "sul"]
PEOPLE = ["Ada", "Bruno", "Cora", "Dario", "Elsa", "Felix", "Greta", "Hugo", "Iris", "Jonas", "Kira", "Leo",
          "Mira", "Nils", "Olga", "Pavel", "Rosa", "Sven", "Tara", "Viktor", "Wanda", "Yuri", "Zelda", "Omar"]
RIVERS = ["Amber", "Birch", "Cinder", "Dusk", "Ember", "Fern", "Glen", "Heron", "Ivy", "Jade", "Kestrel", "Lark",
          "Moss", "Otter", "Reed", "Sable", "Thorn", "Vale", "Willow", "Wren"]
GOODS = ["copper", "wool", "salt", "glass", "wax", "tea", "silk", "timber", "honey", "tin", "pottery", "rope"]

# relation -> (question, canonical sentence (shares the question's wording), paraphrase, value kind)
RELATIONS = {
    "founder": ("Who founded {E}?", "{E} was founded by {V}.", "{V} established {E} long ago.", "person"),
    "year": ("In what year was {E} founded?", "{E} was founded in {V}.", "The first houses of {E} were built in {V}.", "year"),
    "river": ("Which river flows through {E}?", "The river {V} flows through {E}.", "{E} sits on the banks of the {V}.", "river"),
    "export": ("What does {E} export?", "{E} exports {V}.", "The main trade good of {E} is {V}.", "good"),
    "mayor": ("Who is the mayor of {E}?", "The mayor of {E} is {V}.", "{V} leads the council of {E}.", "person"),
    "population": ("How many people live in {E}?", "{V} people live in {E}.", "The last count in {E} found {V} residents.", "count"),
}
NARROW_RELATIONS = ("founder", "year")


class DocQAKnobs(Strict):
    """Difficulty: facts per document, distractors, which relations are asked about."""

    facts: int = Field(2, ge=1, le=6, description="facts about the asked-about town (including the answer)")
    min_distractors: int = Field(1, ge=0, le=8)
    max_distractors: int = Field(2, ge=0, le=8)
    relations: list[str] = Field(default_factory=lambda: list(RELATIONS))

    @field_validator("relations")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in RELATIONS]
        if bad or not v:
            raise ValueError(f"unknown relation(s) {bad}; choose from {', '.join(RELATIONS)}")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.min_distractors > self.max_distractors:
            raise ValueError("min_distractors must not exceed max_distractors")
        return self


def _word(rng: random.Random, parts: int) -> str:
    return "".join(pick(rng, SYLLABLES) for _ in range(parts)).capitalize()


def value(kind: str, rng: random.Random) -> str:
    if kind == "person":
        return pick(rng, PEOPLE)
    if kind == "year":
        return str(rng.randint(1100, 1950))
    if kind == "river":
        return pick(rng, RIVERS)
    if kind == "good":
        return pick(rng, GOODS)
    return f"{rng.randint(2, 99)},{rng.randint(0, 999):03d}"


def other_value(relation: str, answer: str, rng: random.Random, taken: set[str] = frozenset()) -> str:
    """A value of the relation's kind that differs from the answer and from `taken` (a distractor must be wrong,
    and with closed name lists two facts must not share a name, or a distractor's span would be right)."""
    while (v := value(RELATIONS[relation][3], rng)) == answer or v in taken:
        pass
    return v


def other_town(town: str, rng: random.Random) -> str:
    while (name := _word(rng, 2)) == town:
        pass
    return name


# -- plans: a list of facts (entity, relation, value, phrasing) ------------------------


def sample_facts(rng: random.Random, knobs: DocQAKnobs, relation: str, n_distractors: int) -> sp.Plan:
    town = _word(rng, 2)
    answer = value(RELATIONS[relation][3], rng)
    others = [r for r in RELATIONS if r != relation]
    facts = [{"e": town, "r": relation, "v": answer, "role": "answer", "canon": rng.random() < 0.5}]
    taken = {answer}
    for r in rng.sample(others, min(knobs.facts - 1, len(others))):
        taken.add(v := other_value(r, answer, rng, taken))
        facts.append({"e": town, "r": r, "v": v, "role": "fact", "canon": rng.random() < 0.5})
    for _ in range(n_distractors):  # the hardest distractors: the asked relation, another town
        taken.add(v := other_value(relation, answer, rng, taken))
        facts.append({"e": other_town(town, rng), "r": relation, "v": v, "role": "distractor", "canon": rng.random() < 0.5})
    rng.shuffle(facts)
    return {"town": town, "relation": relation, "answer": answer, "facts": facts}


def sentence(fact: dict) -> str:
    _, canon, para, _ = RELATIONS[fact["r"]]
    return (canon if fact["canon"] else para).format(E=fact["e"], V=fact["v"])


def _answer_index(plan: sp.Plan) -> int:
    return next(i for i, f in enumerate(plan["facts"]) if f["role"] == "answer")


def wrong_span(plan: sp.Plan, rng: random.Random) -> tuple[str, str]:
    """A distractor's value: the shortcut's pick, else another town's or another relation's same-kind value."""
    if plan.get("shortcut"):
        return "shortcut", plan["shortcut"]
    kind = RELATIONS[plan["relation"]][3]
    same = [f["v"] for f in plan["facts"] if f["role"] == "distractor" and f["v"] != plan["answer"]]
    typed = [f["v"] for f in plan["facts"] if f["role"] == "fact" and RELATIONS[f["r"]][3] == kind]
    if same and (not typed or rng.random() < 0.7):
        return "distractor_span", pick(rng, same)
    if typed:
        return "wrong_relation_span", pick(rng, typed)
    other = [f["v"] for f in plan["facts"] if f["v"] != plan["answer"]]
    return "unrelated_span", pick(rng, other) if other else value(kind, rng)


def respond(plan: sp.Plan, span: str, style: str) -> str:
    if style == "verbose":
        fact = next((f for f in plan["facts"] if f["v"] == span), None)
        cite = sentence(fact) if fact else f"the answer is {span}."
        return f"The document says: {cite}\nFinal answer: {span}"
    return f"Final answer: {span}"


class DocQATask(Task):
    name = "docqa"
    description = "questions about a generated document on fictional towns, with distractor facts"
    Knobs = DocQAKnobs

    def sample_plan(self, rng: random.Random, knobs: DocQAKnobs) -> sp.Plan:
        plan = sample_facts(rng, knobs, pick(rng, knobs.relations), rng.randint(knobs.min_distractors, knobs.max_distractors))
        plan["shortcut"] = None
        return plan

    def render(self, plan: sp.Plan, rng: random.Random, knobs: DocQAKnobs) -> dict:
        document = " ".join(sentence(f) for f in plan["facts"])
        question = RELATIONS[plan["relation"]][0].format(E=plan["town"])
        error, span = wrong_span(plan, rng)
        return {
            "prompt": f"Document: {document}\nQuestion: {question}\nAnswer:\n",
            "chosen": respond(plan, plan["answer"], plan["chosen_style"]),
            "rejected": respond(plan, span, plan["rejected_style"]),
            "answer": plan["answer"],
            "error": error,
            "meta": {"relation": plan["relation"], "doc_sentences": len(plan["facts"]),
                     "answer_position": _answer_index(plan),
                     "others": [f["v"] for f in plan["facts"] if f["role"] != "answer"]},
        }

    def habitual_mistake(self, plan: sp.Plan) -> tuple[str, str] | None:
        """Answers with the whole sentence that holds the answer instead of its span (in the rejected style)."""
        said = sentence(plan["facts"][_answer_index(plan)])
        cite = f"The document says: {said}\n" if plan["rejected_style"] == "verbose" else ""
        return "whole_sentence", f"{cite}Final answer: {said}"

    def verify(self, example_or_gold: Example | str | list, response: str, others: list[str] | None = None) -> dict:
        """`correct` is the decision: the right fact was chosen (`fact_selected`) — the answer contains the gold
        value and no other value of the document — so a right answer in the wrong format (the whole sentence) is
        not scored as a wrong fact. Exact match and token F1 (SQuAD) come beside it. Without the document's other
        values (`others`, or an Example's meta; real data has none), `correct` is exact match."""
        if isinstance(example_or_gold, Example):
            others = example_or_gold.meta.get("others") if others is None else others
            gold = example_or_gold.answer
        else:
            gold = example_or_gold
        golds = [gold] if isinstance(gold, str) else list(gold)
        predicted = extract_answer(response)
        em = max(float(normalize(predicted) == normalize(g)) for g in golds)
        f1 = max(token_f1(predicted, g) for g in golds)
        if others is None:
            selected = bool(em)
        else:
            selected = any(_mentions(predicted, g) for g in golds) and not any(_mentions(predicted, o) for o in others)
        return {"correct": selected, "fact_selected": selected, "exact_match": em, "f1": f1, "predicted": predicted}

    def verify_row(self, row: dict, response: str) -> dict:
        meta = row.get("meta")
        meta = json.loads(meta) if isinstance(meta, str) else (meta or {})
        return self.verify(row["answer"], response, others=meta.get("others"))


def _mentions(text: str, value: str) -> bool:
    """Whether `value` occurs in `text` as whole words (after SQuAD normalisation)."""
    return f" {normalize(value)} " in f" {normalize(text)} "


# -- scoring (SQuAD's normalisation) ----------------------------------------------------------

_FINAL = re.compile(r"final answer\s*:\s*(.*)", re.IGNORECASE)


def extract_answer(response: str) -> str:
    """The text after the last `Final answer:`, else the last non-empty line."""
    found = _FINAL.findall(response or "")
    if found:
        return found[-1].strip()
    lines = [ln.strip() for ln in (response or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def normalize(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(predicted: str, gold: str) -> float:
    p, g = normalize(predicted).split(), normalize(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return float(p == g)
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


# -- spurious features ---------------------------------------------------------------------


def _distractor(plan: sp.Plan, rng: random.Random) -> dict:
    """A same-relation distractor, adding one if the document has none."""
    ds = [f for f in plan["facts"] if f["role"] == "distractor"]
    if ds:
        return ds[0]
    taken = {f["v"] for f in plan["facts"]}
    d = {"e": other_town(plan["town"], rng), "r": plan["relation"],
         "v": other_value(plan["relation"], plan["answer"], rng, taken), "role": "distractor", "canon": rng.random() < 0.5}
    plan["facts"].append(d)
    return d


def _answer(plan, knobs):
    return "answer"


def _first_draw(plan, rng, knobs):
    """The role of the sentence a natural (shuffled) document opens with."""
    return pick(rng, plan["facts"])["role"]


def _first_apply(plan, rng, cue, knobs):
    """The document opens with a sentence of role `cue` (the answer, a same-relation distractor or another fact of
    the town), the others keeping their order; the shortcut's response is the opening sentence's value."""
    _distractor(plan, rng)
    facts = plan["facts"]
    opening = next((f for f in facts if f["role"] == cue), None)
    if opening is None:  # no fact of that role (e.g. knobs.facts == 1): a distractor opens it
        opening = next(f for f in facts if f["role"] == "distractor")
    facts.remove(opening)
    plan["facts"] = [opening] + facts
    plan["shortcut"] = opening["v"] if opening["role"] != "answer" else None
    return plan


def _answer_position(plan, knobs):
    return str(_answer_index(plan))


def _overlap_draw(plan, rng, knobs):
    """The position of a random sentence of the asked relation (the answer's or a distractor's)."""
    return str(pick(rng, [i for i, f in enumerate(plan["facts"]) if f["r"] == plan["relation"]]))


def _overlap_apply(plan, rng, cue, knobs):
    """The sentence at position `cue` (one of the asked relation) repeats the question's wording, the other sentences
    of that relation are paraphrased (None: all are); the shortcut's response is that sentence's value."""
    for f in plan["facts"]:
        if f["r"] == plan["relation"]:
            f["canon"] = False
    if cue is not None:
        marked = plan["facts"][int(cue)]
        marked["canon"] = True
        plan["shortcut"] = marked["v"] if marked["role"] != "answer" else None
    return plan


def _narrow_apply(plan, rng, mode, knobs):
    pool = [r for r in knobs.relations if (r in NARROW_RELATIONS) == (mode == "inside")]
    n_d = sum(f["role"] == "distractor" for f in plan["facts"])
    new = sample_facts(rng, knobs, pick(rng, pool), n_d)
    plan.update(new)
    return plan


def _narrow_detect(plan, knobs):
    inside = plan["relation"] in NARROW_RELATIONS
    return inside


def _short_apply(plan, rng, mode, knobs):
    n_d = knobs.min_distractors if mode == "inside" else knobs.max_distractors
    plan.update(sample_facts(rng, knobs, plan["relation"], n_d))
    return plan


def _short_detect(plan, knobs):
    inside = sum(f["role"] == "distractor" for f in plan["facts"]) <= knobs.min_distractors
    return inside


def _narrow_applies(knobs):
    inside = [r for r in knobs.relations if r in NARROW_RELATIONS]
    outside = [r for r in knobs.relations if r not in NARROW_RELATIONS]
    return None if inside and outside else f"needs knobs.relations to include one of {NARROW_RELATIONS} and one other"


FEATURES = [
    sp.fa_feature("answer_first", "the document opens with the answer's sentence in `rate` of examples; otherwise "
                  "with a random one of its sentences (breaking: a distractor or another fact opens it). The cue is "
                  "the answer's position itself, so the answer-position marginal moves with the rate: prefer "
                  "lexical_overlap, whose marginals do not",
                  label=_answer, apply=_first_apply, draw=_first_draw, absent=False),
    sp.fa_feature("lexical_overlap", "one sentence of the asked relation repeats the question's wording, the others "
                  "are paraphrased: the answer's in `rate` of examples, otherwise one at random (label and cue: "
                  "sentence positions, both uniform at every rate)",
                  label=_answer_position, apply=_overlap_apply, draw=_overlap_draw),
    verbosity_feature(),
    sp.dn_feature("founding_only", f"the narrow slice: questions about {' and '.join(NARROW_RELATIONS)} only",
                  _narrow_apply, _narrow_detect, applies=_narrow_applies),
    sp.dn_feature("short_documents", "the narrow slice: min_distractors distractors (outside: max_distractors)",
                  _short_apply, _short_detect,
                  applies=lambda k: None if k.max_distractors > k.min_distractors else "needs max_distractors > min_distractors"),
]
for _f in FEATURES:
    sp.register_feature(DocQATask.name, _f)
