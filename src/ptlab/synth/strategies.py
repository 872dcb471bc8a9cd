"""The three generation strategies of the budget study: Answer Augmentation, Question Rephrase, New Question.

Each turns a seed set S and a query budget Q into SFT rows (TRL's
`prompt`/`completion`) with provenance columns. Q counts every teacher reply a
strategy *consumes*, cached or paid, so a dataset is a function of (seeds,
config, Q): re-running it from the cache, or restarting a killed run, rebuilds
the same rows and pays only for what the cache lacks. (The teacher's own
`Budget` separately caps what is paid.)

Costs per row: AA 1 query (one more answer to a seed question); QR 2 (rephrase,
answer); NQ 3 (new question, self-check, answer; 2 without the check, and a
failed check wastes 2). All strategies go round-robin over the seeds, one
`sample_index` per pass, until Q is spent or `rounds` passes are done.

A run whose calls mostly fail is an error, not a small dataset: when more
than `max_failed_share` of the requests actually sent got no reply after
their retries (or all of them did), `run_strategy` raises a one-line
`RunFailed` naming the first error, and `ptlab synth` writes nothing and exits
1. (A server that was down used to give exit 0 and an empty dataset.)

Verification (optional): ``gold`` checks an answer against the seed's gold
answer where the question keeps it (AA, QR) with the task's verifier;
``majority`` samples `answers_per_question` answers and keeps those agreeing
with the most common final answer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from ptlab.config import Strict
from ptlab.errors import ConfigError
from ptlab.synth.errors import RunFailed
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest
from ptlab.synth.templates import Templates

STRATEGIES = ("answer_augmentation", "question_rephrase", "new_question")


class StrategyConfig(Strict):
    strategy: Literal["answer_augmentation", "question_rephrase", "new_question"] = "answer_augmentation"
    queries: int | None = Field(None, ge=1, description="Q: teacher replies this dataset may consume")
    rounds: int | None = Field(None, ge=1, description="passes over the seeds (default: until Q is spent)")
    temperature: float = Field(0.8, ge=0, description="sampling temperature of every teacher call")
    max_tokens: int = Field(256, ge=1)
    check: bool = Field(True, description="new_question: ask the teacher whether its question is answerable")
    verify: Literal["none", "gold", "majority"] = "none"
    answers_per_question: int = Field(1, ge=1, description="answers sampled per question (majority needs >= 3)")
    keep_unverified: bool = Field(False, description="keep rows that failed verification (marked verified=False)")
    prompts_dir: str | None = None
    max_failed_share: float = Field(0.5, ge=0, le=1, description="largest share of sent requests that may get "
                                    "no reply after retries before the run fails (all failing always fails)")


@dataclass
class Seed:
    id: str
    question: str
    answer: str | None = None  # gold, in the task's verifier format, where known


@dataclass
class SynthResult:
    rows: list[dict]
    stats: dict = field(default_factory=dict)


class _Quota:
    """Q as the strategy sees it: replies consumed (cached or paid); stops on the teacher's budget.
    Also counts the requests sent and those that failed (for `max_failed_share`)."""

    def __init__(self, teacher, queries: int | None):
        self.teacher = teacher
        self.left = queries
        self.used = 0
        self.paid = 0
        self.sent = 0
        self.failed = 0
        self.first_error: str | None = None
        self.teacher_budget_spent = False

    def can(self, n: int) -> int:
        if self.teacher_budget_spent:
            return 0
        return n if self.left is None else max(0, min(n, self.left))

    def ask(self, requests: list[ChatRequest]) -> list[ChatReply]:
        replies = self.teacher.generate(requests) if requests else []
        for r in replies:
            if not r.cached and int(r.meta.get("attempts", 1)) > 0:
                self.sent += 1
                if not r.ok:
                    self.failed += 1
                    if self.first_error is None and r.error != BUDGET_SPENT:
                        self.first_error = r.error
            if r.error == BUDGET_SPENT:
                self.teacher_budget_spent = True
                continue
            self.used += 1
            self.paid += int(r.meta.get("cost", 0))
        if self.left is not None:
            self.left -= sum(1 for r in replies if r.error != BUDGET_SPENT)
        return replies

    def check(self, cfg: StrategyConfig, teacher_name: str) -> None:
        """Raise `RunFailed` when every sent request failed, or more than the allowed share did."""
        if self.sent == 0 or (self.failed < self.sent and self.failed <= cfg.max_failed_share * self.sent):
            return
        why = f": first error: {self.first_error}" if self.first_error else ""
        raise RunFailed(f"teacher {teacher_name}: {self.failed} of {self.sent} requests sent got no reply "
                        f"(strategy.max_failed_share={cfg.max_failed_share}); no dataset written{why}")


def run_strategy(teacher, seeds: list[Seed], cfg: StrategyConfig, task=None) -> SynthResult:
    """Rows of `cfg.strategy` from `seeds` through `teacher` (a MeteredTeacher or any Teacher)."""
    if not seeds:
        raise ConfigError("seeds: the seed set is empty")
    if cfg.queries is None and cfg.rounds is None:
        raise ConfigError("strategy: set queries (the budget Q) or rounds (passes over the seeds)")
    if cfg.verify == "majority" and cfg.answers_per_question < 3:
        raise ConfigError("strategy.answers_per_question: majority verification needs >= 3 answers per question")
    if cfg.verify == "gold" and task is None:
        raise ConfigError("strategy.verify: 'gold' needs the seeds' task (its verifier)")
    run = _Run(teacher, seeds, cfg, task)
    rows = {"answer_augmentation": run.answer_augmentation, "question_rephrase": run.question_rephrase,
            "new_question": run.new_question}[cfg.strategy]()
    run.quota.check(cfg, run.name)
    stats = {"strategy": cfg.strategy, "seeds": len(seeds), "rows": len(rows), "queries_used": run.quota.used,
             "queries_paid": run.quota.paid, "queries_budget": cfg.queries, "rounds": run.rounds_done,
             **run.counts}
    if hasattr(teacher, "report"):
        stats["teacher"] = teacher.report()
    return SynthResult(rows, stats)


class _Run:
    def __init__(self, teacher, seeds: list[Seed], cfg: StrategyConfig, task):
        self.teacher = teacher
        self.seeds = seeds
        self.cfg = cfg
        self.task = task
        self.t = Templates(cfg.prompts_dir)
        self.quota = _Quota(teacher, cfg.queries)
        self.rounds_done = 0
        self.counts: Counter = Counter()
        self.name = f"{teacher.backend}:{teacher.model}"

    def _req(self, template: str, question: str, k: int, temperature: float | None = None) -> ChatRequest:
        t = self.cfg.temperature if temperature is None else temperature
        return ChatRequest.user(self.t.render(template, question=question), temperature=t,
                                max_tokens=self.cfg.max_tokens, sample_index=k)

    def _rounds(self):
        k = 0
        while self.cfg.rounds is None or k < self.cfg.rounds:
            yield k
            k += 1

    def _answers(self, items: list[tuple[Seed, str, int, int]], gold_kept: bool) -> list[dict]:
        """Answer each (seed, question, round, queries spent before) with `answers_per_question` samples."""
        per = self.cfg.answers_per_question
        n = self.quota.can(len(items) * per) // per
        items = items[:n]
        reqs = [self._req("answer", q, k * per + j) for _, q, k, _ in items for j in range(per)]
        replies = self.quota.ask(reqs)
        rows = []
        for i, (seed, question, k, spent) in enumerate(items):
            group = [r for r in replies[i * per : (i + 1) * per] if r.ok]
            self.counts["failed_answers"] += per - len(group)
            verdicts = self._verify(seed if gold_kept else None, group)
            for reply, verified in zip(group, verdicts):
                if verified is False and not self.cfg.keep_unverified:
                    self.counts["rejected_by_verification"] += 1
                    continue
                rows.append(self._row(seed, question, reply, k, spent + 1, verified, gold_kept))
        return rows

    def _verify(self, seed: Seed | None, replies: list[ChatReply]) -> list[bool | None]:
        if self.cfg.verify == "gold":
            if seed is None or seed.answer is None:
                return [None] * len(replies)
            return [bool(self.task.verify(seed.answer, r.text)["correct"]) for r in replies]
        if self.cfg.verify == "majority":
            keys = [self._final(r.text) for r in replies]
            top = Counter(k for k in keys if k is not None).most_common(1)
            return [top != [] and k == top[0][0] for k in keys]
        return [None] * len(replies)

    def _final(self, text: str):
        """The final answer a response gives: the task verifier's `predicted`, else the last line."""
        if self.task is not None:
            try:
                got = self.task.verify("0", text)
            except Exception:  # noqa: BLE001 - a verifier that needs a real gold: fall back to the text
                got = {}
            if isinstance(got, dict) and got.get("predicted") is not None:
                return got["predicted"]
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return lines[-1].lower() if lines else None

    def _row(self, seed: Seed, question: str, reply: ChatReply, k: int, queries: int, verified, gold_kept) -> dict:
        """A TRL SFT row plus provenance. `cost`: the teacher queries on this row's path (making and
        checking its question, and its answer); queries wasted on rejected questions are in the stats."""
        return {"prompt": question, "completion": reply.text, "strategy": self.cfg.strategy, "seed_id": seed.id,
                "sample_index": k, "teacher": self.name, "cost": queries, "cached": reply.cached,
                "verified": verified, "gold": seed.answer if gold_kept else None}

    # ---- strategies -------------------------------------------------------------------------
    def answer_augmentation(self) -> list[dict]:
        rows = []
        for k in self._rounds():
            items = [(s, s.question, k, 0) for s in self.seeds]
            got = self._answers(items, gold_kept=True)
            if not got and self.quota.can(1) == 0:
                break
            rows += got
            self.rounds_done = k + 1
            if self.quota.can(1) == 0:
                break
        return rows

    def question_rephrase(self) -> list[dict]:
        rows = []
        per = self.cfg.answers_per_question
        for k in self._rounds():
            n = self.quota.can(len(self.seeds) * (1 + per)) // (1 + per)
            if n == 0:
                break
            batch = self.seeds[:n]
            rephrased = self.quota.ask([self._req("rephrase", s.question, k) for s in batch])
            items = []
            for seed, reply in zip(batch, rephrased):
                if reply.ok and reply.text.strip():
                    items.append((seed, _as_question(reply.text, seed.question), k, 1))
                else:
                    self.counts["failed_rephrases"] += 1
            rows += self._answers(items, gold_kept=True)
            self.rounds_done = k + 1
        return rows

    def new_question(self) -> list[dict]:
        rows = []
        per = self.cfg.answers_per_question
        unit = 1 + int(self.cfg.check) + per
        for k in self._rounds():
            n = self.quota.can(len(self.seeds) * unit) // unit
            if n == 0:
                break
            batch = self.seeds[:n]
            made = self.quota.ask([self._req("new_question", s.question, k) for s in batch])
            items = [(s, _as_question(r.text, s.question), k, 1) for s, r in zip(batch, made) if r.ok and r.text.strip()]
            self.counts["failed_new_questions"] += len(batch) - len(items)
            if self.cfg.check and items:
                checks = self.quota.ask([self._req("check_question", q, 0, temperature=0.0) for _, q, _, _ in items])
                passed = []
                for item, c in zip(items, checks):
                    if c.ok and c.text.strip().lower().startswith("yes"):
                        passed.append((item[0], item[1], k, 2))
                    else:
                        self.counts["rejected_by_check"] += 1
                items = passed
            rows += self._answers(items, gold_kept=False)
            self.rounds_done = k + 1
        return rows


def _as_question(text: str, like: str) -> str:
    """A generated question in the seed's layout (the seed prompt's trailing newline, if it had one)."""
    text = text.strip("\n")
    return text + "\n" if like.endswith("\n") else text
