"""The training loop: determinism, learning, resume after kill -9, NaN handling, reference cache, LoRA."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ptlab.errors import ConfigError
from ptlab.train import batch_loss
from ptlab.train.loop import TrainingDiverged, train
from tests.train.rows import arithmetic_rows, as_format, write_jsonl

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}


def config(tmp_path, fmt="paired", **kw):
    data = write_jsonl(tmp_path / f"{fmt}.jsonl", as_format(arithmetic_rows(48), fmt))
    base = dict(model="tiny-test", objective="dpo", data={"path": str(data)}, output_dir=str(tmp_path / "run"),
                batch_size=8, max_steps=8, log_every=2, save_every=0, lr=3e-3)
    base.update(kw)
    return base


def test_same_config_and_seed_give_identical_metrics(tmp_path):
    a = train(config(tmp_path, output_dir=str(tmp_path / "a")), quiet=True)
    b = train(config(tmp_path, output_dir=str(tmp_path / "b")), quiet=True)
    strip = lambda h: [{k: v for k, v in r.items() if k != "elapsed_s"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)
    wa, wb = load_file(a.checkpoint / "model.safetensors"), load_file(b.checkpoint / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("objective,fmt", [("dpo", "paired"), ("kto", "unpaired"), ("sft", "sft"),
                                           ("simpo", "paired"), ("orpo", "paired"), ("cpo", "paired")])
def test_every_objective_learns(tmp_path, objective, fmt):
    res = train(config(tmp_path, fmt, objective=objective, max_steps=16, log_every=16), quiet=True)
    m = res.metrics
    if objective == "sft":
        assert m["loss"] < 6.0  # from ~ln(vocab)=6.9 at init
    elif objective == "kto":
        assert m["rewards/chosen"] > m["rewards/rejected"]
    else:
        assert m["rewards/accuracies"] > 0.5 and m["rewards/margins"] > 0
    assert json.loads((res.output_dir / "result.json").read_text())["steps"] == 16
    lines = (res.output_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [16]


def test_resume_after_kill_reaches_the_same_weights(tmp_path):
    """kill -9 mid-run, then --resume: bit-identical to an uninterrupted run.

    The uninterrupted run goes through the same command as the killed one: CPU sums depend on
    torch's thread count, and a run inside pytest inherits whatever count earlier tests set
    (the cause of a failure seen on a busy machine). The resumed run starts with another thread
    count on purpose: the checkpoint records the one to restore.
    """
    cfg = config(tmp_path, max_steps=60, save_every=10, log_every=10)
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "ptlab", "train", str(tmp_path / "c.yaml"), "--quiet"]
    full = subprocess.run(cmd + [f"output_dir={tmp_path / 'full'}"], env=ENV, capture_output=True, text=True)
    assert full.returncode == 0, full.stderr
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run = tmp_path / "run"
    deadline = time.time() + 300
    while not (run / "checkpoints" / "step-0000020").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists(), "the run finished before it could be killed"
    assert (run / "checkpoints" / "step-0000020").is_dir(), "killed before its second checkpoint (machine too busy?)"
    one_thread = {**ENV, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd + ["--resume"], env=one_thread, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = load_file(tmp_path / "full" / "final" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(10, 61, 10))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import ptlab.train.loop as loop

    calls = {"n": 0}
    real = loop.evaluate_objective

    def poisoned(*args, **kw):
        out = real(*args, **kw)
        calls["n"] += 1
        if calls["n"] > 6:
            out.terms[0].total = out.terms[0].total * float("nan")
        return out

    monkeypatch.setattr(loop, "evaluate_objective", poisoned)
    with pytest.raises(TrainingDiverged, match=r"not finite at step 7 .*last good checkpoint: .*step-0000005"):
        train(config(tmp_path, save_every=5), quiet=True)
    assert (tmp_path / "run" / "checkpoints" / "step-0000005" / "model.safetensors").is_file()
    assert not (tmp_path / "run" / "final").exists()


def test_reference_logps_are_computed_once_and_reused(tmp_path, monkeypatch):
    import ptlab.train.loop as loop

    train(config(tmp_path, output_dir=str(tmp_path / "a")), quiet=True)
    monkeypatch.setattr(loop, "compute_reference", lambda *a, **k: pytest.fail("reference recomputed"))
    train(config(tmp_path, output_dir=str(tmp_path / "b"), params={"loss_type": "ipo"}), quiet=True)


def test_refuses_to_overwrite_a_run(tmp_path):
    cfg = config(tmp_path, max_steps=2)
    train(cfg, quiet=True)
    with pytest.raises(ConfigError, match="already holds a finished run"):
        train(cfg, quiet=True)
    with pytest.raises(ConfigError, match="different config"):
        partial = config(tmp_path, output_dir=str(tmp_path / "p"), max_steps=6, save_every=2)
        monkey = dict(partial, max_steps=4)
        train(monkey, quiet=True)
        import shutil

        shutil.rmtree(Path(partial["output_dir"]) / "final")
        train(partial, resume=True, quiet=True)


def test_lora_reference_is_the_base_with_adapters_disabled(tmp_path):
    from ptlab.models import load

    res = train(config(tmp_path, lora={"r": 4, "alpha": 8}, max_steps=6), quiet=True)
    assert (res.checkpoint / "adapter_config.json").is_file()
    from peft import PeftModel

    base, tok = load("tiny-test")
    model = PeftModel.from_pretrained(base, res.checkpoint)
    rows = arithmetic_rows(4, seed=9)
    _, trained = batch_loss(model, tok, rows, "dpo")
    assert trained["rewards/chosen"] != 0.0  # adapters moved the policy away from the base
    with model.disable_adapter():
        _, at_base = batch_loss(model, tok, rows, "dpo")
    assert at_base["rewards/chosen"] == 0.0 and at_base["rewards/rejected"] == 0.0


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_schedule_matches_transformers(kind):
    from transformers import get_scheduler

    from ptlab.train.schedule import make_scheduler

    ours = make_scheduler(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), kind, 3, 20)
    name = "constant_with_warmup" if kind == "constant" else kind
    theirs = get_scheduler(name, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), num_warmup_steps=3,
                           num_training_steps=20)
    for _ in range(20):
        assert ours.get_last_lr()[0] == pytest.approx(theirs.get_last_lr()[0], abs=1e-12)
        ours.step()
        theirs.step()


def test_eval_loss_is_the_objective_on_the_whole_eval_set(tmp_path):
    from transformers import AutoModelForCausalLM

    from ptlab.models import load

    held_out = write_jsonl(tmp_path / "eval.jsonl", arithmetic_rows(20, seed=7))
    res = train(config(tmp_path, eval_data={"path": str(held_out)}, eval_every=8, max_steps=8, ref_batch_size=6),
                quiet=True)
    final = AutoModelForCausalLM.from_pretrained(res.checkpoint)
    base, tok = load("tiny-test")
    _, m = batch_loss(final, tok, arithmetic_rows(20, seed=7), "dpo", ref_model=base, max_length=256)
    assert res.metrics["eval/loss"] == pytest.approx(m["loss"], rel=1e-5)
    assert res.metrics["eval/rewards/accuracies"] == pytest.approx(m["rewards/accuracies"], abs=1e-9)
