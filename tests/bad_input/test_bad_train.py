"""`ptlab train`: bad configs, overrides and rows are one line, exit 2, before any model is built."""

from __future__ import annotations

import pytest

from tests.train.rows import arithmetic_rows, as_format

from .common import expect_error

DEL = object()


def train_config(ws, **changes):
    data = ws.jsonl("pairs.jsonl", arithmetic_rows(8))
    cfg = {"model": "tiny-test", "objective": "dpo", "data": {"path": str(data)}, "output_dir": str(ws / "out"),
           "batch_size": 4, "max_steps": 2}
    cfg.update(changes)
    return ws.yaml("train.yaml", cfg)


def run_train(ptlab, ws, cfg, overrides, needle):
    return expect_error(ptlab, ["train", cfg, *overrides, "--quiet"], needle, ws.root)


OVERRIDES = [
    pytest.param(["lr=.inf"], "lr: Input should be a finite number", id="lr-inf"),
    pytest.param(["lr=.nan"], "lr: Input should be a finite number", id="lr-nan"),
    pytest.param(["lr=-1e-3"], "lr: Input should be greater than 0", id="lr-negative"),
    pytest.param(["lr="], "lr: Input should be a valid number", id="lr-empty"),
    pytest.param(["lr=fast"], "lr: Input should be a valid number", id="lr-word"),
    pytest.param(["params.beta=.nan"], "params.beta: Input should be a finite number", id="beta-nan"),
    pytest.param(["params.beta=-.inf"], "params.beta", id="beta-minus-inf"),
    pytest.param(["epochs=.inf", "max_steps=null"], "epochs: Input should be a finite number", id="epochs-inf"),
    pytest.param(["max_grad_norm=.inf"], "max_grad_norm", id="grad-norm-inf"),
    pytest.param(["weight_decay=.nan"], "weight_decay", id="weight-decay-nan"),
    pytest.param(["warmup_ratio=1.5"], "warmup_ratio: Input should be less than or equal to 1", id="warmup-over-1"),
    pytest.param(["grad_accum=8"], "grad_accum: 8 micro-batches cannot split a batch of batch_size=4", id="accum-gt-batch"),
    pytest.param(["grad_accum=0"], "grad_accum: Input should be greater than 0", id="accum-zero"),
    pytest.param(["batch_size=0"], "batch_size: Input should be greater than 0", id="batch-zero"),
    pytest.param(["batch_size=2.5"], "batch_size: Input should be a valid integer", id="batch-float"),
    pytest.param(["batch_size=[4]"], "batch_size: Input should be a valid integer", id="batch-list"),
    pytest.param(["max_steps=-1"], "max_steps: Input should be greater than 0", id="max-steps-negative"),
    pytest.param(["max_length=1"], "max_length: Input should be greater than 1", id="max-length-1"),
    pytest.param(["seed=abc"], "seed: Input should be a valid integer", id="seed-word"),
    pytest.param(["scheduler=cosin"], "scheduler: Input should be 'cosine', 'linear' or 'constant'", id="scheduler-typo"),
    pytest.param(["precision=fp16"], "precision: Input should be 'auto', 'fp32' or 'bf16'", id="precision-fp16"),
    pytest.param(["report_to=[tensorbord]"], "report_to.0", id="tracker-typo"),
    pytest.param(["save_total_limit=0"], "save_total_limit: Input should be greater than 0", id="save-limit-zero"),
    pytest.param(["objective=ppo"], "objective: unknown objective 'ppo'", id="objective-unknown"),
    pytest.param(["params.loss_type=foo"], "params.loss_type: unknown loss_type 'foo'", id="loss-type-unknown"),
    pytest.param(["params.gamma=1"], "params.gamma: unknown field", id="param-unknown"),
    pytest.param(["learning_rate=1e-3"], "learning_rate: unknown field", id="key-typo"),
    pytest.param(["data.pth=x.jsonl"], "data.pth: unknown field", id="nested-key-typo"),
    pytest.param(["lora.rank=4"], "lora.rank: unknown field", id="lora-key-typo"),
    pytest.param(["lora.dropout=1"], "lora.dropout: Input should be less than 1", id="lora-dropout-1"),
    pytest.param(["eval_data.n=0", "eval_data.task=math"], "eval_data.n: Input should be greater than 0", id="eval-n-zero"),
    pytest.param(["data.task=math"], "give exactly one of data.path or data.task", id="data-path-and-task"),
    pytest.param(["data=null"], "data: Input should be a valid dictionary", id="data-null"),
    pytest.param(["data.path="], "data.path: String should have at least 1 character", id="data-path-empty"),
    pytest.param(["data.path=/nonexistent/pairs.jsonl"], "data file not found: /nonexistent/pairs.jsonl", id="data-missing"),
    pytest.param(["eval_data.path=/nonexistent/eval.jsonl"], "data file not found: /nonexistent/eval.jsonl",
                 id="eval-data-missing"),
    pytest.param(["lr"], "override 'lr': expected key=value", id="override-no-equals"),
    pytest.param(["=1e-3"], "override '=1e-3': expected key=value with a key like a or a.b", id="override-no-key"),
    pytest.param(["data..path=x"], "override 'data..path=x'", id="override-empty-part"),
    pytest.param(["data.path.file=x"], "override 'data.path.file=x': 'path' is not a section", id="override-into-scalar"),
    pytest.param(["model=gpt-17"], "unknown model 'gpt-17'; choose from", id="model-unknown"),
    pytest.param(["model=hf:/nonexistent/model"], "unknown model 'hf:/nonexistent/model'", id="model-hf-missing"),
]


@pytest.mark.parametrize("overrides, needle", OVERRIDES)
def test_bad_override(ptlab, ws, overrides, needle):
    run_train(ptlab, ws, train_config(ws), overrides, needle)


TASK_CASES = [
    pytest.param({"task": "poetry"}, "data.task: unknown task 'poetry'", id="task-unknown"),
    pytest.param({"task": "math", "split": "valid"}, "data.split: Input should be 'train', 'eval_id' or 'eval_break'",
                 id="split-unknown"),
    pytest.param({"task": "math", "n": -1}, "data.n: Input should be greater than 0", id="task-n-negative"),
    pytest.param({"task": "math", "knobs": {"max_stepz": 3}}, "data: knobs of task 'math': max_stepz: unknown field",
                 id="knob-typo"),
    pytest.param({"task": "math", "knobs": {"max_steps": "many"}}, "max_steps: Input should be a valid integer",
                 id="knob-type"),
    pytest.param({"task": "math", "spurious": {"feature": "altogether_cue", "artifact": "feature_ambiguity",
                                               "rat": 0.9}}, "data.spurious.rat: unknown field", id="spurious-key-typo"),
    pytest.param({"task": "math", "spurious": {"feature": "altogether_cue", "artifact": "feature_ambiguity",
                                               "rate": 1.5}}, "data.spurious.rate: Input should be less than or equal",
                 id="spurious-rate"),
    pytest.param({"task": "math", "spurious": {"feature": "nope", "artifact": "feature_ambiguity", "rate": 0.5}},
                 "data: spurious.feature: 'nope' is not a feature of task 'math'", id="spurious-feature-unknown"),
]


@pytest.mark.parametrize("data, needle", TASK_CASES)
def test_bad_task_data(ptlab, ws, data, needle):
    run_train(ptlab, ws, train_config(ws, data=data), [], needle)


def rows_with(fmt: str, index: int, n: int = 6, **changes) -> list[dict]:
    rows = as_format(arithmetic_rows(n), fmt)
    for key, value in changes.items():
        if value is DEL:
            del rows[index][key]
        else:
            rows[index][key] = value
    return rows


OBJECTIVE = {"sft": "sft", "paired": "dpo", "unpaired": "kto"}
MSGS = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]

ROW_CASES = [
    pytest.param("paired", rows_with("paired", 2, prompt=5), "bad.jsonl: row 3: 'prompt' must be a string (got int 5)",
                 id="prompt-number"),
    pytest.param("paired", rows_with("paired", 0, chosen=1.5), "bad.jsonl: row 1: 'chosen' must be a string",
                 id="chosen-number"),
    pytest.param("paired", rows_with("paired", 5, rejected=[1, 2]), "bad.jsonl: row 6: 'rejected' must be a string",
                 id="rejected-list"),
    pytest.param("paired", rows_with("paired", 1, prompt={"text": "hi"}), "bad.jsonl: row 2: 'prompt' must be a string",
                 id="prompt-object"),
    pytest.param("paired", rows_with("paired", 3, rejected=DEL), "bad.jsonl: row 4: missing column(s) rejected",
                 id="rejected-missing"),
    pytest.param("paired", rows_with("paired", 3, chosen=None), "bad.jsonl: row 4: missing column(s) chosen",
                 id="chosen-null"),
    pytest.param("paired", rows_with("paired", 2, chosen=""), "bad.jsonl: row 3: column 'chosen' is empty",
                 id="chosen-empty"),
    pytest.param("paired", rows_with("paired", 1, prompt=MSGS[:1]), "bad.jsonl: row 2: 'chosen' must be a list of messages",
                 id="chat-prompt-text-chosen"),
    pytest.param("paired", rows_with("paired", 1, prompt=[{"role": "user"}], chosen=MSGS[1:], rejected=MSGS[1:]),
                 "bad.jsonl: row 2: 'prompt' item 1: expected an object with string 'role' and 'content'",
                 id="chat-prompt-no-content"),
    pytest.param("sft", rows_with("sft", 4, completion=42), "bad.jsonl: row 5: 'completion' must be a string",
                 id="sft-completion-number"),
    pytest.param("sft", [{"messages": "hello"}], "bad.jsonl: row 1: 'messages' must be a non-empty list",
                 id="messages-string"),
    pytest.param("sft", [{"messages": MSGS}, {"messages": []}], "bad.jsonl: row 2: 'messages' must be a non-empty list",
                 id="messages-empty"),
    pytest.param("sft", [{"messages": ["hi", "there"]}], "bad.jsonl: row 1: 'messages' item 1: expected an object",
                 id="messages-strings"),
    pytest.param("sft", [{"messages": MSGS}, {"messages": [MSGS[0], {"role": "assistant", "content": 4}]}],
                 "bad.jsonl: row 2: 'messages' item 2: expected an object with string 'role' and 'content'",
                 id="message-content-number"),
    pytest.param("sft", [{"messages": [MSGS[0], {"content": "4"}]}], "bad.jsonl: row 1: 'messages' item 2",
                 id="message-no-role"),
    pytest.param("sft", [{"messages": MSGS[:1]}], "bad.jsonl: row 1: the last message must be the assistant's",
                 id="messages-last-user"),
    pytest.param("unpaired", rows_with("unpaired", 2, label="yes"), "bad.jsonl: row 3: 'label' must be a boolean",
                 id="label-string"),
    pytest.param("unpaired", rows_with("unpaired", 0, label=2), "bad.jsonl: row 1: 'label' must be a boolean (got 2)",
                 id="label-two"),
    pytest.param("unpaired", rows_with("unpaired", 4, label=DEL), "bad.jsonl: row 5: missing column(s) label",
                 id="label-missing"),
    pytest.param("unpaired", rows_with("unpaired", 1, completion=""), "bad.jsonl: row 2: column 'completion' is empty",
                 id="kto-completion-empty"),
    pytest.param("paired", as_format(arithmetic_rows(2), "sft"), "bad.jsonl: row 1: missing column(s) chosen, rejected",
                 id="sft-rows-for-dpo"),
]


@pytest.mark.parametrize("fmt, rows, needle", ROW_CASES)
def test_bad_rows(ptlab, ws, fmt, rows, needle):
    bad = ws.jsonl("bad.jsonl", rows)
    run_train(ptlab, ws, train_config(ws), [f"objective={OBJECTIVE[fmt]}", f"data.path={bad}"], needle)


GOOD = '{"prompt": "p", "chosen": "a", "rejected": "b"}\n'

FILE_CASES = [
    pytest.param("bad.jsonl", GOOD + "{not json\n", "bad.jsonl:2: invalid JSON", id="jsonl-invalid"),
    pytest.param("bad.jsonl", GOOD + "\n" + "[1, 2]\n", "bad.jsonl:3: expected a JSON object, got list", id="jsonl-list-row"),
    pytest.param("bad.jsonl", GOOD.encode() + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n',
                 "bad.jsonl:2: not valid UTF-8", id="jsonl-latin1"),
    pytest.param("bad.jsonl", "", "bad.jsonl: dataset is empty", id="jsonl-empty"),
    pytest.param("bad.jsonl", "\n\n  \n", "bad.jsonl: dataset is empty", id="jsonl-blank-lines"),
    pytest.param("bad.json", '{"prompt": "p"}', "bad.json: expected a JSON list of objects, got dict", id="json-object"),
    pytest.param("bad.json", '[{"prompt": "p", "chosen": "a", "rejected": "b"}, "x"]',
                 "bad.json: row 2: expected a JSON object, got str", id="json-list-of-strings"),
    pytest.param("bad.json", '[\n{"prompt": "p",\n}\n]', "bad.json:3: invalid JSON", id="json-invalid"),
    pytest.param("bad.json", b'[{"prompt": "\xff"}]', "bad.json:1: not valid UTF-8", id="json-bad-utf8"),
    pytest.param("bad.parquet", "this is not parquet", "bad.parquet: not a readable Parquet file", id="parquet-garbage"),
    pytest.param("bad.csv", "prompt,chosen,rejected\n", "bad.csv: unsupported data format '.csv'", id="csv"),
    pytest.param("rows/", None, "rows: not a saved datasets directory", id="plain-directory"),
]


@pytest.mark.parametrize("name, content, needle", FILE_CASES)
def test_bad_data_file(ptlab, ws, name, content, needle):
    path = ws.dir(name) if content is None else ws.text(name, content)
    run_train(ptlab, ws, train_config(ws), [f"data.path={path}"], needle)


def test_bad_eval_rows_fail_before_the_model(ptlab, ws):
    bad = ws.jsonl("eval.jsonl", rows_with("paired", 1, chosen=7))
    run_train(ptlab, ws, train_config(ws), [f"eval_data.path={bad}"], "eval.jsonl: row 2: 'chosen' must be a string")


def test_too_few_rows_for_grad_accum(ptlab, ws):
    few = ws.jsonl("few.jsonl", arithmetic_rows(2))
    run_train(ptlab, ws, train_config(ws), [f"data.path={few}", "grad_accum=4"],
              "data: 2 rows cannot feed 1 processes x grad_accum=4")


CONFIG_FILES = [
    pytest.param(b"model: tiny-test\nobjective: dpo\ndata: {path: caf\xe9.jsonl}\n", "train.yaml:3: config file is not valid UTF-8",
                 id="config-latin1"),
    pytest.param("model: [tiny\n", "train.yaml:2: invalid YAML", id="config-invalid-yaml"),
    pytest.param("- model: tiny-test\n", "train.yaml: expected a mapping at the top level, got list", id="config-list"),
    pytest.param("", "train.yaml: data: Field required", id="config-empty"),
    pytest.param("model: tiny-test\n\tobjective: dpo\n", "train.yaml:2: invalid YAML", id="config-tab"),
    pytest.param("model: tiny-test\nlr: .inf\ndata: {path: p.jsonl}\n", "train.yaml: lr: Input should be a finite number",
                 id="config-lr-inf"),
    pytest.param("data: {path: p.jsonl}\nlora: {rank: 8}\n", "train.yaml: lora.rank: unknown field", id="config-nested-typo"),
]


@pytest.mark.parametrize("content, needle", CONFIG_FILES)
def test_bad_config_file(ptlab, ws, content, needle):
    run_train(ptlab, ws, ws.text("train.yaml", content), [], needle)


def test_missing_config_file(ptlab, ws):
    run_train(ptlab, ws, ws / "nope.yaml", [], "config file not found:")


def test_config_is_a_directory(ptlab, ws):
    run_train(ptlab, ws, ws.dir("configs"), [], "configs: is a directory, expected a YAML config file")


def test_output_dir_under_a_regular_file(ptlab, ws):
    blocker = ws.text("blocker", "a file")
    run_train(ptlab, ws, train_config(ws), [f"output_dir={blocker}/run"], "blocker")
