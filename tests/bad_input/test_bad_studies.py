"""`ptlab study spurious|budget`, `ptlab report`, `ptlab advise`: bad configs, seed files, corrupt manifests and
results databases are one line, exit 2, before any model is built; a dead worker is one line too."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass

import pytest

from .common import expect_error

SPURIOUS = {
    "model": "tiny-test", "executor": "sequential",
    "axes": {"task": ["math"], "artifact": ["feature_ambiguity"], "rate": [0.1, 0.9], "algorithm": ["sft"], "seed": [0]},
    "data": {"n_train": 32, "n_eval": 8, "n_pairs": 4},
    "train": {"exposure": "steps", "max_steps": 2, "batch_size": 16, "save_every": 1},
    "eval": {"max_new_tokens": {"math": 4}},
    "tuning": {"enabled": False},
}
BUDGET = {
    "model": "tiny-test", "executor": "sequential",
    "axes": {"seed_size": [2], "budget": [4], "strategy": ["answer_augmentation"], "seed": [0], "exposure": ["steps"]},
    "data": {"n_eval": 4}, "train": {"steps": 1, "batch_size": 2},
}


def study_config(ws, kind: str, **changes):
    cfg = json.loads(json.dumps(SPURIOUS if kind == "spurious" else BUDGET))
    cfg.update(output_dir=str(ws / "study"), **changes)
    return ws.yaml(f"{kind}.yaml", cfg)


def study(ptlab, ws, kind, overrides, needle, cfg=None):
    cfg = cfg or study_config(ws, kind)
    return expect_error(ptlab, ["study", kind, cfg, *overrides, "--quiet"], needle, ws.root)


SPURIOUS_CASES = [
    pytest.param(["axes.task=[poetry]"], "axes.task: unknown task 'poetry'", id="task-unknown"),
    pytest.param(["axes.rate=[.nan]"], "axes.rate.0: Input should be a finite number", id="rate-nan"),
    pytest.param(["axes.rate=[0.1,1.5]"], "axes.rate: 1.5 is outside [0, 1]", id="rate-over-1"),
    pytest.param(["axes.algorithm=[sft,ppo]"], "axes.algorithm: unknown algorithm 'ppo'", id="algorithm-unknown"),
    pytest.param(["axes.seed=[]"], "axes.seed: empty", id="seeds-empty"),
    pytest.param(["train.max_steps=null"], "train.max_steps: exposure 'steps' trains every arm for max_steps steps",
                 id="steps-without-max-steps"),
    pytest.param(["tuning.enabled=true", "tuning.grid={ppo: {lr: [0.001]}}"],
                 "tuning.grid: unknown objective 'ppo'", id="tuning-grid-unknown-objective"),
    pytest.param(["tuning.enabled=true", "tuning.grid={sft: {beta: [0.1]}}"],
                 "tuning.grid.sft.lr: give at least one learning rate", id="tuning-grid-no-lr"),
    pytest.param(["tuning.enabled=true", "tuning.grid={sft: {lr: [0.001, 0.001]}}"],
                 "tuning.grid.sft.lr: give distinct values", id="tuning-grid-repeated"),
    pytest.param(["tuning.enabled=true", "tuning.grid={dpo: {lr: [0.001]}}"],
                 "tuning.grid: no grid for 'sft', which the study trains", id="tuning-grid-missing-arm"),
    pytest.param(["tuning.rate=1.5"], "tuning.rate: Input should be less than or equal to 1", id="tuning-rate-over-1"),
    pytest.param(["tuning.enabled=true", "tuning.artifact=leakage"], "tuning.artifact: unknown artifact 'leakage'",
                 id="tuning-artifact-unknown"),
    pytest.param(["axes.algorithm=[sft+ppo]"], "axes.algorithm: unknown algorithm 'sft+ppo'", id="pipeline-unknown"),
    pytest.param(["axes.tasks=[math]"], "axes.tasks: unknown field", id="axes-key-typo"),
    pytest.param(["axes=[math]"], "axes: Input should be a valid dictionary", id="axes-list"),
    pytest.param(["train.lr=.inf"], "train.lr: Input should be a finite number", id="lr-inf"),
    pytest.param(["train.lr_by_algorithm.dpo=.inf"], "train.lr_by_algorithm.dpo: Input should be a finite number",
                 id="lr-by-algorithm-inf"),
    pytest.param(["train.lr_by_algorithm.dpo=0"], "train.lr_by_algorithm.dpo: Input should be greater than 0",
                 id="lr-by-algorithm-zero"),
    pytest.param(["train.lr_by_algorithm.ppo=1e-4"], "train.lr_by_algorithm: unknown algorithm 'ppo'",
                 id="lr-by-algorithm-unknown"),
    pytest.param(["train.params.kto.bta=0.1"], "train.params.kto: bta: unknown field", id="params-key-typo"),
    pytest.param(["axes.algorithm=[dpo]", "train.params.dpo.beta=.nan"], "train.params.dpo: beta: Input should be a finite",
                 id="params-nan"),
    pytest.param(["train.batch_size=0"], "train.batch_size: Input should be greater than 0", id="batch-zero"),
    pytest.param(["train.warmup_ratio=2"], "train.warmup_ratio: Input should be less than or equal to 1", id="warmup-2"),
    pytest.param(["data.n_train=0"], "data.n_train: Input should be greater than 0", id="n-train-zero"),
    pytest.param(["data.knobs.math.max_stepz=3"], "max_stepz: unknown field", id="knob-typo"),
    pytest.param(["data.knobs.poetry.x=1"], "unknown task 'poetry'", id="knobs-task-unknown"),
    pytest.param(["eval.max_new_tokens.math=0"], "eval.max_new_tokens.math: Input should be greater than 0",
                 id="max-new-tokens-zero"),
    pytest.param(["eval.temperature=.inf"], "eval.temperature: Input should be a finite number", id="temperature-inf"),
    pytest.param(["eval.top_p=1.5"], "eval.top_p: Input should be less than or equal to 1", id="top-p"),
    pytest.param(["features.math.feature_ambiguity=nope"], "not a feature of task 'math'", id="feature-unknown"),
    pytest.param(["features.math.leakage=x"], "features.math.leakage: unknown artifact", id="features-artifact-typo"),
    pytest.param(["data.knobs.docqa.bogus=1"], "data.knobs.docqa: knobs of task 'docqa': bogus: unknown field",
                 id="knobs-other-task"),
    pytest.param(["executor=threads"], "executor: Input should be 'sequential', 'processes' or 'ray'", id="executor"),
    pytest.param(["workers=0"], "workers: Input should be greater than 0", id="workers-zero"),
    pytest.param(["worker=2"], "worker: unknown field", id="key-typo"),
    pytest.param(["study=budget"], "study: expected 'spurious', got 'budget'", id="study-kind"),
    pytest.param(["model=gpt-17"], "unknown model 'gpt-17'", id="model-unknown"),
]


@pytest.mark.parametrize("overrides, needle", SPURIOUS_CASES)
def test_bad_spurious_study(ptlab, ws, overrides, needle):
    study(ptlab, ws, "spurious", overrides, needle)


BUDGET_CASES = [
    pytest.param(["teacher.timeout_s=.inf"], "teacher.timeout_s: Input should be a finite number", id="timeout-inf"),
    pytest.param(["teacher.simulator.answer_error=.nan"], "teacher.simulator.answer_error: Input should be a finite number",
                 id="error-rate-nan"),
    pytest.param(["teacher.backend=gpt4"], "teacher.backend: Input should be 'openai', 'hf' or 'simulated'", id="backend"),
    pytest.param(["teacher.bogus=1"], "teacher.bogus: unknown field", id="teacher-key-typo"),
    pytest.param(["teacher.model=docqa"], "teacher.model: a simulated teacher simulates a task", id="teacher-task"),
    pytest.param(["synth.temperature=.nan"], "synth: temperature: Input should be a finite number", id="synth-nan"),
    pytest.param(["synth.tempreature=0.5"], "synth: tempreature: unknown field", id="synth-key-typo"),
    pytest.param(["synth.strategy=new_question"], "synth.strategy: set by the grid", id="synth-strategy"),
    pytest.param(["axes.budget=[0]"], "axes.budget: every value must be >= 1", id="budget-zero"),
    pytest.param(["axes.strategy=[magic]"], "axes.strategy: unknown strategy 'magic'", id="strategy-unknown"),
    pytest.param(["axes.seed_size=[]"], "axes.seed_size: empty", id="seed-size-empty"),
    pytest.param(["train.epochs=.nan"], "train.epochs: Input should be a finite number", id="epochs-nan"),
    pytest.param(["data.n_eval=0"], "data.n_eval: Input should be greater than 0", id="n-eval-zero"),
    pytest.param(["data.eval_split=eval_break"], "data.eval_split: Input should be 'eval_id'", id="eval-split"),
    pytest.param(["eval.max_new_tokens=0"], "eval.max_new_tokens: Input should be greater than 0", id="max-new-zero"),
    pytest.param(["task=poetry"], "unknown task 'poetry'", id="task-unknown"),
    pytest.param(["seeds.knobs.max_stepz=2"], "max_stepz: unknown field", id="seed-knob-typo"),
    pytest.param(["seeds.source=jsonl"], "seeds.path: seeds.source jsonl needs a path", id="seeds-no-path"),
    pytest.param(["seeds.source=jsonl", "seeds.path=/nonexistent/seeds.jsonl"],
                 "seeds.path: seed file not found: /nonexistent/seeds.jsonl", id="seeds-missing"),
    pytest.param(["study=spurious"], "study: expected 'budget', got 'spurious'", id="study-kind"),
    pytest.param(["seeds.source=jsonl", "seeds.path=."], "seeds.path: seed file not found: .", id="seeds-path-dir"),
]


@pytest.mark.parametrize("overrides, needle", BUDGET_CASES)
def test_bad_budget_study(ptlab, ws, overrides, needle):
    study(ptlab, ws, "budget", overrides, needle)


SEED = {"prompt": "Ada has 2 apples and buys 3. How many?", "answer": "5", "completion": "2 + 3 = 5\nFinal answer: 5"}
SEED_LINE = json.dumps(SEED) + "\n"

SEED_FILES = [
    pytest.param(SEED_LINE + "{oops\n", "seeds.jsonl:2: invalid JSON", id="invalid-json"),
    pytest.param(SEED_LINE.encode() + b'{"prompt": "caf\xe9"}\n', "seeds.jsonl:2: not valid UTF-8", id="latin1"),
    pytest.param(SEED_LINE + '["a list"]\n', "seeds.jsonl:2: expected a JSON object, got list", id="list-row"),
    pytest.param('{"text": "no question here"}\n', "seeds.jsonl:1: expected a 'prompt' or 'question' field",
                 id="no-prompt"),
    pytest.param(SEED_LINE + json.dumps({**SEED, "prompt": 5}) + "\n", "seeds.jsonl:2: 'prompt' must be a non-empty string",
                 id="prompt-number"),
    pytest.param(SEED_LINE + "\n" + json.dumps({"prompt": "q?", "answer": "1"}) + "\n",
                 "seeds.jsonl:3: the seed rows (references: true or data.include_seeds: true) need a 'completion'", id="no-completion"),
    pytest.param(json.dumps({**SEED, "answer": ["5"]}) + "\n", "seeds.jsonl:1: 'answer' must be a string or a number",
                 id="answer-list"),
    pytest.param("\n\n", "seeds.path: ", id="empty"),
]


@pytest.mark.parametrize("content, needle", SEED_FILES)
def test_bad_budget_seed_file(ptlab, ws, content, needle):
    seeds = ws.text("seeds.jsonl", content)
    study(ptlab, ws, "budget", ["seeds.source=jsonl", f"seeds.path={seeds}"], needle)


def _write_manifest(ws, kind: str, **extra):
    """A manifest that matches the config `study_config(ws, kind)` writes (so the results database is read next)."""
    from ptlab.fingerprint import fingerprint
    from ptlab.studies.cli import load_study_config
    from ptlab.studies.registry import get_study

    study = get_study(kind)
    cfg = load_study_config(kind, str(study_config(ws, kind)), [])
    manifest = {"format": study.study_format, "cell_version": study.cell_version, "fixed_hash": fingerprint(cfg.fixed()),
                "fixed": cfg.fixed(), "config": cfg.model_dump(mode="json"), "cells": [], **extra}
    return ws.json("study/study.json", manifest)


def _ptlab_store(path):
    from ptlab.studies.grid.store import ResultStore

    ResultStore(path, ("task", "artifact", "feature", "rate", "algorithm", "seed"))
    return path


def _foreign_sqlite(path):
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    return path


DIR_CASES = [  # (manifest: None | "valid" | bytes, results.sqlite: None | bytes | callable, needle)
    pytest.param(b"{not json", None, "study.json:1: unreadable study manifest", id="manifest-garbage"),
    pytest.param(b'{"format": "\xff"}', None, "study.json:1: study manifest is not valid UTF-8", id="manifest-latin1"),
    pytest.param(b"[1, 2]", None, "study.json: unreadable study manifest (expected an object", id="manifest-list"),
    pytest.param(b'{"format": "ptlab-study-spurious/0"}', None, "not a spurious study of this ptlab",
                 id="manifest-old-format"),
    pytest.param("valid", b"SQLite format 2\x00 garbage" * 20, "results.sqlite: not a readable ptlab results database",
                 id="results-garbage"),
    pytest.param("valid", b"", "results.sqlite: not a ptlab results database (no format record)", id="results-empty"),
    pytest.param("valid", _foreign_sqlite, "results.sqlite: not a ptlab results database (no format record)",
                 id="results-foreign"),
]


@pytest.mark.parametrize("kind", ["spurious", "budget"])
@pytest.mark.parametrize("manifest, results, needle", DIR_CASES)
def test_rerun_with_a_corrupt_results_dir(ptlab, ws, kind, manifest, results, needle):
    if manifest == "valid":
        _write_manifest(ws, kind)
    else:
        manifest = manifest.replace(b"spurious", kind.encode())
        ws.text("study/study.json", manifest)
    if callable(results):
        results(ws / "study" / "results.sqlite")
    elif results is not None:
        ws.text("study/results.sqlite", results)
    study(ptlab, ws, kind, [], needle.replace("spurious", kind))


def test_study_output_dir_is_a_file(ptlab, ws):
    blocker = ws.text("blocker", "a file")
    study(ptlab, ws, "spurious", [f"output_dir={blocker}"], "blocker: is a file; choose a directory")


def test_study_output_dir_under_a_file(ptlab, ws):
    blocker = ws.text("blocker", "a file")
    study(ptlab, ws, "budget", [f"output_dir={blocker}/study"], "is under")


# -- ptlab report / advise -------------------------------------------------------------


def _study_dir(ws, kind, manifest, results):
    if manifest == "spurious" or manifest == "budget":
        _write_manifest(ws, manifest)
    elif manifest is not None:
        ws.text("study/study.json", manifest)
    if callable(results):
        results(ws / "study" / "results.sqlite")
    elif results == "dir":
        ws.dir("study/results.sqlite")
    elif results is not None:
        ws.text("study/results.sqlite", results)
    return ws / "study"


REPORT_CASES = [  # (manifest, results, needle)
    pytest.param(None, None, "not a study directory (no study.json)", id="missing-dir"),
    pytest.param(b"{", None, "study.json:1: unreadable study manifest", id="manifest-garbage"),
    pytest.param(b"\xff\xfe{}", None, "study.json:1: study manifest is not valid UTF-8", id="manifest-latin1"),
    pytest.param(b'"a string"', None, "study.json: unreadable study manifest", id="manifest-string"),
    pytest.param(b'{"format": "ptlab-study-spurious/1", "cells": 3}', None, "study.json: unreadable study manifest",
                 id="manifest-cells-number"),
    pytest.param("spurious", None, "no results.sqlite yet", id="spurious-no-results"),
    pytest.param("spurious", "dir", "no results.sqlite yet", id="spurious-results-is-dir"),
    pytest.param("spurious", b"\x00garbage" * 100, "results.sqlite: not a readable ptlab results database",
                 id="spurious-results-garbage"),
    pytest.param("spurious", b"", "results.sqlite: not a ptlab results database", id="spurious-results-empty"),
    pytest.param("spurious", _foreign_sqlite, "results.sqlite: not a ptlab results database", id="spurious-foreign"),
    pytest.param("spurious", _ptlab_store, "no finished cells to report", id="spurious-no-cells"),
    pytest.param("budget", None, "no results.sqlite yet", id="budget-no-results"),
    pytest.param("budget", b"garbage" * 200, "results.sqlite: not a readable ptlab results database",
                 id="budget-results-garbage"),
    pytest.param("budget", _ptlab_store, "no finished cells", id="budget-no-cells"),
]


@pytest.mark.parametrize("manifest, results, needle", REPORT_CASES)
def test_bad_report_dir(ptlab, ws, manifest, results, needle):
    root = _study_dir(ws, None, manifest, results)
    expect_error(ptlab, ["report", root], needle, ws.root)


def test_report_dir_is_a_file(ptlab, ws):
    expect_error(ptlab, ["report", ws.text("study", "a file")], "not a study directory", ws.root)


def test_report_export_format(ptlab, ws):
    root = _study_dir(ws, None, "spurious", _ptlab_store)
    expect_error(ptlab, ["report", root, "--export", ws / "results.xlsx"], "--export: unsupported format '.xlsx'", ws.root)


def test_budget_report_corrupt_results(ptlab, ws):
    root = _study_dir(ws, None, "budget", b"not sqlite at all" * 50)
    expect_error(ptlab, ["report", root], "results.sqlite: not a readable ptlab results database", ws.root)


ADVISE_CASES = [
    pytest.param(["--seed-size", "0", "--budget", "100"], None, "--seed-size: must be >= 1 (got 0)", id="seed-size-0"),
    pytest.param(["--seed-size", "10", "--budget", "-5"], None, "--budget: must be >= 1 (got -5)", id="budget-negative"),
    pytest.param(["--seed-size", "ten", "--budget", "5"], None, "ptlab advise: Invalid value for '--seed-size'",
                 id="seed-size-word"),
    pytest.param(["--seed-size", "10"], None, "ptlab advise: Missing option '--budget'", id="budget-missing"),
    pytest.param(["--seed-size", "10", "--budget", "5", "--results"], "missing", "results dir", id="results-missing"),
    pytest.param(["--seed-size", "10", "--budget", "5", "--results"], "empty", "not a budget study (no study.json)",
                 id="results-not-a-study"),
    pytest.param(["--seed-size", "10", "--budget", "5", "--results"], "spurious", "not a budget study",
                 id="results-spurious-study"),
    pytest.param(["--seed-size", "10", "--budget", "5", "--results"], "garbage",
                 "results.sqlite: not a readable ptlab results database", id="results-garbage"),
    pytest.param(["--seed-size", "10", "--budget", "5", "--results"], "manifest-garbage",
                 "study.json:1: unreadable study manifest", id="results-manifest-garbage"),
]


@pytest.mark.parametrize("args, results, needle", ADVISE_CASES)
def test_bad_advise(ptlab, ws, args, results, needle):
    root = ws / "study"
    if results == "empty":
        ws.dir("study")
    elif results == "spurious":
        _study_dir(ws, None, "spurious", _ptlab_store)
    elif results == "garbage":
        _study_dir(ws, None, "budget", b"garbage" * 100)
    elif results == "manifest-garbage":
        _study_dir(ws, None, b"{{{", None)
    expect_error(ptlab, ["advise", *args, *([root] if results else [])], needle, ws.root)


# -- a worker process that dies ----------------------------------------------------------------------------


@dataclass
class _Cell:
    cell_id: str

    def as_dict(self) -> dict:
        return {"cell_id": self.cell_id}


@dataclass
class _Plan:
    cell: _Cell
    config_hash: str = "h"


def die(plan, events=None):
    """A cell runner whose worker process dies (as one killed by the OOM killer does)."""
    os._exit(9)


def test_dead_worker_is_one_line(ptlab, ws, monkeypatch):
    from ptlab.studies.spurious.study import STUDY

    root = ws / "study"
    monkeypatch.setattr(STUDY, "plan", lambda cfg, root: [_Plan(_Cell("math-fa-r0.1-sft-s0"))])
    monkeypatch.setattr(STUDY, "prepare", lambda cfg, root, todo: None)
    monkeypatch.setattr(STUDY, "runner", die)
    cfg = study_config(ws, "spurious", executor="processes", workers=1)
    line = expect_error(ptlab, ["study", "spurious", cfg, "--quiet"], "cell math-fa-r0.1-sft-s0: its worker process died")
    assert "resumes" in line
    from ptlab.studies.grid.store import ResultStore

    assert ResultStore(root / "results.sqlite", create=False).finished() == {}


def test_results_database_on_a_full_disk(ptlab, ws, monkeypatch):
    root = _study_dir(ws, None, "spurious", _ptlab_store)

    def full(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr("ptlab.studies.grid.store.ResultStore._stored_meta", full)
    expect_error(ptlab, ["report", root], "results.sqlite: cannot use the results database (database or disk is full)",
                 ws.root)
