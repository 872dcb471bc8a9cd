"""`ptlab retrieval build | check | expand | train | evaluate`, and the `softqe` study command.

The study command is attached to the shared `study` group by `ptlab.studies.cli`
through `add_study_commands`, so other studies can add theirs beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ptlab.errors import ConfigError

CONFIG_HELP = "YAML config (a SoftQEConfig; see configs/softqe.yaml)"


def load_softqe_config(config: Optional[Path], overrides: list[str], quick: bool = False):
    from ptlab.config import load_config
    from ptlab.retrieval.study import SoftQEConfig
    from ptlab.retrieval.study import quick as quick_variant

    cfg = load_config(SoftQEConfig, config, overrides)
    return quick_variant(cfg) if quick else cfg


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def register(app: typer.Typer) -> None:
    retrieval = typer.Typer(help="Dense retrieval: BEIR collections, expansion, SoftQE training, evaluation.",
                            no_args_is_help=True)
    app.add_typer(retrieval, name="retrieval")

    @retrieval.command("build")
    def build(name: str = typer.Argument(..., help="squad | hotpotqa"),
              overrides: list[str] = typer.Argument(None, help="spec overrides, e.g. n_test=500 seed=1")) -> None:
        """Build an offline collection into ptlab's cache (BEIR format) and print its folder."""
        from ptlab.config import apply_overrides, validate
        from ptlab.retrieval.collections import BUILDERS, ensure_collection

        if name not in BUILDERS:
            raise ConfigError(f"unknown collection {name!r}; choose from {sorted(BUILDERS)}")
        spec = validate(BUILDERS[name][0], apply_overrides({}, overrides or []), source=name)
        folder, col = ensure_collection(name, spec)
        print(folder)
        print(f"{len(col.corpus)} documents, " + ", ".join(f"{s}: {len(q)} queries" for s, q in col.qrels.items()))

    @retrieval.command("check")
    def check(folder: Path) -> None:
        """Validate a BEIR folder (ids, qrels) and print its size."""
        from ptlab.retrieval.beir import load_beir

        col = load_beir(folder)
        print(f"ok: {len(col.corpus)} documents, {len(col.queries)} queries, "
              + ", ".join(f"{s}: {len(q)} judged queries" for s, q in col.qrels.items()))

    @retrieval.command("expand")
    def expand_cmd(config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
                   overrides: list[str] = typer.Argument(None), quick: bool = typer.Option(False, "--quick"),
                   show: int = typer.Option(3, help="examples to print")) -> None:
        """Expand the study's train and test queries with its expansion source (cached, budgeted)."""
        from ptlab.retrieval.collections import ensure_collection
        from ptlab.retrieval.expansion import build_backend, expand, metered

        cfg = load_softqe_config(config, overrides or [], quick)
        _, squad = ensure_collection("squad", cfg.squad)
        _, hotpot = ensure_collection("hotpotqa", cfg.hotpotqa)
        teacher = metered(cfg.expansion, build_backend(cfg.expansion, [squad, hotpot]))
        train = list(squad.qrels["train"])[: cfg.train_queries]
        queries = {q: squad.queries[q] for q in train} | squad.split_queries("test") | hotpot.split_queries("test")
        pseudo = expand(teacher, queries, cfg.expansion)
        for qid in list(pseudo)[:show]:
            print(f"{queries[qid]}\n  -> {pseudo[qid]}")
        print(teacher.report())

    @retrieval.command("train")
    def train_cmd(config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
                  overrides: list[str] = typer.Argument(None), quick: bool = typer.Option(False, "--quick")) -> None:
        """Train the teacher and the SoftQE students, one per alpha (cached); print their directories."""
        from ptlab.retrieval.study import prepare

        p = prepare(load_softqe_config(config, overrides or [], quick))
        print(f"teacher: {p.teacher_dir}")
        for alpha, folder in p.student_dirs.items():
            print(f"student alpha={alpha:g}: {folder}")

    @retrieval.command("evaluate")
    def evaluate_cmd(
        encoder: str = typer.Argument(..., help="all-minilm-l6-v2 or a sentence-transformers directory"),
        folder: Path = typer.Argument(..., help="BEIR folder"),
        split: str = typer.Option("test", help="qrels split"),
        k: int = typer.Option(100, help="documents retrieved per query"),
        threads: int = typer.Option(2, help="CPU threads"),
    ) -> None:
        """Score one encoder on a BEIR folder: nDCG@10, RR@10, R@100 with 95% intervals, and queries/s."""
        from ptlab.retrieval.beir import load_beir
        from ptlab.retrieval.encoders import load_encoder, resolve_encoder
        from ptlab.retrieval.evaluate import document_embeddings, run_system
        from ptlab.retrieval.index import DenseIndex
        from ptlab.retrieval.metrics import DEFAULT_MEASURES
        from ptlab.retrieval.study import set_threads

        for option, value in (("--k", k), ("--threads", threads)):
            if value < 1:
                raise ConfigError(f"{option}: must be >= 1 (got {value})")
        resolve_encoder(encoder)  # an unknown encoder fails before the folder is read
        set_threads(threads)
        col = load_beir(folder, [split])
        model = load_encoder(encoder, 256)
        docs, _ = document_embeddings(model, resolve_encoder(encoder), col, str(folder.resolve()))
        qids = list(col.qrels[split])
        sr, _ = run_system(encoder, model, DenseIndex(list(col.corpus), docs), qids, [col.queries[q] for q in qids],
                           col.qrels[split], k, DEFAULT_MEASURES, 0)
        _print_table([[m, f"{iv.mean:.4f}", f"[{iv.low:.4f}, {iv.high:.4f}]"] for m, iv in sr.means.items()],
                     ["measure", "mean", "95% CI"])
        print(f"{sr.n_queries} queries, {sr.queries_per_s:.0f} queries/s (encode + search)")


def add_study_commands(study: typer.Typer) -> None:
    @study.command("softqe")
    def softqe(config: Optional[Path] = typer.Option(None, "--config", "-c", help=CONFIG_HELP),
               overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. student.alpha=[0,0.7]"),
               quick: bool = typer.Option(False, "--quick", help="a few-minute variant (small splits)"),
               out: Optional[Path] = typer.Option(None, "--out", "-o", help="report folder")) -> None:
        """SoftQE: base, base + LLM expansion, teacher, SoftQE students (one per alpha); in- and out-of-domain; latency; report."""
        from ptlab.atomic import check_replaceable
        from ptlab.fingerprint import fingerprint
        from ptlab.paths import cache_dir
        from ptlab.retrieval.study import run_study

        cfg = load_softqe_config(config, overrides or [], quick)
        out = out or cache_dir("runs") / f"softqe-{fingerprint(cfg.model_dump(), length=8)}"
        check_replaceable(out, "--out")
        run_study(cfg, out)
        print(f"report: {out / 'report.md'}")
