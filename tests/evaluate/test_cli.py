"""`ptlab eval`: prints a table and writes files; bad input is one line, exit 2."""

import json
import subprocess
import sys


def _run(*args):
    return subprocess.run([sys.executable, "-m", "ptlab", *args], capture_output=True, text=True)


def test_eval_cli_writes_metrics(tmp_path):
    from typer.testing import CliRunner

    from ptlab.cli import app

    r = CliRunner().invoke(app, ["eval", "tiny-test", "--task", "docqa", "--feature", "answer_first", "--artifact",
                                 "feature_ambiguity", "--n", "4", "--max-new-tokens", "4", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "eval_break/accuracy" in r.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["eval_id/n"] == 4 and metrics["eval_break/n"] == 4
    assert len((tmp_path / "examples.jsonl").read_text().splitlines()) == 8


def test_eval_cli_bad_split_is_one_line():
    r = _run("eval", "tiny-test", "--task", "math", "--splits", "eval_x")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "eval_x" in r.stderr
