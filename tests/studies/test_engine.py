"""The grid engine, through the smallest study (`dice_study`): resumption, locks, kills without orphans,
crashes between steps, corrupt step outputs, a failed first run, and concurrent writers of the store."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ptlab.errors import ConfigError, PtlabError
from ptlab.studies.grid.run import run_grid
from ptlab.studies.grid.store import ResultStore, StoreError
from tests.studies.dice_study import STUDY, DiceConfig

REPO = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'src'}"}


def dice(out: Path, **kw) -> DiceConfig:
    return DiceConfig(output_dir=str(out), **kw)


def start(out: Path, env: dict | None = None, **kw) -> subprocess.Popen:
    """The study in another process (as `ptlab study dice` would run it)."""
    code = ("import sys, json; from tests.studies.dice_study import STUDY, DiceConfig; "
            "from ptlab.studies.grid.run import run_grid; "
            "run_grid(STUDY, DiceConfig(**json.loads(sys.argv[1])), quiet=True)")
    cfg = json.dumps({"output_dir": str(out), **kw})
    return subprocess.Popen([sys.executable, "-c", code, cfg], env={**ENV, **(env or {})}, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(predicate, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stored(out: Path) -> dict[str, str]:
    return ResultStore(out / "results.sqlite", create=False).finished()


def test_a_study_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "s"
    first = run_grid(STUDY, dice(out), quiet=True)
    assert (first.cells, first.ran, first.skipped) == (4, 4, 0)
    assert sorted(stored(out)) == ["d2.s0", "d2.s1", "d6.s0", "d6.s1"]
    res = ResultStore(out / "results.sqlite", create=False).results()
    assert {"sides", "seed"} <= set(res.columns)  # the study's own axes, under their own names
    again = run_grid(STUDY, dice(out), quiet=True)
    assert (again.ran, again.skipped) == (0, 4)
    more = run_grid(STUDY, dice(out, axes={"sides": [2, 6, 20], "seed": [0, 1]}), quiet=True)
    assert more.ran == 2  # a grid with more values runs only what is missing
    report = STUDY.write_report(out)
    assert "d20" not in report.read_text() and "top/share" in report.read_text()
    log = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines()]
    assert [len(x["ran"]) for x in log] == [4, 0, 2]


def test_a_second_run_on_the_same_directory_exits_naming_the_holder(tmp_path):
    out = tmp_path / "s"
    proc = start(out, sleep_s=60, axes={"sides": [6], "seed": [0]})
    try:
        wait_for(lambda: (out / "study.json").is_file(), what="the first run to start its cells")
        with pytest.raises(ConfigError, match=rf"in use by another ptlab run \(pid {proc.pid}") as e:
            run_grid(STUDY, dice(out, axes={"sides": [6], "seed": [0]}), quiet=True)
        assert "\n" not in str(e.value)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert run_grid(STUDY, dice(out, axes={"sides": [6], "seed": [0]}), quiet=True).ran == 1  # a dead holder: free


def test_kill_leaves_no_worker_behind_and_nothing_writes_afterwards(tmp_path):
    out = tmp_path / "s"
    proc = start(out, executor="processes", workers=2, sleep_s=60)
    parent = psutil.Process(proc.pid)
    wait_for(lambda: len([c for c in parent.children(recursive=True) if "python" in c.name()]) >= 3,
             what="the manager and two workers")
    wait_for(lambda: (out / "study.json").is_file(), what="the manifest")
    children = parent.children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, as an OOM killer or a closed laptop would
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"orphans left: {[(p.pid, p.cmdline()) for p in alive]}"
    before = sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file())
    time.sleep(1.0)
    assert sorted((str(p), p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()) == before
    assert stored(out) == {}
    assert run_grid(STUDY, dice(out, executor="processes", workers=2), quiet=True).ran == 4  # it resumes


def test_a_crash_between_steps_resumes_without_redoing_the_finished_step(tmp_path):
    out = tmp_path / "s"
    cfg = dict(executor="processes", workers=1, axes={"sides": [2, 6], "seed": [0]})
    proc = start(out, env={"DICE_DIE_ON": "d6.s0"}, **cfg)  # d2.s0 finishes, d6.s0's worker dies
    _, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "d6.s0: its worker process died" in err
    assert list(stored(out)) == ["d2.s0"]
    plan = next(p for p in STUDY.plan(dice(out, **cfg), out.resolve()) if p.cell.cell_id == "d6.s0")
    step = plan.out / "rolls.json"
    mtime = step.stat().st_mtime_ns  # its step finished before the crash
    again = run_grid(STUDY, dice(out, **cfg), quiet=True)
    assert again.ran_ids == ["d6.s0"] and step.stat().st_mtime_ns == mtime


def test_a_corrupt_step_output_is_recomputed_not_trusted(tmp_path):
    out = tmp_path / "s"
    run_grid(STUDY, dice(out), quiet=True)
    before = ResultStore(out / "results.sqlite", create=False).results().set_index(["cell_id", "metric"])["value"]
    plan = next(p for p in STUDY.plan(dice(out), out.resolve()) if p.cell.cell_id == "d6.s1")
    record = json.loads((plan.out / "rolls.json").read_text())
    record["rolls"][0] = 7  # an edited (or torn) output no longer matches its hash
    (plan.out / "rolls.json").write_text(json.dumps(record))
    again = run_grid(STUDY, dice(out), quiet=True)
    assert again.ran_ids == ["d6.s1"]
    after = ResultStore(out / "results.sqlite", create=False).results().set_index(["cell_id", "metric"])["value"]
    assert after.sort_index().equals(before.sort_index())  # recomputed to the same numbers


def test_a_study_that_finished_no_cell_does_not_hold_its_directory(tmp_path):
    out = tmp_path / "s"
    proc = start(out, env={"DICE_DIE_ON": "d2.s0"}, executor="processes", axes={"sides": [2], "seed": [0]})
    proc.communicate(timeout=300)
    assert proc.returncode != 0 and (out / "study.json").is_file()
    fixed = run_grid(STUDY, dice(out, rolls=50, axes={"sides": [2], "seed": [0]}), quiet=True)  # corrected config
    assert fixed.ran == 1
    with pytest.raises(ConfigError, match=r"different fixed settings \(rolls\)"):  # now it holds a finished cell
        run_grid(STUDY, dice(out, rolls=60, axes={"sides": [2], "seed": [0]}), quiet=True)


def _add(path: str, cell_id: str, barrier) -> str:
    store = ResultStore(path, ("sides", "seed"))
    barrier.wait()
    try:
        store.add_cell({"cell_id": cell_id, "sides": 6, "seed": 0}, "h", {"m": 1.0}, [], {})
        return "stored"
    except StoreError as e:
        return str(e)


def test_concurrent_writers_store_a_cell_exactly_once(tmp_path):
    path = str(tmp_path / "results.sqlite")
    ResultStore(path, ("sides", "seed"))
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            same = pool.starmap(_add, [(path, "d6.s0", barrier)] * 4)
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            distinct = pool.starmap(_add, [(path, f"c{i}", barrier) for i in range(4)])
    assert same.count("stored") == 1 and all("already stored" in r for r in same if r != "stored")
    assert distinct == ["stored"] * 4
    assert sorted(ResultStore(path, create=False).finished()) == ["c0", "c1", "c2", "c3", "d6.s0"]


def test_an_old_results_directory_is_refused_with_how_to_rerun(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"format": "ptlab-study-dice/0", "cells": []}))
    with pytest.raises(PtlabError, match="choose another output_dir"):
        run_grid(STUDY, dice(out), quiet=True)


def test_a_new_study_is_one_module_and_one_registry_line(tmp_path, monkeypatch):
    """`dice_study.py` plus its line in STUDIES: the generic CLI serves it, report included."""
    import typer
    from typer.testing import CliRunner

    from ptlab.studies import cli, registry

    monkeypatch.setitem(registry.STUDIES, "dice", ("tests.studies.dice_study:STUDY", STUDY.help))
    app = typer.Typer()
    cli.register(app)
    out = tmp_path / "quick"
    runner = CliRunner()
    done = runner.invoke(app, ["study", "dice", "--quick", f"output_dir={out}", "--quiet"])
    assert done.exit_code == 0, done.output
    assert "2 cells run" in done.output and (out / "report" / "report.md").is_file()
    (out / "report" / "report.md").unlink()
    again = runner.invoke(app, ["report", str(out)])  # `ptlab report` finds the study from its directory
    assert again.exit_code == 0 and "top/share" in (out / "report" / "report.md").read_text()
