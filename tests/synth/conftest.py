"""Fixtures: a private PTLAB_HOME, and loopback OpenAI-compatible servers that stop by themselves."""

from __future__ import annotations

import contextlib

import pytest

from ptlab.synth.serve import EchoResponder, FaultInjector, OpenAIServer


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def serve():
    """`serve(**kw)` starts an echo server on 127.0.0.1:<ephemeral>; all are stopped after the test."""
    started: list[OpenAIServer] = []

    def start(responder=None, model="echo", faults: FaultInjector | None = None, **kw) -> OpenAIServer:
        srv = OpenAIServer(responder or EchoResponder(), model, "127.0.0.1", 0, faults=faults, **kw)
        started.append(srv.start_background())
        return srv

    yield start
    for srv in started:
        with contextlib.suppress(Exception):
            srv.stop()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny-test model built once per session, used by directory (so tests' PTLAB_HOME can differ)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PTLAB_HOME", str(tmp_path_factory.mktemp("models-home")))
        from ptlab.models import resolve

        return str(resolve("tiny-test"))


@pytest.fixture
def one_thread():
    """Tiny models on a shared 2-core machine: one torch thread is ~20x faster than two spinning ones."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- a `ptlab synth` subprocess, killed part-way (the kill/restart tests) ---------------------------------------
def cached_rows(db) -> int:
    """Replies committed to the reply cache at `db` so far (0 before the file or its table exists)."""
    import sqlite3
    from pathlib import Path

    if not Path(db).exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def synth_job(tmp_path, home, teacher: dict, queries: int, budget: dict | None = None) -> tuple[list, dict]:
    """(command, environment) of `ptlab synth` doing answer augmentation over 8 JSONL seeds with `teacher`."""
    import json
    import os
    import sys

    import yaml

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"id": f"s{i}", "prompt": f"What is {i} + {i}?"}) + "\n" for i in range(8)))
    cfg = {"teacher": teacher, "strategy": {"strategy": "answer_augmentation", "queries": queries, "temperature": 0.8},
           "seeds": {"source": "jsonl", "path": str(seeds), "n": 8}, "output": str(tmp_path / "out"),
           **({"budget": budget} if budget else {})}
    (tmp_path / "synth.yaml").write_text(yaml.safe_dump(cfg))
    return ([sys.executable, "-m", "ptlab.synth", "synth", str(tmp_path / "synth.yaml")],
            {**os.environ, "PTLAB_HOME": str(home)})


def kill_after(cmd: list, env: dict, db, replies: int) -> None:
    """Start `cmd`, `kill -9` it once `replies` replies are in the cache at `db`; it must have died by the kill."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while cached_rows(db) < replies and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
