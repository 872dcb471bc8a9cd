"""The `simulated` teacher: a stand-in LLM over ptlab's synthetic tasks (a simulation, not a model).

It answers, rephrases and invents questions through a task's own generator,
so its outputs have known gold answers and a study of strategies runs in
seconds on a CPU. Its assumptions are declared parameters (`SimulatorParams`,
in `simulator.py`, with a description of each); per request:

* it recognises the request by matching the strategy templates
  (`ptlab.synth.templates`), or treats the whole message as a question;
* **answer**: a question it knows (see below) gets a correct solution, one of
  `answer_paths` distinct ones (`Task.solution_paths`) drawn uniformly, or with
  probability `answer_error` (`new_question_error` for a question it made
  itself) a wrong one (`Task.wrong_solution`: the mistake drawn anew each time).
  An unknown or ill-formed question gets a refusal;
* **rephrase**: one of `rephrase_wordings` distinct wordings of the question's
  plan (`Task.wordings`, same answer, not the question itself), drawn
  uniformly; with probability `rephrase_drift` the meaning drifts
  (`Task.perturb_plan`: another answer). Tasks without wording variation get
  the question back unchanged, as a weak rephraser would;
* **new_question**: with probability `new_question_drift` a question off the
  seed distribution (`Task.far_plan`), else one like the seed it was asked from
  (`Task.near_plan`); each from one of `new_question_pool` slots per seed
  question, so a small pool repeats questions (collapse); with probability
  `new_question_invalid` it is ill-formed (question sentence cut off, or a
  quantity replaced by "some");
* **check_question**: "yes" for well-formed known questions, "no" otherwise,
  flipped with probability `check_error`.

What it knows: the seeds it made (`seeds`) or was shown (`learn`), and every
question it rephrased or made, in a durable `Knowledge` table shared by every
process with the same parameters; and, for tasks that can read their own
prompts (`Task.parse_plan`: math), any well-formed question. Every reply is a
deterministic function of (parameters, request, sample_index at temperature >
0) and that knowledge, so replies go through the reply cache (`cacheable`).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ptlab.fingerprint import fingerprint
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, ReplyHooks
from ptlab.synth.teachers.simulator import (
    KNOWLEDGE_FILE,
    Knowledge,
    SimulatorParams,
    describe_params,
    norm,
    params_fingerprint,
)
from ptlab.synth.templates import Templates

REFUSAL = "I cannot answer this question: it does not give enough information."


@dataclass
class Known:
    prompt: str
    chosen: str
    rejected: str
    answer: str
    plan: dict | None  # None: learned from an Example whose plan the task cannot recover (no variation)
    answerable: bool = True
    origin: str = "seed"  # seed (given or learned) | rephrase | new | invalid | read (parsed, never stored)


def _words(text: str) -> int:
    return len(text.split())


class SimulatedTeacher:
    backend = "simulated"
    cacheable = True  # replies are a function of (parameters, request) and the durable knowledge

    def __init__(self, task: str = "math", params: SimulatorParams | dict | None = None, seed: int = 0,
                 knobs: dict[str, Any] | None = None, prompts_dir: str | None = None,
                 knowledge_path: str | Path | None = None, **param_values):
        from ptlab.tasks import get_task

        base = params.model_dump() if isinstance(params, SimulatorParams) else dict(params or {})
        params = SimulatorParams(**{**base, **param_values})
        self.task = get_task(task)
        self.knobs = self.task.knobs(**(knobs or {}))
        self.params = params
        self.seed = seed
        self.model = f"{task}/sim-{params_fingerprint(task, params, seed, self.knobs.model_dump())}"
        self.templates = Templates(prompts_dir)
        if knowledge_path is None:
            from ptlab.paths import cache_dir

            knowledge_path = cache_dir("teacher") / KNOWLEDGE_FILE
        self.knowledge = Knowledge(knowledge_path, self.model)
        self._paths: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg) -> SimulatedTeacher:
        task = cfg.model if cfg.model != "default" else "math"
        where = Path(cfg.cache_path).parent / KNOWLEDGE_FILE if cfg.cache_path else None
        return cls(task, cfg.simulator, cfg.seed, cfg.task_knobs, cfg.prompts_dir, knowledge_path=where)

    def params_dict(self) -> dict:
        """The parameters as run (recorded with datasets and reports)."""
        return self.params.model_dump()

    def describe(self) -> list[dict]:
        """[{name, value, description}] of every parameter."""
        return describe_params(self.params)

    def close(self) -> None:
        self.knowledge.close()

    # ---- knowledge ------------------------------------------------------------------------
    def seeds(self, n: int, seed: int = 0):
        """`n` seed examples drawn through the task generator (the same under any simulator parameters; the task
        knobs, e.g. `wording`, apply), known to this teacher and to every process with the same parameters."""
        from ptlab.tasks import Example

        rng = random.Random(f"sim-seeds|{self.task.name}|{seed}")
        made = [self._make(rng) for _ in range(n)]
        self._store(made)
        return [Example(id=f"{self.task.name}-sim-{seed}-{i}", task=self.task.name, split="train", prompt=k.prompt,
                        chosen=k.chosen, rejected=k.rejected, answer=k.answer, error="",
                        meta={"source": "simulated-teacher"}) for i, k in enumerate(made)]

    def learn(self, examples) -> None:
        """Know these examples' questions (e.g. from `Task.generate`); rephrasable where the task can read the plan
        back from the prompt (`Task.parse_plan`) and it gives the example's answer."""
        known = []
        for ex in examples:
            plan = self.task.parse_plan(ex.prompt)
            if plan is not None and self.task.verify(ex.answer, self.task.solution_paths(plan, 1, self.knobs)[0]).get(
                    "correct") is not True:
                plan = None
            known.append(Known(ex.prompt, ex.chosen, ex.rejected, ex.answer, plan, True, "seed"))
        self._store(known)

    def knows(self, question: str) -> Known | None:
        """What the teacher knows of a question: its stored record, else (tasks that read prompts) the parse."""
        rec = self.knowledge.get(question)
        if rec is not None:
            return Known(**rec)
        plan = self.task.parse_plan(question)
        if plan is None:
            return None
        r = self._render(plan, random.Random(0))
        return Known(question, r["chosen"], r["rejected"], r["answer"], plan, True, "read")

    def _render(self, plan: dict, rng: random.Random) -> dict:
        from ptlab.tasks.base import styled

        return self.task.render(styled(plan), rng, self.knobs)

    def _make(self, rng: random.Random, plan: dict | None = None, origin: str = "seed") -> Known:
        if plan is None:
            plan = self.task.sample_plan(rng, self.knobs)
        plan.setdefault("chosen_style", "plain")
        plan.setdefault("rejected_style", "plain")
        rendered_plan = dict(plan)
        r = self.task.render(rendered_plan, rng, self.knobs)
        return Known(r["prompt"], r["chosen"], r["rejected"], r["answer"], _jsonable(rendered_plan), True, origin)

    def _known_as(self, prompt: str, plan: dict, origin: str) -> Known:
        """`prompt`, a wording of `plan`, as known; if rendering redraws part of the plan (instruct's word
        ranges), the rendering's own prompt instead, so that question and answer always agree."""
        from ptlab.tasks.base import styled

        rendered = styled(plan)
        r = self.task.render(rendered, random.Random(0), self.knobs)
        if rendered != styled(plan):
            prompt, plan = r["prompt"], rendered
        return Known(prompt, r["chosen"], r["rejected"], r["answer"], _jsonable(plan), True, origin)

    def _store(self, known: list[Known]) -> None:
        self.knowledge.put_many([asdict(k) for k in known])

    # ---- the Teacher protocol ---------------------------------------------------------------
    def generate(self, requests: Sequence[ChatRequest], hooks: ReplyHooks | None = None) -> list[ChatReply]:
        out = []
        for i, req in enumerate(requests):
            admitted = hooks.admit(i) if hooks is not None else True
            while admitted is None:  # another thread's calls hold the budget: wait for them
                time.sleep(0.005)
                admitted = hooks.admit(i)
            if not admitted:
                reply = ChatReply("", error=BUDGET_SPENT, meta={"attempts": 0, "cost": 0})
            else:
                text, op = self._respond(req)  # what it made is stored before the reply can be cached
                prompt_words = sum(_words(c) for _, c in req.messages)
                reply = ChatReply(text, prompt_words, _words(text), meta={"attempts": 1, "op": op, "finish_reason": "stop"})
            out.append(reply)
            if hooks is not None:
                hooks.done(i, reply)
        return out

    def _respond(self, req: ChatRequest) -> tuple[str, str]:
        salt = req.sample_index if req.temperature > 0 else 0
        rng = random.Random(int(fingerprint(self.model, [list(m) for m in req.messages], salt, length=12), 16))
        user = next((c for r, c in reversed(req.messages) if r == "user"), "")
        op, fields = self.templates.match(user) or ("answer", {"question": user})
        question = fields["question"]
        known = self.knows(question)
        p = self.params
        if op == "rephrase":
            return self._rephrase(known, question, rng), op
        if op == "new_question":
            return self._new_question(known, question, rng), op
        if op == "check_question":
            good = known is not None and known.answerable
            if rng.random() < p.check_error:
                good = not good
            return ("yes" if good else "no"), op
        if known is None or not known.answerable:
            return REFUSAL, "answer"
        error = p.new_question_error if known.origin == "new" else p.answer_error
        if rng.random() < error:
            if known.plan is None:
                return known.rejected, "answer"
            return self.task.wrong_solution(known.plan, rng, self.knobs, p.answer_paths)[1], "answer"
        paths = self._solution_paths(known)
        return paths[int(rng.random() * len(paths))], "answer"

    def _solution_paths(self, known: Known) -> list[str]:
        if known.plan is None:
            return [known.chosen]
        key = norm(known.prompt)
        with self._lock:
            paths = self._paths.get(key)
        if paths is None:
            paths = self.task.solution_paths(known.plan, self.params.answer_paths, self.knobs) or [known.chosen]
            with self._lock:
                if len(self._paths) > 50_000:
                    self._paths.clear()
                self._paths[key] = paths
        return paths

    def _rephrase(self, known: Known | None, question: str, rng: random.Random) -> str:
        p = self.params
        if known is None or known.plan is None or not known.answerable:
            return question.strip("\n")  # nothing to vary: a rephraser that changed nothing
        if rng.random() < p.rephrase_drift:  # meaning drift: the story with another answer
            plan = self.task.perturb_plan(known.plan, rng, self.knobs)
            options = self.task.wordings(plan, p.rephrase_wordings, self.knobs)
            if options:
                made = self._known_as(options[int(rng.random() * len(options))], plan, "rephrase")
            else:
                made = self._make(rng, plan, "rephrase")
        else:
            options = [w for w in self.task.wordings(known.plan, p.rephrase_wordings + 1, self.knobs)
                       if norm(w) != norm(question)][: p.rephrase_wordings]
            if not options:
                return question.strip("\n")
            text = options[int(rng.random() * len(options))]
            made = Known(text, known.chosen, known.rejected, known.answer, known.plan, True, "rephrase")
        self._store([made])
        return made.prompt.strip("\n")

    def _new_question(self, seed: Known | None, question: str, rng: random.Random) -> str:
        p = self.params
        drifted = rng.random() < p.new_question_drift
        slot = rng.randrange(p.new_question_pool)
        invalid = rng.random() < p.new_question_invalid
        source = "far" if drifted else norm(question)  # drifted questions are one pool, near ones one per seed
        made_rng = random.Random(f"sim-new|{self.model}|{source}|{slot}")
        seed_plan = seed.plan if seed is not None else None
        plan = self.task.far_plan(made_rng, self.knobs) if drifted else self.task.near_plan(seed_plan, made_rng,
                                                                                              self.knobs)
        made = self._make(made_rng, plan, "new")
        if not invalid:
            self._store([made])
            return made.prompt.strip("\n")
        broken = _break(made.prompt, rng, readable=self.task.parse_plan(made.prompt) is not None)
        self._store([Known(broken, "", "", "", None, False, "invalid")])
        return broken.strip("\n")


def _jsonable(plan: dict) -> dict:
    """The plan as JSON gives it back (tuples become lists), so in-memory and stored plans are the same."""
    import json

    return json.loads(json.dumps(plan))


_QUESTION = re.compile(r"[^.?!\n]*\?")
_NUMBER = re.compile(r"\b\d+\b")


def _break(prompt: str, rng: random.Random, readable: bool) -> str:
    """An ill-formed version of a question: its question sentence cut off, or (tasks whose prompts state every
    quantity) one quantity of the story replaced by "some". Either way unanswerable."""
    story_numbers = [m for m in _NUMBER.finditer(prompt) if "?" not in prompt[m.end():].split(".")[0]]
    if readable and story_numbers and rng.random() < 0.5:
        m = story_numbers[int(rng.random() * len(story_numbers))]
        return prompt[: m.start()] + "some" + prompt[m.end():]
    return _cut_question(prompt)


def _cut_question(prompt: str) -> str:
    """The prompt without its (last) question sentence: ill-formed, unanswerable."""
    hits = list(_QUESTION.finditer(prompt))
    if hits:
        last = hits[-1]
        return (prompt[: last.start()].rstrip() + prompt[last.end():]).strip("\n")
    first, _, rest = prompt.partition("\n")
    cut = first.rsplit(". ", 1)[0] + "."
    return (cut + ("\n" + rest if rest else "")).strip("\n")
