"""Teachers: one protocol (`base.Teacher`), several backends."""

from ptlab.synth.teachers.base import ChatReply, ChatRequest, Teacher

__all__ = ["ChatReply", "ChatRequest", "Teacher"]
