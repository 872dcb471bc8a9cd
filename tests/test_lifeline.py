"""Workers die with their parent: a SIGKILLed study leaves no pool worker or Manager server behind."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ptlab.lifeline import parent_alive

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                     os.environ.get("PYTHONPATH", "")])}

PARENT = textwrap.dedent("""
    import json, os, sys, time
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path

    from ptlab import lifeline

    def nap(flags):
        Path(flags, str(os.getpid())).touch()
        time.sleep(120)

    def poll_only():  # the portable fallback alone: no prctl
        lifeline._set_pdeathsig = lambda *a: False
        lifeline.exit_with_parent(poll_s=0.2)

    if __name__ == "__main__":
        flags, method, mode = sys.argv[1:]
        ctx = mp.get_context(method)
        manager = lifeline.start_manager(ctx)
        init, args = {"pid": (lifeline.exit_with_parent, (os.getpid(),)), "noargs": (lifeline.exit_with_parent, ()),
                      "poll": (poll_only, ())}[mode]
        pool = ProcessPoolExecutor(max_workers=2, mp_context=ctx, initializer=init, initargs=args)
        futures = [pool.submit(nap, flags) for _ in range(2)]
        while len(os.listdir(flags)) < 2:  # both workers past their initializer and busy
            time.sleep(0.05)
        print(json.dumps({"workers": sorted(pool._processes), "manager": manager._process.pid}), flush=True)
        time.sleep(120)
""")


def running(pid: int) -> bool:
    """Alive and not a zombie (a container's pid 1 may never reap the orphans it inherits)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"


def wait_gone(pids, seconds=5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if running(p)]
        if not left:
            return []
        time.sleep(0.05)
    return [p for p in pids if running(p)]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="checks processes through /proc")
@pytest.mark.parametrize("method,mode", [("spawn", "pid"), ("spawn", "noargs"), ("spawn", "poll"),
                                         ("forkserver", "noargs")])
def test_workers_and_manager_die_when_the_parent_is_killed(tmp_path, method, mode):
    """prctl, or the polling thread alone; a forkserver worker's OS parent is the fork server, not the study."""
    (tmp_path / "parent.py").write_text(PARENT)
    flags = tmp_path / "flags"
    flags.mkdir()
    parent = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(flags), method, mode], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: dict = {}
    try:
        line = parent.stdout.readline()
        assert line, parent.stderr.read()
        pids = json.loads(line)
        children = [*pids["workers"], pids["manager"]]
        assert len(pids["workers"]) == 2 and all(running(p) for p in children)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone(children) == [], f"still running after the parent was killed ({method}, {mode})"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in [*pids.get("workers", []), pids.get("manager")]:
            if pid and running(pid):  # only on failure: the processes this test started
                os.kill(pid, signal.SIGKILL)


def _reaped() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_parent_that_died_before_the_call_ends_the_worker_at_once():
    """The race prctl cannot cover: the parent is gone before the worker asks the kernel to watch it."""
    code = f"from ptlab.lifeline import exit_with_parent; exit_with_parent({_reaped()}); print('survived')"
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "survived" not in r.stdout


def test_parent_alive():
    assert parent_alive(os.getppid()) and parent_alive(os.getpid())
    assert not parent_alive(_reaped())
    assert parent_alive()  # the test process has no recorded parent: nothing says it is orphaned


def test_exit_with_parent_keeps_a_worker_whose_parent_lives():
    code = ("import os; from ptlab.lifeline import exit_with_parent as e, parent_alive as a; "
            "e(os.getppid()); e(); assert a(); print('ok')")
    r = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
