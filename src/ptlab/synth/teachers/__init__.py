"""Teachers: one protocol (`base.Teacher`), several backends, built from a `TeacherConfig`.

`make_backend(cfg)` gives the bare backend; `ptlab.synth.make_teacher` wraps it
with the reply cache, the budget and the accounting, which is what callers use.
"""

from __future__ import annotations

from ptlab.synth.teachers.base import BUDGET_SPENT, ChatReply, ChatRequest, ReplyHooks, Teacher

BACKENDS = ("openai", "hf", "simulated")


def make_backend(cfg):
    """The backend named by `cfg.backend` (a `ptlab.synth.config.TeacherConfig`)."""
    if cfg.backend == "openai":
        from ptlab.synth.teachers.openai import OpenAITeacher

        return OpenAITeacher.from_config(cfg)
    if cfg.backend == "hf":
        from ptlab.synth.teachers.hf import HFTeacher

        return HFTeacher.from_config(cfg)
    if cfg.backend == "simulated":
        from ptlab.synth.teachers.simulated import SimulatedTeacher

        return SimulatedTeacher.from_config(cfg)
    raise ValueError(f"unknown teacher backend {cfg.backend!r}")  # unreachable: the config validates it


__all__ = ["BACKENDS", "BUDGET_SPENT", "ChatReply", "ChatRequest", "ReplyHooks", "Teacher", "make_backend"]
