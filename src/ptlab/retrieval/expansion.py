"""Query expansion (query2doc style): an LLM writes a pseudo-document for each query,
and the expanded query is `q [SEP] pseudo-document`.

Every call goes through synthesis's `MeteredTeacher`, so expansions are cached on
disk (keyed by backend, model, prompt and sampling params), budgeted and counted
exactly like synthetic data; a re-run pays for nothing it already has.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ptlab.config import Strict
from ptlab.errors import PtlabError
from ptlab.paths import cache_dir
from ptlab.retrieval.beir import Collection
from ptlab.retrieval.simulated import SimulatedExpander, SimulationSpec
from ptlab.synth.budget import Budget
from ptlab.synth.cache import ReplyCache
from ptlab.synth.config import BudgetConfig, TeacherConfig
from ptlab.synth.metered import MeteredTeacher
from ptlab.synth.teachers.base import ChatRequest

PROMPT = "Write a short Wikipedia-style passage that answers the question.\nQuestion: {query}\nPassage:"
SEP = " [SEP] "


class ExpansionSpec(Strict):
    """Where pseudo-documents come from: the simulated oracle (offline default) or a synthesis teacher."""

    source: Literal["simulated", "teacher"] = "simulated"
    simulation: SimulationSpec = SimulationSpec()
    teacher: TeacherConfig = TeacherConfig(backend="hf", model="smollm2-135m")
    budget: BudgetConfig = BudgetConfig()
    max_tokens: int = Field(64, ge=1, le=1024)
    temperature: float = Field(0.0, ge=0)
    batch_size: int = Field(256, ge=1, description="requests handed to the teacher per call (progress granularity)")


def prompt_for(query: str) -> str:
    return PROMPT.format(query=query)


def request_for(query: str, spec: ExpansionSpec) -> ChatRequest:
    return ChatRequest.user(prompt_for(query), temperature=spec.temperature, max_tokens=spec.max_tokens)


def knowledge_table(collections: list[Collection]) -> dict[str, list[str]]:
    """prompt -> evidence sentences, from every query's metadata (for the simulated expander)."""
    table = {}
    for col in collections:
        for qid, text in col.queries.items():
            evidence = col.query_meta.get(qid, {}).get("evidence")
            if evidence:
                table[prompt_for(text)] = evidence
    return table


def build_backend(spec: ExpansionSpec, collections: list[Collection]):
    """The un-metered backend `spec` names."""
    if spec.source == "simulated":
        return SimulatedExpander(knowledge_table(collections), spec.simulation)
    from ptlab.synth.teachers import make_backend

    return make_backend(spec.teacher)


def metered(spec: ExpansionSpec, backend) -> MeteredTeacher:
    cache = ReplyCache(cache_dir("retrieval") / "expansions.sqlite")
    return MeteredTeacher(backend, cache=cache, budget=Budget(spec.budget.max_queries, spec.budget.max_tokens))


def expand(teacher, queries: dict[str, str], spec: ExpansionSpec, progress=None) -> dict[str, str]:
    """query id -> pseudo-document. Raises if the teacher fails or the budget runs out."""
    qids = list(queries)
    out: dict[str, str] = {}
    for start in range(0, len(qids), spec.batch_size):
        chunk = qids[start : start + spec.batch_size]
        replies = teacher.generate([request_for(queries[q], spec) for q in chunk])
        for qid, reply in zip(chunk, replies):
            if not reply.ok:
                raise PtlabError(f"expansion of query {qid!r} by {teacher.backend}:{teacher.model} failed: {reply.error}")
            out[qid] = reply.text.strip()
        if progress:
            progress(len(out), len(qids))
    return out


def expanded(query: str, pseudo_doc: str) -> str:
    """q+ = q [SEP] pseudo-document (query2doc's format for dense retrievers)."""
    return f"{query}{SEP}{pseudo_doc}" if pseudo_doc else query
