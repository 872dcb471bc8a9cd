"""Query expansion (query2doc style): an LLM writes a pseudo-document for each query,
and the expanded query is `q [SEP] pseudo-document`.

The default writer is a real LLM: the packaged SmolLM2-135M through synthesis's
`hf` teacher (batched generation, left padding), or any ptlab teacher (`hf`,
`openai`). Every call goes through synthesis's `MeteredTeacher`, so expansions
are cached durably on disk (keyed by backend, model, the rendered prompt and
sampling params), budgeted and counted exactly like synthetic data; a re-run
pays for nothing it already has.

`source: oracle` is not an LLM: it copies the gold passage's evidence with words
dropped (`ptlab.retrieval.simulated`), an upper bound on what an expansion can
carry, labelled as such wherever it is reported.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

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

PROMPT = "Write a passage that answers the given query:\n\nQuery: {query}\n\nPassage:"  # query2doc's, domain-neutral
SEP = " [SEP] "
RENAMED_SOURCES = {"teacher": "llm", "simulated": "oracle"}


class ExpansionSpec(Strict):
    """Where pseudo-documents come from: a real LLM (default: the packaged SmolLM2-135M) or the oracle upper bound."""

    source: Literal["llm", "oracle"] = Field(
        "llm", description="llm: `teacher` writes them; oracle: the gold evidence with words dropped (an upper bound)")
    teacher: TeacherConfig = TeacherConfig(backend="hf", model="smollm2-135m", batch_size=64)
    prompt: str = Field(PROMPT, description="the instruction the LLM gets; `{query}` marks where the query goes")
    oracle: SimulationSpec = SimulationSpec()
    budget: BudgetConfig = BudgetConfig()
    max_tokens: int = Field(64, ge=1, le=1024)
    temperature: float = Field(0.0, ge=0)
    batch_size: int = Field(256, ge=1, description="requests handed to the teacher per call (progress granularity)")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        """The old names, refused with their replacements (not just 'unknown value')."""
        if isinstance(data, dict):
            if data.get("source") in RENAMED_SOURCES:
                raise ValueError(f"expansion.source {data['source']!r} is now {RENAMED_SOURCES[data['source']]!r}")
            if "simulation" in data:
                raise ValueError("expansion.simulation is now expansion.oracle")
        return data

    @field_validator("prompt")
    @classmethod
    def _one_query_slot(cls, v: str) -> str:
        fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        if fields != ["query"]:
            raise ValueError("the prompt needs exactly one `{query}` and no other {...} fields "
                             f"(found {fields or 'none'}; write {{{{ and }}}} for literal braces)")
        return v

    @property
    def is_oracle(self) -> bool:
        return self.source == "oracle"


def prompt_for(query: str, prompt: str = PROMPT) -> str:
    return prompt.format(query=query)


def request_for(query: str, spec: ExpansionSpec) -> ChatRequest:
    return ChatRequest.user(prompt_for(query, spec.prompt), temperature=spec.temperature, max_tokens=spec.max_tokens)


def knowledge_table(collections: list[Collection], prompt: str = PROMPT) -> dict[str, list[str]]:
    """prompt -> evidence sentences, from every query's metadata (for the oracle)."""
    table = {}
    for col in collections:
        for qid, text in col.queries.items():
            evidence = col.query_meta.get(qid, {}).get("evidence")
            if evidence:
                table[prompt_for(text, prompt)] = evidence
    return table


def build_backend(spec: ExpansionSpec, collections: list[Collection]):
    """The un-metered backend `spec` names."""
    if spec.is_oracle:
        return SimulatedExpander(knowledge_table(collections, spec.prompt), spec.oracle)
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
