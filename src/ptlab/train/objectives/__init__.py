"""The objective registry: name -> `Objective` (format, whether it needs a reference, params, loss)."""

from ptlab.errors import ConfigError
from ptlab.train.objectives.base import Batch, LossOut, Objective, Term
from ptlab.train.objectives.cpo import CPO, SIMPO
from ptlab.train.objectives.dpo import DPO
from ptlab.train.objectives.kto import KTO
from ptlab.train.objectives.orpo import ORPO
from ptlab.train.objectives.sft import SFT

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (SFT, DPO, KTO, SIMPO, ORPO, CPO)}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ConfigError(f"objective: unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


__all__ = ["OBJECTIVES", "Batch", "LossOut", "Objective", "Term", "get_objective"]
