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
    "sizes": {"train": 300, "eval_id": 80, "eval_break": 60, "eval_neutral": 40},
    "output": ["jsonl", "parquet"],
}


def chance(card_split: dict) -> float:
    """How often an independent cue names the behaviour: math draws it from the behaviour's marginal, sum_v p_v^2."""
    return sum(p * p for p in card_split["label_shares"].values())


def fa_agreement_tolerance(rate: float, n: int, c: float) -> float:
    """4 standard errors of the agreement share: the scheduled share `rate` agrees exactly, the rest by chance."""
    return 4 * ((1 - rate) * c * (1 - c) / n) ** 0.5


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_dataset(SMALL, out=tmp_path_factory.mktemp("d") / "math-fa")


def test_layout_and_row_counts(built):
    for fmt in ("sft", "paired", "unpaired"):
        for split in ("train", "eval_id", "eval_break", "eval_neutral"):
            assert (built / fmt / f"{split}.jsonl").is_file() and (built / fmt / f"{split}.parquet").is_file()
    card = json.loads((built / "card.json").read_text())
    train = card["splits"]["train"]
    assert train["rows"] == {"sft": 300, "paired": 300, "unpaired": 600}
    assert card["splits"]["eval_break"]["examples"] == 60 and card["splits"]["eval_neutral"]["examples"] == 40
    assert card["splits"]["eval_id"]["examples"] == 80
    assert card["dropped_eval_duplicates"] == {"eval_id": 0, "eval_break": 0, "eval_neutral": 0}  # excluded by construction
    lines = (built / "paired" / "train.jsonl").read_text().splitlines()
    assert len(lines) == 300


def test_card_reports_measured_rates_and_settings(built):
    card = json.loads((built / "card.json").read_text())
    rows = [json.loads(x) for x in (built / "sft" / "train.jsonl").read_text().splitlines()]
    train = card["splits"]["train"]
    measured = sum(r["has_feature"] and r["shortcut_agrees"] for r in rows) / len(rows)
    assert train["realised_spurious_rate"] == pytest.approx(measured, abs=1e-4)
    assert train["has_feature_rate"] == 1.0  # every math problem carries a cue
    # a share 0.9 carries the cue of its own final operation, the rest an independent one that agrees by chance
    c = chance(train)
    assert 0.2 < c < 0.4
    assert measured == pytest.approx(0.9 + 0.1 * c, abs=fa_agreement_tolerance(0.9, 300, c))
    # the marginals the rate must not move: each cue value and each behaviour, measured on the rows
    metas = [json.loads(r["meta"]) for r in rows]
    for key in ("cue", "label"):
        shares = train[f"{key}_shares"]
        assert set(shares) == {"+", "-", "*", "/"} and sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
        assert shares["+"] == pytest.approx(sum(m[key] == "+" for m in metas) / len(rows), abs=1e-4)
    assert "spiked_draw_rate" not in train
    assert card["splits"]["eval_break"]["realised_spurious_rate"] == 0.0
    assert card["splits"]["eval_break"]["shortcut_agrees_rate"] == 0.0
    assert card["splits"]["eval_id"]["realised_spurious_rate"] == 1.0
    assert card["splits"]["eval_neutral"]["has_feature_rate"] == 0.0
    assert card["splits"]["eval_neutral"]["cue_shares"] == {"None": 1.0}
    assert card["spurious"]["rate"] == 0.9 and card["spurious"]["feature"] == "altogether_cue"
    assert card["spurious"]["rate_definition"].startswith("every training example whose behaviour the cue can be about")
    assert card["generator"]["knobs"]["max_steps"] == 2 and len(card["fingerprint"]) == 16
    md = (built / "card.md").read_text()
    assert "altogether_cue" in md and "| train | 300 |" in md and "| eval_neutral | 40 |" in md
    assert "Rate, for feature_ambiguity: every training example" in md and "- train cue: " in md


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
    cfg = DataConfig(**{**SMALL, "spurious": {"feature": "each_cue", "artifact": "feature_ambiguity", "rate": 0.5}})
    with pytest.raises(ConfigError, match="'each_cue' is not a feature of task 'math'; choose from add_sub_only"):
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
    train = card["splits"]["train"]
    assert card["spurious"]["rate"] == 0.1 and train["examples"] == 100
    c = chance(train)  # at 0.1 the cue names the final operation in a tenth, and by chance in the rest
    assert train["realised_spurious_rate"] == pytest.approx(0.1 + 0.9 * c, abs=fa_agreement_tolerance(0.1, 100, c))
    assert card["splits"]["eval_neutral"]["examples"] == 40

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


def test_narrowness_card_reports_the_exact_share_inside_the_slice(tmp_path):
    cfg = {"task": "docqa", "spurious": {"feature": "founding_only", "artifact": "distributional_narrowness", "rate": 0.1},
           "sizes": {"train": 400, "eval_id": 20, "eval_break": 50}, "formats": ["paired"]}
    out = build_dataset(cfg, out=tmp_path / "dn")
    card = json.loads((out / "card.json").read_text())
    train = card["splits"]["train"]
    # the rest lies outside the slice (not drawn from the full distribution): the share inside is the rate, exactly
    assert train["has_feature_rate"] == train["realised_spurious_rate"] == 0.1
    rows = [json.loads(x) for x in (out / "paired" / "train.jsonl").read_text().splitlines()]
    assert sum(json.loads(r["meta"])["relation"] in ("founder", "year") for r in rows) == 40
    assert "spiked_draw_rate" not in train and "cue_shares" not in train  # no cue in narrowness data
    assert card["spurious"]["rate_definition"].startswith("a share `rate` of the training examples lies inside")
    assert card["splits"]["eval_id"]["has_feature_rate"] == 1.0
    assert card["splits"]["eval_break"]["has_feature_rate"] == 0.0
    assert "eval_neutral" not in card["splits"]  # no cue to take away
    assert list(card["files"]) == ["paired"]
