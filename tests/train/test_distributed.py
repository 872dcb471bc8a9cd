"""Two CPU processes (accelerate launch, gloo) follow the same loss curve as one with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ptlab.train.loop import train
from tests.train.rows import arithmetic_rows, as_format, write_jsonl


@pytest.mark.parametrize("objective,fmt", [("kto", "unpaired"), ("sft", "sft")])
def test_two_processes_match_one(tmp_path, objective, fmt):
    data = write_jsonl(tmp_path / "d.jsonl", as_format(arithmetic_rows(40), fmt))
    cfg = dict(model="tiny-test", objective=objective, data={"path": str(data)}, batch_size=8, max_steps=5,
               log_every=1, save_every=0, lr=3e-3, output_dir=str(tmp_path / "two"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    one = train({**cfg, "output_dir": str(tmp_path / "one"), "grad_accum": 2}, quiet=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2]), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "ptlab", "train", str(tmp_path / "c.yaml"), "--quiet"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in two] == [r["step"] for r in one.history] == [1, 2, 3, 4, 5]
    for a, b in zip(one.history, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        for key in ("kl", "rewards/chosen", "mean_token_accuracy"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5)
