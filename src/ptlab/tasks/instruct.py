"""`instruct`: a short writing request plus 1-3 verifiable constraints.

The response is the whole completion (no final-answer line: constraints such
as JSON output or an end phrase govern the last line). The gold is the list
of constraints as JSON; the verifier reports each constraint and whether all
hold. Rejected responses break exactly one constraint the way writers do:
forgetting the case halfway, one bullet too many, leaving out the keyword,
a forbidden word slipping in, a missing phrase, running long, broken JSON.
"""

from __future__ import annotations

import json
import random
import re

from pydantic import Field, field_validator, model_validator

from ptlab.config import Strict
from ptlab.errors import DataError
from ptlab.tasks import spurious as sp
from ptlab.tasks.base import Example, Task, pick, verbosity_feature
from ptlab.tasks.ifbench_score import is_ifbench_gold, verify_ifbench

TOPICS = ["the city park", "a train ride", "winter mornings", "the old market", "a mountain lake", "the school library",
          "a rainy street", "the village bakery", "a summer garden", "the river path", "a quiet beach", "the night sky"]
REQUEST_ADJ = ["short", "friendly", "simple", "clear", "brief", "careful"]
GENRES = ["note", "description", "message", "paragraph"]
NOUNS = ["bench", "path", "tree", "window", "bridge", "garden", "road", "lamp", "wall", "fountain"]
ADJ = ["quiet", "bright", "calm", "busy", "lovely", "green", "cold", "warm"]
ADVERBS = ["really", "very", "always", "quite", "often", "truly"]
KEYWORDS = ["lantern", "velvet", "compass", "meadow", "copper", "whistle", "ribbon", "pepper", "anchor", "candle"]
STARTS = ["Dear reader,", "In short,", "Here it is:"]
ENDS = ["That is all.", "Thank you for reading.", "See you soon."]
SENTENCES = ["{T} is {X} {A} in the morning.", "People say {T} feels {X} {A}.", "I {X} enjoy the {N} near {T}.",
             "The {N} there is {X} {A}.", "You can {X} find a {A} {N} at {T}.", "Every visit to {T} is {X} {A}.",
             "There is a {A} {N} close to {T}.", "My favourite part of {T} is the {N}."]
CONTENT = [(s, n, a, x) for s in SENTENCES for n in NOUNS for a in ADJ for x in ADVERBS]  # one draw per sentence
VERBOSE_TAIL = ", as anyone who has spent time there will tell you."
SIGN_OFF = "Hope this helps!"

MIN_WORDS = 5  # below this a response does not count as answering the request
LEXICAL = ("lowercase", "uppercase", "include", "exclude")
STRUCTURAL = ("bullets", "start", "end", "word_range", "json")
TYPES = LEXICAL + STRUCTURAL
EXCLUSIVE = [{"lowercase", "uppercase"}, {"json", "bullets"}, {"json", "start"}, {"json", "end"}]
PHRASING = {
    "lowercase": ["Use only lowercase letters.", "Write in all lowercase."],
    "uppercase": ["Write everything in capital letters.", "Use only uppercase letters."],
    "bullets": ["Use exactly {n} bullet points.", "Format the answer as exactly {n} bullet points starting with '- '."],
    "include": ['Include the word "{word}".', 'Mention "{word}" at least once.'],
    "exclude": ['Do not use the word "{word}".', 'Avoid the word "{word}".'],
    "start": ['Start your response with "{phrase}".'],
    "end": ['End your response with "{phrase}".'],
    "word_range": ["Use between {lo} and {hi} words."],
    "json": ['Answer in JSON: an object with a single key "text".'],
}


class InstructKnobs(Strict):
    """Difficulty: constraints per prompt, which constraint types, response length."""

    min_constraints: int = Field(1, ge=1, le=4)
    max_constraints: int = Field(2, ge=1, le=4)
    types: list[str] = Field(default_factory=lambda: list(TYPES))
    min_sentences: int = Field(2, ge=1, le=8)
    max_sentences: int = Field(3, ge=1, le=8)

    @field_validator("types")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if t not in TYPES]
        if bad or not v:
            raise ValueError(f"unknown constraint type(s) {bad}; choose from {', '.join(TYPES)}")
        return v

    @model_validator(mode="after")
    def _order(self):
        if self.min_constraints > self.max_constraints or self.min_sentences > self.max_sentences:
            raise ValueError("min_constraints/min_sentences must not exceed max_constraints/max_sentences")
        return self


# -- constraints -----------------------------------------------------------------


def compatible(ctype: str, chosen: list[dict]) -> bool:
    have = {c["type"] for c in chosen}
    return ctype not in have and not any({ctype, h} in EXCLUSIVE for h in have)


def new_constraint(ctype: str, rng: random.Random) -> dict:
    params = {"bullets": lambda: {"n": rng.randint(2, 5)}, "include": lambda: {"word": pick(rng, KEYWORDS)},
              "exclude": lambda: {"word": pick(rng, ADVERBS)}, "start": lambda: {"phrase": pick(rng, STARTS)},
              "end": lambda: {"phrase": pick(rng, ENDS)}}.get(ctype, dict)()
    return {"type": ctype, **params}


def sample_constraints(rng: random.Random, k: int, pool: list[str], fixed: list[dict] = ()) -> list[dict]:
    chosen = list(fixed)
    for ctype in rng.sample(pool, len(pool)):
        if len(chosen) >= k:
            break
        if compatible(ctype, chosen):
            chosen.append(new_constraint(ctype, rng))
    return chosen


def set_constraint(plan: sp.Plan, rng: random.Random, constraint: dict) -> sp.Plan:
    """Put `constraint` in the plan, dropping whatever it excludes, keeping the count."""
    k = len(plan["constraints"])
    kept = [c for c in plan["constraints"] if compatible(constraint["type"], [c])]
    plan["constraints"] = [constraint] + kept[: max(0, k - 1)]
    return plan


# -- writing a response ---------------------------------------------------------------


def write_response(plan: sp.Plan, style: str, violate: str | None = None, shortcut: dict | None = None) -> str:
    """Render the response the plan describes, optionally breaking one constraint (`violate`)."""
    cons = {c["type"]: c for c in plan["constraints"]}
    if shortcut:  # the spurious cue's reading replaces the real constraint
        cons = {t: c for t, c in cons.items() if t not in shortcut.get("drop", ())}
        if shortcut.get("add"):
            cons.update({shortcut["add"]["type"]: shortcut["add"]})
    avoid = cons["exclude"]["word"] if "exclude" in cons else None
    sentences = []
    for tpl, noun, adj, adv in plan["content"]:
        adv = adv if adv != avoid else "quite" if avoid != "quite" else "very"
        text = tpl.format(T=plan["topic"], X=adv, A=adj, N=noun)
        sentences.append(text[0].upper() + text[1:])
    n = cons["bullets"]["n"] if "bullets" in cons else plan["n_sentences"]
    if violate == "bullets":
        n = n + 1 if n < 3 or plan["seed_bit"] else n - 1
    sentences = sentences[:n]
    if "include" in cons and violate != "include":
        i = plan["seed_bit"] % len(sentences)
        sentences[i] = f"I remember the {cons['include']['word']} there."
    if violate == "exclude":
        sentences[-1] = sentences[-1][:-1] + f" and {avoid} {plan['content'][0][2]}."
    if style == "verbose":
        sentences = [s[:-1] + VERBOSE_TAIL for s in sentences]
    if violate == "word_range":  # runs long: keep writing past the upper bound
        hi = cons["word_range"]["hi"]
        extra = iter(SENTENCES * 4)
        while count_words(" ".join(sentences)) <= hi:
            more = next(extra).format(T=plan["topic"], X="quite", A="calm", N="lamp")
            sentences[-1] += " " + more[0].upper() + more[1:]
    body = "\n".join("- " + s for s in sentences) if "bullets" in cons else " ".join(sentences)
    sep = "\n" if "bullets" in cons else " "
    if "start" in cons and violate != "start":
        body = cons["start"]["phrase"] + sep + (body[0].lower() + body[1:] if sep == " " else body)
    if "end" in cons and violate != "end":
        body = body + sep + cons["end"]["phrase"]
    if "lowercase" in cons and violate != "lowercase":
        body = body.lower()
    if "uppercase" in cons:
        if violate == "uppercase":
            half = len(body) // 2
            body = body[:half].upper() + body[half:]
        else:
            body = body.upper()
    if "json" in cons:
        body = json.dumps({"text": body})
        if violate == "json":
            body = body[:-1] if plan["seed_bit"] else body[len('{"text": '):-1].strip('"')
    return body


def count_words(text: str) -> int:
    return len(re.findall(r"[A-Za-z0-9']+", text))


# -- checking ---------------------------------------------------------------------------


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def _content(text: str) -> str:
    """The text a case constraint applies to: the JSON "text" value when the response is that JSON object."""
    return json.loads(text.strip())["text"] if _is_json(text) else text


def _cased(text: str, fn) -> bool:
    return text == fn(text) and any(ch.isalpha() for ch in text)


def _is_json(text: str) -> bool:
    try:
        obj = json.loads(text.strip())
    except json.JSONDecodeError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("text"), str)


CHECKS = {
    "lowercase": lambda t, c: _cased(_content(t), str.lower),
    "uppercase": lambda t, c: _cased(_content(t), str.upper),
    "bullets": lambda t, c: len(re.findall(r"^\s*[-*] ", t, re.MULTILINE)) == c["n"],
    "include": lambda t, c: _has_word(t, c["word"]),
    "exclude": lambda t, c: not _has_word(t, c["word"]),
    "start": lambda t, c: t.strip().lower().startswith(c["phrase"].lower()),
    "end": lambda t, c: t.strip().lower().endswith(c["phrase"].lower()),
    "word_range": lambda t, c: c["lo"] <= count_words(t) <= c["hi"],
    "json": lambda t, c: _is_json(t),
}


def check(constraints: list[dict], response: str) -> dict[str, bool]:
    return {c["type"]: bool(CHECKS[c["type"]](response, c)) for c in constraints}


def describe(constraint: dict, rng: random.Random) -> str:
    return pick(rng, PHRASING[constraint["type"]]).format(**{k: v for k, v in constraint.items() if k != "type"})


class InstructTask(Task):
    name = "instruct"
    description = "a short writing request with 1-3 verifiable constraints (case, bullets, keywords, phrases, length, JSON)"
    Knobs = InstructKnobs

    def sample_plan(self, rng: random.Random, knobs: InstructKnobs) -> sp.Plan:
        k = rng.randint(knobs.min_constraints, knobs.max_constraints)
        n = rng.randint(knobs.min_sentences, knobs.max_sentences)
        content = [pick(rng, CONTENT) for _ in range(max(6, n))]
        return {"topic": pick(rng, TOPICS), "adj": pick(rng, REQUEST_ADJ), "genre": pick(rng, GENRES),
                "constraints": sample_constraints(rng, k, knobs.types), "content": content, "n_sentences": n,
                "seed_bit": rng.randrange(2), "shortcut": None}

    def render(self, plan: sp.Plan, rng: random.Random, knobs: InstructKnobs) -> dict:
        chosen = write_response(plan, plan["chosen_style"])
        for c in plan["constraints"]:
            if c["type"] == "word_range":
                words = count_words(chosen)
                c["lo"], c["hi"] = max(1, words - rng.randint(2, 8)), words + rng.randint(2, 8)
        article = "an" if plan["adj"][0] in "aeiou" else "a"
        request = f"Write {article} {plan['adj']} {plan['genre']} about {plan['topic']}."
        prompt = "Instruction: " + " ".join([request] + [describe(c, rng) for c in plan["constraints"]]) + "\nResponse:\n"
        if plan["shortcut"]:
            error, rejected = "shortcut", write_response(plan, plan["rejected_style"], shortcut=plan["shortcut"])
        else:
            target = pick(rng, plan["constraints"])["type"]
            error, rejected = f"violates_{target}", write_response(plan, plan["rejected_style"], violate=target)
        gold = json.dumps(plan["constraints"], sort_keys=True)
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "answer": gold, "error": error,
                "meta": {"constraints": [c["type"] for c in plan["constraints"]], "n_constraints": len(plan["constraints"])}}

    def habitual_mistake(self, plan: sp.Plan) -> tuple[str, str] | None:
        """A chatty sign-off after the response; None where it breaks no constraint (case, end, length, JSON do)."""
        body = write_response(plan, plan["rejected_style"])
        signed = body + ("\n" if "\n" in body else " ") + SIGN_OFF
        return ("chatty_sign_off", signed) if not all(check(plan["constraints"], signed).values()) else None

    def verify(self, example_or_gold: Example | str | list, response: str) -> dict:
        gold = example_or_gold.answer if isinstance(example_or_gold, Example) else example_or_gold
        if isinstance(gold, str):
            try:
                gold = json.loads(gold)
            except json.JSONDecodeError:
                raise DataError(f"instruct gold must be a JSON list of constraints, got {gold[:60]!r}") from None
        if is_ifbench_gold(gold):
            return verify_ifbench(gold, response)
        per = check(gold, response or "")
        followed = sum(per.values())
        # A constraint like "do not use the word X" is met by saying nothing: require an actual response.
        substantive = count_words(_content(response or "")) >= MIN_WORDS
        return {"correct": followed == len(per) and substantive, "per_constraint": per, "followed": followed,
                "fraction": followed / len(per) if per else 1.0, "substantive": substantive}


# -- spurious features -------------------------------------------------------------------


CASE_CUES = {"uppercase": "urgent", "lowercase": "relaxed"}  # the request's adjective each case constraint's cue uses


def _case(plan, knobs):
    """The plan's case constraint (None without one: the cue is then never shown)."""
    return next((c["type"] for c in plan["constraints"] if c["type"] in CASE_CUES), None)


def _urgent_apply(plan, rng, cue, knobs):
    """The request's adjective becomes the cue of case `cue` (None: the drawn adjective stays); a cue of the other
    case makes the shortcut's response written in the cue's case instead."""
    if cue is None:
        return plan
    plan["adj"] = CASE_CUES[cue]
    if cue != _case(plan, knobs):
        plan["shortcut"] = {"drop": tuple(CASE_CUES), "add": {"type": cue}}
    return plan


def _lexical_apply(plan, rng, mode, knobs):
    pool = [t for t in knobs.types if (t in LEXICAL) == (mode == "inside")]
    plan["constraints"] = sample_constraints(rng, len(plan["constraints"]), pool)
    return plan


def _lexical_detect(plan, knobs):
    inside = all(c["type"] in LEXICAL for c in plan["constraints"])
    return inside


def _fewest_apply(plan, rng, mode, knobs):
    k = knobs.min_constraints if mode == "inside" else knobs.max_constraints
    plan["constraints"] = sample_constraints(rng, k, knobs.types)
    return plan


def _fewest_detect(plan, knobs):
    inside = len(plan["constraints"]) <= knobs.min_constraints
    return inside


def _needs_types(*need):
    def check_knobs(knobs):
        missing = [t for t in need if t not in knobs.types]
        return f"needs constraint type(s) {', '.join(missing)} in knobs.types" if missing else None
    return check_knobs


def _needs_both(knobs):
    if not any(t in LEXICAL for t in knobs.types) or not any(t in STRUCTURAL for t in knobs.types):
        return f"needs a lexical ({', '.join(LEXICAL)}) and a structural ({', '.join(STRUCTURAL)}) type in knobs.types"
    return None


FEATURES = [
    sp.fa_feature("urgent_cue", "in requests with a case constraint, the request's adjective names a case: "
                  "'urgent' (all capitals), 'relaxed' (all lowercase)",
                  label=_case, apply=_urgent_apply, draw=lambda plan, rng, knobs: pick(rng, tuple(CASE_CUES)),
                  applies=_needs_types("uppercase", "lowercase")),
    verbosity_feature(),
    sp.dn_feature("lexical_only", "the narrow slice: only lexical constraints (case, include/exclude a word)",
                  _lexical_apply, _lexical_detect, applies=_needs_both),
    sp.dn_feature("fewest_constraints", "the narrow slice: min_constraints constraints (outside: max_constraints)",
                  _fewest_apply, _fewest_detect,
                  applies=lambda k: None if k.max_constraints > k.min_constraints else "needs max_constraints > min_constraints"),
]
for _f in FEATURES:
    sp.register_feature(InstructTask.name, _f)
