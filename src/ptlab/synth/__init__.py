"""Synthetic data under a teacher-query budget: teachers, cache, budget, strategies.

Typical use::

    from ptlab.synth import make_teacher, ChatRequest
    teacher = make_teacher({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:8000/v1"},
                           budget={"max_queries": 100})
    replies = teacher.generate([ChatRequest.user("2+2?")])
    teacher.report()   # {"paid": 1, "cached": 0, "failed": 0, "retried": 0, ...}

A run that must keep its budget across restarts names itself: its spending goes to a durable
ledger (<PTLAB_HOME>/teacher/ledger.sqlite unless `budget.ledger_path` says otherwise) and a
restart starts from it::

    with make_teacher(cfg, budget={"max_queries": 100, "run_id": "cell-3f2a", "strict": True}) as teacher:
        ...                       # every process of the run, killed or not, pays at most 100 in total
        teacher.complete_run()    # done: the next run under this id starts afresh

Processes that share a reply cache (the default one, or the same `cache_path`) pay for each
distinct request once, even when they run at the same time (`ptlab.synth.claims`).
"""

from __future__ import annotations

from pathlib import Path

from ptlab.synth.budget import Accounting, Budget
from ptlab.synth.cache import ReplyCache
from ptlab.synth.config import BudgetConfig, TeacherConfig
from ptlab.synth.errors import AuthError, BudgetError, RunFailed, TeacherError
from ptlab.synth.ledger import Ledger
from ptlab.synth.metered import MeteredTeacher
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, Teacher


def make_teacher(
    config: TeacherConfig | dict | None = None,
    budget: Budget | BudgetConfig | dict | None = None,
    cache: ReplyCache | bool | None = None,
    *,
    ledger: Ledger | str | Path | None = None,
    run_id: str | None = None,
) -> MeteredTeacher:
    """A cached, budgeted, counted teacher from a config (model or dict).

    `cache`: a ReplyCache, True/None (the config's choice: `cache` and `cache_path`,
    default <PTLAB_HOME>/teacher/replies.sqlite) or False (no cache).
    `run_id` (or `budget.run_id`): record spending in the ledger under this run and start the
    budget from what the run's earlier attempts spent. `ledger`: a shared `Ledger` or its path
    (default `budget.ledger_path`, else <PTLAB_HOME>/teacher/ledger.sqlite). Close the teacher
    (a `with` block) to stop driving the run; call `complete_run()` when the run is done.
    """
    from ptlab.config import validate
    from ptlab.synth.owners import me
    from ptlab.synth.teachers import make_backend

    cfg = config if isinstance(config, TeacherConfig) else validate(TeacherConfig, dict(config or {}), "teacher")
    if isinstance(budget, dict):
        budget = validate(BudgetConfig, budget, "budget")
    budget_cfg = budget if isinstance(budget, BudgetConfig) else None
    run_id = run_id or (budget_cfg.run_id if budget_cfg else None)
    backend = make_backend(cfg)
    ledger_run, owns_ledger = None, False
    if run_id:
        if not isinstance(ledger, Ledger):
            ledger, owns_ledger = Ledger(ledger or (budget_cfg.ledger_path if budget_cfg else None)), True
        ledger_run = ledger.open_run(run_id, me())
    spent = (ledger_run.spent_queries, ledger_run.spent_tokens) if ledger_run else (0, 0)
    if budget_cfg is not None:
        budget = Budget.from_config(budget_cfg, *spent)
    elif isinstance(budget, Budget):
        budget.spent_queries += spent[0]
        budget.spent_tokens += spent[1]
    else:
        budget = Budget(spent_queries=spent[0], spent_tokens=spent[1])
    if cache is None or cache is True:
        # The simulated teacher's replies depend on what it knows in memory: never cache them implicitly.
        cache = ReplyCache(cfg.cache_path) if cfg.cache and getattr(backend, "cacheable", True) else None
    elif cache is False:
        cache = None
    return MeteredTeacher(backend, cache=cache, budget=budget, ledger_run=ledger_run, owns_ledger=owns_ledger)


__all__ = [
    "BUDGET_SPENT",
    "Accounting",
    "AuthError",
    "Budget",
    "BudgetConfig",
    "BudgetError",
    "ChatReply",
    "ChatRequest",
    "Ledger",
    "MeteredTeacher",
    "ReplyCache",
    "RunFailed",
    "Teacher",
    "TeacherConfig",
    "TeacherError",
    "make_teacher",
]
