"""The SoftQE study's cells: one per system, and what each system is made of.

A *system* is (query encoder, document index, which query text): the base
encoder on raw or LLM-expanded queries, the teacher on expanded (what it was
trained for) or raw queries, and one SoftQE student per alpha on raw queries
over the teacher's index. Axes of the results store: `system` (its report name)
and `alpha` — the student's alpha, and -1 for the four systems that are no
SoftQE student (alpha = 0 is a real student: the contrastive-only ablation).

A plan holds only plain data: the shared steps' outputs (collections,
pseudo-documents, the teacher, the students' model folders) are found through
`shared.json`, which `prepare` writes in the study directory before any cell runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ptlab.fingerprint import fingerprint
from ptlab.studies.softqe.config import SoftQEConfig

CELL_VERSION = "softqe-cell/1"  # bump when what a cell computes changes
STUDY_VERSION = "v2"  # in the model cache keys; v2: students learn from precomputed doc(p+) (the teacher index's rows)
NOT_A_STUDENT = -1.0  # the alpha axis value of base, base + LLM exp., teacher (q+) and teacher (q)

# name -> (query encoder, document index, query text)
FIXED_SYSTEMS = {
    "base": ("base", "base", "raw"),
    "base + LLM exp.": ("base", "base", "expanded"),
    "teacher (q+)": ("teacher", "teacher", "expanded"),
    "teacher (q)": ("teacher", "teacher", "raw"),
}
STUDENT_SYSTEM = ("student", "teacher", "raw")
# key -> report label, and its domain relative to the SQuAD training queries: in, near (Wikipedia QA again,
# much of which the base encoder was trained on) or out (another domain: API documentation)
COLLECTIONS = {"squad": "SQuAD (in-domain)", "hotpotqa": "HotpotQA (near domain)", "tools": "BFCL tools (out-of-domain)"}
DOMAINS = {"squad": "in", "hotpotqa": "near", "tools": "out"}
TRAIN_SET = "SQuAD train"  # the training queries' label in the expansion accounting and the leak check
SHARED = "shared.json"  # what `prepare` made for the cells: collection folders, pseudo-documents, model folders


def student_name(alpha: float) -> str:
    return f"SoftQE α={alpha:g}"


def systems(alphas: list[float]) -> list[str]:
    """The report's systems, in order: the four fixed ones, then one SoftQE student per alpha."""
    return [*FIXED_SYSTEMS, *(student_name(a) for a in alphas)]


def comparisons(alphas: list[float]) -> list[tuple[str, str]]:
    """Paired comparisons: every student vs base, then every distilled student vs the alpha = 0 student
    (the same training without distillation) -- or vs its starting point, teacher (q), when 0 is not run."""
    ref = student_name(0.0) if 0.0 in alphas else "teacher (q)"
    pairs = [(student_name(a), "base") for a in alphas]
    pairs += [(student_name(a), ref) for a in alphas if student_name(a) != ref]
    return pairs


def training_record(root: Path, system: str) -> Path:
    """Where a cell keeps its encoder's training record (with the learning curve) in the study directory."""
    return Path(root) / "training" / f"{slug(system)}.json"


def alpha_key(alpha: float) -> str:
    """How an alpha names its student in `shared.json` (exact: the float's repr)."""
    return repr(float(alpha))


def slug(text: str) -> str:
    """A file-name form of a system name; distinct names stay distinct ("teacher (q+)" vs "teacher (q)")."""
    text = text.lower().replace("+", " plus ").replace("α", " alpha ")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


@dataclass(frozen=True)
class Cell:
    system: str
    alpha: float  # NOT_A_STUDENT unless the system is a SoftQE student

    @property
    def cell_id(self) -> str:
        return slug(self.system)

    @property
    def is_student(self) -> bool:
        return self.alpha != NOT_A_STUDENT

    def parts(self) -> tuple[str, str, str]:
        """(query encoder, document index, query text) of this system."""
        return STUDENT_SYSTEM if self.is_student else FIXED_SYSTEMS[self.system]

    def as_dict(self) -> dict:
        return {"cell_id": self.cell_id, "system": self.system, "alpha": self.alpha}


def expand(cfg: SoftQEConfig) -> list[Cell]:
    return [*(Cell(name, NOT_A_STUDENT) for name in FIXED_SYSTEMS),
            *(Cell(student_name(a), a) for a in cfg.student.alphas)]


@dataclass(frozen=True)
class SoftQEPlan:
    """Everything a worker needs to run one cell (picklable, plain data)."""

    cell: Cell
    config_hash: str
    root: str
    encoder: str
    max_seq_length: int
    eval: dict  # EvalSpec
    student: dict | None  # StudentSpec with this cell's single alpha; None for the fixed systems
    threads: int

    @property
    def shared(self) -> Path:
        return Path(self.root) / SHARED

    def run_file(self, collection: str) -> Path:
        """The cell's TREC run on one collection (for any other IR tool; `is_done` checks they exist)."""
        return Path(self.root) / "runs" / f"{collection}__{self.cell.cell_id}.trec"


def plan_cell(cfg: SoftQEConfig, cell: Cell, root: Path) -> SoftQEPlan:
    """The plan of one cell; its config hash covers only what this system's numbers depend on."""
    query, _, text = cell.parts()
    inputs = {"encoder": cfg.encoder, "max_seq_length": cfg.max_seq_length, "eval": cfg.eval.model_dump(),
              "threads": cfg.threads, **{key: getattr(cfg, key).model_dump() for key in COLLECTIONS}}
    if text == "expanded" or query != "base":  # the teacher learns from expanded queries
        inputs["expansion"] = cfg.expansion.model_dump(exclude={"budget", "batch_size"})
    if query != "base":
        inputs["teacher"] = (cfg.teacher.model_dump(), cfg.train_queries, cfg.teacher_queries)
    student = cfg.student.with_alpha(cell.alpha).model_dump() if cell.is_student else None
    if student is not None:
        inputs["student"] = student
    return SoftQEPlan(cell=cell, config_hash=fingerprint(CELL_VERSION, STUDY_VERSION, cell.system, inputs),
                      root=str(root), encoder=cfg.encoder, max_seq_length=cfg.max_seq_length,
                      eval=cfg.eval.model_dump(), student=student, threads=cfg.threads)
