"""One run per output directory: a second one is refused in one line; a killed holder never blocks."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ptlab.atomic import check_replaceable
from ptlab.errors import ConfigError
from ptlab.locks import LOCK_FILE, DirLock, hold_dir_lock, lock_files_only, read_holder

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                     os.environ.get("PYTHONPATH", "")])}

# Holds the lock on argv[1]; with "children", first starts a spawn child and a fork child that outlive it.
HOLDER = textwrap.dedent("""
    import json, os, sys, time
    import multiprocessing as mp
    from ptlab.locks import hold_dir_lock

    def sleep():
        time.sleep(60)

    if __name__ == "__main__":
        with hold_dir_lock(sys.argv[1], "output_dir"):
            kids = []
            if "children" in sys.argv:
                for method in ("spawn", "fork"):
                    p = mp.get_context(method).Process(target=sleep, daemon=False)
                    p.start()
                    kids.append(p.pid)
            print(json.dumps({"pid": os.getpid(), "children": kids}), flush=True)
            time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock on a directory; yields (its info, the directory, the Popen)."""
    procs, extra = [], []

    def start(*args):
        (tmp_path / "holder.py").write_text(HOLDER)
        directory = tmp_path / "run"
        proc = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(directory), *args], env=ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(proc)
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        info = json.loads(line)
        extra.extend(info["children"])
        return info, directory, proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    for pid in extra:  # the children this test started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_second_process_gets_one_line_naming_the_holder(holder):
    info, directory, _ = holder()
    with pytest.raises(ConfigError) as e:
        DirLock(directory, "output_dir").acquire()
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{directory}: in use by another ptlab run (pid {info['pid']}, ")
    assert "holder.py" in msg and "since " in msg and msg.endswith("choose another output_dir")


def test_a_killed_holder_never_blocks(holder):
    info, directory, proc = holder()
    os.kill(info["pid"], signal.SIGKILL)
    proc.wait()
    assert read_holder(directory)["pid"] == info["pid"]  # the stale note is still there...
    with hold_dir_lock(directory, "output_dir"):  # ...and does not matter
        assert read_holder(directory)["pid"] == os.getpid()
    check_replaceable(directory, "output_dir")  # a directory holding only the lock is still ptlab's
    assert lock_files_only(directory)


def test_children_of_the_holder_do_not_keep_the_lock(holder):
    """A spawn child never gets the descriptor (O_CLOEXEC); a forked one closes its copy (at-fork hook)."""
    info, directory, _ = holder("children")
    assert len(info["children"]) == 2
    os.kill(info["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            with hold_dir_lock(directory, "output_dir"):
                break
        except ConfigError:
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.05)
    assert all(os.kill(pid, 0) is None for pid in info["children"])  # the children were still alive


def test_release_then_acquire_again_and_no_reentry(tmp_path):
    directory = tmp_path / "new" / "run"
    with hold_dir_lock(directory, "study dir") as lock:
        assert lock.held and (directory / LOCK_FILE).is_file()
        with pytest.raises(ConfigError, match=rf"\(pid {os.getpid()}, .*choose another study dir$"):
            DirLock(directory, "study dir").acquire()
    assert not lock.held and not (tmp_path / "new").exists()  # it wrote nothing: nothing is left
    again = DirLock(directory).acquire()
    (directory / "result.json").write_text("{}")
    again.release()
    again.release()  # twice is harmless
    assert (directory / LOCK_FILE).read_text() == ""  # a run that wrote something keeps the (empty) lock file
    with hold_dir_lock(directory):
        assert read_holder(directory)["pid"] == os.getpid()


def test_a_second_ptlab_train_on_a_running_output_dir_exits_2_naming_the_first(tmp_path, ptlab):
    """The first run (a subprocess) trains on; the second stops in one line; after a kill -9 the dir is free."""
    import yaml

    from tests.train.rows import arithmetic_rows, write_jsonl

    data = write_jsonl(tmp_path / "pairs.jsonl", arithmetic_rows(16))
    run = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"model": "tiny-test", "objective": "dpo", "data": {"path": str(data)},
                                   "output_dir": str(run), "batch_size": 4, "max_steps": 100_000,
                                   "log_every": 100_000, "save_every": 0}))
    first = subprocess.Popen([sys.executable, "-m", "ptlab", "train", str(cfg), "--quiet"], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while (read_holder(run) or {}).get("pid") != first.pid:
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        second = ptlab("train", str(cfg), "--quiet", "max_steps=2")
        assert second.returncode == 2
        assert second.stderr.count("\n") == 1, second.stderr
        assert f"in use by another ptlab run (pid {first.pid}, " in second.stderr
        assert f"'ptlab train {cfg} --quiet'" in second.stderr, second.stderr  # the first run's command line
        assert not (run / "final").exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    again = ptlab("train", str(cfg), "--quiet", "max_steps=2")
    assert again.returncode == 0, again.stderr
    assert (run / "final").is_dir()


def test_a_run_that_fails_under_the_lock_leaves_nothing(tmp_path):
    """The lock is taken before the run's own checks; a run refused by them leaves no directory behind."""
    from ptlab.train.loop import train
    from tests.train.rows import arithmetic_rows, write_jsonl

    data = write_jsonl(tmp_path / "few.jsonl", arithmetic_rows(2))  # train() itself, not the CLI's data check
    with pytest.raises(ConfigError, match="data: 2 rows cannot feed 1 processes x grad_accum=4"):
        train({"model": "tiny-test", "objective": "dpo", "data": {"path": str(data)},
               "output_dir": str(tmp_path / "out" / "run"), "grad_accum": 4}, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.jsonl"]
