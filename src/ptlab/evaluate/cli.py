"""`ptlab eval MODEL --task T [--feature F --artifact A --rate R] ...`: accuracy with 95% intervals."""

from __future__ import annotations

from typing import Optional

import typer


def _check_options(splits: list[str], rate: float, pairs: int, batch_size: int, max_new_tokens: int | None,
                   sample: bool, temperature: float, top_p: float) -> None:
    """ConfigError naming the first option out of range; before any model is loaded."""
    import math

    from ptlab.errors import ConfigError

    checks = [
        ("--splits", splits, bool(splits), "give at least one of eval_id, eval_break, eval_neutral"),
        ("--rate", rate, math.isfinite(rate) and 0.0 <= rate <= 1.0, "must be in [0, 1]"),
        ("--pairs", pairs, pairs >= 0, "must be >= 0"),
        ("--batch-size", batch_size, batch_size >= 1, "must be >= 1"),
        ("--max-new-tokens", max_new_tokens, max_new_tokens is None or max_new_tokens >= 1, "must be >= 1"),
        ("--temperature", temperature, math.isfinite(temperature) and (temperature > 0 or not sample),
         "must be a finite number, > 0 when sampling"),
        ("--top-p", top_p, math.isfinite(top_p) and 0.0 < top_p <= 1.0, "must be in (0, 1]"),
    ]
    for option, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{option}: {expected} (got {value!r})")


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_cmd(
        model: str = typer.Argument(..., help="model name (tiny, tiny-4m, smollm2-135m), hf:<dir>, or a checkpoint dir"),
        task: str = typer.Option(..., "--task", "-t", help="math | instruct | docqa"),
        feature: Optional[str] = typer.Option(None, help="spurious feature (see `ptlab data features`)"),
        artifact: Optional[str] = typer.Option(None, help="feature_ambiguity | distributional_narrowness"),
        rate: float = typer.Option(0.9, help="spurious rate of the in-distribution split"),
        splits: str = typer.Option("eval_id,eval_break", help="comma-separated splits"),
        n: int = typer.Option(100, help="examples per split"),
        seed: int = typer.Option(1000, help="seed of the evaluation examples"),
        pairs: int = typer.Option(0, help="held-out eval_id pairs for ranking accuracy (0: none)"),
        max_new_tokens: Optional[int] = typer.Option(None, help="default: a tight budget per task"),
        batch_size: int = typer.Option(64),
        sample: bool = typer.Option(False, "--sample", help="sample instead of greedy decoding"),
        temperature: float = typer.Option(1.0),
        top_p: float = typer.Option(1.0),
        base: Optional[str] = typer.Option(None, help="reference model for the implicit-reward ranking accuracy"),
        out: Optional[str] = typer.Option(None, "--out", "-o", help="write metrics.json and examples.jsonl here"),
    ) -> None:
        """Evaluate a model on a task's splits: accuracy (95% bootstrap CI), spurious reliance, ranking accuracy."""
        from pathlib import Path

        from rich.console import Console
        from rich.table import Table

        from ptlab.errors import ConfigError
        from ptlab.evaluate.generate import GenerationSettings
        from ptlab.evaluate.run import MAX_NEW_TOKENS, evaluate_model
        from ptlab.models import load
        from ptlab.models.registry import check_name
        from ptlab.tasks import SPLITS, SpuriousSpec, get_task, make_rows

        get_task(task)
        if (feature is None) != (artifact is None):
            raise ConfigError("--feature and --artifact go together")
        wanted = [s.strip() for s in splits.split(",") if s.strip()]
        for s in wanted:
            if s not in SPLITS or s == "train":
                raise ConfigError(f"--splits: unknown evaluation split {s!r}; choose from eval_id, eval_break, eval_neutral")
        if n <= 0:
            raise ConfigError(f"--n: must be positive (got {n})")
        _check_options(wanted, rate, pairs, batch_size, max_new_tokens, sample, temperature, top_p)
        spec = SpuriousSpec(feature, artifact, rate) if feature else None
        check_name(model)
        if base is not None:
            check_name(base)
        if out:
            from ptlab.atomic import check_replaceable

            check_replaceable(Path(out), "--out")
        rows = {s: make_rows(task, "paired", n, seed=seed, spurious=spec, split=s) for s in wanted}
        m, tok = load(model)
        ref = load(base)[0] if (pairs and base) else None
        settings = GenerationSettings(max_new_tokens=max_new_tokens or MAX_NEW_TOKENS.get(task, 64), batch_size=batch_size,
                                      do_sample=sample, temperature=temperature, top_p=top_p, seed=seed)
        pair_rows = make_rows(task, "paired", pairs, seed=seed + 1, spurious=spec, split="eval_id") if pairs else None
        result = evaluate_model(m, tok, task, rows, settings, pairs=pair_rows, ref_model=ref)
        table = Table("metric", "value", "95% CI", title=f"{model} on {task}" + (f" ({feature}, rate {rate})" if spec else ""))
        for k, v in result.metrics.items():
            if k.endswith(("_lo", "_hi")):
                continue
            lo, hi = result.metrics.get(f"{k}_lo"), result.metrics.get(f"{k}_hi")
            table.add_row(k, f"{v:.4g}", f"[{lo:.3f}, {hi:.3f}]" if lo is not None else "")
        Console().print(table)
        if out:
            result.save(Path(out))
            print(f"wrote {out}/metrics.json and examples.jsonl")
