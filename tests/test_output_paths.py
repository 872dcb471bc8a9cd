"""ptlab replaces only directories it made: a user's directory, a regular file, or a path under a file is
refused with one line before any work, and left exactly as it was (data build, synth, any atomic output)."""

import json
import os
import stat

import pytest
import yaml

from ptlab.atomic import MARKER, atomic_dir, write_text
from ptlab.errors import ConfigError

DATA = {"task": "math", "seed": 0, "sizes": {"train": 8, "eval_id": 4, "eval_break": 4}, "formats": ["sft"],
        "output": ["jsonl"]}
SYNTH = {"teacher": {"backend": "simulated", "model": "math"}, "strategy": {"strategy": "question_rephrase",
         "queries": 4}, "seeds": {"task": "math", "n": 2, "source": "simulated"}}


def snapshot(root):
    return sorted((str(p.relative_to(root)), p.is_dir() or p.read_bytes()) for p in root.rglob("*"))


def user_target(tmp_path, kind):
    """A path holding something of the user's: a non-empty directory, a file, or a path under a file."""
    target = tmp_path / "mine"
    if kind == "user_dir":
        target.mkdir()
        (target / "thesis.tex").write_text("years of work")
        (target / "card.md").write_text("looks a bit like ptlab's, is not")
    else:
        target.write_text("years of work")
        if kind == "under_file":
            target = target / "out"
    return target


def run_command(ptlab, tmp_path, command, target, write=True):
    """`ptlab data build` or `ptlab synth` into `target`, with the cache in tmp_path/home."""
    env = {"PTLAB_HOME": str(tmp_path / "home")}
    if command == "data":
        if write:
            (tmp_path / "d.yaml").write_text(yaml.safe_dump(DATA))
        return ptlab("data", "build", str(tmp_path / "d.yaml"), "--out", str(target), env=env)
    if write:
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SYNTH, "output": str(target)}))
    return ptlab("synth", str(tmp_path / "s.yaml"), env=env)


@pytest.mark.parametrize("command", ["data", "synth"])
@pytest.mark.parametrize("kind", ["user_dir", "file", "under_file"])
def test_refused_before_any_work_and_untouched(tmp_path, ptlab, command, kind):
    target = user_target(tmp_path, kind)
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(DATA))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SYNTH, "output": str(target)}))
    before = snapshot(tmp_path)
    done = run_command(ptlab, tmp_path, command, target, write=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "mine" in lines[0], done.stderr
    assert snapshot(tmp_path) == before  # nothing replaced, nothing half-written, no cache entries


@pytest.mark.parametrize("command", ["data", "synth"])
def test_ptlab_replaces_its_own_output_and_an_empty_directory(tmp_path, ptlab, command):
    target = tmp_path / "out"
    target.mkdir()
    first = run_command(ptlab, tmp_path, command, target)
    assert first.returncode == 0, first.stderr
    assert (target / MARKER).is_file()
    (target / "stale.txt").write_text("from an earlier build")
    if command == "data":  # a different fingerprint: the directory is rebuilt
        (tmp_path / "d.yaml").write_text(yaml.safe_dump({**DATA, "seed": 1}))
    again = run_command(ptlab, tmp_path, command, target, write=command != "data")
    assert again.returncode == 0, again.stderr
    assert not (target / "stale.txt").exists()


def test_outputs_of_an_older_ptlab_are_recognised_by_their_card(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "card.json").write_text(json.dumps({"fingerprint": "x"}))
    with atomic_dir(old) as tmp:
        (tmp / "card.json").write_text("{}")
    assert (old / MARKER).is_file()


def test_a_user_file_appearing_during_the_write_is_kept(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(ConfigError, match="not a directory"):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text("ptlab's")
            target.write_text("the user's, written meanwhile")
    assert target.read_text() == "the user's, written meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the temporary directory is gone too


def test_files_and_directories_get_the_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with atomic_dir(tmp_path / "d") as tmp:
        (tmp / "sub").mkdir(mode=0o700)
        fd = os.open(tmp / "sub" / "f", os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    write_text(tmp_path / "t.txt", "x")
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "d") == mode(tmp_path / "d" / "sub") == 0o777 & ~umask
    assert mode(tmp_path / "d" / "sub" / "f") == mode(tmp_path / "t.txt") == 0o666 & ~umask
