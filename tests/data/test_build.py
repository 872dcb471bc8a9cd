"""`ptlab data build`: files, card, determinism, caching, datasets loading, one-line errors."""

import json
import sys

import pytest

from ptlab.data.build import DataConfig, build_dataset, load_data_config
from ptlab.errors import ConfigError

SMALL = {
    "task": "math",
    "seed": 0,
    "spurious": {"feature": "altogether_cue", "artifact": "feature_ambiguity", "rate": 0.9},
    "sizes": {"train": 300, "eval_id": 80, "eval_break": 60},
    "output": ["jsonl", "parquet"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_dataset(SMALL, out=tmp_path_factory.mktemp("d") / "math-fa")


def test_layout_and_row_counts(built):
    for fmt in ("sft", "paired", "unpaired"):
        for split in ("train", "eval_id", "eval_break"):
            assert (built / fmt / f"{split}.jsonl").is_file() and (built / fmt / f"{split}.parquet").is_file()
    card = json.loads((built / "card.json").read_text())
    train = card["splits"]["train"]
    assert train["rows"] == {"sft": 300, "paired": 300, "unpaired": 600}
    assert card["splits"]["eval_break"]["examples"] == 60
    assert card["splits"]["eval_id"]["examples"] + card["dropped_eval_duplicates"]["eval_id"] == 80
    lines = (built / "paired" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 300


def test_card_reports_measured_rates_and_settings(built):
    card = json.loads((built / "card.json").read_text())
    rows = [json.loads(x) for x in (built / "sft" / "train.jsonl").read_text().splitlines()]
    measured = sum(r["has_feature"] and r["shortcut_agrees"] for r in rows) / len(rows)
    assert card["splits"]["train"]["realised_spurious_rate"] == pytest.approx(measured, abs=1e-4)
    assert 0.85 <= measured <= 0.95
    assert card["splits"]["eval_break"]["realised_spurious_rate"] == 0.0
    assert card["splits"]["eval_break"]["shortcut_agrees_rate"] == 0.0
    assert card["spurious"]["rate"] == 0.9 and card["spurious"]["feature"] == "altogether_cue"
    assert card["generator"]["knobs"]["max_steps"] == 2 and len(card["fingerprint"]) == 16
    md = (built / "card.md").read_text()
    assert "altogether_cue" in md and "| train | 300 |" in md


def test_loadable_by_datasets(built):
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(built / "paired" / "train.jsonl"), split="train")
    assert ds.num_rows == 300 and {"prompt", "chosen", "rejected", "shortcut_agrees"} <= set(ds.column_names)
    pq = load_dataset("parquet", data_files=str(built / "unpaired" / "eval_break.parquet"), split="train")
    assert pq.num_rows == 120 and set(pq["label"]) == {True, False}
    assert not any(pq["shortcut_agrees"])


def test_deterministic_and_cached(tmp_path, built):
    again = build_dataset(SMALL, out=tmp_path / "again")
    for rel in ("sft/train.jsonl", "paired/eval_break.jsonl", "unpaired/eval_id.jsonl"):
        assert (again / rel).read_bytes() == (built / rel).read_bytes()
    stamp = (again / "card.json").stat().st_mtime_ns
    assert build_dataset(SMALL, out=tmp_path / "again") == tmp_path / "again"
    assert (again / "card.json").stat().st_mtime_ns == stamp  # reused, not rebuilt
    other = build_dataset({**SMALL, "seed": 1, "output": ["jsonl"]}, out=tmp_path / "seed1")
    assert (other / "sft/train.jsonl").read_bytes() != (built / "sft/train.jsonl").read_bytes()


def test_default_output_goes_to_the_cache_by_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("PTLAB_HOME", str(tmp_path))
    path = build_dataset({"task": "docqa", "sizes": {"train": 20, "eval_id": 5, "eval_break": 5}})
    assert path.parent == tmp_path / "data" and path.name.startswith("docqa-")
    assert not (path / "sft" / "eval_break.jsonl").exists()  # no spurious feature: nothing to break
    assert json.loads((path / "card.json").read_text())["spurious"] is None


@pytest.mark.parametrize(
    "override, match",
    [
        ("task=chess", r"task: unknown task 'chess'; choose from docqa, instruct, math"),
        ("spurious.rate=1.5", r"spurious.rate: Input should be less than or equal to 1"),
        ("spurious.artifact=narrow", r"spurious.artifact: Input should be 'feature_ambiguity' or 'distributional_narrowness'"),
        ("formats=[sft,dpo]", r"formats.1: Input should be 'sft', 'paired' or 'unpaired'"),
        ("sizes.tran=3", r"sizes.tran: unknown field"),
    ],
)
def test_config_errors_name_the_field(tmp_path, override, match):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(SMALL))
    with pytest.raises(ConfigError, match=match):
        load_data_config(cfg, [override])


def test_feature_errors_and_nothing_half_written(tmp_path):
    target = tmp_path / "out"
    cfg = DataConfig(**{**SMALL, "spurious": {"feature": "list_cue", "artifact": "feature_ambiguity", "rate": 0.5}})
    with pytest.raises(ConfigError, match="'list_cue' is not a feature of task 'math'; choose from add_sub_only"):
        build_dataset(cfg, out=target)
    with pytest.raises(ConfigError, match=r"knobs of task 'math': bogus: unknown field.*valid knobs: min_steps"):
        build_dataset({**SMALL, "knobs": {"bogus": 1}}, out=target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_cli_builds_with_overrides_and_exits_2_on_bad_input(tmp_path, monkeypatch, capsys):
    from ptlab import cli

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(SMALL))
    monkeypatch.setattr(sys, "argv", ["ptlab", "data", "build", str(cfg), "spurious.rate=0.1", "sizes.train=100",
                                      "output=[jsonl]", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code in (0, None)
    out = capsys.readouterr()
    assert out.out.strip() == str(tmp_path / "o")
    card = json.loads((tmp_path / "o" / "card.json").read_text())
    assert card["spurious"]["rate"] == 0.1 and card["splits"]["train"]["examples"] == 100
    assert 0.05 <= card["splits"]["train"]["realised_spurious_rate"] <= 0.15

    monkeypatch.setattr(sys, "argv", ["ptlab", "data", "build", str(cfg), "spurious.feature=nope", "--out", str(tmp_path / "bad")])
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: spurious.feature: 'nope' is not a feature of task 'math'")
    assert not (tmp_path / "bad").exists()


def test_example_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("data-math-fa.yaml", "data-instruct-dn.yaml", "data-docqa-fa.yaml", "data-gsm8k.yaml"):
        assert load_data_config(root / name).task in ("math", "instruct", "docqa")


def test_narrowness_card_separates_drawn_and_realised_rates(tmp_path):
    cfg = {"task": "docqa", "spurious": {"feature": "founding_only", "artifact": "distributional_narrowness", "rate": 0.1},
           "sizes": {"train": 400, "eval_id": 20, "eval_break": 50}, "formats": ["paired"]}
    card = json.loads((build_dataset(cfg, out=tmp_path / "dn") / "card.json").read_text())
    train = card["splits"]["train"]
    assert train["spiked_draw_rate"] == pytest.approx(0.1, abs=0.04)
    # the full-distribution rest also asks about founders/years a third of the time
    assert train["realised_spurious_rate"] == pytest.approx(0.1 + 0.9 * 2 / 6, abs=0.07)
    assert card["splits"]["eval_break"]["has_feature_rate"] == 0.0
    assert list(card["files"]) == ["paired"]
