"""A saved evaluation proves it is whole: torn, edited or missing files are caught on load, in one line."""

import hashlib
import json

import pytest

from ptlab.errors import PtlabError
from ptlab.evaluate.run import CorruptOutput, EvalResult, summarise


def records(n=6):
    return [{"id": f"x{i}", "split": "eval_id" if i % 2 else "eval_break", "correct": bool(i % 3),
             "shortcut_agrees": bool(i % 2), "response": f"answer {i}"} for i in range(n)]


@pytest.fixture
def saved(tmp_path):
    recs = records()
    metrics = {k: v for k, v in summarise(recs).items() if v == v}  # NaN reliance would not compare equal
    result = EvalResult(metrics, recs, {"generate/eval_id": 0.5})
    result.save(tmp_path / "eval")
    return tmp_path / "eval", result


def corrupt(out) -> str:
    """The one-line reason, the same from load (raised) and verify (returned)."""
    with pytest.raises(CorruptOutput) as e:
        EvalResult.load(out)
    assert isinstance(e.value, PtlabError) and "\n" not in str(e.value)
    assert EvalResult.verify(out) == str(e.value) and not EvalResult.is_valid(out)
    return str(e.value)


def test_round_trip_records_rows_and_checksum(saved):
    out, result = saved
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["rows"] == 6
    assert meta["examples_sha256"] == hashlib.sha256((out / "examples.jsonl").read_bytes()).hexdigest()
    back = EvalResult.load(out)
    assert (back.metrics, back.records, back.seconds) == (result.metrics, result.records, result.seconds)
    assert EvalResult.verify(out) is None and EvalResult.is_valid(out)


@pytest.mark.parametrize("cut", ["mid-line", "line boundary"])
def test_truncated_examples(saved, cut):
    out, _ = saved
    path = out / "examples.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if cut == "mid-line" else b"".join(data.splitlines(True)[:4]))
    assert f"{path}: does not match the SHA-256 recorded in metrics.json" in corrupt(out)


def test_edited_line(saved):
    out, _ = saved
    path = out / "examples.jsonl"
    lines = path.read_text().splitlines(True)
    lines[2] = lines[2].replace('"answer 2"', '"answer 9"')
    assert '"answer 9"' in lines[2]
    path.write_text("".join(lines))  # still valid JSON, still 6 rows: only the checksum can tell
    assert "torn or edited" in corrupt(out)


def test_missing_files(saved):
    out, _ = saved
    (out / "examples.jsonl").unlink()
    assert corrupt(out) == f"{out / 'examples.jsonl'}: missing"
    (out / "metrics.json").unlink()
    assert corrupt(out) == f"{out / 'metrics.json'}: missing (the evaluation did not finish)"


def test_torn_metrics(saved):
    out, _ = saved
    text = (out / "metrics.json").read_text()
    (out / "metrics.json").write_text(text[: len(text) // 2])
    assert corrupt(out) == f"{out / 'metrics.json'}: unreadable (JSONDecodeError)"


def test_row_count_is_checked_too(saved):
    out, _ = saved
    meta = json.loads((out / "metrics.json").read_text())
    meta["rows"] = 7
    (out / "metrics.json").write_text(json.dumps(meta))
    assert corrupt(out) == f"{out / 'examples.jsonl'}: 6 rows, metrics.json records 7"


def old_format(out):
    """metrics.json as ptlab wrote it before rows and examples_sha256 were recorded."""
    meta = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").write_text(json.dumps({"metrics": meta["metrics"], "seconds": meta["seconds"]}))


def test_old_format_loads_when_every_line_parses(saved):
    out, result = saved
    old_format(out)
    assert EvalResult.load(out).records == result.records and EvalResult.is_valid(out)


def test_old_format_torn_or_broken_is_refused(saved):
    out, _ = saved
    old_format(out)
    path = out / "examples.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # cut inside the last record
    assert corrupt(out) == f"{path}: the last line is cut short (torn write)"
    lines = data.decode().splitlines(True)
    lines[1] = lines[1][:20] + "\n"
    path.write_text("".join(lines))
    assert corrupt(out) == f"{path}: line 2 is not valid JSON (torn or edited)"


def test_saving_again_removes_the_old_metrics_first(saved, monkeypatch):
    """A kill while new examples are written leaves no metrics.json, never old metrics beside new examples."""
    out, result = saved

    def killed(path, text):
        raise KeyboardInterrupt

    monkeypatch.setattr("ptlab.evaluate.run.write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        result.save(out)
    assert not (out / "metrics.json").exists() and "did not finish" in corrupt(out)
