"""The simulated teacher's declared assumptions (`SimulatorParams`) and its durable knowledge (`Knowledge`).

A simulation decides what a study can find, so every assumption is a named,
described parameter, recorded with every dataset and report, and part of the
teacher's `model` name (a fingerprint), so replies made under other
assumptions never share a cache key. What each parameter does is exact; the
values are guesses about real teachers, to be varied, not facts.

`Knowledge` is what the teacher knows about each question it was given or made
(its plan, where it came from, whether it is well-formed): an SQLite table (WAL,
JSON records, never pickle) beside the reply cache, keyed by (teacher model,
normalised question), so every process with the same parameters knows the
questions any of them made, and replies can be cached across processes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from pydantic import Field

from ptlab.config import Strict
from ptlab.fingerprint import fingerprint
from ptlab.synth.store import HealingStore, transaction

SIM_VERSION = "simulated-teacher-v2"  # bump when replies change for the same parameters and request


class SimulatorParams(Strict):
    """The simulated teacher's assumptions (see the module docstring of `ptlab.synth.teachers.simulated`)."""

    answer_paths: int = Field(
        4, ge=1, le=32,
        description="distinct correct solutions per question; each correct answer is one of them, uniformly "
                    "(math: the task's solution paths: step forms, layouts, frames; fewer if the task has fewer). "
                    "1: every correct answer is the same text")
    answer_error: float = Field(
        0.1, ge=0, le=1,
        description="share of answers to a given question (a seed, a learned or a rephrased one) that are wrong: "
                    "one realistic mistake drawn per answer (math: wrong operation, arithmetic slip, skipped step, "
                    "stopping a step early), written like a correct path")
    rephrase_wordings: int = Field(
        4, ge=1, le=32,
        description="distinct rewordings per question that keep its meaning; a rephrase is one of them, uniformly "
                    "(fewer if the task has fewer; tasks without wording variation return the question unchanged)")
    rephrase_drift: float = Field(
        0.1, ge=0, le=1,
        description="share of rephrasings whose meaning changes: one quantity or operation differs (math), so the "
                    "seed's gold no longer holds; the teacher answers the drifted question correctly for itself")
    new_question_drift: float = Field(
        0.2, ge=0, le=1,
        description="share of new questions drawn off the seed distribution (math: one step more than the knobs "
                    "allow, up to 4; quantities up to twice max_number; factors up to max_factor + 2; the other "
                    "wording family); the rest are like the seed they were asked from (its operations in order "
                    "and its wording family; person, item and quantities fresh). 0: like the seeds; 1: none is "
                    "from the evaluation distribution")
    new_question_error: float = Field(
        0.25, ge=0, le=1,
        description="share of answers to questions the teacher made itself that are wrong (drawn per answer, "
                    "as answer_error; there is no gold to check them against)")
    new_question_invalid: float = Field(
        0.1, ge=0, le=1,
        description="share of new questions that are ill-formed (its question sentence missing, or, math, one "
                    "quantity replaced by 'some'): the self-check should reject them; answered with a refusal")
    new_question_pool: int = Field(
        10_000, ge=1,
        description="distinct new questions the teacher can make from one seed question (each request picks one "
                    "of this many, uniformly): small values make it repeat itself (collapse)")
    check_error: float = Field(
        0.1, ge=0, le=1,
        description="share of self-check verdicts flipped (a well-formed question judged unanswerable or the "
                    "reverse); fixed per question (checks are asked at temperature 0)")


def describe_params(params: SimulatorParams) -> list[dict]:
    """[{name, value, description}] of every parameter: what a report prints."""
    return [{"name": name, "value": getattr(params, name), "description": field.description}
            for name, field in SimulatorParams.model_fields.items()]


def params_fingerprint(task: str, params: SimulatorParams, seed: int, knobs: dict) -> str:
    """A short fingerprint of everything that decides the teacher's replies (part of its `model` name)."""
    return fingerprint(SIM_VERSION, task, params.model_dump(), seed, knobs, length=10)


# -- knowledge ------------------------------------------------------------------------------

KNOWLEDGE_FILE = "simulated-knowledge.sqlite"
# A question known two ways keeps the record of the higher rank (then the smaller JSON), whatever the order in
# which processes learned it: the stored knowledge, and so every reply, does not depend on timing.
ORIGIN_RANK = {"seed": 3, "rephrase": 2, "new": 1, "invalid": 0}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowledge (
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    rank INTEGER NOT NULL,
    record TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, key)
)
"""


def norm(text: str) -> str:
    return " ".join(text.split())


class Knowledge(HealingStore):
    """Records (JSON-ready dicts with `prompt` and `origin`) by normalised prompt, for one teacher model.

    Storage heals like the reply cache (`ptlab.synth.store`): a damaged file is moved aside, never deleted."""

    SCHEMA = _SCHEMA
    TABLES = {"knowledge": ("model", "key", "rank", "record", "created")}

    def __init__(self, path: str | Path, model: str):
        self.model = model
        super().__init__(path)

    def get(self, prompt: str) -> dict | None:
        key = _key(prompt)
        row = self.use(lambda db: db.execute("SELECT record FROM knowledge WHERE model = ? AND key = ?",
                                             (self.model, key)).fetchone(), lambda db: None)
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None  # a damaged row: unknown (the next put of this question overwrites it)

    def put_many(self, records: list[dict]) -> None:
        """Store records in one transaction; a question already known keeps the better record (`ORIGIN_RANK`)."""
        best: dict[str, tuple[int, str]] = {}
        for rec in records:
            key, cand = _key(rec["prompt"]), (ORIGIN_RANK[rec["origin"]], json.dumps(rec, sort_keys=True))
            if key not in best or _better(cand, best[key]):
                best[key] = cand
        if not best:
            return

        def body(db: sqlite3.Connection) -> None:
            keep = dict(best)
            keys = list(keep)
            for start in range(0, len(keys), 500):
                chunk = keys[start: start + 500]
                rows = db.execute(f"SELECT key, rank, record FROM knowledge WHERE model = ? AND key IN "
                                  f"({','.join('?' * len(chunk))})", [self.model, *chunk]).fetchall()
                for key, rank, record in rows:
                    if not _better(keep[key], (rank, record)):
                        del keep[key]
            now = time.time()
            db.executemany("INSERT OR REPLACE INTO knowledge VALUES (?, ?, ?, ?, ?)",
                           [(self.model, key, rank, record, now) for key, (rank, record) in keep.items()])

        write = lambda db: transaction(db, body)  # noqa: E731
        self.use(write, write)  # after a heal, into the fresh file

    def put(self, record: dict) -> None:
        self.put_many([record])

    def __len__(self) -> int:
        return self.use(lambda db: db.execute("SELECT COUNT(*) FROM knowledge WHERE model = ?",
                                              (self.model,)).fetchone()[0], lambda db: 0)


def _key(prompt: str) -> str:
    return fingerprint(norm(prompt), length=32)


def _better(a: tuple[int, str], b: tuple[int, str]) -> bool:
    """Whether record a replaces record b: a higher rank, or the same rank and a smaller JSON text."""
    return a[0] > b[0] or (a[0] == b[0] and a[1] < b[1])
