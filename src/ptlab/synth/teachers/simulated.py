"""The `simulated` teacher: a stand-in LLM over ptlab's synthetic tasks (a simulation, not a model).

It answers, rephrases and invents questions through a task's own generator
(`Task.sample_plan` / `Task.render`), so its outputs have known gold answers
and a study of strategies runs in seconds on a CPU. What it does, per request:

* it recognises the request by matching the strategy templates
  (`ptlab.synth.templates`), or treats the whole message as a question;
* **answer**: a question it knows gets the task's correct solution, or with
  probability `error_rate` the task's realistic wrong one; an unknown or
  ill-formed question gets a refusal;
* **rephrase**: the same latent plan rendered with other wording (same answer);
  with probability `error_rate` the meaning drifts (a different plan). Tasks
  whose renderer has no wording variation (e.g. `docqa`) get the question back
  unchanged, as a weak rephraser would;
* **new_question**: a fresh plan from a pool of ``ceil(diversity * pool_size)``
  questions (low diversity repeats questions, like a collapsing teacher); with
  probability `error_rate` it is ill-formed (its question sentence cut off);
* **check_question**: "yes" for well-formed known questions, "no" otherwise,
  each flipped with probability `error_rate`.

Every reply is a deterministic function of (settings, request, sample_index at
temperature > 0). The teacher knows the questions it made (`seeds`) or was
shown (`learn`) in memory, so its replies are not cached across processes.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ptlab.fingerprint import fingerprint
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, ReplyHooks
from ptlab.synth.templates import Templates

REFUSAL = "I cannot answer this question: it does not give enough information."


@dataclass
class Known:
    prompt: str
    chosen: str
    rejected: str
    answer: str
    plan: dict | None  # None: learned from an Example, wording cannot be varied
    answerable: bool = True


def _norm(text: str) -> str:
    return " ".join(text.split())


def _words(text: str) -> int:
    return len(text.split())


class SimulatedTeacher:
    backend = "simulated"
    cacheable = False  # replies depend on in-memory knowledge (see module docstring)

    def __init__(self, task: str = "math", error_rate: float = 0.1, diversity: float = 0.5, seed: int = 0,
                 knobs: dict[str, Any] | None = None, prompts_dir: str | None = None, pool_size: int = 10_000):
        from ptlab.tasks import get_task

        self.task = get_task(task)
        self.knobs = self.task.knobs(**(knobs or {}))
        self.error_rate = error_rate
        self.diversity = diversity
        self.seed = seed
        self.pool = max(1, math.ceil(diversity * pool_size))
        self.model = f"{task}/err={error_rate:g}/div={diversity:g}/seed={seed}"
        self.templates = Templates(prompts_dir)
        self._known: dict[str, Known] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg) -> SimulatedTeacher:
        task = cfg.model if cfg.model != "default" else "math"
        return cls(task, cfg.error_rate, cfg.diversity, cfg.seed, cfg.task_knobs, cfg.prompts_dir)

    # ---- knowledge ------------------------------------------------------------------------
    def seeds(self, n: int, seed: int = 0):
        """`n` seed examples drawn through the task generator, known to this teacher (rephrasable)."""
        from ptlab.tasks import Example

        rng = random.Random(f"sim-seeds|{self.task.name}|{seed}")
        out = []
        for i in range(n):
            known = self._make(rng)
            out.append(Example(id=f"{self.task.name}-sim-{seed}-{i}", task=self.task.name, split="train",
                               prompt=known.prompt, chosen=known.chosen, rejected=known.rejected,
                               answer=known.answer, error="", meta={"source": "simulated-teacher"}))
        return out

    def learn(self, examples) -> None:
        """Know these examples' questions (e.g. from `Task.generate`): answerable, not rephrasable."""
        with self._lock:
            for ex in examples:
                self._known.setdefault(_norm(ex.prompt), Known(ex.prompt, ex.chosen, ex.rejected, ex.answer, None))

    def knows(self, question: str) -> Known | None:
        return self._known.get(_norm(question))

    def _make(self, rng: random.Random, plan: dict | None = None) -> Known:
        if plan is None:
            plan = self.task.sample_plan(rng, self.knobs)
            plan.setdefault("chosen_style", "plain")
            plan.setdefault("rejected_style", "plain")
        r = self.task.render(dict(plan), rng, self.knobs)
        known = Known(r["prompt"], r["chosen"], r["rejected"], r["answer"], plan)
        with self._lock:
            self._known.setdefault(_norm(known.prompt), known)
        return self._known[_norm(known.prompt)]

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
                text, op = self._respond(req)
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
        if op == "rephrase":
            return self._rephrase(known, question, rng), op
        if op == "new_question":
            return self._new_question(rng), op
        if op == "check_question":
            good = known is not None and known.answerable
            if rng.random() < self.error_rate:
                good = not good
            return ("yes" if good else "no"), op
        if known is None or not known.answerable:
            return REFUSAL, "answer"
        return (known.rejected if rng.random() < self.error_rate else known.chosen), "answer"

    def _rephrase(self, known: Known | None, question: str, rng: random.Random) -> str:
        if known is None or known.plan is None:
            return question.strip("\n")  # nothing to vary: a rephraser that changed nothing
        if rng.random() < self.error_rate:  # meaning drift: a different question
            return self._make(rng).prompt
        for _ in range(8):
            other = self._make(rng, known.plan)
            if other.answer == known.answer and _norm(other.prompt) != _norm(known.prompt):
                return other.prompt
        return known.prompt

    def _new_question(self, rng: random.Random) -> str:
        idx = rng.randrange(self.pool)
        made = self._make(random.Random(f"sim-new|{self.model}|{idx}"))
        if rng.random() >= self.error_rate:
            return made.prompt
        broken = _cut_question(made.prompt)
        with self._lock:
            self._known.setdefault(_norm(broken), Known(broken, "", "", "", None, answerable=False))
        return broken


_QUESTION = re.compile(r"[^.?!\n]*\?")


def _cut_question(prompt: str) -> str:
    """The prompt without its (last) question sentence: ill-formed, unanswerable."""
    hits = list(_QUESTION.finditer(prompt))
    if hits:
        last = hits[-1]
        return (prompt[: last.start()].rstrip() + prompt[last.end():]).strip("\n")
    first, _, rest = prompt.partition("\n")
    cut = first.rsplit(". ", 1)[0] + "."
    return (cut + ("\n" + rest if rest else "")).strip("\n")
