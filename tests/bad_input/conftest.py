import pytest

from .common import Workspace


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace that is also the working directory (relative default outputs land in it)."""
    monkeypatch.chdir(tmp_path)
    return Workspace(tmp_path)
