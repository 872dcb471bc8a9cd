import os
import tempfile
from types import SimpleNamespace

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A hermetic ptlab home for the whole session (models are built once per session;
# subprocesses inherit it). Set PTLAB_HOME yourself to reuse a warm cache.
os.environ.setdefault("PTLAB_HOME", tempfile.mkdtemp(prefix="ptlab-test-home-"))


@pytest.fixture
def ptlab(monkeypatch, capsys):
    """Run `ptlab ARGS` in this process through `ptlab.cli.main` (exit code, stdout, stderr)."""
    from ptlab.cli import main

    def run(*args, env=None):
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr("sys.argv", ["ptlab", *args])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code or 0
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)

    return run


@pytest.fixture(scope="session")
def tiny_base_build(tmp_path_factory):
    """One full build of the pretrained `tiny` base (~10 minutes on 2 cores), shared by the slow tests that need
    a fresh one (the budget check, the packaged copy's reproducibility), so `pytest -m slow` builds it once."""
    from ptlab.models.tiny_base import build_tiny_base

    out = tmp_path_factory.mktemp("tiny-base") / "tiny"
    build_tiny_base(out, log=None)
    return out
