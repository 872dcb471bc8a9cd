"""Synthetic data under a teacher-query budget: teachers, cache, budget, strategies.

Typical use::

    from ptlab.synth import make_teacher, ChatRequest
    teacher = make_teacher({"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:8000/v1"},
                           budget={"max_queries": 100})
    replies = teacher.generate([ChatRequest.user("2+2?")])
    teacher.report()   # {"paid": 1, "cached": 0, "failed": 0, "retried": 0, ...}
"""

from __future__ import annotations

from ptlab.synth.budget import Accounting, Budget
from ptlab.synth.cache import ReplyCache
from ptlab.synth.config import BudgetConfig, TeacherConfig
from ptlab.synth.errors import AuthError, BudgetError, TeacherError
from ptlab.synth.metered import MeteredTeacher
from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, Teacher


def make_teacher(
    config: TeacherConfig | dict | None = None,
    budget: Budget | BudgetConfig | dict | None = None,
    cache: ReplyCache | bool | None = None,
) -> MeteredTeacher:
    """A cached, budgeted, counted teacher from a config (model or dict).

    `cache`: a ReplyCache, True/None (the config's choice: `cache` and `cache_path`,
    default <PTLAB_HOME>/teacher/replies.sqlite) or False (no cache).
    """
    from ptlab.config import validate
    from ptlab.synth.teachers import make_backend

    cfg = config if isinstance(config, TeacherConfig) else validate(TeacherConfig, dict(config or {}), "teacher")
    if isinstance(budget, dict):
        budget = validate(BudgetConfig, budget, "budget")
    if isinstance(budget, BudgetConfig):
        budget = Budget.from_config(budget)
    backend = make_backend(cfg)
    if cache is None or cache is True:
        # The simulated teacher's replies depend on what it knows in memory: never cache them implicitly.
        cache = ReplyCache(cfg.cache_path) if cfg.cache and getattr(backend, "cacheable", True) else None
    elif cache is False:
        cache = None
    return MeteredTeacher(backend, cache=cache, budget=budget)


__all__ = [
    "BUDGET_SPENT",
    "Accounting",
    "AuthError",
    "Budget",
    "BudgetConfig",
    "BudgetError",
    "ChatReply",
    "ChatRequest",
    "MeteredTeacher",
    "ReplyCache",
    "Teacher",
    "TeacherConfig",
    "TeacherError",
    "make_teacher",
]
