"""The oracle expansion (`expansion.source: oracle`): an upper bound and a positive control, not an LLM.

A real LLM's pseudo-documents help retrieval when the LLM has memorised facts
about the query's topic. The oracle's knowledge is a *parameter*: for a query it
knows (probability `know_rate`), the pseudo-document is the query's evidence
sentence(s) from the collection with a share `1 - keep` of words dropped (a
crude paraphrase); otherwise it "hallucinates" another query's evidence. It
copies the gold passage by construction (the leak check flags it), so numbers
measured with it say how well SoftQE distils an expansion of that quality --
the study's positive control -- not what any real LLM gives (the default is
SmolLM2, `ptlab.retrieval.expansion`). It implements the teacher protocol, so it
goes through the same cache, budget and prompts as `hf`/`openai`.
"""

from __future__ import annotations

import random
from typing import Sequence

from ptlab.config import Strict
from ptlab.fingerprint import fingerprint
from ptlab.synth.teachers.base import ChatReply, ChatRequest


class SimulationSpec(Strict):
    know_rate: float = 0.7  # share of queries whose pseudo-document carries the right evidence
    keep: float = 0.7  # share of evidence words kept (in order)
    seed: int = 0


class SimulatedExpander:
    """Answers expansion prompts from a table prompt -> evidence sentences (built from query metadata)."""

    backend = "simulated-expansion"

    def __init__(self, knowledge: dict[str, list[str]], spec: SimulationSpec):
        self.knowledge = knowledge
        self.spec = spec
        self._pool = sorted(knowledge)
        self.model = f"oracle-v1-know{spec.know_rate:g}-keep{spec.keep:g}-seed{spec.seed}"

    def _write(self, request: ChatRequest) -> str:
        prompt = request.messages[-1][1]
        rng = random.Random(fingerprint(self.spec.seed, prompt, request.sample_index, request.temperature))
        known = prompt in self.knowledge and rng.random() < self.spec.know_rate
        source = prompt if known else rng.choice(self._pool)
        words = " ".join(self.knowledge[source]).split()
        kept = [w for w in words if rng.random() < self.spec.keep] or words[:1]
        return " ".join(kept[: max(1, request.max_tokens)])

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatReply]:
        out = []
        for r in requests:
            text = self._write(r)
            out.append(ChatReply(text=text, prompt_tokens=len(r.messages[-1][1].split()), completion_tokens=len(text.split())))
        return out
