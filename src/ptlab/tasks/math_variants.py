"""What a (simulated) teacher varies in a math problem: solution paths, mistakes, wordings, nearby and drifted plans.

Everything here is a pure function of a plan (and an rng the caller seeds), so
a simulated teacher's replies stay deterministic:

* `solution_paths(plan, n)`: up to n distinct *correct* solutions, all ending
  `Final answer: N`. Path 0 is the task's own plain solution; the others vary
  how each step is written (`a + b = c`, the operands swapped where the
  operation commutes, in words, said as a story, a product as a repeated sum,
  with an inverse check on the last step), the layout (one line per step, or one expression with or without its
  intermediate values) and a frame (the start restated first, or the result
  said in words last, or neither).
  No path is much longer than the plain one (`MAX_EXTRAS`, `MAX_EXTRA_CHARS`).
* `wrong_solution(plan, rng, paths)`: one wrong solution; the mistake varies per
  draw (wrong operation, arithmetic slip, skipped step, the habit of stopping a
  step early) and is written in one of the first `paths` path styles.
* `wordings(plan, n)`: up to n distinct prompts of the plan (same answer), in its
  wording family, over the family's openings, step sentences and questions.
* `perturb(plan, rng)`: the same story with one quantity or one operation changed
  (a rephrasing whose meaning drifted; the answer changes).
* `near(plan, rng)` / `far(rng, knobs)`: a new problem like a seed (its operations
  in order and its wording family, the rest fresh) / one off the seed
  distribution (`drifted_knobs`, the other wording family).
* `parse(prompt)`: the plan back from any rendered prompt of either family, or
  None (an ill-formed question: no question sentence, a quantity missing).
"""

from __future__ import annotations

import copy
import itertools
import random
import re
from functools import lru_cache

from ptlab.fingerprint import fingerprint
from ptlab.tasks.base import pick
from ptlab.tasks.math import (
    ITEMS,
    NAMES,
    WORDINGS,
    MathKnobs,
    _error_candidates,
    _safe_chain,
    answer_of,
    chain,
    fill_numbers,
    render_prompt,
)

WORD = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}
SAY = {"+": "{a} and {b} make {c}", "-": "{a} take away {b} leaves {c}", "*": "{b} groups of {a} make {c}",
       "/": "{a} shared into {b} equal parts is {c} each"}
FORMS = ("eq", "swap", "words", "say", "sum", "check")  # how one step is written
LAYOUTS = ("lines", "chain", "expr")  # chain/expr: one expression (needs 2+ steps), written with `eq` only
FRAMES = ("", "open", "close")  # nothing around the steps, the start restated first, or the result in words last
MAX_EXTRAS = 1  # at most one of {a frame line, a long step form (sum, check)}: paths stay short (eval budgets)
MAX_EXTRA_CHARS = 30  # and none is more than this many characters longer than the plain solution


def _plan_key(plan: dict) -> str:
    """What a plan's meaning is made of (not its styles or wording): seeds every per-plan choice."""
    return fingerprint([plan["name"], plan["items"], plan["start"], plan["ops"], plan["operands"],
                        plan.get("cue"), plan.get("wording", "standard")], length=16)


# -- solution paths ----------------------------------------------------------------


def _step(a: int, op: str, b: int, c: int, form: str) -> str:
    if form == "swap" and op in "+*":
        return f"{b} {op} {a} = {c}"
    if form == "words":
        return f"{a} {WORD[op]} {b} is {c}"
    if form == "say":
        return SAY[op].format(a=a, b=b, c=c)
    if form == "sum" and op == "*" and 2 <= b <= 5:
        return f"{a} * {b} = {' + '.join([str(a)] * b)} = {c}"
    if form == "check":
        return f"{a} {op} {b} = {c} (check: {c} {INVERSE[op]} {b} = {a})"
    return f"{a} {op} {b} = {c}"


def _expression(steps) -> tuple[str, list[str]]:
    """One expression for the whole chain, and its successive reductions (intermediate values named)."""
    expr = str(steps[0][0])
    for i, (_, op, b, _) in enumerate(steps):
        expr = f"({expr}) {op} {b}" if i else f"{expr} {op} {b}"
    reductions = []
    for j in range(1, len(steps)):
        rest = str(steps[j][0])
        for i in range(j, len(steps)):
            _, op, b, _ = steps[i]
            rest = f"({rest}) {op} {b}" if i > j else f"{rest} {op} {b}"
        reductions.append(rest)
    return expr, reductions


def render_path(plan: dict, steps, style: tuple[str, str, str]) -> str:
    """The solution of `steps` written in `style` = (layout, form, frame)."""
    layout, form, frame = style
    final = steps[-1][3]
    (name, *_), (items, item) = plan["name"], plan["items"]
    lines = [f"{name} starts with {plan['start']} {items}."] if frame == "open" else []
    if layout == "lines" or len(steps) < 2:  # a check is written on the last step only
        lines += [_step(*s, form if form != "check" or i == len(steps) - 1 else "eq") for i, s in enumerate(steps)]
    else:
        expr, reductions = _expression(steps)
        lines.append(" = ".join([expr] + (reductions if layout == "chain" else []) + [str(final)]))
    if frame == "close":
        lines.append(f"So {name} has {final} {item if final == 1 else items}.")
    return "\n".join(lines + [f"Final answer: {final}"])


def _styles(plan: dict) -> list[tuple[str, str, str]]:
    """Every style (layout, form, frame) within MAX_EXTRAS; the plain one first, the rest in a per-plan order."""
    layouts = LAYOUTS if len(plan["ops"]) > 1 else ("lines",)
    out = []
    for layout, form, frame in itertools.product(layouts, FORMS, FRAMES):
        if layout != "lines" and form != "eq":
            continue
        if (frame != "") + (form in ("sum", "check")) > MAX_EXTRAS:
            continue
        out.append((layout, form, frame))
    first, rest = out[0], out[1:]
    random.Random(f"paths|{_plan_key(plan)}").shuffle(rest)
    return [first] + rest


def _paths(plan: dict, steps, n: int) -> list[tuple[tuple[str, str, str], str]]:
    """(style, text) of up to `n` distinct renderings of `steps`, in `_styles` order, within MAX_EXTRA_CHARS."""
    out: list[tuple[tuple[str, str, str], str]] = []
    limit = None
    for style in _styles(plan):
        text = render_path(plan, steps, style)
        limit = len(text) + MAX_EXTRA_CHARS if limit is None else limit
        if len(text) <= limit and all(text != t for _, t in out):
            out.append((style, text))
            if len(out) >= n:
                break
    return out


def solution_paths(plan: dict, n: int) -> list[str]:
    """Up to `n` distinct correct solutions of `plan` (deterministic in (plan, n); a prefix of those for n + 1).

    Path 0 is `render_solution(plan, gold, "plain")`, the task's own chosen response.
    """
    gold = chain(plan["start"], plan["ops"], plan["operands"])
    return [text for _, text in _paths(plan, gold, n)]


def path_styles(plan: dict, n: int) -> list[tuple[str, str, str]]:
    """The styles behind `solution_paths(plan, n)` (one per distinct path)."""
    return [style for style, _ in _paths(plan, chain(plan["start"], plan["ops"], plan["operands"]), n)]


# -- mistakes --------------------------------------------------------------------


def mistake(plan: dict, rng: random.Random) -> tuple[str, list]:
    """(kind, steps) of one mistake, its kind drawn uniformly among those the plan admits, then its details."""
    gold = answer_of(plan)
    ops, nums, start = plan["ops"], plan["operands"], plan["start"]
    kinds = ["wrong_operation", "arithmetic_slip"] + (["skipped_step", "forgets_last_step"] if len(ops) > 1 else [])
    for _ in range(20):
        kind = pick(rng, kinds)
        if kind == "forgets_last_step":
            steps = chain(start, ops[:-1], nums[:-1])
        else:
            plain = {**plan, "shortcut": None}
            steps = next((s for k, s in _error_candidates(plain, rng) if k == kind and s), [])
        if steps and steps[-1][3] != gold:
            return kind, steps
    steps = chain(start, ops, nums)
    a, op, b, c = steps[-1]
    return "arithmetic_slip", steps[:-1] + [(a, op, b, c + 1)]


def wrong_solution(plan: dict, rng: random.Random, paths: int = 1) -> tuple[str, str]:
    """(kind, text): a mistake drawn by `rng`, written in one of the styles of the first `paths` solution paths."""
    kind, steps = mistake(plan, rng)
    style = pick(rng, path_styles(plan, paths))
    return kind, render_path(plan, steps, style)


# -- wordings ------------------------------------------------------------------------


def wordings(plan: dict, n: int, knobs: MathKnobs) -> list[str]:
    """Up to `n` distinct prompts of `plan` in its wording family (deterministic in (plan, n), nested in n)."""
    family = WORDINGS[plan.get("wording", knobs.wording)]
    rng = random.Random(f"wordings|{_plan_key(plan)}")
    out: list[str] = []
    for _ in range(40 * n + 40):
        choices = [(rng.randrange(len(family.steps[op])), rng.randrange(len(family.friends))) for op in plan["ops"]]
        text = render_prompt(plan, family, rng.randrange(len(family.openings)), choices,
                             rng.randrange(len(family.questions)))
        if text not in out:
            out.append(text)
            if len(out) >= n:
                break
    return out


# -- other plans ------------------------------------------------------------------------


def _valid(plan: dict) -> bool:
    steps = _safe_chain(plan["start"], plan["ops"], plan["operands"])
    return len(steps) == len(plan["ops"]) and all(c >= 1 for *_, c in steps)


def perturb(plan: dict, rng: random.Random, knobs: MathKnobs) -> dict:
    """The same story with one quantity or one operation changed so that the answer changes."""
    gold = answer_of(plan)
    for _ in range(100):
        new = copy.deepcopy(plan)
        if rng.random() < 0.5 or len(knobs.ops) < 2:
            j = rng.randrange(len(new["ops"]) + 1)
            if j == 0:
                new["start"] = rng.randint(2, max(knobs.max_number, 3))
            elif new["ops"][j - 1] in "+-":
                new["operands"][j - 1] = rng.randint(1, knobs.max_number)
            else:
                new["operands"][j - 1] = rng.randint(2, knobs.max_factor)
        else:
            i = rng.randrange(len(new["ops"]))
            new["ops"][i] = pick(rng, [o for o in knobs.ops if o != new["ops"][i]])
        if _valid(new) and answer_of(new) != gold:
            return new
    new = copy.deepcopy(plan)  # unreachable in practice: one more step of + 1 always changes the answer
    new["ops"], new["operands"] = new["ops"] + ["+"], new["operands"] + [1]
    return new


def near(seed: dict | None, rng: random.Random, knobs: MathKnobs) -> dict:
    """A new problem like `seed`: its operations in order and its wording family; person, item, quantities fresh."""
    from ptlab.tasks.math import sample_ops

    ops = list(seed["ops"]) if seed else sample_ops(rng, knobs)
    plan = {"name": pick(rng, NAMES), "items": pick(rng, ITEMS), "ops": ops, "cue": None, "shortcut": None,
            "wording": seed.get("wording", knobs.wording) if seed else knobs.wording}
    return fill_numbers(plan, rng, knobs)


def drifted_knobs(knobs: MathKnobs) -> MathKnobs:
    """Off the seed distribution: one step more than max_steps (at most 4), quantities up to twice max_number,
    factors up to max_factor + 2, every operation, the other wording family."""
    steps = min(4, knobs.max_steps + 1)
    return MathKnobs(min_steps=steps, max_steps=steps, max_number=min(999, 2 * knobs.max_number),
                     max_factor=min(12, knobs.max_factor + 2), ops="+-*/",
                     wording="alternate" if knobs.wording == "standard" else "standard")


def far(rng: random.Random, knobs: MathKnobs) -> dict:
    from ptlab.tasks.math import sample_ops

    k = drifted_knobs(knobs)
    plan = {"name": pick(rng, NAMES), "items": pick(rng, ITEMS), "ops": sample_ops(rng, k), "cue": None,
            "shortcut": None, "wording": k.wording}
    return fill_numbers(plan, rng, k)


# -- parsing -----------------------------------------------------------------------------

_NUM = r"(?P<{}>\d+)"
_FIELDS = {"name": r"(?P<name>[A-Z][a-z]+)", "n": r"(?P<name>[A-Z][a-z]+)", "P": r"(?:She|He)", "o": r"(?:her|him)",
           "items": r"(?P<items>[a-z][a-z ]*?)", "start": _NUM.format("start"), "b": _NUM.format("b")}
_BY_NAME = {n[0]: n for n in NAMES}
_BY_ITEM = {i: pair for pair in ITEMS for i in pair}


def _regex(template: str, friends=(), cues=()) -> re.Pattern:
    """A template as a pattern (no template names a field twice)."""
    fields = dict(_FIELDS, F="(?:" + "|".join(map(re.escape, friends)) + ")",
                  cue="(?P<cue>" + "|".join(map(re.escape, cues)) + ")")
    parts = re.split(r"\{(\w+)\}", template)  # literal, field, literal, ...
    return re.compile("".join(fields[p] if i % 2 else re.escape(p) for i, p in enumerate(parts)))


@lru_cache(maxsize=1)
def _patterns():
    """Per family: openings, (op, step pattern), questions (with the cue words mapped back to operations)."""
    out = {}
    for fam_name, fam in WORDINGS.items():
        cue_of = {words: op for op, words in fam.cues.items()}
        out[fam_name] = (
            [_regex(t) for t in fam.openings],
            [(op, _regex(t, fam.friends)) for op, ts in fam.steps.items() for t in ts],
            [_regex(t, cues=list(cue_of)) for t in fam.questions],
            cue_of,
        )
    return out


def parse(prompt: str) -> dict | None:
    """The plan of a math prompt of either family (name, items, start, operations, operands, cue, wording), or None."""
    m = re.fullmatch(r"Question: (.*\?) Answer:", " ".join(prompt.split()))
    if not m:
        return None
    story, _, ask = m.group(1).rpartition(". ")
    for fam_name, (openings, steps, questions, cue_of) in _patterns().items():
        qm = next((hit for q in questions if (hit := q.fullmatch(ask))), None)
        if qm is None:
            continue
        plan = _parse_story(story + ".", openings, steps)
        if plan is None or qm.group("name") != plan["name"][0] or qm.group("items") != plan["items"][0]:
            return None
        plan.update(cue=cue_of[qm.group("cue")], shortcut=None, wording=fam_name)
        return plan if _valid(plan) else None
    return None


def _parse_story(story: str, openings, steps) -> dict | None:
    sentences = re.split(r"(?<=\.) ", story)
    head = next((m for p in openings if (m := p.fullmatch(sentences[0]))), None)
    if head is None or head.group("name") not in _BY_NAME or head.group("items") not in _BY_ITEM:
        return None
    name, items = _BY_NAME[head.group("name")], _BY_ITEM[head.group("items")]
    ops, operands = [], []
    for s in sentences[1:]:
        hit = next(((op, m) for op, p in steps if (m := p.fullmatch(s))), None)
        if hit is None:
            return None
        op, sm = hit
        gd = sm.groupdict()
        if gd.get("name", name[0]) != name[0] or (gd.get("items") and _BY_ITEM.get(gd["items"]) != items):
            return None
        ops.append(op)
        operands.append(int(sm.group("b")))
    if not ops:
        return None
    return {"name": name, "items": items, "start": int(head.group("start")), "ops": ops, "operands": operands}
