"""`ptlab synth` and `ptlab serve` from the command line: files written, one-line errors, exit 2."""

from __future__ import annotations

import json

import yaml


def test_synth_writes_rows_and_exact_accounting(tmp_path, ptlab):
    cfg = {"teacher": {"backend": "simulated", "model": "math",
                       "simulator": {"answer_error": 0.0, "rephrase_drift": 0.0}},
           "strategy": {"strategy": "question_rephrase", "queries": 40, "verify": "gold"},
           "seeds": {"task": "math", "n": 8, "source": "simulated"}, "output": str(tmp_path / "out")}
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump(cfg))
    done = ptlab("synth", str(tmp_path / "synth.yaml"), "strategy.queries=30", env={"PTLAB_HOME": str(tmp_path / "h")})
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "data.jsonl").read_text().splitlines()]
    assert len(rows) == 15 and all(r["verified"] is True and r["cost"] == 2 for r in rows)
    meta = json.loads((tmp_path / "out" / "synth.json").read_text())
    assert meta["stats"]["queries_used"] == 30 and meta["stats"]["teacher"]["paid"] == 30
    assert meta["stats"]["teacher"]["budget"]["max_queries"] == 30  # Q also caps what is paid
    assert meta["config"]["strategy"]["queries"] == 30


def test_synth_errors_are_one_line_with_exit_2(tmp_path, serve, ptlab):
    env = {"PTLAB_HOME": str(tmp_path / "h"), "PTLAB_CLI_KEY": "sk-cli-Secret-55aa"}
    bad = ptlab("synth", "strategy.queries=0", env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: config: strategy.queries: Input should be greater than or equal to 1 (got 0)"]
    srv = serve(api_key="another-key-000")
    denied = ptlab("synth", "teacher.backend=openai", "teacher.model=echo", f"teacher.base_url={srv.url}",
                   "teacher.api_key_env=PTLAB_CLI_KEY", "strategy.queries=5", "seeds.n=3", f"output={tmp_path}/o",
                   env=env)
    assert denied.returncode == 2
    lines = denied.stderr.strip().splitlines()
    assert lines == [f"error: teacher server {srv.url} rejected the key in $PTLAB_CLI_KEY (HTTP 401)"]
    assert "sk-cli-Secret-55aa" not in denied.stdout + denied.stderr
    tiny = ptlab("synth", "teacher.backend=openai", "teacher.model=echo", f"teacher.base_url={srv.url}",
                 "budget.max_queries=0", "strategy.rounds=1", "seeds.n=3", f"output={tmp_path}/o", env=env)
    assert tiny.returncode == 2
    assert tiny.stderr.strip().splitlines() == [
        "error: budget.max_queries=0 is smaller than one call to teacher openai:echo; set budget.max_queries >= 1"]
