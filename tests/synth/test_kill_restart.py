"""`kill -9` of a `ptlab synth` process part-way: the restart finishes and pays no received reply twice."""

from __future__ import annotations

import json
import subprocess
import time

from .conftest import cached_rows, kill_after, synth_job


def test_kill_minus_nine_then_restart_pays_only_what_was_lost(home, serve, tmp_path):
    q, concurrency = 120, 4
    srv = serve(latency_s=0.04)  # ~100 replies/s at concurrency 4: the run takes over a second
    teacher = {"backend": "openai", "model": "echo", "base_url": srv.url, "api_key_env": None,
               "concurrency": concurrency, "timeout_s": 10.0, "send_seed": True}  # distinct bodies
    cmd, env = synth_job(tmp_path, home, teacher, queries=q)
    db = home / "teacher" / "replies.sqlite"
    kill_after(cmd, env, db, replies=30)
    kept = cached_rows(db)
    assert 30 <= kept < q and not (tmp_path / "out").exists()
    time.sleep(0.2)  # let requests that were in flight at the kill finish on the server
    ok_first = srv.stats.as_dict()["counts"]["ok"]
    lost = ok_first - kept  # answered by the server but never received: the only calls paid twice
    assert 0 <= lost <= concurrency

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((tmp_path / "out" / "synth.json").read_text())["stats"]
    assert (stats["queries_used"], stats["queries_paid"], stats["rows"]) == (q, q - kept, q)
    assert (stats["teacher"]["cached"], stats["teacher"]["paid"], stats["teacher"]["failed"]) == (kept, q - kept, 0), stats
    assert cached_rows(db) == q
    server = srv.stats.as_dict()
    assert server["counts"]["ok"] == q + lost
    paid_twice = sum(1 for c in server["ok_by_body"].values() if c > 1)
    assert paid_twice == lost and max(server["ok_by_body"].values()) <= 2
    data = (tmp_path / "out" / "data.jsonl").read_text().splitlines()
    assert len(data) == q and json.loads(data[0])["completion"] == "echo: What is 0 + 0?"
