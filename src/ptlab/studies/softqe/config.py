"""The SoftQE study's config: what is compared (collections, expansion, teacher, students) and how it runs.

The grid is one cell per system; `student.alpha` (one SoftQE student per value)
is the only axis a user sets, so it is left out of `fixed()`: adding an alpha
to a finished study directory runs only the new student's cell.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ptlab.config import Strict
from ptlab.retrieval.collections import HotpotSpec, SquadSpec
from ptlab.retrieval.expansion import ExpansionSpec
from ptlab.retrieval.latency import LatencySpec
from ptlab.retrieval.toolret import ToolRetrievalSpec
from ptlab.retrieval.train import StudentSpec, TrainSpec

# `--quick`: small splits, few train queries, one short latency probe (a few minutes on 2 CPU cores);
# applied before the config file and the overrides.
# Real SmolLM2 expansions cost ~0.3 s a query on 2 cores, so --quick expands few queries, shortly.
QUICK = {
    "output_dir": "runs/study-softqe-quick",
    "squad": {"n_test": 80, "n_dev": 32, "max_articles": 6},
    "hotpotqa": {"n_queries": 30},
    "tools": {"n_queries": 80, "max_documents": 500},
    "train_queries": 160,
    "teacher_queries": None,
    "expansion": {"max_tokens": 32},
    "teacher": {"epochs": 2},
    "student": {"epochs": 8},
    "latency": {"n_queries": 2, "max_new_tokens": 32},
}


class EvalSpec(Strict):
    k: int = Field(100, ge=10, description="documents retrieved per query")
    measures: list[str] = ["nDCG@10", "RR@10", "R@100"]
    seed: int = Field(0, description="seed of the bootstrap intervals and paired tests")


class SoftQEConfig(Strict):
    study: Literal["softqe"] = "softqe"
    output_dir: str = "runs/study-softqe"
    encoder: str = Field("all-minilm-l6-v2", description="base sentence-transformers encoder")
    max_seq_length: int = Field(256, ge=16, description="truncation when encoding documents for the index")
    squad: SquadSpec = SquadSpec()
    hotpotqa: HotpotSpec = HotpotSpec()
    tools: ToolRetrievalSpec = ToolRetrievalSpec()
    train_queries: int | None = Field(2000, ge=8, description="SQuAD train queries the students learn from (None: all)")
    teacher_queries: int | None = Field(
        None, ge=8, description="the first N train queries also train the teacher (its passages are encoded every "
        "step, so it costs ~10x a student step); None: all train queries")
    expansion: ExpansionSpec = ExpansionSpec()
    teacher: TrainSpec = TrainSpec()
    student: StudentSpec = StudentSpec()
    eval: EvalSpec = EvalSpec()
    latency: LatencySpec = LatencySpec()
    # how it is executed: cells are cheap next to the shared steps, so one at a time is the default
    executor: Literal["sequential", "processes", "ray"] = "sequential"
    workers: int = Field(1, gt=0, description="cells run at once (processes / ray)")
    threads: int = Field(2, ge=1, description="torch / FAISS CPU threads, per cell and for the shared steps")
    ray_address: str | None = None

    def fixed(self) -> dict:
        """Everything but the alphas and how it is executed: what must match to reuse a results directory."""
        data = self.model_dump(mode="json", exclude={"output_dir", "executor", "workers", "ray_address"})
        data["student"].pop("alpha")
        return data

