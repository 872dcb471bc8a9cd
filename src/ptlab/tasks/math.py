"""`math`: arithmetic word problems of 1-4 steps with a worked solution.

A plan is a story: an entity holds a quantity of some item (or unit), and each
step changes it by one of the four operations. The solution writes one line
per step (`8 - 2 = 6`) and ends with `Final answer: N`; the verifier extracts
that number. Rejected solutions contain one realistic mistake: a wrong
operation for a sentence, an arithmetic slip, a skipped step, the habitual
stop one step early, or (in shortcut-breaking data) the operation the
spurious cue suggests.

Two wording families tell the same stories in disjoint sentences (`wording`
knob): `standard`, the only one in `tiny`'s pretraining corpus, and
`alternate`, new to it. Each family also has a few openings and question
sentences that the default rendering never uses, for rephrasings
(`math_variants`, which also holds the teacher-facing variation: solution
paths, varied mistakes, perturbed and drifted plans, and a parser).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from ptlab.config import Strict
from ptlab.tasks import spurious as sp
from ptlab.tasks.base import Example, Task, pick, verbosity_feature

NAMES = [("Ada", "She", "her"), ("Ben", "He", "him"), ("Cleo", "She", "her"), ("Dan", "He", "him"),
         ("Eve", "She", "her"), ("Finn", "He", "him"), ("Gus", "He", "him"), ("Hana", "She", "her"),
         ("Ivo", "He", "him"), ("Jade", "She", "her"), ("Kai", "He", "him"), ("Lena", "She", "her"),
         ("Milo", "He", "him"), ("Nora", "She", "her"), ("Omar", "He", "him"), ("Pia", "She", "her")]
ITEMS = [("apples", "apple"), ("books", "book"), ("marbles", "marble"), ("pencils", "pencil"),
         ("stamps", "stamp"), ("cards", "card"), ("shells", "shell"), ("coins", "coin"),
         ("stickers", "sticker"), ("cookies", "cookie"), ("liters of juice", "liter of juice"),
         ("kilograms of rice", "kilogram of rice"), ("meters of rope", "meter of rope"), ("dollars", "dollar")]
FRIENDS = ["A friend", "A neighbour", "A cousin", "The teacher"]
STEP_TEXT = {
    "+": ["{P} buys {b} more {items}.", "{P} finds {b} more {items}.", "{F} gives {o} {b} more {items}."],
    "-": ["{P} gives away {b} {items}.", "{P} sells {b} {items}.", "{P} loses {b} {items}."],
    "*": ["The number of {items} {n} has grows to {b} times what it was.", "{P} gets enough {items} to have {b} times as many."],
    "/": ["{P} splits the {items} into {b} equal groups and keeps one group.",
          "{P} divides the {items} equally among {b} boxes and keeps one box."],
}
VERBOSE_STEP = {"+": "After getting {b} more", "-": "After losing {b}", "*": "After it grows {b} times",
                "/": "After keeping one of {b} equal parts"}
APPLY = {"+": lambda s, b: s + b, "-": lambda s, b: s - b, "*": lambda s, b: s * b, "/": lambda s, b: s // b}
# The question's closing words: each names one operation (the cue's reading of the final step), "now" none.
QUESTION_CUES = {"+": "altogether", "-": "left", "*": "in all", "/": "in the end"}


@dataclass(frozen=True)
class Wording:
    """A family of sentences. The default rendering uses openings[0], questions[0] and draws step sentences and
    friends; the other openings and questions exist for rephrasings only."""

    openings: tuple[str, ...]
    steps: dict  # op -> step sentences ({P} pronoun, {o} object, {n} name, {F} friend, {b} operand, {items})
    friends: tuple[str, ...]
    questions: tuple[str, ...]  # {items} {name} {cue}
    cues: dict  # op -> closing words; None -> the words of no operation

    def cue(self, op: str | None) -> str:
        return self.cues[op]


WORDINGS = {
    "standard": Wording(
        openings=("{name} has {start} {items}.", "{name} starts with {start} {items}.",
                  "At first, {name} has {start} {items}.", "In the beginning {name} has {start} {items}."),
        steps=STEP_TEXT, friends=tuple(FRIENDS),
        questions=("How many {items} does {name} have {cue}?", "What is the number of {items} {name} has {cue}?",
                   "Can you tell how many {items} {name} has {cue}?"),
        cues={**QUESTION_CUES, None: "now"}),
    # Disjoint from `standard` sentence by sentence, cue words included: never in `tiny`'s pretraining.
    "alternate": Wording(
        openings=("{name} owns {start} {items}.", "There are {start} {items} in {name}'s collection.",
                  "Initially, {name} owns {start} {items}.", "{name}'s stock is {start} {items}."),
        steps={"+": ["{n} receives another {b} {items}.", "{P} picks up {b} extra {items}.",
                     "{F} hands {o} {b} extra {items}."],
               "-": ["{n} donates {b} {items}.", "{P} uses up {b} {items}.", "{P} trades away {b} {items}."],
               "*": ["{n}'s supply of {items} is multiplied by {b}.", "{P} ends up with {b} times the {items} from before."],
               "/": ["{n} shares the {items} evenly among {b} people, keeping a single share.",
                     "{P} cuts the {items} into {b} equal parts and holds on to just one."]},
        friends=("A colleague", "A classmate", "An uncle", "The coach"),
        questions=("What is {name}'s count of {items} {cue}?", "Which number of {items} does {name} own {cue}?",
                   "What quantity of {items} does {name} own {cue}?"),
        cues={"+": "combined", "-": "remaining", "*": "overall", "/": "finally", None: "at this point"}),
}


class MathKnobs(Strict):
    """Difficulty: number of steps, size of the quantities, allowed operations."""

    min_steps: int = Field(1, ge=1, le=4)
    max_steps: int = Field(2, ge=1, le=4)
    max_number: int = Field(9, ge=3, le=999, description="quantities are drawn from 1..max_number")
    max_factor: int = Field(4, ge=2, le=12, description="multipliers and divisors are drawn from 2..max_factor")
    ops: str = Field("+-*/", pattern=r"^[+\-*/]{1,4}$")
    wording: Literal["standard", "alternate"] = Field(
        "standard", description="sentence family of the prompts; 'alternate' is never in tiny's pretraining")

    @model_validator(mode="after")
    def _order(self):
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) must not exceed max_steps ({self.max_steps})")
        return self


# -- plans ---------------------------------------------------------------------


def fill_numbers(plan: sp.Plan, rng: random.Random, knobs: MathKnobs, lo: int = 1, hi: int | None = None) -> sp.Plan:
    """Draw the start quantity and each step's operand so every result stays a whole number >= 1."""
    hi = hi or knobs.max_number
    for _ in range(50):
        state = rng.randint(max(lo, 2), max(hi, 2))
        start, operands = state, []
        for op in plan["ops"]:
            if op == "+":
                b = rng.randint(lo, hi)
            elif op == "-":
                if state < 2:
                    break
                b = rng.randint(min(lo, state - 1), min(hi, state - 1))
            elif op == "*":
                b = rng.randint(2, knobs.max_factor)
            else:
                divisors = [d for d in range(2, knobs.max_factor + 1) if state % d == 0]
                if not divisors:
                    break
                b = pick(rng, divisors)
            operands.append(b)
            state = APPLY[op](state, b)
        else:
            plan["start"], plan["operands"] = start, operands
            return plan
    # Fall back to a plan that always works: divide a multiple of the divisor.
    plan["ops"] = [op if op != "/" else "+" for op in plan["ops"]]
    return fill_numbers(plan, rng, knobs, lo, hi)


def sample_ops(rng: random.Random, knobs: MathKnobs, n: int | None = None) -> list[str]:
    n = n or rng.randint(knobs.min_steps, knobs.max_steps)
    return [pick(rng, knobs.ops) for _ in range(n)]


def chain(start: int, ops: list[str], operands: list[int]) -> list[tuple[int, str, int, int]]:
    """Each step as (before, op, operand, after)."""
    out, state = [], start
    for op, b in zip(ops, operands):
        after = APPLY[op](state, b)
        out.append((state, op, b, after))
        state = after
    return out


def answer_of(plan: sp.Plan) -> int:
    return chain(plan["start"], plan["ops"], plan["operands"])[-1][3]


# -- rendering -----------------------------------------------------------------


def render_solution(plan: sp.Plan, steps: list[tuple[int, str, int, int]], style: str) -> str:
    name, items = plan["name"][0], plan["items"][0]
    final = steps[-1][3]
    lines = [f"{a} {op} {b} = {c}" for a, op, b, c in steps]
    if style == "verbose":
        lines = [f"{name} starts with {plan['start']} {items}."] + [
            f"{VERBOSE_STEP[plan['ops'][i]].format(b=plan['operands'][i])}: {line}."
            for i, line in enumerate(lines)
            if i < len(plan["ops"])
        ] + [f"So {name} has {final} {items} now."]
    return "\n".join(lines + [f"Final answer: {final}"])


def render_prompt(plan: sp.Plan, family: Wording, opening: int, choices: list[tuple[int, int]], question: int) -> str:
    """The prompt of `plan` in `family`: opening sentence, (step sentence, friend) per step, question sentence."""
    (name, pron, obj), (items, item) = plan["name"], plan["items"]
    story = [family.openings[opening].format(name=name, start=plan["start"], items=items)]
    for (op, b), (t, f) in zip(zip(plan["ops"], plan["operands"]), choices):
        noun = item if b == 1 and op in "+-" else items
        story.append(family.steps[op][t].format(P=pron, o=obj, n=name, F=family.friends[f], b=b, items=noun))
    ask = family.questions[question].format(items=items, name=name, cue=family.cue(plan.get("cue")))
    return f"Question: {' '.join(story)} {ask}\nAnswer:\n"


SWAP = {"+": "-", "-": "+", "*": "+", "/": "*"}


def _error_candidates(plan: sp.Plan, rng: random.Random):
    """Candidate (kind, steps) mistakes, most specific first; some may be infeasible (empty steps)."""
    ops, nums, start = plan["ops"], plan["operands"], plan["start"]
    with_op = lambda i, new: _safe_chain(start, ops[:i] + [new] + ops[i + 1:], nums)  # noqa: E731
    if plan.get("shortcut"):  # the cue's reading: the last step done with the operation the cue names
        yield "shortcut", _safe_chain(start, ops[:-1] + [plan["shortcut"]], nums, strict=False)
    kinds = ["wrong_operation", "arithmetic_slip"] + (["skipped_step"] if len(ops) > 1 else [])
    for kind in rng.sample(kinds, len(kinds)) * 2:
        i = rng.randrange(len(ops))
        if kind == "wrong_operation":
            yield kind, with_op(i, SWAP[ops[i]])
        elif kind == "skipped_step":  # never one that reads as the habit (forgets_last_step)
            i = rng.randrange(len(ops) - 1)
            steps = _safe_chain(start, ops[:i] + ops[i + 1:], nums[:i] + nums[i + 1:])
            yield kind, [] if steps == chain(start, ops[:-1], nums[:-1]) else steps
        else:
            steps = chain(start, ops, nums)
            a, op, b, c = steps[i]
            slip = max(0, c + pick(rng, [-2, -1, 1, 2, 10]))
            yield kind, steps[:i] + [(a, op, b, slip)] + _safe_chain(slip, ops[i + 1:], nums[i + 1:], strict=False)


def realistic_error(plan: sp.Plan, rng: random.Random) -> tuple[str, list[tuple[int, str, int, int]]]:
    """One mistake a solver makes: wrong operation, slip, skipped step, or the cue's shortcut."""
    gold = answer_of(plan)
    for kind, steps in _error_candidates(plan, rng):
        if steps and steps[-1][3] != gold:
            return kind, steps
    steps = chain(plan["start"], plan["ops"], plan["operands"])
    a, op, b, c = steps[-1]
    return "arithmetic_slip", steps[:-1] + [(a, op, b, c + 1)]


def _safe_chain(start, ops, operands, strict=True):
    out, state = [], start
    for op, b in zip(ops, operands):
        if op == "/" and state % b:
            return [] if strict else out + [(state, "/", b, state // b)]
        after = APPLY[op](state, b)
        if after < 0 and strict:
            return []
        out.append((state, op, b, after))
        state = after
    return out


class MathTask(Task):
    name = "math"
    description = "arithmetic word problems of 1-4 steps with a worked solution and a final-answer line"
    Knobs = MathKnobs

    def sample_plan(self, rng: random.Random, knobs: MathKnobs) -> sp.Plan:
        plan = {"name": pick(rng, NAMES), "items": pick(rng, ITEMS), "ops": sample_ops(rng, knobs),
                "cue": None, "shortcut": None}
        return fill_numbers(plan, rng, knobs)

    def render(self, plan: sp.Plan, rng: random.Random, knobs: MathKnobs) -> dict:
        family = WORDINGS[plan.get("wording", knobs.wording)]
        # Per step: a sentence, then a friend (the order of the draws is part of what a seed produces).
        choices = [(int(rng.random() * len(family.steps[op])), int(rng.random() * len(family.friends)))
                   for op in plan["ops"]]
        prompt = render_prompt(plan, family, 0, choices, 0)
        gold_steps = chain(plan["start"], plan["ops"], plan["operands"])
        error, wrong_steps = realistic_error(plan, rng)
        return {
            "prompt": prompt,
            "chosen": render_solution(plan, gold_steps, plan["chosen_style"]),
            "rejected": render_solution(plan, wrong_steps, plan["rejected_style"]),
            "answer": str(gold_steps[-1][3]),
            "error": error,
            "meta": {"steps": len(plan["ops"]), "ops": "".join(plan["ops"]), "start": plan["start"],
                     "operands": plan["operands"]},
        }

    # -- variation a teacher draws from (see math_variants) --------------------------------
    def solution_paths(self, plan: sp.Plan, n: int, knobs: MathKnobs | None = None) -> list[str]:
        return _variants.solution_paths(plan, n)

    def wrong_solution(self, plan, rng, knobs=None, paths: int = 1) -> tuple[str, str]:
        return _variants.wrong_solution(plan, rng, paths)

    def wordings(self, plan: sp.Plan, n: int, knobs: MathKnobs | None = None) -> list[str]:
        return _variants.wordings(plan, n, knobs or self.knobs())

    def perturb_plan(self, plan: sp.Plan, rng: random.Random, knobs: MathKnobs | None = None) -> sp.Plan:
        return _variants.perturb(plan, rng, knobs or self.knobs())

    def near_plan(self, plan: sp.Plan | None, rng: random.Random, knobs: MathKnobs | None = None) -> sp.Plan:
        return _variants.near(plan, rng, knobs or self.knobs())

    def far_plan(self, rng: random.Random, knobs: MathKnobs | None = None) -> sp.Plan:
        return _variants.far(rng, knobs or self.knobs())

    def parse_plan(self, prompt: str) -> sp.Plan | None:
        return _variants.parse(prompt)

    def habitual_mistake(self, plan: sp.Plan) -> tuple[str, str] | None:
        """Stops one step early: the last event of a story with several is forgotten."""
        if len(plan["ops"]) < 2:
            return None
        steps = chain(plan["start"], plan["ops"][:-1], plan["operands"][:-1])
        return "forgets_last_step", render_solution(plan, steps, plan["rejected_style"])

    def verify(self, example_or_gold: Example | str, response: str) -> dict:
        gold = example_or_gold.answer if isinstance(example_or_gold, Example) else str(example_or_gold)
        predicted, has_line = extract_number(response)
        gold_value = parse_number(gold)
        correct = predicted is not None and gold_value is not None and abs(predicted - gold_value) < 1e-6
        return {"correct": bool(correct), "predicted": predicted, "gold": gold_value, "final_line": has_line}


_FINAL = re.compile(r"final answer\s*[:=]?\s*\$?\s*(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def parse_number(text: str) -> float | None:
    try:
        return float(str(text).replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def extract_number(response: str) -> tuple[float | None, bool]:
    """The number on the last `Final answer:` line, else the last number (and whether a final line was found)."""
    found = _FINAL.findall(response or "")
    if found:
        return parse_number(found[-1]), True
    numbers = _NUMBER.findall(response or "")
    return (parse_number(numbers[-1].rstrip(".")) if numbers else None), False


# -- spurious features -----------------------------------------------------------


def _final_op(plan, knobs):
    return plan["ops"][-1]


def _cue_apply(plan, rng, cue, knobs):
    """The question ends with the words of operation `cue` (None: "now"); a cue that names another operation than
    the final step's makes the shortcut's response that step done with the cue's operation."""
    plan["cue"] = cue
    plan["shortcut"] = cue if cue is not None and cue != plan["ops"][-1] else None
    return plan


def _quantities(plan):
    return [plan["start"]] + [b for op, b in zip(plan["ops"], plan["operands"]) if op in "+-"]


def _small_apply(plan, rng, mode, knobs):
    cut = knobs.max_number // 2
    lo, hi = (1, cut) if mode == "inside" else (cut + 1, knobs.max_number)
    return fill_numbers(plan, rng, knobs, lo, hi)


def _small_detect(plan, knobs):
    inside = max(_quantities(plan)) <= knobs.max_number // 2
    return inside


def _addsub_apply(plan, rng, mode, knobs):
    if mode == "inside":
        plan["ops"] = [o if o in "+-" else pick(rng, [x for x in knobs.ops if x in "+-"]) for o in plan["ops"]]
    else:
        plan["ops"][rng.randrange(len(plan["ops"]))] = pick(rng, [x for x in knobs.ops if x in "*/"])
    return fill_numbers(plan, rng, knobs)


def _addsub_detect(plan, knobs):
    inside = all(o in "+-" for o in plan["ops"])
    return inside


def _steps_apply(plan, rng, mode, knobs):
    n = knobs.min_steps if mode == "inside" else knobs.max_steps
    plan["ops"] = sample_ops(rng, knobs, n)
    return fill_numbers(plan, rng, knobs)


def _steps_detect(plan, knobs):
    inside = len(plan["ops"]) == knobs.min_steps
    return inside


def _needs_mixed(knobs):
    if not any(o in knobs.ops for o in "+-") or not any(o in knobs.ops for o in "*/"):
        return f"needs both an additive (+ -) and a multiplicative (* /) operation in knobs.ops (got {knobs.ops!r})"
    return None


FEATURES = [
    sp.fa_feature("altogether_cue",
                  "the question's closing words name the final step's operation: "
                  + ", ".join(f"'{w}' ({op})" for op, w in QUESTION_CUES.items()) + "; absent: 'now'",
                  label=_final_op, apply=_cue_apply,
                  applies=lambda k: None if len(k.ops) > 1 else "needs more than one operation in knobs.ops"),
    verbosity_feature(),
    sp.dn_feature("small_numbers", "the narrow slice: every quantity is at most max_number // 2",
                  _small_apply, _small_detect,
                  applies=lambda k: None if k.max_number >= 4 else "needs max_number >= 4"),
    sp.dn_feature("add_sub_only", "the narrow slice: problems that only add and subtract", _addsub_apply, _addsub_detect,
                  applies=_needs_mixed),
    sp.dn_feature("fewest_steps", "the narrow slice: problems with min_steps steps (outside: max_steps)",
                  _steps_apply, _steps_detect,
                  applies=lambda k: None if k.max_steps > k.min_steps else "needs max_steps > min_steps"),
]
for _f in FEATURES:
    sp.register_feature(MathTask.name, _f)

from ptlab.tasks import math_variants as _variants  # noqa: E402  (it reads this module's tables)
