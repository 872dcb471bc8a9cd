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
