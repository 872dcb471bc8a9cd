"""Bad input: one clear line naming the field, file or row; exit code 2; nothing written."""

import json
import sys

import pytest
import yaml

from ptlab.cli import main
from tests.train.rows import arithmetic_rows, write_jsonl


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["ptlab", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().err.strip()


@pytest.fixture
def cfg_file(tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", arithmetic_rows(16))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"model": "tiny-test", "objective": "dpo", "data": {"path": str(data)},
                                    "output_dir": str(tmp_path / "out"), "batch_size": 4, "max_steps": 2}))
    return path


def write_rows(tmp_path, rows):
    return str(write_jsonl(tmp_path / "bad.jsonl", rows))


CASES = {
    "unknown objective": (["objective=ppo"], r"objective: unknown objective 'ppo'; choose from sft, dpo"),
    "unknown loss type": (["params.loss_type=dpo2"], r"params.loss_type: unknown loss_type 'dpo2'; choose from aot"),
    "bad param value": (["params.beta=-1"], r"params.beta: Input should be greater than 0"),
    "unknown param": (["params.gamma=1"], r"params.gamma: unknown field"),
    "unknown field": (["learning_rate=1"], r"learning_rate: unknown field"),
    "bad type": (["batch_size=many"], r"batch_size: Input should be a valid integer"),
    "missing data file": (["data.path=/nonexistent.jsonl"], r"data file not found: /nonexistent.jsonl"),
    "prompt too long": (["max_length=8"], r"pairs.jsonl: row 1: prompt is \d+ tokens, at or over max_length=8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_config_errors(case, cfg_file, tmp_path, monkeypatch, capsys):
    overrides, pattern = CASES[case]
    code, err = run_cli(monkeypatch, capsys, "train", str(cfg_file), *overrides, "--quiet")
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    import re

    assert re.search(pattern, err), err
    assert not (tmp_path / "out").exists()


def test_data_errors_name_the_row(cfg_file, tmp_path, monkeypatch, capsys):
    rows = arithmetic_rows(6)
    del rows[3]["rejected"]
    code, err = run_cli(monkeypatch, capsys, "train", str(cfg_file), f"data.path={write_rows(tmp_path, rows)}")
    assert code == 2 and "bad.jsonl: row 4: missing column(s) rejected for paired data" in err
    code, err = run_cli(monkeypatch, capsys, "train", str(cfg_file), f"data.path={write_rows(tmp_path, [])}")
    assert code == 2 and "bad.jsonl: dataset is empty" in err
    (tmp_path / "broken.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    code, err = run_cli(monkeypatch, capsys, "train", str(cfg_file), f"data.path={tmp_path / 'broken.jsonl'}")
    assert code == 2 and "broken.jsonl:2: invalid JSON" in err
    code, err = run_cli(monkeypatch, capsys, "train", str(cfg_file), "objective=kto")
    assert code == 2 and "row 1: missing column(s) completion, label for unpaired data" in err
    assert not (tmp_path / "out").exists()


def test_unknown_model_lists_choices(cfg_file, monkeypatch, capsys):
    code, err = run_cli(monkeypatch, capsys, "train", str(cfg_file), "model=gpt-17")
    assert code == 2 and "unknown model 'gpt-17'; choose from" in err and "tiny-4m" in err
