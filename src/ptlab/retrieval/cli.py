"""`ptlab retrieval build | check | expand | evaluate`: the retrieval library's own commands.

They work on any BEIR folder and any sentence-transformers encoder; the SoftQE
study that combines them (teacher, students, report) is `ptlab study softqe`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ptlab.errors import ConfigError

EXPANSION_HELP = "YAML expansion settings (the `expansion:` section of configs/softqe.yaml)"


def _print_table(rows: list[list[str]], header: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*header)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def register(app: typer.Typer) -> None:
    retrieval = typer.Typer(help="Dense retrieval: BEIR collections, query expansion, evaluation "
                            "(the SoftQE study: ptlab study softqe).", no_args_is_help=True)
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
    def expand_cmd(folder: Path = typer.Argument(..., help="BEIR folder whose queries are expanded"),
                   overrides: list[str] = typer.Argument(None, help="expansion settings, e.g. "
                                                         "teacher.model=smollm2-135m max_tokens=32, or source=oracle"),
                   config: Optional[Path] = typer.Option(None, "--config", "-c", help=EXPANSION_HELP),
                   split: str = typer.Option("test", help="qrels split whose queries are expanded"),
                   show: int = typer.Option(3, help="examples to print")) -> None:
        """Write a pseudo-document for each query of a BEIR split (cached and budgeted like any teacher call)."""
        from ptlab.config import load_config
        from ptlab.retrieval.beir import load_beir
        from ptlab.retrieval.expansion import ExpansionSpec, build_backend, expand, metered

        spec = load_config(ExpansionSpec, config, overrides or [])
        col = load_beir(folder, [split])
        queries = col.split_queries(split)
        with metered(spec, build_backend(spec, [col])) as teacher:
            pseudo = expand(teacher, queries, spec)
        for qid in list(pseudo)[:show]:
            print(f"{queries[qid]}\n  -> {pseudo[qid]}")
        print(teacher.report())

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
        from ptlab.retrieval.encoders import load_encoder, resolve_encoder, set_threads
        from ptlab.retrieval.evaluate import document_embeddings, run_system
        from ptlab.retrieval.index import DenseIndex
        from ptlab.retrieval.metrics import DEFAULT_MEASURES

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

