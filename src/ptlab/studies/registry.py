"""The list of studies: `ptlab study NAME` and `ptlab report DIR` serve every study named here.

Each entry is "module:attribute" of a `Study` instance, imported only when used
(a study pulls in heavy libraries: sentence-transformers, faiss, ...).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ptlab.errors import ConfigError
from ptlab.studies.study import Study

STUDIES = {  # name: ("module:attribute", one line for `ptlab study --help`)
    "spurious": ("ptlab.studies.spurious.study:STUDY",
                 "Robustness to spurious correlations: SFT vs DPO vs KTO over tasks x artifacts x rates x seeds."),
    "budget": ("ptlab.studies.budget.study:STUDY",
               "Synthetic data under a budget: answer augmentation vs question rephrase vs new question over |S| x Q."),
    "softqe": ("ptlab.studies.softqe.study:STUDY",
               "SoftQE: a query encoder distilled toward LLM-expanded queries; in- and out-of-domain retrieval."),
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; choose from {', '.join(STUDIES)}")
    module, attr = STUDIES[name][0].split(":")
    return getattr(importlib.import_module(module), attr)


def study_of_dir(root: Path) -> Study:
    """The study whose results `root` holds, read from its manifest's format; one line if it holds none."""
    from ptlab.studies.grid.manifest import MANIFEST, load_manifest_file

    path = Path(root) / MANIFEST
    if not path.is_file():
        raise ConfigError(f"{root}: not a study directory (no {MANIFEST}); run `ptlab study NAME` first")
    fmt = str(load_manifest_file(path).get("format", ""))
    for name in STUDIES:
        study = get_study(name)
        if fmt.split("/")[0] == study.study_format.split("/")[0]:
            return study
    raise ConfigError(f"{path}: format {fmt!r} is no study this ptlab knows ({', '.join(STUDIES)})")
