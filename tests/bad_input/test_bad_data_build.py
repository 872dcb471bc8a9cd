"""`ptlab data build`: bad configs, overrides and real-data files are one line, exit 2, nothing written."""

from __future__ import annotations

import errno

import pytest

from .common import expect_error

GSM8K_OK = '{"question": "Ada has 2 apples and buys 3. How many?", "answer": "2+3=<<2+3=5>>5\\n#### 5"}\n'


def data_config(ws, **changes):
    cfg = {"task": "math", "seed": 0, "spurious": {"feature": "altogether_cue", "artifact": "feature_ambiguity",
                                                   "rate": 0.9},
           "sizes": {"train": 20, "eval_id": 10, "eval_break": 10}, "formats": ["sft", "paired"], "output": ["jsonl"]}
    cfg.update(changes)
    return ws.yaml("data.yaml", cfg)


def build(ptlab, ws, cfg, overrides, needle, out=True):
    argv = ["data", "build", cfg, *overrides] + (["--out", ws / "out"] if out else [])
    return expect_error(ptlab, argv, needle, ws.root)


OVERRIDES = [
    pytest.param(["task=poetry"], "task: unknown task 'poetry'", id="task-unknown"),
    pytest.param(["source=csv"], "source: Input should be 'synthetic', 'gsm8k'", id="source-unknown"),
    pytest.param(["spurious.rate=1.5"], "spurious.rate: Input should be less than or equal to 1", id="rate-over-1"),
    pytest.param(["spurious.rate=.nan"], "spurious.rate: Input should be a finite number", id="rate-nan"),
    pytest.param(["spurious.rate=high"], "spurious.rate: Input should be a valid number", id="rate-word"),
    pytest.param(["spurious.artifact=leakage"], "spurious.artifact: Input should be 'feature_ambiguity'", id="artifact"),
    pytest.param(["spurious.feature=nope"], "spurious.feature: 'nope' is not a feature of task 'math'", id="feature"),
    pytest.param(["spurious.featur=x"], "spurious.featur: unknown field", id="spurious-key-typo"),
    pytest.param(["spurious=0.5"], "spurious: Input should be a valid dictionary", id="spurious-scalar"),
    pytest.param(["sizes.train=-1"], "sizes.train: Input should be greater than or equal to 0", id="size-negative"),
    pytest.param(["sizes.test=5"], "sizes.test: unknown field", id="size-unknown-split"),
    pytest.param(["sizes.train=many"], "sizes.train: Input should be a valid integer", id="size-word"),
    pytest.param(["sizes.train.n=5"], "override 'sizes.train.n=5': 'train' is not a section", id="override-into-size"),
    pytest.param(["formats=[]"], "formats: must name at least one", id="formats-empty"),
    pytest.param(["formats=[csv]"], "formats.0: Input should be 'sft', 'paired' or 'unpaired'", id="formats-csv"),
    pytest.param(["output=[xlsx]"], "output.0: Input should be 'jsonl' or 'parquet'", id="output-xlsx"),
    pytest.param(["knobs.max_stepz=3"], "knobs of task 'math': max_stepz: unknown field", id="knob-typo"),
    pytest.param(["knobs.max_number=1"], "max_number: Input should be greater than or equal to 3", id="knob-range"),
    pytest.param(["knobs.ops=x"], "ops: String should match pattern", id="knob-pattern"),
    pytest.param(["seed=abc"], "seed: Input should be a valid integer", id="seed-word"),
    pytest.param(["source=gsm8k", "task=instruct", "spurious=null"], "source: 'gsm8k' is math data, not 'instruct'",
                 id="source-task-mismatch"),
    pytest.param(["source=gsm8k", "real_path=/nonexistent/gsm8k.jsonl", "spurious=null"],
                 "real_path: file not found: /nonexistent/gsm8k.jsonl", id="real-path-missing"),
]


@pytest.mark.parametrize("overrides, needle", OVERRIDES)
def test_bad_override(ptlab, ws, overrides, needle):
    build(ptlab, ws, data_config(ws), overrides, needle)


def test_bad_config_without_out_leaves_the_cache_alone(ptlab, ws):
    build(ptlab, ws, data_config(ws), ["spurious.rate=2"], "spurious.rate", out=False)


REAL_FILES = [
    pytest.param("gsm8k", "math", "g.jsonl", GSM8K_OK + "{oops\n", "g.jsonl:2: invalid JSON", id="gsm8k-invalid-json"),
    pytest.param("gsm8k", "math", "g.jsonl", GSM8K_OK.encode() + b'{"question": "\xe9", "answer": "#### 1"}\n',
                 "g.jsonl:2: not valid UTF-8", id="gsm8k-latin1"),
    pytest.param("gsm8k", "math", "g.jsonl", GSM8K_OK + '{"question": 7, "answer": "#### 7"}\n',
                 "g.jsonl:2: 'question' must be a string (got int)", id="gsm8k-question-number"),
    pytest.param("gsm8k", "math", "g.jsonl", GSM8K_OK + '{"question": "q?"}\n', "g.jsonl:2: missing field(s) answer",
                 id="gsm8k-no-answer"),
    pytest.param("gsm8k", "math", "g.jsonl", GSM8K_OK + '{"question": "q?", "answer": "5"}\n',
                 "g.jsonl:2: answer has no '#### <number>' final line", id="gsm8k-no-final"),
    pytest.param("hotpotqa", "docqa", "h.json", '{"data": []}', "h.json: expected HotpotQA JSON: a list of records",
                 id="hotpot-object"),
    pytest.param("hotpotqa", "docqa", "h.json", '[{"question": "q", "answer": 5, "context": []}]',
                 "h.json: [0]: 'answer' must be a string (got int)", id="hotpot-answer-number"),
    pytest.param("squad", "docqa", "s.json", b'{"data": "\xff"}', "s.json:1: not valid UTF-8", id="squad-bad-utf8"),
    pytest.param("squad", "docqa", "s.json", '{"data": [{"paragraphs": "text"}]}',
                 "s.json: data[0]: 'paragraphs' must be a list (got str)", id="squad-paragraphs-string"),
]


@pytest.mark.parametrize("source, task, name, content, needle", REAL_FILES)
def test_bad_real_data_file(ptlab, ws, source, task, name, content, needle):
    path = ws.text(name, content)
    cfg = data_config(ws, task=task, source=source, real_path=str(path), spurious=None)
    build(ptlab, ws, cfg, [], needle)


CONFIG_FILES = [
    pytest.param(b"task: math\nseed: \xff\n", "data.yaml:2: config file is not valid UTF-8", id="latin1"),
    pytest.param("task: math\nsizes: {train: 5\n", "data.yaml:3: invalid YAML", id="invalid-yaml"),
    pytest.param("", "data.yaml: task: Field required", id="empty"),
    pytest.param("just a string\n", "data.yaml: expected a mapping at the top level, got str", id="scalar"),
    pytest.param("task: math\nsize: {train: 5}\n", "data.yaml: size: unknown field", id="key-typo"),
]


@pytest.mark.parametrize("content, needle", CONFIG_FILES)
def test_bad_config_file(ptlab, ws, content, needle):
    build(ptlab, ws, ws.text("data.yaml", content), [], needle)


def test_missing_config_file(ptlab, ws):
    build(ptlab, ws, ws / "nope.yaml", [], "config file not found:")


def test_out_under_a_regular_file(ptlab, ws):
    blocker = ws.text("blocker", "a file")
    expect_error(ptlab, ["data", "build", data_config(ws), "--out", blocker / "d"], "blocker", ws.root)


def test_disk_full_while_writing(ptlab, ws, monkeypatch):
    def full(rows, base, outputs):
        raise OSError(errno.ENOSPC, "No space left on device", str(base.with_suffix(".jsonl")))

    monkeypatch.setattr("ptlab.data.build.write_rows", full)
    line = build(ptlab, ws, data_config(ws), [], "train.jsonl: No space left on device")
    assert "free some space" in line


def test_permission_denied_reading_the_config(ptlab, ws, monkeypatch):
    cfg = data_config(ws)

    def denied(path, what="file"):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("ptlab.config.read_text", denied)
    build(ptlab, ws, cfg, [], "data.yaml: Permission denied")
