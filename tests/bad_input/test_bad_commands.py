"""`ptlab eval`, `models`, `retrieval`, `study softqe`, `synth` and the command line itself: bad input is one line,
exit 2, before any model or encoder is loaded, and nothing is written."""

from __future__ import annotations

import errno
import json

import pytest

from .common import expect_error

EVAL_CASES = [
    pytest.param(["--task", "poetry"], "task: unknown task 'poetry'", id="task-unknown"),
    pytest.param(["--task", "math", "--feature", "altogether_cue"], "--feature and --artifact go together",
                 id="feature-without-artifact"),
    pytest.param(["--task", "math", "--feature", "nope", "--artifact", "feature_ambiguity"],
                 "spurious.feature: 'nope' is not a feature of task 'math'", id="feature-unknown"),
    pytest.param(["--task", "math", "--feature", "altogether_cue", "--artifact", "leakage"], "unknown artifact 'leakage'",
                 id="artifact-unknown"),
    pytest.param(["--task", "math", "--rate", "1.5"], "--rate: must be in [0, 1] (got 1.5)", id="rate-over-1"),
    pytest.param(["--task", "math", "--rate", "nan"], "--rate: must be in [0, 1] (got nan)", id="rate-nan"),
    pytest.param(["--task", "math", "--splits", "eval_x"], "--splits: unknown evaluation split 'eval_x'", id="split-typo"),
    pytest.param(["--task", "math", "--splits", "train"], "--splits: unknown evaluation split 'train'", id="split-train"),
    pytest.param(["--task", "math", "--splits", ","], "--splits: give at least one of eval_id, eval_break",
                 id="splits-empty"),
    pytest.param(["--task", "math", "--n", "0"], "--n: must be positive (got 0)", id="n-zero"),
    pytest.param(["--task", "math", "--n", "abc"], "ptlab eval: Invalid value for '--n'", id="n-word"),
    pytest.param(["--task", "math", "--batch-size", "0"], "--batch-size: must be >= 1 (got 0)", id="batch-zero"),
    pytest.param(["--task", "math", "--pairs", "-1"], "--pairs: must be >= 0 (got -1)", id="pairs-negative"),
    pytest.param(["--task", "math", "--max-new-tokens", "0"], "--max-new-tokens: must be >= 1 (got 0)",
                 id="max-new-tokens-zero"),
    pytest.param(["--task", "math", "--sample", "--temperature", "0"], "--temperature: must be a finite number, > 0",
                 id="sample-temperature-zero"),
    pytest.param(["--task", "math", "--temperature", "inf"], "--temperature", id="temperature-inf"),
    pytest.param(["--task", "math", "--top-p", "1.5"], "--top-p: must be in (0, 1] (got 1.5)", id="top-p-over-1"),
    pytest.param(["--task", "math", "--top-p", "0"], "--top-p: must be in (0, 1] (got 0.0)", id="top-p-zero"),
    pytest.param(["--task", "math", "--pairs", "4", "--base", "gpt-17"], "unknown model 'gpt-17'", id="base-unknown"),
    pytest.param([], "ptlab eval: Missing option '--task'", id="task-missing"),
    pytest.param(["--task", "math", "--nn", "3"], "ptlab eval: No such option: --nn", id="option-typo"),
]


@pytest.mark.parametrize("args, needle", EVAL_CASES)
def test_bad_eval_options(ptlab, ws, args, needle):
    expect_error(ptlab, ["eval", "tiny-test", *args, "--out", ws / "out"], needle, ws.root)


def test_eval_unknown_model(ptlab, ws):
    expect_error(ptlab, ["eval", "gpt-17", "--task", "math"], "unknown model 'gpt-17'; choose from", ws.root)


def test_eval_model_dir_without_config(ptlab, ws):
    folder = ws.dir("my-model")
    expect_error(ptlab, ["eval", f"hf:{folder}", "--task", "math"], "has no config.json", ws.root)


# -- models ---------------------------------------------------------------------------------------------------

def test_models_build_unknown(ptlab, ws):
    expect_error(ptlab, ["models", "build", "gpt-17"], "unknown model 'gpt-17'; choose from", ws.root)


def test_models_build_dir_without_config(ptlab, ws):
    expect_error(ptlab, ["models", "build", ws.dir("weights")], "weights has no config.json", ws.root)


def test_models_build_without_a_name(ptlab, ws):
    expect_error(ptlab, ["models", "build"], "ptlab models build: Missing argument", ws.root)


def test_models_unknown_subcommand(ptlab, ws):
    expect_error(ptlab, ["models", "frobnicate"], "ptlab models: No such command 'frobnicate'", ws.root)


@pytest.mark.parametrize("home", ["file", "under-file"])
def test_models_with_ptlab_home_blocked_by_a_file(ptlab, ws, home):
    blocker = ws.text("blocker", "a file")
    path = blocker if home == "file" else blocker / "home"
    expect_error(ptlab, ["models", "list"], f"PTLAB_HOME {path}: not a directory", ws.root, env={"PTLAB_HOME": str(path)})


# -- retrieval ------------------------------------------------------------------------------------------------

CORPUS = [{"_id": "d1", "title": "A", "text": "Ada Lovelace wrote the first program."},
          {"_id": "d2", "title": "B", "text": "The Eiffel Tower is in Paris."}]
QUERIES = [{"_id": "q1", "text": "who wrote the first program"}, {"_id": "q2", "text": "where is the eiffel tower"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def beir_folder(ws, corpus=None, queries=None, qrels=None):
    folder = ws.dir("beir")
    for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
        if isinstance(rows, (str, bytes)):
            ws.text(f"beir/{name}", rows)
        elif rows is not False:
            ws.jsonl(f"beir/{name}", rows if rows is not None else (CORPUS if name == "corpus.jsonl" else QUERIES))
    if qrels is not False:
        ws.text("beir/qrels/test.tsv", qrels if qrels is not None else QRELS)
    return folder


BEIR_CASES = [
    pytest.param({"corpus": False}, "corpus.jsonl: missing document file", id="no-corpus"),
    pytest.param({"corpus": json.dumps(CORPUS[0]) + "\n{oops\n"}, "corpus.jsonl:2: invalid JSON", id="corpus-invalid"),
    pytest.param({"corpus": b'{"_id": "d1", "text": "caf\xe9"}\n'}, "corpus.jsonl:1: not valid UTF-8", id="corpus-latin1"),
    pytest.param({"corpus": [CORPUS[0], {"text": "no id"}]}, "corpus.jsonl:2: missing '_id'", id="corpus-no-id"),
    pytest.param({"corpus": [{"_id": "d1", "text": 42}]}, "corpus.jsonl:1: document 'd1' has no 'text'",
                 id="corpus-text-number"),
    pytest.param({"corpus": [CORPUS[0], CORPUS[0]]}, "corpus.jsonl:2: duplicate id 'd1'", id="corpus-duplicate"),
    pytest.param({"corpus": ""}, "corpus.jsonl: no document rows", id="corpus-empty"),
    pytest.param({"queries": False}, "queries.jsonl: missing query file", id="no-queries"),
    pytest.param({"queries": [{"_id": "q1", "text": ["a", "list"]}]}, "queries.jsonl:1: query 'q1' has no 'text'",
                 id="query-text-list"),
    pytest.param({"qrels": False}, "no qrels/<split>.tsv files", id="no-qrels"),
    pytest.param({"qrels": "q1\td1\tx\n"}, "test.tsv:1: score 'x' is not an integer", id="qrels-score"),
    pytest.param({"qrels": QRELS + "q1\td9\t1\n"}, "test.tsv:4: unknown document id 'd9'", id="qrels-unknown-doc"),
    pytest.param({"qrels": "query-id\tcorpus-id\tscore\nq1 d1 1\n"}, "test.tsv:2: expected 3 tab-separated fields",
                 id="qrels-spaces"),
    pytest.param({"qrels": b"query-id\tcorpus-id\tscore\nq1\td1\t1\n\xff\td2\t1\n"}, "test.tsv:3: not valid UTF-8",
                 id="qrels-latin1"),
]


@pytest.mark.parametrize("files, needle", BEIR_CASES)
def test_bad_beir_folder(ptlab, ws, files, needle):
    expect_error(ptlab, ["retrieval", "check", beir_folder(ws, **files)], needle, ws.root)


def test_beir_folder_missing(ptlab, ws):
    expect_error(ptlab, ["retrieval", "check", ws / "nowhere"], "nowhere: not a directory", ws.root)


def test_beir_folder_is_a_file(ptlab, ws):
    expect_error(ptlab, ["retrieval", "check", ws.text("corpus.jsonl", "{}")], "corpus.jsonl: not a directory", ws.root)


RETRIEVAL_EVAL = [
    pytest.param(["all-minilm-l6-v2", "--k", "0"], "--k: must be >= 1 (got 0)", id="k-zero"),
    pytest.param(["all-minilm-l6-v2", "--threads", "0"], "--threads: must be >= 1 (got 0)", id="threads-zero"),
    pytest.param(["no-such-encoder"], "encoder 'no-such-encoder': not 'all-minilm-l6-v2'", id="encoder-unknown"),
    pytest.param(["all-minilm-l6-v2", "--split", "dev"], "missing qrels file for split 'dev'", id="split-missing"),
]


@pytest.mark.parametrize("args, needle", RETRIEVAL_EVAL)
def test_bad_retrieval_evaluate(ptlab, ws, args, needle):
    folder = beir_folder(ws)
    encoder, *options = args
    expect_error(ptlab, ["retrieval", "evaluate", encoder, folder, *options], needle, ws.root)


RETRIEVAL_BUILD = [
    pytest.param(["nope"], "unknown collection 'nope'", id="collection-unknown"),
    pytest.param(["squad", "n_test=0"], "squad: n_test: Input should be greater than or equal to 1", id="n-test-zero"),
    pytest.param(["squad", "n_tset=5"], "squad: n_tset: unknown field", id="key-typo"),
    pytest.param(["squad", "max_articles=0"], "squad: max_articles: Input should be greater than or equal to 1",
                 id="articles-zero"),
    pytest.param(["hotpotqa", "n_queries=-3"], "hotpotqa: n_queries: Input should be greater than or equal to 1",
                 id="hotpot-negative"),
    pytest.param(["hotpotqa", "seed=x"], "hotpotqa: seed: Input should be a valid integer", id="seed-word"),
]


@pytest.mark.parametrize("args, needle", RETRIEVAL_BUILD)
def test_bad_retrieval_build(ptlab, ws, args, needle):
    expect_error(ptlab, ["retrieval", "build", *args], needle, ws.root)


SOFTQE = [
    pytest.param(["studnet.alpha=1"], "studnet: unknown field", id="key-typo"),
    pytest.param(["student.alpha=[.nan]"], "student.alpha", id="alpha-nan"),
    pytest.param(["teacher.learning_rate=.inf"], "teacher.learning_rate: Input should be a finite number", id="lr-inf"),
    pytest.param(["eval.k=5"], "eval.k: Input should be greater than or equal to 10", id="k-small"),
    pytest.param(["squad.n_test=0"], "squad.n_test: Input should be greater than or equal to 1", id="n-test-zero"),
    pytest.param(["threads=0"], "threads: Input should be greater than or equal to 1", id="threads-zero"),
    pytest.param(["squad=5"], "squad: Input should be a valid dictionary", id="section-scalar"),
]


@pytest.mark.parametrize("quick", [[], ["--quick"]], ids=["full", "quick"])
@pytest.mark.parametrize("overrides, needle", SOFTQE)
def test_bad_softqe_config(ptlab, ws, quick, overrides, needle):
    expect_error(ptlab, ["study", "softqe", *quick, f"output_dir={ws / 'out'}", *overrides], needle, ws.root)


def test_softqe_config_missing(ptlab, ws):
    expect_error(ptlab, ["study", "softqe", str(ws / "softqe.yaml")], "config file not found", ws.root)


def test_softqe_config_latin1(ptlab, ws):
    cfg = ws.text("softqe.yaml", b"threads: 2\nencoder: caf\xe9\n")
    expect_error(ptlab, ["study", "softqe", cfg], "softqe.yaml:2: config file is not valid UTF-8", ws.root)


# -- synth ----------------------------------------------------------------------------------------------------

def synth_config(ws, **changes):
    cfg = {"teacher": {"backend": "simulated", "model": "math"}, "budget": {"max_queries": 8},
           "strategy": {"strategy": "answer_augmentation", "queries": 8}, "seeds": {"task": "math", "n": 4},
           "output": str(ws / "synth-out")}
    cfg.update(changes)
    return ws.yaml("synth.yaml", cfg)


SYNTH = [
    pytest.param(["teacher.backend=gpt"], "teacher.backend: Input should be 'openai', 'hf' or 'simulated'", id="backend"),
    pytest.param(["budget.max_queries=-1"], "budget.max_queries: Input should be greater than or equal to 0",
                 id="budget-negative"),
    pytest.param(["strategy.strategy=magic"], "strategy.strategy: Input should be", id="strategy-unknown"),
    pytest.param(["seeds.n=0"], "seeds.n: Input should be greater than or equal to 1", id="seeds-zero"),
    pytest.param(["teacher.timeout_s=.inf"], "teacher.timeout_s: Input should be a finite number", id="timeout-inf"),
    pytest.param(["strategy.temperature=.nan"], "strategy.temperature: Input should be a finite number", id="temp-nan"),
    pytest.param(["teacher.backend=openai", "teacher.base_url=ftp://host/v1"], "base_url must start with http://",
                 id="base-url"),
    pytest.param(["outptu=x"], "outptu: unknown field", id="key-typo"),
    pytest.param(["seeds.source=jsonl", "seeds.path=/nonexistent/seeds.jsonl"],
                 "seeds.path: seed file not found: /nonexistent/seeds.jsonl", id="seeds-missing"),
]


@pytest.mark.parametrize("overrides, needle", SYNTH)
def test_bad_synth(ptlab, ws, overrides, needle):
    expect_error(ptlab, ["synth", synth_config(ws), *overrides], needle, ws.root)


SYNTH_SEEDS = [
    pytest.param('{"prompt": "2+2?"}\n{oops\n', "seeds.jsonl:2", id="invalid-json"),
    pytest.param(b'{"prompt": "caf\xe9?"}\n', "seeds.jsonl:1", id="latin1"),
    pytest.param('{"prompt": 5}\n', "seeds.jsonl:1", id="prompt-number"),
    pytest.param('["2+2?"]\n', "seeds.jsonl:1", id="list-row"),
]


@pytest.mark.parametrize("content, needle", SYNTH_SEEDS)
def test_bad_synth_seed_file(ptlab, ws, content, needle):
    seeds = ws.text("seeds.jsonl", content)
    expect_error(ptlab, ["synth", synth_config(ws), "seeds.source=jsonl", f"seeds.path={seeds}"], needle, ws.root)


def test_synth_config_latin1(ptlab, ws):
    cfg = ws.text("synth.yaml", b"# \xe9\nbudget: {max_queries: 8}\n")
    expect_error(ptlab, ["synth", cfg], "synth.yaml:1: config file is not valid UTF-8", ws.root)


# -- the command line, and the file system ---------------------------------------------------------------------

USAGE = [
    pytest.param(["nope"], "ptlab: No such command 'nope'", id="command-unknown"),
    pytest.param(["train"], "ptlab train: Missing argument 'config'", id="train-no-config"),
    pytest.param(["study", "nope"], "ptlab study: No such command 'nope'", id="study-unknown"),
    pytest.param(["report"], "ptlab report: Missing argument", id="report-no-dir"),
    pytest.param(["data", "build", "x.yaml", "--bogus"], "ptlab data build: No such option: --bogus", id="option-typo"),
    pytest.param(["retrieval", "evaluate", "all-minilm-l6-v2", "f", "--k", "ten"], "Invalid value for '--k'",
                 id="option-type"),
]


@pytest.mark.parametrize("argv, needle", USAGE)
def test_usage_errors_are_one_line(ptlab, ws, argv, needle):
    expect_error(ptlab, argv, needle, ws.root)


def test_disk_full_is_one_line_naming_the_path(ptlab, ws, monkeypatch):
    from .test_bad_studies import _ptlab_store, _study_dir

    root = _study_dir(ws, None, "spurious", _ptlab_store)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(root / "report" / "report.md"))

    monkeypatch.setattr("ptlab.studies.spurious.report.load_study", full)
    line = expect_error(ptlab, ["report", root], "report/report.md: No space left on device", ws.root)
    assert "free some space" in line


def test_permission_denied_is_one_line_naming_the_path(ptlab, ws, monkeypatch):
    data = ws.jsonl("pairs.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    cfg = ws.yaml("train.yaml", {"model": "tiny-test", "data": {"path": str(data)}, "output_dir": str(ws / "out")})

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("ptlab.train.data_source.load_rows", denied)
    expect_error(ptlab, ["train", cfg], "pairs.jsonl: Permission denied", ws.root)
