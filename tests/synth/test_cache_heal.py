"""A corrupt teacher reply cache is reported in one line, moved aside (never deleted) and rebuilt."""

from __future__ import annotations

import contextlib
import json
import sqlite3

import pytest

from ptlab.synth import ChatReply, ChatRequest, MeteredTeacher, ReplyCache
from ptlab.synth.cache import cache_key, is_corruption
from ptlab.synth.serve import EchoResponder, OpenAIServer


class Counting:
    """A deterministic backend that counts what it is asked (so a re-paid call is visible)."""

    backend = "count"
    model = "m"

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return [ChatReply(f"re: {r.messages[-1][1]} " + "x" * 400, 3, 2) for r in requests]


def requests(n: int) -> list[ChatRequest]:
    return [ChatRequest.user(f"question {i}") for i in range(n)]


def fill(path, n: int = 50) -> list[str]:
    cache = ReplyCache(path)
    texts = [r.text for r in MeteredTeacher(Counting(), cache=cache).generate(requests(n))]
    cache.close()  # checkpoints the WAL into the file
    return texts


def asides(path) -> list:
    """The moved-aside database files (not their -wal/-shm companions)."""
    return sorted(p for p in path.parent.glob(f"{path.name}.corrupt-*") if not p.name.endswith(("-wal", "-shm")))


def test_garbage_file_is_moved_aside_with_one_warning_and_a_fresh_cache_starts(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    garbage = b"these are not the bytes of a database\n" * 100
    path.write_bytes(garbage)
    cache = ReplyCache(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: {path}: corrupt cache (not an SQLite database); recomputing"]
    [aside] = asides(path)
    assert aside.read_bytes() == garbage  # the user's file is kept, renamed
    teacher = Counting()
    fresh = [r.text for r in MeteredTeacher(teacher, cache=cache).generate(requests(3))]
    assert teacher.calls == 3 and len(cache) == 3
    assert [r.text for r in MeteredTeacher(Counting(), cache=ReplyCache(path)).generate(requests(3))] == fresh
    assert capsys.readouterr().err == ""  # healed: later opens are silent


def test_truncated_database_is_detected_on_open_and_recomputed(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    before = fill(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    teacher = Counting()
    cache = ReplyCache(path)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"warning: {path}: corrupt cache (") and line.endswith("); recomputing")
    assert len(asides(path)) == 1
    assert [r.text for r in MeteredTeacher(teacher, cache=cache).generate(requests(50))] == before
    assert teacher.calls == 50  # recomputed, not read from the damaged file


def test_overwritten_pages_are_detected(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    before = fill(path)
    with open(path, "r+b") as f:  # scribble over the middle of the b-tree, keep the header
        f.seek(path.stat().st_size // 2)
        f.write(b"\xff" * 8192)
    out = [r.text for r in MeteredTeacher(Counting(), cache=ReplyCache(path)).generate(requests(50))]
    assert out == before
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: {path}: corrupt cache (")
    assert len(asides(path)) == 1


def test_a_stale_wal_goes_aside_with_its_database(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    path.write_bytes(b"garbage" * 100)
    wal = tmp_path / "replies.sqlite-wal"
    wal.write_bytes(b"old wal")
    ReplyCache(path)
    [aside] = asides(path)
    assert not wal.exists() or wal.read_bytes() != b"old wal"
    assert (tmp_path / f"{aside.name}-wal").read_bytes() == b"old wal"


def test_corruption_found_during_use_heals_and_is_a_miss(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    cache = ReplyCache(path)
    req = ChatRequest.user("q")
    cache.put(cache_key("b", "m", req), "b", "m", req, ChatReply("a", 1, 2))

    class Broken:  # what sqlite3 raises when a page turns out to be damaged mid-run
        def execute(self, *a):
            raise sqlite3.DatabaseError("database disk image is malformed")

        def close(self):
            pass

    good, cache._db = cache._db, Broken()
    good.close()
    assert cache.get(cache_key("b", "m", req)) is None
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == f"warning: {path}: corrupt cache (database disk image is malformed); recomputing"
    cache.put(cache_key("b", "m", req), "b", "m", req, ChatReply("again", 1, 2))
    assert cache.get(cache_key("b", "m", req)).text == "again" and len(asides(path)) == 1


def test_a_row_with_bad_json_is_a_miss_and_is_overwritten(tmp_path, capsys):
    path = tmp_path / "replies.sqlite"
    before = fill(path, 5)
    key = cache_key("count", "m", requests(5)[2])
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE replies SET meta = '{not json' WHERE key = ?", (key,))
        db.commit()
    teacher = Counting()
    cache = ReplyCache(path)
    assert [r.text for r in MeteredTeacher(teacher, cache=cache).generate(requests(5))] == before
    assert teacher.calls == 1  # only the damaged row was recomputed
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == f"warning: {path}: corrupt cache (a row whose JSON does not parse); recomputing"
    assert json.loads(sqlite3.connect(path).execute("SELECT meta FROM replies WHERE key = ?", (key,)).fetchone()[0]) == {}
    assert asides(path) == []  # one bad row does not cost the whole file


def test_a_locked_database_is_not_corruption(tmp_path):
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as err:
        other.execute("INSERT INTO t VALUES (1)")
    assert not is_corruption(err.value)
    holder.execute("ROLLBACK")


def test_synth_cli_heals_a_corrupt_cache_once(tmp_path, ptlab):
    """End to end: run, damage the cache, run again (one warning, same data), run again (silent, all cached)."""
    srv = OpenAIServer(EchoResponder(), "echo", "127.0.0.1", 0, None, None).start_background()
    try:
        home = tmp_path / "home"
        args = ["synth", "teacher.backend=openai", "teacher.model=echo", f"teacher.base_url={srv.url}",
                "strategy.queries=6", "seeds.n=3"]
        first = ptlab(*args, f"output={tmp_path}/a", env={"PTLAB_HOME": str(home)})
        assert first.returncode == 0, first.stderr
        db = home / "teacher" / "replies.sqlite"
        db.write_bytes(b"\x00garbage" * 512)
        second = ptlab(*args, f"output={tmp_path}/b", env={"PTLAB_HOME": str(home)})
        assert second.returncode == 0, second.stderr
        assert second.stderr.strip().splitlines() == [f"warning: {db}: corrupt cache (not an SQLite database); recomputing"]
        assert (tmp_path / "b" / "data.jsonl").read_text() == (tmp_path / "a" / "data.jsonl").read_text()
        third = ptlab(*args, f"output={tmp_path}/c", env={"PTLAB_HOME": str(home)})
        assert third.returncode == 0 and third.stderr == ""
        assert json.loads(third.stdout.splitlines()[-1])["cached"] == 6
    finally:
        srv.stop()


def test_a_synth_run_closes_its_cache_before_returning(tmp_path, monkeypatch):
    """Measured flake: with the cache left to the garbage collector, a late close checkpointed the WAL into the
    file a user had replaced meanwhile, and the next run saw no corruption (no warning). The run closes it."""
    import gc

    from ptlab.synth import cache as cache_mod
    from ptlab.synth.run import SynthConfig, run_synth

    made = []
    real_init = cache_mod.ReplyCache.__init__

    def remember(self, *a, **kw):
        real_init(self, *a, **kw)
        made.append(self)

    monkeypatch.setattr(cache_mod.ReplyCache, "__init__", remember)
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path / "home"))
    srv = OpenAIServer(EchoResponder(), "echo", "127.0.0.1", 0, None, None).start_background()
    gc.disable()
    try:
        cfg = SynthConfig(teacher={"backend": "openai", "model": "echo", "base_url": srv.url},
                          strategy={"queries": 4}, seeds={"n": 2}, output=str(tmp_path / "out"))
        run_synth(cfg)
        assert len(made) == 1
        with pytest.raises(sqlite3.ProgrammingError):  # closed: nothing can checkpoint into the file later
            made[0]._db.execute("SELECT 1")
    finally:
        gc.enable()
        srv.stop()
